//! Each error and pacing path on its own, step by step, with exact times.

use clerk_sync_contract::{BatchRequest, CommandKind, UnixMillis};
use clerk_sync_resync::{Action, Answer, ErrorCode, Run, RunConfig, RunId, RunState, Scope};
use serde_json::{json, Value};

use crate::sim::SimUser;

const T0: i64 = 1_764_331_200_000;

fn at(ms: i64) -> UnixMillis {
    UnixMillis(T0 + ms)
}

fn new_run(scope: Scope, config: RunConfig) -> Run {
    Run::new(RunId::new("r1").unwrap(), scope, config, at(0))
}

fn ok(body: impl Into<Vec<u8>>) -> Answer {
    Answer::Status {
        status: 200,
        retry_after: None,
        body: body.into(),
    }
}

fn code(status: u16) -> Answer {
    Answer::Status {
        status,
        retry_after: None,
        body: b"{\"errors\":[{\"message\":\"sk_test_secret leaked?\"}]}".to_vec(),
    }
}

fn too_many(retry_after: Option<&str>) -> Answer {
    Answer::Status {
        status: 429,
        retry_after: retry_after.map(str::to_owned),
        body: Vec::new(),
    }
}

fn clerk(action: Action) -> String {
    match action {
        Action::Clerk { path_and_query } => path_and_query,
        other => panic!("expected a Clerk request, got {other:?}"),
    }
}

fn api_get(action: Action) -> String {
    match action {
        Action::ApiGet { path_and_query } => path_and_query,
        other => panic!("expected a main API read, got {other:?}"),
    }
}

fn batch(action: Action) -> BatchRequest {
    match action {
        Action::ApiBatch { body } => serde_json::from_slice(&body).unwrap(),
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn users(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| SimUser::new(&format!("user_{i:04}"), 1_700_000_000_000 + i as i64).json())
        .collect()
}

fn body(v: &[Value]) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn all_applied(b: &BatchRequest) -> Answer {
    let results: Vec<Value> = b
        .commands
        .iter()
        .map(|c| json!({"operation_id": c.operation_id, "outcome": "applied", "error": null}))
        .collect();
    ok(json!({"ok": true, "results": results}).to_string())
}

fn count(n: u64) -> Answer {
    ok(format!(r#"{{"object":"total_count","total_count":{n}}}"#))
}

fn error_code(run: &Run) -> Option<ErrorCode> {
    run.status().last_error.map(|e| e.code)
}

/// An `all` run past its count, at the first page.
fn at_first_page(config: RunConfig) -> Run {
    let mut run = new_run(Scope::All, config);
    assert_eq!(clerk(run.poll(at(0))), "/v1/users/count");
    run.handle(at(10), count(3));
    run
}

#[test]
fn clerk_401_and_403_fail_the_run_as_unauthorized() {
    for status in [401, 403] {
        let mut run = new_run(Scope::All, RunConfig::default());
        clerk(run.poll(at(0)));
        run.handle(at(5), code(status));
        assert_eq!(run.state(), RunState::Failed);
        let err = run.status().last_error.unwrap();
        assert_eq!(err.code, ErrorCode::ClerkUnauthorized);
        assert_eq!(err.message, format!("clerk answered {status}"));
        assert_eq!(run.poll(at(10)), Action::Finished);
        let end = std::iter::from_fn(|| run.poll_log()).last().unwrap();
        assert_eq!((end.event, end.level), ("resync_end", "error"));
        assert_eq!(end.error, Some(ErrorCode::ClerkUnauthorized));
        assert_eq!(
            run.status().finished_at.as_deref(),
            Some("2025-11-28T12:00:00.005Z")
        );
    }
}

#[test]
fn a_bad_clerk_answer_is_retried_with_backoff_then_fails() {
    for bad in [
        &b"<html>oops</html>"[..],
        b"{\"data\":[]}",
        b"",
        b"null",
        b"[1",
    ] {
        let mut run = at_first_page(RunConfig::default());
        let first = clerk(run.poll(at(100)));
        let mut now = 100;
        let mut waits = Vec::new();
        loop {
            run.handle(at(now), ok(bad));
            if !run.is_running() {
                break;
            }
            let Action::WakeAt(t) = run.poll(at(now)) else {
                panic!("a retry waits");
            };
            waits.push(t.as_millis() - T0 - now);
            assert_eq!(
                run.poll(t.plus_millis(-1)),
                Action::WakeAt(t),
                "never sooner"
            );
            now = t.as_millis() - T0;
            assert_eq!(clerk(run.poll(at(now))), first, "the same page again");
        }
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000]);
        assert_eq!(error_code(&run), Some(ErrorCode::ClerkBadResponse));
        assert_eq!(run.counters().clerk_requests, 1 + 8);
    }
}

#[test]
fn clerk_5xx_timeouts_and_resets_then_unavailable() {
    let answers = [
        code(500),
        Answer::TimedOut,
        code(503),
        Answer::Unreachable,
        code(502),
    ];
    let mut run = at_first_page(RunConfig {
        max_attempts: 5,
        ..RunConfig::default()
    });
    let mut now = 100;
    for (i, answer) in answers.into_iter().enumerate() {
        clerk(run.poll(at(now)));
        run.handle(at(now), answer);
        if i < 4 {
            assert!(run.is_running());
            let Action::WakeAt(t) = run.poll(at(now)) else {
                panic!()
            };
            now = t.as_millis() - T0;
        }
    }
    assert_eq!(run.state(), RunState::Failed);
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkUnavailable));
}

