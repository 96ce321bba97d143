//! Clerk's user object, as much of it as a command needs, and its one mapping
//! to the contract's [`UserRecord`]. A webhook's `data` and a Backend API
//! `GET /v1/users` element have the same shape, so the relay's webhook path
//! and the re-sync runs map users with this same code.
//!
//! Lenient where Clerk varies (unknown fields ignored, optional fields absent
//! or null), strict where the command needs a value (`id` is a string).

use serde::Deserialize;

use crate::command::UserRecord;
use crate::time::format_millis;

/// A Clerk user (webhook `data` of `user.created`/`user.updated`, or one
/// element of the Backend API's `GET /v1/users`).
#[derive(Debug, Clone, Deserialize)]
pub struct ClerkUser {
    pub id: String,
    #[serde(default)]
    pub email_addresses: Option<Vec<EmailAddress>>,
    #[serde(default)]
    pub primary_email_address_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: Option<i64>,
    /// Unix milliseconds: the version last-writer-wins compares.
    #[serde(default)]
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmailAddress {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub verification: Option<Verification>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Verification {
    #[serde(default)]
    pub status: Option<String>,
}

/// `user.deleted` data: `{"deleted":true,"id":…,"object":"user"}` and maybe `external_id`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeletedUser {
    pub id: String,
    #[serde(default)]
    pub external_id: Option<String>,
}

/// A user time outside the years 0000–9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a timestamp is out of range")]
pub struct TimeOutOfRange;

impl ClerkUser {
    /// The contract's view of this user.
    pub fn to_record(&self) -> Result<UserRecord, TimeOutOfRange> {
        let time = |ms: Option<i64>| {
            ms.map(|ms| format_millis(ms).ok_or(TimeOutOfRange))
                .transpose()
        };
        let primary = self.primary_email();
        Ok(UserRecord {
            email: primary.and_then(|e| e.email_address.clone()),
            email_verified: primary
                .and_then(|e| e.verification.as_ref())
                .and_then(|v| v.status.as_deref())
                == Some("verified"),
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            username: self.username.clone(),
            image_url: self.image_url.clone(),
            external_id: self.external_id.clone(),
        })
    }

    /// The address whose id is `primary_email_address_id`; with no primary
    /// id, the first address; with a primary id that is not in the list, none
    /// (never a guess).
    pub fn primary_email(&self) -> Option<&EmailAddress> {
        let addresses = self.email_addresses.as_deref().unwrap_or_default();
        match self.primary_email_address_id.as_deref() {
            Some(primary) => addresses.iter().find(|a| a.id.as_deref() == Some(primary)),
            None => addresses.first(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> ClerkUser {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn primary_email_rules() {
        let u = user(
            r#"{"id":"u","primary_email_address_id":"b","email_addresses":[{"id":"a","email_address":"a@x"},{"id":"b","email_address":"b@x","verification":{"status":"verified"}}]}"#,
        )
        .to_record()
        .unwrap();
        assert_eq!((u.email.as_deref(), u.email_verified), (Some("b@x"), true));
        let u = user(
            r#"{"id":"u","primary_email_address_id":"zz","email_addresses":[{"id":"a","email_address":"a@x"}]}"#,
        );
        assert_eq!(u.to_record().unwrap().email, None);
        let u = user(r#"{"id":"u","email_addresses":[{"id":"a","email_address":"a@x","verification":{"status":"unverified"}}]}"#)
            .to_record()
            .unwrap();
        assert_eq!((u.email.as_deref(), u.email_verified), (Some("a@x"), false));
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let u = user(r#"{"id":"u","updated_at":9223372036854775807}"#);
        assert_eq!(u.to_record(), Err(TimeOutOfRange));
        let u = user(r#"{"id":"u","updated_at":1654012591835}"#);
        assert_eq!(
            u.to_record().unwrap().updated_at.as_deref(),
            Some("2022-05-31T15:56:31.835Z")
        );
    }
}
