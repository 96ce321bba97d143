//! The request path as a sans-IO state machine. The order of the checks is a
//! security property, so it lives here, where it is tested natively, and the
//! glue only performs what each step asks for:
//!
//! ```text
//! start(config, head) ─▶ Reply                          health, 404, 405, 500 misconfigured,
//!         │                                             401 query secret, 413 declared length
//!         ▼
//! Step::ReadBody(AwaitingBody)    glue reads the body as told (whole or chunked, bounded)
//!         │ .body_read(body, signature headers, now)
//!         ▼                      ─▶ Reply               413 read, 401 signature headers, (unsigned:) 400, 200
//! Step::Sign(AwaitingMacs)        glue computes HMAC-SHA256 of .content() with each of .keys() (WebCrypto)
//!         │ .signed(macs)
//!         ▼                      ─▶ Reply               401 signature, 503 signing_unavailable, 400 event, 200 ignored
//! Step::Forward(AwaitingUpstream, ForwardRequest)       glue performs the one fetch
//!   or Step::Enqueue(AwaitingQueue, message)             queue mode: glue sends to SYNC_QUEUE
//!         │ .answered(upstream result)
//!         ▼
//! Done { reply, log }             200 forwarded, 502, 504
//!
//! start ─▶ Step::FindResync(AwaitingBinding)            /health, /admin/…: glue looks up RESYNC
//!         │ .bound(present)   ─▶ Reply                  health "resync":"off", 503 resync_unconfigured,
//!         ▼                                             413 declared length
//! Step::ReadAdminBody(AwaitingAdminBody)                glue reads the body (≤ 64 KiB)
//!         │ .body_read(body, header lookup) ─▶ Reply    413 read, 400 unreadable
//!         ▼
//! Step::CallResync(AwaitingResync, ResyncCall)          glue calls the RESYNC binding
//!         │ .answered(answer)
//!         ▼
//! Done                            health with "resync", or the re-sync Worker's answer as is, 502
//! ```
//!
//! Each state can only be built by the step before it, so no glue can skip a
//! check or reorder two.

use std::collections::BTreeMap;

use serde_json::json;

use clerk_sync_contract::body::{body_read, declared_too_long, BodyRead};
use clerk_sync_contract::command::Command;
use clerk_sync_contract::time::UnixMillis;

use crate::config::{is_loopback_host, url_host, Checked, Config, ConfigProblem, DeliveryMode};
use crate::error::RelayError;
use crate::event::{map_event, Mapped};
use crate::log::RequestLog;
use crate::resync::{self, ResyncAnswer, ResyncCall, ResyncHealth};
use crate::verify::{Challenge, SignatureHeaders, VerifiedDelivery};

pub const WEBHOOK_PATH: &str = "/webhook";
pub const HEALTH_PATH: &str = "/health";
/// Every path under it (any method) goes to the re-sync Worker.
pub const ADMIN_PREFIX: &str = "/admin/";
/// The largest admin request body passed on to the re-sync Worker.
pub const ADMIN_MAX_BODY_BYTES: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Webhook,
    Health,
    /// `/admin/…`, any method: relayed to the re-sync Worker.
    Admin,
}

/// Which handler a request goes to.
pub fn route(method: &str, path: &str) -> Result<Route, RelayError> {
    match (path, method) {
        (WEBHOOK_PATH, "POST") => Ok(Route::Webhook),
        (HEALTH_PATH, "GET" | "HEAD") => Ok(Route::Health),
        (WEBHOOK_PATH | HEALTH_PATH, _) => Err(RelayError::MethodNotAllowed),
        (p, _) if p.starts_with(ADMIN_PREFIX) => Ok(Route::Admin),
        _ => Err(RelayError::NotFound),
    }
}

/// The `Allow` header for a 405 on `path`.
pub fn allowed_methods(path: &str) -> &'static str {
    if path == HEALTH_PATH {
        "GET, HEAD"
    } else {
        "POST"
    }
}

/// The query of a serialized URL (between the first `?` and any `#`), as
/// `url::Url::query` gives it: `None` without a `?`.
pub fn query_of(url: &str) -> Option<&str> {
    let before_fragment = url.split_once('#').map_or(url, |(head, _)| head);
    before_fragment.split_once('?').map(|(_, query)| query)
}

/// A JSON object of strings, as the glue reads a request's headers
/// (`Object.fromEntries`) or the relay's variables (`JSON.stringify` with
/// their names) in one call each; `None` if it is not one.
pub fn string_map(json: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_str(json).ok()
}

/// The path of a serialized absolute URL (`/` when it has none).
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = after_scheme.find(['?', '#']).unwrap_or(after_scheme.len());
    let before_query = &after_scheme[..end];
    before_query.find('/').map_or("/", |i| &before_query[i..])
}

/// What the glue knows of a request before any byte of its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The absolute URL as the runtime serialized it.
    pub url: &'a str,
    pub content_length: Option<&'a str>,
    pub transfer_encoding: Option<&'a str>,
}

impl RequestHead<'_> {
    pub fn path(&self) -> &str {
        path_of(self.url)
    }

    /// True when the request came to `localhost`/127.0.0.0/8/`[::1]`: a
    /// developer's machine, where dev settings are fine.
    pub fn to_loopback(&self) -> bool {
        url_host(self.url).is_some_and(is_loopback_host)
    }
}

