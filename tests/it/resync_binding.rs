//! The relay's `RESYNC` service binding in plain workerd, against a stub
//! re-sync Worker (JavaScript, below) that echoes what it was sent: admin
//! requests pass as they came and come back as answered, `/health` reports
//! the stub's state, a dead binding is 502, and a cron trigger is posted on.
//! Needs `dist/` from `scripts/test.sh`; ignored by a plain `cargo test`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use clerk_sync_testkit::prelude::*;
use clerk_sync_testkit::relay::relay_dist;
use clerk_sync_testkit::tempdir::TempDir;
use clerk_sync_testkit::workerd::workerd_bin;

/// The stub: `/internal/health` answers off (naming a variable) until an
/// admin request to `/admin/turn-on`; `/internal/cron` answers 202 only to
/// the relay's exact body; every other request is echoed back as JSON with
/// status 418 and a content type of its own.
const STUB: &str = r#"
let on = false;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/internal/health") {
      const body = on ? { ok: true, resync: "on" }
                      : { ok: true, resync: "off", problems: ["CLERK_SECRET_KEY", "sk_live_value"] };
      return Response.json(body);
    }
    if (url.pathname === "/internal/cron") {
      const body = await request.text();
      const ok = request.method === "POST" && body === '{"cron":"*/15 * * * *"}'
        && request.headers.get("content-type") === "application/json";
      return new Response("{}", { status: ok ? 202 : 400 });
    }
    if (url.pathname === "/admin/turn-on") on = true;
    const headers = [...request.headers].filter(([k]) => k !== "cf-connecting-ip");
    return new Response(JSON.stringify({
      ok: false, error: "echo", method: request.method, host: url.host,
      path: url.pathname, search: url.search, headers, body: await request.text(),
    }), { status: 418, headers: { "content-type": "application/json; charset=utf-8" } });
  },
};
"#;

/// Calls the relay's `scheduled()` through a service binding, with the cron
/// in `?cron=`.
const DRIVER: &str = r#"
export default {
  async fetch(request, env) {
    const cron = new URL(request.url).searchParams.get("cron");
    const result = await env.RELAY.scheduled({ cron, scheduledTime: Date.now() });
    return Response.json(result);
  },
};
"#;

/// The relay with `RESYNC` bound to `resync` (the stub, or a dead address),
/// and the driver on a second port.
struct Stack {
    relay: String,
    driver: String,
    process: Process,
    _dir: TempDir,
}

impl Stack {
    fn start(dead_binding: bool) -> Self {
        let dir = TempDir::new("workerd-resync");
        let dist = relay_dist();
        assert!(
            dist.join("index.js").exists(),
            "no relay bundle: scripts/test.sh"
        );
        let mut modules = vec![embed(&dist, dir.path(), "index.js", "esModule")];
        for entry in std::fs::read_dir(&dist).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".wasm") {
                modules.push(embed(&dist, dir.path(), &name, "wasm"));
            }
        }
        std::fs::write(dir.path().join("stub.js"), STUB).unwrap();
        std::fs::write(dir.path().join("driver.js"), DRIVER).unwrap();
        let mut bindings: Vec<String> = relay_bindings("http://127.0.0.1:9")
            .iter()
            .map(|(k, v)| format!("(name = \"{k}\", text = \"{v}\")"))
            .collect();
        bindings.push("(name = \"RESYNC\", service = \"resync\")".into());
        let resync = if dead_binding {
            format!(
                "(name = \"resync\", external = (address = \"127.0.0.1:{}\", http = ()))",
                free_port()
            )
        } else {
            "(name = \"resync\", worker = (modules = [(name = \"stub.js\", esModule = embed \"stub.js\")], compatibilityDate = \"2026-04-20\"))".into()
        };
        let (relay_port, driver_port) = (free_port(), free_port());
        let config = format!(
            r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = (modules = [ {modules} ], compatibilityDate = "2026-04-20", bindings = [ {bindings} ])),
    {resync},
    (name = "driver", worker = (modules = [(name = "driver.js", esModule = embed "driver.js")],
      compatibilityDate = "2026-04-20", compatibilityFlags = ["service_binding_extra_handlers"],
      bindings = [(name = "RELAY", service = "main")])),
  ],
  sockets = [
    (name = "relay", address = "127.0.0.1:{relay_port}", http = (), service = "main"),
    (name = "driver", address = "127.0.0.1:{driver_port}", http = (), service = "driver"),
  ],
);
"#,
            modules = modules.join(", "),
            bindings = bindings.join(", "),
        );
        let config_path = dir.path().join("config.capnp");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(workerd_bin());
        command
            .args(["serve", "--verbose", "--experimental"])
            .arg(&config_path);
        let mut process = Process::spawn(
            "workerd",
            command,
            &dir.path().join("workerd.log"),
            Some(dir.path()),
        );
        process.wait_ready(Duration::from_secs(120), || {
            wait_for_port(relay_port, Duration::from_millis(100))
        });
        Stack {
            relay: format!("http://127.0.0.1:{relay_port}"),
            driver: format!("http://127.0.0.1:{driver_port}"),
            process,
            _dir: dir,
        }
    }

    /// The relay's JSON log lines with this `msg`.
    fn lines(&self, msg: &str) -> Vec<Value> {
        crate::logs::request_lines(&self.process.logs())
            .into_iter()
            .filter(|l| l["msg"] == msg)
            .collect()
    }
}

