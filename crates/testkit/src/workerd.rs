//! A built Worker bundle (what `wrangler deploy --dry-run --outdir` writes:
//! an `index.js` and the `.wasm` files it imports) served by plain
//! `workerd serve` on a free loopback port, with text bindings, outbound
//! fetches allowed to loopback. Started through [`Process`], stopped on drop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;

use crate::ports::free_port;
use crate::process::Process;
use crate::tempdir::TempDir;

/// How long workerd may take to listen: a bound for a broken start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a log line may take to reach the file: a bound, not a wait.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// A workerd process serving one bundle.
pub struct Workerd {
    pub port: u16,
    pub base_url: String,
    // Before `_dir`: the process stops before its directory goes.
    process: Process,
    _dir: TempDir,
}

impl Workerd {
    /// Serves the relay bundle ([`crate::relay::relay_dist`]).
    pub fn serve_relay(bindings: &[(String, String)]) -> Self {
        Self::serve(&crate::relay::relay_dist(), bindings)
    }

    /// Serves any bundle directory (an `index.js` plus the `.wasm` files it imports).
    pub fn serve(dist: &Path, bindings: &[(String, String)]) -> Self {
        assert!(
            dist.join("index.js").exists(),
            "{} has no index.js: build it with `bash scripts/test.sh` (or `npx wrangler deploy --dry-run --outdir dist`)",
            dist.display()
        );
        let dir = TempDir::new("workerd");
        // capnp embeds are relative to the config file: link the bundle beside it.
        let link = |name: &std::ffi::OsStr| {
            std::os::unix::fs::symlink(dist.join(name), dir.path().join(name)).unwrap()
        };
        link("index.js".as_ref());
        let mut modules = vec!["(name = \"index.js\", esModule = embed \"index.js\")".to_string()];
        for entry in std::fs::read_dir(dist).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let name = path.file_name().unwrap();
                link(name);
                modules.push(format!(
                    "(name = \"{0}\", wasm = embed \"{0}\")",
                    name.to_string_lossy()
                ));
            }
        }
        let bindings: Vec<String> = bindings
            .iter()
            .map(|(k, v)| format!("(name = \"{k}\", text = \"{}\")", capnp_escape(v)))
            .collect();
        let start = || {
            let port = free_port();
            let config = format!(
                r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["public", "private", "local"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [ {modules} ],
  compatibilityDate = "2026-04-20",
  bindings = [ {bindings} ],
  globalOutbound = "loopback",
);
"#,
                modules = modules.join(", "),
                bindings = bindings.join(", "),
            );
            let config_path = dir.path().join("config.capnp");
            std::fs::write(&config_path, config).unwrap();
            let mut command = std::process::Command::new(workerd_bin());
            command.args(["serve", "--verbose"]).arg(&config_path);
            let process = Process::spawn(
                "workerd",
                command,
                &dir.path().join("workerd.log"),
                Some(dir.path()),
            );
            (process, port)
        };
        let (process, port) = crate::process::start_on_free_ports(START_TIMEOUT, start, |port| {
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
        });
        Workerd {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            process,
            _dir: dir,
        }
    }

    /// Everything workerd wrote (the worker's `console.log` lines included).
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The JSON log lines the Worker wrote (those with a `msg`).
    pub fn log_lines(&self) -> Vec<Json> {
        self.logs()
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &Json| v.get("msg").is_some())
            .collect()
    }

    /// Waits until the Worker has written at least `n` log lines (its
    /// `console.log` reaches the file a moment after the answer), then
    /// returns them (fewer, if they never came).
    pub fn wait_for_log_lines(&self, n: usize) -> Vec<Json> {
        crate::wait_until(LOG_TIMEOUT, || self.log_lines().len() >= n);
        self.log_lines()
    }

    /// The process id, for reading its RSS and CPU time from /proc.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// `$WORKERD_BIN`, or the one wrangler installed.
pub fn workerd_bin() -> PathBuf {
    std::env::var_os("WORKERD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("node_modules/.bin/workerd"))
}

fn capnp_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
