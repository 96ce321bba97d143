//! `POST /internal/clerk-sync/batch`: the commands of a batch end as they
//! would sent one by one, in order, with the single endpoint's outcomes and
//! audit rows; a malformed batch applies nothing; a database error fails
//! the request and the batch sent again converges; what the API answers is
//! what the re-sync run reads.

use std::collections::HashSet;

use clerk_sync_contract::batch::{BatchRequest, Outcome, MAX_BATCH_COMMANDS};
use clerk_sync_contract::command::Command;
use clerk_sync_contract::secret::SecretString;
use clerk_sync_main_api::error::ApiError;
use clerk_sync_main_api::request::{Route, BATCH_PATH, MAX_BATCH_BODY_BYTES, USERS_PATH};
use clerk_sync_main_api::service;
use serde_json::{json, Value as Json};

use crate::convergence::{history, with_repeats};
use crate::sqlite::*;

const T1: i64 = START_MS - 3_000;
const T2: i64 = START_MS - 2_000;
const T3: i64 = START_MS - 1_000;

fn outcomes(body: &Json) -> Vec<(String, String)> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {body}"))
        .iter()
        .map(|r| {
            (
                r["operation_id"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// `(operation_id, outcome)` of every audit row, in order.
fn audit(api: &Api) -> Vec<(Json, Json)> {
    api.db
        .query(
            "SELECT operation_id, outcome FROM sync_audit ORDER BY id",
            &[],
        )
        .into_iter()
        .map(|r| (r["operation_id"].clone(), r["outcome"].clone()))
        .collect()
}

fn count(api: &Api, sql: &'static str) -> i64 {
    api.db.query(sql, &[])[0]["n"].as_i64().unwrap()
}

fn d1_batches(api: &Api) -> u32 {
    let log = api.last_log.borrow();
    log.as_ref().unwrap().batch.as_ref().unwrap().d1_batches
}

/// What the single endpoint answered, as a batch result names it.
fn single_outcome(status: u16, body: &Json) -> String {
    match status {
        200 => body["outcome"].as_str().unwrap().to_owned(),
        409 => "duplicate".to_owned(),
        other => panic!("the single endpoint answered {other}: {body}"),
    }
}

#[test]
fn a_batch_answers_each_command_in_order() {
    let api = Api::new();
    let mut created = upsert("m1", "user_a", record(Some("a@x.com"), T2));
    created.event_type = "user.created".into();
    let commands = [
        created.clone(),
        upsert("m2", "user_a", record(Some("old@x.com"), T1)),
        upsert("m3", "user_b", record(Some("b@x.com"), T1)),
        delete("m4", "user_b", None),
        upsert("m5", "user_b", record(Some("b2@x.com"), T3)),
        created,
        upsert("m6", "user_a", record(Some("a3@x.com"), T3)),
    ];
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[
            ("m1", "applied"),
            ("m2", "stale"),
            ("m3", "applied"),
            ("m4", "applied"),
            ("m5", "ignored_deleted"),
            ("m1", "duplicate"),
            ("m6", "applied"),
        ])
    );
    assert_eq!(body["ok"], true);
    assert_eq!(body["results"][0]["error"], Json::Null);
    assert_eq!(d1_batches(&api), 1, "one transaction");
    let a = api.user("user_a").1;
    assert_eq!(a["user"]["email"], "a3@x.com");
    assert_eq!(a["sync_status"], "synced");
    let b = api.user("user_b").1;
    assert_eq!(
        (&b["deleted"], &b["user"]["email"]),
        (&json!(true), &json!("b2@x.com"))
    );
    // The single endpoint's audit rows, in order.
    let trail: Vec<Json> = audit(&api).into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        trail,
        [
            "applied",
            "stale",
            "applied",
            "applied",
            "ignored_deleted",
            "duplicate",
            "applied"
        ]
    );
    let log = api.last_log.borrow().clone().unwrap();
    let counts = log.batch.clone().unwrap();
    assert_eq!(
        (
            counts.commands,
            counts.applied,
            counts.stale,
            counts.duplicate
        ),
        (7, 4, 1, 1)
    );
    let line = log.to_json();
    assert!(
        !line.contains("a@x.com") && !line.contains("First"),
        "{line}"
    );
}

#[test]
fn a_batch_sent_again_is_all_duplicates_and_changes_nothing() {
    let api = Api::new();
    // One command already delivered alone by the relay.
    api.expect(&upsert("m2", "user_b", record(Some("b@x.com"), T1)), 200);
    let commands = [
        upsert("m1", "user_a", record(Some("a@x.com"), T1)),
        upsert("m2", "user_b", record(Some("b@x.com"), T1)),
        delete("m3", "user_c", None),
    ];
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[("m1", "applied"), ("m2", "duplicate"), ("m3", "applied")])
    );
    // The transaction failed on m2's operation id, the ids were read, the
    // batch was planned again without it.
    assert_eq!(d1_batches(&api), 3);
    let before = table(&api);
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[
            ("m1", "duplicate"),
            ("m2", "duplicate"),
            ("m3", "duplicate")
        ])
    );
    assert_eq!(table(&api), before);
    let duplicates = audit(&api)
        .into_iter()
        .filter(|(_, o)| o == "duplicate")
        .count();
    assert_eq!(duplicates, 4);
}

