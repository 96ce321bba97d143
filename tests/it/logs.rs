//! What the relay logs. Everything workerd wrote during a run (the worker's
//! `console.log` lines and workerd's own) is searched for every configured
//! secret, every signature sent, the query strings, the fixtures' email
//! addresses and the bodies' values; and each request must have produced
//! exactly one structured line with the fixed set of fields.
//!
//! [`Sensitive`] is also used by the fault, bad-input and load runs on
//! their own logs.

use serde_json::Value;

use crate::fixtures;
use clerk_sync_testkit::prelude::*;

/// Strings that must never reach a log, each with what it is (for the failure message).
#[derive(Debug, Default)]
pub struct Sensitive {
    needles: Vec<(String, String)>,
}

/// The keys a request line may have. Anything else is a new field to review.
const FIELDS: [&str; 14] = [
    "level",
    "msg",
    "method",
    "path",
    "operation_id",
    "event_type",
    "clerk_id",
    "command",
    "outcome",
    "status",
    "upstream_status",
    "duration_ms",
    "warning",
    "misconfigured",
];

impl Sensitive {
    /// The dev secrets, the query-secret parameter, and every email address
    /// in the fixtures.
    pub fn new() -> Self {
        let mut s = Self::default();
        s.secret("signing secret", DEV_SIGNING_SECRET);
        s.secret(
            "signing secret key",
            DEV_SIGNING_SECRET.trim_start_matches("whsec_"),
        );
        s.secret("query secret", DEV_QUERY_SECRET);
        s.secret("API secret", DEV_API_SECRET);
        s.secret("authorization header", "Bearer");
        s.secret("query string", "secret=");
        for f in fixtures::ALL {
            let v: Value = serde_json::from_slice(&fixtures::load(f)).unwrap();
            let mut emails = Vec::new();
            collect_strings(&v, &mut |key, value| {
                if key == "email_address" || value.contains('@') {
                    emails.push(value.to_string());
                }
            });
            for e in emails {
                s.secret("fixture email", &e);
            }
        }
        s
    }

    pub fn secret(&mut self, what: &str, value: &str) {
        if !value.is_empty() {
            self.needles.push((what.to_string(), value.to_string()));
        }
    }

    /// The signature values among `headers` (each entry's base64 part).
    pub fn headers(&mut self, headers: &[(String, String)]) {
        for (k, v) in headers {
            if k.ends_with("-signature") {
                for entry in v.split([' ', ',']).filter(|e| e.len() > 8) {
                    self.secret("signature", entry);
                }
            }
        }
    }

    /// A body sent to the relay: the whole of it, and each string value in
    /// it of 4 characters or more, except the ones the log line carries by
    /// design (`type`, `data.id`) and enum-like words (`object`, `status`,
    /// `strategy`).
    pub fn body(&mut self, body: &[u8]) {
        if body.len() >= 16 {
            self.secret("body", &String::from_utf8_lossy(body));
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let data_id = v["data"]["id"].as_str().map(str::to_owned);
        let mut found = Vec::new();
        collect_strings(&v, &mut |key, value| {
            let by_design = matches!(key, "type" | "object" | "status" | "strategy")
                || Some(value) == data_id.as_deref();
            if !by_design && value.chars().count() >= 4 {
                found.push(value.to_string());
            }
        });
        for value in found {
            self.secret("body value", &value);
        }
    }

    /// Fails, naming what leaked, if any needle is in `logs`; and if a
    /// request line has an `@` or a field outside the fixed set.
    pub fn assert_absent_from(&self, logs: &str) {
        assert!(!logs.is_empty(), "no logs captured");
        for (what, needle) in &self.needles {
            if let Some(at) = logs.find(needle.as_str()) {
                let line = logs[..at].rsplit('\n').next().unwrap_or_default();
                panic!(
                    "a {what} ({} bytes) is in the logs, in the line starting {line:.120}",
                    needle.len()
                );
            }
        }
        for line in request_lines(logs) {
            let text = line.to_string();
            assert!(!text.contains('@'), "an address in a log line: {text}");
            for key in line.as_object().unwrap().keys() {
                assert!(
                    FIELDS.contains(&key.as_str()),
                    "unexpected log field {key}: {text}"
                );
            }
        }
    }
}

/// The relay's structured lines in `logs`.
pub fn request_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .filter_map(|l| l.find('{').map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("msg").is_some())
        .collect()
}

