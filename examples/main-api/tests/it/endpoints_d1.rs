//! The batch and rows endpoints in the real runtime: `wrangler dev` with a
//! local D1, the same API process as `through_relay` (each test uses Clerk
//! ids of its own). The SQL and the semantics are tested natively in
//! `batch.rs` and `rows.rs`; this proves the glue (the route's larger body
//! limit, the query string, one D1 transaction for a whole page).

use clerk_sync_testkit::prelude::*;
use serde_json::{json, Value as Json};

use crate::through_relay::api;

fn bearer() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
        ("content-type".into(), "application/json".into()),
    ]
}

fn upsert(tag: &str, i: usize) -> Json {
    let clerk_id = format!("user_{tag}_{i:04}");
    json!({
        "version": 1, "command": "upsert_user", "operation_id": format!("op_{tag}_{i}"),
        "event_type": "resync", "occurred_at": "2026-01-01T00:00:00.000Z",
        "received_at": "2026-01-01T00:00:01.000Z", "clerk_id": clerk_id,
        "user": {"email": format!("{tag}.{i}@example.com"), "email_verified": true,
                 "first_name": "Batch", "last_name": null, "username": null, "image_url": null,
                 "external_id": null, "created_at": "2026-01-01T00:00:00.000Z",
                 "updated_at": "2026-01-01T00:00:00.000Z"}
    })
}

fn batch(commands: &[Json]) -> (u16, Json) {
    let body = json!({"version": 1, "commands": commands}).to_string();
    post(
        &format!("{}/internal/clerk-sync/batch", api().url),
        &bearer(),
        body.as_bytes(),
    )
}

fn outcomes(answer: &Json) -> Vec<String> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs wrangler dev: scripts/test.sh"]
fn a_page_of_500_is_one_batch_applied_once_and_listed_by_the_rows_endpoint() {
    let tag = format!("b{}", std::process::id());
    let commands: Vec<Json> = (0..500).map(|i| upsert(&tag, i)).collect();
    let (s, answer) = batch(&commands);
    assert_eq!(s, 200, "{answer}");
    let got = outcomes(&answer);
    assert_eq!(got.len(), 500);
    assert!(got.iter().all(|o| o == "applied"), "{got:?}");
    assert_eq!(
        answer["results"][7]["operation_id"],
        json!(format!("op_{tag}_7"))
    );

    // Sent again (a resumed re-sync page): every command is a duplicate.
    let (s, again) = batch(&commands);
    assert_eq!(s, 200, "{again}");
    assert!(outcomes(&again).iter().all(|o| o == "duplicate"));

    // The live rows, paged by the cursor: each of ours exactly once.
    let prefix = format!("user_{tag}_");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let mut url = format!("{}/internal/users?live=true&limit=173", api().url);
        if let Some(a) = &after {
            url.push_str(&format!("&after={}", form_encode(a)));
        }
        let (s, page) = get_with(&url, &bearer());
        assert_eq!(s, 200, "{page}");
        for row in page["users"].as_array().unwrap() {
            let id = row["clerk_id"].as_str().unwrap_or_default();
            if id.starts_with(&prefix) {
                assert_eq!(row["sync_status"], "synced", "{row}");
                assert_eq!(row["deleted"], json!(false));
                seen.push(id.to_owned());
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..500).map(|i| format!("{prefix}{i:04}")).collect();
    assert_eq!(seen, expected, "every row once, in clerk_id order");
}

#[test]
#[ignore = "needs wrangler dev: scripts/test.sh"]
fn a_malformed_batch_applies_nothing_and_needs_the_bearer() {
    let tag = format!("m{}", std::process::id());
    let mut bad = upsert(&tag, 1);
    bad["version"] = json!(2);
    let (s, r) = batch(&[upsert(&tag, 0), bad]);
    assert_eq!((s, &r["error"]), (400, &json!("invalid_batch")), "{r}");
    let (s, _) = api().user(&format!("user_{tag}_0000"));
    assert_eq!(
        s, 404,
        "the valid command before the bad one was not applied"
    );
    let (s, r) = post(
        &format!("{}/internal/clerk-sync/batch", api().url),
        &[],
        json!({"version": 1, "commands": [upsert(&tag, 2)]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(s, 401, "{r}");
    let (s, r) = get_with(
        &format!("{}/internal/users?limit=501", api().url),
        &bearer(),
    );
    assert_eq!((s, &r["error"]), (400, &json!("invalid_query")), "{r}");
}

/// Percent-encodes a cursor for the query string.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
