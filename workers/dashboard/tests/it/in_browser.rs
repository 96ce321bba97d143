//! The dashboard in headless Chromium, before the whole stack as `npm run
//! dev` runs it (the main API on a local D1, the relay with the re-sync
//! Worker reading the stand-in Clerk API): what an operator does, with a
//! screenshot of each step in `target/screenshots/`. The steps are
//! [`BrowserPage`]'s (`sign_in`, `wait_for_text`, `text_of`, …), so a new
//! page's flow is a new test here that uses them.

use std::time::Duration;

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

/// The address two Clerk users had, and the one Clerk now has for the older.
const SHARED_EMAIL: &str = "shared.flow@example.com";
const HEALED_EMAIL: &str = "heal.flow@example.com";
/// Clerk users in the stand-in: with 4 a page, a full run is six pages.
const FLOW_USERS: usize = 20;

fn upsert_at(clerk_id: &str, at: &str, email: &str, first_name: &str) -> Json {
    json!({
        "version": 1, "command": "upsert_user", "operation_id": format!("op_{clerk_id}"),
        "event_type": "user.updated", "occurred_at": at, "received_at": at, "clerk_id": clerk_id,
        "user": {"email": email, "email_verified": true, "first_name": first_name,
                 "last_name": null, "username": null, "image_url": null, "external_id": null,
                 "created_at": "2026-01-01T00:00:00.000Z", "updated_at": at}
    })
}

/// `#run-progress`'s value and max, `#run-seen`, `#run-total` and
/// `#latest-run`'s `data-state`, read at once (as JSON text: an object
/// comes back from the page as a reference, not a value).
const RUN_READING: &str = "JSON.stringify((() => { const q = (s) => document.querySelector(s); \
    const p = q('#run-progress'), l = q('#latest-run'); \
    return { value: p ? p.value : null, max: p ? p.max : null, \
             seen: q('#run-seen') ? q('#run-seen').innerText : null, \
             total: q('#run-total') ? q('#run-total').innerText : null, \
             state: l ? l.dataset.state : null } })())";

/// The run as the Re-sync page shows it, or `None` while it reloads.
fn run_reading(page: &BrowserPage) -> Option<Json> {
    serde_json::from_str(page.eval(RUN_READING)?.as_str()?).ok()
}

