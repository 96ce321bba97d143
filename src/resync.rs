//! The relay's side of re-sync: what it asks the `clerk-sync-resync` Worker
//! through the `RESYNC` service binding, and how it reads the answers. The
//! re-sync logic, its configuration and its admin authentication all live in
//! that Worker; the relay only passes admin requests on, reports the
//! Worker's health on `/health` and wakes it on each cron. Pure: the glue
//! performs the calls.

use serde_json::Value;

/// The service binding's name in wrangler.toml. Absent: re-sync is off.
pub const BINDING: &str = "RESYNC";

/// The host of every URL sent through the binding: a service binding
/// ignores it, but a `Request` needs an absolute URL.
const ORIGIN: &str = "https://resync";

/// The request headers an admin request keeps on its way to the Worker.
pub const ADMIN_HEADERS: [&str; 2] = ["authorization", "content-type"];

/// A request the glue sends through the `RESYNC` binding, as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResyncCall {
    pub method: String,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// `None` for a request without a body (a GET or HEAD, or nothing sent).
    pub body: Option<Vec<u8>>,
}

impl ResyncCall {
    /// `GET /internal/health`: is re-sync configured?
    pub fn health() -> Self {
        Self {
            method: "GET".into(),
            url: format!("{ORIGIN}/internal/health"),
            headers: Vec::new(),
            body: None,
        }
    }

    /// `POST /internal/cron` with `{"cron":"<the trigger's expression>"}`.
    pub fn cron(cron: &str) -> Self {
        Self {
            method: "POST".into(),
            url: format!("{ORIGIN}/internal/cron"),
            headers: vec![("content-type", "application/json".into())],
            body: Some(serde_json::json!({ "cron": cron }).to_string().into_bytes()),
        }
    }

    /// An admin request as it came: same method, path and query, the
    /// `authorization` and `content-type` headers, and the body.
    pub fn admin(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Self {
        let url = match query {
            Some(q) => format!("{ORIGIN}{path}?{q}"),
            None => format!("{ORIGIN}{path}"),
        };
        // A GET or HEAD `Request` cannot carry a body; nothing sent is no body.
        let body = (!matches!(method, "GET" | "HEAD") && !body.is_empty()).then_some(body);
        Self {
            method: method.to_owned(),
            url,
            headers,
            body,
        }
    }
}

/// How a call through the binding ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncAnswer {
    Answered {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    /// The binding call threw (the Worker is not deployed, crashed, ...).
    Failed,
}

/// What `/health` says of re-sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncHealth {
    On,
    /// No binding (no problems), or the Worker's missing variables by name.
    Off(Vec<String>),
    /// The Worker did not answer, or not with a 200 and a known shape.
    Unavailable,
}

impl ResyncHealth {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off(_) => "off",
            Self::Unavailable => "unavailable",
        }
    }

    /// Reads the Worker's `/internal/health` answer: 200 `{"ok":true,"resync":"on"}`
    /// or 200 `{"ok":true,"resync":"off","problems":[names]}`; anything else is
    /// `Unavailable`. Only names are repeated, so no value can reach `/health`.
    pub fn from_answer(answer: &ResyncAnswer) -> Self {
        let ResyncAnswer::Answered {
            status: 200, body, ..
        } = answer
        else {
            return Self::Unavailable;
        };
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            return Self::Unavailable;
        };
        match v["resync"].as_str() {
            Some("on") => Self::On,
            Some("off") => Self::Off(
                v["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|name| is_variable_name(name))
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => Self::Unavailable,
        }
    }
}

/// `[A-Z][A-Z0-9_]{0,63}`: the shape of a configuration variable's name.
fn is_variable_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// The one log line of a cron trigger: which trigger, and how the Worker
/// answered (never its body).
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct CronLog {
    pub level: &'static str,
    pub msg: &'static str,
    pub cron: String,
    /// `ok`, `rejected` (a non-2xx), `resync_unavailable` or `resync_unconfigured`.
    pub outcome: &'static str,
    pub status: Option<u16>,
    pub duration_ms: u64,
}