/// What the glue does next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per request, moved from step to step, never stored in bulk
pub enum Step<'c> {
    /// Read the body as [`AwaitingBody::how`] says, at most
    /// [`AwaitingBody::max_bytes`], then call [`AwaitingBody::body_read`].
    ReadBody(AwaitingBody<'c>),
    /// Send this request to the main API (no redirects, the timeout in it),
    /// then call [`AwaitingUpstream::answered`].
    Forward(AwaitingUpstream, ForwardRequest),
    /// Queue mode: send this message (the command's JSON) to `SYNC_QUEUE`,
    /// then call [`AwaitingQueue::sent`] with whether the send resolved.
    Enqueue(AwaitingQueue, String),
    /// Compute the delivery's MACs, then call [`AwaitingMacs::signed`].
    Sign(AwaitingMacs<'c>),
    /// Look up the `RESYNC` service binding ([`resync::BINDING`]), then call
    /// [`AwaitingBinding::bound`].
    FindResync(AwaitingBinding<'c>),
    /// Read an admin request's body as [`AwaitingAdminBody::how`] says, at
    /// most [`ADMIN_MAX_BODY_BYTES`], then call [`AwaitingAdminBody::body_read`].
    ReadAdminBody(AwaitingAdminBody),
    /// Send this request through the `RESYNC` binding, then call
    /// [`AwaitingResync::answered`] with how it ended.
    CallResync(AwaitingResync<'c>, ResyncCall),
    /// Answer and write the log line.
    Reply(Done),
}

/// The end of a request: the answer and its one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub reply: Reply,
    pub log: RequestLog,
}

impl Done {
    fn new(mut log: RequestLog, result: Result<Reply, RelayError>, path: &str) -> Self {
        let (reply, outcome) = match result {
            Ok(reply) => {
                let outcome = match (reply.status, log.command.is_some()) {
                    (s, _) if s >= 400 => "misconfigured",
                    (_, true) => "forwarded",
                    _ if log.path == HEALTH_PATH => "ok",
                    _ => "ignored",
                };
                (reply, Ok(outcome))
            }
            Err(e) => (Reply::error(&e, path), Err(e)),
        };
        log.finish(outcome.as_ref().copied(), reply.status);
        Self { reply, log }
    }

    /// The re-sync Worker's own answer, passed on as is.
    fn relayed(mut log: RequestLog, reply: Reply) -> Self {
        log.upstream_status = Some(reply.status);
        log.finish(Ok("relayed"), reply.status);
        if reply.status >= 400 {
            log.level = if reply.status >= 500 { "error" } else { "warn" };
        }
        Self { reply, log }
    }

    /// The log line, with how long the request took.
    pub fn log_line(&mut self, duration_ms: u64) -> String {
        self.log.duration_ms = duration_ms;
        self.log.to_json()
    }
}

/// Routes a request and, for a webhook, makes every check that needs no
/// body, in order: configuration, query secret, declared length.
pub fn start<'c>(
    config: &'c Result<Config, Vec<ConfigProblem>>,
    head: &RequestHead<'_>,
) -> Step<'c> {
    let path = head.path();
    let log = RequestLog::new(head.method, path);
    let usable = config.as_ref().map_err(Clone::clone).and_then(|c| {
        let problems = c.deployment_problems(head.to_loopback());
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems)
        }
    });
    let result = match route(head.method, path) {
        Ok(Route::Health) => {
            return Step::FindResync(AwaitingBinding {
                log,
                purpose: Purpose::Health(usable),
            })
        }
        // The relay's configuration is not consulted: it is the webhook
        // path's (signing and query secrets, the main API), while re-sync has
        // its own in the re-sync Worker, which also checks ADMIN_SECRET. A
        // broken relay setting, say a bad CLERK_WEBHOOK_SECRET, must not take
        // away the tool that repairs what the relay missed meanwhile.
        Ok(Route::Admin) => {
            return Step::FindResync(AwaitingBinding {
                log,
                purpose: Purpose::Admin {
                    method: head.method.to_owned(),
                    path: path.to_owned(),
                    query: query_of(head.url).map(str::to_owned),
                    how: body_read(head.content_length, head.transfer_encoding),
                    declared_too_long: declared_too_long(head.content_length, ADMIN_MAX_BODY_BYTES),
                },
            })
        }
        Ok(Route::Webhook) => match usable {
            Err(problems) => Err(RelayError::Misconfigured(problems)),
            Ok(config) => match admit(config, query_of(head.url), head.content_length) {
                Ok(()) => {
                    return Step::ReadBody(AwaitingBody {
                        config,
                        how: body_read(head.content_length, head.transfer_encoding),
                        log,
                        path: WEBHOOK_PATH,
                    })
                }
                Err(e) => Err(e),
            },
        },
        Err(e) => Err(e),
    };
    Step::Reply(Done::new(log, result, path))
}

/// A webhook that passed every check that needs no body.
#[derive(Debug)]
pub struct AwaitingBody<'c> {
    config: &'c Config,
    how: BodyRead,
    log: RequestLog,
    path: &'static str,
}

/// Why the glue could not read the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// More bytes arrived than the limit (reading stopped there).
    TooLarge,
    /// The runtime failed to read the stream.
    Unreadable,
}

impl<'c> AwaitingBody<'c> {
    pub fn how(&self) -> BodyRead {
        self.how
    }

    pub fn max_bytes(&self) -> u32 {
        self.config.max_body_bytes
    }

    /// The body as read, the signature headers, and the relay's clock: the
    /// signature is checked over exactly these bytes, then the event mapped.
    /// A signed delivery first goes through [`Step::Sign`] for its MACs.
    pub fn body_read(
        self,
        body: Result<Vec<u8>, ReadFailure>,
        headers: &SignatureHeaders,
        now: UnixMillis,
    ) -> Step<'c> {
        let checked = match body {
            Err(ReadFailure::TooLarge) => Err(RelayError::PayloadTooLarge),
            Err(ReadFailure::Unreadable) => Err(RelayError::UnreadableBody),
            Ok(body) if body.len() > self.config.max_body_bytes as usize => {
                Err(RelayError::PayloadTooLarge)
            }
            Ok(body) => self.config.check(headers, body, now).map_err(Into::into),
        };
        match checked {
            Ok(Checked::Verified(delivery)) => self.verified(delivery, now),
            Ok(Checked::NeedsMacs(challenge)) => Step::Sign(AwaitingMacs {
                body: self,
                challenge,
                now,
            }),
            Err(e) => Step::Reply(Done::new(self.log, Err(e), self.path)),
        }
    }

    /// Step 4 and on: the event mapped, then ignored, queued or forwarded.
    fn verified(mut self, delivery: VerifiedDelivery, now: UnixMillis) -> Step<'c> {
        let processed = match map_event(&delivery, now) {
            Ok(mapped) => Processed { delivery, mapped },
            Err(e) => return Step::Reply(Done::new(self.log, Err(e.into()), self.path)),
        };
        self.log.processed(&processed);
        match processed.mapped {
            Mapped::Ignored { .. } => {
                Step::Reply(Done::new(self.log, Ok(Reply::ignored()), self.path))
            }
            Mapped::Forward(command) if self.config.delivery == DeliveryMode::Queue => {
                let message = String::from_utf8(command.to_json()).unwrap_or_default();
                Step::Enqueue(
                    AwaitingQueue {
                        command,
                        log: self.log,
                    },
                    message,
                )
            }
            Mapped::Forward(command) => {
                let request = forward_request(self.config, &command);
                Step::Forward(
                    AwaitingUpstream {
                        command,
                        log: self.log,
                    },
                    request,
                )
            }
        }
    }
}

/// A signed delivery that passed every check but its MAC: the glue computes
/// HMAC-SHA256 of [`AwaitingMacs::content`] with each of
/// [`AwaitingMacs::keys`] (the runtime's WebCrypto: native SHA-256, where
/// the wasm's is software), then calls [`AwaitingMacs::signed`].
#[derive(Debug)]
pub struct AwaitingMacs<'c> {
    body: AwaitingBody<'c>,
    challenge: Challenge,
    now: UnixMillis,
}

