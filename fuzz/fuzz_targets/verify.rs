//! Fuzzes signature verification and the whole pure request path
//! (`relay::process`: verify, then parse and map) on arbitrary headers and
//! bodies.
//!
//! Input: `flags id \n timestamp \n signature \n body` (header bytes are
//! read as lossy UTF-8, as a runtime hands them over; a missing line is an
//! absent header). Flags: bit 0 the `webhook-*` family instead of `svix-*`;
//! bit 1 append the correct signature, so the fuzzer gets past the HMAC into
//! the mapper; bit 2 set the clock to the timestamp header; bit 3 allow
//! unsigned deliveries; bits 4, 5, 6 drop the id, timestamp, signature header.
//!
//! Admission (`query_of`, `admit`) runs too, on the id line as a URL and
//! the timestamp line as a `content-length`.
//!
//! Checked beyond "no panic": nothing verifies without the key; what
//! verifies has a valid id, a canonical timestamp within the tolerance and
//! at most 16 entries; every forwarded command meets the contract.

#![no_main]

use clerk_sync::config::Config;
use clerk_sync::event::Mapped;
use clerk_sync::log::RequestLog;
use clerk_sync::relay::{self, Reply};
use clerk_sync::verify::{
    SignatureHeaders, SigningSecret, Verifier, MAX_ID_LEN, MAX_SIGNATURE_ENTRIES, TOLERANCE_SECS,
};
use clerk_sync::UnixMillis;
use clerk_sync_testkit::svix;
use libfuzzer_sys::fuzz_target;

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const FIXED_NOW: u64 = 1_700_000_000;

fn config(allow_unsigned: bool) -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => format!("{SECRET_A} {SECRET_B}"),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            "ALLOW_UNSIGNED_WEBHOOKS" => allow_unsigned.to_string(),
            _ => return None,
        })
    })
    .expect("the fuzz configuration is valid")
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |&b| b == b'\n');
    let text = |p: Option<&[u8]>| p.map(|b| String::from_utf8_lossy(b).into_owned());
    let id = text(parts.next()).filter(|_| flags & 0x10 == 0);
    let timestamp = text(parts.next()).filter(|_| flags & 0x20 == 0);
    let mut signature = text(parts.next()).filter(|_| flags & 0x40 == 0);
    let body = parts.next().unwrap_or_default();

    let canonical_ts = timestamp
        .as_deref()
        .filter(|t| !t.starts_with('0') || t.len() == 1)
        .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok());
    let signed = flags & 2 != 0 && flags & 0x40 == 0;
    if signed {
        let good = svix::sign(
            SECRET_B,
            id.as_deref().unwrap_or(""),
            canonical_ts.unwrap_or(0),
            body,
        );
        signature = Some(match signature {
            Some(s) => format!("{s} {good}"),
            None => good,
        });
    }
    let now = match (flags & 4 != 0, canonical_ts) {
        (true, Some(ts)) => ts,
        _ => FIXED_NOW,
    };
    // The relay's clock is Unix milliseconds (saturating, as a clock far out would).
    let now_ms = i64::try_from(now).unwrap_or(i64::MAX).saturating_mul(1000);
    let (i, t, s) = (id.clone(), timestamp.clone(), signature.clone());
    let headers = if flags & 1 == 0 {
        SignatureHeaders {
            svix_id: i,
            svix_timestamp: t,
            svix_signature: s,
            ..Default::default()
        }
    } else {
        SignatureHeaders {
            webhook_id: i,
            webhook_timestamp: t,
            webhook_signature: s,
            ..Default::default()
        }
    };

    let verifier = Verifier::new(vec![
        SigningSecret::parse(SECRET_A).unwrap(),
        SigningSecret::parse(SECRET_B).unwrap(),
    ])
    .unwrap();
    if let Ok(d) = verifier.verify(&headers, body.to_vec(), UnixMillis(now_ms)) {
        assert!(signed, "verified without the key");
        let id = id.as_deref().unwrap();
        assert_eq!(d.operation_id(), id);
        assert!((1..=MAX_ID_LEN).contains(&id.len()));
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let ts = canonical_ts.expect("verified with a non-canonical timestamp");
        assert_eq!(
            d.signed_at(),
            Some(UnixMillis(i64::try_from(ts).unwrap() * 1000))
        );
        assert_eq!(d.body(), body, "the delivery owns the verified bytes");
        assert!(ts.abs_diff(now) <= TOLERANCE_SECS);
        let entries = signature
            .unwrap()
            .split(' ')
            .filter(|e| !e.is_empty())
            .count();
        assert!(entries <= MAX_SIGNATURE_ENTRIES);
    }

    // The whole pure path, with and without unsigned deliveries allowed;
    // admission reads the id line as a URL and the timestamp line as a length.
    let config = config(flags & 8 != 0);
    let _ = relay::admit(
        &config,
        relay::query_of(id.as_deref().unwrap_or("")),
        timestamp.as_deref(),
    );
    let now_ms = UnixMillis(now_ms.saturating_add(123));
    let mut log = RequestLog::new("POST", "/webhook");
    let reply = match relay::process(&config, &headers, body.to_vec(), now_ms) {
        Ok(p) => {
            log.processed(&p);
            match p.mapped {
                Mapped::Forward(c) => {
                    assert_eq!(
                        c.validate(),
                        Ok(()),
                        "forwarded a command the API must reject"
                    );
                    let f = relay::forward_request(&config, &c);
                    let back: clerk_sync::Command =
                        serde_json::from_slice(&f.body).expect("the command is JSON");
                    assert_eq!(back, c);
                    log.finish(Ok("forwarded"), 200);
                    Reply::forwarded(&c)
                }
                Mapped::Ignored { .. } => {
                    log.finish(Ok("ignored"), 200);
                    Reply::ignored()
                }
            }
        }
        Err(e) => {
            assert!(e.status() >= 400);
            let reply = Reply::error(&e, "/webhook");
            log.finish(Err(&e), reply.status);
            reply
        }
    };
    let line = log.to_json();
    assert!(!line.contains(SECRET_A) && !line.contains(SECRET_B));
    let _: serde_json::Value = serde_json::from_str(&reply.body).expect("the reply is JSON");
});
