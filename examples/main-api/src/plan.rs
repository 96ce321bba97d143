//! What SQL to run, and with which values: every statement the API sends to
//! D1 is a constant here. A [`Batch`] is sent as one `D1Database::batch`,
//! which D1 runs as one transaction: it all happens, or none of it.
//!
//! The table does not depend on the order commands arrive in. Each command
//! only adds facts that merge the same way in any order, then the rows it
//! touches are rendered again from those facts:
//!
//! ```text
//! clerk_users   each Clerk user's newest data: greatest (version, data_key, operation_id)
//! link_claims   who claimed which signup by its rule: only grows, earliest time kept
//! tombstones    deleted Clerk ids: a delete is final
//! sync_failures commands that failed and were not taken since
//!        │
//!        ▼  render (the same statements after every command)
//! users         a signup row shows its winner's data, or its own while unclaimed;
//!               a Clerk user that wins no signup has a row of its own
//! ```
//!
//! A signup's winner: among the Clerk users whose earliest claim is that
//! signup, the one with the earliest claim (then the smallest Clerk id).
//! Ordering and concurrency are decided by guards inside the statements,
//! never by reading first and writing after.
//!
//! This module owns no I/O: the caller runs the batches.

use clerk_sync_contract::command::CommandKind;

use crate::error::{describe_constraint, ApiError, DbFailure};
use crate::request::{Cursor, NewUser, RowsQuery, Salvaged, ValidCommand, ValidFailure};

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

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::from(if b { "1" } else { "0" })
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
    /// This command's data is the Clerk user's newest (or it deleted the user).
    Applied,
    /// An upsert not newer than the data held: taken, the data is unchanged.
    Stale,
    /// An upsert for a deleted Clerk id: taken, the user stays deleted.
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

// ---- the linking rule, as SQL fragments ---------------------------------
//
// Macros, so that each statement below is still one constant string.

/// The Clerk id that wins the signup whose id is `$signup`, or NULL: among
/// the claims that met the signup's rule and are their Clerk user's earliest
/// (then smallest signup id), the earliest (then smallest Clerk id).
macro_rules! winner {
    ($signup:literal) => {
        concat!(
            "(SELECT c.clerk_id FROM link_claims c
    WHERE c.signup_id = ",
            $signup,
            " AND c.created_with = 1 AND c.verified = 1
      AND c.signup_id = (SELECT b.signup_id FROM link_claims b
                         WHERE b.clerk_id = c.clerk_id AND b.created_with = 1 AND b.verified = 1
                         ORDER BY b.claimed_at, b.signup_id LIMIT 1)
    ORDER BY c.claimed_at, c.clerk_id LIMIT 1)"
        )
    };
}

/// The Clerk ids of the commands being applied: `?1`, a JSON array (one
/// parameter, however many commands: D1 binds at most 100).
macro_rules! ids {
    () => {
        "(SELECT value FROM json_each(?1))"
    };
}

/// The signups the commands' Clerk users claimed: the only ones whose
/// winner these commands can change.
macro_rules! claimed {
    () => {
        concat!(
            "(SELECT signup_id FROM link_claims WHERE clerk_id IN ",
            ids!(),
            ")"
        )
    };
}

/// The Clerk users whose rows these commands can move or change: their
/// own, and every other claimant of a signup they claimed.
macro_rules! affected {
    () => {
        concat!(
            "(SELECT value FROM json_each(?1) UNION SELECT n.clerk_id FROM link_claims n
    WHERE n.signup_id IN ",
            claimed!(),
            ")"
        )
    };
}

/// The row's Clerk user has data in `clerk_users`.
macro_rules! has_data {
    () => {
        "EXISTS (SELECT 1 FROM clerk_users cu WHERE cu.clerk_id = users.clerk_id)"
    };
}

/// Another live row holds the signup email of this (signup) row.
macro_rules! signup_email_held {
    () => {
        "EXISTS (SELECT 1 FROM users o
    WHERE o.email = (SELECT s.email FROM signups s WHERE s.id = users.id)
      AND o.id <> users.id AND o.deleted_at IS NULL)"
    };
}

/// The live emails the affected Clerk users' data holds.
macro_rules! affected_emails {
    () => {
        concat!(
            "(SELECT cu.email FROM clerk_users cu
    WHERE cu.clerk_id IN ",
            affected!(),
            "
      AND NOT EXISTS (SELECT 1 FROM clerk_tombstones t WHERE t.clerk_id = cu.clerk_id))"
        )
    };
}

/// Among the live Clerk users whose newest data holds the address
/// `$email`, the one whose version is newest (then the greatest Clerk id).
/// Clerk gives an address to one user at a time, so the others had given it
/// up by then: their own next change says so. Until it arrives they show no
/// email, rather than refuse a change or wait on each other for ever.
macro_rules! owner_of {
    ($email:literal) => {
        concat!(
            "(SELECT o.clerk_id FROM clerk_users o
      WHERE o.email = ",
            $email,
            " AND NOT EXISTS (SELECT 1 FROM clerk_tombstones ot WHERE ot.clerk_id = o.clerk_id)
      ORDER BY o.version DESC, o.clerk_id DESC LIMIT 1)"
        )
    };
}

/// The Clerk user that holds the address this row's live Clerk user also
/// has in its data, or NULL.
macro_rules! email_taken_by {
    () => {
        concat!(
            "(SELECT x.owner FROM (SELECT ",
            owner_of!("cu.email"),
            " AS owner
        FROM clerk_users cu
        WHERE cu.clerk_id = users.clerk_id AND cu.email IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM clerk_tombstones t WHERE t.clerk_id = cu.clerk_id)) x
      WHERE x.owner <> users.clerk_id)"
        )
    };
}

/// The Clerk users whose rows this command can change: the affected ones,
/// those whose data holds an address an affected user's data holds (its
/// holder may change), and those whose rows hold an address back (it may be
/// free now: few rows, each waiting for a change).
macro_rules! rendered {
    () => {
        concat!(
            "(SELECT value FROM json_each(?1) UNION SELECT n.clerk_id FROM link_claims n
    WHERE n.signup_id IN ",
            claimed!(),
            "
    UNION SELECT e.clerk_id FROM clerk_users e
    WHERE e.email IN (SELECT cu.email FROM clerk_users cu WHERE cu.clerk_id IN ",
            affected!(),
            ")
    UNION SELECT f.clerk_id FROM users f INDEXED BY users_email_held_back
    WHERE f.sync_status = 'failed' AND f.email IS NULL AND f.clerk_id IS NOT NULL)"
        )
    };
}

/// The address a Clerk user's row shows: its data's, unless another live
/// Clerk user holds it (a deleted user's row keeps it: it blocks nobody).
macro_rules! shown_email {
    () => {
        concat!(
            "CASE WHEN cu.email IS NULL
           OR EXISTS (SELECT 1 FROM clerk_tombstones t WHERE t.clerk_id = cu.clerk_id)
           OR ",
            owner_of!("cu.email"),
            " = cu.clerk_id
      THEN cu.email END"
        )
    };
}

/// The signup rows whose address may have changed hands, each found by an
/// index: those the command claimed, those whose address an affected Clerk
/// user holds, and those recording a conflict (few: each waits for a
/// change or a person).
macro_rules! signup_candidates {
    () => {
        concat!(
            "(SELECT signup_id FROM link_claims WHERE clerk_id IN ",
            ids!(),
            "
    UNION SELECT s.id FROM signups s WHERE s.email IN ",
            affected_emails!(),
            "
    UNION SELECT f.id FROM users f INDEXED BY users_email_held_back
    WHERE f.sync_status = 'failed' AND f.email IS NULL AND f.clerk_id IS NULL)"
        )
    };
}

/// Signup rows shown with their own data whose address may have changed
/// hands.
macro_rules! signup_rows_to_check {
    () => {
        concat!(
            "id IN ",
            signup_candidates!(),
            " AND +id IN (SELECT id FROM signups) AND NOT ",
            has_data!()
        )
    };
}

