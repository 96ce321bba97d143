//! Every statement a command, a failure, a signup or a user read runs finds
//! its rows through an index: no table is scanned, however large it grows.
//! (`GET /internal/sync/status` counts the whole table, by design.)

use clerk_sync_main_api::error::DbFailure;
use clerk_sync_main_api::plan::{self, Batch, Value};
use clerk_sync_main_api::request::{parse_command, parse_new_user};

use crate::sqlite::*;

fn batches() -> Vec<Batch> {
    let user =
        Event::created("msg_a", "user_a", START_MS, Some("a@x.com")).external_id(Some("app_1"));
    let upsert = parse_command(&user.command().to_json()).unwrap();
    let delete = parse_command(&user.deleted("msg_d", START_MS, true).to_json()).unwrap();
    let signup = parse_new_user(br#"{"id":"app_1","email":"a@x.com","link_by":"email"}"#).unwrap();
    let mut out = vec![
        plan::apply(&upsert, "t"),
        plan::apply(&delete, "t"),
        plan::create_pending(&signup, "t"),
        plan::user("user_a"),
    ];
    for failure in [DbFailure::Other, DbFailure::DuplicateOperation] {
        out.push(plan::after_failure(&upsert, "t", &failure).1);
        out.push(plan::after_failure(&delete, "t", &failure).1);
    }
    out
}

#[test]
fn no_statement_scans_a_table() {
    let api = Api::new();
    for s in batches().iter().flat_map(|b| &b.statements) {
        let explain: &'static str =
            Box::leak(format!("EXPLAIN QUERY PLAN {}", s.sql).into_boxed_str());
        let params: Vec<&str> = s
            .params
            .iter()
            .map(|p| match p {
                Value::Null => "",
                Value::Text(t) => t.as_str(),
            })
            .collect();
        let plan: Vec<String> = api
            .db
            .query(explain, &params)
            .iter()
            .map(|r| r["detail"].as_str().unwrap().to_owned())
            .collect();
        let scans: Vec<&String> = plan
            .iter()
            .filter(|d| d.starts_with("SCAN ") && d.as_str() != "SCAN CONSTANT ROW")
            .collect();
        assert!(scans.is_empty(), "{}\n{plan:#?}", s.sql);
    }
}
