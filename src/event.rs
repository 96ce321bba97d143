//! Clerk's webhook events: a thin envelope parsed first (`type`, raw `data`,
//! `timestamp`), then `data` parsed by type, then mapped to a [`Command`].
//!
//! Parsing is lenient where Clerk varies (unknown fields ignored, optional
//! fields absent or null) and strict where the command needs a value
//! (`data.id` must be a string). Other event types are not errors: they are
//! acknowledged and ignored, whatever their `data` holds.

use serde::Deserialize;
use serde_json::value::RawValue;

use clerk_sync_contract::clerk::{ClerkUser, DeletedUser};
use clerk_sync_contract::command::{Command, Provenance};
use clerk_sync_contract::time::{envelope_timestamp, UnixMillis};

use crate::verify::VerifiedDelivery;

pub const USER_CREATED: &str = "user.created";
pub const USER_UPDATED: &str = "user.updated";
pub const USER_DELETED: &str = "user.deleted";

/// Why a verified body could not become a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not UTF-8 JSON at all.
    #[error("body is not JSON")]
    InvalidJson,
    /// JSON, but not the shape of a Clerk event.
    #[error("{0}")]
    InvalidPayload(&'static str),
}

/// The envelope: just enough to dispatch.
#[derive(Debug)]
pub struct Envelope<'a> {
    pub event_type: String,
    data: Option<&'a RawValue>,
    /// When the envelope had a usable integer timestamp.
    pub timestamp: Option<UnixMillis>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
}

/// Parses the envelope of a verified body.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, EventError> {
    let not_event =
        EventError::InvalidPayload("body is not a Clerk event (an object with a string type)");
    // serde_json skips ignored values without checking their UTF-8 (found by fuzzing).
    let text = std::str::from_utf8(body).map_err(|_| EventError::InvalidJson)?;
    let raw: RawEnvelope<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            not_event
        } else {
            EventError::InvalidJson
        }
    })?;
    // serde also reads a struct from a JSON array (found by the bad-input tests).
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_event);
    }
    let timestamp = raw
        .timestamp
        .and_then(|t| serde_json::from_str::<i64>(t.get()).ok())
        .and_then(envelope_timestamp);
    Ok(Envelope {
        event_type: raw.event_type,
        data: raw.data,
        timestamp,
    })
}

/// A Clerk event, dispatched on `type`.
#[derive(Debug)]
pub enum ClerkEvent {
    /// `user.created` or `user.updated`.
    UserUpserted {
        event_type: &'static str,
        user: ClerkUser,
    },
    UserDeleted(DeletedUser),
    /// Any other type: acknowledged, not forwarded.
    Other {
        event_type: String,
    },
}

impl ClerkEvent {
    /// Dispatches on the envelope's type and parses `data` for user events.
    pub fn from_envelope(envelope: &Envelope<'_>) -> Result<Self, EventError> {
        let data = || {
            let data = envelope
                .data
                .ok_or(EventError::InvalidPayload("user event without data"))?;
            // As for the envelope: an array would be read as a struct.
            if data.get().trim_start().starts_with('{') {
                Ok(data)
            } else {
                Err(EventError::InvalidPayload(
                    "user event data must be an object",
                ))
            }
        };
        let invalid = |_| EventError::InvalidPayload("user event data needs a string id");
        let event = match envelope.event_type.as_str() {
            t @ (USER_CREATED | USER_UPDATED) => ClerkEvent::UserUpserted {
                event_type: if t == USER_CREATED {
                    USER_CREATED
                } else {
                    USER_UPDATED
                },
                user: serde_json::from_str(data()?.get()).map_err(invalid)?,
            },
            USER_DELETED => {
                ClerkEvent::UserDeleted(serde_json::from_str(data()?.get()).map_err(invalid)?)
            }
            other => ClerkEvent::Other {
                event_type: other.to_owned(),
            },
        };
        // An empty id is a command the main API must reject (found by fuzzing).
        match &event {
            ClerkEvent::UserUpserted {
                user: ClerkUser { id, .. },
                ..
            }
            | ClerkEvent::UserDeleted(DeletedUser { id, .. })
                if id.is_empty() =>
            {
                Err(EventError::InvalidPayload(
                    "user event data needs a non-empty id",
                ))
            }
            _ => Ok(event),
        }
    }
}

/// What the relay does with a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per request and moved, never stored in bulk
pub enum Mapped {
    Forward(Command),
    Ignored { event_type: String },
}

