//! The users needing attention (`GET /users`), a user (`GET
//! /users/{clerk_id}`) and its "Re-sync this user" button (`POST
//! /users/{clerk_id}/resync`): their routes, what each reads from the main
//! API or asks of the relay, how the answers are read, and the pages.
//! Pure: the glue performs the [`Fetch`] or the [`Post`]; `app` checks
//! the session and the `Origin` first. Every value from Clerk or a source
//! is interpolated by maud, escaped; nothing here uses `PreEscaped`.

pub use clerk_sync_contract::rows::{ListedRow, UserRow};
use clerk_sync_contract::time::parse_millis;
use clerk_sync_contract::UnixMillis;
use clerk_sync_resync::start::is_clerk_id;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use crate::app::PageError;
use crate::config::{DashboardConfig, API_SECRET};
use crate::sources::{json_of, stable_code, Answer, Fetch, Post, SourceError};
use crate::views::layout;

pub const USERS_PATH: &str = "/users";
/// The main API's rows route, and the relay's admin route that starts a run.
pub const API_USERS_PATH: &str = "/internal/users";
pub const START_RUN_PATH: &str = "/admin/resync";
/// Rows per page of the list.
pub const PAGE_LIMIT: u32 = 50;
/// The longest search: an email (320) or a Clerk id (128).
pub const MAX_SEARCH_LEN: usize = 320;
/// The longest cursor the main API answers (`next_after`).
pub const MAX_CURSOR_LEN: usize = 512;

/// A route of this module, its Clerk id checked ([`is_clerk_id`]: the
/// re-sync's own rule, so any id shown can be re-synced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsersRoute {
    List,
    User(String),
    Resync(String),
}

/// `None` when the path is not one of this module's.
pub fn route(method: &str, path: &str) -> Option<Result<UsersRoute, PageError>> {
    let only = |allowed: &'static str, route: UsersRoute| {
        Some(if method == allowed {
            Ok(route)
        } else {
            Err(PageError::MethodNotAllowed(allowed))
        })
    };
    if path == USERS_PATH {
        return only("GET", UsersRoute::List);
    }
    let rest = path.strip_prefix(USERS_PATH)?.strip_prefix('/')?;
    let (id, resync) = match rest.split_once('/') {
        Some((id, "resync")) => (id, true),
        Some(_) => return Some(Err(PageError::NotFound)),
        None => (rest, false),
    };
    if !is_clerk_id(id) {
        return Some(Err(PageError::NotFound));
    }
    if resync {
        only("POST", UsersRoute::Resync(id.to_owned()))
    } else {
        only("GET", UsersRoute::User(id.to_owned()))
    }
}

/// The query string of an absolute URL, without `?` or fragment.
pub fn query_of(url: &str) -> Option<&str> {
    let q = url.split_once('?')?.1;
    Some(q.split('#').next().unwrap_or(q))
}

fn user_path(clerk_id: &str) -> String {
    format!("{USERS_PATH}/{clerk_id}")
}

// ---- the list -------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    #[default]
    Failed,
    Pending,
}

impl Tab {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Pending => "pending",
        }
    }
}

/// What `GET /users?tab=…&after=…&q=…` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub tab: Tab,
    pub after: Option<String>,
    /// An email to find, whatever its row's status.
    pub email: Option<String>,
    /// A search that is neither an email the API takes nor a Clerk id.
    pub refused: Option<String>,
}

/// What the list does: go to a user's page, or read rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    GoTo(String),
    Show(ListQuery),
}

