//! What SQL to run, and with which values: every statement the API sends to
//! D1 is a constant here. A [`Batch`] is sent as one `D1Database::batch`,
//! which D1 runs as one transaction: it all happens, or none of it.
//!
//! Ordering and concurrency are decided by guards inside the statements (a
//! tombstone, `clerk_updated_at`, the primary key of `applied_operations`),
//! never by reading first and writing after.
//!
//! This module owns no I/O: the caller runs the batches.

use clerk_sync_contract::command::CommandKind;

use crate::error::{describe_constraint, ApiError, DbFailure};
use crate::request::{NewUser, Salvaged, ValidCommand};

/// A bound value. D1 and SQLite both take `?NNN` positional parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Text(String),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Self::Null, Self::from)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

fn stmt(sql: &'static str, params: impl IntoIterator<Item = Value>) -> Statement {
    Statement {
        sql,
        params: params.into_iter().collect(),
    }
}

/// Statements run as one transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub statements: Vec<Statement>,
}

/// What applying a command did, read back from `applied_operations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The row now holds this command's data (or is deleted by it).
    Applied,
    /// An upsert older than the row's data: acknowledged, nothing changed.
    Stale,
    /// An upsert for a deleted Clerk id: acknowledged, nothing changed.
    IgnoredDeleted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::IgnoredDeleted => "ignored_deleted",
        }
    }
}

// ---- applying a command -------------------------------------------------

/// Claims the operation id first: a repeat fails here, on the primary key,
/// and the whole batch is rolled back. 'applied' is provisional until
/// [`SET_OUTCOME`].
pub const CLAIM_OPERATION: &str = "\
INSERT INTO applied_operations (operation_id, command, clerk_id, outcome, applied_at)
VALUES (?1, ?2, ?3, 'applied', ?4)";

/// Gives a row the application created before Clerk confirmed it (no
/// `clerk_id` yet) its Clerk id: by `external_id` (the application's own id,
/// preferred), else by verified email. Never when the Clerk id already has a
/// row or a tombstone.
pub const LINK_PENDING: &str = "\
UPDATE users SET clerk_id = ?1, updated_at = ?2
WHERE id = (
    SELECT id FROM users
    WHERE clerk_id IS NULL AND deleted_at IS NULL AND (id = ?3 OR email = ?4)
    ORDER BY CASE WHEN id = ?3 THEN 0 ELSE 1 END
    LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM users WHERE clerk_id = ?1)
  AND NOT EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?1)";

/// Inserts the user, or updates it when this version is not older than the
/// row's; nothing at all for a tombstoned Clerk id.
pub const UPSERT_USER: &str = "\
INSERT INTO users (clerk_id, email, first_name, last_name, username, image_url,
                   created_at, updated_at, sync_status, last_sync_attempt, sync_error,
                   clerk_updated_at, last_operation_id)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, ?8), ?8, 'synced', ?8, NULL, ?9, ?10
WHERE NOT EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?1)
ON CONFLICT (clerk_id) DO UPDATE SET
    email = excluded.email,
    first_name = excluded.first_name,
    last_name = excluded.last_name,
    username = excluded.username,
    image_url = excluded.image_url,
    updated_at = excluded.updated_at,
    sync_status = 'synced',
    last_sync_attempt = excluded.last_sync_attempt,
    sync_error = NULL,
    clerk_updated_at = excluded.clerk_updated_at,
    last_operation_id = excluded.last_operation_id
WHERE users.clerk_updated_at IS NULL OR excluded.clerk_updated_at >= users.clerk_updated_at";

/// An upsert's outcome, from what the statements before it left.
pub const SET_OUTCOME: &str = "\
UPDATE applied_operations SET outcome = CASE
    WHEN EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?2) THEN 'ignored_deleted'
    WHEN EXISTS (SELECT 1 FROM users WHERE clerk_id = ?2 AND last_operation_id = ?1) THEN 'applied'
    ELSE 'stale' END
WHERE operation_id = ?1";

