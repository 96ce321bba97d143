//! Sign in, the overview against the main API's own status, sign out; and
//! a misconfigured dashboard.

use std::time::Instant;

use crate::support::*;

fn upsert(i: usize) -> Json {
    json!({
        "version": 1, "command": "upsert_user", "operation_id": format!("op_dash_{i}"),
        "event_type": "user.created", "occurred_at": "2026-01-01T00:00:00.000Z",
        "received_at": "2026-01-01T00:00:01.000Z", "clerk_id": format!("user_dash_{i}"),
        "user": {"email": format!("dash.{i}@example.com"), "email_verified": true,
                 "first_name": "<script>alert(1)</script>", "last_name": null, "username": null,
                 "image_url": null, "external_id": null, "created_at": "2026-01-01T00:00:00.000Z",
                 "updated_at": "2026-01-01T00:00:00.000Z"}
    })
}

/// Rows of each kind in the main API: synced, deleted, and a pending signup.
fn seed(api: &MainApiDev) {
    let mut commands: Vec<Json> = (0..3).map(upsert).collect();
    commands.push(json!({
        "version": 1, "command": "delete_user", "operation_id": "op_dash_del",
        "event_type": "user.deleted", "occurred_at": "2026-01-02T00:00:00.000Z",
        "received_at": "2026-01-02T00:00:01.000Z", "clerk_id": "user_dash_0", "user": null
    }));
    let body = json!({"version": 1, "commands": commands}).to_string();
    let (s, answer) = post(
        &format!("{}/internal/clerk-sync/batch", api.url),
        &api_bearer(),
        body.as_bytes(),
    );
    assert_eq!(s, 200, "{answer}");
    let signup = json!({"id": "signup_dash", "email": "new@example.com", "first_name": "Pending", "link_by": "email"});
    let (s, answer) = post(
        &format!("{}/internal/users", api.url),
        &api_bearer(),
        signup.to_string().as_bytes(),
    );
    assert_eq!(s, 201, "{answer}");
}

#[test]
#[ignore = "needs the built dashboard and wrangler: scripts/test.sh"]
fn sign_in_see_the_main_apis_counts_and_sign_out() {
    let api = MainApiDev::start();
    seed(&api);
    // Nothing listens on the relay's port: its sections say so, the page stands.
    let relay_url = format!("http://127.0.0.1:{}", free_port());
    let dash = DashboardDev::start(&settings(&api.url, &relay_url));
    let origin = dash.url.as_str();
    let overview_url = format!("{}/", dash.url);

    // Signed out, the overview sends the browser to the sign-in form.
    let page = call("GET", &overview_url, &[], "");
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/login")),
        "{}",
        dash.logs()
    );
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(page.header(name), Some(value), "{name}");
    }
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.starts_with("default-src 'self'")));
    let form = call("GET", &format!("{}/login", dash.url), &[], "");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"password\""));

    // A wrong password is refused, after the delay a failure gets.
    let started = Instant::now();
    let refused = sign_in(&dash, "not-the-dev-password", Some(origin));
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("Wrong password."));
    assert_eq!(refused.header("set-cookie"), None);
    assert!(
        started.elapsed().as_millis() >= 1_000,
        "a failure is slowed"
    );
    // The right password from another origin (or none) is refused too.
    assert_eq!(sign_in(&dash, DEV_PASSWORD, None).status, 403);
    let forged = sign_in(&dash, DEV_PASSWORD, Some("http://evil.example"));
    assert_eq!((forged.status, forged.header("set-cookie")), (403, None));

    // The right password: a session cookie with its attributes.
    let signed_in = sign_in(&dash, DEV_PASSWORD, Some(origin));
    assert_eq!(
        (signed_in.status, signed_in.header("location")),
        (303, Some("/"))
    );
    let set_cookie = signed_in
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Secure"), "not on http: {set_cookie}");
    let cookie = signed_in.cookie_pair().unwrap();

    // The overview shows what the main API reports.
    let page = call("GET", &overview_url, &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", dash.logs());
    let (s, status) = get_with(&format!("{}/internal/sync/status", api.url), &api_bearer());
    assert_eq!(s, 200);
    let users = &status["users"];
    for (name, expected) in [
        ("synced", &users["by_sync_status"]["synced"]),
        ("pending", &users["by_sync_status"]["pending"]),
        ("failed", &users["by_sync_status"]["failed"]),
        ("deleted", &users["deleted"]),
        ("total", &users["total"]),
    ] {
        assert_eq!(page.count(name), expected.as_u64(), "{name}: {}", page.body);
    }
    assert_eq!(
        (page.count("pending"), page.count("deleted")),
        (Some(1), Some(1))
    );
    assert!(page.body.contains("Relay: unreachable"), "{}", page.body);
    assert!(page.body.contains("Re-sync: unreachable"));
    for secret in [
        DEV_API_SECRET,
        DEV_ADMIN_SECRET,
        DEV_PASSWORD,
        DEV_SESSION_SECRET,
    ] {
        assert!(!page.body.contains(secret), "a secret reached the browser");
    }
    assert!(!page.body.contains("<script"));

    // Sign out needs the dashboard's own origin.
    let logout_url = format!("{}/logout", dash.url);
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "http://evil.example"),
        ],
        vec![("cookie", cookie.as_str()), ("origin", "null")],
    ] {
        let page = call("POST", &logout_url, &headers, "");
        assert_eq!(
            (page.status, page.header("set-cookie")),
            (403, None),
            "{headers:?}"
        );
    }
    let out = call(
        "POST",
        &logout_url,
        &[("cookie", &cookie), ("origin", origin)],
        "",
    );
    assert_eq!((out.status, out.header("location")), (303, Some("/login")));
    let cleared = out.header("set-cookie").expect("the cookie cleared");
    assert!(
        cleared.starts_with("clerk_sync_session=; Max-Age=0;"),
        "{cleared}"
    );

    // The browser dropped the cookie: the overview is refused again.
    let cookie_after = out.cookie_pair().unwrap();
    let page = call("GET", &overview_url, &[("cookie", &cookie_after)], "");
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/login"))
    );
}

#[test]
#[ignore = "needs the built dashboard and wrangler: scripts/test.sh"]
fn a_misconfigured_dashboard_names_the_variables_on_every_page() {
    let dash = DashboardDev::start(&[
        ("DASHBOARD_PASSWORD", "short-pw"),
        ("API_URL", "http://api.example.com"),
        ("API_SECRET", "test-api-secret"),
        ("RELAY_URL", "http://127.0.0.1:8788"),
        ("ADMIN_SECRET", "test-admin-secret"),
    ]);
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
    ] {
        let page = call(
            method,
            &format!("{}{path}", dash.url),
            &[("origin", &dash.url)],
            "password=x",
        );
        assert_eq!(page.status, 500, "{method} {path}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        for name in ["DASHBOARD_PASSWORD", "SESSION_SECRET", "API_URL"] {
            assert!(
                page.body.contains(&format!("<code>{name}</code>")),
                "{name}: {}",
                page.body
            );
        }
        for value in ["short-pw", "api.example.com", "test-api-secret"] {
            assert!(!page.body.contains(value), "{value} shown");
        }
    }
}
