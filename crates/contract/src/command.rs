//! The sync command contract (version 1) between the relay and the main API.
//! Both sides use these types: the relay serializes, the main API
//! deserializes and calls [`Command::validate`].
//!
//! ```json
//! {"version":1,"command":"upsert_user","operation_id":"msg_…","event_type":"user.created",
//!  "occurred_at":"2022-05-31T15:56:31.835Z","received_at":"…","clerk_id":"user_…",
//!  "user":{"email":…,"email_verified":…,"first_name":…,"last_name":…,"username":…,
//!          "image_url":…,"external_id":…,"created_at":…,"updated_at":…}}
//! ```
//! A `delete_user` has `"user": null` and a top-level `external_id` when the
//! event had one.

use serde::{Deserialize, Serialize};

pub const CONTRACT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    UpsertUser,
    DeleteUser,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpsertUser => "upsert_user",
            Self::DeleteUser => "delete_user",
        }
    }
}

/// The application's view of a Clerk user. Times are RFC 3339 UTC with three
/// fractional digits, so they sort as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub email: Option<String>,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub image_url: Option<String>,
    pub external_id: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

/// One sync command. Build it with [`Command::upsert`] or [`Command::delete`],
/// which keep `command`, `user` and `external_id` consistent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub version: u32,
    pub command: CommandKind,
    pub operation_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub received_at: String,
    pub clerk_id: String,
    pub user: Option<UserRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// Where the command came from and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub operation_id: String,
    pub event_type: String,
    pub occurred_at: String,
    pub received_at: String,
}

/// Why a received command does not meet the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("unsupported contract version")]
    Version,
    #[error("upsert_user needs a user object")]
    UpsertWithoutUser,
    #[error("delete_user must have user null")]
    DeleteWithUser,
    #[error("operation_id must be 1-256 characters")]
    OperationId,
    #[error("clerk_id must not be empty")]
    ClerkId,
}

impl Command {
    pub fn upsert(p: Provenance, clerk_id: String, user: UserRecord) -> Self {
        Self::build(p, CommandKind::UpsertUser, clerk_id, Some(user), None)
    }

    pub fn delete(p: Provenance, clerk_id: String, external_id: Option<String>) -> Self {
        Self::build(p, CommandKind::DeleteUser, clerk_id, None, external_id)
    }

    fn build(
        p: Provenance,
        command: CommandKind,
        clerk_id: String,
        user: Option<UserRecord>,
        external_id: Option<String>,
    ) -> Self {
        Self {
            version: CONTRACT_VERSION,
            command,
            operation_id: p.operation_id,
            event_type: p.event_type,
            occurred_at: p.occurred_at,
            received_at: p.received_at,
            clerk_id,
            user,
            external_id,
        }
    }

    /// The checks the receiving side makes after deserializing.
    pub fn validate(&self) -> Result<(), ContractError> {
        if self.version != CONTRACT_VERSION {
            return Err(ContractError::Version);
        }
        if !(1..=256).contains(&self.operation_id.len()) {
            return Err(ContractError::OperationId);
        }
        if self.clerk_id.is_empty() {
            return Err(ContractError::ClerkId);
        }
        match (self.command, &self.user) {
            (CommandKind::UpsertUser, None) => Err(ContractError::UpsertWithoutUser),
            (CommandKind::DeleteUser, Some(_)) => Err(ContractError::DeleteWithUser),
            _ => Ok(()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Command always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov() -> Provenance {
        Provenance {
            operation_id: "msg_1".into(),
            event_type: "user.deleted".into(),
            occurred_at: "2022-05-31T15:56:31.835Z".into(),
            received_at: "2026-11-28T12:00:00.123Z".into(),
        }
    }

    #[test]
    fn delete_serializes_user_null_and_optional_external_id() {
        let with = Command::delete(prov(), "user_1".into(), Some("ex".into()));
        let v: serde_json::Value = serde_json::from_slice(&with.to_json()).unwrap();
        assert_eq!(v["user"], serde_json::Value::Null);
        assert_eq!(v["external_id"], "ex");
        assert_eq!(v["command"], "delete_user");
        assert_eq!(v["version"], 1);
        let without = Command::delete(prov(), "user_1".into(), None);
        let v: serde_json::Value = serde_json::from_slice(&without.to_json()).unwrap();
        assert!(v.get("external_id").is_none());
    }

    #[test]
    fn round_trips_and_validates() {
        let c = Command::delete(prov(), "user_1".into(), None);
        let back: Command = serde_json::from_slice(&c.to_json()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_contract_breaks() {
        let mut c = Command::delete(prov(), "user_1".into(), None);
        c.version = 2;
        assert_eq!(c.validate(), Err(ContractError::Version));
        let mut c = Command::delete(prov(), "user_1".into(), None);
        c.command = CommandKind::UpsertUser;
        assert_eq!(c.validate(), Err(ContractError::UpsertWithoutUser));
        let mut c = Command::delete(prov(), "".into(), None);
        assert_eq!(c.validate(), Err(ContractError::ClerkId));
        c.clerk_id = "u".into();
        c.operation_id = String::new();
        assert_eq!(c.validate(), Err(ContractError::OperationId));
    }
}
