//! Issue 10's first three sequences in the real runtime: signed Clerk
//! deliveries through the built relay (workerd) into this API under
//! `wrangler dev` with a local D1, read back through the API. The same
//! rules as `linking.rs`, on D1's SQLite instead of the native one.
//!
//! Needs the relay bundle in `dist/` and wrangler from `npm ci`: ignored by
//! a plain `cargo test`, run by `scripts/test.sh`. Every id and address
//! carries the process id: the API process and its D1 are shared.

use std::sync::atomic::{AtomicU64, Ordering};

use clerk_sync_testkit::prelude::*;
use serde_json::{json, Value as Json};

/// The one API process of the test binary, shared with `through_relay`
/// (each test uses Clerk ids and addresses of its own).
use crate::through_relay::api;

fn relay() -> Workerd {
    Workerd::serve_relay(&relay_bindings(&api().url))
}

fn tag() -> String {
    format!("d1{}", std::process::id())
}

/// A signed delivery of one Clerk event with a fresh svix-id: the relay's
/// status (200: the API took it).
fn deliver(relay: &Workerd, event: &Json) -> u16 {
    static N: AtomicU64 = AtomicU64::new(0);
    let id = format!("msg_link_{}_{}", tag(), N.fetch_add(1, Ordering::SeqCst));
    let body = event.to_string().into_bytes();
    let url = format!("{}/webhook?secret={DEV_QUERY_SECRET}", relay.base_url);
    let (status, reply) = post(&url, &svix_headers(&id, &body), &body);
    assert!(status == 200 || status >= 500, "{status}: {reply}");
    status
}

/// One version of a Clerk user, as Clerk's webhook carries it.
#[derive(Clone)]
struct Version {
    event_type: &'static str,
    clerk_id: String,
    created_ms: i64,
    updated_ms: i64,
    email: Option<String>,
    verified: bool,
    external_id: Option<String>,
}

impl Version {
    fn created(clerk_id: &str, created_ms: i64, email: &str) -> Self {
        Version {
            event_type: "user.created",
            clerk_id: clerk_id.into(),
            created_ms,
            updated_ms: created_ms,
            email: Some(email.into()),
            verified: true,
            external_id: None,
        }
    }

    fn updated(&self, updated_ms: i64) -> Self {
        Version {
            event_type: "user.updated",
            updated_ms,
            ..self.clone()
        }
    }

    fn first_name(&self) -> String {
        format!("First{}", self.updated_ms)
    }

    fn event(&self) -> Json {
        let status = if self.verified {
            "verified"
        } else {
            "unverified"
        };
        let emails: Vec<Json> = self
            .email
            .iter()
            .map(|e| {
                json!({"id": "idn_1", "object": "email_address", "email_address": e,
                       "verification": {"status": status, "strategy": "email_code"}})
            })
            .collect();
        json!({
            "type": self.event_type,
            "object": "event",
            "timestamp": self.updated_ms,
            "data": {
                "id": self.clerk_id,
                "object": "user",
                "email_addresses": emails,
                "primary_email_address_id": self.email.as_ref().map(|_| "idn_1"),
                "first_name": self.first_name(),
                "last_name": "Last",
                "username": null,
                "image_url": null,
                "external_id": self.external_id,
                "created_at": self.created_ms,
                "updated_at": self.updated_ms,
            }
        })
    }
}

/// `POST /internal/users`: the application's signup.
fn signup(id: &str, email: &str, link_by: &str) {
    let (s, r) = api().create_user(
        &json!({"id": id, "email": email, "first_name": "Pending", "link_by": link_by}),
    );
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["user"]["link_by"], link_by);
}

/// The Clerk user's row, as `GET /internal/users/:clerk_id` shows it.
fn row_of(clerk_id: &str) -> Json {
    let (s, u) = api().user(clerk_id);
    assert_eq!(s, 200, "{u}");
    u["user"].clone()
}

