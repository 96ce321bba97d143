//! Svix / Standard Webhooks v1 signature verification, over the raw body,
//! before any parsing.
//!
//! ```text
//! signed  = "{id}.{timestamp}.{body}"
//! header  = "v1,<base64(HMAC-SHA256(secret, signed))> v1,<…>"   (space separated)
//! ```
//!
//! Stricter than the `svix` crate where it is lenient: the three values come
//! all from `svix-*` or all from `webhook-*`, never mixed; the id is
//! `[A-Za-z0-9_-]{1,256}` (a `.` would let two messages share one MAC); the
//! timestamp is canonical ASCII digits; a signature must be canonical padded
//! base64 of exactly 32 bytes; at most [`MAX_SIGNATURE_ENTRIES`] entries.
//! One HMAC per configured secret, whatever the number of entries.
//!
//! This module owns no I/O and no clock: the caller passes `now`.
//! The only constructor of [`VerifiedDelivery`] is [`Verifier::verify`] (and
//! [`Verifier::accept_unsigned`], which the configuration must allow).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use clerk_sync_contract::time::UnixMillis;

type HmacSha256 = Hmac<Sha256>;

pub const SVIX_ID: &str = "svix-id";
pub const SVIX_TIMESTAMP: &str = "svix-timestamp";
pub const SVIX_SIGNATURE: &str = "svix-signature";
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// All six signature header names, `svix-*` first.
pub const SIGNATURE_HEADERS: [&str; 6] = [
    SVIX_ID,
    SVIX_TIMESTAMP,
    SVIX_SIGNATURE,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
];

/// Accepted clock skew, in seconds, either way (inclusive).
pub const TOLERANCE_SECS: u64 = 300;
/// Longest accepted message id.
pub const MAX_ID_LEN: usize = 256;
/// More entries than this in one signature header is rejected outright.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;
/// Prefix of a Svix signing secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Accepted decoded secret length, in bytes.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 24..=64;

/// Why a delivery was not accepted as signed. Messages are lowercase and
/// carry nothing from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing signature headers")]
    MissingHeaders,
    #[error("invalid message id")]
    InvalidId,
    #[error("invalid timestamp")]
    InvalidTimestamp,
    #[error("timestamp outside the tolerance")]
    TimestampOutOfTolerance,
    #[error("no matching signature")]
    InvalidSignature,
}

/// Why a configured signing secret was rejected (never shows the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("does not start with whsec_")]
    MissingPrefix,
    #[error("is not canonical padded base64")]
    NotBase64,
    #[error("must decode to 24 to 64 bytes")]
    BadLength,
}

/// One decoded signing secret. `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Parses `whsec_<base64>`: strict, canonical, padded base64 of 24–64 bytes.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let b64 = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?;
        if !SECRET_LEN.contains(&key.len()) {
            return Err(SecretError::BadLength);
        }
        Ok(Self(key))
    }

    /// HMAC-SHA256 in software over `"{id}.{timestamp}.{body}"`.
    fn mac(&self, signed: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("hmac takes any key length");
        mac.update(signed);
        mac.finalize().into_bytes().into()
    }

    /// The `v1,<base64>` signature Svix would send for this message (the
    /// unit tests' signer; other code signs with `clerk-sync-testkit`).
    #[cfg(test)]
    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut signed = format!("{id}.{timestamp}.").into_bytes();
        signed.extend_from_slice(body);
        let tag = self.mac(&signed);
        format!("v1,{}", STANDARD.encode(tag))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The six signature headers as they arrived (a runtime joins repeated
/// headers with `", "`; that is kept as is and fails the strict parse).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub svix_id: Option<String>,
    pub svix_timestamp: Option<String>,
    pub svix_signature: Option<String>,
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
}

impl SignatureHeaders {
    /// Reads the six headers through `get(name)`; names are lowercase.
    pub fn from_lookup(mut get: impl FnMut(&str) -> Option<String>) -> Self {
        Self {
            svix_id: get(SVIX_ID),
            svix_timestamp: get(SVIX_TIMESTAMP),
            svix_signature: get(SVIX_SIGNATURE),
            webhook_id: get(WEBHOOK_ID),
            webhook_timestamp: get(WEBHOOK_TIMESTAMP),
            webhook_signature: get(WEBHOOK_SIGNATURE),
        }
    }

    /// Svix headers, for the unit tests.
    #[cfg(test)]
    fn svix(id: &str, timestamp: &str, signature: &str) -> Self {
        Self {
            svix_id: Some(id.into()),
            svix_timestamp: Some(timestamp.into()),
            svix_signature: Some(signature.into()),
            ..Self::default()
        }
    }