#[test]
fn a_batch_ends_as_its_commands_sent_one_by_one() {
    // Simulated Clerk histories (signups of both rules, email changes,
    // external ids, deletes, ties), each shuffled with repeats: one batch
    // ends in the table, the outcomes and the audit trail of the same
    // commands sent alone in that order.
    let mut rng = fastrand::Rng::with_seed(0xBA7C_4EED);
    for n in 0..200 {
        let history = history(&mut rng, n);
        let order = with_repeats(&mut rng, &history.commands);
        let one_by_one = Api::new();
        let batched = Api::new();
        for s in &history.signups {
            signup(&one_by_one, &s.id, s.email, s.link_by);
            signup(&batched, &s.id, s.email, s.link_by);
        }
        let alone: Vec<(String, String)> = order
            .iter()
            .map(|c| {
                let (status, body) = one_by_one.send(c);
                (c.operation_id.clone(), single_outcome(status, &body))
            })
            .collect();
        let (s, body) = batched.send_batch(&order);
        assert_eq!(s, 200, "schedule {n}: {body}");
        assert_eq!(outcomes(&body), alone, "schedule {n}");
        assert_eq!(d1_batches(&batched), 1, "schedule {n}");
        assert_eq!(table(&batched), table(&one_by_one), "schedule {n}");
        assert_eq!(audit(&batched), audit(&one_by_one), "schedule {n}");
    }
}

#[test]
fn database_faults_fail_the_request_and_the_batch_sent_again_ends_alike() {
    // Every other batch meets a fault before or after a commit, on any of
    // its D1 batches; the caller sends it again until it is answered 200.
    let mut rng = fastrand::Rng::with_seed(0xFA01_75ED);
    let (mut refused, mut committed) = (0, 0);
    for n in 0..150 {
        let history = history(&mut rng, n);
        let order = with_repeats(&mut rng, &history.commands);
        let reference = Api::new();
        let api = Api::new();
        for s in &history.signups {
            signup(&reference, &s.id, s.email, s.link_by);
            signup(&api, &s.id, s.email, s.link_by);
        }
        assert_eq!(reference.send_batch(&order).0, 200);
        *api.db.chaos.borrow_mut() = Some(fastrand::Rng::with_seed(rng.u64(..)));
        let mut taken: HashSet<String> = HashSet::new();
        for attempt in 0.. {
            assert!(attempt < 50, "schedule {n}: never answered 200");
            let (s, body) = api.send_batch(&order);
            let log = api.last_log.borrow().clone().unwrap();
            committed += usize::from(log.committed_despite_error);
            if s == 200 {
                for (op, outcome) in outcomes(&body) {
                    assert_ne!(outcome, "rejected", "schedule {n}");
                    taken.insert(op);
                }
                break;
            }
            assert_eq!((s, &body["error"]), (500, &json!("database_error")));
            refused += 1;
        }
        assert_eq!(taken.len(), history.commands.len(), "schedule {n}");
        *api.db.chaos.borrow_mut() = None;
        assert_eq!(table(&api), table(&reference), "schedule {n}");
        let failed = count(
            &api,
            "SELECT COUNT(*) AS n FROM users WHERE clerk_id IS NOT NULL AND sync_status = 'failed'
               AND (sync_error IS NULL OR sync_error NOT LIKE 'the email is used by%')",
        );
        assert_eq!(failed, 0, "schedule {n}: a taken command left a row failed");
    }
    eprintln!(
        "batches under faults: {refused} answered 500, {committed} committed despite an error"
    );
    assert!(
        refused > 10 && committed > 5,
        "{refused} refused, {committed} committed"
    );
}