/// A failed row of the status page, by its id.
fn failed_row(id: &str) -> Option<Json> {
    api().status()["failed_users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
}

/// Clerk users of these tests are created a minute from now: after the
/// signups, at the API's clock.
fn later() -> i64 {
    unix_now() as i64 * 1000 + 60_000
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_row_written_first_never_blocks_the_link_through_d1() {
    let relay = relay();
    let t = tag();
    // An invitation; its user signs up with the address unverified first.
    let (app, email) = (format!("app_inv_{t}"), format!("v.{t}@example.com"));
    signup(&app, &email, "email");
    let user_a = format!("user_inv_{t}");
    let mut created = Version::created(&user_a, later(), &email);
    created.verified = false;
    assert_eq!(deliver(&relay, &created.event()), 200);
    let own = row_of(&user_a);
    assert_ne!(own["id"], json!(app), "not claimed unverified: {own}");
    assert_eq!(own["email"], json!(email), "and not refused either");
    let conflict = failed_row(&app).expect("the signup records the conflict");
    let error = conflict["sync_error"].as_str().unwrap();
    assert!(error.contains(&user_a), "{error}");

    let mut verified = created.updated(created.updated_ms + 1_000);
    verified.verified = true;
    assert_eq!(deliver(&relay, &verified.event()), 200);
    let row = row_of(&user_a);
    assert_eq!(row["id"], json!(app), "claimed: {row}");
    assert_eq!(row["sync_status"], "synced");
    assert_eq!(row["email"], json!(email));
    assert!(failed_row(&app).is_none());
    let renamed = verified.updated(verified.updated_ms + 1_000);
    assert_eq!(deliver(&relay, &renamed.event()), 200);
    assert_eq!(row_of(&user_a)["first_name"], renamed.first_name());

    // The external id is set in Clerk after a first create applied alone.
    let app_b = format!("app_ext_{t}");
    signup(&app_b, &format!("p.{t}@example.com"), "external_id");
    let user_b = format!("user_ext_{t}");
    let first = Version::created(&user_b, later(), &format!("b.{t}@example.com"));
    assert_eq!(deliver(&relay, &first.event()), 200);
    assert_ne!(row_of(&user_b)["id"], json!(app_b));
    let mut with_id = first.updated(first.updated_ms + 1_000);
    with_id.external_id = Some(app_b.clone());
    assert_eq!(deliver(&relay, &with_id.event()), 200);
    let row = row_of(&user_b);
    assert_eq!(
        (&row["id"], &row["sync_status"]),
        (&json!(app_b), &json!("synced"))
    );
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn email_linking_never_hands_an_account_to_another_user_through_d1() {
    let relay = relay();
    let t = tag();
    let (app, e, f) = (
        format!("app_own_{t}"),
        format!("e.{t}@example.com"),
        format!("f.{t}@example.com"),
    );
    signup(&app, &e, "external_id");
    let (user_a, user_b) = (format!("user_own_a_{t}"), format!("user_own_b_{t}"));
    let mut a1 = Version::created(&user_a, later(), &e);
    a1.external_id = Some(app.clone());
    let mut a2 = a1.updated(a1.updated_ms + 1_000);
    a2.email = Some(f.clone());
    let b1 = Version::created(&user_b, a2.updated_ms + 1_000, &e);
    // A's first event is late: B's comes first, then A's change, then A's
    // creation. Every answer is 2xx, and app is never B's.
    assert_eq!(deliver(&relay, &b1.event()), 200);
    assert_ne!(row_of(&user_b)["id"], json!(app));
    assert_eq!(deliver(&relay, &a2.event()), 200);
    assert_eq!(row_of(&user_a)["id"], json!(app));
    assert_eq!(deliver(&relay, &a1.event()), 200);
    let a = row_of(&user_a);
    assert_eq!((&a["id"], &a["email"]), (&json!(app), &json!(f)));
    let b = row_of(&user_b);
    assert_eq!((&b["email"], &b["link_by"]), (&json!(e), &Json::Null));
    assert_eq!(b["sync_status"], "synced");
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_signup_never_freezes_a_linked_user_through_d1() {
    let relay = relay();
    let t = tag();
    let user_u = format!("user_frz_{t}");
    let before = unix_now() as i64 * 1000 - 3_600_000;
    let u1 = Version::created(&user_u, before, &format!("a.{t}@example.com"));
    assert_eq!(deliver(&relay, &u1.event()), 200);
    // Anyone starts a signup with an address; u then takes it in Clerk.
    let (app, new) = (format!("app_frz_{t}"), format!("new.{t}@example.com"));
    signup(&app, &new, "email");
    let mut u2 = u1.updated(unix_now() as i64 * 1000);
    u2.email = Some(new.clone());
    assert_eq!(deliver(&relay, &u2.event()), 200, "applied, not refused");
    let row = row_of(&user_u);
    assert_eq!(
        (&row["email"], &row["sync_status"]),
        (&json!(new), &json!("synced"))
    );
    let conflict = failed_row(&app).expect("the signup records the conflict");
    assert!(
        conflict["sync_error"]
            .as_str()
            .unwrap()
            .starts_with(&format!("the email is used by Clerk user {user_u}")),
        "{conflict}"
    );
    // Every later update of u applies.
    let u3 = u2.updated(u2.updated_ms + 1_000);
    assert_eq!(deliver(&relay, &u3.event()), 200);
    assert_eq!(row_of(&user_u)["first_name"], u3.first_name());
}
