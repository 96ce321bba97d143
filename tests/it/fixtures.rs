//! Every payload in `tests/fixtures/` (copied from Clerk's docs, dashboard,
//! OpenAPI examples, a captured delivery and the seed's curl body), signed
//! and run through the relay's pipeline, must map to its expected command.

use clerk_sync::config::Config;
use clerk_sync::event::Mapped;
use clerk_sync::relay::process;
use clerk_sync::UnixMillis;
use serde_json::{json, Value};

use crate::signing::signed;

pub const ALL: [&str; 8] = [
    "captured_user_created.json",
    "dashboard_user_deleted.json",
    "dashboard_user_updated.json",
    "docs_user_created.json",
    "openapi_user_created.json",
    "openapi_user_deleted.json",
    "openapi_user_updated.json",
    "seed_curl_user_created.json",
];

pub fn load(name: &str) -> Vec<u8> {
    clerk_sync_testkit::fixture(name)
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIGNED_AT: u64 = 1_700_000_000; // 2023-11-14T22:13:20Z
const NOW: UnixMillis = UnixMillis(1_700_000_000_123);
const RECEIVED: &str = "2023-11-14T22:13:20.123Z";

fn config() -> Config {
    Config::from_lookup(|k| {
        Some(match k {
            "CLERK_WEBHOOK_SECRET" => SECRET.into(),
            "WEBHOOK_QUERY_SECRET" => "q".into(),
            "API_SECRET" => "a".into(),
            _ => return None,
        })
    })
    .unwrap()
}

fn command_for(name: &str) -> Value {
    let body = load(name);
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let headers = signed(SECRET, id, SIGNED_AT, &body);
    match process(&config(), &headers, body, NOW).unwrap().mapped {
        Mapped::Forward(c) => serde_json::from_slice(&c.to_json()).unwrap(),
        other => panic!("{name}: expected a command, got {other:?}"),
    }
}

fn upsert(event_type: &str, occurred_at: &str, clerk_id: &str, user: Value) -> Value {
    json!({
        "version": 1,
        "command": "upsert_user",
        "operation_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "event_type": event_type,
        "occurred_at": occurred_at,
        "received_at": RECEIVED,
        "clerk_id": clerk_id,
        "user": user,
    })
}

fn delete(occurred_at: &str, clerk_id: &str, external_id: Option<&str>) -> Value {
    let mut v = json!({
        "version": 1,
        "command": "delete_user",
        "operation_id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "event_type": "user.deleted",
        "occurred_at": occurred_at,
        "received_at": RECEIVED,
        "clerk_id": clerk_id,
        "user": null,
    });
    if let Some(x) = external_id {
        v["external_id"] = json!(x);
    }
    v
}

#[test]
fn docs_user_created_is_the_contract_example() {
    assert_eq!(
        command_for("docs_user_created.json"),
        upsert(
            "user.created",
            "2022-05-31T15:56:31.835Z",
            "user_29w83sxmDNGwOuEthce5gg56FcC",
            json!({
                "email": "example@example.org", "email_verified": true,
                "first_name": "Example", "last_name": "Example", "username": null,
                "image_url": "https://img.clerk.com/xxxxxx", "external_id": "567772",
                "created_at": "2022-05-31T15:56:31.514Z", "updated_at": "2022-05-31T15:56:31.835Z"
            })
        )
    );
}

#[test]
fn captured_user_created() {
    assert_eq!(
        command_for("captured_user_created.json"),
        upsert(
            "user.created",
            "2025-04-10T09:13:13.644Z",
            "user_2vX11zP5ojq7cTRY58xT6oJqmRG",
            json!({
                "email": "new.user@example.com", "email_verified": true,
                "first_name": null, "last_name": null, "username": null,
                "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCIsImlpZCI6Imluc18ydlUzZkJoeDQ3eWVkZHFLaGQ1dGFUYlVZSUQiLCJyaWQiOiJ1c2VyXzJ2WDExelA1b2pxN2NUUlk1OHhUNm9KcW1SRyJ9",
                "external_id": null,
                "created_at": "2025-04-10T09:13:13.608Z", "updated_at": "2025-04-10T09:13:13.626Z"
            })
        )
    );
}

#[test]
fn dashboard_user_updated_without_instance_id() {
    assert_eq!(
        command_for("dashboard_user_updated.json"),
        upsert(
            "user.updated",
            "2022-05-31T16:00:24.306Z",
            "user_29w83sxmDNGwOuEthce5gg56FcC",
            json!({
                "email": "example@example.org", "email_verified": true,
                "first_name": "Example", "last_name": null, "username": "tanaka taro",
                "image_url": "https://img.clerk.com/xxxxxx", "external_id": null,
                "created_at": "2022-05-31T15:56:31.514Z", "updated_at": "2022-05-31T16:00:24.306Z"
            })
        )
    );
}

#[test]
fn dashboard_user_deleted() {
    assert_eq!(
        command_for("dashboard_user_deleted.json"),
        delete(
            "2022-08-30T12:14:00.000Z",
            "user_29w83sxmDNGwOuEthce5gg56FcC",
            None
        )
    );
}

#[test]
fn openapi_examples_have_seconds_timestamps_and_a_missing_primary_email() {
    assert_eq!(
        command_for("openapi_user_created.json"),
        upsert(
            "user.created",
            "2024-05-28T08:00:00.000Z",
            "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            json!({
                "email": null, "email_verified": false,
                "first_name": "John", "last_name": "Doe", "username": null,
                "image_url": "https://img.clerk.com/xxxxxx", "external_id": null,
                "created_at": "2024-05-28T08:00:00.000Z", "updated_at": "2024-05-28T08:00:00.000Z"
            })
        )
    );
    assert_eq!(
        command_for("openapi_user_updated.json"),
        upsert(
            "user.updated",
            "2024-05-28T08:00:00.000Z",
            "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            json!({
                "email": null, "email_verified": false,
                "first_name": "John", "last_name": "Doe Updated", "username": "johndoe",
                "image_url": "https://img.clerk.com/yyyyy", "external_id": null,
                "created_at": "2024-05-28T08:00:00.000Z", "updated_at": "2024-05-28T08:05:00.000Z"
            })
        )
    );
    assert_eq!(
        command_for("openapi_user_deleted.json"),
        delete(
            "2024-05-28T08:00:00.000Z",
            "user_2g7np7Hrk0SN6kj5EDMLDaKNL0S",
            Some("ex_123456789")
        )
    );
}

#[test]
fn seed_curl_body_takes_the_first_address_and_the_signature_time() {
    assert_eq!(
        command_for("seed_curl_user_created.json"),
        upsert(
            "user.created",
            "2023-11-14T22:13:20.000Z",
            "test_id",
            json!({
                "email": "test@example.com", "email_verified": false,
                "first_name": "Test", "last_name": "User", "username": null,
                "image_url": null, "external_id": null,
                "created_at": "2024-01-05T04:46:40.000Z", "updated_at": "2024-01-05T04:46:40.000Z"
            })
        )
    );
}

#[test]
fn every_fixture_is_covered() {
    let mut on_disk: Vec<String> =
        std::fs::read_dir(format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json") && !n.starts_with("large_"))
            .collect();
    on_disk.sort();
    assert_eq!(on_disk, ALL.to_vec());
    for name in ALL {
        let c = command_for(name);
        assert_eq!(c["version"], 1, "{name}");
    }
}
