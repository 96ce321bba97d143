//! The whole flow in the real runtime: the built relay (workerd) forwarding
//! signed Clerk deliveries to this main API (served by `wrangler dev`:
//! workerd with a local D1 database), and the result read back through
//! `GET /internal/users/:clerk_id`; and the API's own HTTP edge (bearer,
//! repeats, a chunked body over its limit) on the wire.
//!
//! One API process serves the whole test binary (started on first use, on a
//! free port, with its own inspector port and D1 directory, migrations
//! applied); each test uses Clerk ids of its own. The test kit's process
//! helper stops the API's process group and removes its directory when the
//! test process is gone (a `static` is never dropped).
//!
//! Needs the relay bundle in `dist/` and wrangler from `npm ci`: ignored by
//! a plain `cargo test`, run by `scripts/test.sh`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use clerk_sync_contract::time::format_millis;
use clerk_sync_testkit::prelude::*;
use serde_json::{json, Value as Json};

// ---- the API process ------------------------------------------------------

/// A `wrangler dev` of the reference main API (testkit's [`MainApiDev`]),
/// shared by the suites of this binary.
pub struct MainApi {
    pub url: String,
    pub port: u16,
    // Behind a lock: a `static` must be `Sync`, a child process is not.
    dev: Mutex<MainApiDev>,
}

/// How long a log line may take to reach wrangler's output: a bound.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn api() -> &'static MainApi {
    static SHARED: OnceLock<MainApi> = OnceLock::new();
    SHARED.get_or_init(MainApi::start)
}

impl MainApi {
    pub fn start() -> Self {
        let started = Instant::now();
        let dev = MainApiDev::start();
        eprintln!(
            "main API ready on {} after {:.1}s",
            dev.url,
            started.elapsed().as_secs_f64()
        );
        MainApi {
            url: dev.url.clone(),
            port: dev.port,
            dev: Mutex::new(dev),
        }
    }

    pub fn logs(&self) -> String {
        self.dev.lock().unwrap().logs()
    }

    fn bearer() -> Vec<(String, String)> {
        vec![
            ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
            ("content-type".into(), "application/json".into()),
        ]
    }

    /// `POST /internal/clerk-sync` with the bearer.
    pub fn sync(&self, command: &Json) -> (u16, Json) {
        post(
            &format!("{}/internal/clerk-sync", self.url),
            &Self::bearer(),
            command.to_string().as_bytes(),
        )
    }

    /// `GET /internal/users/:clerk_id` with the bearer.
    pub fn user(&self, clerk_id: &str) -> (u16, Json) {
        get_with(
            &format!("{}/internal/users/{clerk_id}", self.url),
            &Self::bearer(),
        )
    }

    pub fn status(&self) -> Json {
        let (s, body) = get_with(
            &format!("{}/internal/sync/status", self.url),
            &Self::bearer(),
        );
        assert_eq!(s, 200, "{body}");
        body
    }

    /// `POST /internal/users`: the application's signup (a pending row).
    pub fn create_user(&self, body: &Json) -> (u16, Json) {
        post(
            &format!("{}/internal/users", self.url),
            &Self::bearer(),
            body.to_string().as_bytes(),
        )
    }
}

// ---- Clerk deliveries through the relay ---------------------------------------

fn relay() -> Workerd {
    Workerd::serve_relay(&relay_bindings(&api().url))
}

fn webhook_url(w: &Workerd) -> String {
    format!("{}/webhook?secret={DEV_QUERY_SECRET}", w.base_url)
}