#[test]
fn a_success_resets_the_attempts() {
    let mut run = at_first_page(RunConfig {
        max_attempts: 2,
        ..RunConfig::default()
    });
    clerk(run.poll(at(100)));
    run.handle(at(100), code(500));
    clerk(run.poll(at(1_100)));
    run.handle(at(1_100), ok(body(&users(0..3))));
    // The batch may fail once again without failing the run.
    batch(run.poll(at(1_200)));
    run.handle(at(1_200), code(500));
    assert!(run.is_running());
    let b = batch(run.poll(at(2_200)));
    run.handle(at(2_200), all_applied(&b));
    assert!(run.is_running());
    assert_eq!(
        api_get(run.poll(at(2_300))),
        "/internal/users?live=true&limit=500"
    );
}

#[test]
fn a_user_without_an_id_is_rejected_and_the_rest_apply() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    let mut page = users(0..3);
    page[1].as_object_mut().unwrap().remove("id");
    page.push(json!("not a user"));
    run.handle(at(110), ok(body(&page)));
    let b = batch(run.poll(at(120)));
    let ids: Vec<&str> = b.commands.iter().map(|c| c.clerk_id.as_str()).collect();
    assert_eq!(ids, ["user_0000", "user_0002"]);
    run.handle(at(130), all_applied(&b));
    let s = run.status();
    assert_eq!(
        (
            s.counters.rejected,
            s.counters.applied,
            s.counters.clerk_users_seen
        ),
        (2, 2, 4)
    );
    assert_eq!(s.rejected_ids.len(), 2);
    assert!(s
        .rejected_ids
        .iter()
        .all(|r| r.clerk_id.is_none() && r.reason == "missing_id"));
}

#[test]
fn a_500_user_page_with_one_bad_user() {
    let mut run = at_first_page(RunConfig::default());
    assert_eq!(
        clerk(run.poll(at(100))),
        "/v1/users?limit=500&order_by=%2Bcreated_at"
    );
    let mut page = users(0..500);
    page[250]["updated_at"] = json!(i64::MAX);
    run.handle(at(200), ok(body(&page)));
    let b = batch(run.poll(at(300)));
    assert_eq!(b.commands.len(), 499);
    assert!(b.commands.iter().all(|c| c.clerk_id != "user_0250"));
    // Nothing counted before the batch is answered.
    assert_eq!(run.counters().applied, 0);
    run.handle(at(400), all_applied(&b));
    let s = run.status();
    assert_eq!(
        (
            s.counters.applied,
            s.counters.rejected,
            s.counters.upserts_sent
        ),
        (499, 1, 499)
    );
    assert_eq!(s.rejected_ids[0].clerk_id.as_deref(), Some("user_0250"));
    assert_eq!(s.rejected_ids[0].reason, "time_out_of_range");
    // The cursor moved past the page: its last user.
    assert_eq!(
        clerk(run.poll(at(500))),
        "/v1/users?limit=500&order_by=%2Bcreated_at&starting_after=user_0499"
    );
}

#[test]
fn upserts_carry_the_resync_provenance() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    let mut u = SimUser::new("user_x", 1_654_012_591_514);
    u.updated_at = 1_654_012_591_835;
    run.handle(at(123), ok(body(&[u.json()])));
    let b = batch(run.poll(at(200)));
    let c = &b.commands[0];
    assert_eq!(c.command, CommandKind::UpsertUser);
    assert_eq!(c.operation_id, "resync_r1_user_x_1654012591835");
    assert_eq!(c.event_type, "resync");
    assert_eq!(c.occurred_at, "2022-05-31T15:56:31.835Z");
    assert_eq!(c.received_at, "2025-11-28T12:00:00.123Z");
    assert_eq!(
        c.user.as_ref().unwrap().email.as_deref(),
        Some("user_x@example.com")
    );
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn batch_5xx_then_success_sends_the_same_bytes() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..2))));
    let Action::ApiBatch { body: first } = run.poll(at(120)) else {
        panic!()
    };
    run.handle(at(130), code(503));
    assert_eq!(run.poll(at(1_129)), Action::WakeAt(at(1_130)));
    let Action::ApiBatch { body: again } = run.poll(at(1_130)) else {
        panic!()
    };
    assert_eq!(first, again);
    run.handle(at(1_140), Answer::TimedOut);
    let Action::ApiBatch { body: third } = run.poll(at(3_140)) else {
        panic!()
    };
    assert_eq!(first, third);
    let b: BatchRequest = serde_json::from_slice(&third).unwrap();
    run.handle(at(3_200), all_applied(&b));
    assert_eq!(run.counters().applied, 2);
    assert_eq!(
        run.status().last_error.unwrap().code,
        ErrorCode::ApiUnavailable
    );
    assert!(run.is_running());
}