/// The first delete of a Clerk id leaves a tombstone; later ones keep it.
pub const TOMBSTONE: &str = "\
INSERT INTO clerk_tombstones (clerk_id, deleted_at, operation_id) VALUES (?1, ?2, ?3)
ON CONFLICT (clerk_id) DO NOTHING";

/// Soft delete: the row stays, marked deleted (the first time) and synced.
pub const SOFT_DELETE: &str = "\
UPDATE users SET deleted_at = COALESCE(deleted_at, ?2), updated_at = ?2,
    sync_status = 'synced', last_sync_attempt = ?2, sync_error = NULL, last_operation_id = ?3
WHERE clerk_id = ?1";

/// The audit row of an applied command, with the outcome just decided.
pub const AUDIT_APPLIED: &str = "\
INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
SELECT ?1, operation_id, command, ?2, clerk_id, outcome, NULL
FROM applied_operations WHERE operation_id = ?3";

/// The last statement of an apply batch: its one row's `outcome`.
pub const READ_OUTCOME: &str = "SELECT outcome FROM applied_operations WHERE operation_id = ?1";

// ---- recording what did not apply ---------------------------------------

/// A failed upsert is recorded on the row it concerns, which is created when
/// there is none, so the failure shows under the Clerk id.
pub const MARK_FAILED_UPSERT: &str = "\
INSERT INTO users (clerk_id, created_at, updated_at, sync_status, last_sync_attempt, sync_error)
SELECT ?1, ?2, ?2, 'failed', ?2, ?3
WHERE NOT EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?1)
ON CONFLICT (clerk_id) DO UPDATE SET
    sync_status = 'failed',
    last_sync_attempt = excluded.last_sync_attempt,
    sync_error = excluded.sync_error,
    updated_at = excluded.updated_at";

/// A failed delete is recorded on the row, if there is one.
pub const MARK_FAILED_EXISTING: &str = "\
UPDATE users SET sync_status = 'failed', last_sync_attempt = ?2, sync_error = ?3, updated_at = ?2
WHERE clerk_id = ?1";

pub const AUDIT: &str = "\
INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// ---- reads --------------------------------------------------------------

pub const USER_ROW: &str = "\
SELECT id, clerk_id, email, first_name, last_name, username, image_url,
       created_at, updated_at, deleted_at, sync_status, last_sync_attempt, sync_error,
       clerk_updated_at, last_operation_id
FROM users WHERE clerk_id = ?1";

/// What became of each command for one Clerk id, newest first.
pub const USER_AUDIT: &str = "\
SELECT received_at, operation_id, command, event_type, outcome, error FROM sync_audit
WHERE clerk_id = ?1
ORDER BY id DESC LIMIT 20";

/// The application's signup, before Clerk confirms the user: a `pending`
/// row without `clerk_id`, which the first upsert for it links.
pub const CREATE_PENDING: &str = "\
INSERT INTO users (id, email, first_name, last_name, username, sync_status)
VALUES (COALESCE(?1, lower(hex(randomblob(16)))), ?2, ?3, ?4, ?5, 'pending')
RETURNING id, clerk_id, email, first_name, last_name, username, image_url,
          created_at, updated_at, deleted_at, sync_status, last_sync_attempt, sync_error,
          clerk_updated_at, last_operation_id";

pub const TOMBSTONE_ROW: &str =
    "SELECT clerk_id, deleted_at, operation_id FROM clerk_tombstones WHERE clerk_id = ?1";

pub const COUNTS_BY_STATUS: &str =
    "SELECT sync_status, COUNT(*) AS n FROM users GROUP BY sync_status ORDER BY sync_status";

pub const TOTALS: &str = "\
SELECT COUNT(*) AS users, COUNT(deleted_at) AS deleted,
       (SELECT COUNT(*) FROM clerk_tombstones) AS tombstones,
       (SELECT COUNT(*) FROM applied_operations) AS applied_operations
FROM users";

pub const FAILED_USERS: &str = "\
SELECT clerk_id, sync_error, last_sync_attempt FROM users
WHERE sync_status = 'failed'
ORDER BY last_sync_attempt DESC LIMIT 20";

