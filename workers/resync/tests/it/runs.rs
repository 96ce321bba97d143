//! Runs end to end: a drifted table driven back to Clerk while webhooks and
//! Clerk changes keep coming, a run that survives its process being killed,
//! a run under 429s that keeps within the rate limit, and the crons.

use std::thread;
use std::time::Duration;

use crate::support::*;

fn stack(clerk: &ClerkStandIn, api: &MainApiDev, rate_limit: u32, page_size: u32) -> RelayDev {
    let mut options = RelayDevOptions::new(&api.url, &clerk.url);
    options.rate_limit = rate_limit;
    options.page_size = page_size;
    RelayDev::start(&options)
}

fn id(user: &Json) -> String {
    user["id"].as_str().unwrap().to_owned()
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn a_full_run_drives_a_drifted_table_to_clerk_while_webhooks_arrive() {
    let _one = exclusive();
    let clerk = ClerkStandIn::start(900, &["--seed", "11"]);
    let api = MainApiDev::start();
    let relay = stack(&clerk, &api, 100, 100);
    let users = clerk.users();
    let t = now_ms();

    // The drift. Users 0..600 are missing from the table. 600..700: rows
    // older than Clerk, with another email. 30 rows whose users Clerk no
    // longer has. 700..720: signups (pending rows) with the address Clerk
    // now has. 720: deleted by a webhook (tombstoned) and in Clerk.
    let older: Vec<Json> = users[600..700]
        .iter()
        .map(|u| {
            upsert(
                &id(u),
                &format!("old.{}@example.com", id(u).to_lowercase()),
                1_600_000_000_000,
            )
        })
        .collect();
    batch(&api, &older);
    let gone: Vec<Json> = (0..30)
        .map(|i| {
            upsert(
                &format!("user_gone_{i:03}"),
                &format!("gone{i}@example.com"),
                1_600_000_000_000,
            )
        })
        .collect();
    batch(&api, &gone);
    let truth_before = truth(&clerk);
    for u in &users[700..720] {
        let email = truth_before[&id(u)]
            .clone()
            .expect("seeded users 700..720 have an email");
        let (s, row) = post(
            &format!("{}/internal/users", api.url),
            &[
                ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
                ("content-type".into(), "application/json".into()),
            ],
            json!({"email": email, "link_by": "email"})
                .to_string()
                .as_bytes(),
        );
        assert!(s == 201 || s == 200, "signup: {s} {row}");
    }
    let tombstoned = id(&users[720]);
    batch(
        &api,
        &[
            upsert(&tombstoned, "t@example.com", t - 10_000),
            delete(&tombstoned, t),
        ],
    );
    clerk.delete(&tombstoned);

    // Changes in Clerk while the run pages: after the 2nd page a user of a
    // later page changes and the last user served is deleted; after the
    // 4th a user is created (the newest: it comes on the last page).
    clerk.on_request(json!({"after": 2, "actions": [
        {"update": {"id": id(&users[850]), "first_name": "Changed", "email": "changed.850@example.com"}},
        {"delete": "$last"}
    ]}));
    clerk.on_request(
        json!({"after": 4, "action": {"create": {"email": "new.during.run@example.com"}}}),
    );

    let run = start(&relay, r#"{"scope":"all"}"#);

    // Webhooks during the run, as Clerk would send them: newer changes,
    // a stale replay, deletions.
    let webhooks = thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut outcomes = Vec::new();
            for (n, u) in users[100..880].iter().step_by(60).enumerate() {
                let uid = id(u);
                if uid == tombstoned {
                    continue;
                }
                match n % 3 {
                    0 => {
                        let changed = clerk.update(&uid, json!({"last_name": format!("Hook{n}"), "email": format!("hook.{n}@example.com")}));
                        outcomes.push(deliver(&relay, "user.updated", &changed, now_ms()));
                    }
                    1 => {
                        let mut stale = clerk.user(&uid);
                        stale["updated_at"] = json!(1_500_000_000_000_i64);
                        stale["first_name"] = json!("Stale");
                        outcomes.push(deliver(&relay, "user.updated", &stale, now_ms()));
                    }
                    _ => {
                        clerk.delete(&uid);
                        outcomes.push(deliver(&relay, "user.deleted", &json!({"id": uid, "object": "user", "deleted": true}), now_ms()));
                    }
                }
                thread::sleep(Duration::from_millis(300));
            }
            outcomes
        });
        sender.join().unwrap()
    });
    for (s, answer) in &webhooks {
        assert_eq!(*s, 200, "a webhook during the run: {answer}");
    }

    let status = finished(&relay, &run);
    assert_eq!(status["state"], "completed", "{status}");
    // Counted at the start: the seeded users but the tombstoned one.
    assert_eq!(status["clerk_users_total"], 899, "{status}");
    assert!(
        status["deletes_sent"].as_u64().unwrap() >= 30,
        "the sweep deleted the gone rows: {status}"
    );
    assert_eq!(status["rejected"], 0, "{status}");

    // A second run finds nothing to do but duplicates' cousins: stale or applied.
    assert_table_is_clerk(&api, &clerk);
    let all = table(&api, "live=false");
    assert!(
        all.contains_key(&tombstoned),
        "the tombstoned row is listed as deleted"
    );
    assert_eq!(
        all[&tombstoned]["deleted"], true,
        "not resurrected: {}",
        all[&tombstoned]
    );
    assert!(
        table(&api, "sync_status=pending").is_empty(),
        "every signup was linked"
    );

    let page_lines = relay
        .log_lines("resync")
        .into_iter()
        .filter(|l| l["event"] == "resync_page")
        .count();
    assert!(
        page_lines as u64 >= status["pages"].as_u64().unwrap(),
        "one log line per page"
    );
    let logs = relay.logs();
    assert!(!logs.contains("@example.com"), "no email in the log");
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn a_run_whose_process_is_killed_resumes_from_its_last_page() {
    let _one = exclusive();
    let clerk = ClerkStandIn::start(1200, &["--seed", "12"]);
    let api = MainApiDev::start();
    // 12 pages of 100 at 12 Clerk requests per 10 s: long enough to kill.
    let mut relay = stack(&clerk, &api, 12, 100);
    let run = start(&relay, "{}");
    let progressed = wait_until(RUN_TIMEOUT, || {
        admin(&relay, "GET", &format!("/admin/resync/{run}"), "").1["pages"].as_u64() >= Some(3)
    });
    assert!(progressed, "{}", relay.logs());
    let before = admin(&relay, "GET", &format!("/admin/resync/{run}"), "").1;
    relay.restart();

    let status = finished(&relay, &run);
    assert_eq!(status["state"], "completed", "{status}");
    assert!(
        status["pages"].as_u64() > before["pages"].as_u64(),
        "{before} then {status}"
    );
    // Each user applied once: a page redone after the kill is duplicates.
    let applied = status["applied"].as_u64().unwrap();
    let duplicates = status["duplicates"].as_u64().unwrap();
    assert!(applied <= 1200 && applied + duplicates >= 1200, "{status}");
    // The count, 13 pages (the last one empty) and 12 sweep lookups, and
    // what the kill lost: the page in flight and the page read beside its
    // batch, read again (seen: 28). It did not start over (50).
    let stats = clerk.stats();
    let requests = stats["v1_requests"].as_u64().unwrap();
    assert!(
        requests <= 1 + 13 + 12 + 2,
        "{requests} Clerk requests for 26: {stats} {status}"
    );
    assert_eq!(
        requests,
        status["clerk_requests"].as_u64().unwrap(),
        "every request counted"
    );
    assert!(
        stats["max_requests_in_window"].as_u64() <= Some(12),
        "the rate limit held across the restart: {stats}"
    );
    assert_table_is_clerk(&api, &clerk);
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn under_429s_the_run_finishes_within_the_rate_limit_and_every_retry_after() {
    let _one = exclusive();
    // Clerk allows fewer than the run's limit, and throws in 429s of its own.
    let clerk = ClerkStandIn::start(
        400,
        &[
            "--seed",
            "13",
            "--rate-limit-per-10s",
            "8",
            "--fail-rate",
            "0.15",
            "--fail-statuses",
            "429,500",
        ],
    );
    let api = MainApiDev::start();
    let relay = stack(&clerk, &api, 20, 50);
    let run = start(&relay, "{}");
    let status = finished(&relay, &run);
    assert_eq!(status["state"], "completed", "{status}");

    let stats = clerk.stats();
    assert!(
        stats["rate_limited"].as_u64() > Some(0),
        "the stand-in did answer 429: {stats}"
    );
    assert_eq!(
        stats["retry_after_violations"], 0,
        "a request came before a Retry-After passed: {stats}"
    );
    assert!(
        stats["max_requests_in_window"].as_u64() <= Some(20),
        "over CLERK_RATE_LIMIT_PER_10S: {stats}"
    );
    assert_table_is_clerk(&api, &clerk);
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn the_crons_start_a_full_run_once_and_a_failed_run_only_when_rows_failed() {
    let _one = exclusive();
    let clerk = ClerkStandIn::start(40, &["--seed", "14", "--latency-ms", "700"]);
    let api = MainApiDev::start();
    let relay = stack(&clerk, &api, 100, 10);
    let scheduled = |cron: &str| {
        let url = format!(
            "{}/cdn-cgi/handler/scheduled?cron={}",
            relay.url,
            cron.replace(' ', "+")
        );
        let (s, _, _) = get(&url);
        assert_eq!(s, 200, "scheduled {cron}");
    };
    let latest = || admin(&relay, "GET", "/admin/resync", "").1;

    scheduled("0 3 * * *");
    assert!(
        wait_until(Duration::from_secs(60), || latest()["state"] == "running"),
        "{}",
        relay.logs()
    );
    let first = latest()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(latest()["scope"], "all");
    scheduled("0 3 * * *");
    scheduled("*/15 * * * *");
    let status = finished(&relay, &first);
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(
        latest()["run_id"],
        json!(first),
        "a cron during a run started nothing"
    );

    // No failed rows: the 15-minute cron starts nothing.
    scheduled("*/15 * * * *");
    assert!(
        wait_until(Duration::from_secs(30), || {
            relay
                .log_lines("resync")
                .iter()
                .any(|l| l["event"] == "resync_cron" && l["reason"] == "no_failed_rows")
        }),
        "{}",
        relay.logs()
    );
    assert_eq!(latest()["run_id"], json!(first));
    let skipped = relay
        .log_lines("resync")
        .iter()
        .filter(|l| l["event"] == "resync_cron" && l["reason"] == "running")
        .count();
    assert!(
        skipped >= 2,
        "both crons during the run were skipped: {}",
        relay.logs()
    );
    assert_table_is_clerk(&api, &clerk);
}
