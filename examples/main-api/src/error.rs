//! The API's one error type, its one mapping to an HTTP status and a stable
//! code, and the classification of a database error. Statuses are chosen by
//! what the relay does with them: 2xx and 409 mean "the API has it"; anything
//! else makes the relay answer 5xx, so Svix delivers the command again.

use clerk_sync_contract::command::ContractError;

/// Why a body is not a command this API applies. Messages carry nothing from
/// the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommand {
    #[error("body is not a JSON sync command")]
    NotACommand,
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("{0} must be an RFC 3339 UTC time with milliseconds (2024-01-05T04:46:40.000Z)")]
    Timestamp(&'static str),
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A `record_failure` whose own fields break the contract.
    #[error(transparent)]
    Failure(#[from] clerk_sync_contract::failure::FailureError),
}

/// Why a body is not a batch this API applies (`POST
/// /internal/clerk-sync/batch`). Messages carry nothing from the body but
/// the position of the command at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBatch {
    #[error("body is not a JSON command batch")]
    NotABatch,
    #[error("unsupported contract version")]
    Version,
    #[error("a batch carries 1-500 commands")]
    Count,
    #[error("commands[{index}]: {error}")]
    Command { index: usize, error: InvalidCommand },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unauthorized")]
    Unauthorized,
    #[error("the API is misconfigured")]
    Misconfigured,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error(transparent)]
    InvalidCommand(#[from] InvalidCommand),
    #[error(transparent)]
    InvalidBatch(#[from] InvalidBatch),
    /// A query string `GET /internal/users` or `GET /internal/metrics` does
    /// not take.
    #[error("{0}")]
    InvalidQuery(&'static str),
    /// The operation id was applied before: the relay counts 409 as taken.
    #[error("operation already applied")]
    AlreadyApplied,
    /// A constraint refused the command; the row is marked `failed`.
    #[error("the command cannot be applied: {0}")]
    CannotApply(String),
    #[error("database error")]
    Database,
    #[error("no such user")]
    UserNotFound,
    #[error("{0}")]
    InvalidUser(&'static str),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound | Self::UserNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Unauthorized => 401,
            Self::Misconfigured | Self::Database => 500,
            Self::PayloadTooLarge => 413,
            Self::UnreadableBody
            | Self::InvalidCommand(_)
            | Self::InvalidBatch(_)
            | Self::InvalidQuery(_)
            | Self::InvalidUser(_) => 400,
            Self::AlreadyApplied => 409,
            Self::CannotApply(_) => 422,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Misconfigured => "misconfigured",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::InvalidCommand(_) => "invalid_command",
            Self::InvalidBatch(_) => "invalid_batch",
            Self::InvalidQuery(_) => "invalid_query",
            Self::AlreadyApplied => "already_applied",
            Self::CannotApply(_) => "cannot_apply",
            Self::Database => "database_error",
            Self::UserNotFound => "user_not_found",
            Self::InvalidUser(_) => "invalid_user",
        }
    }
}

/// What a failed batch means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbFailure {
    /// The operation id is already in `applied_operations`.
    DuplicateOperation,
    /// A constraint refused the command: its SQLite text (table and column
    /// names, never values), e.g. `UNIQUE constraint failed: users.email`.
    Constraint(String),
    /// Anything else (unavailable, a bug in a statement).
    Other,
}

/// Classifies the error text of a batch, as SQLite words it (D1 wraps it:
/// `D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT`).
pub fn classify_db_error(text: &str) -> DbFailure {
    let Some(at) = text.find(" constraint failed") else {
        return DbFailure::Other;
    };
    let start = text[..at]
        .rfind(|c: char| c.is_whitespace() || c == ':')
        .map_or(0, |i| i + 1);
    let rest = &text[start..];
    let end = rest
        .find(": SQLITE_")
        .or_else(|| rest.find(['\n', '(', '"']))
        .unwrap_or(rest.len());
    let constraint = rest[..end].trim().trim_end_matches(':').trim();
    if constraint == "UNIQUE constraint failed: applied_operations.operation_id" {
        DbFailure::DuplicateOperation
    } else {
        DbFailure::Constraint(constraint.chars().take(200).collect())
    }
}

/// The `sync_error` text for a constraint: what it means, then SQLite's words.
pub fn describe_constraint(constraint: &str) -> String {
    let meaning = match constraint {
        "UNIQUE constraint failed: users.email" => "the email belongs to another user",
        "UNIQUE constraint failed: users.clerk_id" => "the Clerk id belongs to another row",
        "UNIQUE constraint failed: users.id" | "UNIQUE constraint failed: signups.id" => {
            "the id belongs to another row"
        }
        _ => "a constraint refused the change",
    };
    format!("{meaning} ({constraint})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let all = [
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::Unauthorized,
            ApiError::Misconfigured,
            ApiError::PayloadTooLarge,
            ApiError::UnreadableBody,
            ApiError::InvalidCommand(InvalidCommand::NotACommand),
            ApiError::InvalidBatch(InvalidBatch::Count),
            ApiError::InvalidQuery("x"),
            ApiError::AlreadyApplied,
            ApiError::CannotApply("x".into()),
            ApiError::Database,
            ApiError::UserNotFound,
            ApiError::InvalidUser("x"),
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            assert!(codes.insert(e.code()), "duplicate code {}", e.code());
            assert!(e.status() >= 400);
        }
        // The relay takes 2xx and 409 only: a failure must be neither.
        assert_eq!(ApiError::AlreadyApplied.status(), 409);
        assert_eq!(ApiError::CannotApply("x".into()).status(), 422);
    }

    #[test]
    fn classifies_d1_and_sqlite_texts() {
        for text in [
            "D1_ERROR: UNIQUE constraint failed: applied_operations.operation_id: SQLITE_CONSTRAINT",
            "UNIQUE constraint failed: applied_operations.operation_id",
            "D1: Error: UNIQUE constraint failed: applied_operations.operation_id: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)",
        ] {
            assert_eq!(classify_db_error(text), DbFailure::DuplicateOperation, "{text}");
        }
        assert_eq!(
            classify_db_error("D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT"),
            DbFailure::Constraint("UNIQUE constraint failed: users.email".into())
        );
        assert_eq!(
            classify_db_error("CHECK constraint failed: sync_status IN ('synced')"),
            DbFailure::Constraint("CHECK constraint failed: sync_status IN".into())
        );
        assert_eq!(
            classify_db_error("D1_ERROR: no such table: users: SQLITE_ERROR"),
            DbFailure::Other
        );
        assert_eq!(
            classify_db_error("Network connection lost."),
            DbFailure::Other
        );
    }

    #[test]
    fn describes_known_constraints() {
        assert_eq!(
            describe_constraint("UNIQUE constraint failed: users.email"),
            "the email belongs to another user (UNIQUE constraint failed: users.email)"
        );
    }
}
