//! `GET /internal/metrics`: the numbers equal the rows and the audit log,
//! natively (SQLite, the API's clock moved by hand) and in the real runtime
//! (`wrangler dev` on D1, a database of its own so that every count is
//! exact); the Prometheus text, read by a real parser
//! (`prometheus-parse`), says what the JSON says.

use std::collections::BTreeMap;

use clerk_sync_contract::metrics::{names, AuditOutcome, Metrics, HOUR_MS};
use clerk_sync_main_api::metrics::{AUDIT_BY_HOUR, LAST_TIMES, OLDEST_PENDING};
use serde_json::{json, Value as Json};

use crate::sqlite::*;

/// Each sample of a Prometheus text as `name{label="value"}` → value, read
/// by `prometheus-parse`; every line that is not a comment is a sample of a
/// gauge that has its `# HELP`.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the text parses");
    let sample_lines = text.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(scrape.samples.len(), sample_lines, "every sample line read");
    scrape
        .samples
        .iter()
        .map(|s| {
            assert!(scrape.docs.contains_key(&s.metric), "{} has HELP", s.metric);
            let prometheus_parse::Value::Gauge(v) = s.value else {
                panic!("{} is not a gauge: {:?}", s.metric, s.value);
            };
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            (key, v)
        })
        .collect()
}

/// The Prometheus text says what the JSON says, sample for sample.
fn agree(m: &Metrics, text: &str) {
    let mut expected = BTreeMap::new();
    let rows = [
        ("synced", m.rows.synced),
        ("pending", m.rows.pending),
        ("failed", m.rows.failed),
    ];
    for (status, n) in rows {
        expected.insert(
            format!("{}{{sync_status=\"{status}\"}}", names::ROWS),
            n as f64,
        );
    }
    expected.insert(names::DELETED_ROWS.to_owned(), m.rows.deleted as f64);
    if let Some(p) = m.oldest_pending {
        expected.insert(names::OLDEST_PENDING_AGE.to_owned(), p.age_seconds as f64);
    }
    for (name, counts) in [
        (names::COMMANDS_LAST_HOUR, m.outcomes.last_hour),
        (names::COMMANDS_LAST_24H, m.outcomes.last_24h),
    ] {
        for o in AuditOutcome::ALL {
            let key = format!("{name}{{outcome=\"{}\"}}", o.as_str());
            expected.insert(key, counts.get(o) as f64);
        }
    }
    for (name, at) in [
        (names::LAST_APPLIED, m.last_applied_at),
        (names::LAST_RECEIVED, m.last_received_at),
    ] {
        if let Some(at) = at {
            expected.insert(name.to_owned(), at.as_millis() as f64 / 1000.0);
        }
    }
    assert_eq!(samples(text), expected, "{text}");
}

/// Live rows by status and deleted rows, as `GET /internal/users` lists
/// them (every row, page by page).
fn listed_counts(mut page: impl FnMut(Option<&str>) -> Json) -> [u64; 4] {
    let mut counts = [0; 4];
    let mut after: Option<String> = None;
    loop {
        let body = page(after.as_deref());
        for row in body["users"].as_array().expect("users") {
            let at = match (
                row["deleted"].as_bool().unwrap(),
                row["sync_status"].as_str(),
            ) {
                (true, _) => 3,
                (false, Some("synced")) => 0,
                (false, Some("pending")) => 1,
                (false, Some("failed")) => 2,
                other => panic!("{other:?}"),
            };
            counts[at] += 1;
        }
        match body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return counts,
        }
    }
}

fn row_counts(m: &Metrics) -> [u64; 4] {
    [m.rows.synced, m.rows.pending, m.rows.failed, m.rows.deleted]
}