#[test]
fn a_database_error_records_the_failures_and_a_lost_answer_is_not_one() {
    let api = Api::new();
    let commands = [
        upsert("m1", "user_a", record(Some("a@x.com"), T1)),
        upsert("m2", "user_b", record(Some("b@x.com"), T1)),
    ];
    api.db.faults.borrow_mut().push_back(Fault::Before);
    let (s, body) = api.send_batch(&commands);
    assert_eq!(
        (s, &body["error"]),
        (500, &json!("database_error")),
        "{body}"
    );
    // As the single endpoint does: each row failed, until taken.
    for id in ["user_a", "user_b"] {
        let u = api.user(id).1;
        assert_eq!(u["sync_status"], "failed", "{u}");
    }
    assert_eq!(
        count(&api, "SELECT COUNT(*) AS n FROM applied_operations"),
        0
    );
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[("m1", "applied"), ("m2", "applied")])
    );
    assert_eq!(api.user("user_a").1["sync_status"], "synced");

    // D1 commits, then answers with an error: the outcomes, not a failure.
    let api = Api::new();
    api.db.faults.borrow_mut().push_back(Fault::AfterCommit);
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[("m1", "applied"), ("m2", "applied")])
    );
    let log = api.last_log.borrow().clone().unwrap();
    assert!(log.committed_despite_error && !log.audit_failed);
    assert_eq!(api.user("user_b").1["sync_status"], "synced");
    assert_eq!(count(&api, "SELECT COUNT(*) AS n FROM sync_failures"), 0);
}

/// A database whose own schema refuses one address (a constraint the
/// reference schema does not have). Never pooled: the trigger stays.
fn refusing_api() -> Api {
    let db = Sqlite::with_migrations(&migrations());
    db.execute(
        "CREATE TRIGGER refuse_address BEFORE INSERT ON clerk_users
         WHEN NEW.email = 'refused@x.com'
         BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: refuse_address'); END;",
    )
    .unwrap();
    Api::with_db(db)
}

#[test]
fn a_constraint_refuses_its_command_alone() {
    let api = refusing_api();
    let commands = [
        upsert("m1", "user_a", record(Some("a@x.com"), T1)),
        upsert("m2", "user_b", record(Some("refused@x.com"), T1)),
        upsert("m3", "user_c", record(Some("c@x.com"), T1)),
    ];
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[("m1", "applied"), ("m2", "rejected"), ("m3", "applied")])
    );
    assert_eq!(body["results"][1]["error"], "cannot_apply");
    let log = api.last_log.borrow().clone().unwrap();
    let counts = log.batch.unwrap();
    assert!(counts.one_by_one);
    // The failed transaction, then one D1 batch per command and one to
    // record the refused command's failure.
    assert_eq!(counts.d1_batches, 5);
    // As the single endpoint's 422: the row failed with the reason.
    let b = api.user("user_b").1;
    assert_eq!(b["sync_status"], "failed");
    assert!(
        b["user"]["sync_error"]
            .as_str()
            .unwrap()
            .contains("refuse_address"),
        "{b}"
    );
    assert_eq!(api.user("user_c").1["sync_status"], "synced");

    // A database error among the commands applied one by one: those before
    // it are kept, the request fails, the batch sent again completes.
    let api = refusing_api();
    api.db.faults.borrow_mut().extend([
        Fault::Pass,   // the transaction, refused by the constraint
        Fault::Pass,   // m1
        Fault::Pass,   // m2, refused
        Fault::Pass,   // m2's failure
        Fault::Before, // m3
    ]);
    let (s, body) = api.send_batch(&commands);
    assert_eq!(
        (s, &body["error"]),
        (500, &json!("database_error")),
        "{body}"
    );
    assert_eq!(api.user("user_a").1["sync_status"], "synced");
    assert_eq!(api.user("user_c").1["sync_status"], "failed");
    let (s, body) = api.send_batch(&commands);
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        pairs(&[("m1", "duplicate"), ("m2", "rejected"), ("m3", "applied")])
    );
}