impl<'c> AwaitingMacs<'c> {
    pub fn content(&self) -> &[u8] {
        self.challenge.signed_content()
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.body.config.keys()
    }

    /// The MACs in the order of the keys, or `None` when the runtime could
    /// not compute them (503 `signing_unavailable`: Svix retries).
    pub fn signed(self, macs: Option<Vec<[u8; 32]>>) -> Step<'c> {
        let Some(macs) = macs else {
            return Step::Reply(Done::new(
                self.body.log,
                Err(RelayError::SigningUnavailable),
                self.body.path,
            ));
        };
        match self.challenge.settle(&macs) {
            Ok(delivery) => self.body.verified(delivery, self.now),
            Err(e) => Step::Reply(Done::new(self.body.log, Err(e.into()), self.body.path)),
        }
    }
}

/// A health or admin request, waiting to learn whether re-sync is bound.
#[derive(Debug)]
pub struct AwaitingBinding<'c> {
    log: RequestLog,
    purpose: Purpose<'c>,
}

#[derive(Debug)]
enum Purpose<'c> {
    Health(Result<&'c Config, Vec<ConfigProblem>>),
    Admin {
        method: String,
        path: String,
        query: Option<String>,
        how: BodyRead,
        declared_too_long: bool,
    },
}

impl<'c> AwaitingBinding<'c> {
    /// Whether the `RESYNC` binding exists.
    pub fn bound(self, present: bool) -> Step<'c> {
        let log = self.log;
        match self.purpose {
            Purpose::Health(usable) if !present => Step::Reply(Done::new(
                log,
                Ok(Reply::health(usable, &ResyncHealth::Off(Vec::new()))),
                HEALTH_PATH,
            )),
            Purpose::Health(usable) => Step::CallResync(
                AwaitingResync {
                    log,
                    purpose: ResyncPurpose::Health(usable),
                },
                ResyncCall::health(),
            ),
            Purpose::Admin { .. } if !present => Step::Reply(Done::new(
                log,
                Err(RelayError::ResyncUnconfigured),
                ADMIN_PREFIX,
            )),
            Purpose::Admin {
                declared_too_long: true,
                ..
            } => Step::Reply(Done::new(
                log,
                Err(RelayError::PayloadTooLarge),
                ADMIN_PREFIX,
            )),
            Purpose::Admin {
                method,
                path,
                query,
                how,
                ..
            } => Step::ReadAdminBody(AwaitingAdminBody {
                log,
                method,
                path,
                query,
                how,
            }),
        }
    }
}

/// An admin request to relay, once its body is read.
#[derive(Debug)]
pub struct AwaitingAdminBody {
    log: RequestLog,
    method: String,
    path: String,
    query: Option<String>,
    how: BodyRead,
}

impl AwaitingAdminBody {
    pub fn how(&self) -> BodyRead {
        self.how
    }

    pub fn max_bytes(&self) -> u32 {
        ADMIN_MAX_BODY_BYTES
    }

    /// The body as read and the request's headers (by name, lowercase): the
    /// request to pass on, or why not.
    pub fn body_read(
        self,
        body: Result<Vec<u8>, ReadFailure>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Step<'static> {
        let body = match body {
            Ok(b) if b.len() <= ADMIN_MAX_BODY_BYTES as usize => b,
            Ok(_) | Err(ReadFailure::TooLarge) => {
                return Step::Reply(Done::new(
                    self.log,
                    Err(RelayError::PayloadTooLarge),
                    ADMIN_PREFIX,
                ))
            }
            Err(ReadFailure::Unreadable) => {
                return Step::Reply(Done::new(
                    self.log,
                    Err(RelayError::UnreadableBody),
                    ADMIN_PREFIX,
                ))
            }
        };
        let headers = resync::ADMIN_HEADERS
            .iter()
            .filter_map(|&name| header(name).map(|v| (name, v)))
            .collect();
        let call = ResyncCall::admin(
            &self.method,
            &self.path,
            self.query.as_deref(),
            headers,
            body,
        );
        Step::CallResync(
            AwaitingResync {
                log: self.log,
                purpose: ResyncPurpose::Admin,
            },
            call,
        )
    }
}

/// A call through the `RESYNC` binding on its way.
#[derive(Debug)]
pub struct AwaitingResync<'c> {
    log: RequestLog,
    purpose: ResyncPurpose<'c>,
}

#[derive(Debug)]
enum ResyncPurpose<'c> {
    Health(Result<&'c Config, Vec<ConfigProblem>>),
    Admin,
}

impl AwaitingResync<'_> {
    /// How the call ended decides the answer.
    pub fn answered(self, answer: ResyncAnswer) -> Done {
        match (self.purpose, answer) {
            (ResyncPurpose::Health(usable), answer) => Done::new(
                self.log,
                Ok(Reply::health(usable, &ResyncHealth::from_answer(&answer))),
                HEALTH_PATH,
            ),
            (
                ResyncPurpose::Admin,
                ResyncAnswer::Answered {
                    status,
                    content_type,
                    body,
                },
            ) => Done::relayed(
                self.log,
                Reply {
                    status,
                    body,
                    allow: None,
                    content_type,
                },
            ),
            (ResyncPurpose::Admin, ResyncAnswer::Failed) => {
                Done::new(self.log, Err(RelayError::ResyncUnavailable), ADMIN_PREFIX)
            }
        }
    }
}

/// A verified, mapped delivery whose command is on its way to the main API.
#[derive(Debug)]
pub struct AwaitingUpstream {
    command: Command,
    log: RequestLog,
}

impl AwaitingUpstream {
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// How the one forward attempt ended decides the answer to Svix.
    pub fn answered(mut self, result: UpstreamResult) -> Done {
        if let UpstreamResult::Status(s) = result {
            self.log.upstream_status = Some(s);
        }
        let reply = interpret_upstream(result).map(|_| Reply::forwarded(&self.command));
        Done::new(self.log, reply, WEBHOOK_PATH)
    }
}

/// A verified, mapped delivery whose command is on its way to `SYNC_QUEUE`.
#[derive(Debug)]
pub struct AwaitingQueue {
    command: Command,
    log: RequestLog,
}

impl AwaitingQueue {
    /// Svix gets a 2xx only once the queue holds the command; a send that
    /// failed is a 503, so Svix retries.
    pub fn sent(self, resolved: bool) -> Done {
        let reply = if resolved {
            Ok(Reply::queued(&self.command))
        } else {
            Err(RelayError::QueueUnavailable)
        };
        let mut done = Done::new(self.log, reply, WEBHOOK_PATH);
        if resolved {
            done.log.outcome = "queued";
        }
        done
    }
}

