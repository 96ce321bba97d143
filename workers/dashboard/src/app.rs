//! The request path, told what arrived and asked what to do: the settings
//! first (misconfigured: every page is a 500 naming the variables), then
//! the route and its method, then the session (pages) or the `Origin`
//! (every POST), and every reply with its headers. [`PageError`] and its
//! one mapping to a status and a page live here. Pure: the glue reads the
//! form or performs the fetches a [`Step`] asks for and calls back.

use clerk_sync_contract::UnixMillis;

use crate::config::{DashboardConfig, Problems};
use crate::resync_page;
use crate::session::{self, Throttle};
use crate::sources::{overview_fetches, Answer, Fetch, Overview};
use crate::users::{self, Listing, Notice, UsersRoute};
use crate::views;

pub const OVERVIEW_PATH: &str = "/";
pub const LOGIN_PATH: &str = "/login";
pub const LOGOUT_PATH: &str = "/logout";
/// Largest sign-in form read.
pub const MAX_FORM_BYTES: u32 = 4096;

/// Sent with every answer. `Referrer-Policy` is `same-origin`, not
/// `no-referrer`: under `no-referrer` browsers send `Origin: null` on the
/// dashboard's own form posts, which the `Origin` check must refuse; with
/// `same-origin` no referrer leaves the site either.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

/// What the glue read off a request, before any body.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The full URL the request was made to (its origin is the dashboard's).
    pub url: &'a str,
    pub cookie: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// What to do next.