#[test]
fn a_malformed_batch_applies_nothing() {
    let good = upsert("m1", "user_a", record(Some("a@x.com"), T1));
    let mut bad_time = upsert("m_bad", "user_b", record(Some("b@x.com"), T1));
    bad_time.occurred_at = "2026-01-01T00:00:00Z".into();
    let mut no_user = delete("m_bad", "user_b", None);
    no_user.command = clerk_sync_contract::command::CommandKind::UpsertUser;
    let with = |commands: Vec<Command>| BatchRequest::new(commands).to_json();
    let mut newer = json!(BatchRequest::new(vec![good.clone()]));
    newer["version"] = json!(2);
    let mut extra = json!(BatchRequest::new(vec![good.clone()]));
    extra["dry_run"] = json!(true);
    let mut long_id = good.clone();
    long_id.clerk_id = "u".repeat(300);
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        (b"not json".to_vec(), None),
        (b"{}".to_vec(), None),
        (good.to_json(), None), // a single command, not a batch
        (newer.to_string().into_bytes(), None),
        (extra.to_string().into_bytes(), None),
        (with(vec![]), None),
        (with(vec![good.clone(); MAX_BATCH_COMMANDS + 1]), None),
        (with(vec![good.clone(), bad_time]), Some("m_bad")),
        (with(vec![good.clone(), no_user]), Some("m_bad")),
        (with(vec![good.clone(), long_id]), Some("m1")),
    ];
    for (n, (body, salvaged)) in cases.into_iter().enumerate() {
        let api = Api::new();
        let (s, answer) = api.batch_bytes(&body);
        assert_eq!(
            (s, &answer["error"]),
            (400, &json!("invalid_batch")),
            "case {n}: {answer}"
        );
        for t in [
            "applied_operations",
            "clerk_users",
            "users",
            "sync_failures",
        ] {
            let n_rows = api.db.query(
                Box::leak(format!("SELECT COUNT(*) AS n FROM {t}").into_boxed_str()),
                &[],
            )[0]["n"]
                .as_i64()
                .unwrap();
            assert_eq!(n_rows, 0, "case {n}: {t}");
        }
        let trail = api
            .db
            .query("SELECT operation_id, outcome, error FROM sync_audit", &[]);
        assert_eq!(trail.len(), 1, "case {n}: one audit row");
        assert_eq!(trail[0]["outcome"], "rejected");
        assert_eq!(trail[0]["operation_id"], json!(salvaged), "case {n}");
        assert_eq!(trail[0]["error"], answer["message"], "case {n}");
    }

    // Over the body limit (the glue's bounded reader says so): 413, audited.
    let api = Api::new();
    let (s, answer) = api.batch_raw(Err(ApiError::PayloadTooLarge));
    assert_eq!(s, 413, "{answer}");
    assert_eq!(audit(&api), [(Json::Null, json!("rejected"))]);
}

/// A command as large as Clerk's fields usually make one.
fn realistic(n: usize) -> Command {
    let mut user = record(
        Some(&format!("someone.with.a.long.name.{n}@example-company.com")),
        T1,
    );
    user.first_name = Some("Bartholomew-Alexander".into());
    user.last_name = Some("Featherstonehaugh-Montgomery".into());
    user.username = Some(format!("bartholomew_{n}"));
    user.image_url = Some(format!(
        "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2ltYWdlcy5jbGVyay5kZXYvb2F1dGhfZ29vZ2xlL2ltZ18{n}"
    ));
    user.external_id = Some(format!("app_{n}"));
    let mut c = upsert(
        &format!("resync_run1_user_{n:05}_{T1}"),
        &format!("user_2abcdefghijklmnopqrstu{n:05}"),
        user,
    );
    c.event_type = "resync".into();
    c
}

#[test]
fn five_hundred_commands_apply_in_one_d1_batch() {
    let api = Api::new();
    let commands: Vec<Command> = (0..MAX_BATCH_COMMANDS).map(realistic).collect();
    let body = BatchRequest::new(commands.clone()).to_json();
    assert!(
        body.len() * 4 < MAX_BATCH_BODY_BYTES as usize,
        "500 such commands are {} bytes: a quarter of the limit",
        body.len()
    );
    let (s, answer) = api.batch_bytes(&body);
    assert_eq!(s, 200);
    let results = outcomes(&answer);
    assert_eq!(results.len(), MAX_BATCH_COMMANDS);
    for ((op, outcome), c) in results.iter().zip(&commands) {
        assert_eq!((op, outcome.as_str()), (&c.operation_id, "applied"));
    }
    assert_eq!(d1_batches(&api), 1);
    assert_eq!(
        count(
            &api,
            "SELECT COUNT(*) AS n FROM users WHERE sync_status = 'synced'"
        ),
        500
    );
    // Sent again (a resumed run): 500 duplicates, in three D1 batches.
    let (s, answer) = api.batch_bytes(&body);
    assert_eq!(s, 200);
    assert!(outcomes(&answer).iter().all(|(_, o)| o == "duplicate"));
    assert_eq!(d1_batches(&api), 3);
}