// ---- applying commands ----------------------------------------------------
// The statements below apply a *chunk*: commands with distinct Clerk ids and
// operation ids. `?1` is the chunk's commands as one JSON array: their
// facts (objects, see [`facts`]) where a statement stores the users' data,
// what a claim needs where it records claims ([`claims`]), else only their
// operations (`[op, command, clerk_id, event_type]` arrays, see [`ops`]), a
// quarter of the size: D1 copies each statement's parameters across, and
// SQLite parses an element's whole text for each `->>` on it. `?2` is the
// time. Each statement takes every command of the chunk
// at once, so a chunk of 500 costs the same dozen statements as a chunk of
// one: D1 runs each statement of a batch on its own, and preparing these is
// most of what a statement costs.

/// Claims the operation ids first: a repeat fails here, on the primary key,
/// and the whole batch is rolled back. 'applied' is provisional until
/// [`SET_OUTCOMES`].
pub const CLAIM_OPERATIONS: &str = "\
INSERT INTO applied_operations (operation_id, command, clerk_id, outcome, applied_at)
SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, 'applied', ?2
FROM json_each(?1) j";

/// Keeps each Clerk user's newest data: the greatest (version, data_key,
/// operation_id), so equal versions are decided the same way in any order.
/// Deleted users included: their row shows the data they were deleted with.
pub const STORE_CLERK_USERS: &str = "\
INSERT INTO clerk_users (clerk_id, email, first_name, last_name, username, image_url,
                         created_at, version, data_key, operation_id)
SELECT j.value ->> 'clerk_id', j.value ->> 'email', j.value ->> 'first_name',
       j.value ->> 'last_name', j.value ->> 'username', j.value ->> 'image_url',
       j.value ->> 'created_at', j.value ->> 'version', j.value ->> 'data_key', j.value ->> 'op'
FROM json_each(?1) j WHERE j.value ->> 'command' = 'upsert_user'
ON CONFLICT (clerk_id) DO UPDATE SET
    email = excluded.email,
    first_name = excluded.first_name,
    last_name = excluded.last_name,
    username = excluded.username,
    image_url = excluded.image_url,
    created_at = excluded.created_at,
    version = excluded.version,
    data_key = excluded.data_key,
    operation_id = excluded.operation_id
WHERE (excluded.version, excluded.data_key, excluded.operation_id)
    > (clerk_users.version, clerk_users.data_key, clerk_users.operation_id)";

/// Records the claims each version makes, whether or not its data is the
/// newest: a signup waiting for an external id is claimed by the Clerk user
/// whose `external_id` is its id (at the version's time); a signup waiting
/// for an email by a Clerk user created (by Clerk's `created_at`) no earlier
/// than the signup, whose `user.created` event carried that email and one
/// of whose versions carried it verified (at its `created_at`).
pub const RECORD_CLAIMS: &str = "\
INSERT INTO link_claims (signup_id, clerk_id, claimed_at, created_with, verified)
SELECT s.id, j.value ->> 0,
       CASE s.link_by WHEN 'external_id' THEN j.value ->> 1 ELSE j.value ->> 2 END,
       CASE WHEN s.link_by = 'external_id' OR j.value ->> 3 = '1' THEN 1 ELSE 0 END,
       CASE WHEN s.link_by = 'external_id' OR j.value ->> 4 = '1' THEN 1 ELSE 0 END
FROM json_each(?1) j JOIN signups s
  ON (s.link_by = 'external_id' AND s.id = j.value ->> 5)
  OR (s.link_by = 'email' AND s.email = j.value ->> 6
      AND j.value ->> 2 >= s.created_at)
ON CONFLICT (signup_id, clerk_id) DO UPDATE SET
    claimed_at = MIN(claimed_at, excluded.claimed_at),
    created_with = MAX(created_with, excluded.created_with),
    verified = MAX(verified, excluded.verified)";

/// A delete's `external_id` claims that signup too, later than any version
/// could: it only decides when no version of the user was ever received.
pub const RECORD_DELETE_CLAIMS: &str = "\
INSERT INTO link_claims (signup_id, clerk_id, claimed_at, created_with, verified)
SELECT s.id, j.value ->> 'clerk_id', '9999-12-31T23:59:59.999Z', 1, 1
FROM json_each(?1) j JOIN signups s
  ON s.link_by = 'external_id' AND s.id = j.value ->> 'external_id'
WHERE j.value ->> 'command' = 'delete_user'
ON CONFLICT (signup_id, clerk_id) DO NOTHING";

/// The first delete of a Clerk id leaves a tombstone; later ones keep it.
pub const TOMBSTONES: &str = "\
INSERT INTO clerk_tombstones (clerk_id, deleted_at, operation_id)
SELECT j.value ->> 'clerk_id', ?2, j.value ->> 'op'
FROM json_each(?1) j WHERE j.value ->> 'command' = 'delete_user'
ON CONFLICT (clerk_id) DO NOTHING";

/// The operations are taken: they no longer count as failing.
pub const CLEAR_FAILURES: &str = "\
DELETE FROM sync_failures WHERE operation_id IN (SELECT j.value ->> 0 FROM json_each(?1) j)";

// ---- rendering the rows the commands touch -------------------------------
// `?1` is the chunk's Clerk ids (a JSON array), `?2` the time. In this order: move the
// Clerk ids (unlink, drop the rows being replaced, link, create), clear the
// emails about to move, then render state, data and signup emails.

/// Unlinks the claimed signups whose winner changed.
pub const UNLINK_LOSERS: &str = concat!(
    "UPDATE users SET clerk_id = NULL
WHERE id IN ",
    claimed!(),
    " AND clerk_id IS NOT ",
    winner!("users.id")
);