#[test]
fn batch_errors_from_the_main_api() {
    let cases = [
        (code(401), Some(ErrorCode::ApiUnauthorized)),
        (code(403), Some(ErrorCode::ApiUnauthorized)),
        (code(400), Some(ErrorCode::ApiRejectedBatch)),
        (code(413), Some(ErrorCode::ApiRejectedBatch)),
        (code(500), None),
        (code(429), None),
        (code(302), None),
        (ok("{}"), None),
        (ok(r#"{"ok":true,"results":[]}"#), None),
    ];
    for (answer, fatal) in cases {
        let mut run = at_first_page(RunConfig::default());
        clerk(run.poll(at(100)));
        run.handle(at(110), ok(body(&users(0..2))));
        batch(run.poll(at(120)));
        run.handle(at(130), answer.clone());
        match fatal {
            Some(code) => {
                assert_eq!(run.state(), RunState::Failed, "{answer:?}");
                assert_eq!(error_code(&run), Some(code));
            }
            None => {
                assert!(run.is_running(), "{answer:?}");
                assert!(matches!(run.poll(at(130)), Action::WakeAt(_)));
            }
        }
    }
}

#[test]
fn rows_errors_from_the_main_api() {
    for (answer, fatal) in [
        (code(404), Some(ErrorCode::ApiRejectedRequest)),
        (code(401), Some(ErrorCode::ApiUnauthorized)),
        (ok(r#"{"users":"x"}"#), None),
        (ok(r#"{"users":[],"next_after":"same"}"#), None),
    ] {
        let mut run = new_run(Scope::Failed, RunConfig::default());
        assert_eq!(
            api_get(run.poll(at(0))),
            "/internal/users?sync_status=failed&limit=500"
        );
        run.handle(at(10), answer.clone());
        assert_eq!(run.is_running(), fatal.is_none(), "{answer:?}");
        if let Some(code) = fatal {
            assert_eq!(error_code(&run), Some(code));
        }
    }
    // A cursor that does not move is refused (it would page forever).
    let mut run = new_run(Scope::Pending, RunConfig::default());
    api_get(run.poll(at(0)));
    run.handle(at(1), ok(r#"{"users":[],"next_after":"k1"}"#));
    assert_eq!(
        api_get(run.poll(at(2))),
        "/internal/users?sync_status=pending&limit=500&after=k1"
    );
    run.handle(at(3), ok(r#"{"users":[],"next_after":"k1"}"#));
    assert_eq!(error_code(&run), Some(ErrorCode::ApiBadResponse));
    assert!(run.is_running());
}

#[test]
fn retry_after_is_respected_exactly() {
    let mut run = at_first_page(RunConfig::default());
    let page = clerk(run.poll(at(100)));
    run.handle(at(200), too_many(Some("7")));
    assert_eq!(run.poll(at(200)), Action::WakeAt(at(7_200)));
    assert_eq!(run.poll(at(7_199)), Action::WakeAt(at(7_200)));
    assert_eq!(clerk(run.poll(at(7_200))), page);
    // Without a usable Retry-After: one full window.
    let mut now = 7_200;
    for header in [None, Some("soon"), Some("-3"), Some("1.5")] {
        run.handle(at(now + 50), too_many(header));
        assert_eq!(
            run.poll(at(now + 50)),
            Action::WakeAt(at(now + 10_050)),
            "{header:?}"
        );
        now += 10_050;
        assert_eq!(clerk(run.poll(at(now))), page);
    }
    // As an HTTP date.
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(0), too_many(Some("Fri, 28 Nov 2025 12:00:30 GMT")));
    assert_eq!(run.poll(at(0)), Action::WakeAt(at(30_000)));
    // Retry-After 0: at once (the window still applies).
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(150), too_many(Some("0")));
    assert!(matches!(run.poll(at(150)), Action::Clerk { .. }));
}

#[test]
fn retry_after_beyond_the_bound_fails_the_run() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(100), too_many(Some("3600")));
    assert!(run.is_running(), "one hour is still waited");
    assert_eq!(run.poll(at(100)), Action::WakeAt(at(3_600_100)));
    clerk(run.poll(at(3_600_100)));
    run.handle(at(3_600_100), too_many(Some("3601")));
    assert_eq!(run.state(), RunState::Failed);
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkRetryAfterTooLong));
}

#[test]
fn endless_429s_fail_the_run_after_the_bound() {
    let mut run = at_first_page(RunConfig {
        max_rate_limited: 5,
        ..RunConfig::default()
    });
    let mut now = 100;
    for _ in 0..5 {
        clerk(run.poll(at(now)));
        run.handle(at(now), too_many(Some("1")));
        now += 1_000;
    }
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkRateLimited));
    assert_eq!(run.state(), RunState::Failed);
}

#[test]
fn the_window_holds_requests_back() {
    // 2 per 10 s; lookups of one id each, so every id is one request.
    let config = RunConfig {
        rate_limit_per_10s: 2,
        lookup_size: 1,
        ..RunConfig::default()
    };
    let ids: Vec<String> = (0..3).map(|i| format!("user_{i}")).collect();
    let mut run = new_run(Scope::Users { clerk_ids: ids }, config);
    assert_eq!(clerk(run.poll(at(0))), "/v1/users?limit=1&user_id=user_0");
    run.handle(at(10), ok("[]"));
    let b = batch(run.poll(at(20)));
    assert_eq!(b.commands[0].command, CommandKind::DeleteUser);
    assert_eq!(b.commands[0].operation_id, "resync_r1_user_0_deleted");
    run.handle(at(30), all_applied(&b));
    assert_eq!(clerk(run.poll(at(40))), "/v1/users?limit=1&user_id=user_1");
    run.handle(at(50), ok("[]"));
    run.handle(at(50), ok("[]")); // a second answer changes nothing
    let b = batch(run.poll(at(60)));
    run.handle(at(70), all_applied(&b));
    // Two requests at 0 and 40: the third waits until the first leaves,
    // and the pacing margin after it.
    let free = 10_000 + clerk_sync_resync::pacing::MARGIN_MS;
    assert_eq!(run.poll(at(80)), Action::WakeAt(at(free)));
    // Restored from storage, the promise holds.
    let mut run = Run::from_json(&run.to_json()).unwrap();
    assert_eq!(run.poll(at(free - 1)), Action::WakeAt(at(free)));
    assert_eq!(
        clerk(run.poll(at(free))),
        "/v1/users?limit=1&user_id=user_2"
    );
    assert_eq!(run.counters().clerk_requests, 3);
}

#[test]
fn cancel_stops_the_run_and_ignores_late_answers() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    assert!(run.cancel(at(150)));
    run.handle(at(200), ok(body(&users(0..3))));
    assert_eq!(run.poll(at(300)), Action::Finished);
    let s = run.status();
    assert_eq!(s.state, RunState::Cancelled);
    assert_eq!(s.counters.clerk_users_seen, 0);
    assert_eq!(s.finished_at.as_deref(), Some("2025-11-28T12:00:00.150Z"));
    assert!(!run.cancel(at(400)), "already stopped");
    let logs: Vec<_> = std::iter::from_fn(|| run.poll_log()).collect();
    assert_eq!(logs.last().unwrap().level, "warn");
    assert_eq!(logs.last().unwrap().state, RunState::Cancelled);
}

#[test]
fn a_refused_cursor_falls_back_to_an_earlier_user() {
    let config = RunConfig {
        page_size: 3,
        ..RunConfig::default()
    };
    let mut run = at_first_page(config);
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let b = batch(run.poll(at(120)));
    run.handle(at(130), all_applied(&b));
    let p =
        |after: &str| format!("/v1/users?limit=3&order_by=%2Bcreated_at&starting_after={after}");
    assert_eq!(clerk(run.poll(at(140))), p("user_0002"));
    run.handle(at(150), code(422));
    assert_eq!(clerk(run.poll(at(160))), p("user_0001"));
    run.handle(at(170), code(404));
    assert_eq!(clerk(run.poll(at(180))), p("user_0000"));
    run.handle(at(190), code(422));
    assert_eq!(run.state(), RunState::Failed);
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkRejectedRequest));
}

