//! The Workers glue: reads the request, does what [`app::start`] asks (read
//! the sign-in form, fetch the overview's or a users page's sources, or
//! post a user's re-sync to the relay, with their bearers, server-side), waits the delay a failed sign-in gets, and answers with
//! the reply's headers. Decisions are the core's.

use std::cell::RefCell;
use std::time::Duration;

use clerk_sync_contract::body::{body_read, declared_too_long};
use clerk_sync_contract::UnixMillis;
use clerk_sync_platform::{exchange, read_body, Exchanged, Outgoing};
use futures_util::future::{join, join4};
use worker::{
    event, Context, Date, Delay, Env, Fetcher, Headers, Method, Request, Response, Result,
};

use crate::app::{self, Incoming, PageError, Reply, Step};
use crate::config::DashboardConfig;
use crate::resync_page;
use crate::session::Throttle;
use crate::sources::{self, Answer};

thread_local! {
    /// Failed sign-ins seen by this isolate (see [`Throttle`]).
    static THROTTLE: RefCell<Throttle> = RefCell::new(Throttle::default());
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let now = now();
    let url = req.url()?.to_string();
    let method = req.method().to_string();
    let cookie = req.headers().get("cookie")?;
    let origin = req.headers().get("origin")?;
    let incoming = Incoming {
        method: &method,
        url: &url,
        cookie: cookie.as_deref(),
        origin: origin.as_deref(),
    };
    let config = DashboardConfig::from_lookup(lookup(&env));
    let reply = match app::start(config.as_ref(), &incoming, now) {
        Step::Reply(reply) => reply,
        Step::ReadLoginForm(config) => {
            let form = read_form(&mut req).await;
            let (reply, delay_ms) =
                THROTTLE.with(|t| app::login(config, &incoming, form, now, &mut t.borrow_mut()));
            if delay_ms > 0 {
                Delay::from(Duration::from_millis(u64::from(delay_ms))).await;
            }
            reply
        }
        Step::FetchOverview([a, b, c, d]) => {
            let ((a, b, c, d), board) = join(
                join4(get(&env, &a), get(&env, &b), get(&env, &c), get(&env, &d)),
                crate::alert_state::board(&env),
            )
            .await;
            app::overview_with_alerts([a, b, c, d], board)
        }
        Step::FetchResyncPage(runs) => resync_page::page(get(&env, &runs).await, &incoming),
        Step::FetchRunStatus(latest) => resync_page::status_json(get(&env, &latest).await),
        Step::ReadResyncForm(config) => {
            let form = read_form(&mut req).await;
            match resync_page::start_post(config, form) {
                Ok(post) => resync_page::started(post_json(&env, &post).await, &incoming),
                Err(reply) => reply,
            }
        }
        Step::FetchUsers(fetch, query) => app::users_list(get(&env, &fetch).await, &query, now),
        Step::FetchUser(fetch, clerk_id, notice) => {
            app::user(get(&env, &fetch).await, &clerk_id, notice.as_ref())
        }
        Step::StartResync(post, clerk_id) => {
            app::resync_started(&clerk_id, post_json(&env, &post).await)
        }
    };
    respond(reply)
}

/// Secrets first (`wrangler secret put`, `.dev.vars`), then `[vars]`.
pub(crate) fn lookup(env: &Env) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    }
}

pub(crate) fn now() -> UnixMillis {
    UnixMillis(i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX))
}

async fn read_form(req: &mut Request) -> std::result::Result<Vec<u8>, PageError> {
    let headers = req.headers();
    let length = headers.get("content-length").ok().flatten();
    if declared_too_long(length.as_deref(), app::MAX_FORM_BYTES) {
        return Err(PageError::FormTooLarge);
    }
    let te = headers.get("transfer-encoding").ok().flatten();
    let how = body_read(length.as_deref(), te.as_deref());
    read_body(req, app::MAX_FORM_BYTES, how)
        .await
        .map_err(|e| match e {
            clerk_sync_platform::BodyError::TooLarge => PageError::FormTooLarge,
            clerk_sync_platform::BodyError::Unreadable => PageError::BadForm,
        })
}

fn respond(reply: Reply) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in reply.headers() {
        headers.append(name, &value)?;
    }
    Ok(Response::ok(reply.body)?
        .with_status(reply.status)
        .with_headers(headers))
}

/// One GET with an optional bearer (see [`send`]).
pub(crate) async fn get(env: &Env, fetch: &sources::Fetch<'_>) -> Answer {
    let via = binding(env, fetch.service);
    send(
        via,
        Method::Get,
        &fetch.url,
        fetch.bearer,
        None,
        sources::FETCH_TIMEOUT_MS,
    )
    .await
}

/// One POST of a JSON body with its bearer (see [`send`]).
async fn post_json(env: &Env, post: &sources::Post<'_>) -> Answer {
    let via = binding(env, post.service);
    send(
        via,
        Method::Post,
        &post.url,
        Some(post.bearer),
        Some(&post.body),
        sources::FETCH_TIMEOUT_MS,
    )
    .await
}

/// The service binding for `service`, when this deployment has one
/// (production); `None` sends to the URL (development).
fn binding(env: &Env, service: sources::Service) -> Option<Fetcher> {
    env.service(service.binding()).ok()
}

/// One request with an optional bearer and JSON body, through `via` when
/// bound or to `url` (see [`exchange`]).
pub(crate) async fn send(
    via: Option<Fetcher>,
    method: Method,
    url: &str,
    bearer: Option<&str>,
    body: Option<&str>,
    timeout_ms: u32,
) -> Answer {
    let user_agent = format!("clerk-sync-dashboard/{}", crate::VERSION);
    let out = Outgoing {
        method,
        url,
        bearer,
        body: body.map(str::as_bytes),
        user_agent: &user_agent,
        timeout_ms,
        max_answer_bytes: sources::MAX_ANSWER_BYTES,
    };
    match exchange(via.as_ref(), out).await {
        Exchanged::Status { status, body, .. } => Answer::Status { status, body },
        Exchanged::Unreachable => Answer::Unreachable,
        Exchanged::TimedOut => Answer::TimedOut,
    }
}
