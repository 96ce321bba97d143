//! What the suites share: the servers, the admin calls, the table read back
//! page by page, and the truth read from the stand-in.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clerk_sync_contract::clerk::ClerkUser;
pub use clerk_sync_testkit::prelude::*;
pub use serde_json::{json, Value as Json};

/// How long a run may take here: a bound for a stuck run on a busy machine.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn bearer(secret: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {secret}")),
        ("content-type".into(), "application/json".into()),
    ]
}

/// An admin call through the relay with the dev bearer.
pub fn admin(relay: &RelayDev, method: &str, path: &str, body: &str) -> (u16, Json) {
    admin_as(relay, DEV_ADMIN_SECRET, method, path, body)
}

pub fn admin_as(
    relay: &RelayDev,
    secret: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Json) {
    let url = format!("{}{path}", relay.url);
    if method == "GET" {
        get_with(&url, &bearer(secret))
    } else {
        request(method, &url, &bearer(secret), body.as_bytes())
    }
}

/// Starts a run; its id.
pub fn start(relay: &RelayDev, body: &str) -> String {
    let (s, answer) = admin(relay, "POST", "/admin/resync", body);
    assert_eq!(s, 202, "{answer}");
    answer["run_id"].as_str().expect("run_id").to_owned()
}

/// Waits until the run is no longer running; its status.
pub fn finished(relay: &RelayDev, run_id: &str) -> Json {
    let mut last = Json::Null;
    let done = wait_until(RUN_TIMEOUT, || {
        let (s, status) = admin(relay, "GET", &format!("/admin/resync/{run_id}"), "");
        let over = s == 200 && status["state"] != "running";
        last = status;
        over
    });
    assert!(done, "the run did not finish: {last}\n{}", relay.logs());
    last
}

/// Every row the main API lists (`live=true` or the given filter), by Clerk id.
pub fn table(api: &MainApiDev, filter: &str) -> BTreeMap<String, Json> {
    let mut rows = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/internal/users?{filter}&limit=500", api.url);
        if let Some(a) = &after {
            url.push_str("&after=");
            url.push_str(&a.replace(':', "%3A"));
        }
        let (s, page) = get_with(&url, &bearer(DEV_API_SECRET));
        assert_eq!(s, 200, "{page}");
        for row in page["users"].as_array().unwrap() {
            let key = row["clerk_id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("row:{}", row["id"]));
            rows.insert(key, row.clone());
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return rows,
        }
    }
}

/// The stand-in's users as the table should hold them: Clerk id → email,
/// mapped by the contract's one mapping.
pub fn truth(clerk: &ClerkStandIn) -> BTreeMap<String, Option<String>> {
    clerk
        .users()
        .into_iter()
        .map(|u| {
            let user: ClerkUser = serde_json::from_value(u.clone()).expect("a Clerk user");
            let record = user.to_record().expect("in range");
            (u["id"].as_str().unwrap().to_owned(), record.email)
        })
        .collect()
}

/// Asserts the live table equals Clerk: the same ids, each `synced` with
/// Clerk's email.
pub fn assert_table_is_clerk(api: &MainApiDev, clerk: &ClerkStandIn) {
    let truth = truth(clerk);
    let live = table(api, "live=true");
    let extra: Vec<&String> = live.keys().filter(|k| !truth.contains_key(*k)).collect();
    let missing: Vec<&String> = truth.keys().filter(|k| !live.contains_key(*k)).collect();
    assert!(extra.is_empty(), "live rows Clerk does not have: {extra:?}");
    assert!(
        missing.is_empty(),
        "Clerk users with no live row: {} of them, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    for (id, email) in &truth {
        let row = &live[id];
        assert_eq!(row["sync_status"], "synced", "{id}: {row}");
        assert_eq!(row["email"].as_str(), email.as_deref(), "{id}: {row}");
    }
}

/// A batch of commands straight to the main API (a table's history).
pub fn batch(api: &MainApiDev, commands: &[Json]) -> Json {
    let body = json!({"version": 1, "commands": commands}).to_string();
    let (s, answer) = post(
        &format!("{}/internal/clerk-sync/batch", api.url),
        &bearer(DEV_API_SECRET),
        body.as_bytes(),
    );
    assert_eq!(s, 200, "{answer}");
    answer
}

fn rfc3339(ms: i64) -> String {
    clerk_sync_contract::time::format_millis(ms).unwrap()
}

/// An `upsert_user` as a webhook would have sent it, for this Clerk id.
pub fn upsert(clerk_id: &str, email: &str, updated_ms: i64) -> Json {
    json!({
        "version": 1, "command": "upsert_user", "operation_id": format!("op_drift_{clerk_id}_{updated_ms}"),
        "event_type": "user.updated", "occurred_at": rfc3339(updated_ms), "received_at": rfc3339(updated_ms),
        "clerk_id": clerk_id,
        "user": {"email": email, "email_verified": true, "first_name": "Old", "last_name": null,
                 "username": null, "image_url": null, "external_id": null,
                 "created_at": rfc3339(updated_ms - 1000), "updated_at": rfc3339(updated_ms)}
    })
}

pub fn delete(clerk_id: &str, at_ms: i64) -> Json {
    json!({
        "version": 1, "command": "delete_user", "operation_id": format!("op_drift_del_{clerk_id}"),
        "event_type": "user.deleted", "occurred_at": rfc3339(at_ms), "received_at": rfc3339(at_ms),
        "clerk_id": clerk_id
    })
}

/// A signed Clerk delivery through the relay; the relay's answer.
pub fn deliver(relay: &RelayDev, event_type: &str, data: &Json, at_ms: i64) -> (u16, Json) {
    static N: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "msg_resync_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let body = json!({"type": event_type, "object": "event", "timestamp": at_ms, "data": data})
        .to_string();
    let url = format!("{}/webhook?secret={DEV_QUERY_SECRET}", relay.url);
    post(&url, &svix_headers(&id, body.as_bytes()), body.as_bytes())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