/// Steps 1 and 2, before any byte of the body is read: the query secret,
/// then the declared length.
pub fn admit(
    config: &Config,
    query: Option<&str>,
    content_length: Option<&str>,
) -> Result<(), RelayError> {
    if !config.check_query_secret(query) {
        return Err(RelayError::Unauthorized);
    }
    if declared_too_long(content_length, config.max_body_bytes) {
        return Err(RelayError::PayloadTooLarge);
    }
    Ok(())
}

/// A delivery that passed every check, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub delivery: VerifiedDelivery,
    pub mapped: Mapped,
}

/// Steps 3 and 4 on a body that was read: signature (or an allowed unsigned
/// delivery), then the event and its command.
pub fn process(
    config: &Config,
    headers: &SignatureHeaders,
    body: Vec<u8>,
    now: UnixMillis,
) -> Result<Processed, RelayError> {
    if body.len() > config.max_body_bytes as usize {
        return Err(RelayError::PayloadTooLarge);
    }
    let delivery = config.verify(headers, body, now)?;
    let mapped = map_event(&delivery, now)?;
    Ok(Processed { delivery, mapped })
}

/// The request the glue sends to the main API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Abort the fetch after this long: `FORWARD_TIMEOUT_MS`.
    pub timeout_ms: u32,
}

/// The contract's `POST {API_URL}{API_SYNC_PATH}`.
pub fn forward_request(config: &Config, command: &Command) -> ForwardRequest {
    ForwardRequest {
        url: config.forward_url.clone(),
        headers: {
            let mut headers = api_headers(config);
            headers.push(("idempotency-key", command.operation_id.clone()));
            headers
        },
        body: command.to_json(),
        timeout_ms: config.forward_timeout_ms,
    }
}

/// The headers of every call to the main API: its bearer, JSON, and who calls.
pub fn api_headers(config: &Config) -> Vec<(&'static str, String)> {
    vec![
        (
            "authorization",
            format!("Bearer {}", config.api_secret.expose()),
        ),
        ("content-type", "application/json".into()),
        ("user-agent", format!("clerk-sync/{}", crate::VERSION)),
    ]
}

/// How the one forward attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamResult {
    Status(u16),
    Unavailable,
    TimedOut,
}

/// 2xx, or 409 (already applied), means the main API has the command.
/// Everything else is an error, so Svix retries.
pub fn interpret_upstream(result: UpstreamResult) -> Result<u16, RelayError> {
    match result {
        UpstreamResult::Status(s) if (200..300).contains(&s) || s == 409 => Ok(s),
        UpstreamResult::Status(s) => Err(RelayError::UpstreamRejected(s)),
        UpstreamResult::Unavailable => Err(RelayError::UpstreamUnavailable),
        UpstreamResult::TimedOut => Err(RelayError::UpstreamTimeout),
    }
}