/// A Clerk user that now wins a signup gives up the row the sync made for
/// it (its own data, or a failure placeholder): the signup row replaces it.
pub const DROP_REPLACED_ROWS: &str = concat!(
    "DELETE FROM users
WHERE id NOT IN (SELECT id FROM signups)
  AND clerk_id IN (SELECT ",
    winner!("a.signup_id"),
    " FROM link_claims a WHERE a.clerk_id IN ",
    ids!(),
    ")"
);

/// Links the claimed signups to their winners.
pub const LINK_WINNERS: &str = concat!(
    "UPDATE users SET clerk_id = ",
    winner!("users.id"),
    "
WHERE +clerk_id IS NULL AND id IN ",
    claimed!()
);

/// A Clerk user with data and no row gets one of its own.
pub const CREATE_OWN_ROWS: &str = concat!(
    "INSERT INTO users (clerk_id, created_at, updated_at)
SELECT cu.clerk_id, COALESCE(cu.created_at, ?2), ?2 FROM clerk_users cu
WHERE cu.clerk_id IN ",
    affected!(),
    "
  AND NOT EXISTS (SELECT 1 FROM users u WHERE u.clerk_id = cu.clerk_id)"
);

/// Clears the emails about to change or move (a signup row about to be
/// undeleted included: its address is checked again), and those of signup
/// rows that a live Clerk user's email now takes, so that no statement
/// below meets an email that is only in the middle of moving.
pub const RELEASE_EMAILS: &str = concat!(
    "UPDATE users SET email = NULL
WHERE id IN (SELECT r.id FROM users r WHERE r.clerk_id IN ",
    rendered!(),
    "
             UNION SELECT signup_id FROM link_claims WHERE clerk_id IN ",
    ids!(),
    "
             UNION SELECT s.id FROM signups s WHERE s.email IN ",
    affected_emails!(),
    ")
  AND +email IS NOT NULL
  AND CASE WHEN ",
    has_data!(),
    "
      THEN +clerk_id IN ",
    rendered!(),
    "
           AND email COLLATE BINARY IS NOT (SELECT ",
    shown_email!(),
    " FROM clerk_users cu WHERE cu.clerk_id = users.clerk_id)
      ELSE +id IN (SELECT id FROM signups)
           AND (email IN ",
    affected_emails!(),
    "
                OR (+id IN ",
    claimed!(),
    "
                    AND (email COLLATE BINARY IS NOT (SELECT s.email FROM signups s WHERE s.id = users.id)
                         OR (clerk_id IS NULL AND deleted_at IS NOT NULL)))) END"
);

/// A Clerk user's row state: deleted or not (the tombstone); failed while
/// a command for it failed and was not taken since, or while another Clerk
/// user holds its address (with the reason), else synced.
macro_rules! state {
    () => {
        concat!(
            "(SELECT (SELECT t.deleted_at FROM clerk_tombstones t WHERE t.clerk_id = users.clerk_id),
        CASE WHEN EXISTS (SELECT 1 FROM sync_failures f WHERE f.clerk_id = users.clerk_id)
               OR ",
            email_taken_by!(),
            " IS NOT NULL
             THEN 'failed' ELSE 'synced' END,
        COALESCE((SELECT f.error FROM sync_failures f WHERE f.clerk_id = users.clerk_id
                  ORDER BY f.failed_at DESC, f.operation_id DESC LIMIT 1),
                 'the email is used by Clerk user ' || ",
            email_taken_by!(),
            "
                 || ', whose data is newer: this row shows no email until this user''s next change'))"
        )
    };
}

/// The state, before the data, so that a deleted user's email never meets
/// a live one. Rows are written only when what they show changes.
pub const RENDER_STATE: &str = concat!(
    "UPDATE users SET (deleted_at, sync_status, sync_error) = ",
    state!(),
    ",
    last_sync_attempt = ?2, updated_at = ?2
WHERE clerk_id IN ",
    rendered!(),
    "
  AND (deleted_at, sync_status, sync_error) IS NOT ",
    state!()
);

/// A Clerk user's data as its row shows it (a signup row keeps its own
/// `created_at`).
macro_rules! clerk_data {
    () => {
        concat!(
            "(SELECT ",
            shown_email!(),
            ", cu.first_name, cu.last_name, cu.username, cu.image_url, cu.version,
             cu.operation_id,
             CASE WHEN users.id IN (SELECT id FROM signups) THEN users.created_at
                  ELSE COALESCE(cu.created_at, users.created_at) END
      FROM clerk_users cu WHERE cu.clerk_id = users.clerk_id)"
        )
    };
}

/// The Clerk user's newest data on its row (its address only if it holds it).
pub const RENDER_CLERK_DATA: &str = concat!(
    "UPDATE users SET
    (email, first_name, last_name, username, image_url, clerk_updated_at, last_operation_id,
     created_at) = ",
    clerk_data!(),
    ",
    last_sync_attempt = ?2, updated_at = ?2
WHERE clerk_id IN ",
    rendered!(),
    " AND ",
    has_data!(),
    "
  AND (email COLLATE BINARY, first_name, last_name, username, image_url, clerk_updated_at,
       last_operation_id, created_at) IS NOT ",
    clerk_data!()
);

/// A signup's own data, shown while it has no Clerk data to show (its email
/// is decided apart); not deleted while it has no Clerk user.
macro_rules! signup_data {
    () => {
        "(SELECT s.first_name, s.last_name, s.username, NULL, NULL, NULL,
             CASE WHEN users.clerk_id IS NULL THEN NULL ELSE users.deleted_at END
      FROM signups s WHERE s.id = users.id)"
    };
}

/// A claimed signup row with no Clerk data to show (unclaimed again, or its
/// Clerk user known only from a delete) shows the signup's own data.
pub const RENDER_SIGNUP_DATA: &str = concat!(
    "UPDATE users SET
    (first_name, last_name, username, image_url, clerk_updated_at, last_operation_id,
     deleted_at) = ",
    signup_data!(),
    ",
    updated_at = ?2
WHERE id IN ",
    claimed!(),
    " AND NOT ",
    has_data!(),
    "
  AND (first_name, last_name, username, image_url, clerk_updated_at, last_operation_id,
       deleted_at) IS NOT ",
    signup_data!()
);

/// A signup row shown with its own data gets its email back when no other
/// live row holds it; unclaimed, it is `pending` again.
pub const SIGNUP_EMAIL_FREE: &str = concat!(
    "UPDATE users SET email = (SELECT s.email FROM signups s WHERE s.id = users.id),
    sync_status = CASE WHEN clerk_id IS NULL THEN 'pending' ELSE sync_status END,
    sync_error = CASE WHEN clerk_id IS NULL THEN NULL ELSE sync_error END,
    last_sync_attempt = CASE WHEN clerk_id IS NULL THEN ?2 ELSE last_sync_attempt END,
    updated_at = ?2
WHERE +email IS NULL AND ",
    signup_rows_to_check!(),
    "
  AND (deleted_at IS NOT NULL OR NOT ",
    signup_email_held!(),
    ")"
);

/// An unclaimed signup row's status: `pending`, or `failed` with the reason
/// when another row holds its email (a Clerk user's change is never refused
/// for an unclaimed signup).
macro_rules! signup_status {
    () => {
        "(SELECT CASE WHEN users.email IS NULL THEN 'failed' ELSE 'pending' END,
        CASE WHEN users.email IS NULL THEN
        (SELECT 'the email is used by '
                || CASE WHEN o.clerk_id IS NULL THEN 'the signup ' || o.id
                        ELSE 'Clerk user ' || o.clerk_id END
                || CASE s.link_by
                     WHEN 'email' THEN ': this invitation cannot be claimed while it is; invite another address or delete this signup'
                     ELSE ': the row keeps waiting for the Clerk user whose external_id is its id, with its email cleared' END
         FROM signups s JOIN users o ON o.email = s.email AND o.id <> s.id AND o.deleted_at IS NULL
         WHERE s.id = users.id LIMIT 1) END)"
    };
}

pub const SIGNUP_STATUS: &str = concat!(
    "UPDATE users SET (sync_status, sync_error) = ",
    signup_status!(),
    ", last_sync_attempt = ?2, updated_at = ?2
WHERE +clerk_id IS NULL AND ",
    signup_rows_to_check!(),
    "
  AND (sync_status, sync_error) IS NOT ",
    signup_status!()
);

/// Each upsert's outcome: whether its data is now its Clerk user's newest.
pub const SET_OUTCOMES: &str = "\
UPDATE applied_operations SET outcome = CASE
    WHEN EXISTS (SELECT 1 FROM clerk_tombstones t WHERE t.clerk_id = applied_operations.clerk_id)
        THEN 'ignored_deleted'
    WHEN EXISTS (SELECT 1 FROM clerk_users cu WHERE cu.clerk_id = applied_operations.clerk_id
                   AND cu.operation_id = applied_operations.operation_id) THEN 'applied'
    ELSE 'stale' END
WHERE operation_id IN (SELECT j.value ->> 0 FROM json_each(?1) j
                       WHERE j.value ->> 1 = 'upsert_user')";

/// The audit rows of applied commands, with the outcomes just decided, in
/// the chunk's order.
pub const AUDIT_APPLIED: &str = "\
INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
SELECT ?2, a.operation_id, a.command, j.value ->> 3, a.clerk_id, a.outcome, NULL
FROM json_each(?1) j JOIN applied_operations a ON a.operation_id = j.value ->> 0
ORDER BY j.key";

/// The last statement of a chunk, and of a failure batch: each operation's
/// `outcome`, if it was applied, in the chunk's order.
pub const READ_OUTCOMES: &str = "\
SELECT a.operation_id, a.outcome
FROM json_each(?1) j JOIN applied_operations a ON a.operation_id = j.value ->> 0
ORDER BY j.key";

// ---- recording what did not apply ---------------------------------------
// Every write here is guarded by the operation not being applied: a batch
// that committed before its answer was lost is never recorded as failed.

