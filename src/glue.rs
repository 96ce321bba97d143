//! The Workers glue: performs what `relay`'s state machine asks for (read the
//! body, fetch the main API with a timeout, answer) and writes the one log
//! line. No decision is made here: the order of the checks is the core's.

use std::time::Duration;

use clerk_sync_platform::{json_response, read_body, BodyError};
use futures_util::future::{select, Either};
use worker::{
    console_log, event, AbortController, Context, Date, Env, Fetch, Headers, Method, Request,
    RequestInit, RequestRedirect, Response, Result,
};

use crate::config::Config;
use crate::relay::{self, ForwardRequest, ReadFailure, RequestHead, Step, UpstreamResult};
use crate::verify::SignatureHeaders;
use crate::UnixMillis;

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = Date::now().as_millis();
    let config = load_config(&env);
    let url = req.inner().url();
    let method = req.inner().method();
    let headers = req.headers();
    let content_length = headers.get("content-length").ok().flatten();
    let transfer_encoding = headers.get("transfer-encoding").ok().flatten();
    let head = RequestHead {
        method: &method,
        url: &url,
        content_length: content_length.as_deref(),
        transfer_encoding: transfer_encoding.as_deref(),
    };

    let mut step = relay::start(&config, &head);
    let mut done = loop {
        step = match step {
            Step::ReadBody(awaiting) => {
                let body = read_body(&mut req, awaiting.max_bytes(), awaiting.how())
                    .await
                    .map_err(|e| match e {
                        BodyError::TooLarge => ReadFailure::TooLarge,
                        BodyError::Unreadable => ReadFailure::Unreadable,
                    });
                let headers = req.headers();
                let signature =
                    SignatureHeaders::from_lookup(|name| headers.get(name).ok().flatten());
                awaiting.body_read(body, &signature, now())
            }
            Step::Forward(awaiting, request) => {
                Step::Reply(awaiting.answered(forward(request).await))
            }
            Step::Reply(done) => break done,
        };
    };

    let elapsed = Date::now().as_millis().saturating_sub(started);
    console_log!("{}", done.log_line(elapsed));
    json_response(done.reply.status, done.reply.body, done.reply.allow)
}

fn now() -> UnixMillis {
    UnixMillis(i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX))
}

/// Secrets from `wrangler secret put` / `.dev.vars`, plain values from `[vars]`.
fn load_config(env: &Env) -> std::result::Result<Config, Vec<crate::ConfigProblem>> {
    Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })
}

/// One `fetch`, raced against a timer; the loser is aborted.
async fn forward(f: ForwardRequest) -> UpstreamResult {
    let headers = Headers::new();
    for (name, value) in &f.headers {
        if headers.set(name, value).is_err() {
            return UpstreamResult::Unavailable;
        }
    }
    let mut init = RequestInit::new();
    // Never follow a redirect: a 301/302 turns the POST into a GET, and a 2xx
    // to that GET would be taken for the command's acceptance.
    init.with_method(Method::Post)
        .with_redirect(RequestRedirect::Manual)
        .with_headers(headers)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(f.body.as_slice()).into(),
        ));
    let Ok(request) = Request::new_with_init(&f.url, &init) else {
        return UpstreamResult::Unavailable;
    };
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(worker::Delay::from(Duration::from_millis(u64::from(
        f.timeout_ms,
    ))));
    let outcome = match select(sending, timer).await {
        Either::Left((Ok(response), _)) => UpstreamResult::Status(response.status_code()),
        Either::Left((Err(_), _)) => UpstreamResult::Unavailable,
        Either::Right(((), _)) => UpstreamResult::TimedOut,
    };
    if outcome == UpstreamResult::TimedOut {
        controller.abort();
    }
    outcome
}
