//! Reading a request body without letting it grow past a limit: the decision
//! both Workers make before and while they read (the reading itself is the
//! glue's, in `clerk-sync-platform`).
//!
//! 1. [`declared_too_long`]: a `Content-Length` over the limit is refused
//!    before any byte is read.
//! 2. [`body_read`]: a plain declared length is read in one call; anything
//!    else (no usable length, or `transfer-encoding` beside it) chunk by chunk.
//! 3. [`BodyLimit`]: the bytes actually read are counted, and reading stops
//!    as soon as they pass the limit.

/// The body is over the limit (declared or actually read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload too large")]
pub struct TooLarge;

/// True when `content_length` is a number over `max`. A length that is not
/// a number is left to the runtime; [`BodyLimit`] counts the bytes anyway.
pub fn declared_too_long(content_length: Option<&str>, max: u32) -> bool {
    content_length
        .and_then(|len| len.trim().parse::<u64>().ok())
        .is_some_and(|n| n > u64::from(max))
}

/// How the glue reads the body once the declared length passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// In one read: the declared length is the framing and was already held
    /// to the limit.
    Whole,
    /// Chunk by chunk through [`BodyLimit`], stopping at the limit: no usable
    /// length, or a `transfer-encoding` beside it (then the runtime frames by
    /// chunks and the length says nothing about how much will arrive).
    Chunked,
}

pub fn body_read(content_length: Option<&str>, transfer_encoding: Option<&str>) -> BodyRead {
    let declared = content_length.is_some_and(|n| n.trim().parse::<u64>().is_ok());
    if declared && transfer_encoding.is_none() {
        BodyRead::Whole
    } else {
        BodyRead::Chunked
    }
}

/// Collects the body chunk by chunk and stops as soon as it is over the
/// limit, so a chunked body with no length cannot grow memory unbounded.
#[derive(Debug)]
pub struct BodyLimit {
    max: usize,
    bytes: Vec<u8>,
}

impl BodyLimit {
    pub fn new(max_bytes: u32) -> Self {
        Self {
            max: max_bytes as usize,
            bytes: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if self.bytes.len() + chunk.len() > self.max {
            return Err(TooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_numeric_length_over_the_limit_is_refused_up_front() {
        assert!(declared_too_long(Some("101"), 100));
        assert!(declared_too_long(Some(" 101 "), 100));
        assert!(!declared_too_long(Some("100"), 100));
        assert!(!declared_too_long(Some("lots"), 100));
        assert!(!declared_too_long(None, 100));
    }

    #[test]
    fn only_a_plain_declared_length_is_read_whole() {
        assert_eq!(body_read(Some("12"), None), BodyRead::Whole);
        assert_eq!(body_read(Some("12"), Some("chunked")), BodyRead::Chunked);
        assert_eq!(body_read(None, Some("chunked")), BodyRead::Chunked);
        assert_eq!(body_read(None, None), BodyRead::Chunked);
        assert_eq!(body_read(Some("x"), None), BodyRead::Chunked);
    }

    #[test]
    fn body_limit_counts_actual_bytes() {
        let mut b = BodyLimit::new(10);
        assert!(b.push(b"12345").is_ok());
        assert!(b.push(b"67890").is_ok());
        assert_eq!(b.push(b"1"), Err(TooLarge));
        assert_eq!(b.into_bytes(), b"1234567890");
    }
}