/// Commands whose outcomes are known: the same story natively and on D1.
/// `send` answers each command's status; `signup` makes a pending row.
/// Ends with 3 synced, 1 pending, 1 failed and 1 deleted row, and
/// applied 5, duplicate 1, stale 1, ignored_deleted 1, rejected 1.
fn story(t: &str, base_ms: i64, send: &dyn Fn(&[u8]) -> u16, signup: &dyn Fn(&str, &str)) {
    let a1 = Event::created(
        &format!("op_a1_{t}"),
        &format!("user_a1_{t}"),
        base_ms,
        Some(&format!("a1.{t}@x.com")),
    );
    let a2 = Event::created(
        &format!("op_a2_{t}"),
        &format!("user_a2_{t}"),
        base_ms,
        Some(&format!("a2.{t}@x.com")),
    );
    let b = Event::created(
        &format!("op_b_{t}"),
        &format!("user_b_{t}"),
        base_ms,
        Some(&format!("b.{t}@x.com")),
    );
    let c = Event::created(
        &format!("op_c_{t}"),
        &format!("user_c_{t}"),
        base_ms,
        Some(&format!("q.{t}@x.com")),
    );
    let expect = |body: Vec<u8>, status: u16| {
        assert_eq!(send(&body), status, "{}", String::from_utf8_lossy(&body));
    };
    expect(a1.command().to_json(), 200); // applied
    expect(a2.command().to_json(), 200); // applied
    expect(a1.command().to_json(), 409); // duplicate
    let older = a1.updated(&format!("op_a1_old_{t}"), base_ms - 60_000);
    expect(older.command().to_json(), 200); // stale
    expect(b.command().to_json(), 200); // applied
    expect(
        b.deleted(&format!("op_b_del_{t}"), base_ms + 1_000, false)
            .to_json(),
        200,
    ); // applied
    let late = b.updated(&format!("op_b_late_{t}"), base_ms + 2_000);
    expect(late.command().to_json(), 200); // ignored_deleted
    signup(&format!("app_p_{t}"), &format!("p.{t}@x.com")); // stays pending
                                                            // A signup whose address a Clerk user then takes: it records the conflict.
    signup(&format!("app_q_{t}"), &format!("q.{t}@x.com"));
    expect(c.command().to_json(), 200); // applied
    let mut bad: Json = serde_json::from_slice(&a2.command().to_json()).unwrap();
    bad["version"] = json!(2);
    expect(bad.to_string().into_bytes(), 400); // rejected
}

#[test]
fn the_numbers_are_the_rows_and_the_audit_log() {
    let api = Api::new();
    let m = api.metrics(None, api.clock_ms());
    assert_eq!(row_counts(&m), [0; 4]);
    assert_eq!(
        (m.oldest_pending, m.last_applied_at, m.last_received_at),
        (None, None, None)
    );
    assert_eq!(m.outcomes.last_24h.total(), 0);

    story(
        "n",
        START_MS,
        &|body| api.send_bytes(body).0,
        &|id, email| {
            signup(&api, id, email, "external_id");
        },
    );
    // A command the database fails on: its row and its audit row say so.
    api.db.faults.borrow_mut().push_back(Fault::Before);
    let d = Event::created("op_d", "user_d", START_MS, Some("d@x.com"));
    assert_eq!(api.send(&d.command()).0, 500);

    let now = api.clock_ms() + 1_000;
    let m = api.metrics(None, now);
    assert_eq!(row_counts(&m), [3, 1, 2, 1]);
    let listed = listed_counts(|after| {
        let query = after.map_or("limit=2".to_owned(), |a| format!("limit=2&after={a}"));
        api.rows(&query).1
    });
    assert_eq!(row_counts(&m), listed);
    let status = api.status();
    assert_eq!(
        status["users"]["total"],
        json!(m.rows.synced + m.rows.pending + m.rows.failed + m.rows.deleted)
    );

    let expected = json!({"applied": 5, "duplicate": 1, "stale": 1, "ignored_deleted": 1,
                          "rejected": 1, "failed": 1});
    assert_eq!(
        serde_json::to_value(m.outcomes.last_hour).unwrap(),
        expected
    );
    assert_eq!(serde_json::to_value(m.outcomes.last_24h).unwrap(), expected);
    let audit = api.db.query(
        "SELECT outcome, COUNT(*) AS n FROM sync_audit GROUP BY outcome",
        &[],
    );
    for row in audit {
        let o = AuditOutcome::parse(row["outcome"].as_str().unwrap()).unwrap();
        assert_eq!(json!(m.outcomes.last_24h.get(o)), row["n"], "{o:?}");
    }
    // Every command so far in the hour that started at START_MS: the last bucket.
    assert_eq!(m.hourly[23].outcomes, m.outcomes.last_24h);
    assert_eq!(m.hourly[23].start.as_millis(), START_MS);

    let pending = api.row("app_p_n").unwrap();
    let p = m.oldest_pending.unwrap();
    assert_eq!(
        Some(p.created_at.as_millis()),
        clerk_sync_contract::time::parse_millis(pending["created_at"].as_str().unwrap())
    );
    assert_eq!(
        p.age_seconds,
        ((now - p.created_at.as_millis()) / 1000) as u64
    );
    let last = api.db.query(
        "SELECT received_at, outcome FROM sync_audit ORDER BY id DESC",
        &[],
    );
    let applied = last.iter().find(|r| r["outcome"] == "applied").unwrap();
    assert_eq!(
        json!(m.last_received_at.unwrap().to_rfc3339()),
        last[0]["received_at"]
    );
    assert_eq!(
        json!(m.last_applied_at.unwrap().to_rfc3339()),
        applied["received_at"]
    );
    assert_eq!(last[0]["outcome"], "failed");

    let (status, text, content_type) = api.metrics_raw(Some("format=prometheus"), now);
    assert_eq!(
        (status, content_type),
        (200, "text/plain; version=0.0.4; charset=utf-8")
    );
    agree(&m, &text);
}

