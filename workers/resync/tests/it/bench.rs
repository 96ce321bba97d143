//! The re-sync benchmark (`npm run bench`, through `scripts/bench-resync.sh`;
//! never in `npm test`: `scripts/test.sh` skips `bench::`). One full run of
//! RESYNC_BENCH_USERS stand-in Clerk users (default 100,000) into the local
//! D1 through the real relay, re-sync Worker and main API, at Clerk's
//! production rate limit (1000 per 10 s). Writes `target/bench/resync.json`.

use std::time::{Duration, Instant};

use crate::support::*;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

#[test]
#[ignore = "a benchmark: npm run bench"]
fn bench_full_run() {
    let _one = exclusive();
    let users: usize = std::env::var("RESYNC_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rate = 1000;
    let clerk = ClerkStandIn::start(users, &["--rate-limit-per-10s", "1000", "--seed", "21"]);
    let api = MainApiDev::start();
    let mut options = RelayDevOptions::new(&api.url, &clerk.url);
    options.rate_limit = rate;
    options.page_size = 500;
    let relay = RelayDev::start(&options);

    let cpu_before = [clerk.cpu(), relay.cpu(), api.cpu()];
    let started = Instant::now();
    let run = start(&relay, "{}");
    let mut status = Json::Null;
    // When the sweep began (sampled by polling): the upsert phase before it.
    let mut sweep_from: Option<f64> = None;
    let done = wait_until(Duration::from_secs(3600), || {
        status = admin(&relay, "GET", &format!("/admin/resync/{run}"), "").1;
        if sweep_from.is_none() && status["phase"] == "sweep" {
            sweep_from = Some(started.elapsed().as_secs_f64());
        }
        status["state"] != "running"
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu_after = [clerk.cpu(), relay.cpu(), api.cpu()];
    assert!(done && status["state"] == "completed", "{status}");
    assert_eq!(status["applied"].as_u64(), Some(users as u64), "{status}");

    let stats = clerk.stats();
    let requests = stats["v1_requests"].as_u64().unwrap();
    let pages = users.div_ceil(500) as u64 + u64::from(users.is_multiple_of(500));
    let lookups = users.div_ceil(100) as u64;
    let minimum = 1 + pages + lookups;
    let floor_s = minimum as f64 / (f64::from(rate) / 10.0);

    // The main API's own log line per request: the 500-command batches' time.
    let batch_ms: Vec<u64> = api
        .logs()
        .lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|l| l["batch"]["commands"] == 500)
        .filter_map(|l| l["duration_ms"].as_u64())
        .collect();
    let live = table(&api, "live=true").len();
    assert_eq!(live, users, "every user is a live row");

    // Where the run's CPU went: each component's processes, by name.
    let mut cpu = serde_json::Map::new();
    let names = ["clerk_standin", "relay_and_resync", "main_api"];
    for ((name, before), after) in names.iter().zip(&cpu_before).zip(&cpu_after) {
        let spent: serde_json::Map<String, Json> = after
            .iter()
            .map(|(process, t)| {
                let was = before.get(process).copied().unwrap_or_default();
                (process.clone(), json!(t.saturating_sub(was).as_secs_f64()))
            })
            .collect();
        cpu.insert((*name).to_owned(), Json::Object(spent));
    }

    let result = json!({
        "users": users,
        "wall_s": wall,
        "users_per_s": users as f64 / wall,
        "upsert_phase_s": sweep_from,
        "sweep_phase_s": sweep_from.map(|at| wall - at),
        "clerk_requests": requests,
        "clerk_requests_minimum": minimum,
        "rate_limited": stats["rate_limited"],
        "max_requests_in_window": stats["max_requests_in_window"],
        "pages": status["pages"],
        "batches_of_500": batch_ms.len(),
        "d1_batch_ms_median": median(batch_ms.clone()),
        "d1_batch_ms_max": batch_ms.iter().max(),
        "floor_s_at_1000_per_10s": floor_s,
        "cpu_s": cpu,
        "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" "),
        "run": status,
    });
    let out = repo_root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("resync.json"),
        serde_json::to_string_pretty(&result).unwrap(),
    )
    .unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&result).unwrap());
}

/// A burst of QUEUE_BENCH_DELIVERIES (default 20,000) signed `user.created`
/// deliveries (an import storm), direct mode against queue mode, one after
/// the other on fresh servers: the rate the relay answers them 2xx, the
/// main API's calls (counted from its own log lines), and the time until
/// its table holds every user. Writes `target/bench/queue.json`.
#[test]
#[ignore = "a benchmark: npm run bench"]
fn bench_burst_direct_vs_queue() {
    let _one = exclusive();
    let n: usize = std::env::var("QUEUE_BENCH_DELIVERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let senders = 16;
    let template: Json = serde_json::from_slice(&fixture("docs_user_created.json")).unwrap();
    let mut results = serde_json::Map::new();
    for mode in ["direct", "queue"] {
        let clerk = ClerkStandIn::start(1, &[]);
        let api = MainApiDev::start();
        let mut options = RelayDevOptions::new(&api.url, &clerk.url);
        if mode == "queue" {
            options.queue = Some(QueueDev {
                api_url: api.url.clone(),
                max_retries: 100,
            });
        }
        let relay = RelayDev::start(&options);
        let hook = format!("{}/webhook?secret={DEV_QUERY_SECRET}", relay.url);
        let started = Instant::now();
        let threads: Vec<_> = (0..senders)
            .map(|t| {
                let (hook, template) = (hook.clone(), template.clone());
                std::thread::spawn(move || {
                    let mut retries = 0u64;
                    for i in (t..n).step_by(senders) {
                        let mut event = template.clone();
                        event["data"]["id"] = format!("user_burst_{i}").into();
                        event["data"]["email_addresses"][0]["email_address"] =
                            format!("burst{i}@bench.test").into();
                        let body = event.to_string();
                        let id = format!("msg_burst_{mode}_{i}");
                        loop {
                            let (s, _) =
                                post(&hook, &svix_headers(&id, body.as_bytes()), body.as_bytes());
                            if (200..300).contains(&s) {
                                break;
                            }
                            retries += 1;
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                    retries
                })
            })
            .collect();
        let retries: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let accepted_s = started.elapsed().as_secs_f64();
        let status_url = format!("{}/internal/sync/status", api.url);
        let bearer = [(
            "authorization".to_string(),
            format!("Bearer {DEV_API_SECRET}"),
        )];
        let converged = wait_until(Duration::from_secs(3600), || {
            get_with(&status_url, &bearer).1["users"]["total"].as_u64() == Some(n as u64)
        });
        let converged_s = started.elapsed().as_secs_f64();
        assert!(converged, "{mode}: the table never held {n} users");
        let routes: Vec<Json> = api
            .logs()
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str::<Json>(l).ok())
            .collect();
        let calls = |route: &str| routes.iter().filter(|l| l["route"] == route).count();
        let result = json!({
            "deliveries": n,
            "senders": senders,
            "accepted_s": accepted_s,
            "accepted_per_s": n as f64 / accepted_s,
            "svix_retries": retries,
            "converged_s": converged_s,
            "single_calls": calls("/internal/clerk-sync"),
            "batch_calls": calls("/internal/clerk-sync/batch"),
            "loadavg_at_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split(' ').take(3).collect::<Vec<_>>().join(" "),
        });
        eprintln!("{mode}: {result}");
        results.insert(mode.into(), result);
        drop(relay);
        drop(api);
    }
    let out = repo_root().join("target/bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("queue.json"),
        serde_json::to_string_pretty(&Json::Object(results)).unwrap(),
    )
    .unwrap();
}
