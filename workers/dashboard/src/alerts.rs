//! The alerts (issue 11): told the previous [`State`] and what the sources
//! answered ([`Observations`]), [`evaluate`] says which alerts start and
//! which clear, each with its one Slack-compatible [`Message`]; [`apply`]
//! then folds in the changes whose message went out (or needed none), so a
//! send that failed is tried again at the next check. Also the settings
//! (`ALERT_*`) and the alerts' section of the overview.
//!
//! ```text
//! state + observations --evaluate--> changes (+ messages) --glue sends--> apply --> state
//! ```
//!
//! Pure: no clock (`now` is passed in), no I/O. A message holds only rule
//! names, counts, status numbers, stable codes, times and run ids; never an
//! email, a name, a body, a free-text error or a secret.

use clerk_sync_contract::metrics::Metrics;
use clerk_sync_contract::time::rfc3339;
use clerk_sync_contract::url::base_url;
use clerk_sync_contract::{SecretString, UnixMillis};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use crate::config::DashboardConfig;
use crate::sources::{self, json_of, Answer, Fetch, LatestRun, RelayHealth, SourceError};

pub const ALERT_WEBHOOK_URL: &str = "ALERT_WEBHOOK_URL";
pub const ALERT_PENDING_MINUTES: &str = "ALERT_PENDING_MINUTES";
pub const ALERT_FAILURE_RATE: &str = "ALERT_FAILURE_RATE";
pub const DEFAULT_PENDING_MINUTES: u64 = 60;
pub const DEFAULT_FAILURE_RATE: f64 = 5.0;
/// Past alerts kept for the overview, newest first.
pub const HISTORY_LEN: usize = 50;

/// The alert settings. The webhook URL is a secret in Slack: its `Debug`
/// is redacted and no message names its value.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `None`: alerts are evaluated and shown, not sent.
    pub webhook_url: Option<SecretString>,
    pub pending_minutes: u64,
    /// Percent of all outcomes in the last hour, `0 < rate <= 100`.
    pub failure_rate: f64,
}

impl AlertSettings {
    /// Unset settings take their defaults; a set but invalid one is a
    /// problem by name, never by value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<&'static str>> {
        let set = |name| lookup(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let webhook_url = match set(ALERT_WEBHOOK_URL) {
            None => None,
            Some(url) if base_url(&url).is_some() => Some(SecretString::new(url.trim())),
            Some(_) => {
                problems.push(ALERT_WEBHOOK_URL);
                None
            }
        };
        let pending_minutes = match set(ALERT_PENDING_MINUTES) {
            None => DEFAULT_PENDING_MINUTES,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=7 * 24 * 60).contains(&n) => n,
                _ => {
                    problems.push(ALERT_PENDING_MINUTES);
                    DEFAULT_PENDING_MINUTES
                }
            },
        };
        let failure_rate = match set(ALERT_FAILURE_RATE) {
            None => DEFAULT_FAILURE_RATE,
            Some(v) => match v.trim().trim_end_matches('%').trim().parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 100.0 => r,
                _ => {
                    problems.push(ALERT_FAILURE_RATE);
                    DEFAULT_FAILURE_RATE
                }
            },
        };
        if problems.is_empty() {
            Ok(Self {
                webhook_url,
                pending_minutes,
                failure_rate,
            })
        } else {
            Err(problems)
        }
    }
}

/// What a check reads, in the order of [`Observations::read`]: the main
/// API's metrics, the relay's health, the latest re-sync run.
pub fn check_fetches(config: &DashboardConfig) -> [Fetch<'_>; 3] {
    [
        crate::deliveries::metrics_fetch(config),
        crate::sources::relay_health_fetch(config),
        crate::sources::latest_run_fetch(config),
    ]
}

/// What the sources said at one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub metrics: Result<Metrics, SourceError>,
    pub relay: Result<RelayHealth, SourceError>,
    pub run: Result<LatestRun, SourceError>,
}

impl Observations {
    /// The answers to [`check_fetches`], in its order.
    pub fn read([metrics, relay, run]: [Answer; 3]) -> Self {
        Self {
            metrics: read_metrics(metrics),
            relay: sources::read_relay_health(relay),
            run: sources::read_latest_run(run),
        }
    }
}

