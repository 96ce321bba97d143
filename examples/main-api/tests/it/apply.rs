//! The semantics of each command, one rule per test.

use serde_json::json;

use crate::sqlite::*;

const T1: i64 = START_MS - 3_000;
const T2: i64 = START_MS - 2_000;
const T3: i64 = START_MS - 1_000;

fn audit(api: &Api, clerk_id: &str) -> Vec<(String, Option<String>)> {
    api.db
        .query(
            "SELECT outcome, error FROM sync_audit WHERE clerk_id = ?1 ORDER BY id",
            &[clerk_id],
        )
        .into_iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_owned(),
                r["error"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn outcomes(api: &Api, clerk_id: &str) -> Vec<String> {
    audit(api, clerk_id).into_iter().map(|(o, _)| o).collect()
}

fn applied_ops(api: &Api) -> Vec<String> {
    api.db
        .query(
            "SELECT operation_id FROM applied_operations ORDER BY operation_id",
            &[],
        )
        .into_iter()
        .map(|r| r["operation_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn create_then_read_back_synced() {
    let api = Api::new();
    let (s, body) = api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("a@example.com"), T1),
    ));
    assert_eq!((s, &body["outcome"]), (200, &json!("applied")), "{body}");
    assert_eq!(body["operation_id"], "msg_1");
    let (s, u) = api.user("user_a");
    assert_eq!(s, 200);
    assert_eq!(u["deleted"], false);
    assert_eq!(u["sync_status"], "synced");
    let row = &u["user"];
    assert_eq!(row["email"], "a@example.com");
    assert_eq!(row["first_name"], format!("First{T1}"));
    assert_eq!(row["clerk_updated_at"], ms(T1));
    assert_eq!(
        row["created_at"],
        ms(START_MS - 10_000),
        "Clerk's created_at"
    );
    assert_eq!(row["last_sync_attempt"], api.now());
    assert_eq!(row["sync_error"], json!(null));
    assert_eq!(row["last_operation_id"], "msg_1");
    assert_eq!(outcomes(&api, "user_a"), ["applied"]);
    assert_eq!(api.user("user_nobody").0, 404);
}

#[test]
fn newer_updates_apply_older_ones_are_acknowledged_and_change_nothing() {
    let api = Api::new();
    api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("a@example.com"), T2),
    ));
    let before = api.user("user_a").1["user"].clone();

    let (s, body) = api.send(&upsert(
        "msg_old",
        "user_a",
        record(Some("old@example.com"), T1),
    ));
    assert_eq!((s, &body["outcome"]), (200, &json!("stale")));
    assert_eq!(
        api.user("user_a").1["user"],
        before,
        "a stale update changes nothing"
    );

    let (_, body) = api.send(&upsert(
        "msg_new",
        "user_a",
        record(Some("new@example.com"), T3),
    ));
    assert_eq!(body["outcome"], "applied");
    let u = api.user("user_a").1;
    assert_eq!(u["user"]["email"], "new@example.com");
    assert_eq!(u["user"]["clerk_updated_at"], ms(T3));
    assert_eq!(outcomes(&api, "user_a"), ["applied", "stale", "applied"]);
}

#[test]
fn delete_soft_deletes_tombstones_and_no_late_upsert_revives() {
    let api = Api::new();
    api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("a@example.com"), T1),
    ));
    let (s, body) = api.send(&delete("msg_del", "user_a", None));
    assert_eq!((s, &body["outcome"]), (200, &json!("applied")), "{body}");
    let u = api.user("user_a").1;
    assert_eq!(u["deleted"], true);
    assert_eq!(u["sync_status"], "synced");
    assert_eq!(u["user"]["deleted_at"], u["tombstone"]["deleted_at"]);
    assert_eq!(u["tombstone"]["operation_id"], "msg_del");

    // A newer upsert delivered late does not bring the user back; the
    // deleted row shows the newest data, as it would had it come first.
    let (s, body) = api.send(&upsert(
        "msg_late",
        "user_a",
        record(Some("b@example.com"), T3),
    ));
    assert_eq!((s, &body["outcome"]), (200, &json!("ignored_deleted")));
    let after = api.user("user_a").1;
    assert_eq!(after["deleted"], true);
    assert_eq!(after["user"]["deleted_at"], u["user"]["deleted_at"]);
    assert_eq!(after["user"]["email"], "b@example.com");
    assert_eq!(after["user"]["clerk_updated_at"], ms(T3));

    // Another delete (a new operation) keeps the first deletion time.
    let (_, body) = api.send(&delete("msg_del2", "user_a", None));
    assert_eq!(body["outcome"], "applied");
    assert_eq!(
        api.user("user_a").1["user"]["deleted_at"],
        u["user"]["deleted_at"]
    );
    assert_eq!(
        outcomes(&api, "user_a"),
        ["applied", "applied", "ignored_deleted", "applied"]
    );
}

