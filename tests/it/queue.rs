//! Queue mode end to end: the built relay (`dist/`) under `wrangler dev`
//! with local queues (its producer, its consumer and the dead-letter
//! queue's consumer in one process), before a stand-in main API in this
//! test (a small loopback server that applies each operation id once,
//! counts its calls, and flips between healthy, 5xx, slow and down).
//!
//! - A seeded schedule of signed deliveries, with Svix-style repeats (a
//!   delivery sent again after its 2xx, as when Svix lost the answer),
//!   while the API flips: every delivery answered 2xx ends applied exactly
//!   once, or recorded as failed when the API rejected it or when its
//!   retries ran out in the bad phases (only after its tries reached the
//!   API); the batch endpoint receives batches, not single commands.
//! - A rejected command while the API is healthy: recorded as `rejected`.
//! - The API down for longer than the queue's retries: those commands end
//!   recorded as failed (`retries_exhausted`), once the API is back for the
//!   dead-letter consumer, and never applied.
//!
//! The queue settings are small (`max_retries = 3`, 1 s batches) so the
//! run takes well under two minutes. Needs `dist/` and wrangler from
//! `npm ci`: ignored by a plain `cargo test`, run by `scripts/test.sh`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clerk_sync_testkit::prelude::*;
use serde_json::{json, Value as Json};

/// The relay's `FORWARD_TIMEOUT_MS` here; a slow API answers after it.
const TIMEOUT_MS: u64 = 1_000;
/// The bound of each wait below: a broken run, not a pace.
const CONVERGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Healthy,
    /// 503, nothing applied.
    Error,
    /// Applies, then answers after the relay gave up waiting.
    Slow,
    /// Reads the request and closes the connection: no answer.
    Down,
}

#[derive(Debug, Default)]
struct Books {
    /// Each operation id newly applied, and how many times (must be 1).
    applied: HashMap<String, u32>,
    /// Operation ids recorded as failed, with their code.
    failed: HashMap<String, String>,
    batch_calls: u32,
    batch_commands: usize,
    largest_batch: usize,
    failure_calls: u32,
    /// Calls to the single-command endpoint (none in queue mode).
    direct_calls: u32,
    /// How many times each operation id reached the API, answered or not.
    attempts: HashMap<String, u32>,
    unauthorized: u32,
}

/// The stand-in main API.
struct Api {
    url: String,
    mode: Arc<Mutex<Mode>>,
    books: Arc<Mutex<Books>>,
}

impl Api {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(Mode::Healthy));
        let books = Arc::new(Mutex::new(Books::default()));
        let (m, b) = (mode.clone(), books.clone());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, b) = (m.clone(), b.clone());
                thread::spawn(move || serve(stream, &m, &b));
            }
        });
        Api { url, mode, books }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap()
    }
}

