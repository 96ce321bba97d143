//! Native cost per delivery (`cargo bench --bench relay`), three ways over
//! the same signed bytes, in one run so that the ratios are side by side:
//!
//! - `relay`: the relay's core, `relay::process` (query-independent part:
//!   verify, parse, map) plus `Command::to_json`, i.e. everything but I/O;
//! - `svix_peer`: the `svix` crate's `verify_ignoring_timestamp` plus
//!   `serde_json::from_slice::<serde_json::Value>`, what a relay written on
//!   the reference crate would do at least;
//! - `hmac_floor`: one HMAC-SHA256 over `{id}.{timestamp}.{body}`, which no
//!   verifier can beat.
//!
//! Bodies: a 1 KB fixture, a 3 KB delivery (`benches/bodies/`: the captured
//! fixture with some public metadata) and the 64 KB large-metadata fixture;
//! the load test in workerd sends the same files.
//! `scripts/bench.sh` runs this several times and writes `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use clerk_sync::config::Config;
use clerk_sync::event::Mapped;
use clerk_sync::relay::process;
use clerk_sync::verify::SignatureHeaders;
use clerk_sync::UnixMillis;
use clerk_sync_testkit::svix as signer;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
const SIGNED_AT: u64 = 1_700_000_000;
const NOW: UnixMillis = UnixMillis(1_700_000_000_123);

fn read(path: &str) -> Vec<u8> {
    let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("1KB", read("tests/fixtures/docs_user_created.json")),
        ("3KB", read("benches/bodies/user_created_3kb.json")),
        ("64KB", read("tests/fixtures/large_user_updated.json")),
    ]
}

fn config() -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => SECRET.into(),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            _ => return None,
        })
    })
    .unwrap()
}

fn deliveries(c: &mut Criterion) {
    let config = config();
    let svix = svix::webhooks::Webhook::new(SECRET).unwrap();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        SECRET.trim_start_matches("whsec_"),
    )
    .unwrap();

    for (name, body) in cases() {
        let signature = signer::sign(SECRET, ID, SIGNED_AT, &body);
        let headers = SignatureHeaders {
            svix_id: Some(ID.into()),
            svix_timestamp: Some(SIGNED_AT.to_string()),
            svix_signature: Some(signature.clone()),
            ..SignatureHeaders::default()
        };
        let mut svix_headers = http::HeaderMap::new();
        svix_headers.insert("svix-id", ID.parse().unwrap());
        svix_headers.insert("svix-timestamp", SIGNED_AT.to_string().parse().unwrap());
        svix_headers.insert("svix-signature", signature.parse().unwrap());
        // Both sides must accept the delivery, or the comparison means nothing.
        assert!(svix.verify_ignoring_timestamp(&body, &svix_headers).is_ok());
        assert!(matches!(
            process(&config, &headers, body.clone(), NOW)
                .unwrap()
                .mapped,
            Mapped::Forward(_)
        ));

        let mut group = c.benchmark_group(format!("deliver_{name}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("relay", |b| {
            b.iter(|| {
                // The relay owns the bytes it verifies: the copy is part of a delivery.
                let processed = process(&config, &headers, black_box(&body).clone(), NOW).unwrap();
                match processed.mapped {
                    Mapped::Forward(command) => command.to_json(),
                    Mapped::Ignored { .. } => unreachable!(),
                }
            })
        });
        group.bench_function("svix_peer", |b| {
            b.iter(|| {
                svix.verify_ignoring_timestamp(black_box(&body), &svix_headers)
                    .unwrap();
                serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap()
            })
        });
        group.bench_function("hmac_floor", |b| {
            b.iter(|| {
                let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                mac.update(ID.as_bytes());
                mac.update(b".");
                mac.update(b"1700000000");
                mac.update(b".");
                mac.update(black_box(&body));
                mac.finalize().into_bytes()
            })
        });
        group.finish();
    }
}

fn short() -> Criterion {
    // Short windows: the bench script repeats whole runs instead, and quotes
    // medians over them (the machine is shared and has 2 cores).
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! {
    name = benches;
    config = short();
    targets = deliveries
}
criterion_main!(benches);
