//! What the dashboard reads, and how it reads the answers: the main API's
//! `GET /internal/sync/status`, the relay's `GET /health` and the latest
//! re-sync run from the relay's `GET /admin/resync`. Each source's failure
//! is a [`SourceError`] the page shows as text; one source failing never
//! fails the page. Pure: the glue performs the [`Fetch`]es and hands back
//! an [`Answer`] for each.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{DashboardConfig, ADMIN_SECRET, API_SECRET};

pub const SYNC_STATUS_PATH: &str = "/internal/sync/status";
pub const RELAY_HEALTH_PATH: &str = "/health";
pub const LATEST_RUN_PATH: &str = "/admin/resync";
/// Largest answer read from a source; the status answer lists at most a
/// few dozen failed rows.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Per source: the page waits for the slowest one.
pub const FETCH_TIMEOUT_MS: u32 = 5_000;

/// The Worker a request is for. In production a service binding of this
/// name carries it when one is bound (no public hop, no DNS); without one,
/// the request goes to the URL (`API_URL`, `RELAY_URL`) as in development.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Api,
    Relay,
}

impl Service {
    /// The binding's name in `wrangler.toml`'s `[[services]]`.
    pub const fn binding(self) -> &'static str {
        match self {
            Service::Api => "API",
            Service::Relay => "RELAY",
        }
    }
}

/// A request the glue performs: a GET with an optional bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch<'a> {
    pub service: Service,
    pub url: String,
    pub bearer: Option<&'a str>,
}

impl<'a> Fetch<'a> {
    /// A main API path, with `API_SECRET`.
    pub fn api(config: &'a DashboardConfig, path_and_query: &str) -> Self {
        Fetch {
            service: Service::Api,
            url: format!("{}{path_and_query}", config.api_url),
            bearer: Some(config.api_secret.expose()),
        }
    }

    /// A relay admin path, with `ADMIN_SECRET`.
    pub fn relay_admin(config: &'a DashboardConfig, path: &str) -> Self {
        Fetch {
            service: Service::Relay,
            url: format!("{}{path}", config.relay_url),
            bearer: Some(config.admin_secret.expose()),
        }
    }
}

/// A POST the glue performs: a JSON body with a bearer (the relay's
/// `POST /admin/resync`, from the Re-sync page or a user's page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post<'a> {
    pub service: Service,
    pub url: String,
    pub bearer: &'a str,
    pub body: String,
}

impl<'a> Post<'a> {
    /// A relay admin path, with `ADMIN_SECRET`.
    pub fn relay_admin(config: &'a DashboardConfig, path: &str, body: String) -> Self {
        Post {
            service: Service::Relay,
            url: format!("{}{path}", config.relay_url),
            bearer: config.admin_secret.expose(),
            body,
        }
    }
}

/// The requests of the overview, in the order of [`Overview::read`].
pub fn overview_fetches(config: &DashboardConfig) -> [Fetch<'_>; 4] {
    [
        Fetch::api(config, SYNC_STATUS_PATH),
        relay_health_fetch(config),
        latest_run_fetch(config),
        crate::deliveries::metrics_fetch(config),
    ]
}

/// The relay's `/health` (no bearer).
pub fn relay_health_fetch(config: &DashboardConfig) -> Fetch<'_> {
    Fetch {
        service: Service::Relay,
        url: format!("{}{RELAY_HEALTH_PATH}", config.relay_url),
        bearer: None,
    }
}

/// The relay's latest re-sync run, with the admin bearer.
pub fn latest_run_fetch(config: &DashboardConfig) -> Fetch<'_> {
    Fetch::relay_admin(config, LATEST_RUN_PATH)
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status { status: u16, body: Vec<u8> },
    Unreachable,
    TimedOut,
}

/// Why a source could not be shown. The text never holds a body or a
/// secret: at most a status number, a stable code the source sent, and the
/// name of the setting to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("unreachable")]
    Unreachable,
    #[error("timed out")]
    TimedOut,
    #[error("{status} unauthorized: check {setting}")]
    Unauthorized { status: u16, setting: &'static str },
    #[error("answered {status}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status { status: u16, code: Option<String> },
    #[error("unreadable answer")]
    Unreadable,
}

