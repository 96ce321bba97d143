//! The stand-in Clerk Backend API (`standins/clerk-api/server.mjs`) on a
//! free loopback port, with its control surface (`/_standin/*`) as methods.
//! Stopped with its process group on drop (and by `--parent-pid` when the
//! test process is gone).

use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::http::{get, post};
use crate::process::Process;
use crate::tempdir::TempDir;

/// The key the stand-in accepts (`--secret-key` default).
pub const STANDIN_SECRET_KEY: &str = "sk_test_standin";
const READY: &str = "clerk stand-in listening on http://127.0.0.1:";

pub struct ClerkStandIn {
    pub port: u16,
    pub url: String,
    process: Process,
    _dir: TempDir,
}

impl ClerkStandIn {
    /// Starts it with `users` seeded users and these extra flags
    /// (for example `["--rate-limit-per-10s", "20"]`).
    pub fn start(users: usize, flags: &[&str]) -> Self {
        let dir = TempDir::new("clerk-standin");
        let mut command = std::process::Command::new("node");
        command
            .arg(crate::repo_root().join("standins/clerk-api/server.mjs"))
            .args(["--port", "0", "--users", &users.to_string()])
            .args(["--parent-pid", &std::process::id().to_string()])
            .args(flags);
        let log = dir.path().join("clerk.log");
        let mut process = Process::spawn("clerk stand-in", command, &log, None);
        let mut port = 0;
        process.wait_ready(Duration::from_secs(60), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            port = text
                .lines()
                .find_map(|l| l.strip_prefix(READY))
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0);
            port != 0
        });
        ClerkStandIn {
            port,
            url: format!("http://127.0.0.1:{port}"),
            process,
            _dir: dir,
        }
    }

    /// CPU used so far by the stand-in, by command name.
    pub fn cpu(&self) -> std::collections::BTreeMap<String, Duration> {
        self.process.group_cpu()
    }

    fn control(&self, path: &str, body: Option<Json>) -> Json {
        let url = format!("{}/_standin/{path}", self.url);
        let (status, answer) = match body {
            Some(b) => post(
                &url,
                &[("content-type".into(), "application/json".into())],
                b.to_string().as_bytes(),
            ),
            None => {
                let (s, a, _) = get(&url);
                (s, a)
            }
        };
        assert!(
            (200..300).contains(&status),
            "stand-in {path}: {status} {answer}"
        );
        answer
    }

    /// Every user, oldest first, in Clerk's shape: the truth.
    pub fn users(&self) -> Vec<Json> {
        self.control("users", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn user(&self, id: &str) -> Json {
        self.control(&format!("users/{id}"), None)
    }

    /// Creates users (Clerk fields, or the `email` shorthand); returns them.
    pub fn create(&self, users: Json) -> Json {
        self.control("users", Some(users))
    }

    /// Changes a user (its `updated_at` moves forward); returns it.
    pub fn update(&self, id: &str, fields: Json) -> Json {
        let url = format!("{}/_standin/users/{id}", self.url);
        let (status, body) = crate::http::request(
            "PATCH",
            &url,
            &[("content-type".into(), "application/json".into())],
            fields.to_string().as_bytes(),
        );
        assert_eq!(status, 200, "PATCH {id}: {body}");
        body
    }

    pub fn delete(&self, id: &str) {
        let url = format!("{}/_standin/users/{id}", self.url);
        let (status, body) = crate::http::request("DELETE", &url, &[], b"");
        assert!((200..300).contains(&status), "DELETE {id}: {status} {body}");
    }

    pub fn config(&self, settings: Json) -> Json {
        self.control("config", Some(settings))
    }

    /// A scripted change during a run (`{"after": K, "action": …}`).
    pub fn on_request(&self, hook: Json) -> Json {
        self.control("on-request", Some(hook))
    }

    pub fn stats(&self) -> Json {
        self.control("stats", None)
    }

    pub fn reset_stats(&self) {
        self.control("stats/reset", Some(json!({})));
    }
}