#[test]
fn a_restore_mid_page_asks_for_the_same_page_and_sends_the_same_operations() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let first = batch(run.poll(at(120)));
    // The process dies before the batch's answer.
    let mut run = Run::from_json(&run.to_json()).unwrap();
    assert_eq!(
        clerk(run.poll(at(5_000))),
        "/v1/users?limit=500&order_by=%2Bcreated_at"
    );
    run.handle(at(5_010), ok(body(&users(0..3))));
    let again = batch(run.poll(at(5_020)));
    let ops = |b: &BatchRequest| {
        b.commands
            .iter()
            .map(|c| c.operation_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ops(&first), ops(&again));
    // Another run sends other operation ids for the same versions.
    let mut other = Run::new(
        RunId::new("r2").unwrap(),
        Scope::All,
        RunConfig::default(),
        at(0),
    );
    clerk(other.poll(at(0)));
    other.handle(at(0), count(3));
    clerk(other.poll(at(0)));
    other.handle(at(0), ok(body(&users(0..3))));
    let theirs = batch(other.poll(at(0)));
    assert!(ops(&theirs).iter().all(|op| !ops(&first).contains(op)));
}

#[test]
fn a_full_page_without_usable_ids_cannot_be_paged_past() {
    let config = RunConfig {
        page_size: 2,
        max_attempts: 1,
        ..RunConfig::default()
    };
    let mut run = at_first_page(config);
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(r#"[{"object":"user"},{"id":5}]"#));
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkBadResponse));
}

#[test]
fn the_sweep_deletes_only_what_a_lookup_shows_missing() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok("[]"));
    assert_eq!(
        api_get(run.poll(at(120))),
        "/internal/users?live=true&limit=500"
    );
    let rows = json!({"users": [
        {"clerk_id": "user_a", "external_id": "ext-a", "deleted": false},
        {"clerk_id": "user_b", "deleted": false},
        {"clerk_id": "user_c", "deleted": true},
        {"clerk_id": "-user_d", "deleted": false},
        {"clerk_id": null},
        {"clerk_id": "user_e"}
    ], "next_after": null});
    run.handle(at(130), ok(rows.to_string()));
    assert_eq!(
        clerk(run.poll(at(140))),
        "/v1/users?limit=3&user_id=user_a&user_id=user_b&user_id=user_e"
    );
    // Clerk has user_b (unmappable, but it exists) and an id not asked for.
    let mut b = SimUser::new("user_b", 1).json();
    b["updated_at"] = json!("yesterday");
    let stray = SimUser::new("user_z", 1).json();
    run.handle(at(150), ok(body(&[b, stray])));
    let deletes = batch(run.poll(at(160)));
    let got: Vec<(&str, Option<&str>)> = deletes
        .commands
        .iter()
        .map(|c| (c.clerk_id.as_str(), c.external_id.as_deref()))
        .collect();
    assert_eq!(got, [("user_a", Some("ext-a")), ("user_e", None)]);
    assert!(deletes
        .commands
        .iter()
        .all(|c| c.user.is_none() && c.validate().is_ok()));
    run.handle(at(170), all_applied(&deletes));
    let s = run.status();
    assert_eq!(s.state, RunState::Completed);
    assert_eq!(s.phase, "done");
    assert_eq!(s.counters.deletes_sent, 2);
    // The id the run could not look up unambiguously is reported, not deleted.
    assert_eq!(s.counters.rejected, 1);
    assert_eq!(s.rejected_ids[0].reason, "unusable_id");
}

