//! Properties of the pure core on generated input (proptest; part of the
//! plain `cargo test`): what is signed the Svix way verifies and any single
//! changed byte fails; the verifier and the mapper never panic, whatever the
//! headers and bytes; a huge signature header with several secrets costs one
//! HMAC per secret (measured in CPU time, not elapsed time); and the inputs
//! fuzzing found stay fixed.

use std::time::Duration;

use clerk_sync::config::Config;
use clerk_sync::event::{map_event, parse_envelope, ClerkEvent, EventError, Mapped};
use clerk_sync::relay;
use clerk_sync::verify::{
    SignatureHeaders, SigningSecret, Verifier, VerifyError, MAX_SIGNATURE_ENTRIES, TOLERANCE_SECS,
};
use clerk_sync::UnixMillis;
use clerk_sync_testkit::process::thread_cpu_time;
use clerk_sync_testkit::svix::sign;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use crate::fixtures;
use crate::signing::{at_secs, svix_headers, unsigned};

const SECRETS: [&str; 3] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
];

fn secret(i: usize) -> SigningSecret {
    SigningSecret::parse(SECRETS[i]).unwrap()
}

fn all_secrets() -> Verifier {
    Verifier::new((0..SECRETS.len()).map(secret).collect()).unwrap()
}

fn config(allow_unsigned: bool) -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => SECRETS.join(" "),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            "ALLOW_UNSIGNED_WEBHOOKS" => allow_unsigned.to_string(),
            _ => return None,
        })
    })
    .unwrap()
}

/// A different byte at `at`: anything for the body, ASCII for a header
/// (headers reach the relay as strings).
fn flip(bytes: &mut [u8], at: usize, by: u8, ascii: bool) {
    let b = bytes[at];
    bytes[at] = if ascii {
        (b + 1 + by % 127) % 128
    } else {
        b.wrapping_add(1 + by % 255)
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signed_verifies_and_any_single_changed_byte_fails(
        body in vec(any::<u8>(), 0..2048),
        id in "[A-Za-z0-9_-]{1,256}",
        ts in 1_000_000_000u64..=9_999_999_999,
        skew in -(TOLERANCE_SECS as i64)..=TOLERANCE_SECS as i64,
        signer in 0..SECRETS.len(),
        field in 0..4usize,
        at in any::<Index>(),
        by in any::<u8>(),
    ) {
        let now = at_secs(ts.checked_add_signed(skew).unwrap());
        let signature = sign(SECRETS[signer], &id, ts, &body);
        let verifier = all_secrets();
        let headers = svix_headers(&id, &ts.to_string(), &signature);
        let d = verifier.verify(&headers, body.clone(), now).unwrap();
        prop_assert_eq!(d.operation_id(), id.as_str());
        prop_assert_eq!(d.signed_at(), Some(at_secs(ts)));
        prop_assert_eq!(d.body(), body.as_slice());

        let mut parts = [body.clone(), id.clone().into_bytes(), ts.to_string().into_bytes(), signature.into_bytes()];
        // An empty body has no byte to change: change the id instead.
        let field = if parts[field].is_empty() { 1 } else { field };
        let i = at.index(parts[field].len());
        flip(&mut parts[field], i, by, field != 0);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let changed = svix_headers(&text(&parts[1]), &text(&parts[2]), &text(&parts[3]));
        prop_assert!(verifier.verify(&changed, parts[0].clone(), now).is_err());

        // One byte more or less in the body fails too.
        let mut longer = body.clone();
        longer.push(by);
        prop_assert_eq!(verifier.verify(&headers, longer, now), Err(VerifyError::InvalidSignature));
        if let Some((_, shorter)) = body.split_last() {
            prop_assert_eq!(verifier.verify(&headers, shorter.to_vec(), now), Err(VerifyError::InvalidSignature));
        }
    }

    #[test]
    fn a_valid_signature_outside_the_window_fails(
        ts in 1_000_000_000u64..=9_999_999_999,
        beyond in (TOLERANCE_SECS + 1)..=10 * TOLERANCE_SECS,
        late in any::<bool>(),
    ) {
        let body = b"{}";
        let headers = svix_headers("msg_1", &ts.to_string(), &sign(SECRETS[0], "msg_1", ts, body));
        let now = if late { ts + beyond } else { ts - beyond };
        prop_assert_eq!(all_secrets().verify(&headers, body.to_vec(), at_secs(now)), Err(VerifyError::TimestampOutOfTolerance));
    }

    #[test]
    fn the_valid_entry_counts_only_within_the_cap(
        entries in 1usize..=40,
        at in any::<Index>(),
    ) {
        let body = b"{}";
        let position = at.index(entries);
        let good = sign(SECRETS[1], "msg_1", 1_700_000_000, body);
        let header: Vec<String> = (0..entries)
            .map(|i| if i == position { good.clone() } else { format!("v1,{}", "A".repeat(43) + "=") })
            .collect();
        let headers = svix_headers("msg_1", "1700000000", &header.join(" "));
        let result = all_secrets().verify(&headers, body.to_vec(), at_secs(1_700_000_000));
        if entries <= MAX_SIGNATURE_ENTRIES {
            prop_assert!(result.is_ok());
        } else {
            prop_assert_eq!(result, Err(VerifyError::InvalidSignature));
        }
    }
}

/// Header values as a runtime may hand them over: anything, digits, near
/// misses of each header's grammar, and long ones.
fn header_value() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.85,
        prop_oneof![
            any::<String>(),
            "[0-9]{0,25}",
            "[ -~]{0,80}",
            "msg_[A-Za-z0-9_.-]{0,300}",
            "((v1|v2|v1a)?,?[A-Za-z0-9+/=_-]{0,46}[ ,]{0,2}){0,40}",
            (0usize..70_000).prop_map(|n| "v1,".repeat(n / 3)),
        ],
    )
}

