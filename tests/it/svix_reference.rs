//! The `svix` crate as the reference, in both directions: what it signs the
//! relay verifies, and what the test kit's signer (which every other suite
//! signs with) signs, it verifies: byte for byte the same signature.

use clerk_sync::verify::{SignatureHeaders, SigningSecret, Verifier, VerifyError};
use clerk_sync_testkit::svix as testkit;
use http::HeaderMap;
use svix::webhooks::Webhook;

use crate::signing::{at_secs, svix_headers};

const SECRETS: [&str; 3] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    // 64 bytes
    "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==",
];

fn bodies() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"{}".to_vec(),
        br#"{"test": 2432232314}"#.to_vec(),
        "{\"name\":\"Zoë — 東京\"}".as_bytes().to_vec(),
        format!("{{\"big\":\"{}\"}}", "x".repeat(70_000)).into_bytes(),
    ];
    for f in crate::fixtures::ALL {
        v.push(crate::fixtures::load(f));
    }
    v
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ours(secret: &str) -> Verifier {
    Verifier::new(vec![SigningSecret::parse(secret).unwrap()]).unwrap()
}

#[test]
fn svix_signs_relay_verifies() {
    let ts = now();
    for secret in SECRETS {
        let reference = Webhook::new(secret).unwrap();
        for (n, body) in bodies().iter().enumerate() {
            let id = format!("msg_{n}_reference-Check");
            let sig = reference.sign(&id, ts as i64, body).unwrap();
            let headers = svix_headers(&id, &ts.to_string(), &sig);
            let delivery = ours(secret)
                .verify(&headers, body.clone(), at_secs(ts))
                .unwrap();
            assert_eq!(delivery.operation_id(), id);

            // The same signature under another secret, or over another body, fails.
            let other = if secret == SECRETS[0] {
                SECRETS[1]
            } else {
                SECRETS[0]
            };
            assert_eq!(
                ours(other).verify(&headers, body.clone(), at_secs(ts)),
                Err(VerifyError::InvalidSignature)
            );
            let mut tampered = body.clone();
            tampered.push(b' ');
            assert_eq!(
                ours(secret).verify(&headers, tampered, at_secs(ts)),
                Err(VerifyError::InvalidSignature)
            );
        }
    }
}

#[test]
fn testkit_signs_svix_verifies() {
    let ts = now();
    for secret in SECRETS {
        let reference = Webhook::new(secret).unwrap();
        for (n, body) in bodies().iter().enumerate() {
            let id = format!("msg_{n}");
            assert_eq!(
                testkit::sign(secret, &id, ts, body),
                reference.sign(&id, ts as i64, body).unwrap(),
                "the same signature as svix's"
            );
            for family in ["svix", "webhook"] {
                let mut h = HeaderMap::new();
                h.insert(
                    format!("{family}-id").parse::<http::HeaderName>().unwrap(),
                    id.parse().unwrap(),
                );
                h.insert(
                    format!("{family}-timestamp")
                        .parse::<http::HeaderName>()
                        .unwrap(),
                    ts.to_string().parse().unwrap(),
                );
                h.insert(
                    format!("{family}-signature")
                        .parse::<http::HeaderName>()
                        .unwrap(),
                    testkit::sign(secret, &id, ts, body).parse().unwrap(),
                );
                reference.verify(body, &h).unwrap();
            }
            // And svix rejects our signature over a different body.
            let mut h = HeaderMap::new();
            h.insert("svix-id", id.parse().unwrap());
            h.insert("svix-timestamp", ts.to_string().parse().unwrap());
            h.insert(
                "svix-signature",
                testkit::sign(secret, &id, ts, b"{\"other\":1}")
                    .parse()
                    .unwrap(),
            );
            assert!(reference.verify(body, &h).is_err());
        }
    }
}

#[test]
fn relay_is_stricter_where_svix_is_lenient() {
    // svix accepts a signature without padding-canonical checks and ids with dots;
    // the relay refuses ids that could make two messages share one MAC.
    let secret = SECRETS[0];
    let ts = now();
    let reference = Webhook::new(secret).unwrap();
    let id = "msg.1";
    let body = b"{}";
    let sig = reference.sign(id, ts as i64, body).unwrap();
    let mut h = HeaderMap::new();
    h.insert("svix-id", id.parse().unwrap());
    h.insert("svix-timestamp", ts.to_string().parse().unwrap());
    h.insert("svix-signature", sig.parse().unwrap());
    assert!(reference.verify(body, &h).is_ok());
    let ours_headers = svix_headers(id, &ts.to_string(), &sig);
    assert_eq!(
        ours(secret).verify(&ours_headers, body.to_vec(), at_secs(ts)),
        Err(VerifyError::InvalidId)
    );

    // Mixed families: svix takes what it finds; the relay refuses.
    let sig = reference.sign("msg_1", ts as i64, body).unwrap();
    let mut h = HeaderMap::new();
    h.insert("svix-id", "msg_1".parse().unwrap());
    h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    h.insert("webhook-signature", sig.parse().unwrap());
    assert!(reference.verify(body, &h).is_ok());
    let mixed = SignatureHeaders {
        svix_id: Some("msg_1".into()),
        webhook_timestamp: Some(ts.to_string()),
        webhook_signature: Some(sig),
        ..Default::default()
    };
    assert_eq!(
        ours(secret).verify(&mixed, body.to_vec(), at_secs(ts)),
        Err(VerifyError::MissingHeaders)
    );
}