pub fn read_metrics(answer: Answer) -> Result<Metrics, SourceError> {
    let (_, j) = json_of(answer, crate::config::API_SECRET, &[])?;
    serde_json::from_value(j).map_err(|_| SourceError::Unreadable)
}

/// One rule; its `snake_case` name is its stable key in the stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    FailedRows,
    PendingTooOld,
    FailureRate,
    ApiUnreachable,
    RelayUnreachable,
    ResyncFailed,
}

impl Rule {
    pub const ALL: [Self; 6] = [
        Self::FailedRows,
        Self::PendingTooOld,
        Self::FailureRate,
        Self::ApiUnreachable,
        Self::RelayUnreachable,
        Self::ResyncFailed,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::FailedRows => "new failed rows",
            Self::PendingTooOld => "a pending row is too old",
            Self::FailureRate => "rejected or failed commands above the limit",
            Self::ApiUnreachable => "main API unreachable",
            Self::RelayUnreachable => "relay unreachable",
            Self::ResyncFailed => "re-sync run failed",
        }
    }
}

/// An alert that fired and has not cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    pub rule: Rule,
    #[serde(with = "rfc3339")]
    pub since: UnixMillis,
    /// Counts, codes, ids: what the message said.
    pub detail: String,
    /// What makes a new start of the same rule (the failed run's id).
    #[serde(default)]
    pub subject: Option<String>,
}

/// An alert as the overview lists it once it fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Past {
    pub rule: Rule,
    pub detail: String,
    #[serde(with = "rfc3339")]
    pub fired_at: UnixMillis,
    #[serde(with = "rfc3339::option", default)]
    pub resolved_at: Option<UnixMillis>,
}

/// What survives between checks (stored as JSON in the Durable Object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// By [`Rule`] order.
    pub active: Vec<Active>,
    /// The main API's `failed` rows at the last check: "new" is above it.
    pub failed_seen: Option<u64>,
    /// Newest first, at most [`HISTORY_LEN`].
    pub history: Vec<Past>,
    #[serde(with = "rfc3339::option")]
    pub checked_at: Option<UnixMillis>,
}

