//! The handlers, written once against a [`Database`] that runs batches: D1
//! in the Worker (`glue`), SQLite in the native tests. Everything between
//! reading the request and writing the answer happens here; the glue only
//! does the I/O.

use std::collections::{HashMap, HashSet};

use clerk_sync_contract::batch::{CommandResult, Outcome as BatchOutcome};
use clerk_sync_contract::failure::FailureResult;
use clerk_sync_contract::secret::SecretString;
use clerk_sync_contract::time::{format_millis, UnixMillis};
use serde_json::Value as Json;

use crate::error::{classify_db_error, ApiError, DbFailure, InvalidBatch};
use crate::log::{BatchLog, RequestLog};
use crate::metrics;
use crate::plan::{self, Batch, BatchPlan, Step};
use crate::request::{
    authorize, parse_batch, parse_command, parse_failures, parse_metrics_query, parse_new_user,
    parse_rows_query, route, salvage, salvage_batch, Route, Salvaged, ValidCommand,
};
use crate::view::{first_row, outcome_of, rows_page, status_body, Reply};

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
            reject(db, &salvaged, &now, &e, log).await;
            return Err(e);
        }
    };
    log.command(&command);
    let outcome = apply_one(db, &command, &now, log, &mut 0).await?;
    log.outcome = Some(outcome.as_str());
    Ok(Reply::applied(&command, outcome))
}

/// The audit row of a body that is not a command (or a batch).
async fn reject<D: Database>(
    db: &D,
    salvaged: &Salvaged,
    now: &str,
    e: &ApiError,
    log: &mut RequestLog,
) {
    log.operation_id.clone_from(&salvaged.operation_id);
    log.clerk_id.clone_from(&salvaged.clerk_id);
    let record = plan::record_rejection(salvaged, now, &e.to_string());
    if db.batch(&record).await.is_err() {
        log.audit_failed = true;
    }
}

/// One command in its own D1 batch, as `POST /internal/clerk-sync` applies
/// it: its outcome, or the error that endpoint answers (409 a repeat, 422 a
/// constraint, 500 the database) with the failure recorded. `trips` counts
/// the D1 batches.
async fn apply_one<D: Database>(
    db: &D,
    command: &ValidCommand,
    now: &str,
    log: &mut RequestLog,
    trips: &mut u32,
) -> Result<plan::Outcome, ApiError> {
    *trips += 1;
    let text = match db.batch(&plan::apply(command, now)).await {
        Ok(results) => return outcome_of(&results),
        Err(text) => text,
    };
    // The batch failed, or committed and its answer was lost: the batch
    // that records the failure writes only if the operation is not
    // applied, and reads its outcome back to tell which.
    let failure = classify_db_error(&text);
    let (error, record) = plan::after_failure(command, now, &failure);
    *trips += 1;
    match db.batch(&record).await {
        Ok(results) if failure != DbFailure::DuplicateOperation => {
            if let Some(outcome) = read_outcome(
                &results,
                results.len().wrapping_sub(1),
                &command.command().operation_id,
            ) {
                log.committed_despite_error = true;
                return Ok(outcome);
            }
        }
        Ok(_) => {}
        Err(_) => log.audit_failed = true,
    }
    Err(error)
}

/// The outcome of operation `op` that the statement at `at` read back,
/// when the operation was applied.
fn read_outcome(results: &[Vec<Json>], at: usize, op: &str) -> Option<plan::Outcome> {
    let row = results.get(at)?.iter().find(|r| r["operation_id"] == op)?;
    serde_json::from_value(row["outcome"].clone()).ok()
}

/// How many times in all the commands of a batch are tried as one
/// transaction while operation ids turn out to be applied meanwhile (each
/// time planned again without them), before they are applied one by one.
const ALL_AT_ONCE_TRIES: u32 = 3;