#[test]
fn pending_rows_are_looked_up_by_their_best_key() {
    let mut run = new_run(Scope::Pending, RunConfig::default());
    api_get(run.poll(at(0)));
    let rows = json!({"users": [
        {"clerk_id": "user_1", "email": "one@x.io", "external_id": "e1"},
        {"clerk_id": null, "email": "two@x.io", "external_id": "e2"},
        {"clerk_id": null, "email": "Three@X.io", "external_id": null},
        {"clerk_id": null, "email": "", "external_id": ""},
        {"clerk_id": null, "email": "four@x.io"}
    ], "next_after": null});
    run.handle(at(1), ok(rows.to_string()));
    assert_eq!(clerk(run.poll(at(2))), "/v1/users?limit=1&user_id=user_1");
    let mut one = SimUser::new("user_1", 1);
    one.email = "one@x.io".into();
    run.handle(at(3), ok(body(&[one.json()])));
    assert_eq!(clerk(run.poll(at(4))), "/v1/users?limit=1&external_id=e2");
    let mut two = SimUser::new("user_2", 2);
    two.external_id = Some("e2".into());
    run.handle(at(5), ok(body(&[two.json()])));
    assert_eq!(
        clerk(run.poll(at(6))),
        "/v1/users?limit=2&email_address=Three%40X.io&email_address=four%40x.io"
    );
    let mut three = SimUser::new("user_3", 3);
    three.email = "three@x.io".into();
    run.handle(at(7), ok(body(&[three.json()])));
    let b = batch(run.poll(at(8)));
    let ids: Vec<&str> = b.commands.iter().map(|c| c.clerk_id.as_str()).collect();
    assert_eq!(ids, ["user_1", "user_2", "user_3"]);
    run.handle(at(9), all_applied(&b));
    let s = run.status();
    assert_eq!(s.state, RunState::Completed);
    assert_eq!(
        (s.counters.pending_unmatched, s.counters.clerk_users_total),
        (2, Some(5))
    );
}

#[test]
fn rejected_commands_are_counted_with_the_api_code() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..2))));
    let b = batch(run.poll(at(120)));
    let results = json!({"ok": true, "results": [
        {"operation_id": b.commands[0].operation_id, "outcome": "rejected", "error": "invalid_command"},
        {"operation_id": b.commands[1].operation_id, "outcome": "stale", "error": null}
    ]});
    run.handle(at(130), ok(results.to_string()));
    let s = run.status();
    assert_eq!((s.counters.rejected, s.counters.stale), (1, 1));
    assert_eq!(s.rejected_ids[0].reason, "invalid_command");
    assert_eq!(s.rejected_ids[0].clerk_id.as_deref(), Some("user_0000"));
}

#[test]
fn the_status_view_has_every_field_and_no_secret() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), code(401));
    let v: Value = serde_json::to_value(run.status()).unwrap();
    for key in [
        "run_id",
        "scope",
        "state",
        "phase",
        "started_at",
        "finished_at",
        "last_error",
        "clerk_users_total",
        "clerk_requests",
        "clerk_users_seen",
        "upserts_sent",
        "deletes_sent",
        "applied",
        "stale",
        "duplicates",
        "rejected",
        "pending_unmatched",
        "ignored_deleted",
        "failed_unmatched",
        "rejected_ids",
        "pages",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["state"], "failed");
    assert_eq!(v["last_error"]["code"], "clerk_unauthorized");
    assert_eq!(v["started_at"], "2025-11-28T12:00:00.000Z");
    assert_eq!(v["clerk_users_total"], 3);
    assert!(!v.to_string().contains("sk_test"));
}

#[test]
fn a_clock_out_of_range_fails_instead_of_sending_bad_times() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(UnixMillis(i64::MAX), ok(body(&users(0..1))));
    assert_eq!(error_code(&run), Some(ErrorCode::ClockOutOfRange));
}

#[test]
fn state_layout_is_versioned_and_readable() {
    let run = at_first_page(RunConfig::default());
    let v: Value = serde_json::from_slice(&run.to_json()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["phase"], json!({"name": "upsert", "after": []}));
    assert_eq!(v["scope"], json!({"scope": "all"}));
    let mut other = v.clone();
    other["version"] = json!(2);
    assert!(Run::from_json(other.to_string().as_bytes()).is_err());
    assert!(Run::from_json(b"{}").is_err());
}