#[test]
fn the_windows_end_at_now() {
    let api = Api::new();
    story(
        "w",
        START_MS,
        &|body| api.send_bytes(body).0,
        &|id, email| {
            signup(&api, id, email, "external_id");
        },
    );
    let at_start = api.metrics(None, api.clock_ms());
    // Two hours on: nothing in the last hour, all of it in the 24 hours,
    // in the bucket two before the current one.
    let m = api.metrics(None, START_MS + 2 * HOUR_MS + 5);
    assert_eq!(m.outcomes.last_hour.total(), 0);
    assert_eq!(m.outcomes.last_24h, at_start.outcomes.last_24h);
    assert_eq!(m.hourly[21].outcomes, at_start.outcomes.last_24h);
    let others: u64 = m.hourly.iter().map(|b| b.outcomes.total()).sum();
    assert_eq!(others, m.outcomes.last_24h.total());
    assert_eq!(m.hourly[23].start.as_millis(), START_MS + 2 * HOUR_MS);
    assert_eq!(row_counts(&m), row_counts(&at_start));
    let age = m.oldest_pending.unwrap().age_seconds;
    assert!((2 * 3600 - 1..=2 * 3600).contains(&age), "{age}");
    // A day and more on: the windows are empty, the times and rows remain.
    let m = api.metrics(None, START_MS + 25 * HOUR_MS);
    assert_eq!(m.outcomes.last_24h.total(), 0);
    assert!(m.hourly.iter().all(|b| b.outcomes.total() == 0));
    assert_eq!(m.last_received_at, at_start.last_received_at);
    assert_eq!(row_counts(&m), row_counts(&at_start));
    let (_, text, _) = api.metrics_raw(Some("format=prometheus"), START_MS + 25 * HOUR_MS);
    agree(&m, &text);
}

#[test]
fn a_bad_query_is_refused_before_the_database_is_read() {
    let api = Api::new();
    for bad in [
        "format=xml",
        "format=json&format=json",
        "window=1h",
        "format",
    ] {
        api.db.faults.borrow_mut().push_back(Fault::Before);
        let (status, body, content_type) = api.metrics_raw(Some(bad), START_MS);
        let body: Json = serde_json::from_str(&body).unwrap();
        assert_eq!((status, content_type), (400, "application/json"), "{bad}");
        assert_eq!(body["error"], "invalid_query", "{bad}");
        api.db.faults.borrow_mut().clear();
    }
    // The database failing is a 500, never numbers.
    api.db.faults.borrow_mut().push_back(Fault::Before);
    let (status, body, _) = api.metrics_raw(None, START_MS);
    assert_eq!(
        (
            status,
            serde_json::from_str::<Json>(&body).unwrap()["error"].clone()
        ),
        (500, json!("database_error"))
    );
}

/// What the metrics read is found through an index: the audit log's
/// window is a range of `sync_audit_received_at` and reads no table row;
/// the oldest pending row is one entry of `users_pending_created_at`.
#[test]
fn the_reads_use_the_metrics_indexes() {
    let api = Api::new();
    let plan = |sql: &'static str, params: &[&str]| -> Vec<String> {
        let explain: &'static str = Box::leak(format!("EXPLAIN QUERY PLAN {sql}").into_boxed_str());
        api.db
            .query(explain, params)
            .iter()
            .map(|r| r["detail"].as_str().unwrap().to_owned())
            .collect()
    };
    let window = plan(
        AUDIT_BY_HOUR,
        &["2026-01-01T00:00:00.000Z", "2026-01-01T23:00:00.000Z"],
    );
    assert!(
        window
            .iter()
            .any(|d| d.contains("COVERING INDEX sync_audit_received_at (received_at>?)")),
        "{window:#?}"
    );
    let oldest = plan(OLDEST_PENDING, &[]);
    assert!(
        oldest
            .iter()
            .any(|d| d.contains("users_pending_created_at")),
        "{oldest:#?}"
    );
    for sql in [AUDIT_BY_HOUR, OLDEST_PENDING, LAST_TIMES] {
        let p = plan(
            sql,
            &["2026-01-01T00:00:00.000Z", "2026-01-01T23:00:00.000Z"][..sql.matches("?").count()],
        );
        let scans = p
            .iter()
            .filter(|d| d.starts_with("SCAN ") && *d != "SCAN CONSTANT ROW");
        assert_eq!(scans.count(), 0, "{sql}\n{p:#?}");
    }
}

// ---- in the real runtime ---------------------------------------------------

mod d1 {
    use clerk_sync_testkit::prelude::*;

    use super::*;

    fn bearer() -> Vec<(String, String)> {
        vec![
            ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
            ("content-type".into(), "application/json".into()),
        ]
    }

