//! The Workers glue: a fetch handler that hands every request to the one
//! [`ResyncCoordinator`], and the coordinator itself, which restores and
//! stores the [`Coordinator`], performs the requests a [`Run`] asks for,
//! sets its alarms and writes its log lines. Decisions are the core's.
//!
//! Why alarms, and several pages per alarm: a run outlives any one
//! invocation (100,000 users at Clerk's development rate limit take
//! minutes), so each alarm drives the run until it must wait (the rate
//! window, a `Retry-After`, a backoff: the next alarm is set for then) or
//! until [`ALARM_BUDGET_MS`] has passed at the end of a page (the next alarm
//! is set for now). Progress is stored after every request and answer, so
//! a process that dies mid-page resumes at that page on the next alarm,
//! which the runtime keeps across restarts. While a page's batch is in
//! flight the next Clerk page is read beside it, when the run allows
//! ([`Run::poll_prefetch`]): the two requests run concurrently. Likewise a
//! sweep page's lookups run together, as many as the rate window allows
//! ([`Run::poll_lookups_beside`]), with the next rows page read beside them
//! ([`Run::poll_rows_beside`]).

use std::cell::{Cell, RefCell};

use clerk_sync_contract::batch::BATCH_PATH;
use clerk_sync_contract::body::{body_read, declared_too_long};
use clerk_sync_contract::UnixMillis;
use clerk_sync_platform::{exchange, json_response, read_body, BodyError, Outgoing};
use clerk_sync_resync::{parse_start, Action, Answer, Run, RunId, Scope};
use futures_util::future::{join, select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Value};
use worker::{
    console_log, durable_object, event, Context, Date, DurableObject, Env, Method, Request,
    Response, Result, State,
};

use crate::admin::{self, AdminError, Reply, Route};
use crate::config::{self, ResyncConfig};
use crate::coordinator::Coordinator;
use crate::cron::{self, CronStep};

/// The Durable Object binding (`[[durable_objects.bindings]]`).
const COORDINATOR_BINDING: &str = "RESYNC_COORDINATOR";
/// The one instance: one run at a time across the deployment.
const COORDINATOR_NAME: &str = "resync";
const RUN_KEY: &str = "run";
const HISTORY_KEY: &str = "history";
/// Wall time one alarm drives a run before it yields at the end of a page.
const ALARM_BUDGET_MS: i64 = 10_000;
/// When the settings are broken mid-run: look again after this.
const UNCONFIGURED_RETRY_MS: i64 = 60_000;
/// Largest answer read from Clerk or the main API (a 500-user page is a
/// few MB); a larger one is treated as unreadable.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // Health needs no run state: answered here, without waking the object.
    if req.path() == admin::HEALTH_PATH && req.method() == Method::Get {
        let reply = health(&env);
        return json_response(reply.status, reply.body, reply.allow);
    }
    let stub = env
        .durable_object(COORDINATOR_BINDING)?
        .get_by_name(COORDINATOR_NAME)?;
    stub.fetch_with_request(req).await
}

/// `GET /internal/health`: on, or off naming what is missing.
fn health(env: &Env) -> Reply {
    Reply::health(ResyncConfig::from_lookup(lookup(env)).as_ref().map(|_| ()))
}

/// Secrets first (`wrangler secret put`, `.dev.vars`), then `[vars]`.
fn lookup(env: &Env) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    }
}

fn now() -> UnixMillis {
    UnixMillis(i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX))
}

fn log(mut line: Value, msg: &str) {
    line["msg"] = json!(msg);
    console_log!("{line}");
}

#[durable_object]
pub struct ResyncCoordinator {
    state: State,
    env: Env,
    /// Restored from storage on first use.
    core: RefCell<Option<Coordinator>>,
    /// An alarm is driving the run now (it awaits between requests, and a
    /// fetch may arrive meanwhile).
    driving: Cell<bool>,
}

