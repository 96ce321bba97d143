//! The Workers glue: performs what `relay`'s state machine asks for (read the
//! body, fetch the main API with a timeout, call the `RESYNC` binding,
//! answer) and writes the one log line; on each cron trigger, wakes the
//! re-sync Worker. No decision is made here: the order of the checks is the
//! core's.

use std::collections::BTreeMap;

use clerk_sync_platform::{answer, read_request_body, BodyError};
use worker::js_sys::{self, futures::JsFuture, Uint8Array, JSON};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    console_log, event, web_sys, worker_sys, Context, Env, Result, ScheduleContext, ScheduledEvent,
};

use crate::config::{Config, VARIABLES};
use crate::relay::{self, ForwardRequest, ReadFailure, RequestHead, Step, UpstreamResult};
use crate::resync::{self, CronLog, ResyncAnswer, ResyncCall};
use crate::verify::SignatureHeaders;
use crate::UnixMillis;

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let started = js_sys::Date::now();
    let config = load_config(&env);
    let url = req.url();
    let method = req.method();
    let headers = request_headers(&req);
    let header = |name: &str| headers.get(name).cloned();
    let head = RequestHead {
        method: &method,
        url: &url,
        content_length: headers.get("content-length").map(String::as_str),
        transfer_encoding: headers.get("transfer-encoding").map(String::as_str),
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
            Some((max, how)) => read_request_body(&req, max, how)
                .await
                .map_err(read_failure),
            None => Ok(Vec::new()),
        };
        step = match step {
            Step::ReadBody(awaiting) => {
                let signature = SignatureHeaders::from_lookup(header);
                awaiting.body_read(body, &signature, now())
            }
            Step::Forward(awaiting, request) => {
                Step::Reply(awaiting.answered(forward(request).await))
            }
            Step::FindResync(awaiting) => {
                resync = resync_binding(&env);
                awaiting.bound(resync.is_some())
            }
            Step::ReadAdminBody(awaiting) => awaiting.body_read(body, header),
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

    let elapsed = (js_sys::Date::now() - started).max(0.0) as u64;
    console_log!("{}", done.log_line(elapsed));
    let reply = done.reply;
    let content_type = reply.content_type.as_deref().unwrap_or("application/json");
    answer(reply.status, content_type, &reply.body, reply.allow)
        .map_err(|_| worker::Error::RustError("the answer could not be built".into()))
}

/// Every header of the request in one call (`Object.fromEntries`, as JSON),
/// rather than a call per header asked for and another per value copied.
/// Names are lowercase and repeated headers joined, as `Headers.get` has them.
fn request_headers(req: &web_sys::Request) -> BTreeMap<String, String> {
    js_sys::Object::from_entries(&req.headers())
        .and_then(|o| JSON::stringify(&o))
        .ok()
        .and_then(|json| json.as_string())
        .and_then(|json| relay::string_map(&json))
        .unwrap_or_default()
}

/// Each cron trigger wakes the re-sync Worker, which decides what to do;
/// one log line either way, and never an error out of the handler.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let started = js_sys::Date::now();
    let cron = event.cron();
    let answer = match resync_binding(&env) {
        Some(binding) => Some(call_resync(&binding, ResyncCall::cron(&cron)).await),
        None => None,
    };
    let elapsed = (js_sys::Date::now() - started).max(0.0) as u64;
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
    UnixMillis(js_sys::Date::now() as i64)
}

/// Secrets from `wrangler secret put` / `.dev.vars`, plain values from
/// `[vars]`: all of them in one call (`JSON.stringify(env, names)`, which
/// reads just those names), or one by one if a value is not a string.
fn load_config(env: &Env) -> std::result::Result<Config, Vec<crate::ConfigProblem>> {
    thread_local! {
        // The names as one JavaScript array, made once per isolate.
        static NAMES: js_sys::Array = VARIABLES.iter().map(|n| JsValue::from_str(n)).collect();
    }
    let all = NAMES
        .with(|names| JSON::stringify_with_replacer(env, names))
        .ok()
        .and_then(|json| json.as_string())
        .and_then(|json| relay::string_map(&json));
    match all {
        Some(values) => Config::from_lookup(|name| values.get(name).cloned()),
        None => Config::from_lookup(|name| {
            js_sys::Reflect::get(env, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_string())
        }),
    }
}

/// One `fetch`, aborted by the runtime's own `AbortSignal.timeout`: no
/// timer, closure or race of the relay's (a `worker::Delay` cost a
/// `setTimeout`, a `clearTimeout` and a callback per delivery). Built with
/// `web_sys` directly: `worker::RequestInit`'s conversion carries the `cf`
/// options (image resizing and more) into the bundle, and its `Fetch` wraps
/// the answer in a `worker::Response` only to read the status.
async fn forward(f: ForwardRequest) -> UpstreamResult {
    let signal = web_sys::AbortSignal::timeout_with_u32(f.timeout_ms);
    let Ok(sending) = send_forward(&f, &signal) else {
        return UpstreamResult::Unavailable;
    };
    match sending.await {
        Ok(response) => {
            let response: web_sys::Response = response.unchecked_into();
            // The answer's body is never read: let the runtime drop it now
            // and reuse the connection, rather than when it is collected.
            if let Some(body) = response.body() {
                let _ = body.cancel();
            }
            UpstreamResult::Status(response.status())
        }
        // Rejected because the signal fired: the time ran out.
        Err(_) if signal.aborted() => UpstreamResult::TimedOut,
        Err(_) => UpstreamResult::Unavailable,
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Starts the forward's `fetch`. Method, redirect mode and headers go over
/// as one JSON text (`JSON.parse`), not a call per header.
fn send_forward(
    f: &ForwardRequest,
    signal: &web_sys::AbortSignal,
) -> std::result::Result<JsFuture, JsValue> {
    // Never follow a redirect: a 301/302 turns the POST into a GET, and a 2xx
    // to that GET would be taken for the command's acceptance.
    let mut init = String::from(r#"{"method":"POST","redirect":"manual","headers":{"#);
    for (i, (name, value)) in f.headers.iter().enumerate() {
        if i > 0 {
            init.push(',');
        }
        init.push_str(&json_string(name));
        init.push(':');
        init.push_str(&json_string(value));
    }
    init.push_str("}}");
    let init: web_sys::RequestInit = JSON::parse(&init)?.unchecked_into();
    init.set_body(&Uint8Array::from(f.body.as_slice()));
    init.set_signal(Some(signal));
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(JsFuture::from(
        global.fetch_with_str_and_init(&f.url, &init),
    ))
}