/// Reads the list's query: unknown parameters and values are ignored (it
/// is the dashboard's own form and links). A search shaped like a Clerk id
/// (`user_…`) goes to that user's page; any other is an email.
pub fn listing(query: Option<&str>) -> Listing {
    let mut q = ListQuery::default();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "tab" if value == "pending" => q.tab = Tab::Pending,
            "after" if !value.is_empty() && value.len() <= MAX_CURSOR_LEN => {
                q.after = Some(value.into_owned());
            }
            "q" => {
                let search = value.trim();
                if search.starts_with("user_") && is_clerk_id(search) {
                    return Listing::GoTo(user_path(search));
                }
                if search.len() > MAX_SEARCH_LEN {
                    q.refused = Some(search.chars().take(40).collect());
                } else if !search.is_empty() {
                    q.email = Some(search.to_owned());
                }
            }
            _ => {}
        }
    }
    Listing::Show(q)
}

/// The main API's rows for the list: the tab's status a page of
/// [`PAGE_LIMIT`] at a time, or the one live row with the email searched.
pub fn list_fetch<'c>(config: &'c DashboardConfig, q: &ListQuery) -> Fetch<'c> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(email) = &q.email {
        query.append_pair("email", email);
    } else {
        query.append_pair("sync_status", q.tab.as_str());
        if let Some(after) = &q.after {
            query.append_pair("after", after);
        }
    }
    query.append_pair("limit", &PAGE_LIMIT.to_string());
    Fetch::api(config, &format!("{API_USERS_PATH}?{}", query.finish()))
}

/// A row of `GET /internal/users`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RowsPage {
    pub users: Vec<ListedRow>,
    pub next_after: Option<String>,
}

pub fn read_rows(answer: Answer) -> Result<RowsPage, SourceError> {
    let (_, j) = json_of(answer, API_SECRET, &[])?;
    if !j["users"].is_array() {
        return Err(SourceError::Unreadable);
    }
    serde_json::from_value(j).map_err(|_| SourceError::Unreadable)
}

// ---- a user ---------------------------------------------------------------

/// The main API's `GET /internal/users/{clerk_id}`.
pub fn user_fetch<'c>(config: &'c DashboardConfig, clerk_id: &str) -> Fetch<'c> {
    Fetch::api(config, &format!("{API_USERS_PATH}/{clerk_id}"))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Tombstone {
    pub deleted_at: String,
    pub operation_id: String,
}

/// A `sync_audit` row: what became of one command for this Clerk id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AuditRow {
    pub received_at: Option<String>,
    pub operation_id: Option<String>,
    pub command: Option<String>,
    pub event_type: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UserDetail {
    pub deleted: bool,
    pub user: Option<UserRow>,
    pub tombstone: Option<Tombstone>,
    pub audit: Vec<AuditRow>,
}

/// The user, or `None` when the main API knows nothing of the id (404
/// `user_not_found`).
pub fn read_user(answer: Answer) -> Result<Option<UserDetail>, SourceError> {
    if let Answer::Status { status: 404, body } = &answer {
        let j = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
        if j["error"] == "user_not_found" {
            return Ok(None);
        }
    }
    let (_, j) = json_of(answer, API_SECRET, &[])?;
    serde_json::from_value(j)
        .map(Some)
        .map_err(|_| SourceError::Unreadable)
}

// ---- re-sync this user ----------------------------------------------------

/// The relay's `POST /admin/resync` for this one user.
pub fn resync_post<'c>(config: &'c DashboardConfig, clerk_id: &str) -> Post<'c> {
    Post::relay_admin(
        config,
        START_RUN_PATH,
        json!({"scope": "users", "clerk_ids": [clerk_id]}).to_string(),
    )
}

/// What the user page says after its button: carried in the query of the
/// 303 back to it, and shown only when shaped like a run id or a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Started { run_id: String },
    Refused { status: Option<u16>, code: String },
}

