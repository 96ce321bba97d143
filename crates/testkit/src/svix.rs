//! Signing the way Svix (and Standard Webhooks) signs, written from the
//! specification and independently of the relay's verifier, so that a bug
//! in one is not repeated in the other: `v1,` + base64 of
//! HMAC-SHA256(key, `{id}.{timestamp}.{body}`), where the key is the base64
//! after `whsec_`. The relay's `tests/it/svix_reference.rs` holds this
//! signer to the `svix` crate.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key of a `whsec_<base64>` secret (the prefix is optional, as in Svix).
///
/// # Panics
/// On a secret that is not base64: test code passes known secrets.
pub fn key(secret_whsec: &str) -> Vec<u8> {
    let b64 = secret_whsec.strip_prefix("whsec_").unwrap_or(secret_whsec);
    STANDARD
        .decode(b64)
        .unwrap_or_else(|_| panic!("a signing secret is whsec_ + base64"))
}

/// The `svix-signature` value for this message: `v1,<base64>`.
pub fn sign(secret_whsec: &str, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret_whsec)).expect("any key length");
    mac.update(format!("{id}.{timestamp_secs}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three headers Svix sends: `svix-id`, `svix-timestamp`, `svix-signature`.
pub fn headers(
    secret_whsec: &str,
    id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> Vec<(String, String)> {
    vec![
        ("svix-id".into(), id.into()),
        ("svix-timestamp".into(), timestamp_secs.to_string()),
        (
            "svix-signature".into(),
            sign(secret_whsec, id, timestamp_secs, body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Standard Webhooks' specification (and svix's tests).
    #[test]
    fn the_specification_vector() {
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#,
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_prefix_is_optional_and_headers_carry_the_signature() {
        let body = b"{}";
        assert_eq!(
            sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, body),
            sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, body)
        );
        let h = headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 7, body);
        assert_eq!(h[0], ("svix-id".into(), "m".into()));
        assert_eq!(h[1], ("svix-timestamp".into(), "7".into()));
        assert!(h[2].1.starts_with("v1,") && h[2].1.len() == 47);
    }
}
