//! The users pages against the main API's own rows: a failed row and
//! pending signups made through the main API show on `/users`, with their
//! error and age, a page at a time; a search by email finds its user and a
//! Clerk id goes to the user's page, which shows the row escaped and its
//! audit trail; the Re-sync button needs the dashboard's own `Origin`.

use crate::support::*;

fn bearer() -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {DEV_API_SECRET}")),
        ("content-type".into(), "application/json".into()),
    ]
}

fn upsert(op: &str, clerk_id: &str, updated_at: &str, first_name: &str) -> Json {
    json!({
        "version": 1, "command": "upsert_user", "operation_id": op,
        "event_type": "user.updated", "occurred_at": updated_at,
        "received_at": updated_at, "clerk_id": clerk_id,
        "user": {"email": "Shared.Att@example.com", "email_verified": true,
                 "first_name": first_name, "last_name": null, "username": null,
                 "image_url": null, "external_id": null, "created_at": "2026-01-01T00:00:00.000Z",
                 "updated_at": updated_at}
    })
}

/// `user_att_a` failed (`user_att_b`, newer, took its address), and
/// `signups` pending signups without a Clerk id.
fn seed(api: &MainApiDev, signups: usize) {
    let commands = [
        upsert(
            "op_att_a",
            "user_att_a",
            "2026-01-01T00:00:00.000Z",
            "<script>alert(1)</script>",
        ),
        upsert("op_att_b", "user_att_b", "2026-01-02T00:00:00.000Z", "Bea"),
    ];
    let body = json!({"version": 1, "commands": commands}).to_string();
    let (s, answer) = post(
        &format!("{}/internal/clerk-sync/batch", api.url),
        &bearer(),
        body.as_bytes(),
    );
    assert_eq!(s, 200, "{answer}");
    let (s, a) = get_with(&format!("{}/internal/users/user_att_a", api.url), &bearer());
    assert_eq!((s, &a["sync_status"]), (200, &json!("failed")), "{a}");
    for n in 0..signups {
        let signup = json!({"id": format!("signup_att_{n:02}"), "email": format!("pending.{n:02}@example.com"),
                            "link_by": "email"});
        let (s, answer) = post(
            &format!("{}/internal/users", api.url),
            &bearer(),
            signup.to_string().as_bytes(),
        );
        assert_eq!(s, 201, "{answer}");
    }
}

/// The `href` of the "next page" link, as the browser would follow it.
fn next_page(page: &Page) -> Option<String> {
    let marker = "id=\"next-page\" href=\"";
    let at = page.body.find(marker)? + marker.len();
    let href = page.body[at..].split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

#[test]
#[ignore = "needs the built dashboard and wrangler: scripts/test.sh"]
fn failed_and_pending_rows_search_a_user_and_its_audit_trail() {
    let api = MainApiDev::start();
    seed(&api, 52);
    // Nothing listens on the relay's port: the button says so.
    let relay_url = format!("http://127.0.0.1:{}", free_port());
    let dash = DashboardDev::start(&settings(&api.url, &relay_url));
    let origin = dash.url.as_str();
    let users_url = format!("{}/users", dash.url);

    let page = call("GET", &users_url, &[], "");
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/login")),
        "{}",
        dash.logs()
    );
    let cookie = sign_in(&dash, DEV_PASSWORD, Some(origin))
        .cookie_pair()
        .unwrap();
    let get = |path: &str| {
        call(
            "GET",
            &format!("{}{path}", dash.url),
            &[("cookie", &cookie)],
            "",
        )
    };

    // The failed row, with the error the main API recorded.
    let page = get("/users");
    assert_eq!(page.status, 200, "{}", dash.logs());
    assert!(
        page.body
            .contains(r#"<a href="/users/user_att_a"><code>user_att_a</code></a>"#),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("the email is used by Clerk user user_att_b"));
    assert!(
        !page.body.contains("user_att_b\"><code>"),
        "synced: not listed"
    );
    assert_eq!(next_page(&page), None);
    // The overview links here.
    assert!(get("/").body.contains(r#"<a href="/users">"#));

    // Pending signups, 50 a page, with their age since created_at.
    let page = get("/users?tab=pending");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Pending for (since created_at)"));
    assert!(
        page.body.contains("pending.00@example.com"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("pending.51@example.com"));
    assert_eq!(page.body.matches("class=\"user-row\"").count(), 50);
    assert!(page.body.contains("<td class=\"age\">"));
    let next = next_page(&page).expect("a next page");
    let page = get(&next);
    assert_eq!(page.status, 200, "{next}");
    assert_eq!(
        page.body.matches("class=\"user-row\"").count(),
        2,
        "{}",
        page.body
    );
    assert!(page.body.contains("pending.51@example.com"));
    assert_eq!(next_page(&page), None);

    // A search by email, in another case, finds the user that holds it.
    let page = get("/users?q=shared.att%40EXAMPLE.com");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<a href="/users/user_att_b"><code>user_att_b</code></a>"#),
        "{}",
        page.body
    );
    assert_eq!(page.body.matches("class=\"user-row\"").count(), 1);
    let page = get("/users?q=pending.07%40example.com");
    assert!(page.body.contains("signup_att_07"), "{}", page.body);
    let page = get("/users?q=nobody%40example.com");
    assert!(page.body.contains("No live row has this email."));
    // A Clerk id goes to its page.
    let page = get("/users?q=user_att_a");
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/users/user_att_a"))
    );

    // The user page: the row (its name as text), the audit trail.
    let page = get("/users/user_att_a");
    assert_eq!(page.status, 200, "{}", dash.logs());
    assert!(page
        .body
        .contains(r#"<td id="col-first_name">&lt;script&gt;alert(1)&lt;/script&gt;</td>"#));
    assert!(!page.body.contains("<script"), "{}", page.body);
    assert!(page
        .body
        .contains(r#"<td id="col-sync_status">failed</td>"#));
    assert!(page.body.contains("<code>op_att_a</code>"), "{}", page.body);
    assert!(page.body.contains(r#"<td class="outcome">applied</td>"#));
    assert!(page.body.contains(r#"action="/users/user_att_a/resync""#));
    let page = get("/users/user_never_seen");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("no row, tombstone or audit row"));
    assert_eq!(get("/users/not%20an%20id").status, 404);

    // The button: the dashboard's own origin, else 403.
    let resync_url = format!("{}/users/user_att_a/resync", dash.url);
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "http://evil.example"),
        ],
    ] {
        let page = call("POST", &resync_url, &headers, "");
        assert_eq!(page.status, 403, "{headers:?}");
    }
    let page = call(
        "POST",
        &resync_url,
        &[("cookie", &cookie), ("origin", origin)],
        "",
    );
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/users/user_att_a?resync_error=unreachable")),
        "{}",
        dash.logs()
    );
    let page = get("/users/user_att_a?resync_error=unreachable");
    assert!(page
        .body
        .contains("Re-sync not started: <code>unreachable</code>"));
    for secret in [DEV_API_SECRET, DEV_ADMIN_SECRET, DEV_SESSION_SECRET] {
        assert!(!page.body.contains(secret));
    }
}
