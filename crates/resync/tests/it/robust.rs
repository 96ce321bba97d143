//! No input makes the core panic, and its persisted state stays small.

use clerk_sync_contract::UnixMillis;
use clerk_sync_resync::start::{MAX_CLERK_ID_LEN, MAX_SCOPE_IDS};
use clerk_sync_resync::{parse_start, Action, Answer, Run, RunConfig, RunId, Scope};
use serde_json::json;

use crate::sim::SimUser;

fn random_bytes(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
    let n = rng.usize(0..=max);
    std::iter::repeat_with(|| rng.u8(..)).take(n).collect()
}

/// Bodies that are nearly right, which reach deeper than random bytes.
fn plausible_body(rng: &mut fastrand::Rng) -> Vec<u8> {
    let user = || {
        let mut u = SimUser::new("user_1", 1_700_000_000_000).json();
        u.as_object_mut()
            .unwrap()
            .insert("extra".into(), json!({"nested": [1, 2, {"x": null}]}));
        u
    };
    let choices: Vec<Vec<u8>> = vec![
        b"[]".to_vec(),
        serde_json::to_vec(&vec![user(); rng.usize(0..4)]).unwrap(),
        br#"[{"id":"u","updated_at":-99999999999999999}]"#.to_vec(),
        br#"[{"id":"u","updated_at":1e300}]"#.to_vec(),
        br#"[{"id":"","email_addresses":[{"id":null}]},{"id":["x"]}]"#.to_vec(),
        br#"{"object":"total_count","total_count":18446744073709551615}"#.to_vec(),
        br#"{"object":"total_count","total_count":18446744073709551616}"#.to_vec(),
        br#"{"users":[{"clerk_id":"user_1","deleted":false}],"next_after":null}"#.to_vec(),
        br#"{"users":[{"clerk_id":"-x"},{"clerk_id":null,"email":"a@b"},{"external_id":"+e"}],"next_after":"z"}"#.to_vec(),
        format!(r#"{{"users":[],"next_after":"{}"}}"#, "k".repeat(600)).into_bytes(),
        br#"{"ok":true,"results":[{"operation_id":"x","outcome":"applied"}]}"#.to_vec(),
        br#"{"ok":true,"results":[{"operation_id":"x","outcome":"exploded"}]}"#.to_vec(),
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        vec![b'"'; 3],
        random_bytes(rng, 64),
    ];
    let mut body = choices[rng.usize(..choices.len())].clone();
    if rng.u8(0..5) == 0 && !body.is_empty() {
        let i = rng.usize(..body.len());
        body[i] = rng.u8(..);
    }
    body
}

fn random_answer(rng: &mut fastrand::Rng) -> Answer {
    match rng.u8(0..10) {
        0 => Answer::Unreachable,
        1 => Answer::TimedOut,
        _ => Answer::Status {
            status: [
                0, 100, 200, 201, 204, 301, 400, 401, 403, 404, 408, 422, 429, 500, 503, 599, 600,
                65535,
            ][rng.usize(..18)],
            retry_after: match rng.u8(0..5) {
                0 => None,
                1 => Some(rng.u32(..).to_string()),
                2 => Some("Sun, 06 Nov 1994 08:49:37 GMT".into()),
                3 => Some(String::from_utf8_lossy(&random_bytes(rng, 40)).into_owned()),
                _ => Some("99999999999999999999999999".into()),
            },
            body: if rng.bool() {
                plausible_body(rng)
            } else {
                random_bytes(rng, 200)
            },
        },
    }
}

fn random_now(rng: &mut fastrand::Rng, now: i64) -> i64 {
    match rng.u8(0..40) {
        0 => i64::MAX,
        1 => i64::MIN,
        2 => 0,
        3 => now.saturating_sub(rng.i64(0..100_000)), // a clock that went back
        _ => now.saturating_add(rng.i64(0..20_000)),
    }
}

#[test]
fn arbitrary_answers_clocks_cancels_and_restores_never_panic() {
    for seed in 0..400 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let scope = match rng.u8(0..4) {
            0 => Scope::All,
            1 => Scope::Failed,
            2 => Scope::Pending,
            _ => Scope::Users {
                clerk_ids: (0..rng.usize(0..300))
                    .map(|i| {
                        if i % 7 == 0 {
                            format!("-bad{i}")
                        } else {
                            format!("user_{i}")
                        }
                    })
                    .collect(),
            },
        };
        let config = RunConfig {
            rate_limit_per_10s: rng.u32(0..2000),
            page_size: rng.u32(0..600),
            lookup_size: rng.u32(0..200),
            max_attempts: rng.u32(0..30),
            backoff_base_ms: rng.u32(..),
            backoff_max_ms: rng.u32(..),
            max_retry_after_ms: rng.u32(..),
            max_rate_limited: rng.u32(0..5),
        };
        let mut now = 1_764_331_200_000_i64;
        let mut run = Run::new(
            RunId::new(format!("f{seed}")).unwrap(),
            scope,
            config,
            UnixMillis(now),
        );
        for _ in 0..300 {
            now = random_now(&mut rng, now);
            match rng.u8(0..20) {
                0 => run = Run::from_json(&run.to_json()).unwrap(),
                1 => {
                    run.cancel(UnixMillis(now));
                }
                2 => {
                    let _ = run.status();
                }
                _ => {}
            }
            let action = run.poll(UnixMillis(now));
            while run.poll_log().is_some() {}
            if action == Action::Finished && rng.bool() {
                break;
            }
            let beside = run.poll_prefetch(UnixMillis(now)).is_some();
            if beside && rng.bool() {
                run.handle_prefetch(UnixMillis(now), random_answer(&mut rng));
            }
            run.handle(UnixMillis(now), random_answer(&mut rng));
            if beside || rng.u8(0..10) == 0 {
                // Late, or never asked for: never a panic.
                run.handle_prefetch(UnixMillis(now), random_answer(&mut rng));
            }
            serde_json::to_vec(&run.status()).unwrap();
        }
    }
}