/// Calls `f(key, value)` for every string value in `v` (arrays pass their key down).
fn collect_strings(v: &Value, f: &mut impl FnMut(&str, &str)) {
    fn walk(v: &Value, key: &str, f: &mut impl FnMut(&str, &str)) {
        match v {
            Value::String(s) => f(key, s),
            Value::Array(items) => items.iter().for_each(|x| walk(x, key, f)),
            Value::Object(map) => map.iter().for_each(|(k, x)| walk(x, k, f)),
            _ => {}
        }
    }
    walk(v, "", f)
}

/// Asserts that the line has the fields every request line has.
fn assert_well_formed(line: &Value) {
    for key in [
        "level",
        "msg",
        "method",
        "path",
        "outcome",
        "status",
        "duration_ms",
    ] {
        assert!(line.get(key).is_some(), "{key} missing: {line}");
    }
    assert_eq!(line["msg"], "request");
    assert!(
        matches!(line["level"].as_str(), Some("info" | "warn" | "error")),
        "{line}"
    );
}

/// Sends a request and remembers what it carried.
struct Run<'a> {
    relay: &'a Workerd,
    sensitive: &'a mut Sensitive,
    requests: usize,
}

impl Run<'_> {
    fn post(&mut self, query: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
        self.sensitive.headers(headers);
        self.sensitive.body(body);
        self.requests += 1;
        post(
            &format!("{}/webhook{query}", self.relay.base_url),
            headers,
            body,
        )
    }

    fn get(&mut self, path_and_query: &str) -> u16 {
        self.requests += 1;
        get(&format!("{}{path_and_query}", self.relay.base_url)).0
    }

    /// One structured line per request, each well formed, and nothing sensitive anywhere.
    fn check(self) -> Vec<Value> {
        let lines = self.relay.wait_for_log_lines(self.requests);
        assert_eq!(lines.len(), self.requests, "one line per request");
        lines.iter().for_each(assert_well_formed);
        self.sensitive.assert_absent_from(&self.relay.logs());
        lines
    }
}

