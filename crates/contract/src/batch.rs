//! The batch endpoint's contract: `POST /internal/clerk-sync/batch`.
//!
//! ```json
//! {"version":1,"commands":[<command>, …]}                      1–500 commands
//! {"ok":true,"results":[{"operation_id":"…","outcome":"applied","error":null}, …]}
//! ```
//! Results come back in the order of the commands. A malformed batch is a
//! 400 and applies nothing.

use serde::{Deserialize, Serialize};

use crate::command::{Command, CONTRACT_VERSION};

pub const BATCH_PATH: &str = "/internal/clerk-sync/batch";
/// Most commands one batch may carry (a page of Clerk users).
pub const MAX_BATCH_COMMANDS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub version: u32,
    pub commands: Vec<Command>,
}

impl BatchRequest {
    pub fn new(commands: Vec<Command>) -> Self {
        Self {
            version: CONTRACT_VERSION,
            commands,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a batch always serializes")
    }
}

/// What became of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Written to the table.
    Applied,
    /// This operation id was applied before; nothing changed.
    Duplicate,
    /// Older than what the table holds; taken, nothing changed.
    Stale,
    /// An upsert for a user the table holds a tombstone for.
    IgnoredDeleted,
    /// The main API refuses the command itself (its error says why); a retry
    /// of the same command will not change that.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::IgnoredDeleted => "ignored_deleted",
            Self::Rejected => "rejected",
        }
    }

    /// Everything but `Rejected` means the API has the command.
    pub fn is_taken(self) -> bool {
        self != Self::Rejected
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub operation_id: String,
    pub outcome: Outcome,
    /// A stable code when `outcome` is `rejected`.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub ok: bool,
    pub results: Vec<CommandResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialize_as_the_contract_names() {
        for o in [
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Stale,
            Outcome::IgnoredDeleted,
            Outcome::Rejected,
        ] {
            let text = serde_json::to_string(&o).unwrap();
            assert_eq!(text, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&text).unwrap(), o);
        }
        assert!(!Outcome::Rejected.is_taken());
        assert!(Outcome::Stale.is_taken());
    }

    #[test]
    fn a_batch_refuses_unknown_fields() {
        let bad = r#"{"version":1,"commands":[],"extra":1}"#;
        assert!(serde_json::from_str::<BatchRequest>(bad).is_err());
        let good = BatchRequest::new(vec![]);
        let back: BatchRequest = serde_json::from_slice(&good.to_json()).unwrap();
        assert_eq!(back, good);
    }
}