/// A page read beside a batch, answered anyhow and in any order, with
/// restores and cancels between: never a panic, and no page is counted
/// before its own batch is answered.
#[test]
fn arbitrary_answers_beside_a_batch_never_panic_nor_count_early() {
    let users = |range: std::ops::Range<usize>| -> Vec<u8> {
        let v: Vec<_> = range
            .map(|i| SimUser::new(&format!("user_{i:04}"), 1_700_000_000_000 + i as i64).json())
            .collect();
        serde_json::to_vec(&v).unwrap()
    };
    let ok = |body: Vec<u8>| Answer::Status {
        status: 200,
        retry_after: None,
        body,
    };
    let mut beside_seen = 0;
    for seed in 0..300 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let config = RunConfig {
            page_size: 3,
            max_rate_limited: rng.u32(1..5),
            ..RunConfig::default()
        };
        let mut now = 1_764_331_200_000_i64;
        let mut run = Run::new(
            RunId::new("b1").unwrap(),
            Scope::All,
            config,
            UnixMillis(now),
        );
        run.poll(UnixMillis(now));
        run.handle(
            UnixMillis(now),
            ok(br#"{"object":"total_count","total_count":9}"#.to_vec()),
        );
        let mut page = 0;
        for _ in 0..40 {
            now = random_now(&mut rng, now);
            if rng.u8(0..10) == 0 {
                run = Run::from_json(&run.to_json()).unwrap();
            }
            if rng.u8(0..50) == 0 {
                run.cancel(UnixMillis(now));
            }
            let seen = run.counters().clerk_users_seen;
            let action = run.poll(UnixMillis(now));
            let Some(beside) = run.poll_prefetch(UnixMillis(now)) else {
                // Answer as Clerk and the main API would, to get to a batch.
                let answer = match action {
                    Action::Clerk { .. } => {
                        page += 1;
                        ok(users(page * 3..page * 3 + 3))
                    }
                    Action::ApiBatch { body } => {
                        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let results: Vec<_> = sent["commands"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|c| json!({"operation_id": c["operation_id"], "outcome": "applied"}))
                            .collect();
                        ok(serde_json::to_vec(&json!({"ok": true, "results": results})).unwrap())
                    }
                    _ => random_answer(&mut rng),
                };
                run.handle(UnixMillis(now), answer);
                continue;
            };
            beside_seen += 1;
            assert!(matches!(beside, Action::Clerk { .. }), "{beside:?}");
            let ahead = if rng.bool() {
                ok(users(page * 3 + 3..page * 3 + 3 + rng.usize(0..4)))
            } else {
                random_answer(&mut rng)
            };
            let main = random_answer(&mut rng);
            if rng.bool() {
                run.handle_prefetch(UnixMillis(now), ahead.clone());
                assert_eq!(run.counters().clerk_users_seen, seen, "counted early");
                run.handle(UnixMillis(now), main);
            } else {
                run.handle(UnixMillis(now), main);
                run.handle_prefetch(UnixMillis(now), ahead.clone());
            }
            // A second answer, out of turn, changes nothing.
            run.handle_prefetch(UnixMillis(now), ahead);
            while run.poll_log().is_some() {}
            serde_json::to_vec(&run.status()).unwrap();
        }
    }
    assert!(beside_seen > 100, "{beside_seen}");
}

