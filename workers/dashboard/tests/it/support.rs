//! The dashboard under `wrangler dev`, and a client that does not follow
//! redirects and shows every header.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use clerk_sync_testkit::prelude::*;
pub use serde_json::{json, Value as Json};

/// `workers/dashboard/.dev.vars.example`'s password.
pub const DEV_PASSWORD: &str = "dev-dashboard-password";
pub const DEV_SESSION_SECRET: &str = "dev-session-secret-0123456789abcdef0123456789abcdef";

/// A bound for a broken start on a busy machine, not a wait.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The dashboard's built bundle (`workers/dashboard/build/`, written by its
/// `[build]` command: `scripts/test.sh` runs it) in `wrangler dev`, with
/// the settings given.
pub struct DashboardDev {
    pub url: String,
    port: u16,
    dir: PathBuf,
    /// `-c` configs beside the dashboard's own.
    others: Vec<String>,
    process: Option<Process>,
}

impl DashboardDev {
    pub fn start(settings: &[(&str, &str)]) -> Self {
        Self::start_with(settings, "", &[])
    }

    /// With `extra` appended to its `wrangler.toml` (service bindings, the
    /// alerts' cron and Durable Object) and more Workers' configs (`-c`,
    /// relative to its directory, written by `prepare`) in the same
    /// `wrangler dev`, as production binds them.
    pub fn start_with(settings: &[(&str, &str)], extra: &str, others: &[(&str, Prepare)]) -> Self {
        let main = repo_root().join("workers/dashboard/build/index.js");
        assert!(
            main.exists(),
            "{} is missing: build the dashboard with `bash scripts/test.sh`",
            main.display()
        );
        let dir = TempDir::new("dashboard-dev").keep();
        let vars: String = settings
            .iter()
            .map(|(k, v)| format!("{k} = {}\n", json!(v)))
            .collect();
        std::fs::write(
            dir.join("wrangler.toml"),
            format!(
                "name = \"clerk-sync-dashboard\"\nmain = \"{}\"\ncompatibility_date = \"2026-04-20\"\n{extra}\n[vars]\n{vars}",
                main.display()
            ),
        )
        .unwrap();
        for (_, prepare) in others {
            prepare(&dir);
        }
        let others: Vec<String> = others.iter().map(|(c, _)| c.to_string()).collect();
        let (process, port) = start_on_free_ports(
            START_TIMEOUT,
            || {
                let port = free_port();
                (Self::spawn(&dir, &others, port), port)
            },
            |port| try_get_status(&format!("http://127.0.0.1:{port}/login")).is_some(),
        );
        DashboardDev {
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            others,
            process: Some(process),
        }
    }

    fn spawn(dir: &std::path::Path, others: &[String], port: u16) -> Process {
        let mut dev = Command::new(repo_root().join("node_modules/.bin/wrangler"));
        dev.env("WRANGLER_SEND_METRICS", "false")
            .current_dir(dir)
            .args(["dev", "-c", "wrangler.toml"]);
        for config in others {
            dev.args(["-c", config]);
        }
        dev.args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("--show-interactive-dev-session=false");
        Process::spawn(
            "wrangler dev (dashboard)",
            dev,
            &dir.join("wrangler-dev.log"),
            Some(dir),
        )
    }

    /// Stops the process and starts it again on the same storage and port.
    pub fn restart(&mut self) {
        drop(self.process.take());
        wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
        // On the same port: the browser and the test reach it there.
        let mut process = Self::spawn(&self.dir, &self.others, self.port);
        let login = format!("{}/login", self.url);
        process.wait_ready(START_TIMEOUT, || try_get_status(&login).is_some());
        self.process = Some(process);
    }

    pub fn logs(&self) -> String {
        self.process.as_ref().map(Process::logs).unwrap_or_default()
    }
}

/// Writes a Worker's config (and its state) into the dashboard's directory.
pub type Prepare<'a> = &'a dyn Fn(&std::path::Path);

/// The dev settings, pointed at this main API and relay.
pub fn settings<'a>(api_url: &'a str, relay_url: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("DASHBOARD_PASSWORD", DEV_PASSWORD),
        ("SESSION_SECRET", DEV_SESSION_SECRET),
        ("API_URL", api_url),
        ("API_SECRET", DEV_API_SECRET),
        ("RELAY_URL", relay_url),
        ("ADMIN_SECRET", DEV_ADMIN_SECRET),
    ]
}

