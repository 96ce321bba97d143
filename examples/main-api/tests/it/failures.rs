//! `POST /internal/clerk-sync/failures` (`record_failure`, sent by the
//! relay's dead-letter consumer): the row becomes `failed` with the code and
//! an audit row says so; nothing newer is undone; a command applied after
//! all stays applied; the next command applied for the user (the `failed`
//! re-sync's) heals the row.

use serde_json::{json, Value as Json};

use crate::sqlite::*;

const T1: i64 = START_MS - 3_000;
const T2: i64 = START_MS - 2_000;

fn outcomes(body: &Json) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {body}"))
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// The audit rows of a Clerk id, oldest first: (operation id, outcome, error).
fn audit(api: &Api, clerk_id: &str) -> Vec<(String, String, Json)> {
    let mut rows: Vec<_> = api.user(clerk_id).1["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["operation_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["error"].clone(),
            )
        })
        .collect();
    rows.reverse();
    rows
}

#[test]
fn a_dead_command_for_a_known_user_marks_its_row_failed_and_audits_it() {
    let api = Api::new();
    assert_eq!(
        api.send(&upsert("op1", "user_a", record(Some("a@x.test"), T1)))
            .0,
        200
    );
    let dead = upsert("op2", "user_a", record(Some("a2@x.test"), T2));
    let (s, body) = api.record_failures(&[dead], "upstream_unavailable");
    assert_eq!(s, 200, "{body}");
    assert_eq!(outcomes(&body), ["recorded"]);
    assert_eq!(body["results"][0]["operation_id"], "op2");
    let u = api.user("user_a").1;
    assert_eq!(u["sync_status"], "failed");
    assert_eq!(
        u["user"]["sync_error"],
        "the relay could not deliver upsert_user: upstream_unavailable"
    );
    // The data is left as it was: the failed re-sync brings the newest.
    assert_eq!(u["user"]["email"], "a@x.test");
    assert_eq!(
        audit(&api, "user_a").last().unwrap(),
        &("op2".into(), "failed".into(), json!("upstream_unavailable"))
    );
}

#[test]
fn a_dead_command_for_an_unknown_user_gets_a_failed_placeholder_row() {
    let api = Api::new();
    let dead = upsert("op1", "user_new", record(Some("n@x.test"), T1));
    let (s, body) = api.record_failures(&[dead], "upstream_timeout");
    assert_eq!((s, outcomes(&body)), (200, vec!["recorded".to_owned()]));
    let u = api.user("user_new").1;
    assert_eq!(u["sync_status"], "failed");
    assert_eq!(u["user"]["email"], Json::Null);
    // Listed among the rows a `failed` re-sync reads.
    let (_, page) = api.rows("sync_status=failed&limit=10");
    assert_eq!(page["users"][0]["clerk_id"], "user_new", "{page}");
}

#[test]
fn newer_data_or_a_delete_already_applied_is_not_undone() {
    let api = Api::new();
    // Newer data is in: the dead older upsert would have been stale.
    assert_eq!(
        api.send(&upsert("new", "user_a", record(Some("a@x.test"), T2)))
            .0,
        200
    );
    let older = upsert("old", "user_a", record(Some("old@x.test"), T1));
    let (_, body) = api.record_failures(&[older], "upstream_unavailable");
    assert_eq!(outcomes(&body), ["superseded"]);
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
    // The audit trail still says the command was not delivered.
    assert_eq!(audit(&api, "user_a").last().unwrap().1, "failed");

    // The user is deleted: a dead upsert (or delete) changes nothing.
    assert_eq!(api.send(&delete("del", "user_b", None)).0, 200);
    let dead = [
        upsert("up_b", "user_b", record(Some("b@x.test"), T2)),
        delete("del2", "user_b", None),
    ];
    let (_, body) = api.record_failures(&dead, "upstream_unavailable");
    assert_eq!(outcomes(&body), ["superseded", "superseded"]);
    let b = api.user("user_b").1;
    assert_eq!(b["deleted"], true);
    assert_ne!(b["sync_status"], "failed");
}

#[test]
fn a_command_applied_after_all_stays_applied_and_is_not_audited_again() {
    let api = Api::new();
    let c = upsert("op1", "user_a", record(Some("a@x.test"), T1));
    assert_eq!(api.send(&c).0, 200);
    let before = audit(&api, "user_a").len();
    let (_, body) = api.record_failures(&[c], "upstream_unavailable");
    assert_eq!(outcomes(&body), ["duplicate"]);
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
    assert_eq!(audit(&api, "user_a").len(), before);
}

#[test]
fn the_next_command_applied_heals_the_row_and_a_repeat_of_the_failure_is_harmless() {
    let api = Api::new();
    let dead = upsert("op1", "user_a", record(Some("a@x.test"), T1));
    for _ in 0..2 {
        let (_, body) = api.record_failures(std::slice::from_ref(&dead), "upstream_unavailable");
        assert_eq!(outcomes(&body), ["recorded"]);
    }
    assert_eq!(api.user("user_a").1["sync_status"], "failed");
    // The failed re-sync's upsert, from Clerk's truth (a new operation id).
    let healed = upsert("resync_1_user_a", "user_a", record(Some("a@x.test"), T1));
    assert_eq!(api.send(&healed).0, 200);
    let u = api.user("user_a").1;
    assert_eq!(u["sync_status"], "synced", "{u}");
    assert_eq!(u["user"]["email"], "a@x.test");
    // A late record_failure of the dead command no longer marks it.
    let (_, body) = api.record_failures(&[dead], "upstream_unavailable");
    assert_eq!(outcomes(&body), ["superseded"]);
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
}

#[test]
fn a_malformed_failure_batch_is_refused_whole() {
    let api = Api::new();
    let good = clerk_sync_contract::failure::RecordFailure::new(
        upsert("op1", "user_a", record(None, T1)),
        "upstream_unavailable",
    );
    let mut bad_code = good.clone();
    bad_code.error = "Not A Code".into();
    let mut mismatch = good.clone();
    mismatch.clerk_id = "user_b".into();
    for failures in [vec![], vec![good.clone(), bad_code], vec![mismatch]] {
        let body = clerk_sync_contract::failure::FailureBatch::new(failures).to_json();
        let (s, answer) = api.failures_bytes(&body);
        assert_eq!(s, 400, "{answer}");
        assert_eq!(answer["error"], "invalid_batch");
    }
    assert_eq!(
        api.failures_bytes(b"{\"version\":2,\"failures\":[]}").0,
        400
    );
    assert_eq!(api.user("user_a").0, 404, "nothing was recorded");
}