/// The command fails until it is taken.
pub const RECORD_FAILURE: &str = "\
INSERT INTO sync_failures (operation_id, clerk_id, error, failed_at)
SELECT ?1, ?2, ?3, ?4
WHERE NOT EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?1)
ON CONFLICT (operation_id) DO UPDATE SET error = excluded.error, failed_at = excluded.failed_at";

/// A Clerk user with no row that wins an unlinked signup (by the claims
/// just recorded) shows its failure there.
pub const FAILED_LINK: &str = concat!(
    "UPDATE users SET clerk_id = ?1
WHERE clerk_id IS NULL
  AND id = (SELECT a.signup_id FROM link_claims a
            WHERE a.clerk_id = ?1 AND ",
    winner!("a.signup_id"),
    " = ?1 LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM users WHERE clerk_id = ?1)
  AND NOT EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?1)
  AND NOT EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?2)"
);

/// Otherwise a Clerk user with no row gets a placeholder, so the failure
/// shows under its Clerk id. It is the sync's row: replaced by a signup the
/// user wins, filled by the user's data once a command applies.
pub const FAILED_PLACEHOLDER: &str = "\
INSERT INTO users (clerk_id, created_at, updated_at, sync_status, last_sync_attempt, sync_error)
SELECT ?1, ?2, ?2, 'failed', ?2, ?3
WHERE NOT EXISTS (SELECT 1 FROM users WHERE clerk_id = ?1)
  AND NOT EXISTS (SELECT 1 FROM clerk_tombstones WHERE clerk_id = ?1)
  AND NOT EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?4)";

/// The failure on the Clerk user's row; its data is left as it was.
pub const MARK_FAILED: &str = "\
UPDATE users SET sync_status = 'failed', last_sync_attempt = ?2, sync_error = ?3, updated_at = ?2
WHERE clerk_id = ?1 AND NOT EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?4)";

/// The audit row of a failure, unless the operation was applied.
pub const AUDIT_FAILED: &str = "\
INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
SELECT ?1, ?2, ?3, ?4, ?5, 'failed', ?6
WHERE NOT EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?2)";

pub const AUDIT: &str = "\
INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// ---- reads and the application's signup ---------------------------------

/// The columns of a `users` row as the API shows it (`view::UserRow`).
macro_rules! user_columns {
    () => {
        "u.id, u.clerk_id, u.email, u.first_name, u.last_name, u.username, u.image_url,
       u.created_at, u.updated_at, u.deleted_at, u.sync_status, u.last_sync_attempt, u.sync_error,
       u.clerk_updated_at, u.last_operation_id,
       (SELECT s.link_by FROM signups s WHERE s.id = u.id) AS link_by"
    };
}

pub const USER_ROW: &str = concat!(
    "SELECT ",
    user_columns!(),
    "
FROM users u WHERE u.clerk_id = ?1"
);

/// What became of each command for one Clerk id, newest first: the last 50,
/// through `sync_audit_clerk_id` (never an email or a body).
pub const USER_AUDIT: &str = "\
SELECT received_at, operation_id, command, event_type, outcome, error FROM sync_audit
WHERE clerk_id = ?1
ORDER BY id DESC LIMIT 50";

/// The application's signup, before Clerk confirms the user: how it will
/// be claimed, and its data.
pub const CREATE_SIGNUP: &str = "\
INSERT INTO signups (id, link_by, email, first_name, last_name, username, created_at)
VALUES (COALESCE(?1, lower(hex(randomblob(16)))), ?2, ?3, ?4, ?5, ?6, ?7)";

/// Its `pending` row without `clerk_id` (refused, like any row, when a live
/// row holds the email).
pub const CREATE_PENDING: &str = "\
INSERT INTO users (id, email, first_name, last_name, username, created_at, updated_at, sync_status)
SELECT id, email, first_name, last_name, username, created_at, created_at, 'pending'
FROM signups WHERE rowid = last_insert_rowid()";

pub const CREATED_ROW: &str = concat!(
    "SELECT ",
    user_columns!(),
    "
FROM users u WHERE u.rowid = last_insert_rowid()"
);

pub const TOMBSTONE_ROW: &str =
    "SELECT clerk_id, deleted_at, operation_id FROM clerk_tombstones WHERE clerk_id = ?1";

pub const COUNTS_BY_STATUS: &str =
    "SELECT sync_status, COUNT(*) AS n FROM users GROUP BY sync_status ORDER BY sync_status";

pub const TOTALS: &str = "\
SELECT COUNT(*) AS users, COUNT(deleted_at) AS deleted,
       (SELECT COUNT(*) FROM clerk_tombstones) AS tombstones,
       (SELECT COUNT(*) FROM applied_operations) AS applied_operations
FROM users";

/// Failed rows: a Clerk user's (`clerk_id`) or an unclaimed signup's (`id`).
pub const FAILED_USERS: &str = "\
SELECT id, clerk_id, sync_error, last_sync_attempt FROM users
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

// ---- pages of rows (GET /internal/users) --------------------------------
// Keyset pages in the order (clerk_id IS NULL, clerk_id, id): the rows linked
// to a Clerk user by `clerk_id`, then the others by `id`. Each filter has its
// own statement, so each page is a range of an index read in order (an
// `?N IS NULL OR …` filter would defeat the index). `?1` is the key the page
// starts after ('' for the first), `?2` the number of rows to read (one more
// than the page, to tell whether another follows), `?3` the sync_status.

/// The columns of a listed row: `external_id` is the id a Clerk user must
/// carry as its `external_id` to claim the row (an `external_id` signup's),
/// else NULL; `deleted` is 0 or 1.
macro_rules! listed_columns {
    () => {
        "u.id, u.clerk_id, u.email,
       (SELECT s.id FROM signups s WHERE s.id = u.id AND s.link_by = 'external_id') AS external_id,
       u.sync_status, u.sync_error, u.last_sync_attempt, u.created_at,
       u.deleted_at IS NOT NULL AS deleted"
    };
}

macro_rules! linked_rows {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            listed_columns!(),
            "
FROM users u WHERE u.clerk_id > ?1",
            $filter,
            "
ORDER BY u.clerk_id LIMIT CAST(?2 AS INTEGER)"
        )
    };
}

macro_rules! unlinked_rows {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            listed_columns!(),
            "
FROM users u INDEXED BY users_unlinked WHERE u.clerk_id IS NULL AND u.id > ?1",
            $filter,
            "
ORDER BY u.id LIMIT CAST(?2 AS INTEGER)"
        )
    };
}

pub const LINKED_ROWS: &str = linked_rows!("");
pub const LINKED_LIVE_ROWS: &str = linked_rows!(" AND u.deleted_at IS NULL");
pub const LINKED_DELETED_ROWS: &str = linked_rows!(" AND u.deleted_at IS NOT NULL");
pub const LINKED_ROWS_BY_STATUS: &str = linked_rows!(" AND u.sync_status = ?3");
pub const LINKED_LIVE_ROWS_BY_STATUS: &str =
    linked_rows!(" AND u.sync_status = ?3 AND u.deleted_at IS NULL");
pub const LINKED_DELETED_ROWS_BY_STATUS: &str =
    linked_rows!(" AND u.sync_status = ?3 AND u.deleted_at IS NOT NULL");
/// Rows with no Clerk id are never live. Named by their partial index:
/// SQLite would otherwise take every row with no Clerk id through the
/// unique index on `clerk_id` and sort them for each page.
pub const UNLINKED_ROWS: &str = unlinked_rows!("");
pub const UNLINKED_ROWS_BY_STATUS: &str = unlinked_rows!(" AND u.sync_status = ?3");