/// `[A-Za-z0-9_-]`, 1 to 64: a run id or a stable code, never free text.
fn is_token(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Notice {
    /// What the relay answered to [`resync_post`].
    pub fn of_answer(answer: Answer) -> Self {
        let refused = |status, code: &str| Self::Refused {
            status,
            code: code.to_owned(),
        };
        match answer {
            Answer::Unreachable => refused(None, "unreachable"),
            Answer::TimedOut => refused(None, "timed_out"),
            Answer::Status { status, body } => {
                let j = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
                let run_id = j["run_id"].as_str().filter(|r| is_token(r));
                match run_id {
                    Some(run_id) if (200..300).contains(&status) => Self::Started {
                        run_id: run_id.to_owned(),
                    },
                    _ if status == 401 || status == 403 => refused(Some(status), "unauthorized"),
                    _ => {
                        let code = j["error"].as_str().and_then(stable_code);
                        refused(Some(status), code.as_deref().unwrap_or("unreadable_answer"))
                    }
                }
            }
        }
    }

    /// The 303's location: the user page with the notice in its query.
    pub fn location(&self, clerk_id: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        match self {
            Self::Started { run_id } => q.append_pair("resync", run_id),
            Self::Refused { status, code } => {
                if let Some(status) = status {
                    q.append_pair("resync_status", &status.to_string());
                }
                q.append_pair("resync_error", code)
            }
        };
        format!("{}?{}", user_path(clerk_id), q.finish())
    }

    /// The notice in a user page's query, if any.
    pub fn from_query(query: Option<&str>) -> Option<Self> {
        let (mut run, mut status, mut code) = (None, None, None);
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*name {
                "resync" if is_token(&value) => run = Some(value.into_owned()),
                "resync_error" if is_token(&value) => code = Some(value.into_owned()),
                "resync_status" => status = value.parse::<u16>().ok(),
                _ => {}
            }
        }
        match (run, code) {
            (Some(run_id), None) => Some(Self::Started { run_id }),
            (None, Some(code)) => Some(Self::Refused { status, code }),
            _ => None,
        }
    }
}

// ---- the pages ------------------------------------------------------------

/// How long ago `at` was, as "3 d 4 h", "2 h 5 min", "40 s"; `None` when
/// `at` is not a contract time.
pub fn age(at: &str, now: UnixMillis) -> Option<String> {
    let secs = (now.as_millis() - parse_millis(at)?).max(0) / 1000;
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    Some(match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    })
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("—")
}

fn search_form(value: &str) -> Markup {
    html! {
        form #search method="get" action=(USERS_PATH) {
            label {
                "Email or Clerk id "
                input type="search" name="q" value=(value) maxlength="320" placeholder="ann@example.com or user_…";
            }
            button type="submit" { "Search" }
        }
    }
}

fn user_link(row: &ListedRow) -> Markup {
    html! {
        @match &row.clerk_id {
            Some(id) => a href=(user_path(id)) { code { (id) } },
            None => span.muted { "no Clerk id yet (row " code { (row.id) } ")" },
        }
    }
}

/// `GET /users`: a tab per status (or the search's result), the rows, and
/// the link to the next page.
pub fn users_page(q: &ListQuery, rows: &Result<RowsPage, SourceError>, now: UnixMillis) -> Markup {
    let search = q.email.as_deref().or(q.refused.as_deref()).unwrap_or("");
    layout(
        "Users needing attention",
        true,
        html! {
            section {
                (search_form(search))
                nav #tabs {
                    @for tab in [Tab::Failed, Tab::Pending] {
                        @if q.email.is_none() && q.tab == tab {
                            strong { (tab_label(tab)) }
                        } @else {
                            a href={ (USERS_PATH) "?tab=" (tab.as_str()) } { (tab_label(tab)) }
                        }
                        " "
                    }
                }
            }
            section #rows {
                @if let Some(refused) = &q.refused {
                    p.error { "Not a search: “" (refused) "…” is longer than an email can be." }
                } @else if let Some(email) = &q.email {
                    h2 { "Rows with the email " code { (email) } }
                    (listed(rows, None, q, now))
                } @else {
                    h2 { (tab_label(q.tab)) }
                    (listed(rows, Some(q.tab), q, now))
                }
            }
        },
    )
}

fn tab_label(tab: Tab) -> &'static str {
    match tab {
        Tab::Failed => "Failed rows",
        Tab::Pending => "Pending rows",
    }
}