/// `POST /internal/clerk-sync/batch`: 1–500 commands applied in order, with
/// the single endpoint's semantics and audit rows. A malformed batch is
/// refused whole (400, one `rejected` audit row, nothing applied). The
/// commands are applied in one D1 batch (one transaction), planned without
/// the operation ids already applied; the answer is 200 with one result
/// per command, or 500 `database_error` when the database failed: nothing
/// of the transaction is kept then (or, one by one, the commands before the
/// failing one are), so the caller sends the batch again and the commands
/// already taken come back as `duplicate`.
pub async fn sync_batch<D: Database>(
    db: &D,
    body: Result<&[u8], ApiError>,
    now_ms: i64,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = format_millis(now_ms).ok_or(ApiError::Database)?;
    let parsed = match body {
        Ok(bytes) => parse_batch(bytes).map_err(|e| {
            let salvaged = match e {
                InvalidBatch::Command { index, .. } => salvage_batch(bytes, index),
                _ => Salvaged::default(),
            };
            (ApiError::from(e), salvaged)
        }),
        Err(e) => Err((e, Salvaged::default())),
    };
    let commands = match parsed {
        Ok(c) => c,
        Err((e, salvaged)) => {
            reject(db, &salvaged, &now, &e, log).await;
            return Err(e);
        }
    };
    let mut counts = BatchLog {
        commands: commands.len(),
        ..BatchLog::default()
    };
    let result = apply_batch(db, &commands, &now, log, &mut counts).await;
    for r in result.iter().flatten() {
        counts.count(r.outcome);
    }
    log.batch = Some(counts);
    Ok(Reply::batch(result?))
}