/// An answer with its headers and body as text.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `name=value` of the `Set-Cookie` header, as a browser would send it back.
    pub fn cookie_pair(&self) -> Option<String> {
        self.header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_owned())
    }

    /// The number in `<td … id="count-{name}">N</td>`.
    pub fn count(&self, name: &str) -> Option<u64> {
        let marker = format!("id=\"count-{name}\">");
        let at = self.body.find(&marker)? + marker.len();
        self.body[at..].split('<').next()?.trim().parse().ok()
    }
}

/// One request; redirects are not followed.
pub fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Page {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match if method == "GET" {
        req.call()
    } else {
        req.send_string(body)
    } {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), resp.header(&n).unwrap_or_default().to_owned()))
        .collect();
    Page {
        status,
        headers,
        body: resp.into_string().unwrap_or_default(),
    }
}

/// A sign-in form post.
pub fn sign_in(dash: &DashboardDev, password: &str, origin: Option<&str>) -> Page {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("password", password)
        .finish();
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    call("POST", &format!("{}/login", dash.url), &headers, &body)
}

/// The main API's bearer (`API_SECRET`), with a JSON body.
pub fn api_bearer() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
        ("content-type".into(), "application/json".into()),
    ]
}

/// Posts `commands` to the main API as one batch, as the relay would; the answer.
pub fn post_batch(api: &MainApiDev, commands: Vec<Json>) -> Json {
    let body = json!({"version": 1, "commands": commands}).to_string();
    let (s, answer) = post(
        &format!("{}/internal/clerk-sync/batch", api.url),
        &api_bearer(),
        body.as_bytes(),
    );
    assert_eq!(s, 200, "{answer}");
    answer
}

/// The main API's `GET /internal/sync/status`.
pub fn sync_status(api: &MainApiDev) -> Json {
    let (s, status) = get_with(&format!("{}/internal/sync/status", api.url), &api_bearer());
    assert_eq!(s, 200, "{status}");
    status
}

/// Everything the dashboard reads, as `npm run dev` runs it, on free ports:
/// the main API on a local D1, the stand-in Clerk API with `clerk_users`
/// users, the relay with the re-sync Worker reading it, and the dashboard
/// in front of both.
pub struct Stack {
    pub api: MainApiDev,
    pub clerk: ClerkStandIn,
    pub relay: RelayDev,
    pub dash: DashboardDev,
}

impl Stack {
    pub fn start(clerk_users: usize) -> Self {
        Self::start_with(clerk_users, |_| {})
    }

    /// As [`Stack::start`], with the relay's and re-sync Worker's settings
    /// changed by `relay` first (a small `page_size`, say).
    pub fn start_with(clerk_users: usize, relay: impl FnOnce(&mut RelayDevOptions)) -> Self {
        let api = MainApiDev::start();
        let clerk = ClerkStandIn::start(clerk_users, &[]);
        let mut options = RelayDevOptions::new(&api.url, &clerk.url);
        relay(&mut options);
        let relay = RelayDev::start(&options);
        let dash = DashboardDev::start(&settings(&api.url, &relay.url));
        Stack {
            api,
            clerk,
            relay,
            dash,
        }
    }

    /// A request to the relay's admin routes with `ADMIN_SECRET`.
    pub fn admin(&self, method: &str, path: &str, body: &str) -> (u16, Json) {
        let url = format!("{}{path}", self.relay.url);
        let headers = vec![
            ("authorization".into(), format!("Bearer {DEV_ADMIN_SECRET}")),
            ("content-type".into(), "application/json".into()),
        ];
        if method == "GET" {
            get_with(&url, &headers)
        } else {
            request(method, &url, &headers, body.as_bytes())
        }
    }

    /// Starts a re-sync run with this body and waits until it has ended; its status.
    pub fn resync(&self, body: &str) -> Json {
        let (s, started) = self.admin("POST", "/admin/resync", body);
        assert_eq!(s, 202, "{started}");
        let path = format!("/admin/resync/{}", started["run_id"].as_str().unwrap());
        let mut status = Json::Null;
        let ended = wait_until(Duration::from_secs(300), || {
            status = self.admin("GET", &path, "").1;
            status["state"] != "running"
        });
        assert!(
            ended,
            "the run did not end: {status}\n{}",
            self.relay.logs()
        );
        status
    }
}
