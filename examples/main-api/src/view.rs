//! Rows as the database returns them, and every answer the API sends.

use clerk_sync_contract::batch::{BatchResponse, CommandResult};
use clerk_sync_contract::failure::{FailureResponse, FailureResult};
use clerk_sync_contract::metrics::{to_prometheus, Metrics, PROMETHEUS_CONTENT_TYPE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::error::ApiError;
use crate::plan::Outcome;
use crate::request::{allowed_methods, Cursor, MetricsFormat, ValidCommand};

/// A `users` row, as `plan::USER_ROW` selects it; a row of
/// `GET /internal/users`, as `plan::rows` selects it.
pub use clerk_sync_contract::rows::{ListedRow, UserRow};

/// The cursor of the page that starts after `row`.
fn cursor_after(row: &ListedRow) -> Cursor {
    match &row.clerk_id {
        Some(clerk_id) => Cursor::Linked(clerk_id.clone()),
        None => Cursor::Unlinked(row.id.clone()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstoneRow {
    pub clerk_id: String,
    pub deleted_at: String,
    pub operation_id: String,
}

/// An answer: status, body and its type (JSON but for the Prometheus
/// metrics), and the `Allow` header of a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub allow: Option<&'static str>,
}

pub const JSON_CONTENT_TYPE: &str = "application/json";

impl Reply {
    fn json(status: u16, body: Json) -> Self {
        Self {
            status,
            content_type: JSON_CONTENT_TYPE,
            body: body.to_string(),
            allow: None,
        }
    }

    pub fn error(err: &ApiError, path: &str) -> Self {
        let mut reply = Self::json(
            err.status(),
            json!({"ok": false, "error": err.code(), "message": err.to_string()}),
        );
        if *err == ApiError::MethodNotAllowed {
            reply.allow = Some(allowed_methods(path));
        }
        reply
    }

    pub fn health() -> Self {
        Self::json(
            200,
            json!({"ok": true, "status": "ok", "service": "clerk-sync-main-api"}),
        )
    }

    pub fn applied(c: &ValidCommand, outcome: Outcome) -> Self {
        let cmd = c.command();
        Self::json(
            200,
            json!({
                "ok": true,
                "operation_id": cmd.operation_id,
                "command": cmd.command.as_str(),
                "clerk_id": cmd.clerk_id,
                "outcome": outcome.as_str(),
            }),
        )
    }

    /// `POST /internal/clerk-sync/batch`: 200 and one result per command,
    /// in order (the contract's `BatchResponse`).
    pub fn batch(results: Vec<CommandResult>) -> Self {
        let body = BatchResponse { ok: true, results };
        Self {
            status: 200,
            content_type: JSON_CONTENT_TYPE,
            body: serde_json::to_string(&body).expect("a BatchResponse always serializes"),
            allow: None,
        }
    }

    /// `POST /internal/clerk-sync/failures`: 200 and one result per
    /// failure, in order (the contract's `FailureResponse`).
    pub fn failures(results: Vec<FailureResult>) -> Self {
        let body = FailureResponse { ok: true, results };
        Self {
            status: 200,
            content_type: JSON_CONTENT_TYPE,
            body: serde_json::to_string(&body).expect("a FailureResponse always serializes"),
            allow: None,
        }
    }

    /// `GET /internal/users`: a page of rows and the cursor of the next.
    pub fn rows(users: &[ListedRow], next_after: Option<&Cursor>) -> Self {
        Self::json(
            200,
            json!({
                "ok": true,
                "users": users,
                "next_after": next_after.map(Cursor::encode),
            }),
        )
    }

    /// `GET /internal/users/:clerk_id`: the row with its sync columns,
    /// whether the Clerk id is deleted (a delete that came before any upsert
    /// leaves a tombstone and no row), and the latest audit rows. 404 when
    /// the id is unknown to all three.
    pub fn user(
        clerk_id: &str,
        row: Option<UserRow>,
        tombstone: Option<TombstoneRow>,
        audit: &[Json],
    ) -> Result<Self, ApiError> {
        if row.is_none() && tombstone.is_none() && audit.is_empty() {
            return Err(ApiError::UserNotFound);
        }
        let deleted = tombstone.is_some() || row.as_ref().is_some_and(|r| r.deleted_at.is_some());
        Ok(Self::json(
            200,
            json!({
                "ok": true,
                "clerk_id": clerk_id,
                "deleted": deleted,
                "sync_status": row.as_ref().map(|r| r.sync_status.as_str()),
                "tombstone": tombstone,
                "user": row,
                "audit": audit,
            }),
        ))
    }

    /// `POST /internal/users`: 201 with the pending row.
    pub fn created(row: UserRow) -> Self {
        Self::json(201, json!({"ok": true, "user": row}))
    }

    pub fn status(status: Json) -> Self {
        Self::json(200, status)
    }

    /// `GET /internal/metrics`: the contract's `Metrics` as JSON, or as
    /// Prometheus text.
    pub fn metrics(m: &Metrics, format: MetricsFormat) -> Result<Self, ApiError> {
        let (content_type, body) = match format {
            MetricsFormat::Json => (
                JSON_CONTENT_TYPE,
                serde_json::to_string(m).map_err(|_| ApiError::Database)?,
            ),
            MetricsFormat::Prometheus => (PROMETHEUS_CONTENT_TYPE, to_prometheus(m)),
        };
        Ok(Self {
            status: 200,
            content_type,
            body,
            allow: None,
        })
    }
}

/// `GET /internal/sync/status` from the rows of `plan::status()`, in order:
/// counts by status, totals, failed rows, latest failures, last applied.
pub fn status_body(results: &[Vec<Json>]) -> Result<Json, ApiError> {
    let [counts, totals, failed, failures, last] = results else {
        return Err(ApiError::Database);
    };
    let mut by_status = json!({"synced": 0, "pending": 0, "failed": 0});
    for row in counts {
        if let (Some(s), Some(n)) = (row["sync_status"].as_str(), row["n"].as_u64()) {
            by_status[s] = n.into();
        }
    }
    let totals = totals.first().ok_or(ApiError::Database)?;
    Ok(json!({
        "ok": true,
        "users": {
            "total": totals["users"],
            "deleted": totals["deleted"],
            "by_sync_status": by_status,
        },
        "tombstones": totals["tombstones"],
        "applied_operations": totals["applied_operations"],
        "failed_users": failed,
        "latest_failures": failures,
        "last_applied_operation": last.first(),
    }))
}

/// The outcome row of an apply batch (its last statement).
pub fn outcome_of(results: &[Vec<Json>]) -> Result<Outcome, ApiError> {
    let row = results
        .last()
        .and_then(|rows| rows.first())
        .ok_or(ApiError::Database)?;
    serde_json::from_value(row["outcome"].clone()).map_err(|_| ApiError::Database)
}

/// A page of `limit` rows from the results of `plan::rows` (each statement
/// read one row past the page, in the page's order), and the cursor after
/// its last row when more follow.
pub fn rows_page(
    results: &[Vec<Json>],
    limit: usize,
) -> Result<(Vec<ListedRow>, Option<Cursor>), ApiError> {
    let mut rows = results
        .iter()
        .flatten()
        .take(limit + 1)
        .map(|r| serde_json::from_value::<ListedRow>(r.clone()).map_err(|_| ApiError::Database))
        .collect::<Result<Vec<_>, _>>()?;
    if rows.len() <= limit {
        return Ok((rows, None));
    }
    rows.truncate(limit);
    let next = rows.last().map(cursor_after);
    Ok((rows, next))
}

/// The first row of one statement's results, typed.
pub fn first_row<T: for<'de> Deserialize<'de>>(rows: &[Json]) -> Result<Option<T>, ApiError> {
    rows.first()
        .map(|r| serde_json::from_value(r.clone()).map_err(|_| ApiError::Database))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_code_and_message_and_405_allow() {
        let r = Reply::error(&ApiError::MethodNotAllowed, "/internal/clerk-sync");
        assert_eq!((r.status, r.allow), (405, Some("POST")));
        let r = Reply::error(&ApiError::Unauthorized, "/internal/clerk-sync");
        assert_eq!(
            serde_json::from_str::<Json>(&r.body).unwrap(),
            json!({"ok": false, "error": "unauthorized", "message": "unauthorized"})
        );
    }

    #[test]
    fn unknown_clerk_id_is_404_and_tombstone_alone_is_deleted() {
        assert_eq!(
            Reply::user("u", None, None, &[]),
            Err(ApiError::UserNotFound)
        );
        let t = TombstoneRow {
            clerk_id: "u".into(),
            deleted_at: "2024-01-05T04:46:40.000Z".into(),
            operation_id: "msg".into(),
        };
        let r = Reply::user("u", None, Some(t), &[]).unwrap();
        let v: Json = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["deleted"], true);
        assert_eq!(v["user"], Json::Null);
    }

    #[test]
    fn a_page_keeps_limit_rows_and_the_cursor_after_the_last() {
        let row = |id: &str, clerk_id: Option<&str>| {
            json!({"id": id, "clerk_id": clerk_id, "email": null, "external_id": null,
                   "sync_status": "pending", "sync_error": null, "last_sync_attempt": null,
                   "created_at": "2026-01-01T00:00:00.000Z", "deleted": 0})
        };
        let results = vec![
            vec![row("r1", Some("user_1")), row("r2", Some("user_2"))],
            vec![row("app_1", None), row("app_2", None)],
        ];
        let (rows, next) = rows_page(&results, 3).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(next, Some(Cursor::Unlinked("app_1".into())));
        let (_, next) = rows_page(&results, 2).unwrap();
        assert_eq!(next, Some(Cursor::Linked("user_2".into())));
        let (rows, next) = rows_page(&results, 4).unwrap();
        assert_eq!((rows.len(), next), (4, None));
        assert!(!rows[0].deleted);
        let body: Json = serde_json::from_str(&Reply::rows(&rows, None).body).unwrap();
        assert_eq!(body["users"][0]["deleted"], false);
        assert_eq!(body["next_after"], Json::Null);
        let bad = vec![vec![json!({"id": 1})]];
        assert_eq!(rows_page(&bad, 3), Err(ApiError::Database));
    }

    #[test]
    fn metrics_are_json_or_prometheus_text() {
        let now = clerk_sync_contract::time::UnixMillis(1_767_225_600_000);
        let m = Metrics {
            ok: true,
            generated_at: now,
            rows: Default::default(),
            oldest_pending: None,
            outcomes: Default::default(),
            last_applied_at: None,
            last_received_at: None,
            hourly: clerk_sync_contract::metrics::empty_buckets(now),
        };
        let r = Reply::metrics(&m, MetricsFormat::Json).unwrap();
        assert_eq!((r.status, r.content_type), (200, "application/json"));
        assert_eq!(serde_json::from_str::<Metrics>(&r.body).unwrap(), m);
        let r = Reply::metrics(&m, MetricsFormat::Prometheus).unwrap();
        assert_eq!(
            (r.status, r.content_type),
            (200, "text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(r.body, to_prometheus(&m));
        let e = Reply::error(&ApiError::InvalidQuery("x"), "/internal/metrics");
        assert_eq!((e.status, e.content_type), (400, "application/json"));
    }

    #[test]
    fn status_fills_missing_counts_with_zero() {
        let results = vec![
            vec![json!({"sync_status": "synced", "n": 3})],
            vec![json!({"users": 3, "deleted": 1, "tombstones": 1, "applied_operations": 5})],
            vec![],
            vec![],
            vec![],
        ];
        let v = status_body(&results).unwrap();
        assert_eq!(
            v["users"]["by_sync_status"],
            json!({"synced": 3, "pending": 0, "failed": 0})
        );
        assert_eq!(v["last_applied_operation"], Json::Null);
        assert_eq!(status_body(&results[..4]), Err(ApiError::Database));
    }
}
