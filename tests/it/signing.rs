//! Deliveries for the native tests, built only through the relay's public
//! API: signed by the test kit's own signer (independent of the relay's
//! verifier), or unsigned through a configuration that allows it.

use clerk_sync::config::Config;
use clerk_sync::verify::SignatureHeaders;
use clerk_sync::{UnixMillis, VerifiedDelivery};
use clerk_sync_testkit::svix;

/// The three `svix-*` headers as the relay reads them.
pub fn svix_headers(id: &str, timestamp: &str, signature: &str) -> SignatureHeaders {
    SignatureHeaders {
        svix_id: Some(id.into()),
        svix_timestamp: Some(timestamp.into()),
        svix_signature: Some(signature.into()),
        ..SignatureHeaders::default()
    }
}

/// The headers Svix would send for this message, signed with `secret`.
pub fn signed(secret: &str, id: &str, timestamp_secs: u64, body: &[u8]) -> SignatureHeaders {
    svix_headers(
        id,
        &timestamp_secs.to_string(),
        &svix::sign(secret, id, timestamp_secs, body),
    )
}

/// Seconds as the relay's clock.
pub fn at_secs(secs: u64) -> UnixMillis {
    UnixMillis::from_secs(i64::try_from(secs).unwrap()).unwrap()
}

/// A configuration that accepts unsigned deliveries (`ALLOW_UNSIGNED_WEBHOOKS=true`).
fn unsigned_config() -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            "ALLOW_UNSIGNED_WEBHOOKS" => "true".into(),
            _ => return None,
        })
    })
    .unwrap()
}

/// `body` as an unsigned delivery: the only way to one is `Config::verify`
/// with no signature header, under a configuration that allows it.
pub fn unsigned(body: &[u8]) -> VerifiedDelivery {
    unsigned_config()
        .verify(&SignatureHeaders::default(), body.to_vec(), UnixMillis(0))
        .expect("unsigned deliveries are allowed here")
}
