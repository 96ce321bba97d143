//! The alerts end to end: the dashboard's built bundle under `wrangler
//! dev` with its `AlertState` Durable Object, the reference main API, a
//! relay that is first absent and then a loopback stand-in, and a loopback
//! receiver in place of Slack. One message when the relay goes missing,
//! none while it stays missing (across a restart of the dashboard on the
//! same storage), one "resolved" when it answers again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::support::*;

/// A loopback HTTP server: records each request's body, answers with
/// `answer(method, path)`.
fn serve(
    listener: TcpListener,
    answer: fn(&str, &str) -> (u16, String),
) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if method == "POST" {
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let (status, text) = answer(&method, &path);
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    seen
}

/// Slack's incoming webhook answers 200 `ok`.
fn slack(_: &str, _: &str) -> (u16, String) {
    (200, "ok".into())
}

/// A healthy relay that has run no re-sync yet.
fn relay(_: &str, path: &str) -> (u16, String) {
    match path {
        "/health" => (
            200,
            json!({"ok": true, "status": "ok", "version": "0.1.0", "resync": "on"}).to_string(),
        ),
        _ => (
            404,
            json!({"ok": false, "error": "run_not_found"}).to_string(),
        ),
    }
}

/// The dashboard's cron and Durable Object, as its `wrangler.toml` has them.
const ALERTS_CONFIG: &str = r#"[triggers]
crons = ["*/5 * * * *"]
[[durable_objects.bindings]]
name = "ALERT_STATE"
class_name = "AlertState"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["AlertState"]
"#;

/// The dashboard with its Durable Object and cron, restartable on the
/// same storage and port.
struct AlertingDashboard(DashboardDev);

impl std::ops::Deref for AlertingDashboard {
    type Target = DashboardDev;
    fn deref(&self) -> &DashboardDev {
        &self.0
    }
}

impl AlertingDashboard {
    fn start(settings: &[(&str, &str)]) -> Self {
        AlertingDashboard(DashboardDev::start_with(settings, ALERTS_CONFIG, &[]))
    }

    fn restart(&mut self) {
        self.0.restart();
    }

    /// The cron, as `curl …/cdn-cgi/handler/scheduled` fires it.
    fn cron(&self) {
        let page = call(
            "GET",
            &format!("{}/cdn-cgi/handler/scheduled?cron=*/5+*+*+*+*", self.url),
            &[],
            "",
        );
        assert_eq!(page.status, 200, "{}", self.logs());
    }

    fn overview(&self) -> String {
        let form = format!("password={DEV_PASSWORD}");
        let signed_in = call(
            "POST",
            &format!("{}/login", self.url),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &self.url),
            ],
            &form,
        );
        let cookie = signed_in.cookie_pair().expect("signed in");
        let page = call("GET", &format!("{}/", self.url), &[("cookie", &cookie)], "");
        assert_eq!(page.status, 200);
        page.body
    }
}

/// The messages received so far, after a moment for any late one.
fn received(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    thread::sleep(Duration::from_millis(500));
    seen.lock().unwrap().clone()
}

#[test]
#[ignore = "needs the built dashboard and wrangler: scripts/test.sh"]
fn one_message_per_condition_and_one_resolved_across_a_restart() {
    let api = MainApiDev::start();
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let webhook = format!(
        "http://127.0.0.1:{}/services/T0/B0/not-a-real-secret",
        receiver.local_addr().unwrap().port()
    );
    let messages = serve(receiver, slack);
    // Nothing listens here until the relay comes back.
    let relay_port = free_port();
    let relay_url = format!("http://127.0.0.1:{relay_port}");
    let mut vars = settings(&api.url, &relay_url);
    vars.push(("ALERT_WEBHOOK_URL", &webhook));
    let mut dash = AlertingDashboard::start(&vars);

    dash.cron();
    let got = received(&messages);
    assert_eq!(got.len(), 1, "{got:?}\n{}", dash.logs());
    let message: Json = serde_json::from_str(&got[0]).unwrap();
    let text = message["text"].as_str().unwrap();
    assert_eq!(message.as_object().unwrap().len(), 1, "{message}");
    assert!(
        text.starts_with("clerk-sync alert: relay unreachable"),
        "{text}"
    );
    assert!(!text.contains('@') && !text.contains("not-a-real-secret"));

    dash.cron();
    assert_eq!(
        received(&messages).len(),
        1,
        "a condition that persists is not re-sent"
    );

    dash.restart();
    dash.cron();
    assert_eq!(received(&messages).len(), 1, "nor after a restart");
    let page = dash.overview();
    assert!(page.contains("id=\"alerts-active\""), "{page}");
    assert!(page.contains("relay unreachable"));

    let relay_back = TcpListener::bind(("127.0.0.1", relay_port)).unwrap();
    serve(relay_back, relay);
    dash.cron();
    let got = received(&messages);
    assert_eq!(got.len(), 2, "{got:?}\n{}", dash.logs());
    let text = serde_json::from_str::<Json>(&got[1]).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.starts_with("clerk-sync resolved: relay unreachable"),
        "{text}"
    );
    dash.cron();
    assert_eq!(received(&messages).len(), 2, "resolved once");

    let page = dash.overview();
    assert!(page.contains("No active alerts."), "{page}");
    assert!(page.contains("id=\"alerts-history\""));
    assert!(
        !dash.logs().contains("not-a-real-secret"),
        "the webhook URL is never logged"
    );
    drop(api);
}