#[test]
fn a_delete_before_the_create_ends_as_a_create_then_a_delete() {
    let api = Api::new();
    api.send(&delete("msg_del", "user_a", None));
    let (s, u) = api.user("user_a");
    assert_eq!(
        (s, &u["deleted"], &u["user"]),
        (200, &json!(true), &json!(null)),
        "only a tombstone until the user's data arrives"
    );
    let (_, body) = api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("a@example.com"), T1),
    ));
    assert_eq!(body["outcome"], "ignored_deleted");
    let u = api.user("user_a").1;
    assert!(u["user"]["deleted_at"].is_string(), "{u}");
    assert_eq!(u["user"]["email"], "a@example.com");
    // The email stays free for a live account.
    let (_, body) = api.send(&upsert(
        "msg_2",
        "user_b",
        record(Some("a@example.com"), T1),
    ));
    assert_eq!(body["outcome"], "applied");
}

#[test]
fn a_repeated_operation_is_409_and_changes_nothing() {
    let api = Api::new();
    let first = upsert("msg_1", "user_a", record(Some("a@example.com"), T1));
    api.send(&first);
    let before = api.user("user_a").1["user"].clone();
    let (s, body) = api.send(&first);
    assert_eq!((s, &body["error"]), (409, &json!("already_applied")));
    // Even with different content: the operation id is what counts.
    let mut changed = upsert("msg_1", "user_a", record(Some("x@example.com"), T3));
    changed.event_type = "user.updated".into();
    assert_eq!(api.send(&changed).0, 409);
    assert_eq!(api.user("user_a").1["user"], before);
    assert_eq!(
        outcomes(&api, "user_a"),
        ["applied", "duplicate", "duplicate"]
    );
    assert_eq!(applied_ops(&api), ["msg_1"]);
    // The audit trail is in the user's answer too, newest first.
    let trail: Vec<_> = api.user("user_a").1["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(trail, ["duplicate", "duplicate", "applied"]);
}

/// The application's signup, through `POST /internal/users`.
pub fn app_row(api: &Api, id: &str, email: &str) {
    let (s, body) = api.create_user(&json!({"id": id, "email": email, "first_name": "Pending"}));
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["user"]["sync_status"], "pending");
    assert_eq!(body["user"]["clerk_id"], json!(null));
}

#[test]
fn the_application_signup_creates_a_pending_row() {
    let api = Api::new();
    let (s, body) = api.create_user(&json!({"email": "new@example.com"}));
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["user"]["id"].as_str().unwrap().len(), 32, "generated");
    let (s, body) = api.create_user(&json!({"email": "NEW@example.com"}));
    assert_eq!((s, &body["error"]), (422, &json!("cannot_apply")), "{body}");
    let (s, body) = api.create_user(&json!({"mail": "x"}));
    assert_eq!((s, &body["error"]), (400, &json!("invalid_user")));
}

pub fn row_by_id(api: &Api, id: &str) -> serde_json::Value {
    api.db
        .query("SELECT * FROM users WHERE id = ?1", &[id])
        .pop()
        .expect("row")
}

#[test]
fn a_pending_row_is_linked_by_external_id() {
    let api = Api::new();
    app_row(&api, "app_42", "signup@example.com");
    let mut user = record(Some("other@example.com"), T1);
    user.external_id = Some("app_42".into());
    let (_, body) = api.send(&upsert("msg_1", "user_a", user));
    assert_eq!(body["outcome"], "applied", "{body}");
    let row = row_by_id(&api, "app_42");
    assert_eq!(row["clerk_id"], "user_a");
    assert_eq!(row["sync_status"], "synced");
    assert_eq!(row["email"], "other@example.com");
    assert_eq!(api.db.query("SELECT id FROM users", &[]).len(), 1);
}

