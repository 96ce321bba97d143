//! The alerts' glue: the cron (`[triggers] crons`, every 5 minutes) asks
//! the one [`AlertState`] Durable Object to check; the object reads the
//! sources, runs [`alerts::evaluate`], POSTs each message to
//! `ALERT_WEBHOOK_URL`, and stores the state only after the sends
//! ([`alerts::apply`] leaves a failed send for the next cron). The overview
//! reads the stored state through [`board`]. Decisions are the core's.
//!
//! Why a Durable Object and not KV: one instance runs one check at a time
//! (two overlapping crons cannot both send the same alert), and its storage
//! is strongly consistent, where KV's eventual consistency could let a
//! check read a state from before the last send and send it again.

use std::cell::Cell;

use futures_util::future::join3;
use serde_json::json;
use worker::{
    console_log, durable_object, event, DurableObject, Env, Method, Request, RequestInit, Response,
    Result, ScheduleContext, ScheduledEvent, State as ObjectState,
};

use crate::alerts::{self, AlertSettings, Board, Observations, State};
use crate::config::DashboardConfig;
use crate::glue::{get, lookup, now};
use crate::sources::Answer;

/// The Durable Object binding (`[[durable_objects.bindings]]`).
const BINDING: &str = "ALERT_STATE";
/// The one instance: one check at a time across the deployment.
const NAME: &str = "alerts";
const STATE_KEY: &str = "state";
const CHECK_URL: &str = "https://alerts.internal/check";
const STATE_URL: &str = "https://alerts.internal/state";
/// Per message: Slack answers in well under a second.
const SEND_TIMEOUT_MS: u32 = 5_000;

fn log(line: serde_json::Value) {
    console_log!("{line}");
}

/// The cron: one check, one log line; never an error out of the handler.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let outcome = async {
        let stub = env.durable_object(BINDING)?.get_by_name(NAME)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post);
        let mut answer = stub
            .fetch_with_request(Request::new_with_init(CHECK_URL, &init)?)
            .await?;
        answer.text().await
    }
    .await;
    if let Err(e) = outcome {
        log(
            json!({"msg": "alerts", "level": "error", "event": "alerts_cron_failed", "error": e.to_string()}),
        );
    }
}

/// The overview's alerts section: the stored state and the settings' problems.
pub(crate) async fn board(env: &Env) -> Board {
    let settings = AlertSettings::from_lookup(lookup(env));
    let (problems, sending) = match &settings {
        Ok(s) => (Vec::new(), s.webhook_url.is_some()),
        Err(p) => (p.clone(), false),
    };
    let state = async {
        let stub = env.durable_object(BINDING)?.get_by_name(NAME)?;
        stub.fetch_with_str(STATE_URL).await?.text().await
    }
    .await
    .map(|text| State::from_json(&text))
    .map_err(|_| "unavailable".to_owned());
    Board {
        state,
        problems,
        sending,
    }
}

#[durable_object]
pub struct AlertState {
    state: ObjectState,
    env: Env,
    /// A check is running (it awaits its fetches; a second cron waits none).
    checking: Cell<bool>,
}

impl DurableObject for AlertState {
    fn new(state: ObjectState, env: Env) -> Self {
        Self {
            state,
            env,
            checking: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Get, "/state") => Response::ok(self.load().await.to_json()),
            (Method::Post, "/check") => {
                if self.checking.replace(true) {
                    return Response::ok("busy");
                }
                let result = self.check().await;
                self.checking.set(false);
                result.map(|_| Response::ok("checked"))?
            }
            _ => Response::error("not found", 404),
        }
    }
}

impl AlertState {
    async fn load(&self) -> State {
        let text: Option<String> = self.state.storage().get(STATE_KEY).await.ok().flatten();
        text.map(|t| State::from_json(&t)).unwrap_or_default()
    }

    async fn check(&self) -> Result<()> {
        let lookup = lookup(&self.env);
        let (config, settings) = match (
            DashboardConfig::from_lookup(&lookup),
            AlertSettings::from_lookup(&lookup),
        ) {
            (Ok(c), Ok(s)) => (c, s),
            (c, s) => {
                let mut problems = c.err().unwrap_or_default();
                problems.extend(s.err().unwrap_or_default());
                log(
                    json!({"msg": "alerts", "level": "error", "event": "alerts_unconfigured", "problems": problems}),
                );
                return Ok(());
            }
        };
        let prev = self.load().await;
        let [a, b, c] = alerts::check_fetches(&config);
        let (a, b, c) = join3(get(&self.env, &a), get(&self.env, &b), get(&self.env, &c)).await;
        let observations = Observations::read([a, b, c]);
        let at = now();
        let check = alerts::evaluate(&prev, &observations, &settings, at);
        let mut undelivered = Vec::new();
        let mut sent = 0;
        if let Some(url) = &settings.webhook_url {
            for (i, message) in check.outbox() {
                match send(url.expose(), &message.to_json()).await {
                    Ok(()) => sent += 1,
                    Err(status) => {
                        undelivered.push(i);
                        // The URL is a secret in Slack: never logged.
                        log(
                            json!({"msg": "alerts", "level": "error", "event": "alert_send_failed", "status": status}),
                        );
                    }
                }
            }
        }
        let next = alerts::apply(prev, &check, &undelivered, at);
        self.state.storage().put(STATE_KEY, next.to_json()).await?;
        log(
            json!({"msg": "alerts", "level": "info", "event": "alerts_checked",
                   "changes": check.changes.len(), "sent": sent, "undelivered": undelivered.len(),
                   "active": next.active.iter().map(|a| a.rule).collect::<Vec<_>>(),
                   "sending": settings.webhook_url.is_some()}),
        );
        Ok(())
    }
}

/// One POST of a message; `Err` with the status (`None`: no answer).
async fn send(url: &str, body: &str) -> std::result::Result<(), Option<u16>> {
    match crate::glue::send(None, Method::Post, url, None, Some(body), SEND_TIMEOUT_MS).await {
        Answer::Status { status, .. } if (200..300).contains(&status) => Ok(()),
        Answer::Status { status, .. } => Err(Some(status)),
        Answer::Unreachable | Answer::TimedOut => Err(None),
    }
}