impl DurableObject for ResyncCoordinator {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            core: RefCell::new(None),
            driving: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let started = now();
        let method = req.method().to_string();
        let path = req.path();
        let (route, reply) = match admin::route(&method, &path) {
            Ok(route) => {
                let reply = self
                    .serve(&route, &mut req)
                    .await
                    .unwrap_or_else(|e| Reply::error(&e));
                (route_name(&route), reply)
            }
            Err(e) => ("unknown", Reply::error(&e)),
        };
        log(
            json!({"level": if reply.status >= 500 { "error" } else { "info" },
                   "route": route, "method": method, "status": reply.status,
                   "duration_ms": now().as_millis() - started.as_millis()}),
            "resync_admin",
        );
        json_response(reply.status, reply.body, reply.allow)
    }

    async fn alarm(&self) -> Result<Response> {
        self.drive().await;
        Response::ok("")
    }
}

fn route_name(route: &Route) -> &'static str {
    match route {
        Route::Health => "health",
        Route::Cron => "cron",
        Route::Start => "start",
        Route::Latest => "latest",
        Route::History => "runs",
        Route::Get(_) => "get",
        Route::Cancel(_) => "cancel",
    }
}

impl ResyncCoordinator {
    async fn serve(
        &self,
        route: &Route,
        req: &mut Request,
    ) -> std::result::Result<Reply, AdminError> {
        let lookup = lookup(&self.env);
        if route.is_admin() {
            let authorization = req.headers().get("authorization").ok().flatten();
            admin::authorize(
                config::admin_secret(&lookup).as_ref(),
                authorization.as_deref(),
            )?;
        }
        if *route == Route::Health {
            return Ok(health(&self.env));
        }
        let config = ResyncConfig::from_lookup(&lookup).map_err(AdminError::Unconfigured)?;
        self.load().await?;
        match route {
            Route::Health => Ok(health(&self.env)),
            Route::Start => {
                let body = self
                    .body(req, clerk_sync_resync::start::MAX_START_BODY_BYTES)
                    .await?;
                let scope = parse_start(&body).map_err(AdminError::BadStart)?;
                self.start(scope, &config).await
            }
            Route::Cron => {
                let body = self.body(req, admin::MAX_CRON_BODY_BYTES).await?;
                let cron = admin::parse_cron(&body)?;
                self.cron(&cron, &config).await
            }
            Route::Latest => self.read(|c| c.latest()),
            Route::History => self.read(|c| Ok(c.runs())),
            Route::Get(id) => self.read(|c| c.get(id)),
            Route::Cancel(id) => {
                let status = self.with(|c| c.cancel(id, now()))?;
                self.save().await?;
                Ok(Reply::json(200, status))
            }
        }
    }

    async fn body(
        &self,
        req: &mut Request,
        max: usize,
    ) -> std::result::Result<Vec<u8>, AdminError> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let headers = req.headers();
        let length = headers.get("content-length").ok().flatten();
        if declared_too_long(length.as_deref(), max) {
            return Err(AdminError::PayloadTooLarge);
        }
        let how = body_read(
            length.as_deref(),
            headers.get("transfer-encoding").ok().flatten().as_deref(),
        );
        read_body(req, max, how).await.map_err(|e| match e {
            BodyError::TooLarge => AdminError::PayloadTooLarge,
            BodyError::Unreadable => AdminError::UnreadableBody,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Coordinator) -> T) -> T {
        let mut core = self.core.borrow_mut();
        f(core.get_or_insert_with(Coordinator::default))
    }

    fn read(
        &self,
        f: impl FnOnce(&Coordinator) -> std::result::Result<Value, AdminError>,
    ) -> std::result::Result<Reply, AdminError> {
        self.with(|c| f(c)).map(|v| Reply::json(200, v))
    }

    async fn start(
        &self,
        scope: Scope,
        config: &ResyncConfig,
    ) -> std::result::Result<Reply, AdminError> {
        let scope_name = scope.name();
        let id = self.with(|c| c.start(scope, config.run.clone(), now(), random_u64()))?;
        self.save().await?;
        self.arm(0).await?;
        log(
            json!({"level": "info", "event": "resync_start", "run_id": id.as_str(), "scope": scope_name}),
            "resync",
        );
        Ok(Reply::started(&id))
    }