    /// True when none of the six is present: the only case an unsigned
    /// delivery may be accepted.
    pub fn is_empty(&self) -> bool {
        self.family().is_none()
    }

    /// (id, timestamp, signature) of one family: `svix-*` when any of its
    /// headers is present, else `webhook-*`; never a mix.
    fn family(&self) -> Option<[Option<&str>; 3]> {
        let svix = [
            self.svix_id.as_deref(),
            self.svix_timestamp.as_deref(),
            self.svix_signature.as_deref(),
        ];
        let webhook = [
            self.webhook_id.as_deref(),
            self.webhook_timestamp.as_deref(),
            self.webhook_signature.as_deref(),
        ];
        [svix, webhook]
            .into_iter()
            .find(|family| family.iter().any(Option::is_some))
    }
}

/// A delivery whose origin was established, with the very bytes that were
/// checked: signed by a configured secret, or unsigned and allowed by the
/// configuration. Only this module constructs it, and nothing can swap its
/// body afterwards, so what is mapped is what was verified.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedDelivery {
    operation_id: String,
    signed_at: Option<UnixMillis>,
    /// The body, after `start` bytes of what was signed with it.
    bytes: Vec<u8>,
    start: usize,
}

impl std::fmt::Debug for VerifiedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the body: it holds personal data.
        f.debug_struct("VerifiedDelivery")
            .field("operation_id", &self.operation_id)
            .field("signed_at", &self.signed_at)
            .field("body_len", &self.body().len())
            .finish()
    }
}

impl VerifiedDelivery {
    /// Svix's message id (the same on every retry), or `unsigned_<hex>`.
    pub fn operation_id(&self) -> &str {
        &self.operation_id
    }

    /// The signature timestamp; `None` when unsigned.
    pub fn signed_at(&self) -> Option<UnixMillis> {
        self.signed_at
    }

    /// The bytes that were verified.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub fn is_signed(&self) -> bool {
        self.signed_at.is_some()
    }
}

/// The configured signing secrets (several during a rotation).
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<SigningSecret>,
}

impl Verifier {
    /// At least one secret; an empty list can verify nothing.
    pub fn new(secrets: Vec<SigningSecret>) -> Option<Self> {
        (!secrets.is_empty()).then_some(Self { secrets })
    }

    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Verifies a signed delivery at `now`; on success the delivery owns
    /// `body`. The MACs are computed here, in software: [`Verifier::challenge`]
    /// then [`Challenge::settle`] with MACs computed elsewhere (the Worker
    /// uses the runtime's WebCrypto) is the same check.
    pub fn verify(
        &self,
        headers: &SignatureHeaders,
        body: Vec<u8>,
        now: UnixMillis,
    ) -> Result<VerifiedDelivery, VerifyError> {
        let challenge = self.challenge(headers, body, now)?;
        let macs = self.macs(challenge.signed_content());
        challenge.settle(&macs)
    }

    /// HMAC-SHA256 of `content` with each key, in software.
    pub fn macs(&self, content: &[u8]) -> Vec<[u8; 32]> {
        self.secrets.iter().map(|s| s.mac(content)).collect()
    }

    /// Every check of a signed delivery that needs no MAC (headers, id,
    /// timestamp at `now`, the signature entries), and the content to MAC
    /// with each of [`Verifier::keys`].
    pub fn challenge(
        &self,
        headers: &SignatureHeaders,
        body: Vec<u8>,
        now: UnixMillis,
    ) -> Result<Challenge, VerifyError> {
        let [Some(id), Some(timestamp), Some(signature)] =
            headers.family().ok_or(VerifyError::MissingHeaders)?
        else {
            return Err(VerifyError::MissingHeaders);
        };
        if !is_valid_id(id) {
            return Err(VerifyError::InvalidId);
        }
        let signed_at = parse_timestamp(timestamp).ok_or(VerifyError::InvalidTimestamp)?;
        // Whole seconds on both sides, as Svix compares them.
        let now_secs = u64::try_from(now.as_secs()).unwrap_or(0);
        let signed_at = Some(signed_at)
            .filter(|s| s.abs_diff(now_secs) <= TOLERANCE_SECS)
            .and_then(|s| UnixMillis::from_secs(i64::try_from(s).ok()?))
            .ok_or(VerifyError::TimestampOutOfTolerance)?;
        let candidates = parse_signatures(signature)?;
        // "{id}.{timestamp}.{body}" in one buffer: the body is copied once,
        // and the delivery keeps it (its body is the part after the prefix).
        let start = id.len() + timestamp.len() + 2;
        let mut signed = Vec::with_capacity(start + body.len());
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(&body);
        Ok(Challenge {
            operation_id: id.to_owned(),
            signed_at,
            candidates,
            signed,
            start,
            keys: self.secrets.len(),
        })
    }

