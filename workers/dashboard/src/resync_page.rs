//! The Re-sync page (`GET /resync`): start a full, failed-only or
//! pending-only run (`POST /resync/start`, which calls the relay's
//! `POST /admin/resync` with `ADMIN_SECRET` server-side and answers 303 to
//! the page with a one-time notice cookie), the latest run with its progress
//! bar and counters, and past runs (`GET /admin/resync/runs`). While a run
//! runs, [`SCRIPT`] (served at [`SCRIPT_PATH`]: the CSP allows no inline
//! script) polls [`STATUS_PATH`], the latest run's status fields as JSON,
//! and updates the bar and counters with `textContent`.
//!
//! Pure: the glue performs the [`Fetch`]es and the [`Post`], and hands
//! back the [`Answer`]s. Never sends a secret or `rejected_ids` as JSON.

use clerk_sync_resync::status::{Counters, RejectedId};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::{Incoming, Reply};
use crate::config::{DashboardConfig, ADMIN_SECRET};
use crate::session;
use crate::sources::{json_of, stable_code, Answer, Fetch, Post, SourceError, LATEST_RUN_PATH};
use crate::views;

pub const PAGE_PATH: &str = "/resync";
pub const START_PATH: &str = "/resync/start";
pub const STATUS_PATH: &str = "/resync/status.json";
pub const SCRIPT_PATH: &str = "/resync.js";
pub const RUNS_PATH: &str = "/admin/resync/runs";
/// The one-time notice after a start, read and cleared by the page.
pub const NOTICE_COOKIE: &str = "clerk_sync_notice";
/// How often the script asks for the status.
pub const POLL_MS: u32 = 1_500;

/// What a start form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    Failed,
    Pending,
}

impl Scope {
    /// The form's `scope` field.
    pub fn from_form(body: &[u8]) -> Option<Self> {
        let (_, value) = form_urlencoded::parse(body).find(|(name, _)| name == "scope")?;
        match value.as_ref() {
            "all" => Some(Self::All),
            "failed" => Some(Self::Failed),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }

    /// The body of `POST /admin/resync`.
    pub fn body(self) -> &'static str {
        match self {
            Self::All => "{}",
            Self::Failed => r#"{"scope":"failed"}"#,
            Self::Pending => r#"{"scope":"pending"}"#,
        }
    }
}

/// The page's one request: every run, the running one first.
pub fn runs_fetch(config: &DashboardConfig) -> Fetch<'_> {
    Fetch::relay_admin(config, RUNS_PATH)
}

/// The status endpoint's request: the latest run.
pub fn latest_fetch(config: &DashboardConfig) -> Fetch<'_> {
    crate::sources::latest_run_fetch(config)
}

/// A run's status as the relay reports it, the fields shown and polled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunView {
    pub run_id: String,
    pub scope: String,
    pub state: String,
    pub phase: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub waiting_until: Option<String>,
    pub last_error: Option<crate::sources::RunError>,
    pub pages: u64,
    /// The run's counters: the re-sync crate's own type, as the relay sends it.
    #[serde(flatten)]
    pub counters: Counters,
    /// Shown on the page, never in [`STATUS_PATH`]'s JSON.
    #[serde(skip_serializing)]
    pub rejected_ids: Vec<RejectedId>,
}

impl RunView {
    /// The counters, in the order shown, with the README's meaning of each.
    pub fn counters(&self) -> [(&'static str, u64, &'static str); 12] {
        [
            ("clerk_users_seen", self.counters.clerk_users_seen, "Clerk users read to be upserted"),
            ("clerk_requests", self.counters.clerk_requests, "Clerk requests issued, retries and 429s included"),
            ("upserts_sent", self.counters.upserts_sent, "upsert commands the main API answered"),
            ("deletes_sent", self.counters.deletes_sent, "delete commands the main API answered (a full run's sweep: users Clerk no longer has)"),
            ("applied", self.counters.applied, "commands that changed the table"),
            ("stale", self.counters.stale, "upserts older than the row (a newer webhook got there first)"),
            ("duplicates", self.counters.duplicates, "operation ids the main API had already applied (a resumed page)"),
            ("ignored_deleted", self.counters.ignored_deleted, "upserts for users the table holds a tombstone for"),
            ("rejected", self.counters.rejected, "users that could not be mapped and commands the main API refused"),
            ("pending_unmatched", self.counters.pending_unmatched, "pending rows Clerk has no user for; left as they are"),
            ("failed_unmatched", self.counters.failed_unmatched, "failed rows whose Clerk id Clerk no longer has; left for a full run's sweep"),
            ("pages", self.pages, "pages done (each one batch to the main API)"),
        ]
    }