#[test]
fn a_lookup_answer_with_a_nameless_user_deletes_nothing() {
    let mut run = new_run(
        Scope::Users {
            clerk_ids: vec!["user_a".into(), "user_b".into()],
        },
        RunConfig {
            max_attempts: 2,
            ..RunConfig::default()
        },
    );
    let path = clerk(run.poll(at(0)));
    let mut nameless = SimUser::new("user_a", 1).json();
    nameless.as_object_mut().unwrap().remove("id");
    run.handle(at(10), ok(body(&[nameless.clone()])));
    assert!(run.is_running());
    assert_eq!(
        clerk(run.poll(at(1_010))),
        path,
        "the same lookup again, no batch"
    );
    run.handle(at(1_020), ok(body(&[nameless])));
    assert_eq!(error_code(&run), Some(ErrorCode::ClerkBadResponse));
    assert_eq!(run.counters().deletes_sent, 0);
}

#[test]
fn a_retry_after_beside_a_5xx_lengthens_the_backoff() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(
        at(100),
        Answer::Status {
            status: 503,
            retry_after: Some("30".into()),
            body: Vec::new(),
        },
    );
    assert_eq!(run.poll(at(100)), Action::WakeAt(at(30_100)));
    // Even a huge one only waits the bound, and does not fail the run.
    clerk(run.poll(at(30_100)));
    run.handle(
        at(30_100),
        Answer::Status {
            status: 503,
            retry_after: Some("999999".into()),
            body: Vec::new(),
        },
    );
    assert!(run.is_running());
    assert_eq!(run.poll(at(30_100)), Action::WakeAt(at(3_630_100)));
}

#[test]
fn a_refused_email_lookup_leaves_its_rows_unmatched() {
    let mut run = new_run(Scope::Pending, RunConfig::default());
    api_get(run.poll(at(0)));
    let rows = json!({"users": [
        {"clerk_id": null, "email": "not an email"},
        {"clerk_id": null, "external_id": "e1"}
    ], "next_after": null});
    run.handle(at(1), ok(rows.to_string()));
    assert_eq!(clerk(run.poll(at(2))), "/v1/users?limit=1&external_id=e1");
    let mut one = SimUser::new("user_1", 1);
    one.external_id = Some("e1".into());
    run.handle(at(3), ok(body(&[one.json()])));
    assert_eq!(
        clerk(run.poll(at(4))),
        "/v1/users?limit=1&email_address=not%20an%20email"
    );
    run.handle(at(5), code(422));
    assert!(run.is_running());
    let b = batch(run.poll(at(6)));
    assert_eq!(b.commands.len(), 1);
    run.handle(at(7), all_applied(&b));
    let s = run.status();
    assert_eq!(s.state, RunState::Completed);
    assert_eq!(s.counters.pending_unmatched, 1);
    assert_eq!(s.last_error.unwrap().code, ErrorCode::ClerkRejectedRequest);
}

#[test]
fn a_delete_is_the_same_command_whenever_it_is_sent() {
    let ids = vec!["user_gone".to_owned()];
    let mut run = new_run(Scope::Users { clerk_ids: ids }, RunConfig::default());
    clerk(run.poll(at(5_000)));
    run.handle(at(5_010), ok("[]"));
    let first = batch(run.poll(at(5_020)));
    let mut run = Run::from_json(&run.to_json()).unwrap();
    clerk(run.poll(at(9_000)));
    run.handle(at(9_010), ok("[]"));
    let again = batch(run.poll(at(9_020)));
    let (a, b) = (&first.commands[0], &again.commands[0]);
    assert_eq!(a.operation_id, "resync_r1_user_gone_deleted");
    assert_eq!(a.operation_id, b.operation_id);
    assert_eq!(a.occurred_at, "2025-11-28T12:00:00.000Z", "the run's start");
    assert_eq!(a.occurred_at, b.occurred_at);
    assert_ne!(a.received_at, b.received_at);
}

#[test]
fn debug_output_of_a_run_mid_page_holds_no_email() {
    let mut run = at_first_page(RunConfig::default());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let b = batch(run.poll(at(120)));
    assert!(b.commands[0].user.as_ref().unwrap().email.is_some());
    let text = format!("{run:?}");
    assert!(!text.contains('@'), "{text}");
    assert!(!text.contains("First "));
}

/// The next page, read beside a batch: taken in its turn, counted only
/// once its own batch is answered.
#[test]
fn the_next_page_is_read_beside_the_batch_and_counted_in_its_turn() {
    let config = RunConfig {
        page_size: 3,
        ..RunConfig::default()
    };
    let p =
        |after: &str| format!("/v1/users?limit=3&order_by=%2Bcreated_at&starting_after={after}");
    let mut run = at_first_page(config);
    assert_eq!(run.poll_prefetch(at(90)), None, "nothing in flight");
    clerk(run.poll(at(100)));
    assert_eq!(
        run.poll_prefetch(at(100)),
        None,
        "a page, not a batch, in flight"
    );
    run.handle(at(110), ok(body(&users(0..3))));
    let first = batch(run.poll(at(120)));
    assert_eq!(clerk(run.poll_prefetch(at(120)).unwrap()), p("user_0002"));
    assert_eq!(run.poll_prefetch(at(120)), None, "one at a time");
    run.handle_prefetch(at(130), ok(body(&users(3..6))));
    // Read, not counted: the first page is not done until its batch is.
    assert_eq!(run.counters().clerk_users_seen, 0);
    assert_eq!(run.counters().clerk_requests, 3);
    run.handle(at(140), all_applied(&first));
    assert_eq!(run.counters().clerk_users_seen, 3);
    // The second page's batch, with no request for its page.
    let second = batch(run.poll(at(150)));
    let ids: Vec<&str> = second
        .commands
        .iter()
        .map(|c| c.clerk_id.as_str())
        .collect();
    assert_eq!(ids, ["user_0003", "user_0004", "user_0005"]);
    assert_eq!(run.counters().clerk_requests, 3);
    // The last page read ahead is short: no page after it to read.
    assert_eq!(clerk(run.poll_prefetch(at(150)).unwrap()), p("user_0005"));
    run.handle_prefetch(at(160), ok(body(&users(6..7))));
    run.handle(at(170), all_applied(&second));
    let third = batch(run.poll(at(180)));
    assert_eq!(third.commands.len(), 1);
    assert_eq!(run.poll_prefetch(at(180)), None, "the sweep comes next");
    run.handle(at(190), all_applied(&third));
    assert_eq!(
        api_get(run.poll(at(200))),
        "/internal/users?live=true&limit=3"
    );
    let c = run.counters();
    assert_eq!(
        (c.clerk_users_seen, c.upserts_sent, c.clerk_requests),
        (7, 7, 4)
    );
}

