//! `wrangler dev` servers for the end-to-end suites, each on free ports with
//! its own persistence directory:
//!
//! - [`MainApiDev`]: the reference main API on a local D1 (migrations applied);
//! - [`RelayDev`]: the relay with the re-sync Worker in the same process
//!   (`wrangler dev -c relay -c resync`), as `npm run dev` runs them, from
//!   configs generated here around the built bundles (`dist/` and
//!   `workers/resync/build/`, both built by `scripts/test.sh`), so that each
//!   test sets its own URLs, rate limit and secrets. [`RelayDev::restart`]
//!   kills the process and starts it again on the same storage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::http::try_get_status;
use crate::ports::free_port;
use crate::process::{self, Process};
use crate::relay::{relay_dist, DEV_API_SECRET, DEV_QUERY_SECRET, DEV_SIGNING_SECRET};
use crate::tempdir::TempDir;

/// `workers/resync/.dev.vars.example`'s admin bearer.
pub const DEV_ADMIN_SECRET: &str = "test-admin-secret";

/// How long `wrangler dev` may take to answer: a bound for a broken start
/// on a busy machine, not a wait. Startup includes the main API's Worker
/// build (`[build] command`), a full compile when `scripts/test.sh` has not
/// built it just before.
const START_TIMEOUT: Duration = Duration::from_secs(900);

fn wrangler() -> Command {
    let mut c = Command::new(crate::repo_root().join("node_modules/.bin/wrangler"));
    c.env("WRANGLER_SEND_METRICS", "false");
    c
}

/// The reference main API (`examples/main-api`) in `wrangler dev`.
pub struct MainApiDev {
    pub url: String,
    pub port: u16,
    process: Process,
}

impl MainApiDev {
    pub fn start() -> Self {
        let api_dir = crate::repo_root().join("examples/main-api");
        // Removed by the process helper's watchdog once the test process is gone.
        let persist = TempDir::new("main-api").keep();
        let mut migrate = wrangler();
        migrate
            .current_dir(&api_dir)
            .args(["d1", "migrations", "apply", "DB", "--local", "--persist-to"])
            .arg(&persist);
        let (ok, out) = process::run("wrangler d1 migrations apply", migrate, START_TIMEOUT);
        assert!(ok, "migrations failed: {out}");

        let start = || {
            let port = free_port();
            let mut dev = wrangler();
            dev.current_dir(&api_dir)
                .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
                .args(["--inspector-port", &free_port().to_string()])
                .arg("--persist-to")
                .arg(&persist)
                .args(["--var", &format!("API_SECRET:{DEV_API_SECRET}")])
                .arg("--show-interactive-dev-session=false");
            let process = Process::spawn(
                "wrangler dev (main API)",
                dev,
                &persist.join("wrangler-dev.log"),
                Some(&persist),
            );
            (process, port)
        };
        let health =
            |port: &u16| try_get_status(&format!("http://127.0.0.1:{port}/health")) == Some(200);
        let (process, port) = process::start_on_free_ports(START_TIMEOUT, start, health);
        let url = format!("http://127.0.0.1:{port}");
        MainApiDev { url, port, process }
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// CPU used so far by its processes, by command name.
    pub fn cpu(&self) -> BTreeMap<String, Duration> {
        self.process.group_cpu()
    }
}

/// What a [`RelayDev`] is set up with.
#[derive(Debug, Clone)]
pub struct RelayDevOptions {
    pub api_url: String,
    pub clerk_url: String,
    /// `CLERK_RATE_LIMIT_PER_10S`.
    pub rate_limit: u32,
    /// `RESYNC_PAGE_SIZE`.
    pub page_size: u32,
    /// `CLERK_SECRET_KEY`; `None` leaves it unset (re-sync off).
    pub clerk_key: Option<String>,
    /// `RESYNC_REQUEST_TIMEOUT_MS`.
    pub request_timeout_ms: u32,
    /// Queue mode (`DELIVERY_MODE=queue`) with small local queue settings,
    /// the relay's calls going to this URL (the re-sync Worker's stay on
    /// `api_url`); `None`: direct mode.
    pub queue: Option<QueueDev>,
}

/// The relay's queue mode in a [`RelayDev`]: where its consumer posts, and
/// the deliveries queue's `max_retries` (batches of 1 s, retry delays of
/// half a message's age from 1 s).
#[derive(Debug, Clone)]
pub struct QueueDev {
    pub api_url: String,
    pub max_retries: u32,
}

impl RelayDevOptions {
    pub fn new(api_url: &str, clerk_url: &str) -> Self {
        Self {
            api_url: api_url.into(),
            clerk_url: clerk_url.into(),
            rate_limit: 100,
            page_size: 500,
            clerk_key: Some(crate::clerk::STANDIN_SECRET_KEY.into()),
            request_timeout_ms: 30_000,
            queue: None,
        }
    }
}

/// The relay and the re-sync Worker in one `wrangler dev`.
pub struct RelayDev {
    pub url: String,
    port: u16,
    dir: PathBuf,
    process: Option<Process>,
}

impl RelayDev {
    pub fn start(options: &RelayDevOptions) -> Self {
        let dir = TempDir::new("relay-dev").keep();
        write_configs(&dir, options);
        let (process, port) = process::start_on_free_ports(
            START_TIMEOUT,
            || {
                let port = free_port();
                (Self::spawn(&dir, port), port)
            },
            |port| try_get_status(&format!("http://127.0.0.1:{port}/health")).is_some(),
        );
        RelayDev {
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            process: Some(process),
        }
    }