/// Links `name` from the bundle beside the config; its capnp module entry.
fn embed(dist: &Path, dir: &Path, name: &str, kind: &str) -> String {
    std::os::unix::fs::symlink(dist.join(name), dir.join(name)).unwrap();
    format!("(name = \"{name}\", {kind} = embed \"{name}\")")
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn admin_requests_pass_through_the_binding_as_they_came() {
    let stack = Stack::start(false);
    let (s, health, _) = get(&format!("{}/health", stack.relay));
    assert_eq!(s, 200, "{health}");
    assert_eq!(health["resync"], "off");
    assert_eq!(health["resync_problems"], json!(["CLERK_SECRET_KEY"]));

    let headers = vec![
        (
            "authorization".to_string(),
            "Bearer admin-marker".to_string(),
        ),
        ("content-type".to_string(), "application/json".to_string()),
        ("x-not-passed".to_string(), "no".to_string()),
    ];
    let body = br#"{"mode":"full"}"#;
    let url = format!("{}/admin/resync?dry_run=1&x=%20", stack.relay);
    let (s, echo) = post(&url, &headers, body);
    assert_eq!(s, 418, "{echo}");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["host"], "resync");
    assert_eq!(echo["path"], "/admin/resync");
    assert_eq!(echo["search"], "?dry_run=1&x=%20");
    assert_eq!(echo["body"], r#"{"mode":"full"}"#);
    let passed: Vec<&str> = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(passed.contains(&"authorization") && passed.contains(&"content-type"));
    assert!(!passed.contains(&"x-not-passed"), "{passed:?}");

    let (s, echo, response_headers) = get(&format!("{}/admin/runs/7", stack.relay));
    assert_eq!(
        (s, echo["method"].as_str(), echo["body"].as_str()),
        (418, Some("GET"), Some(""))
    );
    assert!(
        response_headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-type")
                && v == "application/json; charset=utf-8"),
        "{response_headers:?}"
    );

    let (s, _) = post(&format!("{}/admin/turn-on", stack.relay), &headers, b"");
    assert_eq!(s, 418);
    let (s, health, _) = get(&format!("{}/health", stack.relay));
    assert_eq!((s, health["resync"].as_str()), (200, Some("on")));
    assert!(health.get("resync_problems").is_none());

    let over = vec![b' '; 64 * 1024 + 1];
    let (s, r) = post(&url, &headers, &over);
    assert_eq!((s, r["error"].as_str()), (413, Some("payload_too_large")));

    let lines = stack.lines("request");
    let admin: Vec<&Value> = lines.iter().filter(|l| l["path"] == "admin").collect();
    assert_eq!(admin.len(), 4, "{lines:?}");
    assert_eq!(
        (&admin[0]["status"], &admin[0]["outcome"]),
        (&json!(418), &json!("relayed"))
    );
    let logs = stack.process.logs();
    for absent in ["admin-marker", "dry_run", "mode", "/admin/resync"] {
        assert!(!logs.contains(absent), "{absent} in the logs");
    }
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_cron_trigger_is_posted_to_the_resync_worker() {
    let stack = Stack::start(false);
    let (s, _, _) = get(&format!("{}/?cron=*/15%20*%20*%20*%20*", stack.driver));
    assert_eq!(s, 200);
    let found =
        clerk_sync_testkit::wait_until(Duration::from_secs(30), || !stack.lines("cron").is_empty());
    assert!(found, "{}", stack.process.logs());
    let line = &stack.lines("cron")[0];
    assert_eq!(line["cron"], "*/15 * * * *");
    assert_eq!(
        (&line["outcome"], &line["status"]),
        (&json!("ok"), &json!(202))
    );
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_dead_binding_is_502_for_admin_and_unavailable_on_health() {
    let stack = Stack::start(true);
    let (s, r) = post(&format!("{}/admin/resync", stack.relay), &[], b"{}");
    assert_eq!(
        (s, r["error"].as_str()),
        (502, Some("resync_unavailable")),
        "{r}"
    );
    let (s, health, _) = get(&format!("{}/health", stack.relay));
    assert_eq!((s, health["resync"].as_str()), (200, Some("unavailable")));
}
