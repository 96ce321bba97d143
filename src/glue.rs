//! The Workers glue: performs what `relay`'s state machine asks for (read the
//! body, fetch the main API with a timeout, call the `RESYNC` binding,
//! answer) and writes the one log line; on each cron trigger, wakes the
//! re-sync Worker. No decision is made here: the order of the checks is the
//! core's.

use std::collections::BTreeMap;

use clerk_sync_platform::{answer, read_request_body, BodyError};
use worker::js_sys::{self, futures::JsFuture, Uint8Array, JSON};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::{console_log, event, web_sys, worker_sys, Env, ScheduleContext, ScheduledEvent};

use crate::config::{Config, SYNC_DLQ, SYNC_QUEUE, VARIABLES};
use crate::queue::{ApiAnswer, Consumer, Disposition};
use crate::relay::{self, ForwardRequest, ReadFailure, RequestHead, Step, UpstreamResult};
use crate::resync::{self, CronLog, ResyncAnswer, ResyncCall};
use crate::verify::SignatureHeaders;
use crate::UnixMillis;

/// The `fetch` handler, exported by hand as `queue` is (below) rather than
/// through `#[event(fetch)]`, whose wrapper boxes `worker::Error`s to format
/// them and builds its own 500 through `worker::Response` (about 0.4 KiB of
/// the gzip upload). The answer is built in one call that has no reason to
/// fail; if the runtime refused it, the promise rejects and the runtime
/// answers 500.
mod fetch_export {
    use worker::wasm_bindgen::prelude::wasm_bindgen;
    use worker::wasm_bindgen::JsValue;
    use worker::web_sys;

    #[wasm_bindgen(
        wasm_bindgen = ::worker::wasm_bindgen,
        wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
        js_sys = ::worker::js_sys
    )]
    pub async fn fetch(
        req: web_sys::Request,
        env: worker::Env,
        _ctx: JsValue,
    ) -> Result<JsValue, JsValue> {
        super::handle(req, env).await.map(JsValue::from)
    }
}

async fn handle(
    req: web_sys::Request,
    env: Env,
) -> std::result::Result<web_sys::Response, JsValue> {
    let started = js_sys::Date::now();
    let config = crate::config::with_bindings(load_config(&env), || {
        queue_binding(&env, SYNC_QUEUE).is_some()
    });
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
            Step::Sign(awaiting) => {
                let macs = hmac_sha256(awaiting.keys(), awaiting.content()).await;
                awaiting.signed(macs)
            }
            Step::Forward(awaiting, request) => {
                Step::Reply(awaiting.answered(forward(request).await))
            }
            Step::Enqueue(awaiting, message) => {
                Step::Reply(awaiting.sent(send(&env, SYNC_QUEUE, &message).await))
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

/// Queue mode's consumer, for both queues: `queue::Consumer` decides, this
/// performs its posts and then acks or retries each message. Exported by
/// hand on `worker_sys`'s types rather than through `#[event(queue)]`,
/// whose `MessageBatch` wrappers (and `serde_wasm_bindgen` for the retry
/// options) cost about 8 KiB of the gzip upload; and it never returns an
/// error (with workers-rs 0.8.7 that panics and retries the whole batch).
mod queue_export {
    use worker::wasm_bindgen::prelude::wasm_bindgen;
    use worker::wasm_bindgen::JsValue;

    #[wasm_bindgen(
        wasm_bindgen = ::worker::wasm_bindgen,
        wasm_bindgen_futures = ::worker::wasm_bindgen_futures,
        js_sys = ::worker::js_sys
    )]
    pub async fn queue(
        batch: worker::worker_sys::MessageBatch,
        env: worker::Env,
        _ctx: JsValue,
    ) -> Result<JsValue, JsValue> {
        super::consume(batch, env).await;
        Ok(JsValue::UNDEFINED)
    }
}