const QUERY_MARKER: &str = "trace-marker-7f3a";

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn nothing_sensitive_is_logged_on_any_path() {
    let api = StandIn::start();
    let relay = Workerd::serve_relay(&relay_bindings(&api.url));
    let mut sensitive = Sensitive::new();
    sensitive.secret("query string", QUERY_MARKER);
    sensitive.secret("wrong query secret", "wrong-secret-9c1d");
    let mut run = Run {
        relay: &relay,
        sensitive: &mut sensitive,
        requests: 0,
    };
    let good_query = format!("?secret={DEV_QUERY_SECRET}&trace={QUERY_MARKER}");
    for (n, f) in fixtures::ALL.iter().enumerate() {
        let body = fixtures::load(f);
        // Forwarded, then refused by the main API, then with a bad signature.
        api.set(Behaviour::Status(200));
        let (s, _) = run.post(
            &good_query,
            &svix_headers(&format!("msg_log_{n}"), &body),
            &body,
        );
        assert_eq!(s, 200, "{f}");
        api.set(Behaviour::Status(500));
        let (s, _) = run.post(
            &good_query,
            &svix_headers(&format!("msg_log5_{n}"), &body),
            &body,
        );
        assert_eq!(s, 502, "{f}");
        let mut tampered = svix_headers(&format!("msg_logt_{n}"), &body);
        tampered[3].1 = "v1,c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtYmUtbG9nZ2VkISE=".into();
        let (s, _) = run.post(&good_query, &tampered, &body);
        assert_eq!(s, 401, "{f}");
    }
    let body = fixtures::load("captured_user_created.json");
    let headers = svix_headers("msg_log_q", &body);
    assert_eq!(
        run.post("?secret=wrong-secret-9c1d", &headers, &body).0,
        401
    );
    assert_eq!(run.post("", &headers, &body).0, 401);
    let not_json = b"not json, but has new.user@example.com in it".to_vec();
    let h = svix_headers("msg_log_nj", &not_json);
    assert_eq!(run.post(&good_query, &h, &not_json).0, 400);
    assert_eq!(run.get(&format!("/nope?secret={DEV_QUERY_SECRET}")), 404);
    assert_eq!(run.get(&format!("/health?secret={DEV_QUERY_SECRET}")), 200);
    assert_eq!(run.get(&format!("/webhook?secret={DEV_QUERY_SECRET}")), 405);
    let lines = run.check();
    // The line says what happened without the values.
    let forwarded: Vec<&Value> = lines
        .iter()
        .filter(|l| l["outcome"] == "forwarded")
        .collect();
    assert_eq!(forwarded.len(), fixtures::ALL.len());
    assert!(forwarded
        .iter()
        .all(|l| l["clerk_id"].is_string() && l["command"].is_string()));
    assert!(lines.iter().any(|l| l["path"] == "other"));
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn unsigned_and_misconfigured_relays_log_names_not_values() {
    let api = StandIn::start();
    let lax = Workerd::serve_relay(&with_binding(
        relay_bindings(&api.url),
        "ALLOW_UNSIGNED_WEBHOOKS",
        "true",
    ));
    let mut sensitive = Sensitive::new();
    let mut run = Run {
        relay: &lax,
        sensitive: &mut sensitive,
        requests: 0,
    };
    let plain = vec![("content-type".to_string(), "application/json".to_string())];
    let query = format!("?secret={DEV_QUERY_SECRET}");
    for f in fixtures::ALL {
        let body = fixtures::load(f);
        assert_eq!(run.post(&query, &plain, &body).0, 200, "{f}");
    }
    let lines = run.check();
    assert!(lines.iter().all(|l| l["level"] == "warn"
        && l["warning"]
            .as_str()
            .is_some_and(|w| w.contains("unsigned"))));

    // A broken signing secret and an API secret beside it: named, never shown.
    let broken_secret = "whsec_this-value-must-not-leak";
    let api_secret = "api-secret-value-4e1b";
    let bindings = with_binding(
        relay_bindings(&api.url),
        "CLERK_WEBHOOK_SECRET",
        broken_secret,
    );
    let bindings = with_binding(bindings, "API_SECRET", api_secret);
    let broken = Workerd::serve_relay(&bindings);
    let mut sensitive = Sensitive::new();
    sensitive.secret("broken signing secret", "this-value-must-not-leak");
    sensitive.secret("API secret", api_secret);
    let mut run = Run {
        relay: &broken,
        sensitive: &mut sensitive,
        requests: 0,
    };
    let body = fixtures::load("docs_user_created.json");
    assert_eq!(
        run.post(&query, &svix_headers("msg_mc", &body), &body).0,
        500
    );
    assert_eq!(run.get("/health"), 503);
    let lines = run.check();
    assert_eq!(
        lines[0]["misconfigured"],
        serde_json::json!(["CLERK_WEBHOOK_SECRET"])
    );
    assert!(
        api.received().len() == fixtures::ALL.len(),
        "only the unsigned run forwards"
    );
}

#[test]
fn the_checker_finds_each_kind_of_leak() {
    let mut s = Sensitive::new();
    let body = fixtures::load("docs_user_created.json");
    let headers = svix_headers("msg_check", &body);
    s.headers(&headers);
    s.body(&body);
    let signature = headers[3].1.trim_start_matches("v1,").to_string();
    let clean = r#"{"level":"info","msg":"request","method":"POST","path":"/webhook","outcome":"forwarded","status":200,"duration_ms":3,"clerk_id":"user_29w83sxmDNGwOuEthce5gg56FcC","event_type":"user.created"}"#;
    s.assert_absent_from(clean);
    for leak in [
        DEV_API_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "/webhook?secret=x",
        "example@example.org",
        &signature,
        "https://img.clerk.com/xxxxxx",
        "Example",
    ] {
        let line = clean.replace("/webhook", &format!("/webhook {leak}"));
        let caught = std::panic::catch_unwind(|| s.assert_absent_from(&line));
        assert!(caught.is_err(), "{leak} was not caught");
    }
    let extra_field = clean.replace(r#""status""#, r#""body":"x","status""#);
    assert!(std::panic::catch_unwind(|| s.assert_absent_from(&extra_field)).is_err());
}
