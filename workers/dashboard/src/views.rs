//! The pages, as functions from data to markup: the layout, the sign-in
//! form, the overview and the error pages. maud escapes every interpolated
//! value; nothing here uses `PreEscaped`, so a name from Clerk (or any text
//! a source sends) can never become markup. No I/O, no clock.

use maud::{html, Markup, DOCTYPE};

use crate::sources::{LatestRun, Overview, RelayHealth, RunSummary, SourceError, SyncCounts};

/// The one stylesheet, served at [`STYLE_PATH`]: the Content-Security-Policy
/// (`default-src 'self'`) allows no inline style.
pub const STYLE_PATH: &str = "/style.css";
pub const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.5rem;background:#1d232a;color:#fff}
header a{color:#fff}header form{margin-left:auto}
main{max-width:60rem;margin:1.5rem auto;padding:0 1.5rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:1rem 1.25rem;margin:0 0 1rem}
h2{margin:0 0 .6rem;font-size:1.05rem}
table{border-collapse:collapse}th,td{text-align:left;padding:.25rem 1rem .25rem 0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.error{color:#a4161a}.ok{color:#2b7a0b}.muted{color:#68707a}
h3{margin:.9rem 0 .4rem;font-size:.95rem}progress{width:24rem;height:1.1rem;vertical-align:middle}
form.start{margin:.4rem 0}svg{max-width:100%;height:auto}
label{display:block;margin:.5rem 0}input{font:inherit;padding:.35rem}button{font:inherit;padding:.35rem .9rem}
";

/// Every page's frame. `signed_in` adds the navigation and the sign-out form.
pub fn layout(title: &str, signed_in: bool, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · clerk-sync" }
                link rel="stylesheet" href=(STYLE_PATH);
            }
            body {
                header {
                    strong { "clerk-sync" }
                    @if signed_in {
                        nav { a href="/" { "Overview" } " " a href="/users" { "Users needing attention" } " " a href=(crate::resync_page::PAGE_PATH) { "Re-sync" } }
                        form method="post" action="/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The sign-in form, with a message after a refused attempt.
pub fn login_page(message: Option<&str>) -> Markup {
    layout(
        "Sign in",
        false,
        html! {
            section {
                @if let Some(message) = message {
                    p.error role="alert" { (message) }
                }
                form method="post" action="/login" {
                    label {
                        "Password "
                        input type="password" name="password" autocomplete="current-password" required autofocus;
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// An error page: a title and one line of explanation.
pub fn error_page(title: &str, detail: &str) -> Markup {
    layout(title, false, html! { section { p { (detail) } } })
}

/// What every page answers while the settings are wrong: the variables by
/// name, never a value.
pub fn misconfigured_page(problems: &[&str]) -> Markup {
    layout(
        "The dashboard is misconfigured",
        false,
        html! {
            section {
                p { "These settings are missing or invalid (see the README's Dashboard section):" }
                ul {
                    @for name in problems {
                        li { code { (name) } }
                    }
                }
            }
        },
    )
}

/// The overview: rows by status, the relay's health, the latest re-sync run.
pub fn overview_page(overview: &Overview) -> Markup {
    layout(
        "Overview",
        true,
        html! {
            section #rows {
                h2 { "Rows in the main API" }
                (source(&overview.sync, "Main API", sync_counts))
            }
            section #relay {
                h2 { "Relay" }
                (source(&overview.relay, "Relay", relay_health))
            }
            section #resync {
                h2 { "Latest re-sync run" }
                (source(&overview.run, "Re-sync", latest_run))
            }
            section #deliveries {
                h2 { "Deliveries" }
                (crate::deliveries::section(&overview.metrics))
            }
            @if let Some(board) = &overview.alerts {
                (crate::alerts::section(board))
            }
        },
    )
}

fn source<T>(result: &Result<T, SourceError>, name: &str, show: fn(&T) -> Markup) -> Markup {
    match result {
        Ok(value) => show(value),
        Err(e) => html! { p.error.source-error { (name) ": " (e.to_string()) } },
    }
}

fn sync_counts(c: &SyncCounts) -> Markup {
    let rows = [
        ("synced", "Synced", c.synced),
        ("pending", "Pending", c.pending),
        ("failed", "Failed", c.failed),
        ("deleted", "Deleted", c.deleted),
        ("total", "Total", c.total),
    ];
    html! {
        table {
            @for (id, label, n) in rows {
                tr { th { (label) } td.n id={ "count-" (id) } { (n) } }
            }
            @if let Some(t) = c.tombstones {
                tr { th { "Tombstones" } td.n id="count-tombstones" { (t) } }
            }
        }
    }
}

fn relay_health(h: &RelayHealth) -> Markup {
    html! {
        p {
            @if h.ok { span.ok { "Healthy" } } @else { span.error { "Misconfigured" } }
            @if let Some(v) = &h.version { span.muted { " · version " (v) } }
            @if let Some(r) = &h.resync { " · re-sync " (r) }
        }
        @if !h.problems.is_empty() {
            p { "Problems with: " }
            ul { @for name in &h.problems { li { code { (name) } } } }
        }
    }
}

fn latest_run(run: &LatestRun) -> Markup {
    match run {
        LatestRun::NoneYet => html! { p.muted { "No re-sync run yet." } },
        LatestRun::Run(r) => run_summary(r),
    }
}

fn run_summary(r: &RunSummary) -> Markup {
    let seen = match r.clerk_users_total {
        Some(total) => format!("{} of {total}", r.clerk_users_seen),
        None => r.clerk_users_seen.to_string(),
    };
    html! {
        table {
            tr { th { "Run" } td { code { (r.run_id) } } }
            tr { th { "Scope" } td { (r.scope) } }
            tr { th { "State" } td #run-state { (r.state) " (" (r.phase) ")" } }
            tr { th { "Started" } td { (r.started_at.as_deref().unwrap_or("—")) } }
            tr { th { "Finished" } td { (r.finished_at.as_deref().unwrap_or("—")) } }
            tr { th { "Users seen" } td.n { (seen) } }
            tr { th { "Upserts / deletes sent" } td.n { (r.upserts_sent) " / " (r.deletes_sent) } }
            tr { th { "Applied / stale / duplicates" } td.n { (r.applied) " / " (r.stale) " / " (r.duplicates) } }
            tr { th { "Rejected" } td.n { (r.rejected) } }
            tr { th { "Pages" } td.n { (r.pages) } }
            @if let Some(e) = &r.last_error {
                tr { th { "Last error" } td.error { code { (e.code) } " " (e.message) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::RunError;

    fn overview() -> Overview {
        Overview {
            sync: Ok(SyncCounts {
                synced: 7,
                pending: 2,
                failed: 1,
                deleted: 2,
                total: 12,
                tombstones: Some(3),
            }),
            relay: Ok(RelayHealth {
                ok: true,
                version: Some("0.1.0".into()),
                resync: Some("on".into()),
                problems: vec![],
            }),
            run: Ok(LatestRun::NoneYet),
            metrics: Err(SourceError::Unreachable),
            alerts: None,
        }
    }

    fn run(run_id: &str, message: &str) -> RunSummary {
        RunSummary {
            run_id: run_id.into(),
            scope: "all".into(),
            state: "failed".into(),
            phase: "upsert".into(),
            started_at: Some("2026-12-07T10:00:00.000Z".into()),
            last_error: Some(RunError {
                code: "clerk_unauthorized".into(),
                message: message.into(),
            }),
            clerk_users_total: Some(1200),
            clerk_users_seen: 500,
            ..RunSummary::default()
        }
    }

    #[test]
    fn the_overview_shows_the_counts() {
        let page = overview_page(&overview()).into_string();
        for text in [
            r#"<td class="n" id="count-synced">7</td>"#,
            r#"<td class="n" id="count-pending">2</td>"#,
            r#"<td class="n" id="count-failed">1</td>"#,
            r#"<td class="n" id="count-deleted">2</td>"#,
            r#"<td class="n" id="count-total">12</td>"#,
            "Healthy",
            "version 0.1.0",
            "re-sync on",
            "No re-sync run yet.",
            r#"<form method="post" action="/logout">"#,
        ] {
            assert!(page.contains(text), "{text} not in {page}");
        }
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn each_failed_source_is_text_and_the_rest_still_shows() {
        let mut o = overview();
        o.sync = Err(SourceError::Unreachable);
        o.run = Err(SourceError::Unauthorized {
            status: 401,
            setting: "ADMIN_SECRET",
        });
        let page = overview_page(&o).into_string();
        assert!(page.contains("Main API: unreachable"), "{page}");
        assert!(
            page.contains("Re-sync: 401 unauthorized: check ADMIN_SECRET"),
            "{page}"
        );
        assert!(page.contains("Healthy"));
        let mut o = overview();
        o.relay = Err(SourceError::TimedOut);
        o.sync = Err(SourceError::Status {
            status: 500,
            code: Some("database_error".into()),
        });
        let page = overview_page(&o).into_string();
        assert!(page.contains("Relay: timed out"));
        assert!(page.contains("Main API: answered 500 (database_error)"));
        assert!(
            !page.contains("id=\"count-"),
            "no counts without the main API"
        );
    }

    #[test]
    fn a_misconfigured_relay_names_its_problems() {
        let mut o = overview();
        o.relay = Ok(RelayHealth {
            ok: false,
            version: None,
            resync: Some("off".into()),
            problems: vec!["API_SECRET".into(), "CLERK_SECRET_KEY".into()],
        });
        let page = overview_page(&o).into_string();
        assert!(page.contains("Misconfigured"));
        assert!(
            page.contains("<li><code>API_SECRET</code></li><li><code>CLERK_SECRET_KEY</code></li>")
        );
    }

    #[test]
    fn a_run_shows_its_progress_and_error() {
        let mut o = overview();
        o.run = Ok(LatestRun::Run(Box::new(run(
            "rs_1_ab",
            "Clerk answered 401",
        ))));
        let page = overview_page(&o).into_string();
        for text in [
            "<code>rs_1_ab</code>",
            "failed (upsert)",
            "500 of 1200",
            "clerk_unauthorized",
            "Clerk answered 401",
        ] {
            assert!(page.contains(text), "{text} not in {page}");
        }
    }

    #[test]
    fn script_in_data_renders_escaped() {
        let payload = "<script>alert('x')</script>";
        let mut o = overview();
        o.run = Ok(LatestRun::Run(Box::new(run(payload, payload))));
        o.relay = Ok(RelayHealth {
            ok: false,
            version: Some(payload.into()),
            resync: None,
            problems: vec![payload.into()],
        });
        let page = overview_page(&o).into_string();
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
            "{page}"
        );
        let page = login_page(Some(payload)).into_string();
        assert!(!page.contains("<script") && page.contains("&lt;script&gt;"));
        let page = misconfigured_page(&["<script>"]).into_string();
        assert!(!page.contains("<script") && page.contains("&lt;script&gt;"));
        let page = error_page(payload, payload).into_string();
        assert!(!page.contains("<script"));
    }

    #[test]
    fn the_login_page_has_the_form_and_no_session_controls() {
        let page = login_page(None).into_string();
        assert!(page.contains(r#"<form method="post" action="/login">"#));
        assert!(page.contains(r#"type="password" name="password""#));
        assert!(!page.contains("/logout"));
        assert!(!page.contains("role=\"alert\""));
        assert!(login_page(Some("Wrong password."))
            .into_string()
            .contains("Wrong password."));
    }

    #[test]
    fn the_misconfigured_page_names_variables() {
        let page = misconfigured_page(&["DASHBOARD_PASSWORD", "SESSION_SECRET"]).into_string();
        assert!(page.contains(
            "<li><code>DASHBOARD_PASSWORD</code></li><li><code>SESSION_SECRET</code></li>"
        ));
    }
}