pub const LATEST_FAILURES: &str = "\
SELECT received_at, operation_id, command, event_type, clerk_id, outcome, error FROM sync_audit
WHERE outcome IN ('failed', 'rejected')
ORDER BY id DESC LIMIT 20";

pub const LAST_APPLIED: &str = "\
SELECT received_at, operation_id, command, event_type, clerk_id, outcome FROM sync_audit
WHERE outcome IN ('applied', 'stale', 'ignored_deleted')
ORDER BY id DESC LIMIT 1";

// ---- plans --------------------------------------------------------------

/// The one batch that applies a command. Its last statement reads the
/// outcome back.
pub fn apply(c: &ValidCommand, now: &str) -> Batch {
    let cmd = c.command();
    let op = cmd.operation_id.as_str();
    let id = cmd.clerk_id.as_str();
    let mut statements = vec![stmt(
        CLAIM_OPERATION,
        [
            op.into(),
            cmd.command.as_str().into(),
            id.into(),
            now.into(),
        ],
    )];
    match (cmd.command, &cmd.user) {
        (CommandKind::UpsertUser, Some(user)) => {
            statements.push(link(c, now));
            statements.push(stmt(
                UPSERT_USER,
                [
                    id.into(),
                    user.email.as_deref().into(),
                    user.first_name.as_deref().into(),
                    user.last_name.as_deref().into(),
                    user.username.as_deref().into(),
                    user.image_url.as_deref().into(),
                    user.created_at.as_deref().into(),
                    now.into(),
                    c.version().into(),
                    op.into(),
                ],
            ));
            statements.push(stmt(SET_OUTCOME, [op.into(), id.into()]));
        }
        _ => {
            // delete_user (validation guarantees an upsert has a user).
            statements.push(link(c, now));
            statements.push(stmt(TOMBSTONE, [id.into(), now.into(), op.into()]));
            statements.push(stmt(SOFT_DELETE, [id.into(), now.into(), op.into()]));
        }
    }
    statements.push(stmt(
        AUDIT_APPLIED,
        [now.into(), cmd.event_type.as_str().into(), op.into()],
    ));
    statements.push(stmt(READ_OUTCOME, [op.into()]));
    Batch { statements }
}

fn link(c: &ValidCommand, now: &str) -> Statement {
    stmt(
        LINK_PENDING,
        [
            c.command().clerk_id.as_str().into(),
            now.into(),
            c.external_id().into(),
            c.verified_email().into(),
        ],
    )
}

/// After the apply batch failed with `error_text` (and was rolled back):
/// the answer, and the batch that records why. A repeat only gets an audit
/// row; anything else also marks the row `failed`, so a failure is never
/// silent. The operation stays unclaimed, so a redelivery can still apply.
pub fn after_failure(c: &ValidCommand, now: &str, failure: &DbFailure) -> (ApiError, Batch) {
    let cmd = c.command();
    let id = cmd.clerk_id.as_str();
    let (error, outcome, detail) = match failure {
        DbFailure::DuplicateOperation => (ApiError::AlreadyApplied, "duplicate", None),
        DbFailure::Constraint(constraint) => (
            ApiError::CannotApply(constraint.clone()),
            "failed",
            Some(describe_constraint(constraint)),
        ),
        DbFailure::Other => (
            ApiError::Database,
            "failed",
            Some("database error while applying the command".to_owned()),
        ),
    };
    let mut statements = Vec::new();
    if let Some(detail) = &detail {
        if cmd.command == CommandKind::UpsertUser {
            statements.push(link(c, now));
            statements.push(stmt(
                MARK_FAILED_UPSERT,
                [id.into(), now.into(), detail.as_str().into()],
            ));
        } else {
            statements.push(stmt(
                MARK_FAILED_EXISTING,
                [id.into(), now.into(), detail.as_str().into()],
            ));
        }
    }
    statements.push(stmt(
        AUDIT,
        [
            now.into(),
            cmd.operation_id.as_str().into(),
            cmd.command.as_str().into(),
            cmd.event_type.as_str().into(),
            id.into(),
            outcome.into(),
            detail.as_deref().into(),
        ],
    ));
    (error, Batch { statements })
}

