//! The admin surface: which route a request is, the bearer check, and the
//! one mapping from [`AdminError`] to a status and a stable code. Answers
//! have the relay's shape: `{"ok":false,"error":code,"message":text}`.

use clerk_sync_contract::SecretString;
use clerk_sync_resync::{RunId, StartError};
use serde_json::{json, Value};

use crate::config::Problems;

pub const RESYNC_PATH: &str = "/admin/resync";
pub const HISTORY_PATH: &str = "/admin/resync/runs";
/// Through the binding only: the relay's `/health` asks it.
pub const HEALTH_PATH: &str = "/internal/health";
/// Through the binding only: the relay's scheduled handler posts `{"cron":…}`.
pub const CRON_PATH: &str = "/internal/cron";
/// Largest cron body read.
pub const MAX_CRON_BODY_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Cron,
    Start,
    Latest,
    History,
    Get(RunId),
    Cancel(RunId),
}

impl Route {
    /// Whether the route needs `Authorization: Bearer <ADMIN_SECRET>`.
    pub fn is_admin(&self) -> bool {
        !matches!(self, Self::Health | Self::Cron)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("unauthorized")]
    Unauthorized,
    #[error("re-sync is not configured")]
    Unconfigured(Problems),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("{0}")]
    BadStart(StartError),
    #[error("the cron body must be {{\"cron\":\"…\"}}")]
    BadCron,
    #[error("no such run")]
    RunNotFound,
    #[error("a re-sync run is already running")]
    Running(RunId),
    #[error("the run is not running")]
    NotRunning,
    #[error("the run state could not be stored")]
    Storage,
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound | Self::RunNotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::Unauthorized => 401,
            Self::Unconfigured(_) => 503,
            Self::PayloadTooLarge => 413,
            Self::UnreadableBody | Self::BadStart(_) | Self::BadCron => 400,
            Self::Running(_) | Self::NotRunning => 409,
            Self::Storage => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Unconfigured(_) => "resync_unconfigured",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::BadStart(e) => e.code(),
            Self::BadCron => "invalid_cron",
            Self::RunNotFound => "run_not_found",
            Self::Running(_) => "resync_running",
            Self::NotRunning => "resync_not_running",
            Self::Storage => "storage_error",
        }
    }
}

/// An answer: status, JSON body, and `Allow` for a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            allow: None,
        }
    }

    pub fn error(err: &AdminError) -> Self {
        let mut body = json!({"ok": false, "error": err.code(), "message": err.to_string()});
        match err {
            AdminError::Running(id) => body["run_id"] = json!(id.as_str()),
            AdminError::Unconfigured(problems) => body["problems"] = json!(problems),
            _ => {}
        }
        let mut reply = Self::json(err.status(), body);
        if let AdminError::MethodNotAllowed(allow) = err {
            reply.allow = Some(allow);
        }
        reply
    }

    pub fn started(run_id: &RunId) -> Self {
        Self::json(202, json!({"ok": true, "run_id": run_id.as_str()}))
    }

    /// `GET /internal/health`: on, or off with the problems' names.
    pub fn health(config: Result<(), &Problems>) -> Self {
        match config {
            Ok(()) => Self::json(200, json!({"ok": true, "resync": "on"})),
            Err(problems) => Self::json(
                200,
                json!({"ok": true, "resync": "off", "problems": problems}),
            ),
        }
    }
}

/// Which route `method path` is.
pub fn route(method: &str, path: &str) -> Result<Route, AdminError> {
    let only = |allowed: &'static str, route: Route| {
        if allowed.split(", ").any(|m| m == method) {
            Ok(route)
        } else {
            Err(AdminError::MethodNotAllowed(allowed))
        }
    };
    match path {
        HEALTH_PATH => only("GET", Route::Health),
        CRON_PATH => only("POST", Route::Cron),
        HISTORY_PATH => only("GET", Route::History),
        RESYNC_PATH => match method {
            "POST" => Ok(Route::Start),
            "GET" => Ok(Route::Latest),
            _ => Err(AdminError::MethodNotAllowed("GET, POST")),
        },
        _ => {
            let rest = path
                .strip_prefix(RESYNC_PATH)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or(AdminError::NotFound)?;
            let (id, cancel) = match rest.strip_suffix("/cancel") {
                Some(id) => (id, true),
                None => (rest, false),
            };
            // An id that no run could have is simply not found.
            let id = RunId::new(id).map_err(|_| AdminError::RunNotFound)?;
            if cancel {
                only("POST", Route::Cancel(id))
            } else {
                only("GET", Route::Get(id))
            }
        }
    }
}

/// `Authorization: Bearer <ADMIN_SECRET>`, compared in constant time. No
/// secret configured: the route is unusable (503), never open.
pub fn authorize(
    secret: Option<&SecretString>,
    authorization: Option<&str>,
) -> Result<(), AdminError> {
    let Some(secret) = secret else {
        return Err(AdminError::Unconfigured(vec![crate::config::ADMIN_SECRET]));
    };
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(AdminError::Unauthorized)?;
    if secret.matches(token) {
        Ok(())
    } else {
        Err(AdminError::Unauthorized)
    }
}