    /// `GET /internal/metrics?<query>` on the wire: status, content type, body.
    fn metrics(
        api: &MainApiDev,
        query: &str,
        authorization: Option<&str>,
    ) -> (u16, String, String) {
        let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        let request = format!(
            "GET /internal/metrics{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
        );
        let r = raw_request(api.port, request.as_bytes()).expect("an answer");
        let content_type = r.header("content-type").unwrap_or_default().to_owned();
        (r.status, content_type, String::from_utf8(r.body).unwrap())
    }

    #[test]
    #[ignore = "needs wrangler dev: scripts/test.sh"]
    fn the_numbers_are_the_rows_through_d1_and_prometheus_says_the_same() {
        // A database of its own: every count is exact.
        let api = MainApiDev::start();
        let secret = format!("Bearer {DEV_API_SECRET}");

        let (s, content_type, body) = metrics(&api, "", None);
        assert_eq!(
            (s, content_type.as_str()),
            (401, "application/json"),
            "{body}"
        );
        let (s, _, body) = metrics(&api, "", Some("Bearer wrong"));
        let body: Json = serde_json::from_str(&body).unwrap();
        assert_eq!((s, &body["error"]), (401, &json!("unauthorized")));
        for bad in ["?format=xml", "?format=prometheus&format=json", "?limit=5"] {
            let (s, _, body) = metrics(&api, bad, Some(&secret));
            let body: Json = serde_json::from_str(&body).unwrap();
            assert_eq!((s, &body["error"]), (400, &json!("invalid_query")), "{bad}");
        }
        let (s, _, body) = metrics(&api, "", Some(&secret));
        assert_eq!(s, 200, "{body}");
        let empty: Metrics = serde_json::from_str(&body).unwrap();
        assert_eq!(row_counts(&empty), [0; 4]);
        assert_eq!((empty.oldest_pending, empty.last_received_at), (None, None));

        let base_ms = unix_now() as i64 * 1000;
        story(
            "d",
            base_ms,
            &|body| post(&format!("{}/internal/clerk-sync", api.url), &bearer(), body).0,
            &|id, email| {
                let body = json!({"id": id, "email": email, "link_by": "external_id"});
                let (s, r) = post(
                    &format!("{}/internal/users", api.url),
                    &bearer(),
                    body.to_string().as_bytes(),
                );
                assert_eq!(s, 201, "{r}");
            },
        );

        let (s, content_type, body) = metrics(&api, "", Some(&secret));
        assert_eq!(
            (s, content_type.as_str()),
            (200, "application/json"),
            "{body}"
        );
        let m: Metrics = serde_json::from_str(&body).unwrap();
        assert_eq!(row_counts(&m), [3, 1, 1, 1], "{body}");
        let listed = listed_counts(|after| {
            let mut url = format!("{}/internal/users?limit=2", api.url);
            if let Some(a) = after {
                url.push_str(&format!("&after={}", a.replace(':', "%3A")));
            }
            let (s, page) = get_with(&url, &bearer());
            assert_eq!(s, 200, "{page}");
            page
        });
        assert_eq!(row_counts(&m), listed);
        let expected = json!({"applied": 5, "duplicate": 1, "stale": 1, "ignored_deleted": 1,
                              "rejected": 1, "failed": 0});
        assert_eq!(
            serde_json::to_value(m.outcomes.last_hour).unwrap(),
            expected
        );
        assert_eq!(serde_json::to_value(m.outcomes.last_24h).unwrap(), expected);
        let bucketed: u64 = m.hourly.iter().map(|b| b.outcomes.total()).sum();
        assert_eq!((m.hourly.len(), bucketed), (24, 9));
        // The pending row, as the API shows it.
        let (_, status) = get_with(&format!("{}/internal/sync/status", api.url), &bearer());
        assert_eq!(status["users"]["total"], json!(6), "{status}");
        let p = m.oldest_pending.expect("a pending row");
        assert!(p.age_seconds < 600, "{p:?}");
        assert!(m.last_applied_at.unwrap() <= m.last_received_at.unwrap());
        assert!(m.last_received_at.unwrap() <= m.generated_at);

        let (s, content_type, text) = metrics(&api, "?format=prometheus", Some(&secret));
        assert_eq!(s, 200, "{text}");
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        // Nothing changed between the two reads but the clock: the age may
        // have grown by the seconds between them.
        let later = samples(&text);
        let age = later[names::OLDEST_PENDING_AGE];
        assert!(
            (p.age_seconds as f64..=p.age_seconds as f64 + 60.0).contains(&age),
            "{age}"
        );
        let same_age = Metrics {
            oldest_pending: Some(clerk_sync_contract::metrics::OldestPending {
                age_seconds: age as u64,
                ..p
            }),
            ..m
        };
        agree(&same_age, &text);
    }
}