/// A page read ahead is lost with a restart (asked for again), or with a
/// batch that fails (kept for its turn, never read twice); a 429 beside a
/// batch holds the run back as any 429 does.
#[test]
fn a_page_read_ahead_survives_nothing_it_should_not() {
    let config = RunConfig {
        page_size: 3,
        ..RunConfig::default()
    };
    let p =
        |after: &str| format!("/v1/users?limit=3&order_by=%2Bcreated_at&starting_after={after}");
    let mut run = at_first_page(config.clone());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let first = batch(run.poll(at(120)));
    run.poll_prefetch(at(120)).unwrap();
    run.handle_prefetch(at(130), ok(body(&users(3..6))));
    // The batch fails: retried, and the page read ahead is not read again.
    run.handle(at(140), code(503));
    let again = batch(run.poll(at(1_140)));
    assert_eq!(again, first);
    assert_eq!(run.poll_prefetch(at(1_140)), None, "already read");
    run.handle(at(1_150), all_applied(&again));
    batch(run.poll(at(1_160)));
    assert_eq!(run.counters().clerk_requests, 3);
    // Restored before the second batch's answer: that page is asked again.
    let mut run = Run::from_json(&run.to_json()).unwrap();
    assert_eq!(clerk(run.poll(at(2_000))), p("user_0002"));
    assert_eq!(run.counters().clerk_users_seen, 3);

    // A 429 for the page read ahead: no request before its Retry-After.
    let mut run = at_first_page(config.clone());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let first = batch(run.poll(at(120)));
    run.poll_prefetch(at(120)).unwrap();
    run.handle_prefetch(at(130), too_many(Some("7")));
    run.handle(at(140), all_applied(&first));
    assert_eq!(run.poll(at(150)), Action::WakeAt(at(7_130)));
    assert_eq!(clerk(run.poll(at(7_130))), p("user_0002"));

    // Another failure beside the batch is forgotten: the page in its turn.
    let mut run = at_first_page(config.clone());
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    let first = batch(run.poll(at(120)));
    run.poll_prefetch(at(120)).unwrap();
    run.handle_prefetch(at(130), code(500));
    run.handle(at(140), all_applied(&first));
    assert_eq!(clerk(run.poll(at(150))), p("user_0002"));
    assert!(run.is_running());

    // A full rate window leaves the next page for its turn.
    let mut run = at_first_page(RunConfig {
        rate_limit_per_10s: 2,
        ..config
    });
    clerk(run.poll(at(100)));
    run.handle(at(110), ok(body(&users(0..3))));
    batch(run.poll(at(120)));
    assert_eq!(run.poll_prefetch(at(120)), None);
}

/// A run whose sweep asked for its first rows page at 40 (no Clerk users),
/// lookups of one id each.
fn at_sweep_rows(rate_limit_per_10s: u32) -> Run {
    let mut run = new_run(
        Scope::All,
        RunConfig {
            lookup_size: 1,
            rate_limit_per_10s,
            ..RunConfig::default()
        },
    );
    clerk(run.poll(at(0)));
    run.handle(at(10), count(0));
    clerk(run.poll(at(20)));
    run.handle(at(30), ok("[]"));
    api_get(run.poll(at(40)));
    run
}

/// A sweep at the rows page, lookups of one id each: `user_0` to `user_3`.
fn at_sweep_lookups(rate_limit_per_10s: u32) -> Run {
    let mut run = at_sweep_rows(rate_limit_per_10s);
    let rows: Vec<Value> = (0..4)
        .map(|i| json!({"clerk_id": format!("user_{i}"), "deleted": false}))
        .collect();
    run.handle(
        at(50),
        ok(json!({"users": rows, "next_after": null}).to_string()),
    );
    run
}

fn lookup(i: usize) -> String {
    format!("/v1/users?limit=1&user_id=user_{i}")
}

fn exists(i: usize) -> Answer {
    ok(body(&[SimUser::new(&format!("user_{i}"), 1).json()]))
}