/// The cron string from `{"cron":"…"}`.
pub fn parse_cron(body: &[u8]) -> Result<String, AdminError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cron {
        cron: String,
    }
    if body.len() > MAX_CRON_BODY_BYTES {
        return Err(AdminError::PayloadTooLarge);
    }
    serde_json::from_slice::<Cron>(body)
        .map(|c| c.cron)
        .map_err(|_| AdminError::BadCron)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RunId {
        RunId::new(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/admin/resync"), Ok(Route::Start));
        assert_eq!(route("GET", "/admin/resync"), Ok(Route::Latest));
        assert_eq!(route("GET", "/admin/resync/runs"), Ok(Route::History));
        assert_eq!(
            route("GET", "/admin/resync/rs_1_ab"),
            Ok(Route::Get(id("rs_1_ab")))
        );
        assert_eq!(
            route("POST", "/admin/resync/rs_1_ab/cancel"),
            Ok(Route::Cancel(id("rs_1_ab")))
        );
        assert_eq!(route("GET", "/internal/health"), Ok(Route::Health));
        assert_eq!(route("POST", "/internal/cron"), Ok(Route::Cron));
        assert!(!Route::Health.is_admin() && !Route::Cron.is_admin() && Route::Start.is_admin());
    }

    #[test]
    fn wrong_methods_paths_and_ids() {
        assert_eq!(
            route("DELETE", "/admin/resync"),
            Err(AdminError::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(
            route("GET", "/admin/resync/rs_1/cancel"),
            Err(AdminError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route("POST", "/admin/resync/rs_1"),
            Err(AdminError::MethodNotAllowed("GET"))
        );
        assert_eq!(route("GET", "/admin/other"), Err(AdminError::NotFound));
        assert_eq!(route("GET", "/admin/resyncx"), Err(AdminError::NotFound));
        assert_eq!(
            route("GET", "/admin/resync/a%2Fb"),
            Err(AdminError::RunNotFound)
        );
        assert_eq!(route("GET", "/admin/resync/"), Err(AdminError::RunNotFound));
        assert_eq!(
            route("GET", "/admin/resync/x/y"),
            Err(AdminError::RunNotFound)
        );
        let reply = Reply::error(&AdminError::MethodNotAllowed("POST"));
        assert_eq!((reply.status, reply.allow), (405, Some("POST")));
    }

    #[test]
    fn the_bearer() {
        let s = SecretString::new("test-admin-secret");
        assert_eq!(
            authorize(Some(&s), Some("Bearer test-admin-secret")),
            Ok(())
        );
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer test-admin-secreT"),
            Some("test-admin-secret"),
            Some("bearer test-admin-secret"),
        ] {
            assert_eq!(
                authorize(Some(&s), bad),
                Err(AdminError::Unauthorized),
                "{bad:?}"
            );
        }
        assert_eq!(
            authorize(None, Some("Bearer test-admin-secret")).map_err(|e| e.code()),
            Err("resync_unconfigured")
        );
    }

    #[test]
    fn every_error_has_one_status_and_code_and_echoes_nothing() {
        let all = [
            AdminError::NotFound,
            AdminError::MethodNotAllowed("GET"),
            AdminError::Unauthorized,
            AdminError::Unconfigured(vec!["CLERK_SECRET_KEY"]),
            AdminError::PayloadTooLarge,
            AdminError::UnreadableBody,
            AdminError::BadStart(StartError::InvalidScope),
            AdminError::BadCron,
            AdminError::RunNotFound,
            AdminError::Running(id("rs_1_a")),
            AdminError::NotRunning,
            AdminError::Storage,
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            assert!(e.status() >= 400);
            assert!(codes.insert(e.code()), "{}", e.code());
            let body: Value = serde_json::from_str(&Reply::error(e).body).unwrap();
            assert_eq!(body["ok"], json!(false));
            assert_eq!(body["error"], json!(e.code()));
        }
        let running: Value = serde_json::from_str(&Reply::error(&all[9]).body).unwrap();
        assert_eq!(running["run_id"], json!("rs_1_a"));
        let off: Value = serde_json::from_str(&Reply::error(&all[3]).body).unwrap();
        assert_eq!(off["problems"], json!(["CLERK_SECRET_KEY"]));
        assert_eq!(Reply::error(&all[6]).status, 400);
    }

    #[test]
    fn cron_bodies() {
        assert_eq!(
            parse_cron(br#"{"cron":"0 3 * * *"}"#),
            Ok("0 3 * * *".into())
        );
        assert_eq!(parse_cron(b"{}"), Err(AdminError::BadCron));
        assert_eq!(
            parse_cron(br#"{"cron":"x","y":1}"#),
            Err(AdminError::BadCron)
        );
        assert_eq!(parse_cron(&[b' '; 2000]), Err(AdminError::PayloadTooLarge));
    }
}