    async fn cron(
        &self,
        cron: &str,
        config: &ResyncConfig,
    ) -> std::result::Result<Reply, AdminError> {
        let running = self.with(|c| c.running().cloned());
        let step = cron::decide(cron, &config.failed_cron, running.is_some());
        let outcome = match step {
            CronStep::SkipRunning => Err("running"),
            CronStep::Start(scope) => Ok(scope),
            CronStep::ProbeFailed { path } => {
                let answer = request(
                    Method::Get,
                    &format!("{}{path}", config.api_url),
                    config.api_secret.expose(),
                    None,
                    config.request_timeout_ms,
                )
                .await;
                match answer {
                    Answer::Status { status, body, .. } => cron::after_probe(Some(status), &body),
                    _ => cron::after_probe(None, b""),
                }
            }
        };
        let line = json!({"level": "info", "event": "resync_cron", "cron": cron});
        match outcome {
            Ok(scope) => match self.start(scope, config).await {
                Ok(reply) => {
                    let mut line = line;
                    line["started"] = json!(true);
                    log(line, "resync");
                    Ok(reply)
                }
                // The probe awaited: a run may have started meanwhile.
                Err(AdminError::Running(id)) => Ok(skipped(line, "running", Some(id.as_str()))),
                Err(e) => Err(e),
            },
            Err(reason) => Ok(skipped(line, reason, running.as_ref().map(|r| r.as_str()))),
        }
    }

    /// Restores the coordinator from storage once per object lifetime, and
    /// makes sure a running run has an alarm (one set before a crash, or
    /// none: the next request arms it).
    async fn load(&self) -> std::result::Result<(), AdminError> {
        if self.core.borrow().is_none() {
            let storage = self.state.storage();
            let run: Option<String> = storage
                .get(RUN_KEY)
                .await
                .map_err(|_| AdminError::Storage)?;
            let history: Option<String> = storage
                .get(HISTORY_KEY)
                .await
                .map_err(|_| AdminError::Storage)?;
            // Another request may have restored it while this one awaited.
            if self.core.borrow().is_none() {
                let (core, error) = Coordinator::restore(
                    run.as_deref().map(str::as_bytes),
                    history.as_deref().map(str::as_bytes),
                );
                if let Some(e) = error {
                    log(
                        json!({"level": "error", "event": "resync_state_unreadable", "error": e.to_string()}),
                        "resync",
                    );
                }
                *self.core.borrow_mut() = Some(core);
            }
        }
        let running = self.with(|c| c.running().is_some());
        if running && !self.driving.get() {
            let alarm = self
                .state
                .storage()
                .get_alarm()
                .await
                .map_err(|_| AdminError::Storage)?;
            if alarm.is_none() {
                self.arm(0).await?;
            }
        }
        Ok(())
    }

    /// Stores what changed since the last save (see [`Coordinator::changes`]).
    async fn save(&self) -> std::result::Result<(), AdminError> {
        let (run, history) = self.with(|c| {
            c.archive();
            c.changes()
        });
        let stored = self.put(RUN_KEY, run).await;
        let stored = match stored {
            Ok(()) => self.put(HISTORY_KEY, history).await,
            Err(e) => Err(e),
        };
        if stored.is_err() {
            self.with(Coordinator::forget_stored);
        }
        stored
    }

    async fn put(&self, key: &str, bytes: Option<Vec<u8>>) -> std::result::Result<(), AdminError> {
        let Some(bytes) = bytes else {
            return Ok(());
        };
        let text = String::from_utf8(bytes).map_err(|_| AdminError::Storage)?;
        self.state
            .storage()
            .put(key, text)
            .await
            .map_err(|_| AdminError::Storage)
    }

