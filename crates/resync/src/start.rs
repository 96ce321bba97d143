//! What a run is asked to do: the body of `POST /admin/resync`, parsed into a
//! [`Scope`], and the run's id.
//!
//! ```json
//! (empty), {} or {"scope":"all"}           every Clerk user, then the deletion sweep
//! {"scope":"users","clerk_ids":["user_…"]}  just these ids (1–500)
//! {"scope":"failed"} / {"scope":"pending"}  the main API's rows with that sync_status
//! ```
//! Anything else (unknown or repeated fields, unknown scopes, `clerk_ids`
//! with another scope, ids that are not Clerk-id-like) is refused with a
//! stable code; the glue answers 400 with it.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Largest start body the parser reads (500 ids of the longest length fit).
pub const MAX_START_BODY_BYTES: usize = 128 * 1024;
/// Most ids one `users` run takes.
pub const MAX_SCOPE_IDS: usize = 500;
/// Longest Clerk id the run handles (Clerk's are about 32 characters); it
/// keeps every derived operation id within the contract's 256.
pub const MAX_CLERK_ID_LEN: usize = 128;

/// Which users a run covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// Every Clerk user, then the deletion sweep.
    All,
    /// Just these ids: upsert those Clerk has, delete those it does not.
    Users { clerk_ids: Vec<String> },
    /// The main API's `failed` rows, re-read from Clerk by id.
    Failed,
    /// The main API's `pending` rows, looked up in Clerk by id, external id or email.
    Pending,
}

impl Scope {
    pub fn name(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Users { .. } => "users",
            Self::Failed => "failed",
            Self::Pending => "pending",
        }
    }
}

/// Why a start body is refused. Messages are lowercase and echo nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("body too large")]
    BodyTooLarge,
    #[error("body is not json")]
    InvalidJson,
    #[error("body must be a json object")]
    InvalidBody,
    #[error("unknown field")]
    UnknownField,
    #[error("a field appears twice")]
    DuplicateField,
    #[error("scope must be all, users, failed or pending")]
    InvalidScope,
    #[error("scope users needs clerk_ids")]
    MissingClerkIds,
    #[error("clerk_ids must be an array of strings")]
    InvalidClerkIds,
    #[error("clerk_ids is empty")]
    NoClerkIds,
    #[error("clerk_ids holds more than 500 ids")]
    TooManyClerkIds,
    #[error("a clerk id must be 1-128 letters, digits, _ or -, not starting with -")]
    InvalidClerkId,
}

impl StartError {
    /// The stable code the glue answers with (always status 400).
    pub fn code(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "body_too_large",
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::UnknownField => "unknown_field",
            Self::DuplicateField => "duplicate_field",
            Self::InvalidScope => "invalid_scope",
            Self::MissingClerkIds => "missing_clerk_ids",
            Self::InvalidClerkIds => "invalid_clerk_ids",
            Self::NoClerkIds => "no_clerk_ids",
            Self::TooManyClerkIds => "too_many_clerk_ids",
            Self::InvalidClerkId => "invalid_clerk_id",
        }
    }
}

/// Parses the body of `POST /admin/resync`. Repeated ids are kept once, in
/// their first position.
pub fn parse_start(body: &[u8]) -> Result<Scope, StartError> {
    if body.len() > MAX_START_BODY_BYTES {
        return Err(StartError::BodyTooLarge);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Scope::All);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| StartError::InvalidJson)?;
    if !value.is_object() {
        return Err(StartError::InvalidBody);
    }
    // A second pass that keeps every key, so `{"scope":"all","scope":"users"}`
    // is refused rather than decided by whichever came last.
    let Fields(fields) = serde_json::from_slice(body).map_err(|_| StartError::InvalidJson)?;
    let mut scope = None;
    let mut clerk_ids = None;
    for (key, value) in fields {
        let slot = match key.as_str() {
            "scope" => &mut scope,
            "clerk_ids" => &mut clerk_ids,
            _ => return Err(StartError::UnknownField),
        };
        if slot.replace(value).is_some() {
            return Err(StartError::DuplicateField);
        }
    }
    let scope = match scope {
        None => "all".to_owned(),
        Some(Value::String(s)) => s,
        Some(_) => return Err(StartError::InvalidScope),
    };
    let scope = match scope.as_str() {
        "all" => Scope::All,
        "failed" => Scope::Failed,
        "pending" => Scope::Pending,
        "users" => {
            let ids = clerk_ids.take().ok_or(StartError::MissingClerkIds)?;
            Scope::Users {
                clerk_ids: parse_ids(ids)?,
            }
        }
        _ => return Err(StartError::InvalidScope),
    };
    if clerk_ids.is_some() {
        // clerk_ids beside any scope but users
        return Err(StartError::UnknownField);
    }
    Ok(scope)
}

