//! The built relay in the real runtime (workerd), against a recording
//! stand-in main API. Needs `dist/` from `scripts/test.sh`; ignored by a
//! plain `cargo test`.

use std::time::Duration;

use serde_json::json;

use crate::fixtures;
use clerk_sync_testkit::prelude::*;

fn relay_for(api: &StandIn) -> Workerd {
    Workerd::serve_relay(&relay_bindings(&api.url))
}

fn webhook_url(w: &Workerd) -> String {
    format!("{}/webhook?secret={DEV_QUERY_SECRET}", w.base_url)
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn the_three_user_events_are_forwarded_with_the_contract() {
    let api = StandIn::start();
    let relay = relay_for(&api);
    let cases = [
        ("docs_user_created.json", "upsert_user", "user.created"),
        ("dashboard_user_updated.json", "upsert_user", "user.updated"),
        ("openapi_user_deleted.json", "delete_user", "user.deleted"),
    ];
    for (n, (fixture, command, event_type)) in cases.iter().enumerate() {
        let body = fixtures::load(fixture);
        let id = format!("msg_e2e_{n}");
        let (status, reply) = post(&webhook_url(&relay), &svix_headers(&id, &body), &body);
        assert_eq!(status, 200, "{fixture}: {reply}");
        assert_eq!(
            reply,
            json!({"ok": true, "forwarded": true, "operation_id": id, "command": command})
        );

        let got = api.received().pop().expect("forwarded");
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/internal/clerk-sync");
        assert_eq!(
            got.header("authorization"),
            Some(format!("Bearer {DEV_API_SECRET}").as_str())
        );
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header("idempotency-key"), Some(id.as_str()));
        assert_eq!(
            got.header("user-agent"),
            Some(format!("clerk-sync/{}", clerk_sync::VERSION).as_str())
        );
        let cmd = got.json();
        assert_eq!(cmd["version"], 1);
        assert_eq!(cmd["command"], *command);
        assert_eq!(cmd["event_type"], *event_type);
        assert_eq!(cmd["operation_id"], id);
    }
    let docs = &api.received()[0].json();
    assert_eq!(docs["user"]["email"], "example@example.org");
    assert_eq!(docs["user"]["created_at"], "2022-05-31T15:56:31.514Z");
    assert_eq!(api.received()[2].json()["external_id"], "ex_123456789");
    assert_eq!(api.received().len(), 3);
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn webhook_family_headers_and_409_count_as_taken() {
    let api = StandIn::start();
    api.set(Behaviour::Status(409));
    let relay = relay_for(&api);
    let body = fixtures::load("captured_user_created.json");
    let headers: Vec<(String, String)> = svix_headers("msg_409", &body)
        .into_iter()
        .map(|(k, v)| (k.replace("svix-", "webhook-"), v))
        .collect();
    let (status, reply) = post(&webhook_url(&relay), &headers, &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["forwarded"], true);
    assert_eq!(api.received().len(), 1);
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn other_event_types_are_acknowledged_and_not_forwarded() {
    let api = StandIn::start();
    let relay = relay_for(&api);
    let body = br#"{"type":"session.created","object":"event","data":{"id":"sess_1"}}"#;
    let (status, reply) = post(
        &webhook_url(&relay),
        &svix_headers("msg_ignored", body),
        body,
    );
    assert_eq!((status, reply), (200, json!({"ok": true, "ignored": true})));
    assert!(api.received().is_empty());
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn failed_checks_are_not_forwarded() {
    let api = StandIn::start();
    let relay = relay_for(&api);
    let body = fixtures::load("docs_user_created.json");
    let good = svix_headers("msg_checks", &body);
    let url = |q: &str| format!("{}/webhook{q}", relay.base_url);

    type Case = (String, Vec<(String, String)>, Vec<u8>, u16, &'static str);
    let cases: Vec<Case> = vec![
        (
            url("?secret=wrong"),
            good.clone(),
            body.clone(),
            401,
            "unauthorized",
        ),
        (url(""), good.clone(), body.clone(), 401, "unauthorized"),
        (
            url(&format!("?secret={DEV_QUERY_SECRET}")),
            vec![],
            body.clone(),
            401,
            "missing_signature_headers",
        ),
        (
            url(&format!("?secret={DEV_QUERY_SECRET}")),
            with_header(&good, "svix-signature", "v1,"),
            body.clone(),
            401,
            "invalid_signature",
        ),
        (
            url(&format!("?secret={DEV_QUERY_SECRET}")),
            good.clone(),
            [body.as_slice(), b" "].concat(),
            401,
            "invalid_signature",
        ),
        (
            url(&format!("?secret={DEV_QUERY_SECRET}")),
            with_header(&good, "svix-timestamp", "1614265330"),
            body.clone(),
            401,
            "timestamp_out_of_tolerance",
        ),
        (
            url(&format!("?secret={DEV_QUERY_SECRET}")),
            with_header(&good, "svix-timestamp", "0x10"),
            body.clone(),
            401,
            "invalid_timestamp",
        ),
    ];
    for (u, headers, body, status, code) in cases {
        let (got, reply) = post(&u, &headers, &body);
        assert_eq!(
            (got, reply["error"].as_str()),
            (status, Some(code)),
            "{reply}"
        );
        assert_eq!(reply["ok"], false);
    }
    let not_json = b"not json".to_vec();
    let (got, reply) = post(
        &webhook_url(&relay),
        &svix_headers("msg_nj", &not_json),
        &not_json,
    );
    assert_eq!((got, reply["error"].as_str()), (400, Some("invalid_json")));
    let no_id = br#"{"type":"user.created","data":{"first_name":"x"}}"#;
    let (got, reply) = post(
        &webhook_url(&relay),
        &svix_headers("msg_noid", no_id),
        no_id,
    );
    assert_eq!(
        (got, reply["error"].as_str()),
        (400, Some("invalid_payload"))
    );
    assert!(api.received().is_empty(), "nothing may be forwarded");
}

fn with_header(h: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == name {
                    value.to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn upstream_failures_answer_5xx() {
    let api = StandIn::start();
    // A timeout the prompt 500 cannot reach on a busy machine, and a slow
    // answer far beyond it: the relay answers at the timeout, not at 30 s.
    let relay = Workerd::serve_relay(&with_binding(
        relay_bindings(&api.url),
        "FORWARD_TIMEOUT_MS",
        "2000",
    ));
    let body = fixtures::load("dashboard_user_deleted.json");
    let send = |id: &str| post(&webhook_url(&relay), &svix_headers(id, &body), &body);

    api.set(Behaviour::Status(500));
    let (s, r) = send("msg_500");
    assert_eq!((s, r["error"].as_str()), (502, Some("upstream_rejected")));
    assert!(r["message"].as_str().unwrap().contains("500"));

    api.set(Behaviour::Delay(Duration::from_secs(30), 200));
    let (s, r) = send("msg_slow");
    assert_eq!((s, r["error"].as_str()), (504, Some("upstream_timeout")));
    assert_eq!(api.received().len(), 2);

    let refused = free_port();
    let relay2 = Workerd::serve_relay(&relay_bindings(&format!("http://127.0.0.1:{refused}")));
    let (s, r) = post(
        &webhook_url(&relay2),
        &svix_headers("msg_refused", &body),
        &body,
    );
    assert_eq!(
        (s, r["error"].as_str()),
        (502, Some("upstream_unavailable"))
    );
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn health_routes_and_misconfiguration() {
    let api = StandIn::start();
    let relay = relay_for(&api);
    let (s, body, _) = get(&format!("{}/health", relay.base_url));
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(body["signing_secrets"], 1, "{body}");
    // No switch that says which protection is off.
    for gone in ["allow_unsigned", "forward_timeout_ms", "max_body_bytes"] {
        assert!(body.get(gone).is_none(), "{gone} in {body}");
    }
    let (s, _, headers) = get(&format!("{}/webhook", relay.base_url));
    assert_eq!(s, 405);
    assert!(headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("allow") && v == "POST"));
    let (s, body, _) = get(&format!("{}/nope", relay.base_url));
    assert_eq!((s, body["error"].as_str()), (404, Some("not_found")));

    let broken = with_binding(
        relay_bindings(&api.url),
        "CLERK_WEBHOOK_SECRET",
        "whsec_definitely-not-base64!",
    );
    let broken = with_binding(broken, "API_SECRET", "");
    let relay = Workerd::serve_relay(&broken);
    let (s, body, _) = get(&format!("{}/health", relay.base_url));
    assert_eq!(s, 503);
    let names: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["variable"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["CLERK_WEBHOOK_SECRET", "API_SECRET"]);
    assert!(!body.to_string().contains("definitely"));
    let b = fixtures::load("docs_user_created.json");
    let (s, r) = post(&webhook_url(&relay), &svix_headers("msg_mc", &b), &b);
    assert_eq!((s, r["error"].as_str()), (500, Some("misconfigured")));
    let logs = relay.logs();
    assert!(
        logs.contains("\"misconfigured\":[\"CLERK_WEBHOOK_SECRET\",\"API_SECRET\"]"),
        "{logs}"
    );
    assert!(!logs.contains("definitely-not-base64"));
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn without_the_resync_binding_admin_is_503_and_health_says_off() {
    let api = StandIn::start();
    let relay = relay_for(&api);
    let (s, body, _) = get(&format!("{}/health", relay.base_url));
    assert_eq!((s, body["resync"].as_str()), (200, Some("off")), "{body}");
    assert!(body.get("resync_problems").is_none(), "{body}");

    let admin = vec![
        (
            "authorization".to_string(),
            "Bearer admin-marker-5c1d".to_string(),
        ),
        ("content-type".to_string(), "application/json".to_string()),
    ];
    let url = format!("{}/admin/resync?mode=full", relay.base_url);
    let (s, r) = post(&url, &admin, br#"{"dry_run":true}"#);
    assert_eq!(
        (s, r["error"].as_str(), r["message"].as_str()),
        (
            503,
            Some("resync_unconfigured"),
            Some("re-sync is not configured")
        )
    );
    let (s, r, _) = get(&format!("{}/admin/runs/1", relay.base_url));
    assert_eq!((s, r["error"].as_str()), (503, Some("resync_unconfigured")));

    // A misconfigured relay does not hide re-sync's own answer behind a 500.
    let broken = Workerd::serve_relay(&with_binding(relay_bindings(&api.url), "API_SECRET", ""));
    let (s, r) = post(&format!("{}/admin/resync", broken.base_url), &admin, b"{}");
    assert_eq!((s, r["error"].as_str()), (503, Some("resync_unconfigured")));
    let (s, body, _) = get(&format!("{}/health", broken.base_url));
    assert_eq!((s, body["resync"].as_str()), (503, Some("off")));

    let lines = relay.wait_for_log_lines(3);
    let admin_lines: Vec<_> = lines.iter().filter(|l| l["path"] == "admin").collect();
    assert_eq!(admin_lines.len(), 2, "{lines:?}");
    assert_eq!(admin_lines[0]["status"], 503);
    assert_eq!(admin_lines[0]["method"], "POST");
    let logs = relay.logs();
    for absent in ["admin-marker-5c1d", "mode=full", "dry_run", "/admin/resync"] {
        assert!(!logs.contains(absent), "{absent} in {logs}");
    }
    assert!(api.received().is_empty());
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn unsigned_curl_is_accepted_only_when_allowed() {
    let api = StandIn::start();
    let body = fixtures::load("seed_curl_user_created.json");
    let plain = vec![("content-type".to_string(), "application/json".to_string())];

    let strict = relay_for(&api);
    let (s, r) = post(&webhook_url(&strict), &plain, &body);
    assert_eq!(
        (s, r["error"].as_str()),
        (401, Some("missing_signature_headers"))
    );

    let lax = Workerd::serve_relay(&with_binding(
        relay_bindings(&api.url),
        "ALLOW_UNSIGNED_WEBHOOKS",
        "true",
    ));
    let (s, r) = post(&webhook_url(&lax), &plain, &body);
    assert_eq!(s, 200, "{r}");
    let op = r["operation_id"].as_str().unwrap();
    assert!(op.starts_with("unsigned_") && op.len() == "unsigned_".len() + 32);
    assert_eq!(api.received().len(), 1);
    assert_eq!(api.received()[0].json()["clerk_id"], "test_id");
    // A signature header present must verify even here.
    let mut partial = plain.clone();
    partial.push(("svix-id".into(), "msg_x".into()));
    let (s, _) = post(&webhook_url(&lax), &partial, &body);
    assert_eq!(s, 401);
    let logs = lax.wait_for_log_lines(2);
    assert!(
        logs.iter().any(|l| l["warning"]
            .as_str()
            .is_some_and(|w| w.contains("unsigned"))),
        "{logs:?}"
    );
}