impl State {
    pub fn active(&self, rule: Rule) -> Option<&Active> {
        self.active.iter().find(|a| a.rule == rule)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Unreadable state starts afresh (every condition that holds fires again).
    pub fn from_json(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// A Slack-compatible incoming-webhook body: `{"text": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
}

impl Message {
    pub fn to_json(&self) -> String {
        serde_json::json!({ "text": self.text }).to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// The condition started: send, then it is active.
    Fire(Active),
    /// The condition cleared: send "resolved", then it is past.
    Resolve(Active),
    /// Still holds: the detail shown is refreshed, nothing is sent.
    Refresh(Active),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub message: Option<Message>,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub changes: Vec<Change>,
    /// `failed` rows now, when the metrics were read.
    pub failed_now: Option<u64>,
}

impl Check {
    /// The messages to send, with the index of their change.
    pub fn outbox(&self) -> impl Iterator<Item = (usize, &Message)> {
        self.changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.message.as_ref().map(|m| (i, m)))
    }
}

/// A rule's verdict: holds (with what to say), clear, or unknown because
/// its source could not be read (then nothing changes).
enum Verdict {
    On {
        detail: String,
        subject: Option<String>,
    },
    Off,
    Unknown,
}

fn on(detail: String) -> Verdict {
    Verdict::On {
        detail,
        subject: None,
    }
}

/// `[A-Za-z0-9_-]`, 1 to 64: an id or a code, never free text (an email
/// has `@` and `.`).
fn token(text: &str) -> Option<&str> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(text)
}

fn time(t: UnixMillis) -> String {
    t.to_rfc3339().unwrap_or_else(|| t.as_millis().to_string())
}

fn verdict(rule: Rule, prev: &State, obs: &Observations, settings: &AlertSettings) -> Verdict {
    let metrics = obs.metrics.as_ref();
    match rule {
        Rule::FailedRows => match metrics {
            Err(_) => Verdict::Unknown,
            Ok(m) => {
                let failed = m.rows.failed;
                let seen = prev.failed_seen.unwrap_or(0);
                if prev.active(rule).is_some() && failed > 0 {
                    on(format!("{failed} failed rows"))
                } else if failed > seen {
                    on(format!(
                        "{failed} failed rows, {} new since the last check",
                        failed - seen
                    ))
                } else {
                    Verdict::Off
                }
            }
        },
        Rule::PendingTooOld => match metrics {
            Err(_) => Verdict::Unknown,
            Ok(m) => match m.oldest_pending {
                Some(p) if p.age_seconds > settings.pending_minutes * 60 => on(format!(
                    "the oldest pending row is {} min old (limit {} min)",
                    p.age_seconds / 60,
                    settings.pending_minutes
                )),
                _ => Verdict::Off,
            },
        },
        Rule::FailureRate => match metrics {
            Err(_) => Verdict::Unknown,
            Ok(m) => {
                let hour = &m.outcomes.last_hour;
                let bad = hour.rejected + hour.failed;
                let total = hour.total();
                let rate = if total == 0 {
                    0.0
                } else {
                    bad as f64 * 100.0 / total as f64
                };
                if total > 0 && rate > settings.failure_rate {
                    on(format!(
                        "{bad} of {total} commands in the last hour rejected or failed ({rate:.1} %, limit {} %)",
                        settings.failure_rate
                    ))
                } else {
                    Verdict::Off
                }
            }
        },
        Rule::ApiUnreachable => match metrics {
            Err(e) => on(format!("metrics: {e}")),
            Ok(_) => Verdict::Off,
        },
        Rule::RelayUnreachable => match &obs.relay {
            Err(e) => on(format!("health: {e}")),
            Ok(_) => Verdict::Off,
        },
        Rule::ResyncFailed => match &obs.run {
            Err(_) => Verdict::Unknown,
            Ok(LatestRun::Run(r)) if r.state == "failed" => {
                let id = token(&r.run_id).unwrap_or("(unnamed)");
                let code = r.last_error.as_ref().and_then(|e| token(&e.code));
                Verdict::On {
                    detail: match code {
                        Some(code) => format!("run {id}: {code}"),
                        None => format!("run {id}"),
                    },
                    subject: Some(id.to_owned()),
                }
            }
            Ok(_) => Verdict::Off,
        },
    }
}

/// Every rule against `prev`: what starts, what clears, what still holds.
pub fn evaluate(
    prev: &State,
    obs: &Observations,
    settings: &AlertSettings,
    now: UnixMillis,
) -> Check {
    let mut changes = Vec::new();
    for rule in Rule::ALL {
        let active = prev.active(rule);
        match (verdict(rule, prev, obs, settings), active) {
            (Verdict::Unknown, _) | (Verdict::Off, None) => {}
            (Verdict::On { detail, subject }, Some(a)) if a.subject == subject => {
                if a.detail != detail {
                    changes.push(Change {
                        kind: ChangeKind::Refresh(Active {
                            detail,
                            ..a.clone()
                        }),
                        message: None,
                    });
                }
            }
            // Not active, or another failed run: a new start.
            (Verdict::On { detail, subject }, _) => {
                let text = format!(
                    "clerk-sync alert: {}: {detail} (at {})",
                    rule.title(),
                    time(now)
                );
                changes.push(Change {
                    kind: ChangeKind::Fire(Active {
                        rule,
                        since: now,
                        detail,
                        subject,
                    }),
                    message: Some(Message { text }),
                });
            }
            (Verdict::Off, Some(a)) => {
                let minutes = now.millis_since(a.since).max(0) / 60_000;
                let text = format!(
                    "clerk-sync resolved: {} (active since {}, {minutes} min)",
                    rule.title(),
                    time(a.since)
                );
                changes.push(Change {
                    kind: ChangeKind::Resolve(a.clone()),
                    message: Some(Message { text }),
                });
            }
        }
    }
    Check {
        changes,
        failed_now: obs.metrics.as_ref().ok().map(|m| m.rows.failed),
    }
}

/// `prev` with the changes of `check` whose message went out; those whose
/// send failed (`undelivered`, indexes into `check.changes`) are left for
/// the next check to find again.
pub fn apply(mut prev: State, check: &Check, undelivered: &[usize], now: UnixMillis) -> State {
    let mut failed_rows_held = false;
    for (i, change) in check.changes.iter().enumerate() {
        if undelivered.contains(&i) {
            if matches!(&change.kind, ChangeKind::Fire(a) if a.rule == Rule::FailedRows) {
                failed_rows_held = true;
            }
            continue;
        }
        match &change.kind {
            ChangeKind::Fire(a) => {
                prev.active.retain(|x| x.rule != a.rule);
                prev.active.push(a.clone());
                prev.active.sort_by_key(|x| x.rule);
                prev.history.insert(
                    0,
                    Past {
                        rule: a.rule,
                        detail: a.detail.clone(),
                        fired_at: a.since,
                        resolved_at: None,
                    },
                );
                prev.history.truncate(HISTORY_LEN);
            }
            ChangeKind::Resolve(a) => {
                prev.active.retain(|x| x.rule != a.rule);
                if let Some(p) = prev
                    .history
                    .iter_mut()
                    .find(|p| p.rule == a.rule && p.resolved_at.is_none())
                {
                    p.resolved_at = Some(now);
                }
            }
            ChangeKind::Refresh(a) => {
                if let Some(x) = prev.active.iter_mut().find(|x| x.rule == a.rule) {
                    x.detail = a.detail.clone();
                }
            }
        }
    }
    // A "new failed rows" alert that could not be sent stays new.
    if !failed_rows_held {
        if let Some(n) = check.failed_now {
            prev.failed_seen = Some(n);
        }
    }
    prev.checked_at = Some(now);
    prev
}

/// What the overview shows of the alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    /// `Err`: why the stored state could not be read.
    pub state: Result<State, String>,
    /// Invalid `ALERT_*` settings, by name.
    pub problems: Vec<&'static str>,
    /// `ALERT_WEBHOOK_URL` is set.
    pub sending: bool,
}

