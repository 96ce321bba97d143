//! `record_failure`: a command the relay could not deliver, reported as
//! failed (queue mode's dead-letter consumer sends it).
//! `POST /internal/clerk-sync/failures`:
//!
//! ```json
//! {"version":1,"failures":[{"command":"record_failure","operation_id":"msg_…","clerk_id":"user_…",
//!                           "error":"upstream_unavailable","failed":<the command>}, …]}     1–500
//! {"ok":true,"results":[{"operation_id":"msg_…","outcome":"recorded"}, …]}
//! ```
//! The main API marks the Clerk user's row `failed` with the code and
//! writes an audit row, unless the command was applied after all or the
//! table already holds data at least as new (then nothing is undone). The
//! failed command rides along so the API can tell which.

use serde::{Deserialize, Serialize};

use crate::command::{Command, ContractError, CONTRACT_VERSION};

pub const FAILURES_PATH: &str = "/internal/clerk-sync/failures";

/// The one value of a failure's `command` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    RecordFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordFailure {
    pub command: FailureKind,
    pub operation_id: String,
    pub clerk_id: String,
    /// A stable code (`[a-z0-9_]`, 1–64): why the command was not delivered.
    pub error: String,
    /// The command that failed: its operation id and Clerk id are the two above.
    pub failed: Command,
}

/// Why a `record_failure` does not meet the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FailureError {
    #[error(transparent)]
    Command(#[from] ContractError),
    #[error("operation_id and clerk_id must be the failed command's")]
    Mismatch,
    #[error("error must be a code of 1-64 characters a-z, 0-9 or _")]
    Code,
}

impl RecordFailure {
    pub fn new(failed: Command, error: &str) -> Self {
        Self {
            command: FailureKind::RecordFailure,
            operation_id: failed.operation_id.clone(),
            clerk_id: failed.clerk_id.clone(),
            error: error.to_owned(),
            failed,
        }
    }

    pub fn validate(&self) -> Result<(), FailureError> {
        self.failed.validate()?;
        if self.failed.operation_id != self.operation_id || self.failed.clerk_id != self.clerk_id {
            return Err(FailureError::Mismatch);
        }
        let code_ok = (1..=64).contains(&self.error.len())
            && self
                .error
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !code_ok {
            return Err(FailureError::Code);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBatch {
    pub version: u32,
    pub failures: Vec<RecordFailure>,
}

impl FailureBatch {
    pub fn new(failures: Vec<RecordFailure>) -> Self {
        Self {
            version: CONTRACT_VERSION,
            failures,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a failure batch always serializes")
    }
}

/// What became of one `record_failure`. Every outcome means the API has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureOutcome {
    /// The row is `failed` with the code; an audit row says so.
    Recorded,
    /// The table holds data at least as new (or a delete): nothing changed
    /// but the audit row.
    Superseded,
    /// The command was applied after all: nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureResult {
    pub operation_id: String,
    pub outcome: FailureOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureResponse {
    pub ok: bool,
    pub results: Vec<FailureResult>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Provenance;

    fn failed(op: &str, id: &str) -> Command {
        Command::delete(
            Provenance {
                operation_id: op.into(),
                event_type: "user.deleted".into(),
                occurred_at: "2022-05-31T15:56:31.835Z".into(),
                received_at: "2026-11-28T12:00:00.123Z".into(),
            },
            id.into(),
            None,
        )
    }

    #[test]
    fn serializes_as_the_contract_says_and_round_trips() {
        let batch = FailureBatch::new(vec![RecordFailure::new(
            failed("msg_1", "user_1"),
            "upstream_unavailable",
        )]);
        let v: serde_json::Value = serde_json::from_slice(&batch.to_json()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["failures"][0]["command"], "record_failure");
        assert_eq!(v["failures"][0]["operation_id"], "msg_1");
        assert_eq!(v["failures"][0]["clerk_id"], "user_1");
        assert_eq!(v["failures"][0]["error"], "upstream_unavailable");
        assert_eq!(v["failures"][0]["failed"]["command"], "delete_user");
        let back: FailureBatch = serde_json::from_slice(&batch.to_json()).unwrap();
        assert_eq!(back, batch);
        assert_eq!(back.failures[0].validate(), Ok(()));
        let outcome = serde_json::to_string(&FailureOutcome::Superseded).unwrap();
        assert_eq!(outcome, "\"superseded\"");
    }

    #[test]
    fn validate_rejects_each_break() {
        let mut f = RecordFailure::new(failed("msg_1", "user_1"), "x");
        f.operation_id = "msg_2".into();
        assert_eq!(f.validate(), Err(FailureError::Mismatch));
        let mut f = RecordFailure::new(failed("msg_1", "user_1"), "x");
        f.clerk_id = "user_2".into();
        assert_eq!(f.validate(), Err(FailureError::Mismatch));
        for bad in ["", "Upper", "has space", &"a".repeat(65)] {
            let f = RecordFailure::new(failed("msg_1", "user_1"), bad);
            assert_eq!(f.validate(), Err(FailureError::Code), "{bad:?}");
        }
        let f = RecordFailure::new(failed("msg_1", ""), "x");
        assert_eq!(
            f.validate(),
            Err(FailureError::Command(ContractError::ClerkId))
        );
        let unknown = r#"{"version":1,"failures":[],"x":1}"#;
        assert!(serde_json::from_str::<FailureBatch>(unknown).is_err());
    }
}