fn listed(
    rows: &Result<RowsPage, SourceError>,
    tab: Option<Tab>,
    q: &ListQuery,
    now: UnixMillis,
) -> Markup {
    let page = match rows {
        Ok(page) => page,
        Err(e) => return html! { p.error.source-error { "Main API: " (e.to_string()) } },
    };
    html! {
        @if page.users.is_empty() {
            p.muted #no-rows {
                @match tab {
                    Some(Tab::Failed) => "No failed rows.",
                    Some(Tab::Pending) => "No pending rows.",
                    None => "No live row has this email.",
                }
            }
        } @else {
            table #user-rows {
                tr {
                    th { "Clerk id" } th { "Email" } th { "Status" }
                    @match tab {
                        Some(Tab::Pending) => {
                            th { "Pending for (since created_at)" }
                            th { "Last attempt" }
                        }
                        _ => { th { "Error" } th { "Last attempt" } }
                    }
                }
                @for row in &page.users {
                    tr.user-row {
                        td { (user_link(row)) }
                        td { (opt(&row.email)) }
                        td { (row.sync_status) @if row.deleted { " (deleted)" } }
                        @if tab == Some(Tab::Pending) {
                            td.age {
                                (age(&row.created_at, now).unwrap_or_else(|| "—".into()))
                            }
                        } @else {
                            td.sync-error { (opt(&row.sync_error)) }
                        }
                        td { (opt(&row.last_sync_attempt)) }
                    }
                }
            }
        }
        @if let (Some(next), Some(tab)) = (&page.next_after, tab) {
            @let href = {
                let mut s = form_urlencoded::Serializer::new(String::new());
                s.append_pair("tab", tab.as_str()).append_pair("after", next);
                format!("{USERS_PATH}?{}", s.finish())
            };
            p { a #next-page href=(href) { "next page" } }
        }
        @if q.after.is_some() && tab.is_some() {
            p { a href={ (USERS_PATH) "?tab=" (q.tab.as_str()) } { "first page" } }
        }
    }
}

/// `GET /users/{clerk_id}`: the row, its tombstone, its audit trail and the
/// button, with the notice the button's 303 carried.
pub fn user_page(
    clerk_id: &str,
    detail: &Result<Option<UserDetail>, SourceError>,
    notice: Option<&Notice>,
) -> Markup {
    layout(
        "A user",
        true,
        html! {
            p { a href=(USERS_PATH) { "← Users needing attention" } }
            @if let Some(n) = notice {
                @match n {
                    Notice::Started { run_id } => p.ok #notice role="status" {
                        "Re-sync started: run " code { (run_id) }
                    },
                    Notice::Refused { status, code } => p.error #notice role="alert" {
                        "Re-sync not started: "
                        @if let Some(s) = status { (s) " " }
                        code { (code) }
                    },
                }
            }
            section #user {
                h2 { "Clerk id " code { (clerk_id) } }
                form #resync method="post" action={ (user_path(clerk_id)) "/resync" } {
                    button type="submit" { "Re-sync this user" }
                }
                @match detail {
                    Err(e) => p.error.source-error { "Main API: " (e.to_string()) },
                    Ok(None) => p.muted { "The main API has no row, tombstone or audit row for this Clerk id." },
                    Ok(Some(d)) => (user_detail(d)),
                }
            }
        },
    )
}

fn user_detail(d: &UserDetail) -> Markup {
    html! {
        @match &d.user {
            Some(u) => (row_table(u)),
            None => p.muted { "No row." },
        }
        h2 { "Tombstone" }
        @match &d.tombstone {
            Some(t) => table #tombstone {
                tr { th { "Deleted at" } td { (t.deleted_at) } }
                tr { th { "Operation" } td { code { (t.operation_id) } } }
            },
            None => p.muted { "None." },
        }
        h2 { "Audit trail (newest first)" }
        @if d.audit.is_empty() {
            p.muted { "No audit rows." }
        } @else {
            table #audit {
                tr { th { "Received" } th { "Operation" } th { "Command" } th { "Event" } th { "Outcome" } th { "Error" } }
                @for a in &d.audit {
                    tr.audit-row {
                        td { (opt(&a.received_at)) }
                        td { code { (opt(&a.operation_id)) } }
                        td { (opt(&a.command)) }
                        td { (opt(&a.event_type)) }
                        td.outcome { (a.outcome) }
                        td { (opt(&a.error)) }
                    }
                }
            }
        }
    }
}