/// An answer: status, body, and the `Allow` header for a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
    /// `None`: the relay's own JSON (`application/json`). Otherwise the
    /// re-sync Worker's `content-type`, passed on with its answer.
    pub content_type: Option<String>,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            allow: None,
            content_type: None,
        }
    }

    pub fn forwarded(command: &Command) -> Self {
        Self::taken(command, "forwarded")
    }

    /// Queue mode's 200: `SYNC_QUEUE` holds the command.
    pub fn queued(command: &Command) -> Self {
        Self::taken(command, "queued")
    }

    /// One body for both 200s, with `how` it was taken set to true.
    fn taken(command: &Command, how: &str) -> Self {
        let mut body = json!({"ok": true, "operation_id": command.operation_id, "command": command.command.as_str()});
        body[how] = true.into();
        Self::json(200, body)
    }

    pub fn ignored() -> Self {
        Self::json(200, json!({"ok": true, "ignored": true}))
    }

    pub fn error(err: &RelayError, path: &str) -> Self {
        let mut reply = Self::json(
            err.status(),
            json!({"ok": false, "error": err.code(), "message": err.message()}),
        );
        if *err == RelayError::MethodNotAllowed {
            reply.allow = Some(allowed_methods(path));
        }
        reply
    }

    /// `GET /health`: 200 with no secret and no switch that says which
    /// protection is off, or 503 naming each problem's variable. Re-sync is
    /// optional, so its state (`"resync"`, and the re-sync Worker's
    /// `"resync_problems"` by name when off) never changes the status.
    pub fn health(config: Result<&Config, Vec<ConfigProblem>>, resync: &ResyncHealth) -> Self {
        let mut reply = match config {
            Ok(c) => json!({
                "ok": true,
                "status": "ok",
                "service": "clerk-sync",
                "version": crate::VERSION,
                "signing_secrets": c.signing_secret_count(),
            }),
            Err(problems) => json!({
                "ok": false,
                "status": "misconfigured",
                "error": "misconfigured",
                "message": "the relay is misconfigured",
                "problems": problems,
            }),
        };
        let status = if reply["ok"] == true { 200 } else { 503 };
        reply["resync"] = resync.as_str().into();
        if let ResyncHealth::Off(names) = resync {
            if !names.is_empty() {
                reply["resync_problems"] = names.clone().into();
            }
        }
        Self::json(status, reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        ALLOW_UNSIGNED_WEBHOOKS, API_SECRET, API_URL, CLERK_WEBHOOK_SECRET, WEBHOOK_QUERY_SECRET,
    };
    use crate::verify::VerifyError;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: UnixMillis = UnixMillis(1_000_000);
    const DELETE: &[u8] = br#"{"type":"user.deleted","data":{"id":"u"}}"#;

    fn config_with(allow_unsigned: bool, api_url: &str) -> Result<Config, Vec<ConfigProblem>> {
        let api_url = api_url.to_owned();
        Config::from_lookup(move |k| {
            Some(match k {
                CLERK_WEBHOOK_SECRET => SECRET.into(),
                WEBHOOK_QUERY_SECRET => "q".into(),
                API_SECRET => "api-secret".into(),
                ALLOW_UNSIGNED_WEBHOOKS => allow_unsigned.to_string(),
                API_URL => api_url.clone(),
                crate::config::MAX_BODY_BYTES => "100".into(),
                _ => return None,
            })
        })
    }

    fn config(allow_unsigned: bool) -> Config {
        config_with(allow_unsigned, "http://127.0.0.1:8787").unwrap()
    }

    /// What the glue's WebCrypto computes, in software.
    fn software_macs(s: &AwaitingMacs<'_>) -> Vec<[u8; 32]> {
        use hmac::Mac;
        s.keys()
            .map(|key| {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
                mac.update(s.content());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    /// Svix's headers for `body`, signed with [`SECRET`] at [`NOW`].
    fn signed_headers(body: &[u8]) -> SignatureHeaders {
        use base64::Engine;
        use hmac::Mac;
        let key = base64::engine::general_purpose::STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .unwrap();
        let ts = NOW.as_secs().to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("msg_1.{ts}.").as_bytes());
        mac.update(body);
        let tag = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        SignatureHeaders::from_lookup(|name| match name {
            "svix-id" => Some("msg_1".into()),
            "svix-timestamp" => Some(ts.clone()),
            "svix-signature" => Some(format!("v1,{tag}")),
            _ => None,
        })
    }

    /// A signed delivery up to its [`Step::Sign`].
    fn awaiting_macs(config: &Config) -> AwaitingMacs<'_> {
        let config = Box::leak(Box::new(Ok(config.clone())));
        let len = DELETE.len().to_string();
        let step = start(config, &head("POST", HOOK, Some(&len)));
        let Step::ReadBody(s) = step else {
            panic!("{step:?}")
        };
        match s.body_read(Ok(DELETE.to_vec()), &signed_headers(DELETE), NOW) {
            Step::Sign(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_signed_delivery_is_forwarded_only_with_a_matching_mac_from_the_glue() {
        let c = config(false);
        // The MACs the glue computed, over "{id}.{timestamp}.{body}".
        let s = awaiting_macs(&c);
        assert!(s.content().ends_with(DELETE));
        assert!(s.content().starts_with(b"msg_1."));
        assert_eq!(s.keys().count(), 1);
        let macs = software_macs(&s);
        let Step::Forward(_, request) = s.signed(Some(macs.clone())) else {
            panic!("not forwarded")
        };
        assert!(String::from_utf8(request.body)
            .unwrap()
            .contains(r#""operation_id":"msg_1""#));
        // A MAC that does not match, or none where a key is configured.
        let mut wrong = macs.clone();
        wrong[0][0] ^= 1;
        for macs in [wrong, Vec::new(), [macs[0]; 2].to_vec()] {
            let Step::Reply(done) = awaiting_macs(&c).signed(Some(macs)) else {
                panic!("answered without a reply")
            };
            assert_eq!(done.reply.status, 401);
            assert_eq!(done.log.outcome, "invalid_signature");
        }
        // The runtime could not compute them: 503, so Svix retries.
        let Step::Reply(done) = awaiting_macs(&c).signed(None) else {
            panic!("answered without a reply")
        };
        assert_eq!(done.reply.status, 503);
        assert_eq!(done.log.outcome, "signing_unavailable");
    }

    fn head<'a>(method: &'a str, url: &'a str, len: Option<&'a str>) -> RequestHead<'a> {
        RequestHead {
            method,
            url,
            content_length: len,
            transfer_encoding: None,
        }
    }

    const HOOK: &str = "http://127.0.0.1:8788/webhook?secret=q";

    /// Runs a request through the machine as the glue would, with no
    /// `RESYNC` binding, recording each step the glue was asked to perform.
    fn drive(
        config: &Result<Config, Vec<ConfigProblem>>,
        head: &RequestHead<'_>,
        body: Result<Vec<u8>, ReadFailure>,
        upstream: UpstreamResult,
    ) -> (Vec<&'static str>, Done) {
        let (steps, done, _) = drive_with(config, head, body, upstream, None);
        (steps, done)
    }

    /// As [`drive`], with the `RESYNC` binding when `resync` is `Some` (its
    /// answer to any call); also returns the call made through it.
    fn drive_with(
        config: &Result<Config, Vec<ConfigProblem>>,
        head: &RequestHead<'_>,
        body: Result<Vec<u8>, ReadFailure>,
        upstream: UpstreamResult,
        resync: Option<ResyncAnswer>,
    ) -> (Vec<&'static str>, Done, Option<ResyncCall>) {
        let mut steps = Vec::new();
        let mut called = None;
        let mut step = start(config, head);
        loop {
            step = match step {
                Step::ReadBody(s) => {
                    steps.push("read_body");
                    s.body_read(body.clone(), &SignatureHeaders::default(), NOW)
                }
                Step::Sign(s) => {
                    steps.push("sign");
                    let macs = software_macs(&s);
                    s.signed(Some(macs))
                }
                Step::Forward(s, _) => {
                    steps.push("forward");
                    Step::Reply(s.answered(upstream))
                }
                // Queue mode: the send resolves when the "upstream" is a 2xx.
                Step::Enqueue(s, message) => {
                    steps.push("enqueue");
                    let command: Command = serde_json::from_str(&message).unwrap();
                    assert_eq!(&command, &s.command);
                    Step::Reply(s.sent(matches!(upstream, UpstreamResult::Status(200..=299))))
                }
                Step::FindResync(s) => {
                    steps.push("find_resync");
                    s.bound(resync.is_some())
                }
                Step::ReadAdminBody(s) => {
                    steps.push("read_body");
                    let headers = [
                        ("authorization", "Bearer admin"),
                        ("content-type", "application/json"),
                        ("x-other", "kept out"),
                    ];
                    s.body_read(body.clone(), |name| {
                        headers
                            .iter()
                            .find(|(k, _)| *k == name)
                            .map(|(_, v)| v.to_string())
                    })
                }
                Step::CallResync(s, call) => {
                    steps.push("call_resync");
                    called = Some(call);
                    Step::Reply(s.answered(resync.clone().expect("called only when bound")))
                }
                Step::Reply(done) => {
                    steps.push("reply");
                    return (steps, done, called);
                }
            }
        }
    }

    fn code(done: &Done) -> (u16, String) {
        let v: serde_json::Value = serde_json::from_str(&done.reply.body).unwrap();
        (
            done.reply.status,
            v["error"].as_str().unwrap_or("ok").to_owned(),
        )
    }

    #[test]
    fn the_query_secret_is_checked_before_the_length_and_before_any_read() {
        let c = Ok(config(true));
        let url = "http://127.0.0.1:8788/webhook?secret=wrong";
        let (steps, done) = drive(
            &c,
            &head("POST", url, Some("999999")),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["reply"]);
        assert_eq!(code(&done), (401, "unauthorized".into()));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let (steps, done) = drive(
            &Ok(config(true)),
            &head("POST", HOOK, Some("101")),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["reply"]);
        assert_eq!(code(&done), (413, "payload_too_large".into()));
    }

    #[test]
    fn misconfiguration_is_answered_before_the_secret_or_the_body() {
        let broken = Config::from_lookup(|_| None);
        let (steps, done) = drive(
            &broken,
            &head("POST", HOOK, None),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["reply"]);
        assert_eq!(code(&done), (500, "misconfigured".into()));
        assert!(done.log.misconfigured.contains(&API_SECRET));
    }

    #[test]
    fn a_bad_signature_is_refused_after_reading_and_before_forwarding() {
        let (steps, done) = drive(
            &Ok(config(false)),
            &head("POST", HOOK, None),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["read_body", "reply"]);
        assert_eq!(code(&done), (401, "missing_signature_headers".into()));
    }

    #[test]
    fn bytes_over_the_limit_and_unreadable_bodies_stop_before_verification() {
        for (failure, expected) in [
            (ReadFailure::TooLarge, (413, "payload_too_large")),
            (ReadFailure::Unreadable, (400, "unreadable_body")),
        ] {
            let (steps, done) = drive(
                &Ok(config(true)),
                &head("POST", HOOK, None),
                Err(failure),
                UpstreamResult::Status(200),
            );
            assert_eq!(steps, ["read_body", "reply"]);
            assert_eq!(code(&done), (expected.0, expected.1.into()));
            assert_eq!(done.log.operation_id, None, "nothing was verified");
        }
    }

    #[test]
    fn a_verified_event_is_forwarded_and_only_2xx_or_409_is_taken() {
        for (upstream, expected) in [
            (UpstreamResult::Status(200), (200, "ok")),
            (UpstreamResult::Status(409), (200, "ok")),
            (UpstreamResult::Status(500), (502, "upstream_rejected")),
            (UpstreamResult::Unavailable, (502, "upstream_unavailable")),
            (UpstreamResult::TimedOut, (504, "upstream_timeout")),
        ] {
            let (steps, done) = drive(
                &Ok(config(true)),
                &head("POST", HOOK, Some("41")),
                Ok(DELETE.to_vec()),
                upstream,
            );
            assert_eq!(steps, ["read_body", "forward", "reply"]);
            assert_eq!(code(&done), (expected.0, expected.1.into()));
            assert_eq!(done.log.command, Some("delete_user"));
        }
    }

    fn queue_config(bound: bool) -> Result<Config, Vec<ConfigProblem>> {
        let c = Config::from_lookup(|k| {
            Some(match k {
                CLERK_WEBHOOK_SECRET => SECRET.into(),
                WEBHOOK_QUERY_SECRET => "q".into(),
                API_SECRET => "api-secret".into(),
                ALLOW_UNSIGNED_WEBHOOKS => "true".into(),
                crate::config::DELIVERY_MODE => "queue".into(),
                _ => return None,
            })
        });
        crate::config::with_bindings(c, || bound)
    }

    #[test]
    fn in_queue_mode_a_verified_event_is_queued_and_2xx_only_once_the_send_resolved() {
        let c = queue_config(true);
        for (sent, expected) in [
            (UpstreamResult::Status(200), (200, "ok")),
            (UpstreamResult::Unavailable, (503, "queue_unavailable")),
        ] {
            let (steps, done) = drive(&c, &head("POST", HOOK, None), Ok(DELETE.to_vec()), sent);
            assert_eq!(steps, ["read_body", "enqueue", "reply"], "never a forward");
            assert_eq!(code(&done), (expected.0, expected.1.into()));
        }
        let (_, done) = drive(
            &c,
            &head("POST", HOOK, None),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        let body: serde_json::Value = serde_json::from_str(&done.reply.body).unwrap();
        assert_eq!(body["queued"], true);
        assert_eq!(body["command"], "delete_user");
        assert!(body.get("forwarded").is_none());
        assert_eq!(done.log.outcome, "queued");
        // Ignored events and 4xx are as in direct mode: nothing is queued.
        let (steps, done) = drive(
            &c,
            &head("POST", HOOK, None),
            Ok(br#"{"type":"session.created","data":{}}"#.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(
            (steps, done.reply.status),
            (vec!["read_body", "reply"], 200)
        );
        let (steps, done) = drive(
            &c,
            &head("POST", HOOK, None),
            Ok(b"not json".to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(
            (steps, done.reply.status),
            (vec!["read_body", "reply"], 400)
        );
    }

    #[test]
    fn queue_mode_without_its_binding_is_misconfigured_by_name_on_webhooks_and_health() {
        let c = queue_config(false);
        let (steps, done) = drive(
            &c,
            &head("POST", HOOK, None),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["reply"]);
        assert_eq!(code(&done), (500, "misconfigured".into()));
        assert_eq!(done.log.misconfigured, ["SYNC_QUEUE"]);
        let (_, health) = drive(
            &c,
            &head("GET", "http://127.0.0.1:8788/health", None),
            Ok(vec![]),
            UpstreamResult::Status(200),
        );
        assert_eq!(health.reply.status, 503);
        assert!(health.reply.body.contains("SYNC_QUEUE"));
    }

    #[test]
    fn ignored_events_and_bad_payloads_never_reach_the_api() {
        for (body, expected) in [
            (&br#"{"type":"session.created","data":{}}"#[..], (200, "ok")),
            (b"not json", (400, "invalid_json")),
            (
                br#"{"type":"user.created","data":{}}"#,
                (400, "invalid_payload"),
            ),
        ] {
            let (steps, done) = drive(
                &Ok(config(true)),
                &head("POST", HOOK, None),
                Ok(body.to_vec()),
                UpstreamResult::Status(200),
            );
            assert_eq!(steps, ["read_body", "reply"]);
            assert_eq!(code(&done), (expected.0, expected.1.into()));
        }
    }

    #[test]
    fn the_read_is_chunked_unless_a_plain_length_frames_the_body() {
        let c = Ok(config(true));
        let Step::ReadBody(s) = start(&c, &head("POST", HOOK, Some("41"))) else {
            panic!("expected a read")
        };
        assert_eq!((s.how(), s.max_bytes()), (BodyRead::Whole, 100));
        let mut chunked = head("POST", HOOK, Some("41"));
        chunked.transfer_encoding = Some("chunked");
        let Step::ReadBody(s) = start(&c, &chunked) else {
            panic!("expected a read")
        };
        assert_eq!(s.how(), BodyRead::Chunked);
    }

    #[test]
    fn dev_settings_are_refused_off_loopback_and_health_names_only_the_variables() {
        let dev = config_with(true, "http://127.0.0.1:8787");
        let public = "https://clerk-sync.example.workers.dev/webhook?secret=q";
        let (steps, done) = drive(
            &dev,
            &head("POST", public, None),
            Ok(DELETE.to_vec()),
            UpstreamResult::Status(200),
        );
        assert_eq!(steps, ["reply"]);
        assert_eq!(code(&done), (500, "misconfigured".into()));
        let (_, health) = drive(
            &dev,
            &head("GET", "https://clerk-sync.example.workers.dev/health", None),
            Ok(vec![]),
            UpstreamResult::Status(200),
        );
        assert_eq!(health.reply.status, 503);
        assert!(health.reply.body.contains("API_URL"));
        assert!(health.reply.body.contains("ALLOW_UNSIGNED_WEBHOOKS"));
        assert!(!health.reply.body.contains("127.0.0.1") && !health.reply.body.contains("true"));
        // The same configuration on loopback is a working dev setup.
        let (_, local) = drive(
            &dev,
            &head("GET", "http://127.0.0.1:8788/health", None),
            Ok(vec![]),
            UpstreamResult::Status(200),
        );
        assert_eq!(local.reply.status, 200);
        assert!(!local.reply.body.contains("unsigned"));
        // A deployed relay with a real API is fine anywhere.
        let prod = config_with(false, "https://api.example.com");
        let (_, ok) = drive(
            &prod,
            &head("GET", "https://r.example.dev/health", None),
            Ok(vec![]),
            UpstreamResult::Status(200),
        );
        assert_eq!(ok.reply.status, 200);
    }

    #[test]
    fn string_maps_are_objects_of_strings_only() {
        let m = string_map(r#"{"content-length":"41","svix-id":"msg_1"}"#).unwrap();
        assert_eq!(m.get("svix-id").map(String::as_str), Some("msg_1"));
        assert_eq!(string_map("{}"), Some(BTreeMap::new()));
        for not in [
            r#"{"FORWARD_TIMEOUT_MS":8000}"#,
            "[]",
            "",
            "null",
            r#"{"a":null}"#,
        ] {
            assert_eq!(string_map(not), None, "{not}");
        }
    }

    #[test]
    fn paths_and_queries_are_read_from_the_url() {
        assert_eq!(path_of("http://h:1/webhook?secret=a/b#c"), "/webhook");
        assert_eq!(path_of("http://h"), "/");
        assert_eq!(path_of("http://h?x=/y"), "/");
        assert_eq!(
            query_of("http://h/webhook?secret=a%20b&x=1"),
            Some("secret=a%20b&x=1")
        );
        assert_eq!(
            query_of("http://h/webhook?secret=a?b#frag"),
            Some("secret=a?b")
        );
        assert_eq!(query_of("http://h/webhook?"), Some(""));
        assert_eq!(query_of("http://h/webhook"), None);
        assert_eq!(query_of("http://h/webhook#x?y"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/webhook"), Ok(Route::Webhook));
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/webhook"), Err(RelayError::MethodNotAllowed));
        assert_eq!(route("POST", "/webhook/"), Err(RelayError::NotFound));
        assert_eq!(route("POST", "/"), Err(RelayError::NotFound));
        let r = Reply::error(&RelayError::MethodNotAllowed, "/webhook");
        assert_eq!((r.status, r.allow), (405, Some("POST")));
    }

    #[test]
    fn admit_checks_secret_before_length() {
        let c = config(false);
        assert_eq!(
            admit(&c, Some("secret=x"), Some("999999")),
            Err(RelayError::Unauthorized)
        );
        assert_eq!(
            admit(&c, Some("secret=q"), Some("101")),
            Err(RelayError::PayloadTooLarge)
        );
        assert_eq!(admit(&c, Some("secret=q"), Some("100")), Ok(()));
        assert_eq!(admit(&c, Some("secret=q"), None), Ok(()));
    }

    #[test]
    fn unsigned_needs_the_flag_and_no_signature_header() {
        let none = SignatureHeaders::default();
        assert_eq!(
            process(&config(false), &none, DELETE.to_vec(), NOW).unwrap_err(),
            RelayError::Signature(VerifyError::MissingHeaders)
        );
        let p = process(&config(true), &none, DELETE.to_vec(), NOW).unwrap();
        assert!(p.delivery.operation_id().starts_with("unsigned_"));
        assert_eq!(
            p.delivery.body(),
            DELETE,
            "the delivery owns what was checked"
        );
        // One header present: it must verify even when unsigned is allowed.
        let partial = SignatureHeaders {
            webhook_id: Some("msg_1".into()),
            ..Default::default()
        };
        assert_eq!(
            process(&config(true), &partial, DELETE.to_vec(), NOW).unwrap_err(),
            RelayError::Signature(VerifyError::MissingHeaders)
        );
    }

    #[test]
    fn forward_request_carries_the_contract_headers() {
        let c = config(true);
        let p = process(&c, &SignatureHeaders::default(), DELETE.to_vec(), NOW).unwrap();
        let Mapped::Forward(cmd) = p.mapped else {
            panic!()
        };
        let f = forward_request(&c, &cmd);
        assert_eq!(f.url, "http://127.0.0.1:8787/internal/clerk-sync");
        assert!(f
            .headers
            .contains(&("authorization", "Bearer api-secret".into())));
        assert!(f
            .headers
            .contains(&("idempotency-key", cmd.operation_id.clone())));
        assert!(f
            .headers
            .contains(&("user-agent", format!("clerk-sync/{}", crate::VERSION))));
        assert_eq!(f.body, cmd.to_json());
        assert_eq!(f.timeout_ms, 8000);
    }

    #[test]
    fn only_2xx_and_409_are_taken() {
        for s in [200, 201, 202, 204, 299, 409] {
            assert_eq!(interpret_upstream(UpstreamResult::Status(s)), Ok(s));
        }
        for s in [100, 301, 400, 401, 404, 408, 410, 422, 429, 500, 502, 503] {
            assert_eq!(
                interpret_upstream(UpstreamResult::Status(s)),
                Err(RelayError::UpstreamRejected(s))
            );
        }
    }

    #[test]
    fn health_shows_no_secret() {
        let c = config(false);
        let ok = Reply::health(Ok(&c), &ResyncHealth::On);
        assert_eq!(ok.status, 200);
        assert!(ok.body.contains(r#""status":"ok""#));
        assert!(!ok.body.contains("api-secret") && !ok.body.contains("MfKQ"));
        let bad = Reply::health(
            Err(vec![ConfigProblem {
                variable: API_SECRET,
                problem: "missing",
            }]),
            &ResyncHealth::On,
        );
        assert_eq!(bad.status, 503);
        assert!(bad.body.contains("API_SECRET"));
    }

    fn json_of(done: &Done) -> serde_json::Value {
        serde_json::from_str(&done.reply.body).unwrap()
    }

    fn resync_answer(status: u16, body: &str) -> Option<ResyncAnswer> {
        Some(ResyncAnswer::Answered {
            status,
            content_type: Some("application/json; charset=utf-8".into()),
            body: body.into(),
        })
    }

    const ADMIN: &str = "http://127.0.0.1:8788/admin/resync?mode=full&x=%20";

    #[test]
    fn admin_paths_go_to_resync_whatever_the_method() {
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"] {
            assert_eq!(route(m, "/admin/resync"), Ok(Route::Admin));
            assert_eq!(route(m, "/admin/runs/42/cancel"), Ok(Route::Admin));
        }
        assert_eq!(route("POST", "/admin"), Err(RelayError::NotFound));
        assert_eq!(route("POST", "/administrator"), Err(RelayError::NotFound));
    }

    #[test]
    fn without_the_binding_admin_is_503_before_any_read() {
        let (steps, done, called) = drive_with(
            &Ok(config(false)),
            &head("POST", ADMIN, Some("2")),
            Ok(b"{}".to_vec()),
            UpstreamResult::Status(200),
            None,
        );
        assert_eq!(steps, ["find_resync", "reply"]);
        assert_eq!(code(&done), (503, "resync_unconfigured".into()));
        assert_eq!(json_of(&done)["message"], "re-sync is not configured");
        assert_eq!(called, None);
        assert_eq!(
            (done.log.path, done.log.outcome),
            ("admin", "resync_unconfigured")
        );
    }

    #[test]
    fn an_admin_request_is_passed_on_and_its_answer_returned_as_is() {
        let answer = r#"{"ok":false,"error":"unauthorized","message":"bad admin secret"}"#;
        let (steps, done, called) = drive_with(
            &Ok(config(false)),
            &head("POST", ADMIN, Some("13")),
            Ok(br#"{"dry":true}"#.to_vec()),
            UpstreamResult::Status(200),
            resync_answer(401, answer),
        );
        assert_eq!(steps, ["find_resync", "read_body", "call_resync", "reply"]);
        let call = called.unwrap();
        assert_eq!(call.method, "POST");
        assert_eq!(call.url, "https://resync/admin/resync?mode=full&x=%20");
        assert_eq!(
            call.headers,
            [
                ("authorization", "Bearer admin".to_string()),
                ("content-type", "application/json".to_string())
            ]
        );
        assert_eq!(call.body.as_deref(), Some(&br#"{"dry":true}"#[..]));
        assert_eq!(done.reply.status, 401);
        assert_eq!(done.reply.body, answer);
        assert_eq!(
            done.reply.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        // One line: method, path class, status; no query, header or body.
        let line = done.clone().log_line(3);
        assert_eq!((done.log.path, done.log.level), ("admin", "warn"));
        for absent in ["mode=full", "Bearer", "dry", "bad admin secret"] {
            assert!(!line.contains(absent), "{absent} in {line}");
        }
    }

    #[test]
    fn relay_misconfiguration_does_not_block_admin() {
        let broken = Config::from_lookup(|_| None);
        let (steps, done, _) = drive_with(
            &broken,
            &head("GET", "http://r.example.dev/admin/runs", None),
            Ok(vec![]),
            UpstreamResult::Status(200),
            resync_answer(200, r#"{"ok":true,"runs":[]}"#),
        );
        assert_eq!(steps, ["find_resync", "read_body", "call_resync", "reply"]);
        assert_eq!(done.reply.status, 200);
        assert_eq!(done.log.outcome, "relayed");
    }

    #[test]
    fn admin_bodies_over_64_kib_are_413_and_a_failed_call_is_502() {
        let over = (ADMIN_MAX_BODY_BYTES + 1).to_string();
        let (steps, done, _) = drive_with(
            &Ok(config(false)),
            &head("POST", ADMIN, Some(&over)),
            Ok(vec![]),
            UpstreamResult::Status(200),
            resync_answer(200, "{}"),
        );
        assert_eq!(steps, ["find_resync", "reply"]);
        assert_eq!(code(&done), (413, "payload_too_large".into()));
        for read in [
            Err(ReadFailure::TooLarge),
            Ok(vec![b' '; ADMIN_MAX_BODY_BYTES as usize + 1]),
        ] {
            let (steps, done, _) = drive_with(
                &Ok(config(false)),
                &head("POST", ADMIN, None),
                read,
                UpstreamResult::Status(200),
                resync_answer(200, "{}"),
            );
            assert_eq!(steps, ["find_resync", "read_body", "reply"]);
            assert_eq!(code(&done), (413, "payload_too_large".into()));
        }
        let (_, done, _) = drive_with(
            &Ok(config(false)),
            &head("POST", ADMIN, None),
            Ok(vec![b' '; ADMIN_MAX_BODY_BYTES as usize]),
            UpstreamResult::Status(200),
            Some(ResyncAnswer::Failed),
        );
        assert_eq!(code(&done), (502, "resync_unavailable".into()));
        assert_eq!(done.log.level, "error");
    }

    #[test]
    fn health_reports_resync_and_never_fails_because_of_it() {
        let health = "http://127.0.0.1:8788/health";
        let run = |c: &Result<Config, Vec<ConfigProblem>>, resync: Option<ResyncAnswer>| {
            drive_with(
                c,
                &head("GET", health, None),
                Ok(vec![]),
                UpstreamResult::Status(200),
                resync,
            )
        };
        let ok = Ok(config(false));
        let (steps, done, called) = run(&ok, None);
        assert_eq!(steps, ["find_resync", "reply"]);
        assert_eq!(called, None);
        assert_eq!(
            (done.reply.status, json_of(&done)["resync"].clone()),
            (200, "off".into())
        );
        assert!(json_of(&done).get("resync_problems").is_none());

        let (steps, done, called) = run(&ok, resync_answer(200, r#"{"ok":true,"resync":"on"}"#));
        assert_eq!(steps, ["find_resync", "call_resync", "reply"]);
        assert_eq!(called, Some(ResyncCall::health()));
        assert_eq!(
            (done.reply.status, json_of(&done)["resync"].clone()),
            (200, "on".into())
        );

        let off = r#"{"ok":true,"resync":"off","problems":["CLERK_SECRET_KEY"]}"#;
        let (_, done, _) = run(&ok, resync_answer(200, off));
        let v = json_of(&done);
        assert_eq!((done.reply.status, &v["resync"]), (200, &"off".into()));
        assert_eq!(
            v["resync_problems"],
            serde_json::json!(["CLERK_SECRET_KEY"])
        );

        for bad in [Some(ResyncAnswer::Failed), resync_answer(500, "{}")] {
            let (_, done, _) = run(&ok, bad);
            assert_eq!(done.reply.status, 200);
            assert_eq!(json_of(&done)["resync"], "unavailable");
            assert_eq!(done.log.outcome, "ok");
        }
        // A misconfigured relay stays 503, whatever re-sync says.
        let broken = Config::from_lookup(|_| None);
        let (_, done, _) = run(&broken, resync_answer(200, r#"{"ok":true,"resync":"on"}"#));
        assert_eq!(
            (done.reply.status, json_of(&done)["resync"].clone()),
            (503, "on".into())
        );
    }
}