/// The audit row of a body that was not a valid command.
pub fn record_rejection(s: &Salvaged, now: &str, error: &str) -> Batch {
    Batch {
        statements: vec![stmt(
            AUDIT,
            [
                now.into(),
                s.operation_id.as_deref().into(),
                s.command.as_deref().into(),
                s.event_type.as_deref().into(),
                s.clerk_id.as_deref().into(),
                "rejected".into(),
                error.into(),
            ],
        )],
    }
}

/// The row, the tombstone and the audit trail of one Clerk id, read together.
pub fn user(clerk_id: &str) -> Batch {
    Batch {
        statements: vec![
            stmt(USER_ROW, [clerk_id.into()]),
            stmt(TOMBSTONE_ROW, [clerk_id.into()]),
            stmt(USER_AUDIT, [clerk_id.into()]),
        ],
    }
}

/// The application creating a user at signup (see [`CREATE_PENDING`]).
pub fn create_pending(u: &NewUser) -> Batch {
    Batch {
        statements: vec![stmt(
            CREATE_PENDING,
            [
                u.id.as_deref().into(),
                u.email.as_str().into(),
                u.first_name.as_deref().into(),
                u.last_name.as_deref().into(),
                u.username.as_deref().into(),
            ],
        )],
    }
}

/// What a sync status dashboard shows, read together.
pub fn status() -> Batch {
    let read = |sql| stmt(sql, []);
    Batch {
        statements: vec![
            read(COUNTS_BY_STATUS),
            read(TOTALS),
            read(FAILED_USERS),
            read(LATEST_FAILURES),
            read(LAST_APPLIED),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse_command;
    use serde_json::json;

    fn delete(external_id: Option<&str>) -> ValidCommand {
        let mut v = json!({
            "version": 1, "command": "delete_user", "operation_id": "msg_d",
            "event_type": "user.deleted", "occurred_at": "2024-01-05T04:46:40.000Z",
            "received_at": "2024-01-05T04:46:41.000Z", "clerk_id": "user_1", "user": null
        });
        if let Some(e) = external_id {
            v["external_id"] = json!(e);
        }
        parse_command(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_claim_comes_first_and_the_outcome_is_read_last() {
        let b = apply(&delete(Some("42")), "2024-01-05T04:46:42.000Z");
        let sqls: Vec<_> = b.statements.iter().map(|s| s.sql).collect();
        assert_eq!(
            sqls,
            [
                CLAIM_OPERATION,
                LINK_PENDING,
                TOMBSTONE,
                SOFT_DELETE,
                AUDIT_APPLIED,
                READ_OUTCOME
            ]
        );
        // A delete links by external id only.
        assert_eq!(
            b.statements[1].params[2..],
            [Value::Text("42".into()), Value::Null]
        );
    }

    #[test]
    fn every_placeholder_is_bound() {
        let d = delete(None);
        let new = NewUser {
            id: None,
            email: "e@example.com".into(),
            first_name: None,
            last_name: None,
            username: None,
        };
        let mut batches = vec![apply(&d, "t"), user("u"), status(), create_pending(&new)];
        for f in [
            DbFailure::DuplicateOperation,
            DbFailure::Constraint("c".into()),
            DbFailure::Other,
        ] {
            batches.push(after_failure(&d, "t", &f).1);
        }
        batches.push(record_rejection(&Salvaged::default(), "t", "e"));
        for s in batches.iter().flat_map(|b| &b.statements) {
            let highest = (1..=20).rev().find(|n| s.sql.contains(&format!("?{n}")));
            assert_eq!(highest.unwrap_or(0), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn a_repeat_is_only_audited() {
        let (e, b) = after_failure(&delete(None), "t", &DbFailure::DuplicateOperation);
        assert_eq!(e, ApiError::AlreadyApplied);
        assert_eq!(b.statements.len(), 1);
        assert_eq!(b.statements[0].params[5], Value::from("duplicate"));
    }
}