async fn consume(batch: worker_sys::MessageBatch, env: Env) {
    let started = js_sys::Date::now();
    let Ok(config) = load_config(&env) else {
        // Nothing can be sent without a configuration: try again later.
        console_log!(r#"{{"level":"error","msg":"queue_batch","outcome":"misconfigured"}}"#);
        let _ = batch.retry_all(JsValue::UNDEFINED);
        return;
    };
    // Plain loops: each iterator adapter chain costs bundle size.
    let mut messages = Vec::new();
    let mut bodies = Vec::new();
    if let Ok(all) = batch.messages() {
        for m in all {
            let m: worker_sys::Message = m.unchecked_into();
            let sent = m.timestamp().map_or(js_sys::Date::now(), |d| d.get_time());
            bodies.push((
                m.body().ok().and_then(|b| b.as_string()),
                UnixMillis(sent as i64),
            ));
            messages.push(m);
        }
    }
    let name: String = batch.queue().map(String::from).unwrap_or_default();
    let mut consumer = Consumer::new(&config, &name, bodies, now());
    let answer = match consumer.request() {
        Some(request) => Some(call_api(request).await),
        None => None,
    };
    let retry = |m: &worker_sys::Message, delay: u32| {
        let options = JSON::parse(&format!(r#"{{"delaySeconds":{delay}}}"#));
        m.retry(options.unwrap_or(JsValue::UNDEFINED))
    };
    for (message, disposition) in messages.iter().zip(consumer.decide(answer)) {
        let _ = match disposition {
            Disposition::Ack => message.ack(),
            Disposition::Retry { delay_seconds } => retry(message, delay_seconds),
            Disposition::DeadLetter {
                message: letter,
                delay_seconds,
            } => match send(&env, SYNC_DLQ, &letter).await {
                true => message.ack(),
                false => retry(message, delay_seconds),
            },
        };
    }
    let elapsed = (js_sys::Date::now() - started).max(0.0) as u64;
    console_log!("{}", consumer.log_line(elapsed));
}

/// A queue producer binding (`SYNC_QUEUE`, `SYNC_DLQ`), if there is one
/// (a plain property of `env`, as [`resync_binding`] reads its own).
fn queue_binding(env: &Env, name: &str) -> Option<worker_sys::Queue> {
    let binding = js_sys::Reflect::get(env, &name.into()).ok()?;
    (binding.is_object()).then(|| binding.unchecked_into())
}

/// Sends one message (JSON, as a string) to the queue bound as `name`:
/// true once the send resolved, so the queue holds it.
async fn send(env: &Env, name: &str, message: &str) -> bool {
    let Some(queue) = queue_binding(env, name) else {
        return false;
    };
    match queue.send(JsValue::from_str(message), JsValue::UNDEFINED) {
        Ok(promise) => JsFuture::from(promise).await.is_ok(),
        Err(_) => false,
    }
}

/// One post for the consumer, its answer's status and body read whole.
async fn call_api(f: ForwardRequest) -> ApiAnswer {
    let signal = web_sys::AbortSignal::timeout_with_u32(f.timeout_ms);
    let Ok(sending) = send_forward(&f, &signal) else {
        return ApiAnswer::Failed(UpstreamResult::Unavailable);
    };
    let read = async {
        let response: web_sys::Response = sending.await?.unchecked_into();
        let body = JsFuture::from(response.text()?).await?;
        Ok::<_, JsValue>((response.status(), body.as_string().unwrap_or_default()))
    };
    match read.await {
        Ok((status, body)) => ApiAnswer::Answered { status, body },
        Err(_) if signal.aborted() => ApiAnswer::Failed(UpstreamResult::TimedOut),
        Err(_) => ApiAnswer::Failed(UpstreamResult::Unavailable),
    }
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

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = importKey)]
    fn import_key(
        format: &str,
        key: &[u8],
        algorithm: &JsValue,
        extractable: bool,
        usages: &JsValue,
    ) -> js_sys::Promise;
    #[wasm_bindgen(js_namespace = ["crypto", "subtle"], js_name = sign)]
    fn sign(algorithm: &str, key: &JsValue, data: &[u8]) -> js_sys::Promise;
}

thread_local! {
    /// Each signing secret's `CryptoKey` (not extractable), imported once per
    /// isolate: the raw key it was made from, and the key.
    static KEYS: std::cell::RefCell<Vec<(Vec<u8>, JsValue)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// HMAC-SHA256 of `content` with each key, by the runtime's WebCrypto
/// (BoringSSL's SHA-256, native code, where the wasm's would be software:
/// see BENCHMARKS.md). The content crosses as a view of wasm memory, which
/// WebCrypto copies at the call. `None` if the runtime failed, which it has
/// no reason to.
async fn hmac_sha256<'k>(
    keys: impl Iterator<Item = &'k [u8]>,
    content: &[u8],
) -> Option<Vec<[u8; 32]>> {
    let mut macs = Vec::new();
    for raw in keys {
        let cached =
            KEYS.with_borrow(|k| k.iter().find(|(r, _)| r == raw).map(|(_, key)| key.clone()));
        let key = match cached {
            Some(key) => key,
            None => {
                let algorithm = JSON::parse(r#"{"name":"HMAC","hash":"SHA-256"}"#).ok()?;
                let usages = JSON::parse(r#"["sign"]"#).ok()?;
                let key = JsFuture::from(import_key("raw", raw, &algorithm, false, &usages))
                    .await
                    .ok()?;
                KEYS.with_borrow_mut(|k| k.push((raw.to_vec(), key.clone())));
                key
            }
        };
        let mac = JsFuture::from(sign("HMAC", &key, content)).await.ok()?;
        macs.push(Uint8Array::new(&mac).to_vec().try_into().ok()?);
    }
    Some(macs)
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