#[derive(Debug)]
pub enum Step<'c> {
    Reply(Reply),
    /// `POST /login` from the dashboard's own origin: read the form (at
    /// most [`MAX_FORM_BYTES`]), then call [`login`].
    ReadLoginForm(&'c DashboardConfig),
    /// A signed-in `GET /`: perform these, then call [`overview`] with the
    /// answers in the same order.
    FetchOverview([Fetch<'c>; 4]),
    /// A signed-in `GET /resync`: perform this, then call
    /// [`resync_page::page`] with the answer.
    FetchResyncPage(Fetch<'c>),
    /// A signed-in `GET /resync/status.json`: perform this, then call
    /// [`resync_page::status_json`] with the answer.
    FetchRunStatus(Fetch<'c>),
    /// A signed-in `POST /resync/start` from the dashboard's own origin:
    /// read the form (at most [`MAX_FORM_BYTES`]), call
    /// [`resync_page::start_post`], perform its POST, then call
    /// [`resync_page::started`] with the answer.
    ReadResyncForm(&'c DashboardConfig),
    /// A signed-in `GET /users`: perform the fetch, then call [`users_list`].
    FetchUsers(Fetch<'c>, users::ListQuery),
    /// A signed-in `GET /users/{clerk_id}`: perform the fetch, then call
    /// [`user`] with the Clerk id and the notice.
    FetchUser(Fetch<'c>, String, Option<Notice>),
    /// A signed-in `POST /users/{clerk_id}/resync` from the dashboard's own
    /// origin: perform the post, then call [`resync_started`].
    StartResync(crate::sources::Post<'c>, String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("misconfigured")]
    Misconfigured(Problems),
    #[error("cross-origin request")]
    CrossOrigin,
    #[error("form too large")]
    FormTooLarge,
    #[error("unreadable form")]
    BadForm,
    #[error("wrong password")]
    WrongPassword,
}

impl PageError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::Misconfigured(_) => 500,
            Self::CrossOrigin => 403,
            Self::FormTooLarge => 413,
            Self::BadForm => 400,
            Self::WrongPassword => 401,
        }
    }
}

/// An answer: status, HTML (or the stylesheet), and the headers that vary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub allow: Option<&'static str>,
}

impl Reply {
    fn page(status: u16, markup: maud::Markup) -> Self {
        Self {
            status,
            content_type: "text/html; charset=utf-8",
            body: markup.into_string(),
            location: None,
            set_cookie: None,
            allow: None,
        }
    }

    /// 303: the browser follows with a GET.
    fn redirect(location: impl Into<String>, set_cookie: Option<String>) -> Self {
        Self {
            status: 303,
            content_type: "text/plain; charset=utf-8",
            body: String::new(),
            location: Some(location.into()),
            set_cookie,
            allow: None,
        }
    }

    fn style() -> Self {
        Self {
            status: 200,
            content_type: "text/css; charset=utf-8",
            body: views::STYLE.to_owned(),
            location: None,
            set_cookie: None,
            allow: None,
        }
    }

    /// The one mapping from an error to its status and page.
    pub fn error(err: &PageError) -> Self {
        let markup = match err {
            PageError::NotFound => views::error_page("Not found", "There is no page here."),
            PageError::MethodNotAllowed(_) => {
                views::error_page("Method not allowed", "This page does not take that method.")
            }
            PageError::Misconfigured(problems) => views::misconfigured_page(problems),
            PageError::CrossOrigin => views::error_page(
                "Forbidden",
                "This request did not come from the dashboard's own pages.",
            ),
            PageError::FormTooLarge => views::error_page("Too large", "The form is too large."),
            PageError::BadForm => views::error_page("Bad request", "The form could not be read."),
            PageError::WrongPassword => views::login_page(Some("Wrong password.")),
        };
        let mut reply = Self::page(err.status(), markup);
        if let PageError::MethodNotAllowed(allow) = err {
            reply.allow = Some(allow);
        }
        reply
    }

    /// Every header of the answer: content type, [`SECURITY_HEADERS`], and
    /// `Location`, `Set-Cookie`, `Allow` when set.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("content-type", self.content_type.to_owned())];
        headers.extend(SECURITY_HEADERS.iter().map(|(k, v)| (*k, (*v).to_owned())));
        if let Some(location) = &self.location {
            headers.push(("location", location.clone()));
        }
        if let Some(cookie) = &self.set_cookie {
            headers.push(("set-cookie", cookie.clone()));
        }
        if let Some(allow) = self.allow {
            headers.push(("allow", allow.to_owned()));
        }
        headers
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Style,
    Overview,
    LoginForm,
    Login,
    Logout,
    Resync,
    ResyncStart,
    ResyncStatus,
    ResyncScript,
    Users(UsersRoute),
}

fn route(method: &str, path: &str) -> Result<Route, PageError> {
    let only = |allowed: &'static str, route: Route| {
        if method == allowed {
            Ok(route)
        } else {
            Err(PageError::MethodNotAllowed(allowed))
        }
    };
    match path {
        views::STYLE_PATH => only("GET", Route::Style),
        OVERVIEW_PATH => only("GET", Route::Overview),
        LOGIN_PATH => match method {
            "GET" => Ok(Route::LoginForm),
            "POST" => Ok(Route::Login),
            _ => Err(PageError::MethodNotAllowed("GET, POST")),
        },
        LOGOUT_PATH => only("POST", Route::Logout),
        resync_page::PAGE_PATH => only("GET", Route::Resync),
        resync_page::START_PATH => only("POST", Route::ResyncStart),
        resync_page::STATUS_PATH => only("GET", Route::ResyncStatus),
        resync_page::SCRIPT_PATH => only("GET", Route::ResyncScript),
        _ => users::route(method, path)
            .unwrap_or(Err(PageError::NotFound))
            .map(Route::Users),
    }
}

/// The path of an absolute URL (`/` when it has none).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

/// The first step of every request.
pub fn start<'c>(
    config: Result<&'c DashboardConfig, &Problems>,
    req: &Incoming<'_>,
    now: UnixMillis,
) -> Step<'c> {
    let reply = |e: PageError| Step::Reply(Reply::error(&e));
    let route = match route(req.method, path_of(req.url)) {
        Ok(route) => route,
        Err(e) => return reply(e),
    };
    // The stylesheet holds nothing and the misconfigured page uses it.
    if route == Route::Style {
        return Step::Reply(Reply::style());
    }
    if route == Route::ResyncScript {
        return Step::Reply(resync_page::script());
    }
    let config = match config {
        Ok(config) => config,
        Err(problems) => return reply(PageError::Misconfigured(problems.clone())),
    };
    let signed_in =
        session::verify(&config.session_secret, &config.password, req.cookie, now).is_some();
    let secure = session::is_https(req.url);
    match route {
        Route::Style => Step::Reply(Reply::style()),
        Route::ResyncScript => Step::Reply(resync_page::script()),
        Route::Overview if signed_in => Step::FetchOverview(overview_fetches(config)),
        Route::Overview => Step::Reply(Reply::redirect(LOGIN_PATH, None)),
        Route::LoginForm if signed_in => Step::Reply(Reply::redirect(OVERVIEW_PATH, None)),
        Route::LoginForm => Step::Reply(Reply::page(200, views::login_page(None))),
        Route::Resync if signed_in => Step::FetchResyncPage(resync_page::runs_fetch(config)),
        Route::ResyncStatus if signed_in => Step::FetchRunStatus(resync_page::latest_fetch(config)),
        Route::ResyncStatus => Step::Reply(resync_page::status_signed_out()),
        Route::Resync => Step::Reply(Reply::redirect(LOGIN_PATH, None)),
        Route::Login | Route::Logout | Route::ResyncStart
            if !session::same_origin(req.url, req.origin) =>
        {
            reply(PageError::CrossOrigin)
        }
        Route::Login => Step::ReadLoginForm(config),
        Route::ResyncStart if signed_in => Step::ReadResyncForm(config),
        Route::ResyncStart => Step::Reply(Reply::redirect(LOGIN_PATH, None)),
        Route::Logout if signed_in => Step::Reply(Reply::redirect(
            LOGIN_PATH,
            Some(session::clear_cookie(secure)),
        )),
        // Not signed in: nothing to sign out of.
        Route::Logout => Step::Reply(Reply::redirect(LOGIN_PATH, None)),
        Route::Users(UsersRoute::Resync(_)) if !session::same_origin(req.url, req.origin) => {
            reply(PageError::CrossOrigin)
        }
        Route::Users(_) if !signed_in => Step::Reply(Reply::redirect(LOGIN_PATH, None)),
        Route::Users(UsersRoute::List) => match users::listing(users::query_of(req.url)) {
            Listing::GoTo(location) => Step::Reply(Reply::redirect(location, None)),
            Listing::Show(q) if q.refused.is_some() => {
                Step::Reply(users_list(Answer::Unreachable, &q, now))
            }
            Listing::Show(q) => Step::FetchUsers(users::list_fetch(config, &q), q),
        },
        Route::Users(UsersRoute::User(id)) => Step::FetchUser(
            users::user_fetch(config, &id),
            id,
            Notice::from_query(users::query_of(req.url)),
        ),
        Route::Users(UsersRoute::Resync(id)) => {
            Step::StartResync(users::resync_post(config, &id), id)
        }
    }
}

/// `POST /login` with its form (or why it could not be read): the reply,
/// and how long the glue waits before sending it (failures only).
pub fn login(
    config: &DashboardConfig,
    req: &Incoming<'_>,
    form: Result<Vec<u8>, PageError>,
    now: UnixMillis,
    throttle: &mut Throttle,
) -> (Reply, u32) {
    let password = form.and_then(|body| {
        form_urlencoded::parse(&body)
            .find(|(name, _)| name == "password")
            .map(|(_, value)| value.into_owned())
            .ok_or(PageError::BadForm)
    });
    let password = match password {
        Ok(p) => p,
        Err(e) => return (Reply::error(&e), 0),
    };
    if session::password_matches(&config.password, &password) {
        let value = session::issue(&config.session_secret, &config.password, now);
        let cookie = session::set_cookie(&value, session::is_https(req.url));
        (Reply::redirect(OVERVIEW_PATH, Some(cookie)), 0)
    } else {
        let delay = throttle.fail(now);
        (Reply::error(&PageError::WrongPassword), delay)
    }
}

/// `GET /users` from the answer to [`Step::FetchUsers`]' fetch.
pub fn users_list(answer: Answer, q: &users::ListQuery, now: UnixMillis) -> Reply {
    Reply::page(200, users::users_page(q, &users::read_rows(answer), now))
}

/// `GET /users/{clerk_id}` from the answer to [`Step::FetchUser`]'s fetch.
pub fn user(answer: Answer, clerk_id: &str, notice: Option<&Notice>) -> Reply {
    let detail = users::read_user(answer);
    Reply::page(200, users::user_page(clerk_id, &detail, notice))
}

/// After [`Step::StartResync`]'s post: 303 back to the user's page, with
/// the run started or the relay's refusal.
pub fn resync_started(clerk_id: &str, answer: Answer) -> Reply {
    Reply::redirect(Notice::of_answer(answer).location(clerk_id), None)
}

/// The overview from the answers to [`Step::FetchOverview`]'s fetches.
pub fn overview(answers: [Answer; 4]) -> Reply {
    Reply::page(200, views::overview_page(&Overview::read(answers)))
}

/// [`overview`] with the alerts' section.
pub fn overview_with_alerts(answers: [Answer; 4], board: crate::alerts::Board) -> Reply {
    let mut overview = Overview::read(answers);
    overview.alerts = Some(board);
    Reply::page(200, views::overview_page(&overview))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, DashboardConfig};
    use serde_json::json;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);
    const URL: &str = "http://127.0.0.1:5173";
    const PASSWORD: &str = "dev-dashboard-password";

    fn config() -> DashboardConfig {
        DashboardConfig::from_lookup(|n| {
            Some(
                match n {
                    config::DASHBOARD_PASSWORD => PASSWORD,
                    config::SESSION_SECRET => "dev-session-secret-0123456789abcdef0123456789abcdef",
                    config::API_URL => "http://127.0.0.1:8787",
                    config::RELAY_URL => "http://127.0.0.1:8788",
                    config::API_SECRET => "test-api-secret",
                    config::ADMIN_SECRET => "test-admin-secret",
                    _ => return None,
                }
                .to_owned(),
            )
        })
        .unwrap()
    }

    fn req<'a>(method: &'a str, url: &'a str) -> Incoming<'a> {
        Incoming {
            method,
            url,
            cookie: None,
            origin: None,
        }
    }

    fn reply(step: Step<'_>) -> Reply {
        match step {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn header<'r>(r: &'r [(&'static str, String)], name: &str) -> Option<&'r str> {
        r.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Signs in; the `Cookie` header a browser would send next.
    fn signed_in(c: &DashboardConfig) -> String {
        let url = format!("{URL}/login");
        let mut r = req("POST", &url);
        r.origin = Some(URL);
        let (reply, delay) = login(
            c,
            &r,
            Ok(format!("password={PASSWORD}").into_bytes()),
            NOW,
            &mut Throttle::default(),
        );
        assert_eq!(
            (reply.status, reply.location.as_deref(), delay),
            (303, Some("/"), 0)
        );
        let cookie = reply.set_cookie.unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn pages_redirect_to_the_login_until_signed_in() {
        let c = config();
        let url = format!("{URL}/");
        let r = reply(start(Ok(&c), &req("GET", &url), NOW));
        assert_eq!(
            (r.status, r.location.as_deref(), r.body.as_str()),
            (303, Some("/login"), "")
        );
        let login_url = format!("{URL}/login");
        let r = reply(start(Ok(&c), &req("GET", &login_url), NOW));
        assert_eq!(r.status, 200);
        assert!(r.body.contains("name=\"password\""));

        let cookie = signed_in(&c);
        let mut r = req("GET", &url);
        r.cookie = Some(&cookie);
        let Step::FetchOverview([sync, health, run, _metrics]) = start(Ok(&c), &r, NOW) else {
            panic!("fetch")
        };
        assert_eq!(sync.url, "http://127.0.0.1:8787/internal/sync/status");
        assert_eq!(health.url, "http://127.0.0.1:8788/health");
        assert_eq!(run.url, "http://127.0.0.1:8788/admin/resync");
        let mut r = req("GET", &login_url);
        r.cookie = Some(&cookie);
        assert_eq!(reply(start(Ok(&c), &r, NOW)).location.as_deref(), Some("/"));
        // Twelve hours later, the session is over.
        let mut r = req("GET", &url);
        r.cookie = Some(&cookie);
        let later = UnixMillis(NOW.as_millis() + session::SESSION_TTL_MS);
        assert_eq!(
            reply(start(Ok(&c), &r, later)).location.as_deref(),
            Some("/login")
        );
    }

    #[test]
    fn the_session_cookie_has_its_attributes() {
        let c = config();
        for (url, secure) in [
            ("http://127.0.0.1:5173/login", false),
            ("https://dash.example.com/login", true),
        ] {
            let origin = session::origin_of(url).unwrap();
            let mut r = req("POST", url);
            r.origin = Some(&origin);
            assert!(matches!(start(Ok(&c), &r, NOW), Step::ReadLoginForm(_)));
            let (reply, _) = login(
                &c,
                &r,
                Ok(format!("password={PASSWORD}").into_bytes()),
                NOW,
                &mut Throttle::default(),
            );
            let cookie = reply.set_cookie.unwrap();
            assert!(
                cookie.contains("; HttpOnly")
                    && cookie.contains("; SameSite=Strict")
                    && cookie.contains("; Path=/")
            );
            assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
        }
    }

    #[test]
    fn a_wrong_password_is_refused_and_slowed() {
        let c = config();
        let url = format!("{URL}/login");
        let mut r = req("POST", &url);
        r.origin = Some(URL);
        let mut throttle = Throttle::default();
        let (reply, delay) = login(
            &c,
            &r,
            Ok(b"password=dev-dashboard-passworD".to_vec()),
            NOW,
            &mut throttle,
        );
        assert_eq!(
            (reply.status, reply.set_cookie.as_deref(), delay),
            (401, None, 1_000)
        );
        assert!(reply.body.contains("Wrong password."));
        let (_, delay) = login(&c, &r, Ok(b"password=".to_vec()), NOW, &mut throttle);
        assert_eq!(delay, 2_000);
        let (reply, delay) = login(&c, &r, Ok(b"pass=x".to_vec()), NOW, &mut throttle);
        assert_eq!((reply.status, delay), (400, 0));
        let (reply, _) = login(&c, &r, Err(PageError::FormTooLarge), NOW, &mut throttle);
        assert_eq!(reply.status, 413);
        // The password is form-encoded like any browser sends it.
        let (reply, _) = login(
            &c,
            &r,
            Ok(b"x=1&password=dev-dashboard%2Dpassword".to_vec()),
            NOW,
            &mut throttle,
        );
        assert_eq!(reply.status, 303);
    }

    #[test]
    fn every_post_needs_the_dashboards_own_origin() {
        let c = config();
        let cookie = signed_in(&c);
        for path in ["/login", "/logout"] {
            let url = format!("{URL}{path}");
            for origin in [
                None,
                Some("null"),
                Some("http://evil.example"),
                Some("http://localhost:5173"),
            ] {
                let mut r = req("POST", &url);
                r.cookie = Some(&cookie);
                r.origin = origin;
                let reply = reply(start(Ok(&c), &r, NOW));
                assert_eq!(
                    (reply.status, reply.set_cookie.as_deref()),
                    (403, None),
                    "{path} {origin:?}"
                );
            }
        }
    }

    #[test]
    fn the_resync_start_needs_the_origin_then_the_session() {
        let c = config();
        let cookie = signed_in(&c);
        let url = format!("{URL}/resync/start");
        for origin in [None, Some("null"), Some("http://evil.example")] {
            for cookie in [None, Some(cookie.as_str())] {
                let mut r = req("POST", &url);
                r.cookie = cookie;
                r.origin = origin;
                assert_eq!(reply(start(Ok(&c), &r, NOW)).status, 403, "{origin:?}");
            }
        }
        let mut r = req("POST", &url);
        r.origin = Some(URL);
        let out = reply(start(Ok(&c), &r, NOW));
        assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
        r.cookie = Some(&cookie);
        let Step::ReadResyncForm(config) = start(Ok(&c), &r, NOW) else {
            panic!("read the form")
        };
        let post = resync_page::start_post(config, Ok(b"scope=failed".to_vec())).unwrap();
        assert_eq!(
            post,
            crate::sources::Post {
                service: crate::sources::Service::Relay,
                url: "http://127.0.0.1:8788/admin/resync".into(),
                bearer: "test-admin-secret",
                body: r#"{"scope":"failed"}"#.to_owned(),
            }
        );
        let full = resync_page::start_post(config, Ok(b"scope=all".to_vec())).unwrap();
        assert_eq!(full.body, "{}");
        let bad = resync_page::start_post(config, Ok(b"scope=everything".to_vec())).unwrap_err();
        assert_eq!(bad.status, 400);
        let big = resync_page::start_post(config, Err(PageError::FormTooLarge)).unwrap_err();
        assert_eq!(big.status, 413);
        let get = reply(start(Ok(&c), &req("GET", &url), NOW));
        assert_eq!((get.status, get.allow), (405, Some("POST")));
    }

    #[test]
    fn the_resync_page_and_its_status_need_the_session() {
        let c = config();
        let cookie = signed_in(&c);
        let page_url = format!("{URL}/resync");
        let status_url = format!("{URL}/resync/status.json");
        let out = reply(start(Ok(&c), &req("GET", &page_url), NOW));
        assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
        let out = reply(start(Ok(&c), &req("GET", &status_url), NOW));
        assert_eq!(
            (out.status, out.content_type, out.body.as_str()),
            (
                401,
                "application/json; charset=utf-8",
                r#"{"error":"signed_out","ok":false}"#
            )
        );
        let mut r = req("GET", &page_url);
        r.cookie = Some(&cookie);
        let Step::FetchResyncPage(runs) = start(Ok(&c), &r, NOW) else {
            panic!("fetch the runs")
        };
        assert_eq!(
            (runs.url.as_str(), runs.bearer),
            (
                "http://127.0.0.1:8788/admin/resync/runs",
                Some("test-admin-secret")
            )
        );
        let mut r = req("GET", &status_url);
        r.cookie = Some(&cookie);
        let Step::FetchRunStatus(latest) = start(Ok(&c), &r, NOW) else {
            panic!("fetch the latest run")
        };
        assert_eq!(latest.url, "http://127.0.0.1:8788/admin/resync");
        // The script is public (it holds nothing) and is not inline.
        let js = reply(start(Ok(&c), &req("GET", &format!("{URL}/resync.js")), NOW));
        assert_eq!(
            (js.status, js.content_type),
            (200, "text/javascript; charset=utf-8")
        );
        assert!(header(&js.headers(), "content-security-policy").is_some());
    }

    #[test]
    fn logout_clears_the_cookie() {
        let c = config();
        let cookie = signed_in(&c);
        let url = format!("{URL}/logout");
        let mut r = req("POST", &url);
        r.cookie = Some(&cookie);
        r.origin = Some(URL);
        let out = reply(start(Ok(&c), &r, NOW));
        assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
        assert!(out
            .set_cookie
            .unwrap()
            .starts_with("clerk_sync_session=; Max-Age=0;"));
        r.cookie = None;
        let out = reply(start(Ok(&c), &r, NOW));
        assert_eq!(
            (out.status, out.location.as_deref(), out.set_cookie),
            (303, Some("/login"), None)
        );
    }

    #[test]
    fn routes_and_methods() {
        let c = config();
        for (method, path, status, allow) in [
            ("GET", "/nope", 404, None),
            ("POST", "/", 405, Some("GET")),
            ("GET", "/logout", 405, Some("POST")),
            ("PUT", "/login", 405, Some("GET, POST")),
            ("GET", "/style.css", 200, None),
            ("GET", "/?x=1", 303, None),
        ] {
            let url = format!("{URL}{path}");
            let r = reply(start(Ok(&c), &req(method, &url), NOW));
            assert_eq!((r.status, r.allow), (status, allow), "{method} {path}");
        }
        assert_eq!(path_of("http://h:1"), "/");
        assert_eq!(path_of("http://h:1/login?next=/#x"), "/login");
    }

    #[test]
    fn misconfigured_answers_every_page_with_500_naming_variables() {
        let problems = vec![config::DASHBOARD_PASSWORD, config::SESSION_SECRET];
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/login"),
            ("POST", "/login"),
            ("POST", "/logout"),
        ] {
            let url = format!("{URL}{path}");
            let r = reply(start(Err(&problems), &req(method, &url), NOW));
            assert_eq!(r.status, 500, "{method} {path}");
            assert!(
                r.body.contains("<code>DASHBOARD_PASSWORD</code>")
                    && r.body.contains("<code>SESSION_SECRET</code>")
            );
        }
        let style = format!("{URL}/style.css");
        assert_eq!(
            reply(start(Err(&problems), &req("GET", &style), NOW)).status,
            200
        );
    }

    #[test]
    fn every_answer_has_the_security_headers() {
        let c = config();
        let url = format!("{URL}/");
        let answers = [
            reply(start(Ok(&c), &req("GET", &url), NOW)),
            Reply::error(&PageError::NotFound),
            overview([
                Answer::Unreachable,
                Answer::TimedOut,
                Answer::Unreachable,
                Answer::Unreachable,
            ]),
        ];
        for r in answers {
            let h = r.headers();
            assert_eq!(
                header(&h, "content-security-policy"),
                Some("default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
            );
            assert_eq!(header(&h, "x-frame-options"), Some("DENY"));
            assert_eq!(header(&h, "referrer-policy"), Some("same-origin"));
            assert_eq!(header(&h, "cache-control"), Some("no-store"));
        }
    }

    #[test]
    fn the_users_pages_need_a_session_and_the_button_the_origin_too() {
        let c = config();
        let cookie = signed_in(&c);
        for path in ["/users", "/users/user_a", "/users?q=a%40x.com"] {
            let url = format!("{URL}{path}");
            let r = reply(start(Ok(&c), &req("GET", &url), NOW));
            assert_eq!(
                (r.status, r.location.as_deref()),
                (303, Some("/login")),
                "{path}"
            );
        }
        let url = format!("{URL}/users?tab=pending");
        let mut r = req("GET", &url);
        r.cookie = Some(&cookie);
        let Step::FetchUsers(fetch, q) = start(Ok(&c), &r, NOW) else {
            panic!("fetch")
        };
        assert_eq!(
            fetch.url,
            "http://127.0.0.1:8787/internal/users?sync_status=pending&limit=50"
        );
        assert_eq!(q.tab, users::Tab::Pending);
        let url = format!("{URL}/users?q=user_2x");
        r.url = &url;
        let out = reply(start(Ok(&c), &r, NOW));
        assert_eq!(
            (out.status, out.location.as_deref()),
            (303, Some("/users/user_2x"))
        );
        let url = format!("{URL}/users/user_2x?resync=rs_1");
        r.url = &url;
        let Step::FetchUser(fetch, id, notice) = start(Ok(&c), &r, NOW) else {
            panic!("fetch")
        };
        assert_eq!(fetch.url, "http://127.0.0.1:8787/internal/users/user_2x");
        assert_eq!(id, "user_2x");
        assert_eq!(
            notice,
            Some(Notice::Started {
                run_id: "rs_1".into()
            })
        );

        let url = format!("{URL}/users/user_2x/resync");
        for origin in [None, Some("null"), Some("http://evil.example")] {
            let mut r = req("POST", &url);
            r.cookie = Some(&cookie);
            r.origin = origin;
            assert_eq!(reply(start(Ok(&c), &r, NOW)).status, 403, "{origin:?}");
        }
        let mut r = req("POST", &url);
        r.origin = Some(URL);
        let out = reply(start(Ok(&c), &r, NOW));
        assert_eq!((out.status, out.location.as_deref()), (303, Some("/login")));
        r.cookie = Some(&cookie);
        let Step::StartResync(post, id) = start(Ok(&c), &r, NOW) else {
            panic!("post")
        };
        assert_eq!(post.url, "http://127.0.0.1:8788/admin/resync");
        assert_eq!(post.bearer, "test-admin-secret");
        let out = resync_started(
            &id,
            Answer::Status {
                status: 409,
                body: br#"{"ok":false,"error":"resync_running"}"#.to_vec(),
            },
        );
        assert_eq!(
            (out.status, out.location.as_deref()),
            (
                303,
                Some("/users/user_2x?resync_status=409&resync_error=resync_running")
            )
        );
        assert!(!out.body.contains("test-admin-secret"));
        for (method, path, status) in [
            ("GET", "/users/bad%20id", 404),
            ("GET", "/users/user_1/resync", 405),
            ("POST", "/users", 405),
        ] {
            let url = format!("{URL}{path}");
            let mut r = req(method, &url);
            r.cookie = Some(&cookie);
            r.origin = Some(URL);
            assert_eq!(reply(start(Ok(&c), &r, NOW)).status, status, "{path}");
        }
        let problems = vec![config::API_SECRET];
        let url = format!("{URL}/users");
        assert_eq!(
            reply(start(Err(&problems), &req("GET", &url), NOW)).status,
            500
        );
    }

    #[test]
    fn the_overview_renders_each_source() {
        let status = json!({"ok": true, "users": {"total": 4, "deleted": 1, "by_sync_status": {"synced": 2, "pending": 1, "failed": 0}},
                            "tombstones": 1});
        let r = overview([
            Answer::Status {
                status: 200,
                body: status.to_string().into_bytes(),
            },
            Answer::Unreachable,
            Answer::Status {
                status: 401,
                body: br#"{"ok":false,"error":"unauthorized"}"#.to_vec(),
            },
            Answer::TimedOut,
        ]);
        assert_eq!(r.status, 200);
        assert!(r.body.contains(r#"id="count-synced">2<"#));
        assert!(r.body.contains("Relay: unreachable"));
        assert!(r
            .body
            .contains("Re-sync: 401 unauthorized: check ADMIN_SECRET"));
        assert!(!r.body.contains("test-admin-secret") && !r.body.contains("test-api-secret"));
        assert!(r.body.contains("Metrics: timed out"));
        let metrics = json!({"ok": true, "generated_at": "2026-01-01T10:30:00.000Z",
            "rows": {"synced": 3, "pending": 1, "failed": 2, "deleted": 5},
            "oldest_pending": {"created_at": "2026-01-01T10:28:30.000Z", "age_seconds": 90},
            "outcomes": {"last_hour": {"applied": 4, "duplicate": 0, "stale": 0, "ignored_deleted": 0, "rejected": 1, "failed": 0},
                         "last_24h": {"applied": 7, "duplicate": 1, "stale": 2, "ignored_deleted": 3, "rejected": 1, "failed": 6}},
            "last_applied_at": "2026-01-01T10:29:59.000Z", "last_received_at": null,
            "hourly": clerk_sync_contract::metrics::empty_buckets(UnixMillis(1_767_263_400_000))});
        let r = overview([
            Answer::Unreachable,
            Answer::Unreachable,
            Answer::Unreachable,
            Answer::Status {
                status: 200,
                body: metrics.to_string().into_bytes(),
            },
        ]);
        for text in [
            r#"<td id="oldest-pending">1 min 30 s old</td>"#,
            r#"<td class="n" id="outcome-24h-failed">6</td>"#,
            r#"<svg id="deliveries-chart""#,
            "Main API: unreachable",
        ] {
            assert!(r.body.contains(text), "{text} not in {}", r.body);
        }
    }
}