/// The sweep's lookups of a page run together: their answers, in any
/// order, delete exactly what they show missing, each request counted once.
#[test]
fn a_sweep_page_looks_up_its_ids_together() {
    let mut run = at_sweep_lookups(1000);
    assert!(run.poll_lookups_beside(at(55)).is_empty(), "none in flight");
    assert_eq!(clerk(run.poll(at(60))), lookup(0));
    let beside: Vec<String> = run
        .poll_lookups_beside(at(60))
        .into_iter()
        .map(clerk)
        .collect();
    assert_eq!(beside, [lookup(1), lookup(2), lookup(3)]);
    assert!(
        run.poll_lookups_beside(at(60)).is_empty(),
        "each asked once"
    );
    assert_eq!(run.counters().clerk_requests, 2 + 4);
    // Out of order; user_2 is missing.
    run.handle_lookup_beside(at(70), &lookup(3), exists(3));
    run.handle_lookup_beside(at(71), &lookup(2), ok("[]"));
    run.handle_lookup_beside(at(72), &lookup(1), exists(1));
    run.handle(at(80), exists(0));
    let deletes = batch(run.poll(at(90)));
    let ids: Vec<&str> = deletes
        .commands
        .iter()
        .map(|c| c.clerk_id.as_str())
        .collect();
    assert_eq!(ids, ["user_2"]);
    assert_eq!(run.counters().clerk_requests, 6);
    run.handle(at(100), all_applied(&deletes));
    assert_eq!(run.state(), RunState::Completed);
    assert_eq!(run.counters().deletes_sent, 1);
}

/// A lookup beside that fails is asked for again in its turn (a 429 holds
/// the run back as any 429); an answer after a restart or for a lookup not
/// asked changes nothing; the rate window bounds how many go together.
#[test]
fn a_lookup_beside_that_fails_is_asked_again_in_its_turn() {
    let mut run = at_sweep_lookups(1000);
    clerk(run.poll(at(60)));
    assert_eq!(run.poll_lookups_beside(at(60)).len(), 3);
    run.handle_lookup_beside(at(70), &lookup(1), code(500));
    run.handle_lookup_beside(at(71), &lookup(2), too_many(Some("7")));
    run.handle_lookup_beside(at(72), &lookup(3), exists(3));
    run.handle_lookup_beside(at(73), &lookup(3), ok("[]"));
    run.handle_lookup_beside(at(74), &lookup(0), ok("[]"));
    run.handle(at(80), exists(0));
    assert!(run.is_running());
    assert_eq!(run.poll(at(90)), Action::WakeAt(at(7_071)));
    assert_eq!(clerk(run.poll(at(7_071))), lookup(1));
    assert_eq!(
        run.poll_lookups_beside(at(7_071))
            .into_iter()
            .map(clerk)
            .collect::<Vec<_>>(),
        [lookup(2)]
    );
    // A restart forgets the lookups beside: a late answer is ignored.
    let mut restored = Run::from_json(&run.to_json()).unwrap();
    restored.handle_lookup_beside(at(7_080), &lookup(2), ok("[]"));
    assert_eq!(
        api_get(restored.poll(at(7_085))),
        "/internal/users?live=true&limit=5"
    );
    run.handle_lookup_beside(at(7_080), &lookup(2), exists(2));
    run.handle(at(7_090), exists(1));
    // All four exist: nothing to delete, the run is done.
    assert_eq!(run.poll(at(7_100)), Action::Finished);
    assert_eq!(run.counters().deletes_sent, 0);

    // Four requests a window: the count, the first page and the lookup in
    // flight leave room for one beside it.
    let mut run = at_sweep_lookups(4);
    clerk(run.poll(at(60)));
    assert_eq!(run.poll_lookups_beside(at(60)).len(), 1);
    assert!(run.poll_lookups_beside(at(60)).is_empty());
}

/// The sweep's next rows page is read beside a page's lookups and taken in
/// its turn, not read again; one whose read failed is read again in its
/// turn, where its errors count.
#[test]
fn the_sweeps_next_rows_page_is_read_beside_its_lookups() {
    let page = |ids: std::ops::Range<usize>, next: Option<&str>| {
        let rows: Vec<Value> = ids
            .map(|i| json!({"clerk_id": format!("user_{i}"), "deleted": false}))
            .collect();
        ok(json!({"users": rows, "next_after": next}).to_string())
    };
    for fails in [false, true] {
        let mut run = at_sweep_rows(RunConfig::default().rate_limit_per_10s);
        run.handle(at(50), page(0..5, Some("user_4")));
        assert_eq!(run.poll_rows_beside(at(55)), None, "no lookup in flight");
        assert_eq!(clerk(run.poll(at(60))), lookup(0));
        let next = api_get(run.poll_rows_beside(at(60)).expect("the next rows page"));
        assert!(next.contains("after=user_4"), "{next}");
        assert_eq!(run.poll_rows_beside(at(60)), None, "asked once");
        let beside = run.poll_lookups_beside(at(60));
        assert_eq!(beside.len(), 4);
        run.handle_rows_beside(if fails { code(500) } else { page(5..7, None) });
        for i in 1..5 {
            run.handle_lookup_beside(at(70), &lookup(i), exists(i));
        }
        run.handle(at(80), exists(0));
        // All five exist: the page is done, nothing deleted.
        let after = run.poll(at(90));
        if fails {
            assert_eq!(api_get(after), next, "read again in its turn");
            run.handle(at(100), page(5..7, None));
            assert_eq!(clerk(run.poll(at(110))), lookup(5));
        } else {
            assert_eq!(clerk(after), lookup(5), "taken from the page read ahead");
        }
        assert_eq!(run.counters().deletes_sent, 0);
        assert!(run.is_running());
    }
}
