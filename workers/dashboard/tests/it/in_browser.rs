//! The dashboard in headless Chromium, before the whole stack as `npm run
//! dev` runs it (the main API on a local D1, the relay with the re-sync
//! Worker reading the stand-in Clerk API): what an operator does, with a
//! screenshot of each step in `target/screenshots/`. The steps are
//! [`BrowserPage`]'s (`sign_in`, `wait_for_text`, `text_of`, …), so a new
//! page's flow is a new test here that uses them.

use crate::browser::*;
use crate::support::*;

/// A first name that would set `window.__xss` if it ever became markup.
const HOSTILE_NAME: &str = "<script>window.__xss=1</script>";

fn upsert(clerk_id: &str, first_name: &str) -> Json {
    json!({
        "version": 1, "command": "upsert_user", "operation_id": format!("op_{clerk_id}"),
        "event_type": "user.created", "occurred_at": "2026-01-01T00:00:00.000Z",
        "received_at": "2026-01-01T00:00:01.000Z", "clerk_id": clerk_id,
        "user": {"email": format!("{clerk_id}@example.com"), "email_verified": true,
                 "first_name": first_name, "last_name": null, "username": null,
                 "image_url": null, "external_id": null, "created_at": "2026-01-01T00:00:00.000Z",
                 "updated_at": "2026-01-01T00:00:00.000Z"}
    })
}

#[test]
#[ignore = "needs the built Workers, wrangler and chromium: scripts/test.sh"]
fn sign_in_see_the_main_apis_counts_and_sign_out_in_a_browser() {
    let stack = Stack::start(12);
    // A finished run from the stand-in Clerk: synced rows, and a latest run to show.
    let run = stack.resync(r#"{"scope":"all"}"#);
    assert_eq!(run["state"], "completed", "{run}");
    let clerk_users = stack.clerk.users().len() as u64;
    assert_eq!(run["clerk_users_seen"].as_u64(), Some(clerk_users), "{run}");
    // After the run (its sweep deletes rows Clerk does not have): the
    // hostile name, a deleted user and a pending signup, so that no count
    // but "failed" is zero.
    let delete = json!({
        "version": 1, "command": "delete_user", "operation_id": "op_browser_gone_del",
        "event_type": "user.deleted", "occurred_at": "2026-01-02T00:00:00.000Z",
        "received_at": "2026-01-02T00:00:01.000Z", "clerk_id": "user_browser_gone", "user": null
    });
    let commands = vec![
        upsert("user_browser_xss", HOSTILE_NAME),
        upsert("user_browser_gone", "Gone"),
        delete,
    ];
    let answer = post_batch(&stack.api, commands);
    for result in answer["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "applied", "{answer}");
    }
    let signup = json!({"id": "signup_browser", "email": "new@example.com",
                        "first_name": "Pending", "link_by": "email"});
    let (s, answer) = post(
        &format!("{}/internal/users", stack.api.url),
        &api_bearer(),
        signup.to_string().as_bytes(),
    );
    assert_eq!(s, 201, "{answer}");

    let chromium = Chromium::start();
    let mut page = chromium.page(&stack.dash.url, "sign-in");

    // Signed out, the overview sends the browser to the sign-in form.
    page.open("/");
    assert_eq!(page.path(), "/login", "{}", stack.dash.logs());
    page.wait_for_text("h1", "Sign in");
    page.screenshot("signed-out-to-login");

    // A wrong password is refused, and the overview stays closed.
    page.submit_password("not-the-dev-password");
    page.wait_for_text("[role=alert]", "Wrong password.");
    assert_eq!(page.path(), "/login");
    page.screenshot("wrong-password");
    page.open("/");
    assert_eq!(page.path(), "/login");

    // The right password opens the overview, whose counts are the main API's.
    page.sign_in(DEV_PASSWORD);
    page.wait_for_text("#relay", "Healthy");
    page.wait_for_text("#run-state", "completed");
    let users = &sync_status(&stack.api)["users"];
    for (name, expected) in [
        ("synced", &users["by_sync_status"]["synced"]),
        ("pending", &users["by_sync_status"]["pending"]),
        ("failed", &users["by_sync_status"]["failed"]),
        ("deleted", &users["deleted"]),
        ("total", &users["total"]),
    ] {
        let expected = expected
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: {users}"));
        assert_eq!(
            page.number_of(&format!("#count-{name}")),
            expected,
            "{name}"
        );
    }
    // Not zeros by accident: the run's users and ours are there.
    assert!(page.number_of("#count-synced") > clerk_users, "{users}");
    assert_eq!(
        [
            page.number_of("#count-pending"),
            page.number_of("#count-deleted"),
        ],
        [1, 1],
        "{users}"
    );
    page.screenshot("overview");
    // A user named with a script is in the table; nothing of it ran.
    page.assert_no_script_ran("__xss");
    let text = page.text_of("main").unwrap_or_default();
    assert!(!text.contains(DEV_API_SECRET) && !text.contains(DEV_ADMIN_SECRET));

    // Sign out: the overview is refused again.
    page.sign_out();
    page.screenshot("signed-out");
    page.open("/");
    assert_eq!(page.path(), "/login");
    page.screenshot("overview-refused");
}

#[test]
#[ignore = "needs chromium: scripts/test.sh"]
fn the_script_check_sees_a_script_that_ran() {
    let chromium = Chromium::start();
    // A page that is only the payload, unescaped: the check must fail on it.
    let page = chromium.page("data:text/html,", "self-check");
    page.open(HOSTILE_NAME);
    let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        page.assert_no_script_ran("__xss")
    }));
    assert!(check.is_err(), "the payload ran and the check saw nothing");
}
