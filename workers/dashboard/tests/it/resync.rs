//! The Re-sync page against the whole stack (the main API on D1, the relay
//! with the re-sync Worker, the stand-in Clerk): start a full run from the
//! page's form, follow it through `/resync/status.json` until it completes,
//! and see it completed on the page; then the overview's deliveries section
//! and chart, against the main API's own metrics.

use std::time::Duration;

use crate::support::*;

const USERS: usize = 60;

/// The text of the element with this id (up to its first child tag).
fn text_of(body: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let at = body.find(&marker)? + marker.len();
    let rest = &body[at..];
    let rest = &rest[rest.find('>')? + 1..];
    Some(rest.split('<').next()?.trim().to_owned())
}

fn bearer() -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {DEV_API_SECRET}"))]
}

#[test]
#[ignore = "needs the built dashboard, relay and re-sync Worker, and wrangler: scripts/test.sh"]
fn start_a_full_run_from_the_page_and_watch_it_complete() {
    let clerk = ClerkStandIn::start(USERS, &[]);
    let api = MainApiDev::start();
    let mut options = RelayDevOptions::new(&api.url, &clerk.url);
    // Slow enough that the run is still running when the page asks again.
    options.rate_limit = 4;
    options.page_size = 15;
    let relay = RelayDev::start(&options);
    let dash = DashboardDev::start(&settings(&api.url, &relay.url));
    let origin = dash.url.as_str();
    let page_url = format!("{}/resync", dash.url);
    let start_url = format!("{}/resync/start", dash.url);
    let status_url = format!("{}/resync/status.json", dash.url);
    let form = [("content-type", "application/x-www-form-urlencoded")];

    // Signed out: the page, the status and the start are refused.
    let out = call("GET", &page_url, &[], "");
    assert_eq!((out.status, out.header("location")), (303, Some("/login")));
    assert_eq!(call("GET", &status_url, &[], "").status, 401);
    let out = call(
        "POST",
        &start_url,
        &[form[0], ("origin", origin)],
        "scope=all",
    );
    assert_eq!((out.status, out.header("location")), (303, Some("/login")));

    let cookie = sign_in(&dash, DEV_PASSWORD, Some(origin))
        .cookie_pair()
        .expect("signed in");
    let session = [("cookie", cookie.as_str())];
    let page = call("GET", &page_url, &session, "");
    assert_eq!(page.status, 200, "{}", dash.logs());
    assert!(page.body.contains("No re-sync run yet."), "{}", page.body);
    let script = call("GET", &format!("{}/resync.js", dash.url), &[], "");
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.contains("textContent") && !script.body.contains("innerHTML"));

    // Without the dashboard's Origin, no run starts.
    for origin in [None, Some("http://evil.example")] {
        let mut headers = vec![form[0], session[0]];
        headers.extend(origin.map(|o| ("origin", o)));
        let out = call("POST", &start_url, &headers, "scope=all");
        assert_eq!(out.status, 403, "{origin:?}");
    }
    let (s, latest) = get_with(
        &format!("{}/admin/resync", relay.url),
        &[("authorization".into(), format!("Bearer {DEV_ADMIN_SECRET}"))],
    );
    assert_eq!((s, &latest["error"]), (404, &json!("run_not_found")));

    // Start it from the form: 303 to the page, which names the run once.
    let start_headers = [form[0], session[0], ("origin", origin)];
    let out = call("POST", &start_url, &start_headers, "scope=all");
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/resync")),
        "{}",
        dash.logs()
    );
    let notice = out.cookie_pair().expect("a notice");
    let run_id = notice
        .strip_prefix("clerk_sync_notice=started.")
        .unwrap_or_else(|| panic!("{notice}"))
        .to_owned();
    let both = format!("{cookie}; {notice}");
    let page = call("GET", &page_url, &[("cookie", &both)], "");
    assert!(
        page.body
            .contains(&format!("Started run <code>{run_id}</code>.")),
        "{}",
        page.body
    );
    assert!(page
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("clerk_sync_notice=; Max-Age=0;")));
    assert!(page.body.contains(&format!("data-run-id=\"{run_id}\"")));
    assert!(page
        .body
        .contains(r#"<script src="/resync.js" defer></script>"#));

    // A second start while it runs (4 Clerk requests per 10 s: it takes
    // more than 10 s): the relay's 409 as the notice.
    let out = call("POST", &start_url, &start_headers, "scope=failed");
    let refused = out.cookie_pair().unwrap();
    assert_eq!(refused, "clerk_sync_notice=refused.409.resync_running");
    let both = format!("{cookie}; {refused}");
    let page = call("GET", &page_url, &[("cookie", &both)], "");
    assert!(
        page.body.contains("409 <code>resync_running</code>"),
        "{}",
        page.body
    );

    // Poll the dashboard's status JSON, as the page's script does.
    let mut seen_running = false;
    let mut last = Json::Null;
    let done = wait_until(Duration::from_secs(600), || {
        let out = call("GET", &status_url, &session, "");
        assert_eq!(
            out.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        last = serde_json::from_str(&out.body).unwrap_or(Json::Null);
        assert_eq!(out.status, 200, "{}", out.body);
        let state = last["run"]["state"].as_str().unwrap_or_default();
        seen_running |= state == "running";
        assert_eq!(last["run"]["run_id"], run_id.as_str());
        state != "running"
    });
    assert!(done, "{last}\n{}", relay.logs());
    // The status holds the run's fields and never a secret or rejected ids.
    assert!(last["run"].get("rejected_ids").is_none());
    for secret in [DEV_ADMIN_SECRET, DEV_API_SECRET] {
        assert!(!last.to_string().contains(secret));
    }

    assert!(seen_running, "the status showed the run running: {last}");
    assert_eq!(last["run"]["state"], "completed", "{last}");
    assert_eq!(
        last["run"]["clerk_users_seen"],
        last["run"]["clerk_users_total"]
    );
    assert_eq!(last["percent"], 100);

    // The page shows it completed, the bar full.
    let page = call("GET", &page_url, &session, "");
    let (s, full) = get_with(
        &format!("{}/admin/resync/{run_id}", relay.url),
        &[("authorization".into(), format!("Bearer {DEV_ADMIN_SECRET}"))],
    );
    assert_eq!(s, 200, "{full}");
    assert_eq!(full["state"], "completed", "{full}");
    assert_eq!(full["clerk_users_total"], USERS);
    assert_eq!(full["clerk_users_seen"], USERS);
    assert!(
        page.body.contains(&format!(
            "<div id=\"latest-run\" data-run-id=\"{run_id}\" data-state=\"completed\""
        )),
        "{}",
        page.body
    );
    assert_eq!(
        text_of(&page.body, "run-state").as_deref(),
        Some("completed")
    );
    assert_eq!(text_of(&page.body, "run-seen"), Some(USERS.to_string()));
    assert_eq!(text_of(&page.body, "run-total"), Some(USERS.to_string()));
    assert_eq!(text_of(&page.body, "run-percent").as_deref(), Some("100 %"));
    assert!(page.body.contains(&format!(
        "<progress id=\"run-progress\" max=\"{USERS}\" value=\"{USERS}\"></progress>"
    )));
    assert_eq!(
        text_of(&page.body, "counter-upserts_sent"),
        Some(USERS.to_string())
    );

    // The overview: the deliveries section agrees with the API's metrics.
    let overview = call("GET", &format!("{}/", dash.url), &session, "");
    assert_eq!(overview.status, 200);
    let (s, metrics) = get_with(&format!("{}/internal/metrics", api.url), &bearer());
    assert_eq!(s, 200, "{metrics}");
    let applied = metrics["outcomes"]["last_24h"]["applied"].as_u64().unwrap();
    assert!(applied >= USERS as u64, "{metrics}");
    assert_eq!(
        text_of(&overview.body, "outcome-24h-applied"),
        Some(applied.to_string()),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("<svg id=\"deliveries-chart\""));
    assert!(overview.body.contains("class=\"bar bar-applied\""));
    let hourly_total: u64 = metrics["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["outcomes"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        })
        .sum();
    let drawn: u64 = overview
        .body
        .split("data-total=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(drawn, hourly_total);
    assert!(text_of(&overview.body, "last-received").is_some());
    assert!(!overview.body.contains("Metrics: "), "{}", overview.body);
    for secret in [DEV_API_SECRET, DEV_ADMIN_SECRET] {
        assert!(!overview.body.contains(secret));
    }
}