#[test]
fn arbitrary_state_bytes_never_panic() {
    let mut rng = fastrand::Rng::with_seed(7);
    let good = Run::new(
        RunId::new("s").unwrap(),
        Scope::All,
        RunConfig::default(),
        UnixMillis(0),
    )
    .to_json();
    for _ in 0..5_000 {
        let mut bytes = good.clone();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(..bytes.len());
            bytes[i] = rng.u8(..);
        }
        if let Ok(mut run) = Run::from_json(&bytes) {
            let _ = run.poll(UnixMillis(1));
            run.handle(UnixMillis(2), Answer::TimedOut);
            let _ = run.status();
        }
        let _ = Run::from_json(&random_bytes(&mut rng, 100));
        let _ = parse_start(&random_bytes(&mut rng, 100));
    }
    // Hand-edited layouts with absurd values are clamped, not trusted.
    let edited = json!({
        "version": 1, "run_id": "x", "scope": {"scope": "users", "clerk_ids": ["user_1"]},
        "config": {"page_size": 0, "lookup_size": 0, "rate_limit_per_10s": 0},
        "state": "running", "phase": {"name": "users", "next": 18446744073709551615_u64},
        "started_at": 0, "clerk_sent": [9223372036854775807_i64, 5, -5],
        "counters": {"applied": 18446744073709551615_u64}, "not_before": -1
    });
    let mut run = Run::from_json(edited.to_string().as_bytes()).unwrap();
    for t in 0..50 {
        if run.poll(UnixMillis(t)) == Action::Finished {
            break;
        }
    }
}

/// The state a Durable Object stores stays under 128 KiB (the per-value
/// limit of Durable Object storage) in the worst case: 500 ids of the
/// longest length, a full window at the highest rate limit, every rejected
/// id of the longest length, the longest cursors.
#[test]
fn the_persisted_state_is_bounded() {
    let long_id = |i: usize| format!("{i:0>width$}", width = MAX_CLERK_ID_LEN);
    let ids: Vec<String> = (0..MAX_SCOPE_IDS).map(long_id).collect();
    let config = RunConfig {
        rate_limit_per_10s: 1000,
        lookup_size: 1,
        ..RunConfig::default()
    };
    let mut run = Run::new(
        RunId::new("r".repeat(64)).unwrap(),
        Scope::Users { clerk_ids: ids },
        config,
        UnixMillis(0),
    );
    let mut now = 1_764_331_200_000_i64;
    let mut requests = 0;
    let mut answered = 0;
    // Each id: a 429 with Retry-After 0, then Clerk has the user but it
    // cannot be mapped (rejected with its id): 1000 requests within 1 s.
    while let Action::Clerk { .. } = run.poll(UnixMillis(now)) {
        requests += 1;
        let answer = if requests % 2 == 1 {
            Answer::Status {
                status: 429,
                retry_after: Some("0".into()),
                body: Vec::new(),
            }
        } else {
            let body = format!(r#"[{{"id":"{}","updated_at":"x"}}]"#, long_id(answered));
            answered += 1;
            Answer::Status {
                status: 200,
                retry_after: None,
                body: body.into_bytes(),
            }
        };
        if requests == 1000 {
            break;
        }
        run.handle(UnixMillis(now), answer);
        now += 1;
    }
    assert_eq!(requests, 1000);
    let bytes = run.to_json();
    assert_eq!(run.status().rejected_ids.len(), 50);
    assert!(bytes.len() < 128 * 1024, "state is {} bytes", bytes.len());
    assert!(
        bytes.len() > 64 * 1024,
        "the worst case was reached: {} bytes",
        bytes.len()
    );
}