fn serve(stream: TcpStream, mode: &Mutex<Mode>, books: &Mutex<Books>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (mut length, mut bearer) = (0usize, false);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.trim_end() == format!("authorization: bearer {DEV_API_SECRET}") {
            bearer = true;
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let items = request["commands"]
        .as_array()
        .or(request["failures"].as_array())
        .cloned()
        .unwrap_or_default();
    let mode = *mode.lock().unwrap();
    {
        let mut b = books.lock().unwrap();
        for c in &items {
            *b.attempts
                .entry(c["operation_id"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        if !bearer {
            b.unauthorized += 1;
        }
    }
    let answer = match mode {
        Mode::Down => return, // the connection closes unanswered
        Mode::Error => (503, json!({"ok": false, "error": "unavailable"})),
        Mode::Healthy | Mode::Slow => apply(&path, &items, books),
    };
    if mode == Mode::Slow {
        thread::sleep(Duration::from_millis(TIMEOUT_MS + 500));
    }
    let text = answer.1.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        answer.0,
        text.len()
    );
}

/// The API's answer to a batch or to recorded failures: each operation id
/// applied once; a command for a `user_reject…` Clerk id is rejected.
fn apply(path: &str, items: &[Json], books: &Mutex<Books>) -> (u16, Json) {
    let mut b = books.lock().unwrap();
    let mut results = Vec::new();
    for c in items {
        let op = c["operation_id"].as_str().unwrap_or("").to_owned();
        let outcome = match path {
            "/internal/clerk-sync/batch" => {
                if b.applied.contains_key(&op) {
                    "duplicate"
                } else if c["clerk_id"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("user_reject")
                {
                    "rejected"
                } else {
                    *b.applied.entry(op.clone()).or_default() += 1;
                    "applied"
                }
            }
            "/internal/clerk-sync/failures" => {
                if b.applied.contains_key(&op) {
                    "duplicate"
                } else {
                    let code = c["error"].as_str().unwrap_or("").to_owned();
                    b.failed.insert(op.clone(), code);
                    "recorded"
                }
            }
            _ => {
                b.direct_calls += 1;
                return (404, json!({"ok": false}));
            }
        };
        results.push(json!({"operation_id": op, "outcome": outcome, "error": null}));
    }
    match path {
        "/internal/clerk-sync/batch" => {
            b.batch_calls += 1;
            b.batch_commands += items.len();
            b.largest_batch = b.largest_batch.max(items.len());
        }
        _ => b.failure_calls += 1,
    }
    (200, json!({"ok": true, "results": results}))
}

/// The relay in queue mode under `wrangler dev`, from a config written here
/// around the built bundle, with small queue settings.
struct QueueRelay {
    url: String,
    dir: std::path::PathBuf,
    _process: Process,
}

impl QueueRelay {
    fn start(api_url: &str) -> Self {
        let main = clerk_sync_testkit::relay::relay_dist().join("index.js");
        assert!(main.exists(), "build the relay with `bash scripts/test.sh`");
        let dir = TempDir::new("queue-relay").keep();
        let config = format!(
            r#"name = "clerk-sync"
main = "{main}"
compatibility_date = "2026-04-20"
[vars]
API_URL = "{api_url}"
FORWARD_TIMEOUT_MS = "{TIMEOUT_MS}"
{queue}"#,
            queue = queue_settings(3),
            main = main.display(),
        );
        std::fs::write(dir.join("wrangler.toml"), config).unwrap();
        std::fs::write(
            dir.join(".dev.vars"),
            format!(
                "CLERK_WEBHOOK_SECRET=\"{DEV_SIGNING_SECRET}\"\nWEBHOOK_QUERY_SECRET=\"{DEV_QUERY_SECRET}\"\nAPI_SECRET=\"{DEV_API_SECRET}\"\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut dev = Command::new(repo_root().join("node_modules/.bin/wrangler"));
        dev.env("WRANGLER_SEND_METRICS", "false")
            .current_dir(&dir)
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("--show-interactive-dev-session=false");
        let mut process = Process::spawn(
            "wrangler dev (relay, queue mode)",
            dev,
            &dir.join("wrangler-dev.log"),
            Some(&dir),
        );
        let url = format!("http://127.0.0.1:{port}");
        let health = format!("{url}/health");
        process.wait_ready(Duration::from_secs(300), || {
            try_get_status(&health) == Some(200)
        });
        QueueRelay {
            url,
            dir,
            _process: process,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("wrangler-dev.log")).unwrap_or_default()
    }

    /// The consumer's `queue_batch` log lines.
    fn batch_lines(&self) -> Vec<Json> {
        lines_with(&self.log(), "queue_batch")
    }
}

fn lines_with(log: &str, msg: &str) -> Vec<Json> {
    log.lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .filter(|v| v["msg"] == msg)
        .collect()
}

/// A signed delivery of `fixture` for Clerk user `clerk_id`.
fn delivery(fixture: &str, clerk_id: &str) -> Vec<u8> {
    let mut event: Json = serde_json::from_slice(&fixture_bytes(fixture)).unwrap();
    event["data"]["id"] = clerk_id.into();
    event.to_string().into_bytes()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    clerk_sync_testkit::fixture(name)
}

/// Sends one delivery as Svix does: until a 2xx, with a short backoff
/// (Svix's own is seconds to hours). The status of the last attempt.
fn send_until_taken(url: &str, id: &str, body: &[u8], deadline: Instant) -> u16 {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (status, reply) = post(url, &svix_headers(id, body), body);
        if (200..300).contains(&status) {
            assert_eq!(reply["queued"], true, "{id}: {reply}");
            assert_eq!(reply["operation_id"], id);
            return status;
        }
        assert!(
            status >= 500,
            "{id}: a delivery of ours refused: {status} {reply}"
        );
        assert!(Instant::now() < deadline, "{id}: never taken");
        thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[test]
#[ignore = "needs the built worker and wrangler: scripts/test.sh"]
fn queue_mode_delivers_each_command_once_in_batches_and_records_what_it_cannot() {
    let _timing = exclusive();
    let started = Instant::now();
    let api = Api::start();
    let relay = QueueRelay::start(&api.url);
    let hook = format!("{}/webhook?secret={DEV_QUERY_SECRET}", relay.url);
    eprintln!(
        "relay (queue mode) up after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Part 1: a seeded schedule while the API flips. 320 deliveries over
    // four senders; about one in six is sent again after its 2xx.
    let mut rng = fastrand::Rng::with_seed(12);
    let fixtures = [
        "docs_user_created.json",
        "dashboard_user_updated.json",
        "openapi_user_deleted.json",
    ];
    let mut schedule: Vec<(String, Vec<u8>, bool)> = (0..320)
        .map(|n| {
            let clerk_id = if n % 100 == 7 {
                format!("user_reject_{n}")
            } else {
                format!("user_q{n}")
            };
            let body = delivery(fixtures[n % fixtures.len()], &clerk_id);
            (format!("msg_queue_{n}"), body, rng.u8(..) < 42)
        })
        .collect();
    rng.shuffle(&mut schedule);
    let rejected: HashSet<String> = schedule
        .iter()
        .filter(|(_, body, _)| String::from_utf8_lossy(body).contains("user_reject"))
        .map(|(id, _, _)| id.clone())
        .collect();
    assert_eq!(rejected.len(), 4);
    // Each mode twice, in a seeded order, for 0.5-2 s each.
    let mut modes = [Mode::Healthy, Mode::Error, Mode::Slow, Mode::Down].repeat(2);
    rng.shuffle(&mut modes);
    let phases: Vec<(Mode, u64)> = modes.iter().map(|&m| (m, rng.u64(500..2_000))).collect();
    let deadline = Instant::now() + CONVERGE;
    let taken = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = schedule
        .chunks(schedule.len() / 4)
        .map(|chunk| {
            let (chunk, hook, taken) = (chunk.to_vec(), hook.clone(), taken.clone());
            thread::spawn(move || {
                for (id, body, repeat) in chunk {
                    send_until_taken(&hook, &id, &body, deadline);
                    taken.lock().unwrap().push(id.clone());
                    if repeat {
                        send_until_taken(&hook, &id, &body, deadline);
                    }
                    thread::sleep(Duration::from_millis(15));
                }
            })
        })
        .collect();
    for (mode, ms) in &phases {
        api.set(*mode);
        thread::sleep(Duration::from_millis(*ms));
    }
    api.set(Mode::Healthy);
    for s in senders {
        s.join().expect("a sender failed");
    }
    let taken: HashSet<String> = taken.lock().unwrap().iter().cloned().collect();
    assert_eq!(taken.len(), 320, "every delivery answered 2xx");
    // Every taken delivery ends somewhere: applied, or recorded as failed.
    // Which one depends on timing: a message whose four tries all landed
    // in bad phases (a busy machine stretches the batches) is dead-lettered
    // as `retries_exhausted`, exactly as the contract says; what may never
    // happen is a delivery lost, applied twice, or applied and recorded.
    let converged = wait_until(CONVERGE, || {
        let b = api.books();
        taken
            .iter()
            .all(|op| b.applied.contains_key(op) || b.failed.contains_key(op))
    });
    let part1 = started.elapsed();
    {
        let b = api.books();
        assert!(
            converged,
            "not converged: {} applied, {} failed of {} taken",
            b.applied.len(),
            b.failed.len(),
            taken.len()
        );
        let tries = |op: &str| b.attempts.get(op).copied().unwrap_or(0);
        let mut exhausted = 0;
        for op in &taken {
            let applied = b.applied.get(op).copied();
            let failed = b.failed.get(op).map(String::as_str);
            assert!(
                applied.is_none() || failed.is_none(),
                "{op} applied and recorded"
            );
            assert!(applied.unwrap_or(1) == 1, "{op} applied {applied:?} times");
            match failed {
                // Its 4 batch tries and at least one record_failure reached the API.
                Some("retries_exhausted") => {
                    assert!(
                        tries(op) >= 5,
                        "{op} dead-lettered after {} tries",
                        tries(op)
                    );
                    exhausted += 1;
                }
                Some("rejected") => assert!(rejected.contains(op), "{op} rejected"),
                Some(other) => panic!("{op} recorded as {other}"),
                None => assert!(!rejected.contains(op), "{op} applied though rejected"),
            }
        }
        assert_eq!(b.direct_calls, 0, "queue mode never forwards one by one");
        assert_eq!(b.unauthorized, 0);
        // Batches, not single commands: the calls are far fewer than the commands.
        eprintln!(
            "part 1: {} deliveries (+ repeats) in {:.1}s: {} applied, {} dead-lettered after their retries; {} batch calls carried {} commands (largest {}), {} failure calls; modes {:?}",
            taken.len(),
            part1.as_secs_f64(),
            b.applied.len(),
            exhausted,
            b.batch_calls,
            b.batch_commands,
            b.largest_batch,
            b.failure_calls,
            phases
        );
        assert!(b.largest_batch >= 10, "largest batch {}", b.largest_batch);
        assert!(
            u64::from(b.batch_calls) * 5 <= taken.len() as u64,
            "{} batch calls for {} commands",
            b.batch_calls,
            taken.len()
        );
    }

    // A rejected command with the API healthy: straight to the dead-letter
    // path as `rejected`, never applied, whatever part 1's timing was.
    let refused: Vec<String> = (0..3).map(|n| format!("msg_refused_{n}")).collect();
    for (n, id) in refused.iter().enumerate() {
        let body = delivery(
            "docs_user_created.json",
            &format!("user_reject_healthy_{n}"),
        );
        let (status, reply) = post(&hook, &svix_headers(id, &body), &body);
        assert_eq!(status, 200, "queued: {reply}");
    }
    let recorded = wait_until(CONVERGE, || {
        let b = api.books();
        refused.iter().all(|op| b.failed.contains_key(op))
    });
    {
        let b = api.books();
        assert!(recorded, "rejected commands not recorded: {:?}", b.failed);
        for op in &refused {
            assert_eq!(b.failed[op], "rejected", "{op}");
            assert!(!b.applied.contains_key(op), "{op} applied");
        }
    }

    // Part 2: the API down for longer than the queue's retries.
    let part2 = Instant::now();
    api.set(Mode::Down);
    let dead: Vec<String> = (0..20).map(|n| format!("msg_dead_{n}")).collect();
    for (n, id) in dead.iter().enumerate() {
        let body = delivery("docs_user_created.json", &format!("user_dead_{n}"));
        let (status, reply) = post(&hook, &svix_headers(id, &body), &body);
        assert_eq!(status, 200, "queued while the API is down: {reply}");
    }
    // Each was tried max_retries + 1 = 4 times, then its record_failure at
    // least once (the dead-letter consumer, failing too): only then heal.
    let exhausted = wait_until(CONVERGE, || {
        let b = api.books();
        dead.iter()
            .all(|op| b.attempts.get(op).copied().unwrap_or(0) >= 5)
    });
    assert!(
        exhausted,
        "attempts: {:?}",
        dead.iter()
            .map(|op| api.books().attempts.get(op).copied())
            .collect::<Vec<_>>()
    );
    let down_for = part2.elapsed();
    api.set(Mode::Healthy);
    let recorded = wait_until(CONVERGE, || {
        let b = api.books();
        dead.iter().all(|op| b.failed.contains_key(op))
    });
    let b = api.books();
    assert!(
        recorded,
        "recorded: {:?}",
        b.failed
            .keys()
            .filter(|k| k.starts_with("msg_dead"))
            .count()
    );
    for op in &dead {
        assert_eq!(b.failed[op], "retries_exhausted", "{op}");
        assert!(!b.applied.contains_key(op), "{op} applied after all");
    }
    drop(b);

    // The consumer's log lines: counts only, never an email or a body.
    let log = relay.log();
    assert!(!log.contains("example@example.org"), "an email in the log");
    let lines = relay.batch_lines();
    assert!(lines
        .iter()
        .any(|l| l["queue"] == "dead_letters" && l["acked"].as_u64() > Some(0)));
    assert!(lines.iter().any(|l| l["retried"].as_u64() > Some(0)));
    eprintln!(
        "part 2: 20 deliveries queued while the API was down ({:.1}s, past 4 attempts each), all recorded as failed; whole run {:.1}s",
        down_for.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