#[test]
fn two_clerk_users_with_one_email_the_newer_shows_it_until_the_other_moves() {
    let api = Api::new();
    api.send(&upsert(
        "msg_a",
        "user_a",
        record(Some("shared@example.com"), T1),
    ));
    // Clerk gives an address to one user at a time: user_b having it at T2
    // means user_a gave it up before; its own change is still on the way.
    let b = upsert("msg_b", "user_b", record(Some("shared@example.com"), T2));
    let (s, body) = api.send(&b);
    assert_eq!((s, &body["outcome"]), (200, &json!("applied")), "{body}");
    let u = api.user("user_b").1;
    assert_eq!(u["sync_status"], "synced");
    assert_eq!(u["user"]["email"], "shared@example.com");

    // user_a's row keeps its data but not the address, and says why.
    let a = api.user("user_a").1;
    assert_eq!(a["sync_status"], "failed");
    assert_eq!(a["user"]["email"], json!(null));
    assert_eq!(a["user"]["first_name"], format!("First{T1}"));
    let error = a["user"]["sync_error"].as_str().unwrap();
    assert!(
        error.starts_with("the email is used by Clerk user user_b, whose data is newer"),
        "{error}"
    );
    let status = api.status();
    assert_eq!(status["users"]["by_sync_status"]["failed"], 1);
    assert_eq!(status["failed_users"][0]["clerk_id"], "user_a");
    assert_eq!(applied_ops(&api), ["msg_a", "msg_b"], "both taken");

    // An older claim delivered late holds nothing back.
    let (_, body) = api.send(&upsert(
        "msg_c",
        "user_c",
        record(Some("shared@example.com"), T1 - 500),
    ));
    assert_eq!(body["outcome"], "applied");
    assert_eq!(api.user("user_c").1["user"]["email"], json!(null));
    assert_eq!(api.user("user_b").1["user"]["email"], "shared@example.com");

    // user_a's change arrives: everyone is synced again.
    api.send(&upsert(
        "msg_a2",
        "user_a",
        record(Some("a2@example.com"), T3),
    ));
    let a = api.user("user_a").1;
    assert_eq!(a["sync_status"], "synced");
    assert_eq!(a["user"]["sync_error"], json!(null));
    assert_eq!(a["user"]["email"], "a2@example.com");
    assert_eq!(outcomes(&api, "user_b"), ["applied"]);
}

#[test]
fn a_failed_update_leaves_the_row_as_it_was_except_the_failure() {
    let api = Api::new();
    api.send(&upsert(
        "msg_b",
        "user_b",
        record(Some("b@example.com"), T1),
    ));
    let before = api.user("user_b").1["user"].clone();
    api.db.faults.borrow_mut().push_back(Fault::Before);
    let (s, body) = api.send(&upsert(
        "msg_b2",
        "user_b",
        record(Some("new@example.com"), T2),
    ));
    assert_eq!((s, &body["error"]), (500, &json!("database_error")));
    let after = api.user("user_b").1["user"].clone();
    for column in [
        "email",
        "first_name",
        "clerk_updated_at",
        "last_operation_id",
        "deleted_at",
    ] {
        assert_eq!(after[column], before[column], "{column}");
    }
    assert_eq!(after["sync_status"], "failed");
    assert_eq!(
        after["sync_error"],
        "database error while applying the command"
    );
    assert_eq!(
        applied_ops(&api),
        ["msg_b"],
        "not claimed: a redelivery may apply"
    );
    // A stale command for the failed row changes nothing either.
    let (_, body) = api.send(&upsert(
        "msg_b0",
        "user_b",
        record(Some("b@example.com"), T1 - 1),
    ));
    assert_eq!(body["outcome"], "stale");
    assert_eq!(api.user("user_b").1["sync_status"], "failed");
    assert_eq!(outcomes(&api, "user_b"), ["applied", "failed", "stale"]);
}

