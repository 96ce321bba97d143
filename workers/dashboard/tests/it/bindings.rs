//! Production's service bindings: with an `API` binding, the dashboard
//! reads the main API through it, bearer included, and never its URL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

/// The reference main API's built bundle as a second Worker of the same
/// `wrangler dev` (`main-api.toml`), its local D1 migrated and holding
/// two pending sign-ups and one failed row.
fn main_api_beside(dir: &Path) {
    let root = repo_root();
    let main = root.join("examples/main-api/build/index.js");
    assert!(
        main.exists(),
        "{} is missing: scripts/test.sh builds it",
        main.display()
    );
    std::fs::write(
        dir.join("main-api.toml"),
        format!(
            r#"name = "clerk-sync-main-api"
main = "{main}"
compatibility_date = "2026-04-20"
[[d1_databases]]
binding = "DB"
database_name = "clerk-sync-main-api"
database_id = "00000000-0000-0000-0000-000000000000"
migrations_dir = "{migrations}"
[vars]
API_SECRET = "{DEV_API_SECRET}"
"#,
            main = main.display(),
            migrations = root.join("examples/main-api/migrations").display(),
        ),
    )
    .unwrap();
    let d1 = |args: &[&str]| {
        let mut c = Command::new(root.join("node_modules/.bin/wrangler"));
        c.env("WRANGLER_SEND_METRICS", "false")
            .current_dir(dir)
            .args(["d1", "-c", "main-api.toml"])
            .args(args)
            .args(["--local", "--persist-to"])
            .arg(dir.join("state"));
        let (ok, out) =
            clerk_sync_testkit::process::run("wrangler d1", c, Duration::from_secs(300));
        assert!(ok, "wrangler d1 {args:?}: {out}");
    };
    d1(&["migrations", "apply", "DB"]);
    d1(&[
        "execute",
        "DB",
        "--command",
        "INSERT INTO users (email, first_name) VALUES ('a@example.com', 'A'), ('b@example.com', 'B');
         INSERT INTO users (email, first_name, sync_status, sync_error) VALUES ('c@example.com', 'C', 'failed', 'clerk_unreachable');",
    ]);
}

#[test]
#[ignore = "needs the built dashboard and main API, and wrangler: scripts/test.sh"]
fn the_main_api_is_read_through_its_service_binding_when_one_is_bound() {
    // Nothing listens at API_URL: only the binding can reach the main API.
    let dead_api = format!("http://127.0.0.1:{}", free_port());
    let dead_relay = format!("http://127.0.0.1:{}", free_port());
    let binding = "[[services]]\nbinding = \"API\"\nservice = \"clerk-sync-main-api\"\n";
    let dash = DashboardDev::start_with(
        &settings(&dead_api, &dead_relay),
        binding,
        &[("main-api.toml", &main_api_beside)],
    );
    let signed_in = sign_in(&dash, DEV_PASSWORD, Some(&dash.url));
    assert_eq!(signed_in.status, 303, "{}", dash.logs());
    let cookie = signed_in.cookie_pair().expect("a session cookie");

    let page = call("GET", &format!("{}/", dash.url), &[("cookie", &cookie)], "");
    assert_eq!(page.status, 200, "{}", dash.logs());
    assert_eq!(
        (
            page.count("pending"),
            page.count("failed"),
            page.count("synced")
        ),
        (Some(2), Some(1), Some(0)),
        "{}",
        page.body
    );
    // The relay has no binding here: its URL is tried, and it is down.
    assert!(page.body.contains("unreachable"), "{}", page.body);

    // A users page goes through the binding too.
    let failed = call(
        "GET",
        &format!("{}/users?tab=failed", dash.url),
        &[("cookie", &cookie)],
        "",
    );
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains("c@example.com"), "{}", failed.body);
    assert!(!failed.body.contains("a@example.com"), "{}", failed.body);
}
