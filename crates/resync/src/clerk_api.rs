//! The part of Clerk's Backend API a run reads, in one place: the paths it
//! requests and how their answers are read.
//!
//! - `GET /v1/users?limit=N&order_by=%2Bcreated_at[&starting_after=<id>]`: a bare
//!   JSON array of users, oldest first; a page shorter than `limit` is the last.
//! - `GET /v1/users?limit=N&user_id=a&user_id=b…` (or `external_id`,
//!   `email_address`): a lookup of up to 100 values. Kinds are never mixed in
//!   one request, and `limit` is always given (Clerk's default is 10).
//! - `GET /v1/users/count`: `{"object":"total_count","total_count":N}`.
//!
//! Each user is mapped with the contract's [`ClerkUser::to_record`], the same
//! code the webhook path uses.

use clerk_sync_contract::clerk::ClerkUser;
use clerk_sync_contract::UserRecord;
use serde::Deserialize;
use serde_json::Value;

use crate::start::MAX_CLERK_ID_LEN;

pub const USERS_PATH: &str = "/v1/users";
pub const COUNT_PATH: &str = "/v1/users/count";
/// Clerk's largest `limit`.
pub const MAX_LIST_LIMIT: u32 = 500;
/// Most values of one lookup parameter Clerk takes in one request.
pub const MAX_LOOKUP_VALUES: u32 = 100;

/// The parameter a lookup repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKey {
    UserId,
    ExternalId,
    EmailAddress,
}

impl LookupKey {
    pub fn param(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::ExternalId => "external_id",
            Self::EmailAddress => "email_address",
        }
    }
}

/// One page of every user, oldest first, after the user `after`.
pub fn list_path(limit: u32, after: Option<&str>) -> String {
    let mut path = format!("{USERS_PATH}?limit={limit}&order_by=%2Bcreated_at");
    if let Some(after) = after {
        push_param(&mut path, "starting_after", after);
    }
    path
}

/// A lookup of `values` (at most [`MAX_LOOKUP_VALUES`]). `user_id` and
/// `external_id` read a leading `+`/`-` as include/exclude, so such a value
/// is sent with an explicit `+`; matches are checked on the answer anyway.
pub fn lookup_path(key: LookupKey, values: &[String]) -> String {
    let mut path = format!("{USERS_PATH}?limit={}", values.len().max(1));
    for v in values {
        if key != LookupKey::EmailAddress && (v.starts_with('+') || v.starts_with('-')) {
            push_param(&mut path, key.param(), &format!("+{v}"));
        } else {
            push_param(&mut path, key.param(), v);
        }
    }
    path
}

/// Appends `&key=value`, the value percent-encoded (all but unreserved characters).
pub(crate) fn push_param(path: &mut String, key: &str, value: &str) {
    path.push('&');
    path.push_str(key);
    path.push('=');
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            path.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Why one user of an answer is not upserted: a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No string `id`.
    MissingId,
    /// An `id`, but not the shape of a Clerk user object.
    InvalidUser,
    /// A time outside the years 0000–9999.
    TimeOutOfRange,
    /// An id longer than [`MAX_CLERK_ID_LEN`].
    IdTooLong,
}

impl Reject {
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingId => "missing_id",
            Self::InvalidUser => "invalid_user",
            Self::TimeOutOfRange => "time_out_of_range",
            Self::IdTooLong => "id_too_long",
        }
    }
}

/// One element of a users answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The element's `id` when it is a string, whatever else is wrong.
    pub id: Option<String>,
    pub user: Result<MappedUser, Reject>,
}

/// A user that maps to a record.
#[derive(Debug, Clone)]
pub struct MappedUser {
    pub user: ClerkUser,
    pub record: UserRecord,
}

/// The answer is not what Clerk sends: not JSON, not the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadResponse(pub &'static str);

/// Reads a `GET /v1/users` answer: a bare array, at most `limit` elements.
/// Elements that are not usable users are kept as rejected entries.
pub fn parse_users(body: &[u8], limit: usize) -> Result<Vec<Entry>, BadResponse> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| BadResponse("clerk answered with invalid json"))?;
    let Value::Array(items) = value else {
        return Err(BadResponse(
            "clerk answered with something other than an array",
        ));
    };
    if items.len() > limit {
        return Err(BadResponse("clerk answered with more users than asked for"));
    }
    Ok(items.into_iter().map(entry).collect())
}

fn entry(item: Value) -> Entry {
    let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
    let user = match &id {
        None => Err(Reject::MissingId),
        Some(id) if id.is_empty() => Err(Reject::MissingId),
        Some(id) if id.len() > MAX_CLERK_ID_LEN => Err(Reject::IdTooLong),
        Some(_) => ClerkUser::deserialize(item)
            .map_err(|_| Reject::InvalidUser)
            .and_then(|user| {
                let record = user.to_record().map_err(|_| Reject::TimeOutOfRange)?;
                Ok(MappedUser { user, record })
            }),
    };
    Entry { id, user }
}

/// Reads `GET /v1/users/count`.
pub fn parse_count(body: &[u8]) -> Result<u64, BadResponse> {
    #[derive(Deserialize)]
    struct Count {
        total_count: u64,
    }
    serde_json::from_slice::<Count>(body)
        .map(|c| c.total_count)
        .map_err(|_| BadResponse("clerk answered the count with an unexpected shape"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            list_path(500, None),
            "/v1/users?limit=500&order_by=%2Bcreated_at"
        );
        assert_eq!(
            list_path(2, Some("user_1")),
            "/v1/users?limit=2&order_by=%2Bcreated_at&starting_after=user_1"
        );
        let values = ["a@x.io".to_owned(), "b+c@x.io".to_owned()];
        assert_eq!(
            lookup_path(LookupKey::EmailAddress, &values),
            "/v1/users?limit=2&email_address=a%40x.io&email_address=b%2Bc%40x.io"
        );
        let values = ["-x".to_owned(), "é y".to_owned()];
        assert_eq!(
            lookup_path(LookupKey::ExternalId, &values),
            "/v1/users?limit=2&external_id=%2B-x&external_id=%C3%A9%20y"
        );
    }

    #[test]
    fn users_answers() {
        let body = br#"[{"id":"u1","updated_at":1},{"object":"user"},5,{"id":7},
            {"id":"u2","email_addresses":"nope"},{"id":"u3","updated_at":9223372036854775807}]"#;
        let entries = parse_users(body, 500).unwrap();
        let codes: Vec<_> = entries
            .iter()
            .map(|e| (e.id.as_deref(), e.user.as_ref().err().map(|r| r.code())))
            .collect();
        assert_eq!(
            codes,
            [
                (Some("u1"), None),
                (None, Some("missing_id")),
                (None, Some("missing_id")),
                (None, Some("missing_id")),
                (Some("u2"), Some("invalid_user")),
                (Some("u3"), Some("time_out_of_range")),
            ]
        );
        assert!(parse_users(b"{\"data\":[]}", 500).is_err());
        assert!(parse_users(b"<html>", 500).is_err());
        assert!(parse_users(b"[1,2,3]", 2).is_err());
        assert_eq!(
            parse_count(br#"{"object":"total_count","total_count":42}"#),
            Ok(42)
        );
        assert!(parse_count(br#"{"total_count":-1}"#).is_err());
    }
}
