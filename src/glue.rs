//! The Workers glue: performs what `relay`'s state machine asks for (read the
//! body, fetch the main API with a timeout, call the `RESYNC` binding,
//! answer) and writes the one log line; on each cron trigger, wakes the
//! re-sync Worker. No decision is made here: the order of the checks is the
//! core's.

use std::time::Duration;

use clerk_sync_platform::{read_body, respond, BodyError};
use futures_util::future::{select, Either};
use worker::js_sys::{self, futures::JsFuture, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    console_log, event, web_sys, worker_sys, Context, Date, Env, Request, Response, Result,
    ScheduleContext, ScheduledEvent,
};

use crate::config::Config;
use crate::relay::{self, ForwardRequest, ReadFailure, RequestHead, Step, UpstreamResult};
use crate::resync::{self, CronLog, ResyncAnswer, ResyncCall};
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
    let mut resync = None;
    let mut done = loop {
        // One place that reads a body, whichever request it is for: each
        // `.await` of it would be another copy of its state machine in the wasm.
        let read = match &step {
            Step::ReadBody(a) => Some((a.max_bytes(), a.how())),
            Step::ReadAdminBody(a) => Some((a.max_bytes(), a.how())),
            _ => None,
        };
        let body = match read {
            Some((max, how)) => read_body(&mut req, max, how).await.map_err(read_failure),
            None => Ok(Vec::new()),
        };
        step = match step {
            Step::ReadBody(awaiting) => {
                let headers = req.headers();
                let signature =
                    SignatureHeaders::from_lookup(|name| headers.get(name).ok().flatten());
                awaiting.body_read(body, &signature, now())
            }
            Step::Forward(awaiting, request) => {
                Step::Reply(awaiting.answered(forward(request).await))
            }
            Step::FindResync(awaiting) => {
                resync = resync_binding(&env);
                awaiting.bound(resync.is_some())
            }
            Step::ReadAdminBody(awaiting) => {
                let headers = req.headers();
                awaiting.body_read(body, |name| headers.get(name).ok().flatten())
            }
            Step::CallResync(awaiting, call) => {
                let answer = match &resync {
                    Some(binding) => call_resync(binding, call).await,
                    None => ResyncAnswer::Failed,
                };
                Step::Reply(awaiting.answered(answer))
            }
            Step::Reply(done) => break done,
        };
    };

    let elapsed = Date::now().as_millis().saturating_sub(started);
    console_log!("{}", done.log_line(elapsed));
    let reply = done.reply;
    let content_type = reply.content_type.as_deref().unwrap_or("application/json");
    respond(reply.status, content_type, reply.body, reply.allow)
}

/// Each cron trigger wakes the re-sync Worker, which decides what to do;
/// one log line either way, and never an error out of the handler.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let started = Date::now().as_millis();
    let cron = event.cron();
    let answer = match resync_binding(&env) {
        Some(binding) => Some(call_resync(&binding, ResyncCall::cron(&cron)).await),
        None => None,
    };
    let elapsed = Date::now().as_millis().saturating_sub(started);
    console_log!(
        "{}",
        CronLog::new(&cron, answer.as_ref(), elapsed).to_json()
    );
}

fn read_failure(e: BodyError) -> ReadFailure {
    match e {
        BodyError::TooLarge => ReadFailure::TooLarge,
        BodyError::Unreadable => ReadFailure::Unreadable,
    }
}

/// The `RESYNC` service binding, if there is one. Read from `env` as a plain
/// property: `Env::service`'s type check and `worker::Response`'s body
/// handling would add kilobytes to the bundle for nothing used here.
fn resync_binding(env: &Env) -> Option<worker_sys::Fetcher> {
    let binding = js_sys::Reflect::get(env, &resync::BINDING.into()).ok()?;
    (binding.is_object()).then(|| binding.unchecked_into())
}

/// One request through the `RESYNC` service binding, built with `web_sys`
/// so that any method passes as it came (`worker::Method` turns an unknown
/// one into GET). A throw anywhere is `Failed`.
async fn call_resync(binding: &worker_sys::Fetcher, call: ResyncCall) -> ResyncAnswer {
    send_resync(binding, call)
        .await
        .unwrap_or(ResyncAnswer::Failed)
}

async fn send_resync(
    binding: &worker_sys::Fetcher,
    call: ResyncCall,
) -> std::result::Result<ResyncAnswer, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in &call.headers {
        headers.set(name, value)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(&call.method);
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = &call.body {
        init.set_body(&Uint8Array::from(body.as_slice()));
    }
    let request = web_sys::Request::new_with_str_and_init(&call.url, &init)?;
    let response: web_sys::Response = JsFuture::from(binding.fetch(&request)?).await?.dyn_into()?;
    let content_type = response.headers().get("content-type")?;
    let body = JsFuture::from(response.text()?).await?;
    Ok(ResyncAnswer::Answered {
        status: response.status(),
        content_type,
        body: body.as_string().unwrap_or_default(),
    })
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

/// One `fetch`, raced against a timer; the loser is aborted. Built with
/// `web_sys` directly: `worker::RequestInit`'s conversion carries the `cf`
/// options (image resizing and more) into the bundle, and its `Fetch` wraps
/// the answer in a `worker::Response` only to read the status.
async fn forward(f: ForwardRequest) -> UpstreamResult {
    let Ok(controller) = web_sys::AbortController::new() else {
        return UpstreamResult::Unavailable;
    };
    let Ok(sending) = send_forward(&f, &controller.signal()) else {
        return UpstreamResult::Unavailable;
    };
    let timer = worker::Delay::from(Duration::from_millis(u64::from(f.timeout_ms)));
    let outcome = match select(sending, timer).await {
        Either::Left((Ok(response), _)) => {
            let response: web_sys::Response = response.unchecked_into();
            UpstreamResult::Status(response.status())
        }
        Either::Left((Err(_), _)) => UpstreamResult::Unavailable,
        Either::Right(((), _)) => UpstreamResult::TimedOut,
    };
    if outcome == UpstreamResult::TimedOut {
        controller.abort();
    }
    outcome
}

/// Starts the forward's `fetch`.
fn send_forward(
    f: &ForwardRequest,
    signal: &web_sys::AbortSignal,
) -> std::result::Result<JsFuture, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in &f.headers {
        headers.set(name, value)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    // Never follow a redirect: a 301/302 turns the POST into a GET, and a 2xx
    // to that GET would be taken for the command's acceptance.
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_headers(&headers);
    init.set_body(&Uint8Array::from(f.body.as_slice()));
    init.set_signal(Some(signal));
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(JsFuture::from(
        global.fetch_with_str_and_init(&f.url, &init),
    ))
}