#[test]
fn a_malformed_command_is_400_and_audited_as_rejected() {
    let api = Api::new();
    let mut c = upsert("msg_bad", "user_a", record(Some("a@example.com"), T1));
    c.occurred_at = "yesterday".into();
    let (s, body) = api.send(&c);
    assert_eq!((s, &body["error"]), (400, &json!("invalid_command")));
    assert!(body["message"].as_str().unwrap().contains("occurred_at"));
    assert_eq!(
        audit(&api, "user_a"),
        [(
            "rejected".into(),
            Some(body["message"].as_str().unwrap().to_owned())
        )]
    );
    let (s, _) = api.send_bytes(b"{\"version\":1}");
    assert_eq!(s, 400);
    // A Clerk id known only from a rejected command still shows its trail.
    let (s, u) = api.user("user_a");
    assert_eq!(
        (s, &u["user"], &u["deleted"]),
        (200, &json!(null), &json!(false))
    );
    assert_eq!(u["audit"][0]["outcome"], "rejected");
    let rows = api.db.query("SELECT * FROM sync_audit ORDER BY id", &[]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["operation_id"], "msg_bad");
    assert_eq!(rows[1]["operation_id"], json!(null));
    assert!(api.db.query("SELECT * FROM users", &[]).is_empty());
    assert!(applied_ops(&api).is_empty());
}

#[test]
fn a_delete_with_external_id_links_and_deletes_the_pending_row() {
    let api = Api::new();
    app_row(&api, "app_7", "p@example.com");
    api.send(&delete("msg_del", "user_a", Some("app_7")));
    let row = row_by_id(&api, "app_7");
    assert_eq!(row["clerk_id"], "user_a");
    assert!(row["deleted_at"].is_string());
    assert_eq!(row["sync_status"], "synced");
}

#[test]
fn status_shows_counts_failures_and_the_last_applied_operation() {
    let api = Api::new();
    app_row(&api, "app_1", "p@example.com");
    api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("a@example.com"), T1),
    ));
    api.send(&upsert(
        "msg_2",
        "user_b",
        record(Some("a@example.com"), T1),
    ));
    api.send(&delete("msg_3", "user_c", None));
    api.db.faults.borrow_mut().push_back(Fault::Before);
    api.send(&upsert(
        "msg_5",
        "user_d",
        record(Some("d@example.com"), T1),
    ));
    api.send(&upsert(
        "msg_4",
        "user_a",
        record(Some("a@example.com"), T1 - 5),
    ));
    let s = api.status();
    // user_b holds a@ (an equal version: the greater Clerk id); user_d's
    // command failed; app_1 waits.
    assert_eq!(
        s["users"],
        json!({"total": 4, "deleted": 0, "by_sync_status": {"synced": 1, "pending": 1, "failed": 2}})
    );
    assert_eq!(s["tombstones"], 1);
    assert_eq!(s["applied_operations"], 4);
    assert_eq!(s["latest_failures"].as_array().unwrap().len(), 1);
    assert_eq!(s["latest_failures"][0]["operation_id"], "msg_5");
    assert_eq!(s["last_applied_operation"]["operation_id"], "msg_4");
    assert_eq!(s["last_applied_operation"]["outcome"], "stale");
}

#[test]
fn the_log_line_holds_no_personal_data() {
    let api = Api::new();
    api.send(&upsert(
        "msg_1",
        "user_a",
        record(Some("secret.person@example.com"), T1),
    ));
    let log = api.last_log.borrow().clone().unwrap();
    let line = log.to_json();
    assert!(line.contains("\"operation_id\":\"msg_1\""), "{line}");
    assert!(line.contains("\"outcome\":\"applied\""), "{line}");
    assert!(
        !line.contains("secret.person") && !line.contains("First"),
        "{line}"
    );
}

#[test]
fn an_oversized_body_is_413_and_audited() {
    use clerk_sync_main_api::error::ApiError;
    use clerk_sync_main_api::log::RequestLog;
    use clerk_sync_main_api::service;
    let api = Api::new();
    let mut log = RequestLog::new("POST", "/internal/clerk-sync");
    let result = block_on(service::sync(
        &api.db,
        Err(ApiError::PayloadTooLarge),
        START_MS,
        &mut log,
    ));
    assert_eq!(result, Err(ApiError::PayloadTooLarge));
    let rows = api.db.query("SELECT outcome, error FROM sync_audit", &[]);
    assert_eq!(
        rows,
        [json!({"outcome": "rejected", "error": "payload too large"})]
    );
}