/// Rows in the main API's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCounts {
    pub synced: u64,
    pub pending: u64,
    pub failed: u64,
    pub deleted: u64,
    pub total: u64,
    pub tombstones: Option<u64>,
}

/// The relay's `/health` (200, or 503 naming problems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayHealth {
    pub ok: bool,
    pub version: Option<String>,
    /// `on`, `off` or `unavailable`.
    pub resync: Option<String>,
    /// Variable names, the relay's and the re-sync Worker's.
    pub problems: Vec<String>,
}

/// The latest re-sync run, as the relay's admin route reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    pub run_id: String,
    pub scope: String,
    pub state: String,
    pub phase: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub last_error: Option<RunError>,
    pub clerk_users_total: Option<u64>,
    pub clerk_users_seen: u64,
    pub upserts_sent: u64,
    pub deletes_sent: u64,
    pub applied: u64,
    pub stale: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub pages: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// `GET /admin/resync`: a run, or none yet (404 `run_not_found`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestRun {
    NoneYet,
    Run(Box<RunSummary>),
}

/// Everything the overview shows, each source on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub sync: Result<SyncCounts, SourceError>,
    pub relay: Result<RelayHealth, SourceError>,
    pub run: Result<LatestRun, SourceError>,
    /// The main API's `GET /internal/metrics`.
    pub metrics: Result<clerk_sync_contract::metrics::Metrics, SourceError>,
    /// The alerts' section, when the glue read their state.
    pub alerts: Option<crate::alerts::Board>,
}

impl Overview {
    /// The answers to [`overview_fetches`], in its order.
    pub fn read([sync, relay, run, metrics]: [Answer; 4]) -> Self {
        Self {
            sync: read_sync_status(sync),
            relay: read_relay_health(relay),
            run: read_latest_run(run),
            metrics: crate::deliveries::read_metrics(metrics),
            alerts: None,
        }
    }
}

/// The body of a 2xx (or of one of the `also` statuses) as JSON; anything
/// else as a [`SourceError`], 401/403 naming `setting`.
pub(crate) fn json_of(
    answer: Answer,
    setting: &'static str,
    also: &[u16],
) -> Result<(u16, Value), SourceError> {
    match answer {
        Answer::Unreachable => Err(SourceError::Unreachable),
        Answer::TimedOut => Err(SourceError::TimedOut),
        Answer::Status { status, body } => {
            let json = serde_json::from_slice::<Value>(&body).ok();
            if (200..300).contains(&status) || also.contains(&status) {
                return json.map(|j| (status, j)).ok_or(SourceError::Unreadable);
            }
            if status == 401 || status == 403 {
                return Err(SourceError::Unauthorized { status, setting });
            }
            let code = json
                .as_ref()
                .and_then(|j| j["error"].as_str())
                .and_then(stable_code);
            Err(SourceError::Status { status, code })
        }
    }
}

/// A source's error code, shown only when it looks like one
/// (`[a-z0-9_]`, at most 64): never free text from elsewhere.
pub(crate) fn stable_code(code: &str) -> Option<String> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    ok.then(|| code.to_owned())
}

pub fn read_sync_status(answer: Answer) -> Result<SyncCounts, SourceError> {
    let (_, j) = json_of(answer, API_SECRET, &[])?;
    let users = &j["users"];
    let by = &users["by_sync_status"];
    let n = |v: &Value| v.as_u64().ok_or(SourceError::Unreadable);
    Ok(SyncCounts {
        synced: n(&by["synced"])?,
        pending: n(&by["pending"])?,
        failed: n(&by["failed"])?,
        deleted: n(&users["deleted"])?,
        total: n(&users["total"])?,
        tombstones: j["tombstones"].as_u64(),
    })
}

