//! The handlers, written once against a [`Database`] that runs batches: D1
//! in the Worker (`glue`), SQLite in the native tests. Everything between
//! reading the request and writing the answer happens here; the glue only
//! does the I/O.

use clerk_sync_contract::secret::SecretString;
use clerk_sync_contract::time::format_millis;
use serde_json::Value as Json;

use crate::error::{classify_db_error, ApiError, DbFailure};
use crate::log::RequestLog;
use crate::plan::{self, Batch};
use crate::request::{authorize, parse_command, parse_new_user, route, salvage, Route, Salvaged};
use crate::view::{first_row, outcome_of, status_body, Reply};

/// Runs a [`Batch`] as one transaction.
// Workers are single-threaded: the futures need no `Send` bound.
#[allow(async_fn_in_trait)]
pub trait Database {
    /// Each statement's rows (objects keyed by column name), or the
    /// database's error text; on an error nothing of the batch is kept.
    async fn batch(&self, batch: &Batch) -> Result<Vec<Vec<Json>>, String>;
}

/// Routing and the bearer check, before any byte of the body is read.
/// `/health` is the only route open without the bearer.
pub fn admit<'a>(
    method: &str,
    path: &'a str,
    secret: Option<&SecretString>,
    authorization: Option<&str>,
) -> Result<Route<'a>, ApiError> {
    let route = route(method, path)?;
    if route != Route::Health {
        authorize(secret, authorization)?;
    }
    Ok(route)
}

/// `POST /internal/clerk-sync`. `body` is what the glue read (or why it
/// could not); `now_ms` is the Worker's clock in Unix milliseconds.
pub async fn sync<D: Database>(
    db: &D,
    body: Result<&[u8], ApiError>,
    now_ms: i64,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = format_millis(now_ms).ok_or(ApiError::Database)?;
    let parsed = match body {
        Ok(bytes) => parse_command(bytes).map_err(|e| (ApiError::from(e), salvage(bytes))),
        Err(e) => Err((e, Salvaged::default())),
    };
    let command = match parsed {
        Ok(c) => c,
        Err((e, salvaged)) => {
            log.operation_id.clone_from(&salvaged.operation_id);
            log.clerk_id.clone_from(&salvaged.clerk_id);
            let record = plan::record_rejection(&salvaged, &now, &e.to_string());
            if db.batch(&record).await.is_err() {
                log.audit_failed = true;
            }
            return Err(e);
        }
    };
    log.command(&command);
    let text = match db.batch(&plan::apply(&command, &now)).await {
        Ok(results) => {
            let outcome = outcome_of(&results)?;
            log.outcome = Some(outcome.as_str());
            return Ok(Reply::applied(&command, outcome));
        }
        Err(text) => text,
    };
    // The batch failed, or committed and its answer was lost: the batch
    // that records the failure writes only if the operation is not
    // applied, and reads its outcome back to tell which.
    let failure = classify_db_error(&text);
    let (error, record) = plan::after_failure(&command, &now, &failure);
    match db.batch(&record).await {
        Ok(results) if failure != DbFailure::DuplicateOperation => {
            if let Some(outcome) = committed_outcome(&results) {
                log.outcome = Some(outcome.as_str());
                log.committed_despite_error = true;
                return Ok(Reply::applied(&command, outcome));
            }
        }
        Ok(_) => {}
        Err(_) => log.audit_failed = true,
    }
    Err(error)
}

/// The outcome a failure batch read back, when the operation was applied.
fn committed_outcome(results: &[Vec<Json>]) -> Option<plan::Outcome> {
    let row = results.last()?.first()?;
    serde_json::from_value(row["outcome"].clone()).ok()
}

/// `GET /internal/users/:clerk_id`.
pub async fn user<D: Database>(db: &D, clerk_id: &str) -> Result<Reply, ApiError> {
    let results = db
        .batch(&plan::user(clerk_id))
        .await
        .map_err(|_| ApiError::Database)?;
    let [row, tombstone, audit] = results.as_slice() else {
        return Err(ApiError::Database);
    };
    Reply::user(clerk_id, first_row(row)?, first_row(tombstone)?, audit)
}

/// `POST /internal/users`: the application's signup, a `pending` row that
/// its Clerk user claims by the rule it names (`link_by`). `now_ms` is the
/// Worker's clock: a Clerk user created before it never claims it by email.
pub async fn create_user<D: Database>(
    db: &D,
    body: Result<&[u8], ApiError>,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let now = format_millis(now_ms).ok_or(ApiError::Database)?;
    let user = parse_new_user(body?)?;
    let results = db
        .batch(&plan::create_pending(&user, &now))
        .await
        .map_err(|text| match classify_db_error(&text) {
            DbFailure::Constraint(c) => ApiError::CannotApply(c),
            _ => ApiError::Database,
        })?;
    let row = results
        .last()
        .and_then(|rows| first_row(rows).transpose())
        .ok_or(ApiError::Database)??;
    Ok(Reply::created(row))
}

/// `GET /internal/sync/status`.
pub async fn status<D: Database>(db: &D) -> Result<Reply, ApiError> {
    let results = db
        .batch(&plan::status())
        .await
        .map_err(|_| ApiError::Database)?;
    Ok(Reply::status(status_body(&results)?))
}