fn row_table(u: &UserRow) -> Markup {
    let fields: [(&str, Option<&str>); 16] = [
        ("id", Some(&u.id)),
        ("clerk_id", u.clerk_id.as_deref()),
        ("email", u.email.as_deref()),
        ("first_name", u.first_name.as_deref()),
        ("last_name", u.last_name.as_deref()),
        ("username", u.username.as_deref()),
        ("image_url", u.image_url.as_deref()),
        ("created_at", Some(u.created_at.as_str())),
        ("updated_at", Some(u.updated_at.as_str())),
        ("deleted_at", u.deleted_at.as_deref()),
        ("sync_status", Some(&u.sync_status)),
        ("last_sync_attempt", u.last_sync_attempt.as_deref()),
        ("sync_error", u.sync_error.as_deref()),
        ("clerk_updated_at", u.clerk_updated_at.as_deref()),
        ("last_operation_id", u.last_operation_id.as_deref()),
        ("link_by", u.link_by.as_deref()),
    ];
    html! {
        table #row {
            @for (name, value) in fields {
                tr { th { code { (name) } } td id={ "col-" (name) } { (value.unwrap_or("—")) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
    const XSS: &str = "<script>alert('x')</script>";

    fn config() -> DashboardConfig {
        DashboardConfig::from_lookup(|n| {
            Some(match n {
                config::API_URL => "http://127.0.0.1:8787".into(),
                config::RELAY_URL => "http://127.0.0.1:8788".into(),
                config::API_SECRET => "test-api-secret".into(),
                config::ADMIN_SECRET => "test-admin-secret".into(),
                _ => "a-long-enough-value-for-any-secret-0123456789".into(),
            })
        })
        .unwrap()
    }

    fn answer(status: u16, body: serde_json::Value) -> Answer {
        Answer::Status {
            status,
            body: body.to_string().into_bytes(),
        }
    }

    fn show(query: &str) -> ListQuery {
        match listing(Some(query)) {
            Listing::Show(q) => q,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn routes_take_a_clerk_id_by_the_resync_rule() {
        assert_eq!(route("GET", "/users"), Some(Ok(UsersRoute::List)));
        assert_eq!(
            route("GET", "/users/user_2x"),
            Some(Ok(UsersRoute::User("user_2x".into())))
        );
        assert_eq!(
            route("POST", "/users/user_2x/resync"),
            Some(Ok(UsersRoute::Resync("user_2x".into())))
        );
        assert_eq!(
            route("GET", "/users/user_2x/resync"),
            Some(Err(PageError::MethodNotAllowed("POST")))
        );
        assert_eq!(
            route("POST", "/users"),
            Some(Err(PageError::MethodNotAllowed("GET")))
        );
        for bad in [
            "/users/",
            "/users/-x",
            "/users/a%20b",
            "/users/%3Cscript%3E",
            "/users/user_1/other",
            "/users/user_1/resync/x",
        ] {
            assert_eq!(route("GET", bad), Some(Err(PageError::NotFound)), "{bad}");
        }
        let long = format!("/users/{}", "a".repeat(129));
        assert_eq!(route("GET", &long), Some(Err(PageError::NotFound)));
        assert_eq!(route("GET", "/usersx"), None);
        assert_eq!(route("GET", "/"), None);
        assert_eq!(
            query_of("http://h/users?tab=pending#x"),
            Some("tab=pending")
        );
        assert_eq!(query_of("http://h/users"), None);
    }

    #[test]
    fn the_list_reads_its_query_and_a_clerk_id_search_goes_to_the_user() {
        assert_eq!(listing(None), Listing::Show(ListQuery::default()));
        let q = show("tab=pending&after=c%3Auser_9");
        assert_eq!(
            (q.tab, q.after.as_deref()),
            (Tab::Pending, Some("c:user_9"))
        );
        assert_eq!(show("tab=nope").tab, Tab::Failed);
        assert_eq!(
            listing(Some("q=+user_2xYz+")),
            Listing::GoTo("/users/user_2xYz".into())
        );
        let q = show("q=Ann%40Example.com");
        assert_eq!(q.email.as_deref(), Some("Ann@Example.com"));
        // Not a Clerk id by the rule: searched as an email (and found by none).
        assert_eq!(show("q=user_a%2Cb").email.as_deref(), Some("user_a,b"));
        assert_eq!(show("q=").email, None);
        let q = show(&format!("q={}", "a".repeat(321)));
        assert_eq!((q.email, q.refused.map(|r| r.len())), (None, Some(40)));
    }

    #[test]
    fn the_list_asks_the_main_api_for_a_page_or_an_email() {
        let c = config();
        let f = list_fetch(&c, &ListQuery::default());
        assert_eq!(
            f.url,
            "http://127.0.0.1:8787/internal/users?sync_status=failed&limit=50"
        );
        assert_eq!(f.bearer, Some("test-api-secret"));
        let f = list_fetch(&c, &show("tab=pending&after=c%3Auser_9"));
        assert_eq!(
            f.url,
            "http://127.0.0.1:8787/internal/users?sync_status=pending&after=c%3Auser_9&limit=50"
        );
        let f = list_fetch(&c, &show("tab=pending&after=c%3Au&q=a%2Bb%40x.com"));
        assert_eq!(
            f.url,
            "http://127.0.0.1:8787/internal/users?email=a%2Bb%40x.com&limit=50"
        );
        let f = user_fetch(&c, "user_1");
        assert_eq!(f.url, "http://127.0.0.1:8787/internal/users/user_1");
        assert_eq!(f.bearer, Some("test-api-secret"));
    }

    fn rows_answer() -> Answer {
        answer(
            200,
            json!({"ok": true, "next_after": "c:user_b", "users": [
                {"id": "r1", "clerk_id": "user_a", "email": XSS, "external_id": null,
                 "sync_status": "failed", "sync_error": XSS, "last_sync_attempt": "2027-01-15T08:00:00.000Z",
                 "created_at": "2027-01-15T07:00:00.000Z", "deleted": false},
                {"id": "app_1", "clerk_id": null, "email": "p@x.com", "external_id": null,
                 "sync_status": "pending", "sync_error": null, "last_sync_attempt": null,
                 "created_at": "2027-01-15T05:59:00.000Z", "deleted": false}]}),
        )
    }

    #[test]
    fn failed_rows_show_their_error_and_the_next_page() {
        let q = ListQuery::default();
        let page = users_page(&q, &read_rows(rows_answer()), NOW).into_string();
        for text in [
            "<h1>Users needing attention</h1>",
            r#"<a href="/users/user_a"><code>user_a</code></a>"#,
            r#"<td class="sync-error">&lt;script&gt;alert('x')&lt;/script&gt;</td>"#,
            "2027-01-15T08:00:00.000Z",
            "no Clerk id yet (row <code>app_1</code>)",
            r#"<a id="next-page" href="/users?tab=failed&amp;after=c%3Auser_b">next page</a>"#,
            r#"<strong>Failed rows</strong>"#,
            r#"<a href="/users?tab=pending">Pending rows</a>"#,
            r#"<form id="search" method="get" action="/users">"#,
            r#"name="q""#,
            r#"<a href="/users">Users needing attention</a>"#,
        ] {
            assert!(page.contains(text), "{text} not in {page}");
        }
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn pending_rows_show_their_age_since_created_at() {
        let q = show("tab=pending&after=c%3Auser_0");
        let page = users_page(&q, &read_rows(rows_answer()), NOW).into_string();
        assert!(page.contains("Pending for (since created_at)"), "{page}");
        // NOW is 2027-01-15T08:00:00Z: 2 h 1 min after 05:59.
        assert!(page.contains(r#"<td class="age">2 h 1 min</td>"#), "{page}");
        assert!(page.contains(r#"<a href="/users?tab=pending">first page</a>"#));
        assert!(page.contains("tab=pending&amp;after=c%3Auser_b"));
        assert_eq!(
            age("2027-01-12T07:00:00.000Z", NOW).as_deref(),
            Some("3 d 1 h")
        );
        assert_eq!(
            age("2027-01-15T07:59:20.000Z", NOW).as_deref(),
            Some("40 s")
        );
        assert_eq!(
            age("2027-01-15T07:55:00.000Z", NOW).as_deref(),
            Some("5 min")
        );
        assert_eq!(age("yesterday", NOW), None);
    }

    #[test]
    fn a_search_shows_its_rows_or_says_none_and_failures_are_text() {
        let q = show("q=%3Cb%3Ex%40y.com");
        let empty = Ok(RowsPage::default());
        let page = users_page(&q, &empty, NOW).into_string();
        assert!(page.contains("No live row has this email."), "{page}");
        assert!(page.contains("Rows with the email <code>&lt;b&gt;x@y.com</code>"));
        assert!(page.contains(r#"value="&lt;b&gt;x@y.com""#));
        assert!(!page.contains("next page") && !page.contains("<b>"));
        let page = users_page(
            &ListQuery::default(),
            &read_rows(answer(401, json!({"error": "unauthorized"}))),
            NOW,
        )
        .into_string();
        assert!(page.contains("Main API: 401 unauthorized: check API_SECRET"));
        assert_eq!(
            read_rows(answer(200, json!({"ok": true}))),
            Err(SourceError::Unreadable)
        );
        assert_eq!(read_rows(Answer::TimedOut), Err(SourceError::TimedOut));
        let page = users_page(&show("tab=pending"), &empty, NOW).into_string();
        assert!(page.contains("No pending rows."));
    }

    fn user_answer() -> Answer {
        answer(
            200,
            json!({"ok": true, "clerk_id": "user_a", "deleted": true, "sync_status": "failed",
                   "tombstone": {"clerk_id": "user_a", "deleted_at": "2027-01-02T00:00:00.000Z", "operation_id": "op_del"},
                   "user": {"id": "r1", "clerk_id": "user_a", "email": "a@x.com", "first_name": XSS,
                            "last_name": null, "username": "ann", "image_url": null,
                            "created_at": "2027-01-01T00:00:00.000Z", "updated_at": "2027-01-01T00:00:00.000Z",
                            "deleted_at": null, "sync_status": "failed", "last_sync_attempt": "2027-01-03T00:00:00.000Z",
                            "sync_error": "UNIQUE constraint failed: users.email", "clerk_updated_at": null,
                            "last_operation_id": "op_1", "link_by": null},
                   "audit": [
                       {"received_at": "2027-01-03T00:00:00.000Z", "operation_id": "op_2", "command": "upsert_user",
                        "event_type": "user.updated", "outcome": "failed", "error": XSS},
                       {"received_at": "2027-01-01T00:00:00.000Z", "operation_id": "op_1", "command": "upsert_user",
                        "event_type": "user.created", "outcome": "applied", "error": null}]}),
        )
    }

    #[test]
    fn the_user_page_shows_the_row_tombstone_audit_and_button() {
        let detail = read_user(user_answer());
        let page = user_page("user_a", &detail, None).into_string();
        for text in [
            "Clerk id <code>user_a</code>",
            r#"<form id="resync" method="post" action="/users/user_a/resync"><button type="submit">Re-sync this user</button></form>"#,
            r#"<td id="col-first_name">&lt;script&gt;alert('x')&lt;/script&gt;</td>"#,
            r#"<td id="col-username">ann</td>"#,
            r#"<td id="col-sync_error">UNIQUE constraint failed: users.email</td>"#,
            r#"<td id="col-last_operation_id">op_1</td>"#,
            r#"<td id="col-link_by">—</td>"#,
            "<code>op_del</code>",
            "Audit trail (newest first)",
            r#"<td class="outcome">failed</td>"#,
            r#"<td class="outcome">applied</td>"#,
            "user.created",
            r#"<a href="/users">← Users needing attention</a>"#,
        ] {
            assert!(page.contains(text), "{text} not in {page}");
        }
        assert!(page.find("op_2").unwrap() < page.find("user.created").unwrap());
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("id=\"notice\""));
    }

    #[test]
    fn an_unknown_user_or_a_failed_source_is_said_and_the_button_stays() {
        let none = read_user(answer(404, json!({"ok": false, "error": "user_not_found"})));
        assert_eq!(none, Ok(None));
        let page = user_page("user_zz", &none, None).into_string();
        assert!(page.contains("no row, tombstone or audit row"));
        assert!(page.contains(r#"action="/users/user_zz/resync""#));
        let e = read_user(answer(404, json!({"ok": false, "error": "not_found"})));
        assert_eq!(
            e,
            Err(SourceError::Status {
                status: 404,
                code: Some("not_found".into())
            })
        );
        let page = user_page("user_zz", &read_user(Answer::Unreachable), None).into_string();
        assert!(page.contains("Main API: unreachable"));
    }

    #[test]
    fn the_button_posts_one_user_to_the_relay_with_the_admin_bearer() {
        let c = config();
        let p = resync_post(&c, "user_a");
        assert_eq!(p.url, "http://127.0.0.1:8788/admin/resync");
        assert_eq!(p.bearer, "test-admin-secret");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&p.body).unwrap(),
            json!({"scope": "users", "clerk_ids": ["user_a"]})
        );
    }

    #[test]
    fn the_relays_answer_becomes_a_notice_on_the_user_page() {
        let cases = [
            (
                answer(202, json!({"ok": true, "run_id": "rs_1_ab"})),
                "/users/user_a?resync=rs_1_ab",
                "Re-sync started: run <code>rs_1_ab</code>",
            ),
            (
                answer(
                    409,
                    json!({"ok": false, "error": "resync_running", "run_id": "rs_0"}),
                ),
                "/users/user_a?resync_status=409&resync_error=resync_running",
                "Re-sync not started: 409 <code>resync_running</code>",
            ),
            (
                answer(401, json!({"ok": false, "error": "unauthorized"})),
                "/users/user_a?resync_status=401&resync_error=unauthorized",
                "401 <code>unauthorized</code>",
            ),
            (
                answer(503, json!({"error": "Free <b>text</b>"})),
                "/users/user_a?resync_status=503&resync_error=unreadable_answer",
                "503 <code>unreadable_answer</code>",
            ),
            (
                Answer::Unreachable,
                "/users/user_a?resync_error=unreachable",
                "Re-sync not started: <code>unreachable</code>",
            ),
            (
                Answer::TimedOut,
                "/users/user_a?resync_error=timed_out",
                "<code>timed_out</code>",
            ),
        ];
        for (answer, location, text) in cases {
            let notice = Notice::of_answer(answer);
            assert_eq!(notice.location("user_a"), location);
            let read = Notice::from_query(query_of(location));
            assert_eq!(read.as_ref(), Some(&notice));
            let page = user_page("user_a", &Ok(None), read.as_ref()).into_string();
            assert!(page.contains(text), "{text} not in {page}");
        }
        // A notice shaped like neither a run id nor a code is not shown.
        assert_eq!(Notice::from_query(Some("resync=%3Cscript%3E")), None);
        assert_eq!(Notice::from_query(Some("resync=a&resync_error=b")), None);
        assert_eq!(Notice::from_query(None), None);
    }
}