/// The live row with an email (`?1`), case ignored: the column is
/// `COLLATE NOCASE`, and so is its partial unique index, which this reads.
/// At most one row; `?2` and `?3` as in the pages.
macro_rules! email_row {
    ($filter:literal) => {
        concat!(
            "SELECT ",
            listed_columns!(),
            "
FROM users u INDEXED BY users_email_live WHERE u.email = ?1 AND u.deleted_at IS NULL",
            $filter,
            "
LIMIT CAST(?2 AS INTEGER)"
        )
    };
}

pub const EMAIL_ROW: &str = email_row!("");
pub const EMAIL_ROW_BY_STATUS: &str = email_row!(" AND u.sync_status = ?3");

/// A page of rows: the linked rows after the cursor, then (unless only
/// live rows are asked for) the unlinked ones, each read one row past the
/// page; the caller keeps the first `limit` in this order.
pub fn rows(q: &RowsQuery) -> Batch {
    let read = (q.limit + 1).to_string();
    let status = q.sync_status.map(|s| s.as_str());
    let params = |after: &str| {
        let mut p = vec![Value::from(after), Value::from(read.as_str())];
        p.extend(status.map(Value::from));
        p
    };
    if let Some(email) = &q.email {
        let sql = if status.is_some() {
            EMAIL_ROW_BY_STATUS
        } else {
            EMAIL_ROW
        };
        return Batch {
            statements: vec![stmt(sql, params(email))],
        };
    }
    let mut statements = Vec::new();
    let linked_after = match &q.after {
        None => Some(""),
        Some(Cursor::Linked(clerk_id)) => Some(clerk_id.as_str()),
        Some(Cursor::Unlinked(_)) => None,
    };
    if let Some(after) = linked_after {
        let sql = match (q.live, status.is_some()) {
            (None, false) => LINKED_ROWS,
            (Some(true), false) => LINKED_LIVE_ROWS,
            (Some(false), false) => LINKED_DELETED_ROWS,
            (None, true) => LINKED_ROWS_BY_STATUS,
            (Some(true), true) => LINKED_LIVE_ROWS_BY_STATUS,
            (Some(false), true) => LINKED_DELETED_ROWS_BY_STATUS,
        };
        statements.push(stmt(sql, params(after)));
    }
    if q.live != Some(true) {
        let after = match &q.after {
            Some(Cursor::Unlinked(id)) => id.as_str(),
            _ => "",
        };
        let sql = if status.is_some() {
            UNLINKED_ROWS_BY_STATUS
        } else {
            UNLINKED_ROWS
        };
        statements.push(stmt(sql, params(after)));
    }
    Batch { statements }
}

// ---- plans --------------------------------------------------------------

/// The one batch that applies a command: a chunk of one. Its last
/// statement reads the outcome back.
pub fn apply(c: &ValidCommand, now: &str) -> Batch {
    Batch {
        statements: apply_chunk(&[c], now),
    }
}

/// The statements that apply a chunk: commands with distinct Clerk ids and
/// distinct operation ids not applied before. The last one reads their
/// outcomes back ([`READ_OUTCOMES`]).
///
/// Distinct Clerk ids make the chunk end as its commands applied one by one
/// in any order would: each command only adds facts that merge the same way
/// in any order, the rows are then rendered from all of them, and no
/// command's outcome depends on another's (each decides only its own user's
/// data). Two commands for one user go in different chunks, in their order.
fn apply_chunk(chunk: &[&ValidCommand], now: &str) -> Vec<Statement> {
    let facts = facts(chunk);
    let ops = ops(chunk);
    let upserts = chunk.iter().any(|c| c.kind() == CommandKind::UpsertUser);
    let deletes = chunk.iter().any(|c| c.kind() == CommandKind::DeleteUser);
    let with_time = |sql, commands: &Value| stmt(sql, [commands.clone(), now.into()]);
    let alone = |sql, commands: &Value| stmt(sql, [commands.clone()]);
    let mut statements = vec![with_time(CLAIM_OPERATIONS, &ops)];
    if upserts {
        statements.push(alone(STORE_CLERK_USERS, &facts));
        statements.push(alone(RECORD_CLAIMS, &claims(chunk)));
    }
    if deletes {
        statements.push(alone(RECORD_DELETE_CLAIMS, &facts));
        statements.push(with_time(TOMBSTONES, &facts));
    }
    statements.push(alone(CLEAR_FAILURES, &ops));
    statements.extend(render(chunk, now));
    if upserts {
        statements.push(alone(SET_OUTCOMES, &ops));
    }
    statements.push(with_time(AUDIT_APPLIED, &ops));
    statements.push(alone(READ_OUTCOMES, &ops));
    statements
}

/// A yes/no fact as the statements compare it (`= '1'`).
fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// The commands as the JSON parameter the statements of a chunk that read
/// the users' data take with `json_each`: for each, what those statements
/// need, under the names they use.
fn facts(chunk: &[&ValidCommand]) -> Value {
    let list: Vec<serde_json::Value> = chunk
        .iter()
        .map(|c| {
            let cmd = c.command();
            let user = cmd.user.as_ref();
            serde_json::json!({
                "op": cmd.operation_id,
                "command": cmd.command.as_str(),
                "clerk_id": cmd.clerk_id,
                "email": user.and_then(|u| u.email.as_deref()),
                "first_name": user.and_then(|u| u.first_name.as_deref()),
                "last_name": user.and_then(|u| u.last_name.as_deref()),
                "username": user.and_then(|u| u.username.as_deref()),
                "image_url": user.and_then(|u| u.image_url.as_deref()),
                "created_at": user.and_then(|u| u.created_at.as_deref()),
                "version": c.version(),
                "data_key": c.data_key(),
                "external_id": c.external_id(),
                "creation": flag(c.is_creation()),
                "verified": flag(c.verified_email().is_some()),
            })
        })
        .collect();
    Value::Text(serde_json::Value::Array(list).to_string())
}

/// The upserts as the JSON parameter [`RECORD_CLAIMS`] takes: for each,
/// what a claim needs, `[clerk_id, version, created_at, creation,
/// verified, external_id, email]` (read as `->> 0` … `->> 6`), without the
/// data it does not read (names, image URL).
fn claims(chunk: &[&ValidCommand]) -> Value {
    let list: Vec<[Option<&str>; 7]> = chunk
        .iter()
        .filter(|c| c.kind() == CommandKind::UpsertUser)
        .map(|c| {
            let cmd = c.command();
            let user = cmd.user.as_ref();
            [
                Some(cmd.clerk_id.as_str()),
                Some(c.version()),
                user.and_then(|u| u.created_at.as_deref()),
                Some(flag(c.is_creation())),
                Some(flag(c.verified_email().is_some())),
                c.external_id(),
                user.and_then(|u| u.email.as_deref()),
            ]
        })
        .collect();
    Value::Text(serde_json::to_string(&list).expect("strings always serialize"))
}

/// The commands as the JSON parameter the statements of a chunk that only
/// claim, clear, audit and read operations take with `json_each`: for each,
/// `[operation_id, command, clerk_id, event_type]` (read as `->> 0` … `->> 3`).
fn ops(chunk: &[&ValidCommand]) -> Value {
    let list: Vec<[&str; 4]> = chunk
        .iter()
        .map(|c| {
            let cmd = c.command();
            [
                cmd.operation_id.as_str(),
                cmd.command.as_str(),
                cmd.clerk_id.as_str(),
                cmd.event_type.as_str(),
            ]
        })
        .collect();
    Value::Text(serde_json::to_string(&list).expect("strings always serialize"))
}

/// The statements that render the rows of the chunk's Clerk users and of
/// the users they compete with for a signup.
fn render(chunk: &[&ValidCommand], now: &str) -> Vec<Statement> {
    let ids: Vec<&str> = chunk
        .iter()
        .map(|c| c.command().clerk_id.as_str())
        .collect();
    let ids = Value::Text(serde_json::to_string(&ids).expect("strings always serialize"));
    let one = |sql| stmt(sql, [ids.clone()]);
    let two = |sql| stmt(sql, [ids.clone(), now.into()]);
    vec![
        one(UNLINK_LOSERS),
        one(DROP_REPLACED_ROWS),
        one(LINK_WINNERS),
        two(CREATE_OWN_ROWS),
        one(RELEASE_EMAILS),
        two(RENDER_STATE),
        two(RENDER_CLERK_DATA),
        two(RENDER_SIGNUP_DATA),
        two(SIGNUP_EMAIL_FREE),
        two(SIGNUP_STATUS),
    ]
}

