//! Every statement a command, a batch, a failure, a signup, a user read, a
//! page of rows or a row by its email runs finds its rows through an index:
//! no table is scanned, however large it grows. (`GET /internal/sync/status` counts
//! the whole table, by design.)

use std::collections::HashSet;

use clerk_sync_main_api::error::DbFailure;
use clerk_sync_main_api::plan::{self, Batch, Value};
use clerk_sync_main_api::request::{parse_command, parse_new_user, Cursor, RowsQuery, SyncStatus};

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
    let batch = [upsert.clone(), delete, upsert];
    let applied = HashSet::from(["msg_d".to_owned()]);
    let all = plan::apply_all(&batch, &applied, "t");
    out.push(plan::after_all_failed(&batch, &all.steps, "t").batch);
    out.push(all.batch);
    out.push(plan::applied_among(&batch));
    for live in [None, Some(true), Some(false)] {
        for sync_status in [None, Some(SyncStatus::Pending)] {
            for after in [
                None,
                Some(Cursor::Linked("user_a".into())),
                Some(Cursor::Unlinked("app_1".into())),
            ] {
                out.push(plan::rows(&RowsQuery {
                    live,
                    sync_status,
                    after,
                    limit: 100,
                    email: None,
                }));
            }
        }
    }
    // A search by email: the live row's unique index, case ignored.
    for sync_status in [None, Some(SyncStatus::Failed)] {
        out.push(plan::rows(&RowsQuery {
            live: None,
            sync_status,
            after: None,
            limit: 100,
            email: Some("A@X.com".into()),
        }));
    }
    out
}

fn query_plan(api: &Api, s: &plan::Statement) -> Vec<String> {
    let explain: &'static str = Box::leak(format!("EXPLAIN QUERY PLAN {}", s.sql).into_boxed_str());
    let params: Vec<&str> = s
        .params
        .iter()
        .map(|p| match p {
            Value::Null => "",
            Value::Text(t) => t.as_str(),
        })
        .collect();
    api.db
        .query(explain, &params)
        .iter()
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_page_of_rows_reads_an_index_in_order() {
    // Never every row of the filter, sorted: a page costs its own rows.
    let api = Api::new();
    for b in batches() {
        for s in b
            .statements
            .iter()
            .filter(|s| s.sql.contains("ORDER BY u."))
        {
            let plan = query_plan(&api, s);
            assert!(
                plan.iter().all(|d| !d.contains("TEMP B-TREE")),
                "{}\n{plan:#?}",
                s.sql
            );
        }
    }
}

#[test]
fn no_statement_scans_a_table() {
    let api = Api::new();
    for s in batches().iter().flat_map(|b| &b.statements) {
        let plan = query_plan(&api, s);
        let scans: Vec<&String> = plan
            .iter()
            .filter(|d| {
                d.starts_with("SCAN ")
                    && d.as_str() != "SCAN CONSTANT ROW"
                    // The commands or ids a batch names (one JSON
                    // parameter; `j` is always its alias in plan.rs).
                    && !d.starts_with("SCAN json_each VIRTUAL TABLE")
                    && !d.starts_with("SCAN j VIRTUAL TABLE")
            })
            .collect();
        assert!(scans.is_empty(), "{}\n{plan:#?}", s.sql);
    }
}