impl CronLog {
    /// `answer` is `None` when there is no `RESYNC` binding.
    pub fn new(cron: &str, answer: Option<&ResyncAnswer>, duration_ms: u64) -> Self {
        let (level, outcome, status) = match answer {
            None => ("info", "resync_unconfigured", None),
            Some(ResyncAnswer::Failed) => ("error", "resync_unavailable", None),
            Some(ResyncAnswer::Answered { status, .. }) if (200..300).contains(status) => {
                ("info", "ok", Some(*status))
            }
            Some(ResyncAnswer::Answered { status, .. }) => ("error", "rejected", Some(*status)),
        };
        Self {
            level,
            msg: "cron",
            // A cron expression is configuration, not data; still, keep it short.
            cron: cron.chars().take(64).collect(),
            outcome,
            status,
            duration_ms,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a CronLog always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, body: &str) -> ResyncAnswer {
        ResyncAnswer::Answered {
            status,
            content_type: Some("application/json".into()),
            body: body.into(),
        }
    }

    #[test]
    fn health_reads_on_off_and_names_only() {
        assert_eq!(
            ResyncHealth::from_answer(&answered(200, r#"{"ok":true,"resync":"on"}"#)),
            ResyncHealth::On
        );
        assert_eq!(
            ResyncHealth::from_answer(&answered(
                200,
                r#"{"ok":true,"resync":"off","problems":["CLERK_SECRET_KEY","ADMIN_SECRET","sk_live_abc"]}"#
            )),
            ResyncHealth::Off(vec!["CLERK_SECRET_KEY".into(), "ADMIN_SECRET".into()])
        );
        assert_eq!(
            ResyncHealth::from_answer(&answered(200, r#"{"ok":true,"resync":"off"}"#)),
            ResyncHealth::Off(vec![])
        );
    }

    #[test]
    fn health_is_unavailable_on_anything_else() {
        for a in [
            ResyncAnswer::Failed,
            answered(500, r#"{"ok":true,"resync":"on"}"#),
            answered(503, r#"{"ok":false,"resync":"off"}"#),
            answered(200, "not json"),
            answered(200, r#"{"ok":true}"#),
            answered(200, r#"{"ok":true,"resync":"maybe"}"#),
            answered(200, r#"["on"]"#),
        ] {
            assert_eq!(
                ResyncHealth::from_answer(&a),
                ResyncHealth::Unavailable,
                "{a:?}"
            );
        }
    }

    #[test]
    fn an_admin_call_keeps_method_path_query_and_body() {
        let c = ResyncCall::admin(
            "POST",
            "/admin/resync",
            Some("mode=full&dry=1"),
            vec![("authorization", "Bearer x".into())],
            b"{}".to_vec(),
        );
        assert_eq!(c.method, "POST");
        assert_eq!(c.url, "https://resync/admin/resync?mode=full&dry=1");
        assert_eq!(c.headers, [("authorization", "Bearer x".to_string())]);
        assert_eq!(c.body.as_deref(), Some(&b"{}"[..]));
        let get = ResyncCall::admin("GET", "/admin/runs/1", None, vec![], b"x".to_vec());
        assert_eq!(
            (get.url.as_str(), get.body),
            ("https://resync/admin/runs/1", None)
        );
        let empty = ResyncCall::admin("DELETE", "/admin/x", Some(""), vec![], vec![]);
        assert_eq!(
            (empty.url.as_str(), empty.body),
            ("https://resync/admin/x?", None)
        );
    }

    #[test]
    fn the_cron_call_and_its_log_line() {
        let c = ResyncCall::cron("*/15 * * * *");
        assert_eq!(
            (c.method.as_str(), c.url.as_str()),
            ("POST", "https://resync/internal/cron")
        );
        assert_eq!(c.body.as_deref(), Some(&br#"{"cron":"*/15 * * * *"}"#[..]));
        assert_eq!(
            c.headers,
            [("content-type", "application/json".to_string())]
        );

        let ok = CronLog::new("*/15 * * * *", Some(&answered(202, "{}")), 12);
        assert_eq!(
            ok.to_json(),
            r#"{"level":"info","msg":"cron","cron":"*/15 * * * *","outcome":"ok","status":202,"duration_ms":12}"#
        );
        let bad = CronLog::new("0 * * * *", Some(&answered(500, "secret stuff")), 1);
        assert_eq!(
            (bad.level, bad.outcome, bad.status),
            ("error", "rejected", Some(500))
        );
        assert!(!bad.to_json().contains("secret"));
        let failed = CronLog::new("0 * * * *", Some(&ResyncAnswer::Failed), 1);
        assert_eq!(
            (failed.level, failed.outcome),
            ("error", "resync_unavailable")
        );
        let off = CronLog::new("0 * * * *", None, 0);
        assert_eq!((off.outcome, off.status), ("resync_unconfigured", None));
    }
}
