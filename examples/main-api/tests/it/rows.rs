//! `GET /internal/users`: pages walk every row of a filter exactly once, in
//! the order (`clerk_id IS NULL`, `clerk_id`, `id`), the signups with no
//! Clerk id included; rows inserted between pages never make the cursor
//! skip or repeat a row that was there before; what the API answers is
//! what the re-sync run reads.

use std::collections::HashSet;

use clerk_sync_main_api::request::MAX_CURSOR_LEN;
use clerk_sync_resync::main_api::{parse_rows, rows_path, RowFilter};
use serde_json::{json, Value as Json};

use crate::sqlite::*;

const T1: i64 = START_MS - 3_000;

/// A row as the tests compare them: its own id and its Clerk id.
type Key = (String, Option<String>);

/// A table with every kind of row: synced users, deleted ones, a user
/// known only from its delete (a tombstone, no row), a failed placeholder,
/// a Clerk user holding back a signup's address, signups of both rules
/// waiting, and one linked.
fn varied(api: &Api, users: usize) {
    for (id, email, link_by) in [
        ("app_e1", "e1@x.com", "external_id"),
        ("app_m1", "m1@x.com", "email"),
        ("app_e2", "e2@x.com", "external_id"),
        ("app_m2", "m2@x.com", "email"),
        ("app_conflict", "taken@x.com", "external_id"),
    ] {
        signup(api, id, email, link_by);
    }
    for n in 0..users {
        let clerk_id = format!("user_{n:03}");
        api.expect(
            &upsert(
                &format!("m_{n}"),
                &clerk_id,
                record(Some(&format!("u{n}@x.com")), T1),
            ),
            200,
        );
        if n % 5 == 2 {
            api.expect(&delete(&format!("d_{n}"), &clerk_id, None), 200);
        }
    }
    api.expect(&delete("d_ghost", "user_ghost", None), 200);
    api.db.faults.borrow_mut().push_back(Fault::Before);
    api.expect(
        &upsert("m_f", "user_failed", record(Some("f@x.com"), T1)),
        500,
    );
    let mut linked = record(Some("other@x.com"), T1);
    linked.external_id = Some("app_e2".into());
    api.expect(&upsert("m_l", "user_linked", linked), 200);
    api.expect(
        &upsert("m_t", "user_taker", record(Some("taken@x.com"), T1)),
        200,
    );
}

/// Every row, with the columns the filters test.
fn all_rows(api: &Api) -> Vec<(Key, String, bool)> {
    api.db
        .query(
            "SELECT id, clerk_id, sync_status, deleted_at IS NOT NULL AS deleted FROM users",
            &[],
        )
        .into_iter()
        .map(|r| {
            (
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["clerk_id"].as_str().map(str::to_owned),
                ),
                r["sync_status"].as_str().unwrap().to_owned(),
                r["deleted"] == 1,
            )
        })
        .collect()
}

/// The rows a filter lists, in the page order, computed apart from the API.
fn expected(api: &Api, live: Option<bool>, status: Option<&str>) -> Vec<Key> {
    let mut rows: Vec<Key> = all_rows(api)
        .into_iter()
        .filter(|(key, s, deleted)| {
            let is_live = key.1.is_some() && !deleted;
            live.is_none_or(|l| l == is_live) && status.is_none_or(|st| st == s)
        })
        .map(|(key, _, _)| key)
        .collect();
    rows.sort_by(|a, b| (a.1.is_none(), &a.1, &a.0).cmp(&(b.1.is_none(), &b.1, &b.0)));
    rows
}

/// Percent-encodes a query value as a client would.
fn encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The query string of a page: the filter, the limit, the cursor.
fn query(filter: &str, limit: usize, after: Option<&str>) -> String {
    let mut q = format!("{filter}&limit={limit}");
    if let Some(after) = after {
        q.push_str(&format!("&after={}", encoded(after)));
    }
    q
}

/// Reads every page of `filter`, checking each with the re-sync run's
/// reader; `between` runs after each page. The rows in the order read.
fn walk(api: &Api, filter: &str, limit: usize, mut between: impl FnMut(&Api, usize)) -> Vec<Key> {
    let mut after: Option<String> = None;
    let mut seen = Vec::new();
    for page in 0.. {
        assert!(page < 1_000, "{filter}: the pages never end");
        let (status, body) = api.rows_raw(Some(&query(filter, limit, after.as_deref())));
        assert_eq!(status, 200, "{filter}: {body}");
        let read = parse_rows(body.as_bytes(), limit, after.as_deref())
            .unwrap_or_else(|e| panic!("{filter}: {e:?}: {body}"));
        let json: Json = serde_json::from_str(&body).unwrap();
        let users = json["users"].as_array().unwrap();
        assert_eq!(users.len(), read.users.len());
        for u in users {
            seen.push((
                u["id"].as_str().unwrap().to_owned(),
                u["clerk_id"].as_str().map(str::to_owned),
            ));
        }
        match read.next_after {
            Some(next) => {
                assert_eq!(
                    users.len(),
                    limit,
                    "{filter}: a page before the last is full"
                );
                assert!(next.len() <= MAX_CURSOR_LEN);
                after = Some(next);
            }
            None => break,
        }
        between(api, page);
    }
    seen
}

