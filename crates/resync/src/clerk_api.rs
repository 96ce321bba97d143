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

/// Reads a `GET /v1/users` answer for its users' ids only (the sweep asks
/// nothing else): the same bare array and bound as [`parse_users`], each
/// element's `id` as [`Entry::id`] reads it, and nothing else of it built.
pub fn parse_ids(body: &[u8], limit: usize) -> Result<Vec<Option<String>>, BadResponse> {
    let ids: Vec<IdOf> = serde_json::from_slice(body).map_err(|_| {
        // The same refusals as `parse_users`, told apart the same way.
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => BadResponse("clerk answered with something other than an array"),
            Err(_) => BadResponse("clerk answered with invalid json"),
        }
    })?;
    if ids.len() > limit {
        return Err(BadResponse("clerk answered with more users than asked for"));
    }
    Ok(ids.into_iter().map(|IdOf(id)| id).collect())
}

/// An element's `id` when it is an object with a string `id` (the last one,
/// as `serde_json::Value` keeps it); any other element reads as `None`.
struct IdOf(Option<String>);

impl<'de> Deserialize<'de> for IdOf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct IsId(bool);
        impl<'de> Deserialize<'de> for IsId {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Key;
                impl Visitor<'_> for Key {
                    type Value = IsId;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IsId, E> {
                        Ok(IsId(v == "id"))
                    }
                }
                d.deserialize_str(Key)
            }
        }

        struct Element;
        impl<'de> Visitor<'de> for Element {
            type Value = IdOf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any json value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdOf, A::Error> {
                let mut id = None;
                while let Some(IsId(is_id)) = map.next_key()? {
                    if is_id {
                        id = map.next_value::<Value>()?.as_str().map(str::to_owned);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(IdOf(id))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IdOf, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IdOf(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
            fn visit_unit<E>(self) -> Result<IdOf, E> {
                Ok(IdOf(None))
            }
        }
        d.deserialize_any(Element)
    }
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
        // The sweep's reading of the same answer: the same ids.
        let ids = parse_ids(body, 500).unwrap();
        let want: Vec<Option<String>> = entries.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, want);
        let odd = br#"[{"id":"a","id":"b"},{"x":{"id":"c"},"id":null},[{"id":"d"}],"e",null,true,1.5,{"id":"\u0066"}]"#;
        let from_values: Vec<Option<String>> = parse_users(odd, 9)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(parse_ids(odd, 9).unwrap(), from_values);
        assert_eq!(from_values[0].as_deref(), Some("b"));
        for bad in [&b"{\"data\":[]}"[..], b"<html>", b"[1,2,3]", b"[{\"id\":}]"] {
            assert_eq!(
                parse_ids(bad, 2).err(),
                parse_users(bad, 2).err(),
                "{bad:?}"
            );
        }
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