/// After the apply batch failed with `failure`: the answer, and the batch
/// that records why. A repeat only gets an audit row. Anything else records
/// the failure on the Clerk user's row, unless the batch had committed
/// after all (its answer lost): every write of the batch is guarded by the
/// operation not being applied, and its last statement reads the outcome,
/// so the caller can tell. The operation stays unclaimed, so a redelivery
/// can still apply.
pub fn after_failure(c: &ValidCommand, now: &str, failure: &DbFailure) -> (ApiError, Batch) {
    let cmd = c.command();
    let op = cmd.operation_id.as_str();
    let id = cmd.clerk_id.as_str();
    let (error, detail) = match failure {
        DbFailure::DuplicateOperation => {
            return (
                ApiError::AlreadyApplied,
                Batch {
                    statements: vec![duplicate_audit(c, now)],
                },
            );
        }
        DbFailure::Constraint(constraint) => (
            ApiError::CannotApply(constraint.clone()),
            describe_constraint(constraint),
        ),
        DbFailure::Other => (
            ApiError::Database,
            "database error while applying the command".to_owned(),
        ),
    };
    let detail = detail.as_str();
    let mut statements = vec![stmt(
        RECORD_FAILURE,
        [op.into(), id.into(), detail.into(), now.into()],
    )];
    if cmd.command == CommandKind::UpsertUser {
        statements.push(stmt(RECORD_CLAIMS, [claims(&[c])]));
        statements.push(stmt(FAILED_LINK, [id.into(), op.into()]));
        statements.push(stmt(
            FAILED_PLACEHOLDER,
            [id.into(), now.into(), detail.into(), op.into()],
        ));
    }
    statements.push(stmt(
        MARK_FAILED,
        [id.into(), now.into(), detail.into(), op.into()],
    ));
    statements.push(stmt(
        AUDIT_FAILED,
        [
            now.into(),
            op.into(),
            cmd.command.as_str().into(),
            cmd.event_type.as_str().into(),
            id.into(),
            detail.into(),
        ],
    ));
    statements.push(stmt(READ_OUTCOMES, [ops(&[c])]));
    (error, Batch { statements })
}

// ---- a command the relay could not deliver (record_failure) -------------
// `?1` is the failure as one JSON object (`failure_facts`), `?2` the time.
// Nothing is written to `sync_failures`: that table holds a command back
// until it is applied, and a dead command never will be; the row is marked
// `failed` instead, and the next command applied for the user (the
// `failed` re-sync's, from Clerk) renders it again.

/// The dead command was applied after all.
macro_rules! failure_applied {
    () => {
        "EXISTS (SELECT 1 FROM applied_operations WHERE operation_id = ?1 ->> 'op')"
    };
}

/// The table already holds what the dead command would have given, or
/// newer: the user is deleted (a delete is final), or, for an upsert, its
/// data is at least as new by (version, data_key), the order upserts win by.
macro_rules! failure_superseded {
    () => {
        "(EXISTS (SELECT 1 FROM clerk_tombstones t WHERE t.clerk_id = ?1 ->> 'clerk_id')
   OR (?1 ->> 'command' = 'upsert_user' AND EXISTS (
        SELECT 1 FROM clerk_users cu WHERE cu.clerk_id = ?1 ->> 'clerk_id'
          AND (cu.version > ?1 ->> 'version'
               OR (cu.version = ?1 ->> 'version' AND cu.data_key >= ?1 ->> 'data_key')))))"
    };
}

/// First, before any write: what recording the failure will do.
pub const FAILURE_OUTCOME: &str = concat!(
    "SELECT ?1 ->> 'op' AS operation_id, CASE WHEN ",
    failure_applied!(),
    " THEN 'duplicate' WHEN ",
    failure_superseded!(),
    " THEN 'superseded' ELSE 'recorded' END AS outcome"
);

/// A Clerk user with no row gets a placeholder, so the failure shows (and
/// the `failed` re-sync finds it) under its Clerk id.
pub const DEAD_PLACEHOLDER: &str = concat!(
    "INSERT INTO users (clerk_id, created_at, updated_at, sync_status, last_sync_attempt, sync_error)
SELECT ?1 ->> 'clerk_id', ?2, ?2, 'failed', ?2, ?1 ->> 'detail'
WHERE NOT EXISTS (SELECT 1 FROM users WHERE clerk_id = ?1 ->> 'clerk_id')
  AND NOT ",
    failure_applied!(),
    " AND NOT ",
    failure_superseded!()
);

/// The failure on the Clerk user's row; its data is left as it was.
pub const MARK_DEAD: &str = concat!(
    "UPDATE users SET sync_status = 'failed', last_sync_attempt = ?2, sync_error = ?1 ->> 'detail',
    updated_at = ?2
WHERE clerk_id = ?1 ->> 'clerk_id' AND NOT ",
    failure_applied!(),
    " AND NOT ",
    failure_superseded!()
);

/// The audit row, with the stable code, unless the command was applied.
pub const AUDIT_DEAD: &str = concat!(
    "INSERT INTO sync_audit (received_at, operation_id, command, event_type, clerk_id, outcome, error)
SELECT ?2, ?1 ->> 'op', ?1 ->> 'command', ?1 ->> 'event_type', ?1 ->> 'clerk_id', 'failed', ?1 ->> 'error'
WHERE NOT ",
    failure_applied!()
);

/// The statements that record the failures, in one transaction: for each,
/// its outcome read first (at `4 * i`), then its writes.
pub fn record_failures(failures: &[ValidFailure], now: &str) -> Batch {
    let mut statements = Vec::with_capacity(failures.len() * 4);
    for f in failures {
        let c = &f.failed;
        let cmd = c.command();
        let facts = serde_json::json!({
            "op": cmd.operation_id,
            "clerk_id": cmd.clerk_id,
            "command": cmd.command.as_str(),
            "event_type": cmd.event_type,
            "version": c.version(),
            "data_key": c.data_key(),
            "error": f.error,
            "detail": format!("the relay could not deliver {}: {}", cmd.command.as_str(), f.error),
        });
        let facts = Value::Text(facts.to_string());
        statements.push(stmt(FAILURE_OUTCOME, [facts.clone()]));
        for sql in [DEAD_PLACEHOLDER, MARK_DEAD, AUDIT_DEAD] {
            statements.push(stmt(sql, [facts.clone(), now.into()]));
        }
    }
    Batch { statements }
}

/// The audit row of a repeated operation id.
fn duplicate_audit(c: &ValidCommand, now: &str) -> Statement {
    let cmd = c.command();
    stmt(
        AUDIT,
        [
            now.into(),
            cmd.operation_id.as_str().into(),
            cmd.command.as_str().into(),
            cmd.event_type.as_str().into(),
            cmd.clerk_id.as_str().into(),
            "duplicate".into(),
            Value::Null,
        ],
    )
}

// ---- a batch of commands -------------------------------------------------

/// Where one command's answer is in the results of a [`BatchPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its operation id was applied before, or earlier in the same batch:
    /// only its `duplicate` audit row is written.
    Duplicate,
    /// Applied by the plan: its outcome is the row with its operation id
    /// in the results of the statement at `outcome_at` (none if it was not
    /// applied).
    Apply { outcome_at: usize },
}

/// Statements for several commands, run as one transaction, and where each
/// command's answer is in their results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    pub batch: Batch,
    pub steps: Vec<Step>,
}