    async fn arm(&self, in_ms: i64) -> std::result::Result<(), AdminError> {
        self.state
            .storage()
            .set_alarm(in_ms.max(0))
            .await
            .map_err(|_| AdminError::Storage)
    }

    /// The alarm: drives the run (see the module's note). Never fails: an
    /// error here would make the runtime retry the alarm, and every failure
    /// is either the run's to handle or a storage fault the next alarm
    /// retries.
    async fn drive(&self) {
        if self.driving.replace(true) {
            return;
        }
        let next = self.drive_until_wait().await;
        self.driving.set(false);
        if let Some(in_ms) = next {
            if self.arm(in_ms).await.is_err() {
                log(
                    json!({"level": "error", "event": "resync_alarm_not_set"}),
                    "resync",
                );
            }
        }
    }

    /// Returns when to be woken next (ms from now), or `None` when the run
    /// stopped or there is none.
    async fn drive_until_wait(&self) -> Option<i64> {
        if self.load().await.is_err() {
            return Some(5_000);
        }
        let config = match ResyncConfig::from_lookup(lookup(&self.env)) {
            Ok(config) => config,
            Err(problems) => {
                let running = self.with(|c| c.running().is_some());
                log(
                    json!({"level": "error", "event": "resync_unconfigured", "problems": problems}),
                    "resync",
                );
                return running.then_some(UNCONFIGURED_RETRY_MS);
            }
        };
        let budget_end = now().as_millis() + ALARM_BUDGET_MS;
        loop {
            let step = self.with(|c| {
                c.run_mut().map(|r| {
                    let action = r.poll(now());
                    let beside = r.poll_prefetch(now());
                    let lookups = r.poll_lookups_beside(now());
                    let rows = r.poll_rows_beside(now());
                    (r.run_id().clone(), action, beside, lookups, rows)
                })
            });
            let (run_id, action, beside, lookups, rows) = step?;
            let answer = match &action {
                Action::Finished => {
                    self.save().await.ok()?;
                    return None;
                }
                Action::WakeAt(at) => {
                    if self.save().await.is_err() {
                        return Some(5_000);
                    }
                    return Some(at.as_millis() - now().as_millis());
                }
                // Stored before it is sent: the request is in the rate window now.
                _ => {
                    if self.save().await.is_err() {
                        return Some(5_000);
                    }
                    match beside {
                        Some(beside) => self.perform_beside(&config, &run_id, action, beside).await,
                        None if !lookups.is_empty() || rows.is_some() => {
                            self.perform_with_lookups(&config, &run_id, action, lookups, rows)
                                .await
                        }
                        None => perform(&config, action).await,
                    }
                }
            };
            let logs = self.with(|c| match c.run_mut() {
                // A cancel and a new start may have happened while it awaited.
                Some(run) if *run.run_id() == run_id => {
                    run.handle(now(), answer);
                    drain_logs(run)
                }
                _ => Vec::new(),
            });
            if self.save().await.is_err() {
                return Some(5_000);
            }
            let page_done = !logs.is_empty();
            for line in logs {
                log(line, "resync");
            }
            if page_done && now().as_millis() >= budget_end {
                return Some(0);
            }
        }
    }
}

impl ResyncCoordinator {
    /// The run's request and the one it allows beside it, concurrently:
    /// the second's answer is handed back (and stored) as soon as it comes,
    /// so a page is read while the batch before it is applied. Returns the
    /// first's answer.
    async fn perform_beside(
        &self,
        config: &ResyncConfig,
        run_id: &RunId,
        action: Action,
        beside: Action,
    ) -> Answer {
        let main = std::pin::pin!(perform(config, action));
        let ahead = std::pin::pin!(perform(config, beside));
        match select(main, ahead).await {
            Either::Left((answer, ahead)) => {
                let ahead = ahead.await;
                self.take_ahead(run_id, ahead).await;
                answer
            }
            Either::Right((ahead, main)) => {
                self.take_ahead(run_id, ahead).await;
                main.await
            }
        }
    }