pub fn read_relay_health(answer: Answer) -> Result<RelayHealth, SourceError> {
    let (status, j) = json_of(answer, "RELAY_URL", &[503])?;
    if status == 503 && j["problems"].is_null() {
        return Err(SourceError::Status { status, code: None });
    }
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            // The relay names problems as {"variable","problem"}; the
            // re-sync Worker's are plain names.
            .filter_map(|p| p["variable"].as_str().or_else(|| p.as_str()))
            .map(str::to_owned)
            .collect()
    };
    let mut problems = names(&j["problems"]);
    problems.extend(names(&j["resync_problems"]));
    Ok(RelayHealth {
        ok: status == 200 && j["ok"] == true,
        version: j["version"].as_str().map(str::to_owned),
        resync: j["resync"].as_str().map(str::to_owned),
        problems,
    })
}

pub fn read_latest_run(answer: Answer) -> Result<LatestRun, SourceError> {
    if let Answer::Status { status: 404, body } = &answer {
        let j = serde_json::from_slice::<Value>(body).unwrap_or_default();
        if j["error"] == "run_not_found" {
            return Ok(LatestRun::NoneYet);
        }
    }
    let (_, j) = json_of(answer, ADMIN_SECRET, &[])?;
    let run: RunSummary = serde_json::from_value(j).map_err(|_| SourceError::Unreadable)?;
    if run.run_id.is_empty() {
        return Err(SourceError::Unreadable);
    }
    Ok(LatestRun::Run(Box::new(run)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(status: u16, body: Value) -> Answer {
        Answer::Status {
            status,
            body: body.to_string().into_bytes(),
        }
    }

    /// The main API's answer, as examples/main-api's `status_body` writes it.
    pub(crate) fn status_answer() -> Value {
        json!({"ok": true,
               "users": {"total": 12, "deleted": 2, "by_sync_status": {"synced": 7, "pending": 2, "failed": 1}},
               "tombstones": 3, "applied_operations": 40, "failed_users": [], "latest_failures": [],
               "last_applied_operation": null})
    }

    #[test]
    fn the_main_apis_status_is_read() {
        let counts = read_sync_status(ok(200, status_answer())).unwrap();
        assert_eq!(
            counts,
            SyncCounts {
                synced: 7,
                pending: 2,
                failed: 1,
                deleted: 2,
                total: 12,
                tombstones: Some(3)
            }
        );
    }

    #[test]
    fn each_failure_is_named() {
        assert_eq!(
            read_sync_status(Answer::Unreachable),
            Err(SourceError::Unreachable)
        );
        assert_eq!(
            read_sync_status(Answer::TimedOut),
            Err(SourceError::TimedOut)
        );
        let e =
            read_sync_status(ok(401, json!({"ok": false, "error": "unauthorized"}))).unwrap_err();
        assert_eq!(e.to_string(), "401 unauthorized: check API_SECRET");
        let e =
            read_sync_status(ok(500, json!({"ok": false, "error": "database_error"}))).unwrap_err();
        assert_eq!(e.to_string(), "answered 500 (database_error)");
        let e = read_sync_status(ok(502, json!({"error": "Some <b>free</b> text"}))).unwrap_err();
        assert_eq!(e.to_string(), "answered 502", "free text is never shown");
        let e = read_sync_status(Answer::Status {
            status: 200,
            body: b"<html>".to_vec(),
        });
        assert_eq!(e, Err(SourceError::Unreadable));
        let e = read_sync_status(ok(200, json!({"ok": true, "users": {}})));
        assert_eq!(e, Err(SourceError::Unreadable));
    }

    #[test]
    fn the_relays_health_is_read_when_ok_and_when_misconfigured() {
        let h = read_relay_health(ok(
            200,
            json!({"ok": true, "status": "ok", "service": "clerk-sync", "version": "0.1.0", "signing_secrets": 1, "resync": "on"}),
        ))
        .unwrap();
        assert!(h.ok);
        assert_eq!(
            (h.version.as_deref(), h.resync.as_deref()),
            (Some("0.1.0"), Some("on"))
        );
        let h = read_relay_health(ok(
            503,
            json!({"ok": false, "status": "misconfigured", "problems": [{"variable": "API_SECRET", "problem": "missing"}],
                   "resync": "off", "resync_problems": ["CLERK_SECRET_KEY"]}),
        ))
        .unwrap();
        assert!(!h.ok);
        assert_eq!(h.problems, vec!["API_SECRET", "CLERK_SECRET_KEY"]);
        assert_eq!(
            read_relay_health(ok(503, json!({"anything": 1}))),
            Err(SourceError::Status {
                status: 503,
                code: None
            })
        );
        assert_eq!(
            read_relay_health(Answer::Unreachable),
            Err(SourceError::Unreachable)
        );
    }

    #[test]
    fn the_latest_run_or_none_yet() {
        let none = ok(
            404,
            json!({"ok": false, "error": "run_not_found", "message": "no such run"}),
        );
        assert_eq!(read_latest_run(none), Ok(LatestRun::NoneYet));
        let run = ok(
            200,
            json!({"run_id": "rs_1_ab", "scope": "all", "state": "completed", "phase": "done",
                   "started_at": "2026-12-07T10:00:00.000Z", "finished_at": "2026-12-07T10:01:00.000Z",
                   "last_error": null, "clerk_users_total": 1200, "clerk_users_seen": 1200,
                   "upserts_sent": 1200, "deletes_sent": 3, "applied": 10, "stale": 0, "duplicates": 0,
                   "ignored_deleted": 0, "rejected": 0, "pending_unmatched": 0, "failed_unmatched": 0,
                   "rejected_ids": [], "pages": 3, "waiting_until": null}),
        );
        let LatestRun::Run(r) = read_latest_run(run).unwrap() else {
            panic!("a run")
        };
        assert_eq!(
            (r.run_id.as_str(), r.state.as_str(), r.clerk_users_total),
            ("rs_1_ab", "completed", Some(1200))
        );
        assert_eq!((r.deletes_sent, r.pages), (3, 3));
        let e =
            read_latest_run(ok(401, json!({"ok": false, "error": "unauthorized"}))).unwrap_err();
        assert_eq!(e.to_string(), "401 unauthorized: check ADMIN_SECRET");
        let e = read_latest_run(ok(
            503,
            json!({"ok": false, "error": "resync_unconfigured"}),
        ))
        .unwrap_err();
        assert_eq!(e.to_string(), "answered 503 (resync_unconfigured)");
        // A 404 from something that is not the admin route is not "no run".
        let e = read_latest_run(ok(404, json!({"ok": false, "error": "not_found"}))).unwrap_err();
        assert_eq!(e.to_string(), "answered 404 (not_found)");
    }

    #[test]
    fn the_fetches_carry_each_bearer_to_its_own_source_only() {
        let config = DashboardConfig::from_lookup(|n| {
            Some(match n {
                "API_URL" => "http://127.0.0.1:8787".into(),
                "RELAY_URL" => "http://127.0.0.1:8788/".into(),
                "API_SECRET" => "test-api-secret".into(),
                "ADMIN_SECRET" => "test-admin-secret".into(),
                _ => "a-long-enough-value-for-any-secret-0123456789".into(),
            })
        })
        .unwrap();
        let [sync, health, run, metrics] = overview_fetches(&config);
        assert_eq!(
            metrics,
            Fetch {
                service: Service::Api,
                url: "http://127.0.0.1:8787/internal/metrics".into(),
                bearer: Some("test-api-secret")
            }
        );
        assert_eq!(
            sync,
            Fetch {
                service: Service::Api,
                url: "http://127.0.0.1:8787/internal/sync/status".into(),
                bearer: Some("test-api-secret")
            }
        );
        assert_eq!(
            health,
            Fetch {
                service: Service::Relay,
                url: "http://127.0.0.1:8788/health".into(),
                bearer: None
            }
        );
        assert_eq!(
            run,
            Fetch {
                service: Service::Relay,
                url: "http://127.0.0.1:8788/admin/resync".into(),
                bearer: Some("test-admin-secret")
            }
        );
    }
}