    /// Whole percent of `clerk_users_seen` of `clerk_users_total`, at most 100.
    pub fn percent(&self) -> Option<u64> {
        let total = self.counters.clerk_users_total?;
        if total == 0 {
            return Some(if self.state == "running" { 0 } else { 100 });
        }
        Some((self.counters.clerk_users_seen.saturating_mul(100) / total).min(100))
    }
}

/// `{"runs":[…]}`.
pub fn read_runs(answer: Answer) -> Result<Vec<RunView>, SourceError> {
    let (_, mut j) = json_of(answer, ADMIN_SECRET, &[])?;
    let runs: Vec<RunView> =
        serde_json::from_value(j["runs"].take()).map_err(|_| SourceError::Unreadable)?;
    if runs.iter().any(|r| r.run_id.is_empty()) {
        return Err(SourceError::Unreadable);
    }
    Ok(runs)
}

/// `GET /admin/resync`: the latest run, or none yet.
pub fn read_latest(answer: Answer) -> Result<Option<RunView>, SourceError> {
    if let Answer::Status { status: 404, body } = &answer {
        let j = serde_json::from_slice::<Value>(body).unwrap_or_default();
        if j["error"] == "run_not_found" {
            return Ok(None);
        }
    }
    let (_, j) = json_of(answer, ADMIN_SECRET, &[])?;
    let run: RunView = serde_json::from_value(j).map_err(|_| SourceError::Unreadable)?;
    if run.run_id.is_empty() {
        return Err(SourceError::Unreadable);
    }
    Ok(Some(run))
}

/// What the page says after a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Started(String),
    /// The relay refused: its status and stable code.
    Refused {
        status: u16,
        code: Option<String>,
    },
    /// The relay could not be asked (`unreachable`, `timed out`, …).
    NotSent(String),
}

impl Notice {
    fn to_cookie_value(&self) -> String {
        match self {
            Self::Started(id) => format!("started.{id}"),
            Self::Refused { status, code } => {
                format!("refused.{status}.{}", code.as_deref().unwrap_or(""))
            }
            Self::NotSent(why) => format!("notsent.{}", why.replace(' ', "_")),
        }
    }

    /// Read back; anything that is not a word of the expected shape is
    /// dropped (the cookie is the browser's to change).
    fn from_cookie_value(value: &str) -> Option<Self> {
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let (kind, rest) = value.split_once('.')?;
        match kind {
            "started" if word(rest) => Some(Self::Started(rest.to_owned())),
            "refused" => {
                let (status, code) = rest.split_once('.')?;
                Some(Self::Refused {
                    status: status.parse().ok().filter(|s| (100..600).contains(s))?,
                    code: stable_code(code),
                })
            }
            "notsent" if word(rest) => Some(Self::NotSent(rest.replace('_', " "))),
            _ => None,
        }
    }

    /// From a `Cookie` header.
    pub fn from_cookie_header(header: Option<&str>) -> Option<Self> {
        header?
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(name, _)| *name == NOTICE_COOKIE)
            .and_then(|(_, value)| Self::from_cookie_value(value))
    }
}

fn notice_cookie(value: &str, max_age: u32, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{NOTICE_COOKIE}={value}; Max-Age={max_age}; Path={PAGE_PATH}; HttpOnly; SameSite=Strict{secure}")
}

/// The request a start form asks for, or the form's error page.
pub fn start_post<'c>(
    config: &'c DashboardConfig,
    form: Result<Vec<u8>, crate::app::PageError>,
) -> Result<Post<'c>, Reply> {
    let scope = form.and_then(|body| Scope::from_form(&body).ok_or(crate::app::PageError::BadForm));
    match scope {
        Ok(scope) => Ok(Post::relay_admin(
            config,
            LATEST_RUN_PATH,
            scope.body().to_owned(),
        )),
        Err(e) => Err(Reply::error(&e)),
    }
}