/// `POST /internal/clerk-sync/failures`: each `record_failure` (commands
/// the relay could not deliver) marks its Clerk user's row `failed` with
/// an audit row, unless the command was applied after all or the table
/// holds data at least as new; all in one transaction. A malformed body is
/// refused whole (400, one `rejected` audit row); a database error is 500,
/// and the same body sent again ends the same way.
pub async fn record_failures<D: Database>(
    db: &D,
    body: Result<&[u8], ApiError>,
    now_ms: i64,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let now = format_millis(now_ms).ok_or(ApiError::Database)?;
    let parsed = match body {
        Ok(bytes) => parse_failures(bytes).map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let failures = match parsed {
        Ok(f) => f,
        Err(e) => {
            reject(db, &Salvaged::default(), &now, &e, log).await;
            return Err(e);
        }
    };
    if let [one] = failures.as_slice() {
        log.command(&one.failed);
    }
    let results = db
        .batch(&plan::record_failures(&failures, &now))
        .await
        .map_err(|_| ApiError::Database)?;
    let results = failures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let row = results.get(4 * i).and_then(|r| r.first());
            let outcome = row
                .and_then(|r| serde_json::from_value(r["outcome"].clone()).ok())
                .ok_or(ApiError::Database)?;
            Ok(FailureResult {
                operation_id: f.failed.command().operation_id.clone(),
                outcome,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    log.outcome = Some("recorded");
    Ok(Reply::failures(results))
}

async fn apply_batch<D: Database>(
    db: &D,
    commands: &[ValidCommand],
    now: &str,
    log: &mut RequestLog,
    counts: &mut BatchLog,
) -> Result<Vec<CommandResult>, ApiError> {
    let mut applied = HashSet::new();
    for attempt in 1..=ALL_AT_ONCE_TRIES {
        let plan = plan::apply_all(commands, &applied, now);
        counts.d1_batches += 1;
        let text = match db.batch(&plan.batch).await {
            Ok(results) => return results_of(commands, &plan, &results),
            Err(text) => text,
        };
        match classify_db_error(&text) {
            // An operation id was applied before (the batch sent again, or
            // a command also delivered alone): plan again without them.
            DbFailure::DuplicateOperation if attempt < ALL_AT_ONCE_TRIES => {
                counts.d1_batches += 1;
                let read = db
                    .batch(&plan::applied_among(commands))
                    .await
                    .map_err(|_| ApiError::Database)?;
                applied = read
                    .iter()
                    .flatten()
                    .filter_map(|r| r["operation_id"].as_str().map(str::to_owned))
                    .collect();
            }
            // Other requests keep applying these ids: one by one, then.
            DbFailure::DuplicateOperation => break,
            // A constraint refused one command (one the schema of your own
            // adds): apply them one by one, to refuse that one alone.
            DbFailure::Constraint(_) => break,
            DbFailure::Other => {
                return after_all_failed(db, commands, &plan, now, log, counts).await;
            }
        }
    }
    counts.one_by_one = true;
    let mut results = Vec::with_capacity(commands.len());
    for c in commands {
        let (outcome, error) = match apply_one(db, c, now, log, &mut counts.d1_batches).await {
            Ok(o) => (batch_outcome(o), None),
            Err(ApiError::AlreadyApplied) => (BatchOutcome::Duplicate, None),
            Err(e @ ApiError::CannotApply(_)) => (BatchOutcome::Rejected, Some(e.code())),
            // The database failed: the commands before this one are
            // applied, this one's failure is recorded, the rest wait for
            // the batch to be sent again.
            Err(e) => return Err(e),
        };
        results.push(CommandResult {
            operation_id: c.command().operation_id.clone(),
            outcome,
            error: error.map(str::to_owned),
        });
    }
    Ok(results)
}

/// The one transaction failed with a database error: record each planned
/// command's failure, unless the transaction had committed after all (every
/// operation applied: then its outcomes are the answer).
async fn after_all_failed<D: Database>(
    db: &D,
    commands: &[ValidCommand],
    planned: &BatchPlan,
    now: &str,
    log: &mut RequestLog,
    counts: &mut BatchLog,
) -> Result<Vec<CommandResult>, ApiError> {
    let failure = plan::after_all_failed(commands, &planned.steps, now);
    if failure.batch.statements.is_empty() {
        // Duplicates only: they are taken; their audit rows were lost.
        log.audit_failed = true;
        return results_of(commands, &failure, &[]);
    }
    counts.d1_batches += 1;
    match db.batch(&failure.batch).await {
        Ok(results) => {
            let committed = results_of(commands, &failure, &results).ok();
            log.committed_despite_error = committed.is_some();
            committed.ok_or(ApiError::Database)
        }
        Err(_) => {
            log.audit_failed = true;
            Err(ApiError::Database)
        }
    }
}

/// Each command's result from a plan's results: an error if any planned
/// command's outcome is missing (it was not applied).
fn results_of(
    commands: &[ValidCommand],
    plan: &BatchPlan,
    results: &[Vec<Json>],
) -> Result<Vec<CommandResult>, ApiError> {
    // Each chunk's read-back holds many operations: index them once (a
    // search per command would be quadratic in a chunk of 500).
    let mut read: HashMap<(usize, &str), plan::Outcome> = HashMap::new();
    let reads: HashSet<usize> = plan
        .steps
        .iter()
        .filter_map(|s| match *s {
            Step::Apply { outcome_at } => Some(outcome_at),
            Step::Duplicate => None,
        })
        .collect();
    for at in reads {
        for row in results.get(at).into_iter().flatten() {
            if let (Some(op), Ok(outcome)) = (
                row["operation_id"].as_str(),
                serde_json::from_value(row["outcome"].clone()),
            ) {
                read.insert((at, op), outcome);
            }
        }
    }
    commands
        .iter()
        .zip(&plan.steps)
        .map(|(c, step)| {
            let outcome = match *step {
                Step::Duplicate => BatchOutcome::Duplicate,
                Step::Apply { outcome_at } => batch_outcome(
                    *read
                        .get(&(outcome_at, c.command().operation_id.as_str()))
                        .ok_or(ApiError::Database)?,
                ),
            };
            Ok(CommandResult {
                operation_id: c.command().operation_id.clone(),
                outcome,
                error: None,
            })
        })
        .collect()
}

fn batch_outcome(o: plan::Outcome) -> BatchOutcome {
    match o {
        plan::Outcome::Applied => BatchOutcome::Applied,
        plan::Outcome::Stale => BatchOutcome::Stale,
        plan::Outcome::IgnoredDeleted => BatchOutcome::IgnoredDeleted,
    }
}

/// `GET /internal/users?live=…&sync_status=…&after=…&limit=…`: a page of
/// rows in the order (`clerk_id IS NULL`, `clerk_id`, `id`) and the cursor
/// of the next page (`null` on the last). One D1 batch of one or two reads.
pub async fn users<D: Database>(db: &D, query: Option<&str>) -> Result<Reply, ApiError> {
    let q = parse_rows_query(query)?;
    let batch = plan::rows(&q);
    // Live rows after a cursor among the rows with no Clerk id: none.
    let results = if batch.statements.is_empty() {
        Vec::new()
    } else {
        db.batch(&batch).await.map_err(|_| ApiError::Database)?
    };
    let (rows, next) = rows_page(&results, q.limit as usize)?;
    Ok(Reply::rows(&rows, next.as_ref()))
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

/// `GET /internal/metrics?format=json|prometheus` at `now_ms` (the
/// Worker's clock): one D1 batch of reads. A bad query is refused before
/// the database is read.
pub async fn metrics<D: Database>(
    db: &D,
    query: Option<&str>,
    now_ms: i64,
) -> Result<Reply, ApiError> {
    let format = parse_metrics_query(query)?;
    let now = UnixMillis(now_ms);
    let reads = metrics::reads(now).ok_or(ApiError::Database)?;
    let results = db.batch(&reads).await.map_err(|_| ApiError::Database)?;
    Reply::metrics(&metrics::read(&results, now)?, format)
}
