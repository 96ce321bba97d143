//! Queue mode's last lines, end to end: the relay in queue mode (local
//! queues, `max_retries = 2`) with the re-sync Worker in one `wrangler dev`,
//! the reference main API on D1 behind a proxy in this test that can take
//! it down for the relay alone, and the stand-in Clerk API. Deliveries
//! queued while the API is down for longer than the queue's retries end
//! recorded as failed in the table (`record_failure`, through the
//! dead-letter queue), and the 15-minute `failed` re-sync heals them from
//! Clerk.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::*;

/// A loopback proxy to the main API that forwards each request, or, while
/// down, reads it and closes the connection unanswered. It counts the
/// operation ids it sees.
struct Proxy {
    url: String,
    down: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (d, s, target) = (down.clone(), seen.clone(), target.to_owned());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (d, s, target) = (d.clone(), s.clone(), target.clone());
                thread::spawn(move || forward(stream, &d, &s, &target));
            }
        });
        Proxy { url, down, seen }
    }

    /// How many requests carried this operation id.
    fn attempts(&self, op: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|o| *o == op)
            .count()
    }
}

fn forward(stream: TcpStream, down: &AtomicBool, seen: &Mutex<Vec<String>>, target: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            }
            if k == "authorization" || k == "content-type" {
                headers.push((k, v));
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    for item in request["commands"]
        .as_array()
        .or(request["failures"].as_array())
        .into_iter()
        .flatten()
    {
        let op = item["operation_id"].as_str().unwrap_or("").to_owned();
        seen.lock().unwrap().push(op);
    }
    if down.load(Ordering::SeqCst) {
        return; // closed unanswered
    }
    let (status, answer) = post(&format!("{target}{path}"), &headers, &body);
    let text = answer.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn commands_the_queue_could_not_deliver_are_recorded_failed_then_healed_from_clerk() {
    let _one = exclusive();
    let clerk = ClerkStandIn::start(6, &["--seed", "31"]);
    let api = MainApiDev::start();
    let proxy = Proxy::start(&api.url);
    let mut options = RelayDevOptions::new(&api.url, &clerk.url);
    options.queue = Some(QueueDev {
        api_url: proxy.url.clone(),
        max_retries: 2,
    });
    let relay = RelayDev::start(&options);
    let users = clerk.users();
    let id = |u: &Json| u["id"].as_str().unwrap().to_owned();

    // Healthy: a delivery is queued, then applied through a batch.
    let (s, answer) = deliver(&relay, "user.created", &users[0], now_ms());
    assert_eq!(
        (s, answer["queued"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    let first = id(&users[0]);
    assert!(
        wait_until(Duration::from_secs(60), || table(&api, "live=true")
            .get(&first)
            .is_some_and(|r| r["sync_status"] == "synced")),
        "{}",
        relay.logs()
    );

    // Down for the relay: the other five are queued (200), tried three
    // times each, dead-lettered, and their record_failure tried too.
    proxy.down.store(true, Ordering::SeqCst);
    let mut ops = Vec::new();
    for u in &users[1..] {
        let (s, answer) = deliver(&relay, "user.updated", u, now_ms());
        assert_eq!(s, 200, "{answer}");
        ops.push(answer["operation_id"].as_str().unwrap().to_owned());
    }
    assert!(
        wait_until(Duration::from_secs(90), || ops
            .iter()
            .all(|op| proxy.attempts(op) >= 4)),
        "attempts: {:?}\n{}",
        ops.iter().map(|op| proxy.attempts(op)).collect::<Vec<_>>(),
        relay.logs()
    );
    proxy.down.store(false, Ordering::SeqCst);

    // Back: the dead letters are recorded as failed rows.
    let dead: Vec<String> = users[1..].iter().map(id).collect();
    assert!(
        wait_until(Duration::from_secs(90), || {
            let failed = table(&api, "sync_status=failed");
            dead.iter().all(|d| failed.contains_key(d))
        }),
        "{}",
        relay.logs()
    );
    let failed = table(&api, "sync_status=failed");
    for d in &dead {
        let error = failed[d]["sync_error"].as_str().unwrap_or("");
        assert!(error.contains("retries_exhausted"), "{d}: {error}");
    }
    let (s, audit) = get_with(
        &format!("{}/internal/users/{}", api.url, dead[0]),
        &[("authorization".into(), format!("Bearer {DEV_API_SECRET}"))],
    );
    assert_eq!(s, 200);
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "failed" && a["error"] == "retries_exhausted"),
        "{audit}"
    );

    // The 15-minute cron's `failed` re-sync heals them from Clerk.
    let cron = format!("{}/cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*", relay.url);
    assert_eq!(get(&cron).0, 200);
    assert!(
        wait_until(Duration::from_secs(120), || {
            let live = table(&api, "live=true");
            live.len() == 6 && live.values().all(|r| r["sync_status"] == "synced")
        }),
        "{:?}\n{}",
        table(&api, "live=true"),
        relay.logs()
    );
    assert_table_is_clerk(&api, &clerk);
}