/// The relay's answer to the start: 303 to the page with the notice.
pub fn started(answer: Answer, req: &Incoming<'_>) -> Reply {
    let notice = match answer {
        Answer::Status { status, body } => {
            let j = serde_json::from_slice::<Value>(&body).unwrap_or_default();
            match j["run_id"].as_str() {
                Some(id)
                    if (200..300).contains(&status)
                        && Notice::from_cookie_value(&format!("started.{id}")).is_some() =>
                {
                    Notice::Started(id.to_owned())
                }
                _ if (200..300).contains(&status) => Notice::NotSent("unreadable answer".into()),
                _ => Notice::Refused {
                    status,
                    code: j["error"].as_str().and_then(stable_code),
                },
            }
        }
        Answer::Unreachable => Notice::NotSent("unreachable".into()),
        Answer::TimedOut => Notice::NotSent("timed out".into()),
    };
    let cookie = notice_cookie(&notice.to_cookie_value(), 60, session::is_https(req.url));
    Reply {
        status: 303,
        content_type: "text/plain; charset=utf-8",
        body: String::new(),
        location: Some(PAGE_PATH.to_owned()),
        set_cookie: Some(cookie),
        allow: None,
    }
}

/// The page, from the answer to [`runs_fetch`]; shows and clears the notice.
pub fn page(answer: Answer, req: &Incoming<'_>) -> Reply {
    let notice = Notice::from_cookie_header(req.cookie);
    let runs = read_runs(answer);
    let cleared = notice
        .is_some()
        .then(|| notice_cookie("", 0, session::is_https(req.url)));
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: resync_page(&runs, notice.as_ref()).into_string(),
        location: None,
        set_cookie: cleared,
        allow: None,
    }
}

fn json_reply(status: u16, value: &Value) -> Reply {
    Reply {
        status,
        content_type: "application/json; charset=utf-8",
        body: value.to_string(),
        location: None,
        set_cookie: None,
        allow: None,
    }
}

/// [`STATUS_PATH`] when signed out.
pub fn status_signed_out() -> Reply {
    json_reply(401, &json!({"ok": false, "error": "signed_out"}))
}

/// [`STATUS_PATH`]: `{"ok":true,"run":{…}|null,"percent":…}`, or
/// `{"ok":false,"error":"<why the relay could not be read>"}` (502).
pub fn status_json(answer: Answer) -> Reply {
    match read_latest(answer) {
        Ok(run) => {
            let percent = run.as_ref().and_then(RunView::percent);
            json_reply(200, &json!({"ok": true, "run": run, "percent": percent}))
        }
        Err(e) => json_reply(502, &json!({"ok": false, "error": e.to_string()})),
    }
}

/// The script answer.
pub fn script() -> Reply {
    Reply {
        status: 200,
        content_type: "text/javascript; charset=utf-8",
        body: SCRIPT.to_owned(),
        location: None,
        set_cookie: None,
        allow: None,
    }
}