/// JSON shaped like Clerk's, with every field able to be the wrong type.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(json!("user.created")),
        Just(json!("verified")),
    ];
    let key = prop_oneof![
        Just("id".to_string()),
        Just("email_addresses".to_string()),
        Just("email_address".to_string()),
        Just("primary_email_address_id".to_string()),
        Just("verification".to_string()),
        Just("status".to_string()),
        Just("first_name".to_string()),
        Just("created_at".to_string()),
        Just("updated_at".to_string()),
        Just("external_id".to_string()),
        any::<String>(),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies: raw bytes, Clerk-like envelopes, and fixtures with bytes changed.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let event_type = prop_oneof![
        Just(json!("user.created")),
        Just(json!("user.updated")),
        Just(json!("user.deleted")),
        any::<String>().prop_map(Value::String),
        json_value(),
    ];
    let envelope = (
        event_type,
        proptest::option::of(json_value()),
        proptest::option::of(prop_oneof![
            any::<i64>().prop_map(Value::from),
            json_value()
        ]),
        any::<bool>(),
    )
        .prop_map(|(t, data, timestamp, with_id)| {
            let mut data = data.unwrap_or(Value::Null);
            if let (true, Value::Object(m)) = (with_id, &mut data) {
                m.insert("id".into(), json!("user_1"));
            }
            let mut e = json!({"type": t, "data": data});
            if let Some(ts) = timestamp {
                e["timestamp"] = ts;
            }
            serde_json::to_vec(&e).unwrap()
        });
    let mutated_fixture = (
        0..fixtures::ALL.len(),
        vec((any::<Index>(), any::<u8>()), 1..8),
    )
        .prop_map(|(f, changes)| {
            let mut b = fixtures::load(fixtures::ALL[f]);
            for (at, byte) in changes {
                let i = at.index(b.len());
                b[i] = byte;
            }
            b
        });
    prop_oneof![vec(any::<u8>(), 0..4096), envelope, mutated_fixture]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_verifier_never_panics(
        headers in proptest::array::uniform6(header_value()),
        body in vec(any::<u8>(), 0..512),
        now in any::<i64>(),
        allow_unsigned in any::<bool>(),
    ) {
        let [a, b, c, d, e, f] = headers;
        let h = SignatureHeaders {
            svix_id: a,
            svix_timestamp: b,
            svix_signature: c,
            webhook_id: d,
            webhook_timestamp: e,
            webhook_signature: f,
        };
        let verified = all_secrets().verify(&h, body.clone(), UnixMillis(now));
        // Nothing here is signed: only an allowed unsigned delivery gets through.
        prop_assert!(verified.is_err());
        let processed = relay::process(&config(allow_unsigned), &h, body, UnixMillis(now));
        if let Ok(p) = processed {
            prop_assert!(allow_unsigned && h.is_empty() && !p.delivery.is_signed());
        }
    }

    #[test]
    fn the_mapper_never_panics_and_forwards_only_valid_commands(
        body in body(),
        now_ms in prop_oneof![any::<i64>(), 0i64..=253_402_300_799_999],
    ) {
        let envelope = parse_envelope(&body);
        if let Ok(e) = &envelope {
            let _ = ClerkEvent::from_envelope(e);
        }
        let delivery = unsigned(&body);
        match map_event(&delivery, UnixMillis(now_ms)) {
            Ok(Mapped::Forward(c)) => {
                prop_assert_eq!(c.validate(), Ok(()));
                let back: clerk_sync::Command = serde_json::from_slice(&c.to_json()).unwrap();
                prop_assert_eq!(back, c);
            }
            Ok(Mapped::Ignored { event_type }) => prop_assert_eq!(&event_type, &envelope.unwrap().event_type),
            Err(e) => prop_assert!(envelope.is_err() || matches!(e, EventError::InvalidPayload(_))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Forward,
    Ignore,
    /// Any 400 (`invalid_json` where serde_json's depth limit of 128 trips,
    /// `invalid_payload` where the shape is wrong before the depth matters).
    Reject,
}

proptest! {
    #[test]
    fn admission_needs_the_query_secret_exactly_once(
        before in "[a-z0-9=&]{0,40}",
        after in "[a-z0-9=&#]{0,40}",
        path in "[ -$&-~]{0,40}",
        secret_times in 0usize..3,
        length in proptest::option::of(prop_oneof![any::<u64>().prop_map(|n| n.to_string()), any::<String>()]),
    ) {
        let config = config(false);
        let mut url = format!("https://relay.example/{path}?{before}");
        for _ in 0..secret_times {
            url.push_str("&secret=q");
        }
        url.push('&');
        url.push_str(&after);
        let query = relay::query_of(&url);
        let admitted = relay::admit(&config, query, length.as_deref());
        // Anything generated around it may add a `secret` of its own.
        let others = format!("{path}{before}{after}").contains("secret");
        if secret_times != 1 && !others {
            prop_assert_eq!(&admitted, &Err(clerk_sync::RelayError::Unauthorized));
        }
        if secret_times == 1 && !others && !path.contains(['?', '#']) && !before.contains('#') {
            let too_long = length
                .as_deref()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .is_some_and(|n| n > u64::from(config.max_body_bytes));
            prop_assert_eq!(admitted.is_ok(), !too_long);
        }
    }
}

/// Runs `f` on a thread with the WASM stack's size (1 MiB), so unbounded
/// recursion shows up here as it would in the Worker.
fn on_wasm_sized_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic, no stack overflow");
}

#[test]
fn deep_nesting_and_huge_strings_are_answered_not_crashed_on() {
    on_wasm_sized_stack(|| {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        let obj = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        let huge = "é".repeat(2_000_000);
        use Want::*;
        let cases = [
            (deep.clone(), Reject),
            ("[".repeat(200_000), Reject),
            (obj.clone(), Reject),
            (
                format!(r#"{{"type":"user.deleted","data":{deep}}}"#),
                Reject,
            ),
            (format!(r#"{{"type":"user.deleted","data":{obj}}}"#), Reject),
            (
                format!(r#"{{"type":"user.deleted","data":{{"id":"u","x":{deep}}}}}"#),
                Forward,
            ),
            (
                format!(r#"{{"type":"user.deleted","data":{{"id":"u","x":{obj}}}}}"#),
                Reject,
            ),
            (
                format!(
                    r#"{{"type":"user.created","data":{{"id":"u","email_addresses":{deep}}}}}"#
                ),
                Reject,
            ),
            (
                format!(r#"{{"type":"user.deleted","timestamp":{deep},"data":{{"id":"u"}}}}"#),
                Forward,
            ),
            (
                format!(r#"{{"type":"{huge}","data":{{"id":"u"}}}}"#),
                Ignore,
            ),
            (
                format!(r#"{{"type":"user.created","data":{{"id":"u","first_name":"{huge}"}}}}"#),
                Forward,
            ),
            (
                format!(r#"{{"type":"user.created","data":{{"id":"{huge}"}}}}"#),
                Forward,
            ),
        ];
        for (body, want) in cases {
            let got = map_event(&unsigned(body.as_bytes()), UnixMillis(1_700_000_000_000));
            match (&got, want) {
                (Ok(Mapped::Forward(_)), Forward)
                | (Ok(Mapped::Ignored { .. }), Ignore)
                | (Err(_), Reject) => {}
                (got, want) => panic!("{body:.60}…: got {got:?}, want {want:?}"),
            }
        }
        // A 4 MB body through the verifier: one pass, no copy.
        let big = huge.as_bytes();
        let h = svix_headers(
            "msg_big",
            "1700000000",
            &sign(SECRETS[0], "msg_big", 1_700_000_000, big),
        );
        assert!(all_secrets()
            .verify(&h, big.to_vec(), at_secs(1_700_000_000))
            .is_ok());
    });
}

#[test]
fn any_byte_that_breaks_utf8_in_a_fixture_is_invalid_json() {
    for f in fixtures::ALL {
        let body = fixtures::load(f);
        for at in 0..body.len() {
            let mut b = body.clone();
            b[at] = 0xff;
            let got = map_event(&unsigned(&b), UnixMillis(1_700_000_000_000));
            assert_eq!(got.unwrap_err(), EventError::InvalidJson, "{f} byte {at}");
        }
    }
}

/// Runs `f` and adds the CPU time this thread spent in it to `times`.
/// Callers interleave the cases and keep each one's least: CPU time does not
/// grow while a busy machine keeps the thread waiting, and what is left
/// (caches, frequency) falls on every case alike.
fn cpu_into(times: &mut Vec<Duration>, f: impl FnOnce()) {
    let start = thread_cpu_time();
    f();
    times.push(thread_cpu_time().saturating_sub(start));
}

#[test]
fn a_huge_signature_header_costs_one_hmac_per_secret() {
    // Eight secrets (a rotation gone wild) and a 256 KiB body (the default
    // limit) make one HMAC easy to see.
    let secrets: Vec<String> = (0..8u8)
        .map(|i| format!("whsec_{}", base64_std(&[i + 1; 32])))
        .collect();
    let parsed = |s: &[String]| -> Vec<SigningSecret> {
        s.iter().map(|s| SigningSecret::parse(s).unwrap()).collect()
    };
    let eight = Verifier::new(parsed(&secrets)).unwrap();
    let one = Verifier::new(parsed(&secrets[..1])).unwrap();
    let body = vec![b'x'; 256 * 1024];
    let ts = 1_700_000_000u64;
    let now = at_secs(ts);
    let good = sign(&secrets[7], "msg_1", ts, &body);
    let wrong = format!("v1,{}=", "A".repeat(43));
    let header = |entries: usize, last: &str| {
        let mut v = vec![wrong.as_str(); entries - 1];
        v.push(last);
        svix_headers("msg_1", &ts.to_string(), &v.join(" "))
    };

    let thousands = header(5_000, &good);
    let (h1, h16) = (header(1, &wrong), header(MAX_SIGNATURE_ENTRIES, &good));
    let (mut t_many, mut t1, mut t16, mut t1_one) = (vec![], vec![], vec![], vec![]);
    for _ in 0..7 {
        // Thousands of entries: rejected, the valid one last notwithstanding.
        cpu_into(&mut t_many, || {
            assert_eq!(
                eight.verify(&thousands, body.clone(), now),
                Err(VerifyError::InvalidSignature)
            )
        });
        cpu_into(&mut t1, || {
            assert!(eight.verify(&h1, body.clone(), now).is_err())
        });
        cpu_into(&mut t16, || {
            assert!(eight.verify(&h16, body.clone(), now).is_ok())
        });
        cpu_into(&mut t1_one, || {
            assert!(one.verify(&h1, body.clone(), now).is_err())
        });
    }
    let min = |v: &[Duration]| v.iter().min().copied().unwrap().as_secs_f64();
    let (t_many, t1, t16, t1_one) = (min(&t_many), min(&t1), min(&t16), min(&t1_one));
    eprintln!("verify, 256 KiB body, CPU time: 8 secrets x 5000 entries {t_many:.4}s, x 1 entry {t1:.4}s, x 16 entries {t16:.4}s, 1 x 1 {t1_one:.4}s");
    // Thousands of entries are refused before any HMAC: less than the eight
    // HMACs of one entry (about a thousandth of them, in fact).
    assert!(
        t_many < t1 / 2.0,
        "5000 entries cost {:.2}x one entry",
        t_many / t1
    );
    // One HMAC per entry would make 16 entries cost 16 times one entry.
    assert!(t16 < 4.0 * t1, "16 entries cost {:.1}x one entry", t16 / t1);
    // The measure sees HMACs: eight secrets cost about eight times one.
    assert!(
        t1 > 3.0 * t1_one,
        "8 secrets cost only {:.1}x one secret",
        t1 / t1_one
    );
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Inputs that fuzzing (and the bad-input catalogue) found, kept as they were found.
#[test]
fn fuzz_findings_stay_fixed() {
    let mapped = |b: &[u8]| map_event(&unsigned(b), UnixMillis(0));
    // envelope target, first run: a user event with an empty id was forwarded
    // (the main API must reject it: a delivery retried for days).
    let empty_id = br#"{"type":"user.created","data":{"id":"","email_addresses":[{"id":"a","email_address":"a@x","verification":{"status":"verified"}}],"primary_email_address_id":"a"}}"#;
    assert!(matches!(
        mapped(empty_id),
        Err(EventError::InvalidPayload(_))
    ));
    // envelope target, second run: invalid UTF-8 in a field nobody reads was
    // accepted (serde_json skips it unchecked).
    let ignored_utf8 = std::fs::read(format!(
        "{}/fuzz/seeds/envelope/regression_invalid_utf8_in_ignored_key.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(mapped(&ignored_utf8).unwrap_err(), EventError::InvalidJson);
    // bad-input catalogue: serde reads a struct from an array, so an array in
    // the envelope's field order was forwarded.
    for array in [
        &br#"["user.deleted",{"id":"user_1"}]"#[..],
        br#"{"type":"user.deleted","data":["user_1"]}"#,
    ] {
        assert!(matches!(mapped(array), Err(EventError::InvalidPayload(_))));
    }
}
