//! Fuzzes envelope parsing and mapping (`parse_envelope`,
//! `ClerkEvent::from_envelope`, `map_event`) on arbitrary body bytes: the
//! fixtures are the seeds. The body is mapped twice, as an unsigned delivery
//! and as one signed at a fixed time, so both `occurred_at` fallbacks run.
//!
//! Checked beyond "no panic": the three steps agree with each other; a
//! forwarded command comes from an object with object `data`, meets the
//! contract, names the envelope's type and `data.id`, and round-trips
//! through JSON.

#![no_main]

use clerk_sync::config::Config;
use clerk_sync::event::{map_event, parse_envelope, ClerkEvent, Mapped};
use clerk_sync::verify::{SignatureHeaders, SigningSecret, Verifier};
use clerk_sync::{Command, UnixMillis};
use clerk_sync_testkit::svix;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIGNED_AT: u64 = 1_700_000_000;
const NOW: UnixMillis = UnixMillis(1_700_000_000_123);

/// Allows unsigned deliveries: the only way to one is `Config::verify`.
fn unsigned_config() -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => SECRET.into(),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            "ALLOW_UNSIGNED_WEBHOOKS" => "true".into(),
            _ => return None,
        })
    })
    .expect("the fuzz configuration is valid")
}

fuzz_target!(|body: &[u8]| {
    let secret = SigningSecret::parse(SECRET).unwrap();
    let id = "msg_fuzz";
    let headers = SignatureHeaders {
        svix_id: Some(id.into()),
        svix_timestamp: Some(SIGNED_AT.to_string()),
        svix_signature: Some(svix::sign(SECRET, id, SIGNED_AT, body)),
        ..SignatureHeaders::default()
    };
    let signed = Verifier::new(vec![secret])
        .unwrap()
        .verify(
            &headers,
            body.to_vec(),
            UnixMillis::from_secs(SIGNED_AT as i64).unwrap(),
        )
        .expect("signed just now");
    let unsigned = unsigned_config()
        .verify(&SignatureHeaders::default(), body.to_vec(), NOW)
        .expect("unsigned deliveries are allowed");

    let envelope = parse_envelope(body);
    let event = envelope
        .as_ref()
        .map_err(|e| *e)
        .and_then(ClerkEvent::from_envelope);
    for delivery in [&unsigned, &signed] {
        let mapped = map_event(delivery, NOW);
        match (&envelope, &event, &mapped) {
            (Err(e), _, Err(m)) => assert_eq!(e, m),
            (Err(_), _, Ok(_)) => panic!("mapped a body whose envelope did not parse"),
            (Ok(_), Err(e), Err(m)) => assert_eq!(e, m),
            (Ok(_), Err(_), Ok(_)) => panic!("mapped an event that did not parse"),
            (Ok(env), Ok(ev), Ok(Mapped::Ignored { event_type })) => {
                assert!(matches!(ev, ClerkEvent::Other { .. }));
                assert_eq!(event_type, &env.event_type);
            }
            (Ok(env), Ok(ev), Ok(Mapped::Forward(c))) => {
                let clerk_id = match ev {
                    ClerkEvent::UserUpserted { user, .. } => &user.id,
                    ClerkEvent::UserDeleted(d) => &d.id,
                    ClerkEvent::Other { .. } => panic!("forwarded an ignored type"),
                };
                assert_eq!(&c.clerk_id, clerk_id);
                assert!(
                    std::str::from_utf8(body).is_ok(),
                    "forwarded a body that is not UTF-8"
                );
                assert!(
                    body.trim_ascii_start().starts_with(b"{"),
                    "forwarded a non-object"
                );
                type Fields<'a> = BTreeMap<String, &'a RawValue>;
                if let Ok(fields) = serde_json::from_slice::<Fields<'_>>(body) {
                    let data = fields["data"].get();
                    assert!(data.starts_with('{'), "forwarded non-object data");
                }
                assert_eq!(c.event_type, env.event_type);
                assert_eq!(c.operation_id, delivery.operation_id());
                assert_eq!(
                    c.validate(),
                    Ok(()),
                    "forwarded a command the API must reject"
                );
                let back: Command = serde_json::from_slice(&c.to_json()).expect("command JSON");
                assert_eq!(&back, c);
            }
            // A valid event may still fail mapping (a time out of range).
            (Ok(_), Ok(_), Err(_)) => {}
        }
    }
});