    /// The raw keys of the configured secrets, in order: what the MACs
    /// handed to [`Challenge::settle`] are computed with.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.secrets.iter().map(|s| s.0.as_slice())
    }

    /// An unsigned delivery, for local testing when the configuration allows
    /// it. The caller must have checked that no signature header is present.
    /// Its operation id is `unsigned_` + the first 32 hex digits of SHA-256(body),
    /// so a resent identical body is recognised as the same operation.
    pub(crate) fn accept_unsigned(body: Vec<u8>) -> VerifiedDelivery {
        let digest = Sha256::digest(&body);
        VerifiedDelivery {
            operation_id: format!("unsigned_{}", hex::encode(&digest[..16])),
            signed_at: None,
            bytes: body,
            start: 0,
        }
    }
}

/// A signed delivery that passed every check but the MAC: its content to
/// MAC, once per configured key, and the entries the MACs must match.
/// [`Challenge::settle`] is the only way on, to a [`VerifiedDelivery`].
pub struct Challenge {
    operation_id: String,
    signed_at: UnixMillis,
    candidates: Vec<[u8; 32]>,
    signed: Vec<u8>,
    start: usize,
    keys: usize,
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the body nor the signatures.
        f.debug_struct("Challenge")
            .field("operation_id", &self.operation_id)
            .field("body_len", &(self.signed.len() - self.start))
            .finish()
    }
}

impl Challenge {
    /// `"{id}.{timestamp}.{body}"`, the bytes each key MACs.
    pub fn signed_content(&self) -> &[u8] {
        &self.signed
    }

    /// Accepts the delivery when one of `macs` (HMAC-SHA256 of
    /// [`Challenge::signed_content`] with each of [`Verifier::keys`], in
    /// order) equals one of the signature entries, compared in constant time.
    /// Fewer or more MACs than keys match nothing.
    pub fn settle(self, macs: &[[u8; 32]]) -> Result<VerifiedDelivery, VerifyError> {
        let matched = macs.len() == self.keys
            && macs.iter().any(|expected| {
                // Fold without short-circuit so the time does not depend on which entry matched.
                self.candidates
                    .iter()
                    .fold(subtle::Choice::from(0), |acc, c| acc | c.ct_eq(expected))
                    .into()
            });
        if !matched {
            return Err(VerifyError::InvalidSignature);
        }
        Ok(VerifiedDelivery {
            operation_id: self.operation_id,
            signed_at: Some(self.signed_at),
            bytes: self.signed,
            start: self.start,
        })
    }
}

fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// ASCII digits, no sign, no leading zero, fits in u64.
fn parse_timestamp(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes[0] != b'0' || bytes.len() == 1);
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// The decoded `v1` entries. Other versions are skipped; a malformed `v1`
/// value is skipped too (it can match nothing). Too many entries: rejected.
fn parse_signatures(header: &str) -> Result<Vec<[u8; 32]>, VerifyError> {
    let mut out = Vec::new();
    for (n, entry) in header.split(' ').filter(|e| !e.is_empty()).enumerate() {
        if n >= MAX_SIGNATURE_ENTRIES {
            return Err(VerifyError::InvalidSignature);
        }
        let Some(value) = entry.strip_prefix("v1,") else {
            continue;
        };
        // 44 characters is padded base64 of 32 bytes; checked before decoding.
        if value.len() != 44 {
            continue;
        }
        let mut tag = [0u8; 32];
        if matches!(STANDARD.decode_slice(value, &mut tag), Ok(32)) {
            out.push(tag);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests speak in whole seconds, as the Svix vectors do.
    trait VerifySecs {
        fn verify_secs(
            &self,
            h: &SignatureHeaders,
            body: &[u8],
            now_secs: u64,
        ) -> Result<VerifiedDelivery, VerifyError>;
    }

    impl VerifySecs for Verifier {
        fn verify_secs(
            &self,
            h: &SignatureHeaders,
            body: &[u8],
            now_secs: u64,
        ) -> Result<VerifiedDelivery, VerifyError> {
            let now = i64::try_from(now_secs)
                .ok()
                .and_then(UnixMillis::from_secs)
                .unwrap_or(UnixMillis(i64::MAX));
            self.verify(h, body.to_vec(), now)
        }
    }

    const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_A: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS_A: u64 = 1_614_265_330;
    const BODY_A: &[u8] = br#"{"test": 2432232314}"#;
    const SIG_A: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const SECRET_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID_B: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS_B: u64 = 1_649_367_553;
    const BODY_B: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIG_B: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets
                .iter()
                .map(|s| SigningSecret::parse(s).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn headers_a(sig: &str) -> SignatureHeaders {
        SignatureHeaders::svix(ID_A, &TS_A.to_string(), sig)
    }

    #[test]
    fn known_vectors_sign_and_verify() {
        let a = SigningSecret::parse(SECRET_A).unwrap();
        assert_eq!(a.sign(ID_A, TS_A, BODY_A), SIG_A);
        let b = SigningSecret::parse(SECRET_B).unwrap();
        assert_eq!(b.sign(ID_B, TS_B, BODY_B), SIG_B);

        let d = verifier(&[SECRET_A])
            .verify_secs(&headers_a(SIG_A), BODY_A, TS_A)
            .unwrap();
        assert_eq!(d.operation_id(), ID_A);
        assert_eq!(d.signed_at(), UnixMillis::from_secs(TS_A as i64));
        let hb = SignatureHeaders::svix(ID_B, &TS_B.to_string(), SIG_B);
        assert!(verifier(&[SECRET_B]).verify_secs(&hb, BODY_B, TS_B).is_ok());
    }

    #[test]
    fn webhook_family_verifies_alone() {
        let h = SignatureHeaders {
            webhook_id: Some(ID_A.into()),
            webhook_timestamp: Some(TS_A.to_string()),
            webhook_signature: Some(SIG_A.into()),
            ..Default::default()
        };
        assert!(verifier(&[SECRET_A]).verify_secs(&h, BODY_A, TS_A).is_ok());
    }

    #[test]
    fn families_are_never_mixed() {
        // svix-id present: the svix family is chosen and is incomplete.
        let h = SignatureHeaders {
            svix_id: Some(ID_A.into()),
            webhook_timestamp: Some(TS_A.to_string()),
            webhook_signature: Some(SIG_A.into()),
            ..Default::default()
        };
        assert_eq!(
            verifier(&[SECRET_A]).verify_secs(&h, BODY_A, TS_A),
            Err(VerifyError::MissingHeaders)
        );
    }

    #[test]
    fn missing_headers() {
        let v = verifier(&[SECRET_A]);
        assert_eq!(
            v.verify_secs(&SignatureHeaders::default(), BODY_A, TS_A),
            Err(VerifyError::MissingHeaders)
        );
        let mut h = headers_a(SIG_A);
        h.svix_signature = None;
        assert_eq!(
            v.verify_secs(&h, BODY_A, TS_A),
            Err(VerifyError::MissingHeaders)
        );
        assert!(SignatureHeaders::default().is_empty());
        assert!(!h.is_empty());
    }

    #[test]
    fn id_rules() {
        let v = verifier(&[SECRET_A]);
        let s = SigningSecret::parse(SECRET_A).unwrap();
        for bad in ["", "msg.1", "msg 1", "msg/1", "ünïcode", &"a".repeat(257)] {
            let h = SignatureHeaders::svix(bad, &TS_A.to_string(), &s.sign(bad, TS_A, BODY_A));
            assert_eq!(
                v.verify_secs(&h, BODY_A, TS_A),
                Err(VerifyError::InvalidId),
                "{bad:?}"
            );
        }
        let long = "a".repeat(256);
        let h = SignatureHeaders::svix(&long, &TS_A.to_string(), &s.sign(&long, TS_A, BODY_A));
        assert!(v.verify_secs(&h, BODY_A, TS_A).is_ok());
    }

    #[test]
    fn timestamp_rules() {
        let v = verifier(&[SECRET_A]);
        for bad in [
            "",
            "+1614265330",
            "-1614265330",
            "01614265330",
            "1614265330.0",
            " 1614265330",
            "16142653３0",
            "99999999999999999999",
        ] {
            let h = SignatureHeaders::svix(ID_A, bad, SIG_A);
            assert_eq!(
                v.verify_secs(&h, BODY_A, TS_A),
                Err(VerifyError::InvalidTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        let s = SigningSecret::parse(SECRET_A).unwrap();
        let v = verifier(&[SECRET_A]);
        let check = |ts: u64, now: u64| {
            let h = SignatureHeaders::svix(ID_A, &ts.to_string(), &s.sign(ID_A, ts, BODY_A));
            v.verify_secs(&h, BODY_A, now)
        };
        assert!(check(TS_A, TS_A + 300).is_ok());
        assert!(check(TS_A, TS_A - 300).is_ok());
        assert_eq!(
            check(TS_A, TS_A + 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            check(TS_A, TS_A - 301),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            check(u64::MAX, 0),
            Err(VerifyError::TimestampOutOfTolerance)
        );
        assert_eq!(
            check(0, u64::MAX),
            Err(VerifyError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn signature_rules() {
        let v = verifier(&[SECRET_A]);
        let reject = |sig: &str| {
            assert_eq!(
                v.verify_secs(&headers_a(sig), BODY_A, TS_A),
                Err(VerifyError::InvalidSignature),
                "{sig:?}"
            )
        };
        reject("v1,"); // CVE-2024-21491
        reject("v1, ");
        reject("");
        reject("v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        reject("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        reject("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        reject("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"); // unpadded
        reject("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF="); // non-canonical trailing bits
        reject("v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE="); // url-safe alphabet
        reject("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=="); // too long
        reject("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); // well-formed, wrong
                                                                   // a joined duplicate header leaves a trailing comma on the matching entry
        reject(&format!(
            "{SIG_A}, v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ));
    }

    #[test]
    fn any_v1_entry_may_match_and_other_versions_are_skipped() {
        let v = verifier(&[SECRET_A]);
        let sig = format!(
            "v2,xyz v1a,{} v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {SIG_A}",
            &SIG_A[3..]
        );
        assert!(v.verify_secs(&headers_a(&sig), BODY_A, TS_A).is_ok());
    }

    #[test]
    fn too_many_entries_are_rejected_even_if_one_matches() {
        let v = verifier(&[SECRET_A]);
        let mut sig =
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(MAX_SIGNATURE_ENTRIES);
        sig.push_str(SIG_A);
        assert_eq!(
            v.verify_secs(&headers_a(&sig), BODY_A, TS_A),
            Err(VerifyError::InvalidSignature)
        );
        let mut ok =
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(MAX_SIGNATURE_ENTRIES - 1);
        ok.push_str(SIG_A);
        assert!(v.verify_secs(&headers_a(&ok), BODY_A, TS_A).is_ok());
    }

    #[test]
    fn any_configured_secret_may_match() {
        let v = verifier(&[SECRET_B, SECRET_A]);
        assert!(v.verify_secs(&headers_a(SIG_A), BODY_A, TS_A).is_ok());
        let only_b = verifier(&[SECRET_B]);
        assert_eq!(
            only_b.verify_secs(&headers_a(SIG_A), BODY_A, TS_A),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn body_id_and_timestamp_are_covered() {
        let v = verifier(&[SECRET_A]);
        assert_eq!(
            v.verify_secs(&headers_a(SIG_A), br#"{"test": 2432232315}"#, TS_A),
            Err(VerifyError::InvalidSignature)
        );
        let h = SignatureHeaders::svix("msg_p5jXN8AQM9LWM0D4loKWxJel", &TS_A.to_string(), SIG_A);
        assert_eq!(
            v.verify_secs(&h, BODY_A, TS_A),
            Err(VerifyError::InvalidSignature)
        );
        let h = SignatureHeaders::svix(ID_A, &(TS_A + 1).to_string(), SIG_A);
        assert_eq!(
            v.verify_secs(&h, BODY_A, TS_A),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn secret_parsing() {
        assert!(SigningSecret::parse(SECRET_A).is_ok());
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::MissingPrefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").unwrap_err(),
            SecretError::NotBase64
        );
        assert_eq!(
            SigningSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAA").unwrap_err(),
            SecretError::BadLength
        ); // 15 bytes
        assert_eq!(
            SigningSecret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 65]))).unwrap_err(),
            SecretError::BadLength
        );
        assert!(SigningSecret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 64]))).is_ok());
        assert_eq!(
            format!("{:?}", SigningSecret::parse(SECRET_A).unwrap()),
            "[redacted]"
        );
    }

    #[test]
    fn unsigned_operation_id_is_a_body_digest() {
        let d = Verifier::accept_unsigned(b"{}".to_vec());
        // sha256("{}") = 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
        assert_eq!(
            d.operation_id(),
            "unsigned_44136fa355b3678a1146ad16f7e8649e"
        );
        assert!(!d.is_signed());
    }
}