/// Maps a verified delivery (the bytes the verifier checked, and nothing
/// else) to a command. `now` is the relay's clock: `received_at`, and
/// `occurred_at` when neither the envelope nor the signature carries a time.
pub fn map_event(delivery: &VerifiedDelivery, now: UnixMillis) -> Result<Mapped, EventError> {
    let envelope = parse_envelope(delivery.body())?;
    let event = ClerkEvent::from_envelope(&envelope)?;
    let bad_time = EventError::InvalidPayload("a timestamp is out of range");
    let occurred = envelope
        .timestamp
        .or_else(|| delivery.signed_at())
        .unwrap_or(now);
    let provenance = |event_type: &str| -> Result<Provenance, EventError> {
        Ok(Provenance {
            operation_id: delivery.operation_id().to_owned(),
            event_type: event_type.to_owned(),
            occurred_at: occurred.to_rfc3339().ok_or(bad_time)?,
            received_at: now.to_rfc3339().ok_or(bad_time)?,
        })
    };
    Ok(match event {
        ClerkEvent::UserUpserted { event_type, user } => {
            let record = user.to_record().map_err(|_| bad_time)?;
            Mapped::Forward(Command::upsert(provenance(event_type)?, user.id, record))
        }
        ClerkEvent::UserDeleted(d) => Mapped::Forward(Command::delete(
            provenance(USER_DELETED)?,
            d.id,
            d.external_id,
        )),
        ClerkEvent::Other { event_type } => Mapped::Ignored { event_type },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Verifier;
    use clerk_sync_contract::command::UserRecord;

    fn map(body: &str) -> Result<Mapped, EventError> {
        map_bytes(body.as_bytes(), UnixMillis(1_764_331_200_123))
    }

    fn map_bytes(body: &[u8], now: UnixMillis) -> Result<Mapped, EventError> {
        map_event(&Verifier::accept_unsigned(body.to_vec()), now)
    }

    fn upsert(body: &str) -> UserRecord {
        match map(body).unwrap() {
            Mapped::Forward(c) => c.user.unwrap(),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn primary_email_rules() {
        let with_primary = r#"{"type":"user.created","data":{"id":"u","primary_email_address_id":"b",
            "email_addresses":[{"id":"a","email_address":"a@x"},{"id":"b","email_address":"b@x","verification":{"status":"verified"}}]}}"#;
        let u = upsert(with_primary);
        assert_eq!(u.email.as_deref(), Some("b@x"));
        assert!(u.email_verified);

        let primary_missing = r#"{"type":"user.created","data":{"id":"u","primary_email_address_id":"zz",
            "email_addresses":[{"id":"a","email_address":"a@x"}]}}"#;
        assert_eq!(upsert(primary_missing).email, None);

        let no_primary = r#"{"type":"user.created","data":{"id":"u","primary_email_address_id":null,
            "email_addresses":[{"id":"a","email_address":"a@x","verification":{"status":"unverified"}},{"id":"b","email_address":"b@x"}]}}"#;
        let u = upsert(no_primary);
        assert_eq!(u.email.as_deref(), Some("a@x"));
        assert!(!u.email_verified);

        let none = r#"{"type":"user.updated","data":{"id":"u","email_addresses":null}}"#;
        assert_eq!(upsert(none).email, None);
    }

    #[test]
    fn other_types_are_ignored_whatever_their_data() {
        for body in [
            r#"{"type":"session.created","data":{"id":5}}"#,
            r#"{"type":"organization.created"}"#,
            r#"{"type":"email.created","data":[1,2]}"#,
        ] {
            assert!(matches!(map(body), Ok(Mapped::Ignored { .. })), "{body}");
        }
    }

    #[test]
    fn user_events_need_a_string_id() {
        for body in [
            r#"{"type":"user.created","data":{}}"#,
            r#"{"type":"user.created","data":{"id":5}}"#,
            r#"{"type":"user.updated","data":{"id":null}}"#,
            r#"{"type":"user.deleted","data":{"deleted":true}}"#,
            r#"{"type":"user.created"}"#,
            r#"{"type":"user.created","data":null}"#,
            r#"{"type":"user.created","data":"user_1"}"#,
            r#"{"type":"user.created","data":{"id":""}}"#, // found by fuzzing
            r#"{"type":"user.deleted","data":{"id":""}}"#,
            r#"{"type":"user.created","data":["user_1"]}"#, // an array read as a struct
            r#"{"type":"user.deleted","data":["user_1"]}"#,
        ] {
            assert!(
                matches!(map(body), Err(EventError::InvalidPayload(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn json_errors_are_classified() {
        assert_eq!(map("").unwrap_err(), EventError::InvalidJson);
        assert_eq!(map("{").unwrap_err(), EventError::InvalidJson);
        assert_eq!(map("not json").unwrap_err(), EventError::InvalidJson);
        for invalid_utf8 in [
            &b"{\"type\":\"user.created\",\"data\":{\"id\":\"\xff\"}}"[..],
            // In a field nobody reads (found by fuzzing).
            b"{\"type\":\"user.deleted\",\"data\":{\"id\":\"u\"},\"x\":{\"a\xff\":1}}",
        ] {
            assert_eq!(
                map_bytes(invalid_utf8, UnixMillis(0)).unwrap_err(),
                EventError::InvalidJson
            );
        }
        for not_event in [
            "[]",
            "42",
            "\"user.created\"",
            r#"{"type":7}"#,
            r#"{"data":{}}"#,
            r#"["user.deleted",{"id":"user_1"}]"#, // an array read as a struct
            r#" ["user.created",{"id":"user_1"},1700000000000]"#,
            "null",
        ] {
            assert!(
                matches!(map(not_event), Err(EventError::InvalidPayload(_))),
                "{not_event}"
            );
        }
    }

    #[test]
    fn occurred_at_falls_back_to_the_relay_clock() {
        match map(r#"{"type":"user.deleted","data":{"id":"u"}}"#).unwrap() {
            Mapped::Forward(c) => {
                assert_eq!(c.occurred_at, "2025-11-28T12:00:00.123Z");
                assert_eq!(c.received_at, "2025-11-28T12:00:00.123Z");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_typed_timestamp_is_ignored_but_out_of_range_user_time_is_rejected() {
        assert!(map(r#"{"type":"user.deleted","timestamp":"soon","data":{"id":"u"}}"#).is_ok());
        assert!(matches!(
            map(r#"{"type":"user.created","data":{"id":"u","updated_at":9223372036854775807}}"#),
            Err(EventError::InvalidPayload(_))
        ));
    }
}
