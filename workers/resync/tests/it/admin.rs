//! The admin routes through the relay: the bearer, bad start bodies, one
//! run at a time, cancel, the history, and re-sync switched off.

use crate::support::*;

fn stack(clerk: &ClerkStandIn, api_url: &str, clerk_key: Option<&str>) -> RelayDev {
    let mut options = RelayDevOptions::new(api_url, &clerk.url);
    options.clerk_key = clerk_key.map(str::to_owned);
    options.page_size = 10;
    RelayDev::start(&options)
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn every_admin_route_needs_the_bearer_and_bad_input_is_refused() {
    let _one = exclusive();
    // Slow answers keep the run running while the second start is tried.
    let clerk = ClerkStandIn::start(60, &["--latency-ms", "1500"]);
    let api = MainApiDev::start();
    let relay = stack(&clerk, &api.url, Some(STANDIN_SECRET_KEY));

    let routes = [
        ("POST", "/admin/resync"),
        ("GET", "/admin/resync"),
        ("GET", "/admin/resync/runs"),
        ("GET", "/admin/resync/rs_1_00"),
        ("POST", "/admin/resync/rs_1_00/cancel"),
    ];
    for (method, path) in routes {
        for secret in ["", "wrong-admin-secret-value", "test-admin-secreT"] {
            let (s, answer) = admin_as(&relay, secret, method, path, "{}");
            assert_eq!(s, 401, "{method} {path} with {secret:?}: {answer}");
            assert_eq!(answer["error"], "unauthorized");
        }
        let url = format!("{}{path}", relay.url);
        let (s, _) = request(method, &url, &[], b"");
        assert_eq!(s, 401, "{method} {path} with no Authorization");
    }
    assert_eq!(clerk.stats()["v1_requests"], 0, "nothing reached Clerk");

    let ids: Vec<String> = (0..501).map(|i| format!("user_{i}")).collect();
    for (body, code) in [
        ("{", "invalid_json"),
        ("[]", "invalid_body"),
        (r#"{"scope":"everyone"}"#, "invalid_scope"),
        (r#"{"scope":"all","extra":1}"#, "unknown_field"),
        (r#"{"scope":"users"}"#, "missing_clerk_ids"),
        (r#"{"scope":"users","clerk_ids":[]}"#, "no_clerk_ids"),
        (
            &json!({"scope": "users", "clerk_ids": ids}).to_string(),
            "too_many_clerk_ids",
        ),
        (
            r#"{"scope":"users","clerk_ids":["user 1"]}"#,
            "invalid_clerk_id",
        ),
    ] {
        let (s, answer) = admin(&relay, "POST", "/admin/resync", body);
        assert_eq!(
            (s, answer["error"].as_str()),
            (400, Some(code)),
            "{body:.60}: {answer}"
        );
    }
    let (s, answer) = admin(&relay, "GET", "/admin/resync", "");
    assert_eq!(
        (s, answer["error"].as_str()),
        (404, Some("run_not_found")),
        "no run yet: {answer}"
    );

    let run = start(&relay, "");
    let (s, answer) = admin(&relay, "POST", "/admin/resync", r#"{"scope":"failed"}"#);
    assert_eq!(
        (s, answer["error"].as_str()),
        (409, Some("resync_running")),
        "{answer}"
    );
    assert_eq!(answer["run_id"], json!(run));
    let (s, latest) = admin(&relay, "GET", "/admin/resync", "");
    assert_eq!(s, 200);
    assert_eq!(
        (latest["run_id"].as_str(), latest["state"].as_str()),
        (Some(run.as_str()), Some("running"))
    );
    for counter in [
        "clerk_users_total",
        "clerk_requests",
        "clerk_users_seen",
        "upserts_sent",
        "deletes_sent",
        "applied",
        "stale",
        "duplicates",
        "rejected",
        "pending_unmatched",
    ] {
        assert!(latest.get(counter).is_some(), "{counter} missing: {latest}");
    }

    let (s, stopped) = admin(&relay, "POST", &format!("/admin/resync/{run}/cancel"), "");
    assert_eq!(
        (s, stopped["state"].as_str()),
        (200, Some("cancelled")),
        "{stopped}"
    );
    let (s, again) = admin(&relay, "POST", &format!("/admin/resync/{run}/cancel"), "");
    assert_eq!(
        (s, again["error"].as_str()),
        (409, Some("resync_not_running")),
        "{again}"
    );
    let (s, answer) = admin(&relay, "GET", "/admin/resync/rs_0_0000000000000000", "");
    assert_eq!(
        (s, answer["error"].as_str()),
        (404, Some("run_not_found")),
        "{answer}"
    );

    // The next run starts; the history lists both, newest first.
    let users = clerk.users();
    let one = users[0]["id"].as_str().unwrap();
    let second = start(
        &relay,
        &json!({"scope": "users", "clerk_ids": [one]}).to_string(),
    );
    let status = finished(&relay, &second);
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(
        (status["upserts_sent"].as_u64(), status["applied"].as_u64()),
        (Some(1), Some(1)),
        "{status}"
    );
    let (_, runs) = admin(&relay, "GET", "/admin/resync/runs", "");
    let listed: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![second.as_str(), run.as_str()]);

    // Nothing secret or personal in the Workers' log lines.
    let logs = relay.logs();
    for secret in [DEV_ADMIN_SECRET, STANDIN_SECRET_KEY, DEV_API_SECRET, "@"] {
        assert!(!logs.contains(secret), "the log holds {secret:?}");
    }
}

#[test]
#[ignore = "needs the built Workers and wrangler: scripts/test.sh"]
fn without_a_clerk_key_resync_is_off_and_the_relay_still_relays() {
    let _one = exclusive();
    let clerk = ClerkStandIn::start(3, &[]);
    let api = MainApiDev::start();
    let relay = stack(&clerk, &api.url, None);

    let (s, answer) = admin(&relay, "POST", "/admin/resync", "{}");
    assert_eq!(
        (s, answer["error"].as_str()),
        (503, Some("resync_unconfigured")),
        "{answer}"
    );
    assert_eq!(answer["problems"], json!(["CLERK_SECRET_KEY"]));
    let (s, _) = admin_as(
        &relay,
        "wrong-admin-secret-value",
        "GET",
        "/admin/resync",
        "",
    );
    assert_eq!(s, 401, "the bearer is still checked first");

    let (s, health, _) = get(&format!("{}/health", relay.url));
    assert_eq!(s, 200, "re-sync is optional: {health}");
    assert_eq!(health["resync"], "off", "{health}");

    let user = &clerk.users()[0];
    let (s, answer) = deliver(&relay, "user.created", user, now_ms());
    assert_eq!(s, 200, "{answer}");
    assert_eq!(clerk.stats()["v1_requests"], 0);
}
