//! Secret values: compared in constant time, never printed.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string (query secret, API secret). `Debug` prints `[redacted]`;
/// there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that must send it (the `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality that also hides the length: both sides are
    /// hashed with SHA-256 and the digests compared with `subtle`.
    pub fn matches(&self, candidate: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate.as_bytes());
        a.ct_eq(&b).into()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_value() {
        let s = SecretString::new("test-webhook-secret");
        assert!(s.matches("test-webhook-secret"));
        assert!(!s.matches("test-webhook-secreT"));
        assert!(!s.matches("test-webhook-secret "));
        assert!(!s.matches(""));
    }

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