#[test]
#[ignore = "needs the built Workers, wrangler and chromium: scripts/test.sh"]
fn find_a_failed_user_resync_it_and_watch_a_full_run_in_a_browser() {
    let stack = Stack::start_with(FLOW_USERS, |relay| relay.page_size = 4);
    // Clerk's truth: user_flow_heal, named with a script, moved to
    // HEALED_EMAIL (a change the main API never got) on 2026-03-01.
    stack.clerk.create(json!({
        "id": "user_flow_heal", "email": HEALED_EMAIL, "first_name": HOSTILE_NAME,
        "created_at": 1_767_225_600_000_u64, "updated_at": 1_772_323_200_000_u64
    }));
    // The main API's: it still has the old address, which user_flow_taker
    // (newer) took since: the older row is failed and shows no email.
    let answer = post_batch(
        &stack.api,
        vec![
            upsert_at(
                "user_flow_heal",
                "2026-01-01T00:00:00.000Z",
                SHARED_EMAIL,
                HOSTILE_NAME,
            ),
            upsert_at(
                "user_flow_taker",
                "2026-01-02T00:00:00.000Z",
                SHARED_EMAIL,
                "Taker",
            ),
        ],
    );
    for result in answer["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "applied", "{answer}");
    }

    let chromium = Chromium::start();
    let mut page = chromium.page(&stack.dash.url, "flows");
    page.sign_in(DEV_PASSWORD);

    // (1) The search box, by email: the address's holder now.
    page.open("/users");
    page.wait_for_text("h1", "Users needing attention");
    page.fill("#search input[name=q]", SHARED_EMAIL);
    page.click("#search button[type=submit]");
    page.wait_for_text("#rows h2", SHARED_EMAIL);
    page.wait_for_text("#user-rows", "user_flow_taker");
    let rows = page.eval("document.querySelectorAll('#user-rows .user-row').length");
    assert_eq!(rows, Some(json!(1)));
    page.screenshot("search-by-email");
    // The failed tab: the older user, its error naming the holder.
    page.click("#tabs a[href='/users?tab=failed']");
    page.wait_for_text("#rows h2", "Failed rows");
    page.wait_for_text(
        "#user-rows",
        "the email is used by Clerk user user_flow_taker",
    );
    page.screenshot("failed-rows");
    page.click("#user-rows a[href='/users/user_flow_heal']");
    page.wait_for_path("/users/user_flow_heal");
    page.wait_for_text("#col-sync_status", "failed");
    page.wait_for_text("#audit", "op_user_flow_heal");
    page.wait_for_text("#audit", "applied");
    // (4) Its script name is text, and nothing of it ran.
    assert_eq!(
        page.text_of("#col-first_name").as_deref(),
        Some(HOSTILE_NAME)
    );
    page.assert_no_script_ran("__xss");
    page.screenshot("failed-user");

    // (2) "Re-sync this user": the run reads Clerk's truth, and the row heals.
    page.click("#resync button[type=submit]");
    page.wait_for_text("main", "Re-sync started: run");
    page.screenshot("resync-started");
    let healed = wait_until(PAGE_TIMEOUT, || {
        page.open("/users/user_flow_heal");
        page.text_of("#col-sync_status").as_deref() == Some("synced")
    });
    assert!(
        healed,
        "{}\n{}",
        page.text_of("main").unwrap_or_default(),
        stack.relay.logs()
    );
    assert_eq!(page.text_of("#col-email").as_deref(), Some(HEALED_EMAIL));
    assert_eq!(
        page.text_of("#col-first_name").as_deref(),
        Some(HOSTILE_NAME)
    );
    page.assert_no_script_ran("__xss");
    page.screenshot("user-synced");
    // Its new address now finds it through the search box, synced.
    page.open("/users");
    page.fill("#search input[name=q]", HEALED_EMAIL);
    page.click("#search button[type=submit]");
    page.wait_for_text("#user-rows", "user_flow_heal");
    page.wait_for_text("#user-rows", "synced");
    page.assert_no_script_ran("__xss");
    page.screenshot("search-finds-synced");

    // (3) A full run from /resync, the stand-in serving one request a
    // second (429 and Retry-After beyond), so the bar is seen moving.
    stack
        .clerk
        .config(json!({"rate_limit_per_10s": 1, "rate_window_ms": 1000}));
    page.open("/resync");
    page.click("#start-all");
    page.wait_for_path("/resync");
    page.wait_for_text("main", "Started run");
    let mut readings: Vec<Json> = Vec::new();
    let mut moving_shot = false;
    let completed = wait_until(Duration::from_secs(300), || {
        let Some(reading) = run_reading(&page) else {
            return false; // reloading
        };
        let state = reading["state"].as_str().unwrap_or_default().to_owned();
        let (value, max) = (reading["value"].as_f64(), reading["max"].as_f64());
        if state == "running"
            && matches!((value, max), (Some(v), Some(m)) if v > 0.0 && v < m)
            && !moving_shot
        {
            page.screenshot("run-moving");
            moving_shot = true;
        }
        if readings.last() != Some(&reading) {
            readings.push(reading);
        }
        state == "completed"
    });
    assert!(completed, "{readings:?}\n{}", stack.relay.logs());
    let total = stack.clerk.users().len();
    // An intermediate value was shown while the run ran.
    let intermediate = readings.iter().any(|r| {
        let seen: Option<usize> = r["seen"].as_str().and_then(|s| s.trim().parse().ok());
        r["state"] == "running"
            && r["value"]
                .as_f64()
                .is_some_and(|v| v > 0.0 && v < total as f64)
            && seen.is_some_and(|s| s > 0 && s < total)
    });
    assert!(intermediate, "no value between 0 and {total}: {readings:?}");
    // Completed: the bar full, seen == total == Clerk's users.
    page.wait_for_text("#run-state", "completed");
    let done = run_reading(&page).unwrap();
    assert_eq!(done["seen"], json!(total.to_string()), "{done}");
    assert_eq!(done["total"], json!(total.to_string()), "{done}");
    assert_eq!(done["value"].as_f64(), Some(total as f64), "{done}");
    assert_eq!(done["max"].as_f64(), Some(total as f64), "{done}");
    assert_eq!(page.text_of("#run-percent").as_deref(), Some("100 %"));
    page.screenshot("run-completed");
}