const FILTERS: [(&str, Option<bool>, Option<&str>); 12] = [
    ("", None, None),
    ("live=true", Some(true), None),
    ("live=false", Some(false), None),
    ("sync_status=synced", None, Some("synced")),
    ("sync_status=pending", None, Some("pending")),
    ("sync_status=failed", None, Some("failed")),
    ("live=true&sync_status=synced", Some(true), Some("synced")),
    ("live=true&sync_status=failed", Some(true), Some("failed")),
    ("live=false&sync_status=synced", Some(false), Some("synced")),
    (
        "live=false&sync_status=pending",
        Some(false),
        Some("pending"),
    ),
    ("live=false&sync_status=failed", Some(false), Some("failed")),
    ("sync_status=pending&live=true", Some(true), Some("pending")),
];

#[test]
fn pages_walk_every_row_of_each_filter_exactly_once() {
    let api = Api::new();
    varied(&api, 23);
    let kinds = all_rows(&api);
    assert!(kinds
        .iter()
        .any(|(k, s, _)| k.1.is_none() && s == "pending"));
    assert!(kinds.iter().any(|(k, s, _)| k.1.is_none() && s == "failed"));
    assert!(kinds.iter().any(|(k, s, _)| k.1.is_some() && s == "failed"));
    assert!(kinds.iter().any(|(_, _, deleted)| *deleted));
    for (filter, live, status) in FILTERS {
        let want = expected(&api, live, status);
        for limit in [1, 2, 3, 7, 100, 500] {
            let got = walk(&api, filter, limit, |_, _| {});
            assert_eq!(got, want, "{filter} limit {limit}");
        }
    }
    // The re-sync run's own paths, as it builds them.
    for (filter, live, status) in [
        (RowFilter::Live, Some(true), None),
        (RowFilter::Failed, None, Some("failed")),
        (RowFilter::Pending, None, Some("pending")),
    ] {
        let want = expected(&api, live, status);
        let mut after: Option<String> = None;
        let mut got = Vec::new();
        loop {
            let path = rows_path(filter, after.as_deref(), 4);
            let q = path.split_once('?').unwrap().1;
            let (s, body) = api.rows_raw(Some(q));
            assert_eq!(s, 200, "{path}: {body}");
            let page = parse_rows(body.as_bytes(), 4, after.as_deref()).unwrap();
            let json: Json = serde_json::from_str(&body).unwrap();
            for u in json["users"].as_array().unwrap() {
                got.push((
                    u["id"].as_str().unwrap().to_owned(),
                    u["clerk_id"].as_str().map(str::to_owned),
                ));
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(got, want, "{filter:?}");
    }
}

#[test]
fn a_pending_signup_without_a_clerk_id_is_listed() {
    let api = Api::new();
    varied(&api, 3);
    let (s, body) = api.rows("sync_status=pending");
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        body["users"],
        json!([
            {"id": "app_e1", "clerk_id": null, "email": "e1@x.com", "external_id": "app_e1",
             "sync_status": "pending", "sync_error": null,
             "last_sync_attempt": body["users"][0]["last_sync_attempt"],
             "created_at": body["users"][0]["created_at"], "deleted": false},
            {"id": "app_m1", "clerk_id": null, "email": "m1@x.com", "external_id": null,
             "sync_status": "pending", "sync_error": null,
             "last_sync_attempt": body["users"][1]["last_sync_attempt"],
             "created_at": body["users"][1]["created_at"], "deleted": false},
            {"id": "app_m2", "clerk_id": null, "email": "m2@x.com", "external_id": null,
             "sync_status": "pending", "sync_error": null,
             "last_sync_attempt": body["users"][2]["last_sync_attempt"],
             "created_at": body["users"][2]["created_at"], "deleted": false},
        ])
    );
    assert_eq!(body["next_after"], Json::Null);
    assert_eq!(body["ok"], true);
    // A signup's pending age starts when the row was created.
    assert!(body["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["created_at"].as_str().is_some_and(|t| t.ends_with('Z'))));
    // The linked signup names the external id that claimed it; the held
    // back one is failed, without its address.
    let (_, body) = api.rows("sync_status=failed");
    let rows = body["users"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.last(), Some(&"app_conflict"), "{body}");
    let conflict = rows.last().unwrap();
    assert_eq!(conflict["email"], Json::Null);
    assert!(conflict["sync_error"]
        .as_str()
        .unwrap()
        .contains("user_taker"));
    let (_, body) = api.rows("live=true");
    let linked = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["clerk_id"] == "user_linked")
        .unwrap();
    assert_eq!(
        (&linked["id"], &linked["external_id"]),
        (&json!("app_e2"), &json!("app_e2"))
    );
    let (_, body) = api.rows("live=false");
    assert!(body["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["deleted"] == true && r["clerk_id"] == "user_002"));
}

#[test]
fn rows_inserted_between_pages_never_make_the_cursor_skip_or_repeat() {
    for (filter, live, status) in [
        ("", None, None),
        ("live=true", Some(true), None),
        ("sync_status=pending", None, Some("pending")),
        ("sync_status=synced", None, Some("synced")),
    ] {
        let api = Api::new();
        varied(&api, 17);
        let before = expected(&api, live, status);
        let mut k = 0;
        let got = walk(&api, filter, 2, |api, page| {
            // New Clerk users and signups sorting before, between and after
            // the rows already there.
            for (clerk_id, id) in [
                (format!("user_!{page}"), format!("app_!{page}")),
                (format!("user_005{page}"), format!("app_e1{page}")),
                (format!("user_~{page}"), format!("app_~{page}")),
            ] {
                k += 1;
                api.expect(
                    &upsert(
                        &format!("new_{k}"),
                        &clerk_id,
                        record(Some(&format!("new{k}@x.com")), T1),
                    ),
                    200,
                );
                signup(api, &id, &format!("signup{k}@x.com"), "external_id");
            }
        });
        let distinct: HashSet<&Key> = got.iter().collect();
        assert_eq!(distinct.len(), got.len(), "{filter}: a row came twice");
        for row in &before {
            assert!(got.contains(row), "{filter}: {row:?} was skipped");
        }
        let mut in_order = got.clone();
        in_order.sort_by(|a, b| (a.1.is_none(), &a.1, &a.0).cmp(&(b.1.is_none(), &b.1, &b.0)));
        assert_eq!(got, in_order, "{filter}: in the order of the key");
        assert!(
            got.len() > before.len(),
            "{filter}: some new rows were seen too"
        );
    }
}

#[test]
fn the_first_page_has_a_hundred_rows_by_default_and_bad_queries_are_refused() {
    let api = Api::new();
    varied(&api, 120);
    let (s, body) = api.rows("");
    assert_eq!(s, 200);
    assert_eq!(body["users"].as_array().unwrap().len(), 100);
    assert_eq!(body["next_after"], "c:user_099");
    let (s, body) = api.rows_raw(None);
    assert_eq!(s, 200, "{body}");
    // A cursor among the rows with no Clerk id, asking for live rows only
    // (which all have one): an empty last page, without asking D1.
    api.db.faults.borrow_mut().push_back(Fault::Before);
    let (s, body) = api.rows("live=true&after=i:app_e1");
    assert_eq!(
        (s, &body["users"], &body["next_after"]),
        (200, &json!([]), &Json::Null)
    );
    api.db.faults.borrow_mut().clear();
    for bad in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "live=maybe",
        "sync_status=deleted",
        "after=user_001",
        "after=",
        "page=2",
        "limit=5&limit=6",
    ] {
        let (s, body) = api.rows(bad);
        assert_eq!(
            (s, &body["error"]),
            (400, &json!("invalid_query")),
            "{bad}: {body}"
        );
    }
}

#[test]
fn a_live_row_is_found_by_its_email_whatever_its_case() {
    let api = Api::new();
    varied(&api, 4);
    let ids = |query: &str| -> Vec<(Json, Json)> {
        let (s, body) = api.rows(query);
        assert_eq!(s, 200, "{query}: {body}");
        assert_eq!(body["next_after"], Json::Null, "{query}");
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].clone(), r["clerk_id"].clone()))
            .collect()
    };
    let (_, body) = api.rows("email=U1%40X.COM");
    let row = &body["users"][0];
    assert_eq!(
        (&row["clerk_id"], &row["email"], &row["sync_status"]),
        (&json!("user_001"), &json!("u1@x.com"), &json!("synced"))
    );
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    // A pending signup, with no Clerk id yet; and with its status as a filter.
    assert_eq!(ids("email=M1%40x.com"), [(json!("app_m1"), Json::Null)]);
    assert_eq!(
        ids("sync_status=pending&email=m1%40x.com&limit=1"),
        [(json!("app_m1"), Json::Null)]
    );
    assert_eq!(ids("sync_status=failed&email=m1%40x.com"), []);
    // Deleted (user_002), unknown, or only a part of the address: nothing.
    assert_eq!(ids("email=u2%40x.com"), []);
    assert_eq!(ids("email=nobody%40x.com"), []);
    assert_eq!(ids("email=u1"), []);
    assert_eq!(ids("email=%25%40x.com"), [], "no LIKE pattern");
    let longest = format!("email={}", "a".repeat(320));
    assert_eq!(ids(&longest), []);
    for bad in [
        "email=",
        &format!("email={}", "a".repeat(321)),
        "email=u1%40x.com&after=c:user_000",
        "email=u1%40x.com&live=true",
        "email=a&email=b",
        "mail=u1%40x.com",
    ] {
        let (s, body) = api.rows(bad);
        assert_eq!(
            (s, &body["error"]),
            (400, &json!("invalid_query")),
            "{bad}: {body}"
        );
    }
}