    /// The run's request, and the sweep lookups and the next rows page
    /// beside it, all concurrently: each answer beside is handed back as it
    /// comes, and the run stored once all are in. Returns the first
    /// request's answer.
    async fn perform_with_lookups(
        &self,
        config: &ResyncConfig,
        run_id: &RunId,
        action: Action,
        lookups: Vec<Action>,
        rows: Option<Action>,
    ) -> Answer {
        let ahead = async {
            // `None` for the rows page, the path for a lookup.
            let mut pending: FuturesUnordered<_> = lookups
                .into_iter()
                .map(|lookup| {
                    let path = match &lookup {
                        Action::Clerk { path_and_query } => Some(path_and_query.clone()),
                        _ => None,
                    };
                    (path, lookup)
                })
                .chain(rows.map(|rows| (None, rows)))
                .map(|(path, request)| async move { (path, perform(config, request).await) })
                .collect();
            while let Some((path, answer)) = pending.next().await {
                self.with(|c| match c.run_mut() {
                    Some(run) if run.run_id() == run_id => match path {
                        Some(path) => run.handle_lookup_beside(now(), &path, answer),
                        None => run.handle_rows_beside(answer),
                    },
                    _ => {}
                });
            }
            // A 429 beside the lookup must hold across a restart too.
            if self.save().await.is_err() {
                log(
                    json!({"level": "error", "event": "resync_state_not_stored"}),
                    "resync",
                );
            }
        };
        join(perform(config, action), ahead).await.0
    }

    async fn take_ahead(&self, run_id: &RunId, answer: Answer) {
        self.with(|c| match c.run_mut() {
            Some(run) if run.run_id() == run_id => run.handle_prefetch(now(), answer),
            _ => {}
        });
        // A 429 beside the batch must hold across a restart too.
        if self.save().await.is_err() {
            log(
                json!({"level": "error", "event": "resync_state_not_stored"}),
                "resync",
            );
        }
    }
}

fn drain_logs(run: &mut Run) -> Vec<Value> {
    std::iter::from_fn(|| run.poll_log())
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

fn skipped(mut line: Value, reason: &str, run_id: Option<&str>) -> Reply {
    line["started"] = json!(false);
    line["reason"] = json!(reason);
    log(line, "resync");
    Reply::json(
        200,
        json!({"ok": true, "started": false, "reason": reason, "run_id": run_id}),
    )
}

async fn perform(config: &ResyncConfig, action: Action) -> Answer {
    let timeout = config.request_timeout_ms;
    match action {
        Action::Clerk { path_and_query } => {
            let url = format!("{}{path_and_query}", config.clerk_api_url);
            request(
                Method::Get,
                &url,
                config.clerk_secret_key.expose(),
                None,
                timeout,
            )
            .await
        }
        Action::ApiGet { path_and_query } => {
            let url = format!("{}{path_and_query}", config.api_url);
            request(Method::Get, &url, config.api_secret.expose(), None, timeout).await
        }
        Action::ApiBatch { body } => {
            let url = format!("{}{BATCH_PATH}", config.api_url);
            request(
                Method::Post,
                &url,
                config.api_secret.expose(),
                Some(body),
                timeout,
            )
            .await
        }
        Action::WakeAt(_) | Action::Finished => Answer::Unreachable,
    }
}

/// One request with a bearer (see [`exchange`]).
async fn request(
    method: Method,
    url: &str,
    bearer: &str,
    body: Option<Vec<u8>>,
    timeout_ms: u32,
) -> Answer {
    let user_agent = format!("clerk-sync-resync/{}", crate::VERSION);
    let out = Outgoing {
        method,
        url,
        bearer: Some(bearer),
        body: body.as_deref(),
        user_agent: &user_agent,
        timeout_ms,
        max_answer_bytes: MAX_ANSWER_BYTES,
    };
    exchange(None, out).await
}

/// For a run id: not a secret, only unique.
fn random_u64() -> u64 {
    let half = || (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
    (half() << 32) | half()
}