/// The overview's alerts section (escaped by maud like every view).
pub fn section(board: &Board) -> Markup {
    html! {
        section #alerts {
            h2 { "Alerts" }
            @if !board.problems.is_empty() {
                p.error { "Alerts are not checked: invalid settings: "
                    @for (i, name) in board.problems.iter().enumerate() {
                        @if i > 0 { ", " } code { (name) }
                    }
                }
            }
            @if !board.sending && board.problems.is_empty() {
                p.muted { code { (ALERT_WEBHOOK_URL) } " is not set: alerts are evaluated and shown here, not sent." }
            }
            @match &board.state {
                Err(e) => p.error { "Alert state: " (e) },
                Ok(state) => {
                    @if state.active.is_empty() {
                        p.ok #alerts-none { "No active alerts." }
                    } @else {
                        ul #alerts-active {
                            @for a in &state.active {
                                li.error { strong { (a.rule.title()) } ": " (a.detail) " " span.muted { "since " (time(a.since)) } }
                            }
                        }
                    }
                    @if let Some(t) = state.checked_at {
                        p.muted { "Last checked " (time(t)) "." }
                    } @else {
                        p.muted { "Not checked yet (the cron runs every 5 minutes)." }
                    }
                    @if !state.history.is_empty() {
                        h3 { "Past alerts" }
                        table #alerts-history {
                            tr { th { "Alert" } th { "Detail" } th { "Fired" } th { "Resolved" } }
                            @for p in &state.history {
                                tr {
                                    td { (p.rule.title()) }
                                    td { (p.detail) }
                                    td { (time(p.fired_at)) }
                                    td { (p.resolved_at.map(time).unwrap_or_else(|| "active".into())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{RunError, RunSummary};
    use clerk_sync_contract::metrics::{empty_buckets, OldestPending, OutcomeWindows, RowCounts};

    const T0: UnixMillis = UnixMillis(1_800_000_000_000);
    const EMAIL: &str = "victim@example.com";

    fn at(minutes: i64) -> UnixMillis {
        T0.plus_millis(minutes * 60_000)
    }

    fn settings() -> AlertSettings {
        AlertSettings::from_lookup(|_| None).unwrap()
    }

    fn metrics() -> Metrics {
        Metrics {
            ok: true,
            generated_at: T0,
            rows: RowCounts::default(),
            oldest_pending: None,
            outcomes: OutcomeWindows::default(),
            last_applied_at: None,
            last_received_at: None,
            hourly: empty_buckets(T0),
        }
    }

    fn health() -> RelayHealth {
        RelayHealth {
            ok: true,
            version: Some("0.1.0".into()),
            resync: Some("on".into()),
            problems: vec![],
        }
    }

    fn calm() -> Observations {
        Observations {
            metrics: Ok(metrics()),
            relay: Ok(health()),
            run: Ok(LatestRun::NoneYet),
        }
    }

    fn run(id: &str, state: &str, code: &str) -> LatestRun {
        LatestRun::Run(Box::new(RunSummary {
            run_id: id.into(),
            state: state.into(),
            last_error: Some(RunError {
                code: code.into(),
                message: format!("user {EMAIL} broke it"),
            }),
            ..RunSummary::default()
        }))
    }

    /// One check with every send delivered: the new state and the texts sent.
    fn step(prev: &State, obs: &Observations, now: UnixMillis) -> (State, Vec<String>) {
        let check = evaluate(prev, obs, &settings(), now);
        let texts = check.outbox().map(|(_, m)| m.text.clone()).collect();
        (apply(prev.clone(), &check, &[], now), texts)
    }

    /// The condition starts, holds, clears: fired once, silent, resolved once.
    fn fires_once_and_resolves(bad: Observations, expect: &str, rule: Rule) {
        let (s, sent) = step(&State::default(), &calm(), at(0));
        assert!(sent.is_empty(), "calm sends nothing: {sent:?}");
        let (s, sent) = step(&s, &bad, at(5));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].starts_with("clerk-sync alert: "), "{}", sent[0]);
        assert!(sent[0].contains(expect), "{} lacks {expect}", sent[0]);
        assert_eq!(s.active(rule).map(|a| a.since), Some(at(5)));
        for m in [10, 15] {
            let (next, sent) = step(&s, &bad, at(m));
            assert!(sent.is_empty(), "a condition that persists is not re-sent");
            assert!(next.active(rule).is_some());
            assert_eq!(next.history.len(), 1);
        }
        let (s, sent) = step(&s, &calm(), at(20));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(
            sent[0].starts_with(&format!("clerk-sync resolved: {}", rule.title())),
            "{}",
            sent[0]
        );
        assert!(sent[0].contains("15 min"), "{}", sent[0]);
        assert!(s.active.is_empty());
        assert_eq!(s.history[0].resolved_at, Some(at(20)));
        let (_, sent) = step(&s, &calm(), at(25));
        assert!(sent.is_empty());
    }

    #[test]
    fn failed_rows_fire_when_new_ones_appear_and_resolve_at_none() {
        let mut bad = calm();
        bad.metrics.as_mut().unwrap().rows.failed = 2;
        fires_once_and_resolves(
            bad,
            "2 failed rows, 2 new since the last check",
            Rule::FailedRows,
        );
    }

    #[test]
    fn more_failed_rows_while_active_refresh_the_detail_silently() {
        let failed = |n| {
            let mut o = calm();
            o.metrics.as_mut().unwrap().rows.failed = n;
            o
        };
        let (s, sent) = step(&State::default(), &failed(2), at(0));
        assert_eq!(sent.len(), 1);
        assert_eq!(s.failed_seen, Some(2));
        let (s, sent) = step(&s, &failed(5), at(5));
        assert!(sent.is_empty(), "still the same alert: {sent:?}");
        assert_eq!(s.active(Rule::FailedRows).unwrap().detail, "5 failed rows");
        assert_eq!(s.active(Rule::FailedRows).unwrap().since, at(0));
        let (s, sent) = step(&s, &failed(1), at(10));
        assert!(sent.is_empty(), "fewer, but not none: {sent:?}");
        let (s, sent) = step(&s, &failed(0), at(15));
        assert_eq!(sent.len(), 1, "resolved at none");
        let (_, sent) = step(&s, &failed(1), at(20));
        assert_eq!(sent.len(), 1, "0 -> 1 is new again: {sent:?}");
        assert!(sent[0].contains("1 failed rows, 1 new"), "{}", sent[0]);
    }

    #[test]
    fn an_old_pending_row_fires_past_the_limit_only() {
        let mut bad = calm();
        bad.metrics.as_mut().unwrap().oldest_pending = Some(OldestPending {
            created_at: T0,
            age_seconds: 61 * 60,
        });
        fires_once_and_resolves(bad, "61 min old (limit 60 min)", Rule::PendingTooOld);
        let mut at_limit = calm();
        at_limit.metrics.as_mut().unwrap().oldest_pending = Some(OldestPending {
            created_at: T0,
            age_seconds: 60 * 60,
        });
        assert!(step(&State::default(), &at_limit, at(0)).1.is_empty());
        let s = AlertSettings::from_lookup(|n| (n == ALERT_PENDING_MINUTES).then(|| "30".into()))
            .unwrap();
        let check = evaluate(&State::default(), &at_limit, &s, at(0));
        assert_eq!(check.outbox().count(), 1, "60 min is past a 30 min limit");
    }

    #[test]
    fn a_failure_rate_above_the_limit_fires() {
        let mut bad = calm();
        let hour = &mut bad.metrics.as_mut().unwrap().outcomes.last_hour;
        hour.applied = 18;
        hour.rejected = 1;
        hour.failed = 1;
        fires_once_and_resolves(bad, "2 of 20 commands", Rule::FailureRate);
        let mut at_limit = calm();
        let hour = &mut at_limit.metrics.as_mut().unwrap().outcomes.last_hour;
        hour.applied = 19;
        hour.failed = 1;
        assert!(
            step(&State::default(), &at_limit, at(0)).1.is_empty(),
            "5 % is not above 5 %"
        );
        assert!(
            step(&State::default(), &calm(), at(0)).1.is_empty(),
            "no commands is no rate"
        );
    }

    #[test]
    fn the_main_api_unreachable_fires_and_leaves_the_metrics_rules_alone() {
        let mut down = calm();
        down.metrics = Err(SourceError::TimedOut);
        fires_once_and_resolves(
            down.clone(),
            "main API unreachable: metrics: timed out",
            Rule::ApiUnreachable,
        );
        // With failed rows active, the API going away neither resolves nor re-fires them.
        let mut failed = calm();
        failed.metrics.as_mut().unwrap().rows.failed = 1;
        let (s, _) = step(&State::default(), &failed, at(0));
        let (s, sent) = step(&s, &down, at(5));
        assert_eq!(sent.len(), 1);
        assert!(s.active(Rule::FailedRows).is_some());
        let (s, sent) = step(&s, &failed, at(10));
        assert_eq!(sent.len(), 1, "only the API's resolve: {sent:?}");
        assert!(s.active(Rule::FailedRows).is_some());
    }

    #[test]
    fn the_relay_unreachable_fires() {
        let mut down = calm();
        down.relay = Err(SourceError::Unreachable);
        down.run = Err(SourceError::Unreachable);
        fires_once_and_resolves(
            down,
            "relay unreachable: health: unreachable",
            Rule::RelayUnreachable,
        );
    }

    #[test]
    fn a_failed_resync_run_fires_once_per_run() {
        let mut bad = calm();
        bad.run = Ok(run("rs_1_ab", "failed", "clerk_unauthorized"));
        fires_once_and_resolves(
            bad.clone(),
            "run rs_1_ab: clerk_unauthorized",
            Rule::ResyncFailed,
        );
        let (s, _) = step(&State::default(), &bad, at(0));
        let mut other = calm();
        other.run = Ok(run("rs_2_cd", "failed", "clerk_unauthorized"));
        let (s, sent) = step(&s, &other, at(5));
        assert_eq!(sent.len(), 1, "another failed run is a new alert");
        assert!(sent[0].contains("rs_2_cd"));
        let mut running = calm();
        running.run = Ok(run("rs_3_ef", "running", ""));
        assert_eq!(step(&s, &running, at(10)).1.len(), 1, "resolved");
    }

    #[test]
    fn a_failed_send_is_tried_again_at_the_next_check() {
        let mut bad = calm();
        bad.relay = Err(SourceError::TimedOut);
        bad.metrics.as_mut().unwrap().rows.failed = 3;
        let check = evaluate(&State::default(), &bad, &settings(), at(0));
        assert_eq!(check.outbox().count(), 2);
        let failed_rows = check
            .outbox()
            .find(|(_, m)| m.text.contains("failed rows"))
            .unwrap()
            .0;
        let s = apply(State::default(), &check, &[failed_rows], at(0));
        assert!(s.active(Rule::FailedRows).is_none());
        assert!(s.active(Rule::RelayUnreachable).is_some());
        let (_, sent) = step(&s, &bad, at(5));
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].contains("3 failed rows, 3 new"), "{}", sent[0]);
    }

    #[test]
    fn history_keeps_the_last_50_newest_first() {
        let mut s = State::default();
        let mut down = calm();
        down.relay = Err(SourceError::Unreachable);
        for i in 0..60 {
            s = step(&s, &down, at(i * 10)).0;
            s = step(&s, &calm(), at(i * 10 + 5)).0;
        }
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].fired_at, at(590));
        assert!(s.history.iter().all(|p| p.resolved_at.is_some()));
    }

    #[test]
    fn the_state_survives_its_json() {
        let mut down = calm();
        down.relay = Err(SourceError::Unreachable);
        let (s, _) = step(&State::default(), &down, at(0));
        let back = State::from_json(&s.to_json());
        assert_eq!(back, s);
        assert!(
            step(&back, &down, at(5)).1.is_empty(),
            "not re-sent after a restart"
        );
        assert_eq!(State::from_json("not json"), State::default());
    }

    #[test]
    fn a_message_never_holds_an_email_or_free_text() {
        let mut bad = calm();
        bad.metrics = Err(SourceError::Status {
            status: 500,
            code: Some("database_error".into()),
        });
        bad.relay = Err(SourceError::Unauthorized {
            status: 401,
            setting: "RELAY_URL",
        });
        bad.run = Ok(run(EMAIL, "failed", EMAIL));
        let (s, sent) = step(&State::default(), &bad, at(0));
        assert_eq!(sent.len(), 3, "{sent:?}");
        let (_, resolved) = step(&s, &calm(), at(5));
        for text in sent.iter().chain(&resolved) {
            assert!(!text.contains('@'), "{text}");
            assert!(!text.contains("broke"), "{text}");
            let json: serde_json::Value =
                serde_json::from_str(&Message { text: text.clone() }.to_json()).unwrap();
            assert_eq!(json.as_object().unwrap().len(), 1, "only text");
        }
        assert!(sent.iter().any(|t| t.contains("run (unnamed)")), "{sent:?}");
    }

    #[test]
    fn the_settings_default_and_name_their_problems() {
        let s = settings();
        assert_eq!((s.pending_minutes, s.failure_rate), (60, 5.0));
        assert!(s.webhook_url.is_none());
        let s = AlertSettings::from_lookup(|n| {
            Some(
                match n {
                    ALERT_WEBHOOK_URL => "https://hooks.slack.com/services/T0/B0/secret",
                    ALERT_FAILURE_RATE => "2.5 %",
                    _ => "15",
                }
                .into(),
            )
        })
        .unwrap();
        assert_eq!((s.pending_minutes, s.failure_rate), (15, 2.5));
        assert!(!format!("{s:?}").contains("secret"), "redacted");
        let e = AlertSettings::from_lookup(|n| {
            Some(
                match n {
                    ALERT_WEBHOOK_URL => "http://hooks.example.com/secret-path",
                    ALERT_FAILURE_RATE => "0",
                    _ => "soon",
                }
                .into(),
            )
        })
        .unwrap_err();
        assert_eq!(
            e,
            vec![ALERT_WEBHOOK_URL, ALERT_PENDING_MINUTES, ALERT_FAILURE_RATE]
        );
    }

    #[test]
    fn the_metrics_answer_is_read() {
        let body = serde_json::to_vec(&metrics()).unwrap();
        let m = read_metrics(Answer::Status { status: 200, body }).unwrap();
        assert_eq!(m, metrics());
        let e = read_metrics(Answer::Status {
            status: 200,
            body: b"{\"ok\":true}".to_vec(),
        });
        assert_eq!(e, Err(SourceError::Unreadable));
        assert_eq!(read_metrics(Answer::TimedOut), Err(SourceError::TimedOut));
    }

    #[test]
    fn the_section_escapes_and_lists() {
        let mut down = calm();
        down.relay = Err(SourceError::Unreachable);
        let (mut s, _) = step(&State::default(), &down, at(0));
        s.active[0].detail = "<script>x</script>".into();
        let html = section(&Board {
            state: Ok(s),
            problems: vec![],
            sending: false,
        })
        .into_string();
        assert!(html.contains("relay unreachable"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("is not set"));
        assert!(html.contains("alerts-history"));
        let html = section(&Board {
            state: Ok(State::default()),
            problems: vec![ALERT_WEBHOOK_URL],
            sending: false,
        })
        .into_string();
        assert!(html.contains("No active alerts."));
        assert!(html.contains("<code>ALERT_WEBHOOK_URL</code>"), "{html}");
    }
}