/// The commands of a batch in one transaction, in order, so that it ends
/// as the commands sent one by one would and is all taken or none of it.
/// The commands are cut into chunks ([`apply_chunk`]): a chunk ends before
/// a second command for one of its Clerk users, and before a duplicate. A
/// command whose operation id is in `applied`, or earlier in the batch, is
/// a duplicate: its claim would fail on the primary key and roll back the
/// whole transaction, so it only gets its audit row, in its place.
pub fn apply_all(
    commands: &[ValidCommand],
    applied: &std::collections::HashSet<String>,
    now: &str,
) -> BatchPlan {
    let mut statements = Vec::new();
    let mut steps = Vec::with_capacity(commands.len());
    let mut seen = std::collections::HashSet::new();
    let mut chunk: Vec<&ValidCommand> = Vec::new();
    let mut users = std::collections::HashSet::new();
    // Applies the chunk: its commands' steps (the last ones pushed) point
    // at its last statement.
    let flush = |chunk: &mut Vec<&ValidCommand>,
                 users: &mut std::collections::HashSet<&str>,
                 statements: &mut Vec<Statement>,
                 steps: &mut Vec<Step>| {
        if chunk.is_empty() {
            return;
        }
        statements.extend(apply_chunk(chunk, now));
        let at = steps.len() - chunk.len();
        for step in &mut steps[at..] {
            *step = Step::Apply {
                outcome_at: statements.len() - 1,
            };
        }
        chunk.clear();
        users.clear();
    };
    for c in commands {
        let cmd = c.command();
        if applied.contains(&cmd.operation_id) || !seen.insert(cmd.operation_id.as_str()) {
            flush(&mut chunk, &mut users, &mut statements, &mut steps);
            statements.push(duplicate_audit(c, now));
            steps.push(Step::Duplicate);
            continue;
        }
        if !users.insert(cmd.clerk_id.as_str()) {
            flush(&mut chunk, &mut users, &mut statements, &mut steps);
            users.insert(cmd.clerk_id.as_str());
        }
        chunk.push(c);
        // A placeholder until the chunk is planned.
        steps.push(Step::Apply { outcome_at: 0 });
    }
    flush(&mut chunk, &mut users, &mut statements, &mut steps);
    BatchPlan {
        batch: Batch { statements },
        steps,
    }
}

/// After the transaction of [`apply_all`] answered with an error that is
/// not a repeated operation id: for each command it applies, its
/// [`after_failure`] statements, in one transaction. Every write is guarded
/// by the operation not being applied and each command's outcome is read
/// back, so the caller tells a transaction that committed after all (every
/// operation applied) from one that did not (its failures recorded, as the
/// single endpoint records them).
pub fn after_all_failed(commands: &[ValidCommand], planned: &[Step], now: &str) -> BatchPlan {
    let mut statements = Vec::new();
    let mut steps = Vec::with_capacity(commands.len());
    for (c, step) in commands.iter().zip(planned) {
        if *step == Step::Duplicate {
            steps.push(Step::Duplicate);
            continue;
        }
        statements.extend(after_failure(c, now, &DbFailure::Other).1.statements);
        steps.push(Step::Apply {
            outcome_at: statements.len() - 1,
        });
    }
    BatchPlan {
        batch: Batch { statements },
        steps,
    }
}

/// Which of these operation ids were applied, with their outcomes. One
/// parameter, a JSON array, whatever the number of commands (D1 binds at
/// most 100 parameters to a statement).
pub const APPLIED_AMONG: &str = "\
SELECT operation_id, outcome FROM applied_operations
WHERE operation_id IN (SELECT value FROM json_each(?1))";