fn parse_ids(value: Value) -> Result<Vec<String>, StartError> {
    let Value::Array(items) = value else {
        return Err(StartError::InvalidClerkIds);
    };
    if items.is_empty() {
        return Err(StartError::NoClerkIds);
    }
    if items.len() > MAX_SCOPE_IDS {
        return Err(StartError::TooManyClerkIds);
    }
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(id) = item else {
            return Err(StartError::InvalidClerkIds);
        };
        if !is_clerk_id(&id) {
            return Err(StartError::InvalidClerkId);
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// 1–128 of `[A-Za-z0-9_-]`, not starting with `-`: the shape of a Clerk id,
/// and safe as a lookup value (Clerk reads a leading `+`/`-` as include/exclude).
pub fn is_clerk_id(id: &str) -> bool {
    (1..=MAX_CLERK_ID_LEN).contains(&id.len())
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An object's entries in order, repeated keys included.
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Fields(entries))
            }
        }
        d.deserialize_map(V)
    }
}

/// A run's id: 1–64 of `[A-Za-z0-9_-]`, so it fits in an operation id, a
/// URL path segment and a log line as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a run id must be 1-64 letters, digits, _ or -")]
pub struct InvalidRunId;

impl RunId {
    pub const MAX_LEN: usize = 64;

    pub fn new(id: impl Into<String>) -> Result<Self, InvalidRunId> {
        let id = id.into();
        let ok = (1..=Self::MAX_LEN).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id))
        } else {
            Err(InvalidRunId)
        }
    }

    /// `rs_<start millis>_<16 hex digits>` from the start time and a random
    /// number the glue draws (`crypto.getRandomValues`): sortable by start.
    pub fn generate(now: clerk_sync_contract::UnixMillis, random: u64) -> Self {
        Self(format!("rs_{}_{random:016x}", now.as_millis().max(0)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<Self, InvalidRunId> {
        Self::new(s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_sync_contract::UnixMillis;

    #[test]
    fn run_ids() {
        assert!(RunId::new("rs_1_abc-D").is_ok());
        assert_eq!(RunId::new(""), Err(InvalidRunId));
        assert_eq!(RunId::new("a/b"), Err(InvalidRunId));
        assert_eq!(RunId::new("x".repeat(65)), Err(InvalidRunId));
        let id = RunId::generate(UnixMillis(1_764_331_200_123), u64::MAX);
        assert_eq!(id.as_str(), "rs_1764331200123_ffffffffffffffff");
        assert!(RunId::new(id.as_str()).is_ok());
        assert!(serde_json::from_str::<RunId>("\"a b\"").is_err());
    }

    #[test]
    fn clerk_id_shape() {
        assert!(is_clerk_id("user_29w83sxmDNGwOuEthce5gg56FcC"));
        assert!(is_clerk_id("a-b"));
        assert!(!is_clerk_id("-a"));
        assert!(!is_clerk_id("+a"));
        assert!(!is_clerk_id("a,b"));
        assert!(!is_clerk_id(""));
        assert!(is_clerk_id(&"a".repeat(128)));
        assert!(!is_clerk_id(&"a".repeat(129)));
    }
}