/// Polls the status while the page's latest run runs; text only, never markup.
pub const SCRIPT: &str = r#""use strict";
(function () {
  var root = document.getElementById("latest-run");
  if (!root || root.getAttribute("data-state") !== "running") return;
  var runId = root.getAttribute("data-run-id");
  var every = Number(root.getAttribute("data-poll-ms")) || 1500;
  function set(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }
  function show(run, percent) {
    var bar = document.getElementById("run-progress");
    if (bar && run.clerk_users_total !== null && run.clerk_users_total !== undefined) {
      bar.max = Math.max(run.clerk_users_total, 1);
      bar.value = Math.min(run.clerk_users_seen, bar.max);
      set("run-total", String(run.clerk_users_total));
    }
    set("run-seen", String(run.clerk_users_seen));
    set("run-percent", percent === null || percent === undefined ? "" : percent + " %");
    set("run-phase", String(run.phase));
    set("run-waiting", run.waiting_until ? "waiting until " + run.waiting_until : "");
    set("run-last-error", run.last_error ? run.last_error.code + " " + run.last_error.message : "");
    var cells = document.querySelectorAll("[data-counter]");
    for (var i = 0; i < cells.length; i++) {
      var name = cells[i].getAttribute("data-counter");
      if (typeof run[name] === "number") cells[i].textContent = String(run[name]);
    }
  }
  function tick() {
    fetch("/resync/status.json", { credentials: "same-origin", cache: "no-store", headers: { accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.json();
      })
      .then(function (j) {
        if (j === null) return;
        if (!j.ok || !j.run) { set("run-poll-error", j.ok ? "" : "Status: " + j.error); setTimeout(tick, every); return; }
        set("run-poll-error", "");
        show(j.run, j.percent);
        if (j.run.run_id !== runId || j.run.state !== "running") { window.location.reload(); return; }
        setTimeout(tick, every);
      })
      .catch(function () { set("run-poll-error", "Status: unreachable"); setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"#;

/// The page itself.
pub fn resync_page(runs: &Result<Vec<RunView>, SourceError>, notice: Option<&Notice>) -> Markup {
    views::layout(
        "Re-sync",
        true,
        html! {
            @if let Some(n) = notice {
                section #notice role="status" {
                    @match n {
                        Notice::Started(id) => p.ok { "Started run " code { (id) } "." },
                        Notice::Refused { status, code } => p.error {
                            "The relay refused the run: " (status)
                            @if let Some(c) = code { " " code { (c) } }
                            @if code.as_deref() == Some("resync_running") { " (a run is already running)." }
                            @if code.as_deref() == Some("resync_unconfigured") { " (the re-sync Worker's settings are missing; see the relay's /health)." }
                        },
                        Notice::NotSent(why) => p.error { "The run could not be started: relay " (why) "." },
                    }
                }
            }
            section #start {
                h2 { "Start a run" }
                @for (scope, label, what) in [
                    ("all", "Full re-sync", "every Clerk user, then the deletion sweep"),
                    ("failed", "Failed rows only", "re-read the main API's failed rows from Clerk"),
                    ("pending", "Pending rows only", "look up the main API's pending rows in Clerk"),
                ] {
                    form.start method="post" action=(START_PATH) {
                        input type="hidden" name="scope" value=(scope);
                        button type="submit" id={ "start-" (scope) } { (label) }
                        " " span.muted { (what) }
                    }
                }
            }
            @match runs {
                Err(e) => section #latest { p.error.source-error { "Re-sync: " (e.to_string()) } },
                Ok(runs) => {
                    section #latest {
                        h2 { "Latest run" }
                        @match runs.first() {
                            None => p.muted { "No re-sync run yet." },
                            Some(run) => (latest_run(run)),
                        }
                    }
                    @if runs.len() > 1 {
                        section #past {
                            h2 { "Past runs" }
                            (runs_table(&runs[1..]))
                        }
                    }
                }
            }
            script src=(SCRIPT_PATH) defer {}
        },
    )
}

fn latest_run(run: &RunView) -> Markup {
    let total = run.counters.clerk_users_total;
    html! {
        div #latest-run data-run-id=(run.run_id) data-state=(run.state) data-poll-ms=(POLL_MS) {
            p {
                "Run " code { (run.run_id) } " · scope " (run.scope) " · "
                strong #run-state { (run.state) } " · phase " span #run-phase { (run.phase) }
            }
            p {
                @match total {
                    Some(t) => progress #run-progress max=(t.max(1)) value=(run.counters.clerk_users_seen.min(t.max(1))) {},
                    None => progress #run-progress {},
                }
                " " span #run-seen { (run.counters.clerk_users_seen) } " of "
                span #run-total { @match total { Some(t) => (t), None => "?" } }
                " users seen " span #run-percent { @if let Some(p) = run.percent() { (p) " %" } }
            }
            p.muted {
                "Started " (run.started_at.as_deref().unwrap_or("—"))
                " · finished " (run.finished_at.as_deref().unwrap_or("—"))
                " " span #run-waiting { @if let Some(w) = &run.waiting_until { "waiting until " (w) } }
            }
            p.error #run-last-error {
                @if let Some(e) = &run.last_error { (e.code) " " (e.message) }
            }
            p.error #run-poll-error {}
            table #counters {
                tr { th { "counter" } th { "value" } th { "meaning" } }
                tr {
                    th { code { "clerk_users_total" } }
                    td.n #counter-clerk_users_total data-counter="clerk_users_total" {
                        @match total { Some(t) => (t), None => "—" }
                    }
                    td.muted { "full run: Clerk's user count at the start (the bar's end); failed/pending: rows listed so far" }
                }
                @for (name, value, meaning) in run.counters() {
                    tr {
                        th { code { (name) } }
                        td.n id={ "counter-" (name) } data-counter=(name) { (value) }
                        td.muted { (meaning) }
                    }
                }
            }
            @if !run.rejected_ids.is_empty() {
                h3 { "Rejected (first " (run.rejected_ids.len()) ")" }
                ul #rejected-ids {
                    @for r in &run.rejected_ids {
                        li { code { (r.clerk_id.as_deref().unwrap_or("(no id)")) } " " (r.reason) }
                    }
                }
            }
        }
    }
}