/// A fresh svix-id.
fn msg_id(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "msg_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A signed delivery of `body` with this svix-id: the relay's answer.
fn deliver(relay: &Workerd, id: &str, body: &[u8]) -> (u16, Json) {
    post(&webhook_url(relay), &svix_headers(id, body), body)
}

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

/// A Clerk `user.created` / `user.updated` event as Clerk sends it.
fn user_event(
    event_type: &str,
    clerk_id: &str,
    updated_ms: i64,
    email: Option<&str>,
    external_id: Option<&str>,
) -> Vec<u8> {
    let emails: Vec<Json> = email
        .iter()
        .map(|e| {
            json!({"id": "idn_1", "object": "email_address", "email_address": e,
                        "verification": {"status": "verified", "strategy": "email_code"}})
        })
        .collect();
    json!({
        "type": event_type,
        "object": "event",
        "timestamp": updated_ms + 7,
        "data": {
            "id": clerk_id,
            "object": "user",
            "email_addresses": emails,
            "primary_email_address_id": email.map(|_| "idn_1"),
            "first_name": format!("First{updated_ms}"),
            "last_name": "Last",
            "username": null,
            "image_url": "https://img.clerk.com/x",
            "external_id": external_id,
            "created_at": T0 - 60_000,
            "updated_at": updated_ms,
        }
    })
    .to_string()
    .into_bytes()
}

fn deleted_event(clerk_id: &str, at_ms: i64) -> Vec<u8> {
    json!({"type": "user.deleted", "object": "event", "timestamp": at_ms,
           "data": {"deleted": true, "id": clerk_id, "object": "user"}})
    .to_string()
    .into_bytes()
}

fn contract_time(ms: i64) -> String {
    format_millis(ms).unwrap()
}

// ---- the tests ----------------------------------------------------------------

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn created_updated_deleted_through_the_relay_are_in_the_table() {
    let relay = relay();
    let (created, updated, deleted) = (
        fixture("docs_user_created.json"),
        fixture("dashboard_user_updated.json"),
        fixture("dashboard_user_deleted.json"),
    );
    let clerk_id = "user_29w83sxmDNGwOuEthce5gg56FcC";

    let (s, r) = deliver(&relay, &msg_id("create"), &created);
    assert_eq!((s, &r["forwarded"]), (200, &json!(true)), "{r}");
    let (s, u) = api().user(clerk_id);
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["deleted"], false);
    let row = &u["user"];
    assert_eq!(row["sync_status"], "synced");
    assert_eq!(row["email"], "example@example.org");
    assert_eq!(row["first_name"], "Example");
    assert_eq!(row["last_name"], "Example");
    assert_eq!(row["created_at"], "2022-05-31T15:56:31.514Z");
    assert_eq!(row["clerk_updated_at"], "2022-05-31T15:56:31.835Z");
    assert_eq!(row["sync_error"], Json::Null);
    assert!(row["last_sync_attempt"].is_string());

    let (s, r) = deliver(&relay, &msg_id("update"), &updated);
    assert_eq!(s, 200, "{r}");
    let row = api().user(clerk_id).1["user"].clone();
    assert_eq!(row["clerk_updated_at"], "2022-05-31T16:00:24.306Z");
    assert_eq!(row["last_name"], Json::Null, "the update's null last name");
    assert_eq!(row["sync_status"], "synced");

    let (s, r) = deliver(&relay, &msg_id("delete"), &deleted);
    assert_eq!(s, 200, "{r}");
    let u = api().user(clerk_id).1;
    assert_eq!(u["deleted"], true);
    assert!(u["user"]["deleted_at"].is_string());
    assert_eq!(u["sync_status"], "synced");

    // The created event delivered again under a new id: the tombstone holds.
    let (s, _) = deliver(&relay, &msg_id("late"), &created);
    assert_eq!(s, 200);
    let again = api().user(clerk_id).1;
    assert_eq!(again["user"]["deleted_at"], u["user"]["deleted_at"]);
    assert_eq!(
        again["user"]["clerk_updated_at"],
        "2022-05-31T16:00:24.306Z"
    );
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn the_seed_curl_unsigned_ends_synced() {
    // The README's curl: unsigned, accepted because the dev .dev.vars allows it.
    let lax = Workerd::serve_relay(&with_binding(
        relay_bindings(&api().url),
        "ALLOW_UNSIGNED_WEBHOOKS",
        "true",
    ));
    let body = fixture("seed_curl_user_created.json");
    let plain = vec![("content-type".to_string(), "application/json".to_string())];
    let (s, r) = post(&webhook_url(&lax), &plain, &body);
    assert_eq!(s, 200, "{r}");
    let (s, u) = api().user("test_id");
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(u["user"]["email"], "test@example.com");
    assert_eq!(u["user"]["first_name"], "Test");
    // The same body again is the same operation: the API's 409 is a 200 here.
    let (s, r) = post(&webhook_url(&lax), &plain, &body);
    assert_eq!(s, 200, "{r}");
    assert_eq!(outcomes("test_id"), ["duplicate", "applied"]);
}

/// The Clerk id's audit trail, newest first, as the API shows it.
fn outcomes(clerk_id: &str) -> Vec<String> {
    let (s, u) = api().user(clerk_id);
    assert_eq!(s, 200, "{u}");
    u["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn any_order_with_repeats_converges_through_the_relay() {
    let seed = env_or("CONVERGENCE_SEED", 0xC1E4_5EED);
    let count = env_or("CONVERGENCE_SCHEDULES", 100);
    let mut rng = fastrand::Rng::with_seed(seed);
    let relay = relay();
    let started = Instant::now();
    let (mut deliveries, mut deleted) = (0, 0);
    for n in 0..count {
        let ctx = format!("seed {seed:#x}, schedule {n}");
        let clerk_id = format!("user_conv_{}_{n}", std::process::id());
        // 1–3 versions (created, then updated), maybe a delete.
        let versions = 1 + rng.u64(..3) as i64;
        let mut events: Vec<(String, Vec<u8>)> = Vec::new();
        let mut t = T0 + n as i64 * 10_000;
        let mut newest = (0, String::new());
        for v in 0..versions {
            t += 1 + rng.u64(..3) as i64 * 700;
            let email = format!("conv{n}.v{v}.{}@example.com", std::process::id());
            let kind = if v == 0 {
                "user.created"
            } else {
                "user.updated"
            };
            events.push((
                msg_id("conv"),
                user_event(kind, &clerk_id, t, Some(&email), None),
            ));
            newest = (t, email);
        }
        let is_deleted = rng.u64(..10) < 4;
        if is_deleted {
            deleted += 1;
            events.push((msg_id("conv_del"), deleted_event(&clerk_id, t + 1)));
        }
        // Each delivered 1–3 times (a repeat is Svix's retry: the same id).
        let mut schedule = Vec::new();
        for e in &events {
            for _ in 0..1 + rng.u64(..3) {
                schedule.push(e.clone());
            }
        }
        rng.shuffle(&mut schedule);
        deliveries += schedule.len();
        // A third of the schedules race three deliveries at a time.
        let concurrent = n % 3 == 0;
        let statuses: Vec<(u16, Json)> = if concurrent {
            schedule
                .chunks(3)
                .flat_map(|chunk| {
                    thread::scope(|s| {
                        let handles: Vec<_> = chunk
                            .iter()
                            .map(|(id, body)| s.spawn(|| deliver(&relay, id, body)))
                            .collect();
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect()
        } else {
            schedule
                .iter()
                .map(|(id, body)| deliver(&relay, id, body))
                .collect()
        };
        for (s, r) in &statuses {
            assert_eq!(*s, 200, "{ctx}: every delivery is taken: {r}");
        }

        let (s, u) = api().user(&clerk_id);
        assert_eq!(s, 200, "{ctx}: {u}");
        assert_eq!(u["deleted"], is_deleted, "{ctx}: {u}");
        if is_deleted {
            if !u["user"].is_null() {
                assert!(u["user"]["deleted_at"].is_string(), "{ctx}: {u}");
                assert_eq!(u["user"]["sync_status"], "synced", "{ctx}: {u}");
            }
        } else {
            let row = &u["user"];
            assert_eq!(row["sync_status"], "synced", "{ctx}: {u}");
            assert_eq!(
                row["clerk_updated_at"],
                contract_time(newest.0),
                "{ctx}: {u}"
            );
            assert_eq!(row["email"], json!(newest.1), "{ctx}: {u}");
            assert_eq!(row["first_name"], format!("First{}", newest.0), "{ctx}");
        }
    }
    assert!(deleted > 0 && deleted < count, "both kinds occur");
    eprintln!(
        "convergence through the relay: {count} schedules, {deliveries} deliveries in {:.1}s, seed {seed:#x}",
        started.elapsed().as_secs_f64()
    );
}

/// A row the application created at signup, before Clerk confirmed it,
/// claimed by `link_by` (`external_id` or `email`).
fn pending_row(id: &str, email: &str, link_by: &str) {
    let (s, r) = api().create_user(
        &json!({"id": id, "email": email, "first_name": "Pending", "link_by": link_by}),
    );
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["user"]["sync_status"], "pending");
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn pending_rows_are_linked_by_external_id_and_by_email() {
    let relay = relay();
    let tag = std::process::id();
    let (by_ext, by_email) = (format!("app_ext_{tag}"), format!("app_mail_{tag}"));
    let mail = format!("pending.{tag}@example.com");
    pending_row(&by_ext, &format!("signup.{tag}@example.com"), "external_id");
    pending_row(&by_email, &mail, "email");

    let clerk_a = format!("user_link_ext_{tag}");
    let body = user_event(
        "user.created",
        &clerk_a,
        T0,
        Some(&format!("clerk.{tag}@example.com")),
        Some(&by_ext),
    );
    assert_eq!(deliver(&relay, &msg_id("link"), &body).0, 200);
    let u = api().user(&clerk_a).1;
    assert_eq!(u["user"]["id"], json!(by_ext), "linked, not a new row: {u}");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(
        u["user"]["email"],
        json!(format!("clerk.{tag}@example.com"))
    );

    // An email claims only for a Clerk user created after the signup (an
    // invitation is for an account to come): one created a minute from now.
    let later = unix_now() as i64 * 1000 + 60_000;
    let clerk_b = format!("user_link_mail_{tag}");
    let mut body: Json = serde_json::from_slice(&user_event(
        "user.created",
        &clerk_b,
        later,
        Some(&mail),
        None,
    ))
    .unwrap();
    body["data"]["created_at"] = json!(later);
    let body = body.to_string().into_bytes();
    assert_eq!(deliver(&relay, &msg_id("link"), &body).0, 200);
    let u = api().user(&clerk_b).1;
    assert_eq!(u["user"]["id"], json!(by_email), "{u}");
    assert_eq!(u["user"]["sync_status"], "synced");
    assert_eq!(u["user"]["first_name"], format!("First{later}"));
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn bearer_and_repeats_at_the_api() {
    let tag = std::process::id();
    let op = format!("msg_auth_{tag}");
    let clerk_id = format!("user_auth_{tag}");
    let command = json!({
        "version": 1, "command": "upsert_user", "operation_id": op,
        "event_type": "user.created", "occurred_at": contract_time(T0),
        "received_at": contract_time(T0 + 1), "clerk_id": clerk_id,
        "user": {"email": format!("auth.{tag}@example.com"), "email_verified": true,
                 "first_name": "A", "last_name": null, "username": null, "image_url": null,
                 "external_id": null, "created_at": contract_time(T0),
                 "updated_at": contract_time(T0)}
    });
    let url = format!("{}/internal/clerk-sync", api().url);
    let body = command.to_string();
    for auth in [None, Some("Bearer wrong"), Some("test-api-secret")] {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if let Some(a) = auth {
            headers.push(("authorization".into(), a.into()));
        }
        let (s, r) = post(&url, &headers, body.as_bytes());
        assert_eq!((s, &r["error"]), (401, &json!("unauthorized")), "{auth:?}");
    }
    let (s, _) = get_with(&format!("{}/internal/users/{clerk_id}", api().url), &[]);
    assert_eq!(s, 401);
    let (s, _) = get_with(&format!("{}/internal/sync/status", api().url), &[]);
    assert_eq!(s, 401);
    // 404: no row, no tombstone, not even an audit row.
    assert_eq!(api().user(&clerk_id).0, 404, "nothing written");

    let (s, r) = api().sync(&command);
    assert_eq!((s, &r["outcome"]), (200, &json!("applied")), "{r}");
    let before = api().user(&clerk_id).1["user"].clone();
    let mut changed = command.clone();
    changed["user"]["first_name"] = json!("Changed");
    let (s, r) = api().sync(&changed);
    assert_eq!((s, &r["error"]), (409, &json!("already_applied")), "{r}");
    assert_eq!(
        api().user(&clerk_id).1["user"],
        before,
        "a repeat changes nothing"
    );

    let mut bad = command.clone();
    bad["operation_id"] = json!(format!("msg_bad_{tag}"));
    bad["occurred_at"] = json!("2026-01-01 00:00:00");
    let (s, r) = api().sync(&bad);
    assert_eq!((s, &r["error"]), (400, &json!("invalid_command")), "{r}");
    assert_eq!(outcomes(&clerk_id), ["rejected", "duplicate", "applied"]);
    let trail = api().user(&clerk_id).1["audit"].clone();
    assert!(trail[0]["error"].as_str().unwrap().contains("occurred_at"));
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn two_clerk_users_with_one_address_the_newer_shows_it_and_nothing_freezes() {
    let relay = relay();
    let tag = std::process::id();
    let shared = format!("shared.{tag}@example.com");
    let (a, b) = (format!("user_owner_{tag}"), format!("user_claim_{tag}"));
    let owner = user_event("user.created", &a, T0, Some(&shared), None);
    assert_eq!(deliver(&relay, &msg_id("owner"), &owner).0, 200);
    assert_eq!(api().user(&a).1["user"]["email"], json!(shared));

    // A second Clerk user with the same address, newer: Clerk is the
    // authority, so the change applies (no 422, no Svix retry loop); the
    // older row gives the address up and says why until its own next change.
    let claim_id = msg_id("claim");
    let claim = user_event("user.created", &b, T0 + 5, Some(&shared), None);
    let (s, r) = deliver(&relay, &claim_id, &claim);
    assert_eq!(s, 200, "{r}");
    let ub = api().user(&b).1;
    assert_eq!(ub["sync_status"], "synced", "{ub}");
    assert_eq!(ub["user"]["email"], json!(shared));
    let ua = api().user(&a).1;
    assert_eq!(ua["sync_status"], "failed", "{ua}");
    assert_eq!(ua["user"]["email"], Json::Null, "{ua}");
    let error = ua["user"]["sync_error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "a reason a person can act on: {ua}");
    assert!(
        !error.contains(&shared),
        "no address in the reason: {error}"
    );
    assert!(api().status()["failed_users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["clerk_id"] == json!(a)));

    // Svix retries the same message: taken, nothing changes.
    assert_eq!(deliver(&relay, &claim_id, &claim).0, 200);
    assert_eq!(api().user(&b).1["user"], ub["user"]);

    // The owner's next change (a new address) applies and heals its row.
    let moved_to = format!("moved.{tag}@example.com");
    let moved = user_event("user.updated", &a, T0 + 10, Some(&moved_to), None);
    assert_eq!(deliver(&relay, &msg_id("move"), &moved).0, 200);
    let ua = api().user(&a).1;
    assert_eq!(ua["sync_status"], "synced", "{ua}");
    assert_eq!(ua["user"]["sync_error"], Json::Null);
    assert_eq!(ua["user"]["email"], json!(moved_to));
    let ub = api().user(&b).1;
    assert_eq!(
        (ub["sync_status"].clone(), ub["user"]["email"].clone()),
        (json!("synced"), json!(shared))
    );
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn the_status_endpoint_shows_the_dashboard_data() {
    let relay = relay();
    let tag = std::process::id();
    let clerk_id = format!("user_status_{tag}");
    let id = msg_id("status");
    let body = user_event("user.created", &clerk_id, T0, None, None);
    assert_eq!(deliver(&relay, &id, &body).0, 200);
    let s = api().status();
    for key in ["synced", "pending", "failed"] {
        assert!(s["users"]["by_sync_status"][key].is_u64(), "{s}");
    }
    assert!(s["users"]["total"].as_u64().unwrap() >= 1);
    assert!(s["latest_failures"].is_array());
    assert!(s["last_applied_operation"]["operation_id"].is_string());
    // wrangler prints the Worker's log lines as they come.
    let needle = format!("\"operation_id\":\"{id}\"");
    wait_until(LOG_TIMEOUT, || api().logs().contains(&needle));
    let logs = api().logs();
    assert!(
        logs.contains(&format!("\"operation_id\":\"{id}\"")),
        "one log line per request"
    );
    assert!(!logs.contains(DEV_API_SECRET), "the bearer is never logged");
    assert!(!logs.contains("@example.com"), "no email is logged");
}

// ---- the API's own edge: a chunked body over its limit ----------------------

/// The API's body limit (`request::MAX_BODY_BYTES`).
const API_MAX_BODY: usize = 65_536;

/// An `upsert_user` command for a fresh Clerk id, as the relay sends it.
fn upsert_command(tag: &str) -> (String, Json) {
    let clerk_id = format!("user_{tag}_{}", std::process::id());
    let command = json!({
        "version": 1, "command": "upsert_user",
        "operation_id": format!("msg_{tag}_{}", std::process::id()),
        "event_type": "user.created", "occurred_at": contract_time(T0),
        "received_at": contract_time(T0 + 1), "clerk_id": clerk_id,
        "user": {"email": null, "email_verified": false, "first_name": "Chunked",
                 "last_name": null, "username": null, "image_url": null,
                 "external_id": null, "created_at": contract_time(T0),
                 "updated_at": contract_time(T0)}
    });
    (clerk_id, command)
}

/// The same command, its JSON padded with whitespace to `len` bytes.
fn padded(command: &Json, len: usize) -> Vec<u8> {
    let text = command.to_string();
    let mut body = b"{".to_vec();
    body.resize(len.saturating_sub(text.len() - 1), b' ');
    body.extend_from_slice(&text.as_bytes()[1..]);
    assert_eq!(body.len(), len.max(text.len()));
    body
}

/// `POST /internal/clerk-sync` with the bearer, written on a raw socket with
/// `transfer-encoding: chunked` (16 KiB chunks) and no `content-length`: a
/// length the API cannot check before it reads.
fn sync_chunked(body: &[u8]) -> RawResponse {
    let port = api().port;
    let head = format!(
        "POST /internal/clerk-sync HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
         authorization: Bearer {DEV_API_SECRET}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let mut chunks: Vec<Vec<u8>> = body.chunks(16 * 1024).map(chunk).collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    raw_request_streaming(port, head.as_bytes(), chunks, Duration::ZERO).expect("the API answered")
}

#[test]
#[ignore = "needs the built worker and wrangler: scripts/test.sh"]
fn a_chunked_body_over_the_limit_is_413_and_nothing_is_applied() {
    // The control: chunked and under the limit, applied.
    let (under_id, under) = upsert_command("chunked_under");
    let r = sync_chunked(&padded(&under, API_MAX_BODY - 1_000));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["outcome"], "applied");
    assert_eq!(api().user(&under_id).1["user"]["sync_status"], "synced");

    // Over the limit by half: refused as it arrives.
    let (over_id, over) = upsert_command("chunked_over");
    let r = sync_chunked(&padded(&over, API_MAX_BODY + API_MAX_BODY / 2));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (413, Some("payload_too_large")),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // Under `wrangler dev`, the next request hangs for up to about a minute
    // after a client closes while the refused rest of its chunked body is
    // unread (reproduced by hand: the hung request never logs; a client
    // that waits for the server's close does not meet it; the cause is not
    // known). So the check waits, bounded.
    let url = format!("{}/internal/users/{over_id}", api().url);
    let mut answer = None;
    let answered = wait_until(Duration::from_secs(150), || {
        answer = try_get_with(&url, &MainApi::bearer(), Duration::from_secs(10));
        answer.is_some()
    });
    assert!(answered, "the API answers again");
    let (s, u) = answer.unwrap();
    assert_eq!(s, 404, "nothing applied, nothing recorded for it: {u}");
    // Nor was its operation id taken: the same command, small, is applied
    // (not answered 409 as a repeat).
    let (s, r) = api().sync(&over);
    assert_eq!((s, &r["outcome"]), (200, &json!("applied")), "{r}");
}