    fn spawn(dir: &Path, port: u16) -> Process {
        let mut dev = wrangler();
        dev.current_dir(dir)
            .args([
                "dev",
                "-c",
                "relay/wrangler.toml",
                "-c",
                "resync/wrangler.toml",
            ])
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("--show-interactive-dev-session=false");
        Process::spawn(
            "wrangler dev (relay + re-sync)",
            dev,
            &dir.join("wrangler-dev.log"),
            Some(dir),
        )
    }

    /// Kills the whole process group (no graceful stop: as if the machine
    /// died) and starts it again on the same storage and port.
    pub fn restart(&mut self) {
        if let Some(p) = self.process.take() {
            let pgid = p.pid();
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            drop(p);
        }
        crate::wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
        // On the same port: the run under test is reached there.
        let mut process = Self::spawn(&self.dir, self.port);
        let health = format!("{}/health", self.url);
        process.wait_ready(START_TIMEOUT, || try_get_status(&health).is_some());
        self.process = Some(process);
    }

    pub fn logs(&self) -> String {
        self.process.as_ref().map(Process::logs).unwrap_or_default()
    }

    /// CPU used so far by its processes since it was last started, by
    /// command name.
    pub fn cpu(&self) -> BTreeMap<String, Duration> {
        self.process
            .as_ref()
            .map(Process::group_cpu)
            .unwrap_or_default()
    }

    /// The JSON log lines with this `msg` (`resync`, `resync_admin`, …).
    pub fn log_lines(&self, msg: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("wrangler-dev.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["msg"] == msg)
            .collect()
    }
}

/// Queue mode's lines of the relay's `wrangler.toml`, after its `[vars]`:
/// both queues, 1 s batches of up to 100, `max_retries` for deliveries and
/// 30 for dead letters.
pub fn queue_settings(max_retries: u32) -> String {
    format!(
        r#"DELIVERY_MODE = "queue"
[[queues.producers]]
binding = "SYNC_QUEUE"
queue = "clerk-sync-deliveries"
[[queues.producers]]
binding = "SYNC_DLQ"
queue = "clerk-sync-dlq"
[[queues.consumers]]
queue = "clerk-sync-deliveries"
max_batch_size = 100
max_batch_timeout = 1
max_retries = {retries}
dead_letter_queue = "clerk-sync-dlq"
[[queues.consumers]]
queue = "clerk-sync-dlq"
max_batch_size = 100
max_batch_timeout = 1
max_retries = 30
"#,
        retries = max_retries
    )
}

/// The relay's `FORWARD_TIMEOUT_MS` is the most it allows (14 s, under
/// Svix's 15): a main API under `wrangler dev` writing its first rows to a
/// fresh local D1 on a busy 2-core machine once took more than the default
/// 8 s, and a test of something else failed with the relay's 504.
fn write_configs(dir: &Path, o: &RelayDevOptions) {
    let root = crate::repo_root();
    let relay_main = relay_dist().join("index.js");
    let resync_main = root.join("workers/resync/build/index.js");
    for (main, what) in [
        (&relay_main, "the relay"),
        (&resync_main, "the re-sync Worker"),
    ] {
        assert!(
            main.exists(),
            "{} is missing: build {what} with `bash scripts/test.sh`",
            main.display()
        );
    }
    let write = |path: &Path, text: String| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        &dir.join("relay/wrangler.toml"),
        format!(
            r#"name = "clerk-sync"
main = "{main}"
compatibility_date = "2026-04-20"
[[services]]
binding = "RESYNC"
service = "clerk-sync-resync"
[triggers]
crons = ["0 3 * * *", "*/15 * * * *"]
[vars]
API_URL = "{api}"
API_SYNC_PATH = "/internal/clerk-sync"
FORWARD_TIMEOUT_MS = "14000"
MAX_BODY_BYTES = "262144"
ALLOW_UNSIGNED_WEBHOOKS = "false"
"#,
            main = relay_main.display(),
            api = o.queue.as_ref().map_or(&o.api_url, |q| &q.api_url),
        ) + &o
            .queue
            .as_ref()
            .map(|q| queue_settings(q.max_retries))
            .unwrap_or_default(),
    );
    write(
        &dir.join("relay/.dev.vars"),
        format!(
            "CLERK_WEBHOOK_SECRET=\"{DEV_SIGNING_SECRET}\"\nWEBHOOK_QUERY_SECRET=\"{DEV_QUERY_SECRET}\"\nAPI_SECRET=\"{DEV_API_SECRET}\"\n"
        ),
    );
    write(
        &dir.join("resync/wrangler.toml"),
        format!(
            r#"name = "clerk-sync-resync"
main = "{main}"
compatibility_date = "2026-04-20"
[[durable_objects.bindings]]
name = "RESYNC_COORDINATOR"
class_name = "ResyncCoordinator"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["ResyncCoordinator"]
[vars]
API_URL = "{api}"
CLERK_API_URL = "{clerk}"
CLERK_RATE_LIMIT_PER_10S = "{rate}"
RESYNC_PAGE_SIZE = "{page}"
RESYNC_REQUEST_TIMEOUT_MS = "{timeout}"
"#,
            main = resync_main.display(),
            api = o.api_url,
            clerk = o.clerk_url,
            rate = o.rate_limit,
            page = o.page_size,
            timeout = o.request_timeout_ms,
        ),
    );
    let mut secrets =
        format!("ADMIN_SECRET=\"{DEV_ADMIN_SECRET}\"\nAPI_SECRET=\"{DEV_API_SECRET}\"\n");
    if let Some(key) = &o.clerk_key {
        secrets.push_str(&format!("CLERK_SECRET_KEY=\"{key}\"\n"));
    }
    write(&dir.join("resync/.dev.vars"), secrets);
}