fn runs_table(runs: &[RunView]) -> Markup {
    html! {
        table #runs {
            tr {
                th { "run" } th { "scope" } th { "state" } th { "started" } th { "finished" }
                th { "seen / total" } th { "applied" } th { "rejected" } th { "error" }
            }
            @for r in runs {
                tr.run data-run-id=(r.run_id) {
                    td { code { (r.run_id) } }
                    td { (r.scope) }
                    td { (r.state) }
                    td { (r.started_at.as_deref().unwrap_or("—")) }
                    td { (r.finished_at.as_deref().unwrap_or("—")) }
                    td.n {
                        (r.counters.clerk_users_seen) " / "
                        @match r.counters.clerk_users_total { Some(t) => (t), None => "—" }
                    }
                    td.n { (r.counters.applied) }
                    td.n { (r.counters.rejected) }
                    td { @if let Some(e) = &r.last_error { code { (e.code) } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:5173/resync";

    fn req(cookie: Option<&str>) -> Incoming<'_> {
        Incoming {
            method: "GET",
            url: URL,
            cookie,
            origin: None,
        }
    }

    fn running() -> Value {
        json!({"run_id": "rs_1_ab", "scope": "all", "state": "running", "phase": "upsert",
               "started_at": "2026-12-07T10:00:00.000Z", "finished_at": null,
               "last_error": {"code": "clerk_unavailable", "message": "Clerk answered 503 <script>x</script>"},
               "clerk_users_total": 1200, "clerk_requests": 4, "clerk_users_seen": 500,
               "upserts_sent": 500, "deletes_sent": 0, "applied": 480, "stale": 5, "duplicates": 10,
               "ignored_deleted": 2, "rejected": 3, "pending_unmatched": 0, "failed_unmatched": 0,
               "rejected_ids": [{"clerk_id": "<script>alert(1)</script>", "reason": "invalid_user"}],
               "pages": 1, "waiting_until": null})
    }

    fn done(id: &str) -> Value {
        json!({"run_id": id, "scope": "failed", "state": "completed", "phase": "done",
               "clerk_users_total": 7, "clerk_users_seen": 7, "applied": 7, "pages": 1})
    }

    fn answer(status: u16, body: Value) -> Answer {
        Answer::Status {
            status,
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn the_scope_comes_from_the_form() {
        assert_eq!(Scope::from_form(b"scope=all"), Some(Scope::All));
        assert_eq!(Scope::from_form(b"x=1&scope=failed"), Some(Scope::Failed));
        assert_eq!(Scope::from_form(b"scope=pending"), Some(Scope::Pending));
        assert_eq!(Scope::from_form(b"scope=users"), None);
        assert_eq!(Scope::from_form(b""), None);
        assert_eq!(
            [Scope::All, Scope::Failed, Scope::Pending].map(Scope::body),
            ["{}", r#"{"scope":"failed"}"#, r#"{"scope":"pending"}"#]
        );
    }

    #[test]
    fn the_latest_run_shows_its_bar_and_every_counter() {
        let runs = read_runs(answer(
            200,
            json!({"ok": true, "runs": [running(), done("rs_0_cd")]}),
        ))
        .unwrap();
        let page = resync_page(&Ok(runs), None).into_string();
        for text in [
            r#"<div id="latest-run" data-run-id="rs_1_ab" data-state="running" data-poll-ms="1500">"#,
            r#"<progress id="run-progress" max="1200" value="500"></progress>"#,
            r#"<span id="run-seen">500</span> of <span id="run-total">1200</span>"#,
            r#"<span id="run-percent">41 %</span>"#,
            r#"<td class="n" id="counter-clerk_users_total" data-counter="clerk_users_total">1200</td>"#,
            r#"<td class="n" id="counter-applied" data-counter="applied">480</td>"#,
            r#"<td class="n" id="counter-duplicates" data-counter="duplicates">10</td>"#,
            r#"<td class="n" id="counter-ignored_deleted" data-counter="ignored_deleted">2</td>"#,
            "commands that changed the table",
            "upserts older than the row (a newer webhook got there first)",
            r#"<tr class="run" data-run-id="rs_0_cd">"#,
            r#"<script src="/resync.js" defer></script>"#,
            r#"<form class="start" method="post" action="/resync/start"><input type="hidden" name="scope" value="pending">"#,
        ] {
            assert!(page.contains(text), "{text} not in {page}");
        }
        assert_eq!(page.matches("data-counter=").count(), 13);
    }

    #[test]
    fn a_run_without_a_total_has_an_indeterminate_bar() {
        let mut run: RunView = serde_json::from_value(running()).unwrap();
        run.counters.clerk_users_total = None;
        run.phase = "count".into();
        let page = resync_page(&Ok(vec![run.clone()]), None).into_string();
        assert!(
            page.contains(r#"<progress id="run-progress"></progress>"#),
            "{page}"
        );
        assert!(page.contains(r#"<span id="run-total">?</span>"#));
        assert_eq!(run.percent(), None);
        run.counters.clerk_users_total = Some(0);
        run.state = "completed".into();
        assert_eq!(run.percent(), Some(100));
        run.counters.clerk_users_total = Some(3);
        run.counters.clerk_users_seen = 5;
        assert_eq!(run.percent(), Some(100), "never above");
    }

    #[test]
    fn strings_from_the_relay_render_as_text() {
        let mut bad = running();
        bad["run_id"] = json!("<script>alert(2)</script>");
        bad["scope"] = json!("<b>all</b>");
        let page = resync_page(
            &read_runs(answer(200, json!({"runs": [bad.clone(), bad]}))),
            None,
        )
        .into_string();
        assert!(
            !page.contains("<script>") && !page.contains("<b>"),
            "{page}"
        );
        assert!(page.contains("Clerk answered 503 &lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code> invalid_user"));
        // The one script tag is the dashboard's own.
        assert_eq!(page.matches("<script").count(), 1);
    }

    #[test]
    fn no_run_yet_and_a_failed_source() {
        let page = resync_page(
            &read_runs(answer(200, json!({"ok": true, "runs": []}))),
            None,
        )
        .into_string();
        assert!(page.contains("No re-sync run yet.") && !page.contains("latest-run"));
        let runs = read_runs(answer(
            503,
            json!({"ok": false, "error": "resync_unconfigured"}),
        ));
        let page = resync_page(&runs, None).into_string();
        assert!(
            page.contains("Re-sync: answered 503 (resync_unconfigured)"),
            "{page}"
        );
        assert!(page.contains("action=\"/resync/start\""), "the forms stay");
        assert_eq!(
            read_runs(answer(200, json!({"runs": [{}]}))),
            Err(SourceError::Unreadable)
        );
    }

    #[test]
    fn the_status_json_holds_the_run_fields_only() {
        let r = status_json(answer(200, running()));
        assert_eq!(
            (r.status, r.content_type),
            (200, "application/json; charset=utf-8")
        );
        let j: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(j["ok"], true);
        assert_eq!(j["percent"], 41);
        let run = j["run"].as_object().unwrap();
        let mut keys: Vec<&str> = run.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "applied",
                "clerk_requests",
                "clerk_users_seen",
                "clerk_users_total",
                "deletes_sent",
                "duplicates",
                "failed_unmatched",
                "finished_at",
                "ignored_deleted",
                "last_error",
                "pages",
                "pending_unmatched",
                "phase",
                "rejected",
                "run_id",
                "scope",
                "stale",
                "started_at",
                "state",
                "upserts_sent",
                "waiting_until",
            ]
        );
        assert_eq!(run["clerk_users_seen"], 500);
        assert_eq!(run["last_error"]["code"], "clerk_unavailable");
        let none = status_json(answer(404, json!({"ok": false, "error": "run_not_found"})));
        assert_eq!(none.body, r#"{"ok":true,"percent":null,"run":null}"#);
        let down = status_json(Answer::Unreachable);
        assert_eq!(
            (down.status, down.body.as_str()),
            (502, r#"{"error":"unreachable","ok":false}"#)
        );
        let denied = status_json(answer(401, json!({"ok": false, "error": "unauthorized"})));
        assert!(denied.body.contains("check ADMIN_SECRET") && !denied.body.contains("test-admin"));
        assert_eq!(status_signed_out().status, 401);
    }

    #[test]
    fn a_start_answers_303_with_a_notice_the_page_shows_once() {
        let ok = started(
            answer(202, json!({"ok": true, "run_id": "rs_9_ef"})),
            &req(None),
        );
        assert_eq!((ok.status, ok.location.as_deref()), (303, Some("/resync")));
        let cookie = ok.set_cookie.unwrap();
        assert_eq!(
            cookie,
            "clerk_sync_notice=started.rs_9_ef; Max-Age=60; Path=/resync; HttpOnly; SameSite=Strict"
        );
        let pair = cookie.split(';').next().unwrap();
        let header = format!("clerk_sync_session=x; {pair}");
        let shown = page(
            answer(200, json!({"runs": [done("rs_9_ef")]})),
            &req(Some(&header)),
        );
        assert!(
            shown.body.contains("Started run <code>rs_9_ef</code>."),
            "{}",
            shown.body
        );
        assert!(shown
            .set_cookie
            .unwrap()
            .starts_with("clerk_sync_notice=; Max-Age=0;"));

        for (answer, value, text) in [
            (
                answer(409, json!({"ok": false, "error": "resync_running", "run_id": "rs_1_ab"})),
                "refused.409.resync_running",
                "The relay refused the run: 409 <code>resync_running</code> (a run is already running).",
            ),
            (
                answer(503, json!({"ok": false, "error": "resync_unconfigured", "problems": ["CLERK_SECRET_KEY"]})),
                "refused.503.resync_unconfigured",
                "503 <code>resync_unconfigured</code> (the re-sync Worker's settings are missing",
            ),
            (
                answer(502, json!({"error": "Free <b>text</b>"})),
                "refused.502.",
                "The relay refused the run: 502</p>",
            ),
            (Answer::TimedOut, "notsent.timed_out", "The run could not be started: relay timed out."),
        ] {
            let reply = started(answer, &req(None));
            let cookie = reply.set_cookie.unwrap();
            assert!(cookie.starts_with(&format!("clerk_sync_notice={value};")), "{cookie}");
            let pair = cookie.split(';').next().unwrap().to_owned();
            let notice = Notice::from_cookie_header(Some(&pair));
            let html = resync_page(&Ok(vec![]), notice.as_ref()).into_string();
            assert!(html.contains(text), "{text} not in {html}");
        }
        // A notice cookie the browser changed is ignored.
        for forged in [
            "clerk_sync_notice=started.<b>",
            "clerk_sync_notice=refused.x.y",
            "clerk_sync_notice=other",
        ] {
            assert_eq!(Notice::from_cookie_header(Some(forged)), None, "{forged}");
        }
        let plain = page(answer(200, json!({"runs": []})), &req(None));
        assert_eq!(plain.set_cookie, None, "nothing to clear");
    }

    #[test]
    fn the_script_writes_text_only() {
        assert!(SCRIPT.contains("textContent"));
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"));
        assert!(SCRIPT.contains(STATUS_PATH));
        let s = script();
        assert_eq!(s.content_type, "text/javascript; charset=utf-8");
    }

    #[test]
    fn rejected_ids_stay_on_the_page() {
        let run: RunView = serde_json::from_value(running()).unwrap();
        assert_eq!(run.rejected_ids.len(), 1);
        assert!(serde_json::to_value(&run)
            .unwrap()
            .get("rejected_ids")
            .is_none());
    }
}