pub fn applied_among(commands: &[ValidCommand]) -> Batch {
    let ids: Vec<&str> = commands
        .iter()
        .map(|c| c.command().operation_id.as_str())
        .collect();
    let ids = serde_json::to_string(&ids).expect("strings always serialize");
    Batch {
        statements: vec![stmt(APPLIED_AMONG, [Value::Text(ids)])],
    }
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

/// The application creating a user at signup: the signup, its pending row,
/// and the row read back.
pub fn create_pending(u: &NewUser, now: &str) -> Batch {
    Batch {
        statements: vec![
            stmt(
                CREATE_SIGNUP,
                [
                    u.id.as_deref().into(),
                    u.link_by.as_str().into(),
                    u.email.as_str().into(),
                    u.first_name.as_deref().into(),
                    u.last_name.as_deref().into(),
                    u.username.as_deref().into(),
                    now.into(),
                ],
            ),
            stmt(CREATE_PENDING, []),
            stmt(CREATED_ROW, []),
        ],
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
    use crate::request::{parse_command, LinkBy};
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

    fn upsert() -> ValidCommand {
        upsert_as("msg_u", "user_1")
    }

    fn upsert_as(op: &str, clerk_id: &str) -> ValidCommand {
        let v = json!({
            "version": 1, "command": "upsert_user", "operation_id": op,
            "event_type": "user.created", "occurred_at": "2024-01-05T04:46:40.000Z",
            "received_at": "2024-01-05T04:46:41.000Z", "clerk_id": clerk_id,
            "user": {"email": "a@example.com", "email_verified": true, "first_name": null,
                     "last_name": null, "username": null, "image_url": null,
                     "external_id": "42", "created_at": "2024-01-05T04:46:40.000Z",
                     "updated_at": "2024-01-05T04:46:40.000Z"}
        });
        parse_command(v.to_string().as_bytes()).unwrap()
    }

    fn sqls(b: &Batch) -> Vec<&'static str> {
        b.statements.iter().map(|s| s.sql).collect()
    }

    /// The JSON parameter of a chunk's statements.
    fn facts_of(s: &Statement) -> serde_json::Value {
        match &s.params[0] {
            Value::Text(t) => serde_json::from_str(t).unwrap(),
            Value::Null => panic!("no facts"),
        }
    }

    #[test]
    fn the_claim_comes_first_and_the_outcome_is_read_last() {
        let b = apply(&delete(Some("42")), "2024-01-05T04:46:42.000Z");
        let s = sqls(&b);
        assert_eq!(
            s[..4],
            [
                CLAIM_OPERATIONS,
                RECORD_DELETE_CLAIMS,
                TOMBSTONES,
                CLEAR_FAILURES
            ]
        );
        assert_eq!(s[s.len() - 2..], [AUDIT_APPLIED, READ_OUTCOMES]);
        // A delete claims by external id only.
        let f = facts_of(&b.statements[1]);
        assert_eq!(
            (&f[0]["clerk_id"], &f[0]["external_id"], &f[0]["command"]),
            (&json!("user_1"), &json!("42"), &json!("delete_user"))
        );
        let b = apply(&upsert(), "2024-01-05T04:46:42.000Z");
        let s = sqls(&b);
        assert_eq!(
            s[..4],
            [
                CLAIM_OPERATIONS,
                STORE_CLERK_USERS,
                RECORD_CLAIMS,
                CLEAR_FAILURES
            ]
        );
        assert_eq!(
            s[s.len() - 3..],
            [SET_OUTCOMES, AUDIT_APPLIED, READ_OUTCOMES]
        );
        // The claim: external id, email, created_at, a creation, verified
        // (positions 5, 6, 2, 3, 4 of [`claims`]), and nothing it does not read.
        let f = facts_of(&b.statements[2]);
        assert_eq!(
            [&f[0][5], &f[0][6], &f[0][2], &f[0][3], &f[0][4], &f[0][0]],
            [
                &json!("42"),
                &json!("a@example.com"),
                &json!("2024-01-05T04:46:40.000Z"),
                &json!("1"),
                &json!("1"),
                &json!("user_1")
            ]
        );
        assert_eq!(f[0].as_array().map(Vec::len), Some(7));
        // The rendering statements take the chunk's Clerk ids.
        let render = b.statements.iter().find(|s| s.sql == RENDER_STATE).unwrap();
        assert_eq!(render.params[0], Value::from(r#"["user_1"]"#));
    }

    #[test]
    fn every_placeholder_is_bound() {
        let d = delete(None);
        let u = upsert();
        let new = NewUser {
            id: None,
            email: "e@example.com".into(),
            first_name: None,
            last_name: None,
            username: None,
            link_by: LinkBy::Email,
        };
        let mut batches = vec![
            apply(&d, "t"),
            apply(&u, "t"),
            user("u"),
            status(),
            create_pending(&new, "t"),
        ];
        for f in [
            DbFailure::DuplicateOperation,
            DbFailure::Constraint("c".into()),
            DbFailure::Other,
        ] {
            batches.push(after_failure(&d, "t", &f).1);
            batches.push(after_failure(&u, "t", &f).1);
        }
        batches.push(record_rejection(&Salvaged::default(), "t", "e"));
        let all = apply_all(&[u.clone(), d.clone()], &Default::default(), "t");
        batches.push(after_all_failed(&[u.clone(), d.clone()], &all.steps, "t").batch);
        batches.push(all.batch);
        batches.push(applied_among(&[u.clone(), d.clone()]));
        for live in [None, Some(true), Some(false)] {
            for sync_status in [None, Some(crate::request::SyncStatus::Failed)] {
                for after in [None, Some(Cursor::Unlinked("x".into()))] {
                    batches.push(rows(&RowsQuery {
                        live,
                        sync_status,
                        after,
                        limit: 5,
                        email: None,
                    }));
                }
            }
        }
        for sync_status in [None, Some(crate::request::SyncStatus::Failed)] {
            batches.push(rows(&RowsQuery {
                live: None,
                sync_status,
                after: None,
                limit: 5,
                email: Some("e@example.com".into()),
            }));
        }
        for s in batches.iter().flat_map(|b| &b.statements) {
            let highest = (1..=20).rev().find(|n| s.sql.contains(&format!("?{n}")));
            assert_eq!(highest.unwrap_or(0), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn a_batch_is_cut_into_chunks_of_distinct_users_and_repeats_are_only_audited() {
        let (u, d) = (upsert(), delete(None));
        let other = upsert_as("msg_o", "user_2");
        let again = upsert_as("msg_u2", "user_1");
        // u and other in one chunk; d (applied) a duplicate in its place;
        // u again (its operation id) a duplicate; again (user_1 again) in a
        // chunk of its own.
        let applied = std::collections::HashSet::from(["msg_d".to_owned()]);
        let batch = [
            u.clone(),
            other.clone(),
            d.clone(),
            u.clone(),
            again.clone(),
        ];
        let plan = apply_all(&batch, &applied, "t");
        let first = apply_chunk(&[&u, &other], "t");
        assert_eq!(plan.batch.statements[..first.len()], first[..]);
        // The claim reads the operations, the data's statements the facts:
        // both in the batch's order.
        let ops = facts_of(&first[0]);
        assert_eq!((&ops[0][0], &ops[1][0]), (&json!("msg_u"), &json!("msg_o")));
        assert_eq!(first[1].sql, STORE_CLERK_USERS);
        let f = facts_of(&first[1]);
        assert_eq!(
            (&f[0]["op"], &f[1]["op"]),
            (&json!("msg_u"), &json!("msg_o"))
        );
        let second = first.len() + 2;
        assert_eq!(
            plan.batch.statements[second..],
            apply_chunk(&[&again], "t")[..]
        );
        assert_eq!(
            plan.steps,
            [
                Step::Apply {
                    outcome_at: first.len() - 1
                },
                Step::Apply {
                    outcome_at: first.len() - 1
                },
                Step::Duplicate,
                Step::Duplicate,
                Step::Apply {
                    outcome_at: plan.batch.statements.len() - 1
                },
            ]
        );
        assert_eq!(plan.batch.statements[first.len() - 1].sql, READ_OUTCOMES);
        for s in &plan.batch.statements[first.len()..second] {
            assert_eq!((s.sql, &s.params[5]), (AUDIT, &Value::from("duplicate")));
        }
        // However many commands, a chunk is the same statements.
        assert_eq!(first.len(), apply(&u, "t").statements.len());
        // After a failure, only the planned commands are recorded.
        let failed = after_all_failed(&batch, &plan.steps, "t");
        assert_eq!(failed.steps[2..4], [Step::Duplicate, Step::Duplicate]);
        assert_eq!(
            failed.batch.statements.len(),
            3 * after_failure(&upsert(), "t", &DbFailure::Other)
                .1
                .statements
                .len()
        );
        assert_eq!(
            applied_among(&[d]).statements[0].params,
            [Value::from(r#"["msg_d"]"#)]
        );
    }

    #[test]
    fn a_page_reads_the_linked_rows_then_the_unlinked_ones() {
        let q = |live, after| RowsQuery {
            live,
            sync_status: None,
            after,
            limit: 10,
            email: None,
        };
        let b = rows(&q(None, None));
        assert_eq!(sqls(&b), [LINKED_ROWS, UNLINKED_ROWS]);
        assert_eq!(b.statements[0].params, [Value::from(""), Value::from("11")]);
        // Only live rows: none without a Clerk id.
        assert_eq!(sqls(&rows(&q(Some(true), None))), [LINKED_LIVE_ROWS]);
        // Past the linked rows: only the unlinked ones, after the cursor.
        let b = rows(&q(Some(false), Some(Cursor::Unlinked("app_1".into()))));
        assert_eq!(sqls(&b), [UNLINKED_ROWS]);
        assert_eq!(b.statements[0].params[0], Value::from("app_1"));
        let b = rows(&RowsQuery {
            sync_status: Some(crate::request::SyncStatus::Pending),
            ..q(None, Some(Cursor::Linked("user_1".into())))
        });
        assert_eq!(sqls(&b), [LINKED_ROWS_BY_STATUS, UNLINKED_ROWS_BY_STATUS]);
        assert_eq!(
            b.statements[0].params,
            [
                Value::from("user_1"),
                Value::from("11"),
                Value::from("pending")
            ]
        );
        assert_eq!(b.statements[1].params[0], Value::from(""));
        // An email: its one row, whatever else the query says.
        let b = rows(&RowsQuery {
            email: Some("A@x.com".into()),
            ..q(None, None)
        });
        assert_eq!(sqls(&b), [EMAIL_ROW]);
        assert_eq!(
            b.statements[0].params,
            [Value::from("A@x.com"), Value::from("11")]
        );
        let b = rows(&RowsQuery {
            email: Some("A@x.com".into()),
            sync_status: Some(crate::request::SyncStatus::Failed),
            ..q(None, None)
        });
        assert_eq!(sqls(&b), [EMAIL_ROW_BY_STATUS]);
        assert_eq!(b.statements[0].params[2], Value::from("failed"));
    }

    #[test]
    fn a_repeat_is_only_audited() {
        let (e, b) = after_failure(&delete(None), "t", &DbFailure::DuplicateOperation);
        assert_eq!(e, ApiError::AlreadyApplied);
        assert_eq!(b.statements.len(), 1);
        assert_eq!(b.statements[0].params[5], Value::from("duplicate"));
    }

    #[test]
    fn a_failure_batch_is_guarded_and_reads_the_outcome_last() {
        for c in [delete(None), upsert()] {
            let (_, b) = after_failure(&c, "t", &DbFailure::Other);
            assert_eq!(b.statements.last().unwrap().sql, READ_OUTCOMES);
            for s in &b.statements {
                let writes_failure = [
                    RECORD_FAILURE,
                    FAILED_LINK,
                    FAILED_PLACEHOLDER,
                    MARK_FAILED,
                    AUDIT_FAILED,
                ]
                .contains(&s.sql);
                if writes_failure {
                    assert!(
                        s.sql
                            .contains("NOT EXISTS (SELECT 1 FROM applied_operations"),
                        "{}",
                        s.sql
                    );
                }
            }
        }
    }
}
