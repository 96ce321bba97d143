//! Convergence: whatever the order, whatever the repeats, a Clerk user's
//! commands end in the state the newest `updated_at` implies, and a delete
//! wins. Seeded (`CONVERGENCE_SEED`), many schedules per run
//! (`CONVERGENCE_SCHEDULES`, default 500).

use clerk_sync_contract::command::Command;
use serde_json::json;

use crate::sqlite::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Schedule {
    clerk_id: String,
    deliveries: Vec<Command>,
    distinct: usize,
    newest: (i64, String),
    deleted: bool,
}

/// 1–4 versions of one user (created, then updated), maybe a delete; each
/// command delivered 1–3 times; all shuffled.
fn schedule(rng: &mut fastrand::Rng, n: u64) -> Schedule {
    let clerk_id = format!("user_conv_{n}");
    let versions = 1 + rng.u64(..4) as i64;
    let mut commands = Vec::new();
    let mut t = START_MS - 100_000;
    let mut newest = (0, String::new());
    for v in 0..versions {
        // Sometimes two versions are one millisecond apart.
        t += 1 + rng.u64(..3) as i64 * 499;
        let email = format!("s{n}.v{v}@example.com");
        let mut c = upsert(
            &format!("msg_s{n}_v{v}"),
            &clerk_id,
            record(Some(&email), t),
        );
        if v == 0 {
            c.event_type = "user.created".into();
        }
        commands.push(c);
        newest = (t, email);
    }
    let deleted = rng.u64(..10) < 4;
    if deleted {
        commands.push(delete(&format!("msg_s{n}_del"), &clerk_id, None));
    }
    let distinct = commands.len();
    let mut deliveries = Vec::new();
    for c in commands {
        for _ in 0..1 + rng.u64(..3) {
            deliveries.push(c.clone());
        }
    }
    rng.shuffle(&mut deliveries);
    Schedule {
        clerk_id,
        deliveries,
        distinct,
        newest,
        deleted,
    }
}

#[test]
fn any_order_with_repeats_converges() {
    let seed = env_or("CONVERGENCE_SEED", 0x5EED_C1E4);
    let count = env_or("CONVERGENCE_SCHEDULES", 500);
    let mut rng = fastrand::Rng::with_seed(seed);
    let api = Api::new();
    let (mut deleted, mut delivered) = (0, 0);
    for n in 0..count {
        let s = schedule(&mut rng, n);
        let ctx = format!("seed {seed:#x}, schedule {n}");
        let mut seen = std::collections::HashSet::new();
        for c in &s.deliveries {
            let (status, body) = api.send(c);
            let first = seen.insert(c.operation_id.clone());
            assert_eq!(status, if first { 200 } else { 409 }, "{ctx}: {body}");
        }
        assert_eq!(seen.len(), s.distinct);
        delivered += s.deliveries.len();

        let (status, u) = api.user(&s.clerk_id);
        assert_eq!(status, 200, "{ctx}");
        assert_eq!(u["deleted"], s.deleted, "{ctx}: {u}");
        if s.deleted {
            deleted += 1;
            assert!(u["tombstone"].is_object(), "{ctx}");
            // No row (the delete came first), or a soft-deleted synced one.
            if !u["user"].is_null() {
                assert!(u["user"]["deleted_at"].is_string(), "{ctx}: {u}");
                assert_eq!(u["sync_status"], "synced", "{ctx}");
            }
        } else {
            let row = &u["user"];
            assert_eq!(row["sync_status"], "synced", "{ctx}");
            assert_eq!(row["clerk_updated_at"], ms(s.newest.0), "{ctx}");
            assert_eq!(row["email"], json!(s.newest.1), "{ctx}");
            assert_eq!(row["first_name"], format!("First{}", s.newest.0), "{ctx}");
        }
    }
    assert!(
        count < 20 || (deleted > 0 && deleted < count),
        "both kinds occur"
    );
    eprintln!("convergence: {count} schedules, {delivered} deliveries, seed {seed:#x}");
}
