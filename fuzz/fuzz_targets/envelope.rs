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

use clerk_sync::event::{map_event, parse_envelope, ClerkEvent, Mapped};
use clerk_sync::verify::{SignatureHeaders, SigningSecret, Verifier};
use clerk_sync::Command;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIGNED_AT: u64 = 1_700_000_000;
const NOW_MS: i64 = 1_700_000_000_123;

fuzz_target!(|body: &[u8]| {
    let secret = SigningSecret::parse(SECRET).unwrap();
    let id = "msg_fuzz";
    let headers = SignatureHeaders::svix(
        id,
        &SIGNED_AT.to_string(),
        &secret.sign(id, SIGNED_AT, body),
    );
    let signed = Verifier::new(vec![secret])
        .unwrap()
        .verify(&headers, body, SIGNED_AT)
        .expect("signed just now");
    let unsigned = Verifier::accept_unsigned(body);

    let envelope = parse_envelope(body);
    let event = envelope
        .as_ref()
        .map_err(|e| *e)
        .and_then(ClerkEvent::from_envelope);
    for delivery in [&unsigned, &signed] {
        let mapped = map_event(body, delivery, NOW_MS);
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
