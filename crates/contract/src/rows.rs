//! A main API's rows as its read endpoints answer them: a page of
//! `GET /internal/users` is [`ListedRow`]s, `GET /internal/users/{clerk_id}`
//! is a [`UserRow`] with its tombstone and audit trail. The reference main
//! API serializes these; the dashboard reads them. (A re-sync run reads
//! only the few columns it needs, leniently: `clerk_sync_resync::main_api`.)

use serde::{Deserialize, Serialize};

/// A `users` row: every column the main API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub clerk_id: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub image_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub sync_status: String,
    pub last_sync_attempt: Option<String>,
    pub sync_error: Option<String>,
    pub clerk_updated_at: Option<String>,
    pub last_operation_id: Option<String>,
    /// How the application's signup row is claimed (`external_id` or
    /// `email`); `null` for a row the sync created for a Clerk user.
    #[serde(default)]
    pub link_by: Option<String>,
}

/// A row of `GET /internal/users`: what a re-sync run reads, plus the
/// row's own `id` and what a list of rows needing attention shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedRow {
    pub id: String,
    pub clerk_id: Option<String>,
    pub email: Option<String>,
    /// The id a Clerk user must carry as its `external_id` to claim the row
    /// (an `external_id` signup's own id), else `null`.
    pub external_id: Option<String>,
    pub sync_status: String,
    pub sync_error: Option<String>,
    pub last_sync_attempt: Option<String>,
    /// When the row was created (a signup's pending age starts here).
    pub created_at: String,
    #[serde(deserialize_with = "bool_or_int")]
    pub deleted: bool,
}

/// SQLite (and D1) give a boolean expression as 0 or 1.
fn bool_or_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(n) => n != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(deleted: serde_json::Value) -> serde_json::Value {
        json!({"id": "r1", "clerk_id": "user_a", "email": null, "external_id": null,
               "sync_status": "failed", "sync_error": "x", "last_sync_attempt": null,
               "created_at": "2027-01-01T00:00:00.000Z", "deleted": deleted})
    }

    #[test]
    fn deleted_is_a_boolean_or_sqlites_integer_and_nothing_else() {
        for (flag, expected) in [(json!(true), true), (json!(0), false), (json!(1), true)] {
            let row: ListedRow = serde_json::from_value(listed(flag)).unwrap();
            assert_eq!(row.deleted, expected);
        }
        assert!(serde_json::from_value::<ListedRow>(listed(json!("yes"))).is_err());
    }

    #[test]
    fn a_row_without_a_column_the_contract_names_is_refused() {
        let mut row = listed(json!(false));
        row.as_object_mut().unwrap().remove("sync_status");
        assert!(serde_json::from_value::<ListedRow>(row).is_err());
    }
}