#[test]
fn the_bearer_guards_the_batch_and_the_rows() {
    let secret = SecretString::new("test-api-secret");
    for (method, path, route) in [
        ("POST", BATCH_PATH, Route::Batch),
        ("GET", USERS_PATH, Route::Users),
        ("HEAD", USERS_PATH, Route::Users),
    ] {
        assert_eq!(
            service::admit(method, path, Some(&secret), Some("Bearer test-api-secret")),
            Ok(route)
        );
        for bad in [None, Some("Bearer wrong"), Some("test-api-secret")] {
            assert_eq!(
                service::admit(method, path, Some(&secret), bad),
                Err(ApiError::Unauthorized),
                "{method} {path} {bad:?}"
            );
        }
        assert_eq!(
            service::admit(method, path, None, Some("Bearer test-api-secret")),
            Err(ApiError::Misconfigured)
        );
    }
    assert_eq!(
        service::admit("GET", BATCH_PATH, Some(&secret), None),
        Err(ApiError::MethodNotAllowed)
    );
}

#[test]
fn the_resync_run_reads_what_the_batch_answers() {
    let api = refusing_api();
    api.expect(&upsert("m0", "user_z", record(Some("z@x.com"), T1)), 200);
    let commands = vec![
        upsert("m1", "user_a", record(Some("a@x.com"), T2)),
        upsert("m2", "user_a", record(Some("a@x.com"), T1)),
        delete("m3", "user_b", None),
        upsert("m4", "user_b", record(Some("b@x.com"), T3)),
        upsert("m0", "user_z", record(Some("z@x.com"), T1)),
        upsert("m5", "user_c", record(Some("refused@x.com"), T1)),
    ];
    let body = BatchRequest::new(commands.clone()).to_json();
    let (s, answer) = api.batch_raw(Ok(&body));
    assert_eq!(s, 200, "{answer}");
    let sent: Vec<String> = commands.iter().map(|c| c.operation_id.clone()).collect();
    let results = clerk_sync_resync::main_api::parse_batch(answer.as_bytes(), &sent)
        .unwrap_or_else(|e| panic!("{e:?}: {answer}"));
    let read: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        read,
        [
            Outcome::Applied,
            Outcome::Stale,
            Outcome::Applied,
            Outcome::IgnoredDeleted,
            Outcome::Duplicate,
            Outcome::Rejected
        ]
    );
    assert_eq!(results[5].error.as_deref(), Some("cannot_apply"));
    assert!(results[..5].iter().all(|r| r.error.is_none()));
}

/// The database as another request sees it: before some of the API's D1
/// batches, a command is delivered alone (the relay, racing the batch).
struct Racing<'a> {
    api: &'a Api,
    before: std::cell::RefCell<std::collections::VecDeque<Option<Command>>>,
}

impl clerk_sync_main_api::service::Database for Racing<'_> {
    async fn batch(
        &self,
        batch: &clerk_sync_main_api::plan::Batch,
    ) -> Result<Vec<Vec<Json>>, String> {
        let next = self.before.borrow_mut().pop_front().flatten();
        if let Some(c) = next {
            assert_eq!(self.api.send(&c).0, 200);
        }
        self.api.db.batch(batch).await
    }
}

#[test]
fn ids_applied_while_the_batch_is_planned_again_come_back_duplicate() {
    let api = Api::new();
    let commands = [
        upsert("m1", "user_a", record(Some("a@x.com"), T1)),
        upsert("m2", "user_b", record(Some("b@x.com"), T1)),
        upsert("m3", "user_c", record(Some("c@x.com"), T1)),
    ];
    // m1 before the transaction, m2 after the read of the applied ids,
    // m3 after the second read: the third try fails too, and the commands
    // are applied one by one.
    let racing = Racing {
        api: &api,
        before: std::cell::RefCell::new(
            [
                Some(&commands[0]),
                None,
                Some(&commands[1]),
                None,
                Some(&commands[2]),
            ]
            .into_iter()
            .map(|c| c.cloned())
            .collect(),
        ),
    };
    let body = BatchRequest::new(commands.to_vec()).to_json();
    let mut log = clerk_sync_main_api::log::RequestLog::new("POST", BATCH_PATH);
    let reply = block_on(service::sync_batch(
        &racing,
        Ok(&body),
        START_MS + 10,
        &mut log,
    ))
    .unwrap();
    let answer: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        outcomes(&answer),
        pairs(&[
            ("m1", "duplicate"),
            ("m2", "duplicate"),
            ("m3", "duplicate")
        ])
    );
    let counts = log.batch.unwrap();
    assert!(counts.one_by_one);
    // Three tries and two reads, then each command and its audit row.
    assert_eq!(counts.d1_batches, 11);
    assert_eq!(api.user("user_c").1["sync_status"], "synced");
}
