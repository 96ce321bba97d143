//! Queue mode's consumer as a sans-IO machine: told a batch's messages and
//! their ages, asked for the one call to make to the main API, told its
//! answer, and asked what to do with each message. The glue (`glue.rs`)
//! only performs the call and then acks, retries or dead-letters each
//! message as told; it never returns an error from the handler (with
//! workers-rs 0.8.7 that panics and retries the whole batch).
//!
//! ```text
//! SYNC_QUEUE batch ─▶ POST /internal/clerk-sync/batch (all its commands, one call)
//!    applied, duplicate, stale, ignored_deleted ─▶ ack
//!    rejected ─▶ a record_failure ("rejected") sent to SYNC_DLQ, then ack
//!    5xx, network, timeout, an answer that is not the batch's ─▶ retry, delay by age
//!    (after max_retries the queue moves the command to SYNC_DLQ itself)
//! SYNC_DLQ batch ─▶ POST /internal/clerk-sync/failures (one record_failure each:
//!                   as sent, or "retries_exhausted" around a command)
//!    recorded, superseded, duplicate ─▶ ack;  anything else ─▶ retry, delay by age
//! ```
//! No message is acked unless the API took its command, recorded it as
//! failed, or the dead-letter queue holds it; the one exception is a body
//! that is not a command at all (never sent by this relay), which no call
//! could take, dropped with a log line.

use serde_json::Value;

use clerk_sync_contract::batch::BATCH_PATH;
use clerk_sync_contract::failure::FAILURES_PATH;
use clerk_sync_contract::time::UnixMillis;

use crate::config::{Config, QUEUE_RETRY_MAX_SECONDS, QUEUE_RETRY_MIN_SECONDS};
use crate::relay::{ForwardRequest, UpstreamResult};

/// The code a dead command is recorded with when the queue's retries ran out.
pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
/// The code a command the main API rejected is recorded with.
pub const REJECTED: &str = "rejected";

/// Which of the relay's two queues a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Deliveries,
    DeadLetters,
}

/// A dead-letter queue's name ends with this (`clerk-sync-dlq`): the one
/// consumer tells its two queues apart by name, with no setting to keep in
/// step with `wrangler.toml`.
pub const DEAD_LETTER_SUFFIX: &str = "-dlq";

pub fn role(queue_name: &str) -> Role {
    if queue_name.ends_with(DEAD_LETTER_SUFFIX) {
        Role::DeadLetters
    } else {
        Role::Deliveries
    }
}

/// How long to wait before a message is tried again: half its age, within
/// [`QUEUE_RETRY_MIN_SECONDS`]..=[`QUEUE_RETRY_MAX_SECONDS`], so an outage
/// of minutes is retried in seconds and one of days about hourly.
pub fn retry_delay(age_ms: i64) -> u32 {
    let half = u32::try_from(age_ms.max(0) / 2_000).unwrap_or(u32::MAX);
    half.clamp(QUEUE_RETRY_MIN_SECONDS, QUEUE_RETRY_MAX_SECONDS)
}

/// What becomes of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Ack,
    Retry {
        delay_seconds: u32,
    },
    /// Send `message` (a `record_failure`) to `SYNC_DLQ`, then ack; if the
    /// send fails, retry after `delay_seconds`.
    DeadLetter {
        message: String,
        delay_seconds: u32,
    },
}

/// How the call ended: the status and the body, or no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAnswer {
    Answered { status: u16, body: String },
    Failed(UpstreamResult),
}

/// A message as the consumer reads it.
#[derive(Debug)]
struct Entry {
    body: String,
    /// Its operation and Clerk ids; `None`: not a command (dropped).
    ids: Option<(String, String)>,
    /// Already a `record_failure` (a rejected command, dead-lettered).
    is_failure: bool,
    age_ms: i64,
}

/// Read through `serde_json::Value`, whose `Deserialize` the bundle already
/// has (`resync`): a derived one for these shapes cost kilobytes of gzip.
fn read_entry(body: Option<String>, age_ms: i64) -> Entry {
    let body = body.unwrap_or_default();
    let v = serde_json::from_str::<Value>(&body).unwrap_or_default();
    let text = |name: &str| {
        v[name]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Entry {
        ids: text("operation_id").zip(text("clerk_id")),
        is_failure: v["command"] == "record_failure",
        body,
        age_ms,
    }
}

/// `results[]` of an answer (a batch's or recorded failures'): each
/// result's operation id and outcome, in order.
fn results(body: &str) -> Option<Vec<(String, String)>> {
    let v = serde_json::from_str::<Value>(body).ok()?;
    let mut all = Vec::new();
    for r in v["results"].as_array()? {
        let op = r["operation_id"].as_str()?;
        all.push((op.to_owned(), r["outcome"].as_str()?.to_owned()));
    }
    Some(all)
}

/// What a result's `outcome` says of the command: taken (or recorded as
/// failed), rejected, or not an outcome of this contract.
fn taken(outcome: &str) -> Option<bool> {
    match outcome {
        // A batch's (clerk_sync_contract::batch::Outcome) and a failure's
        // (clerk_sync_contract::failure::FailureOutcome).
        "applied" | "duplicate" | "stale" | "ignored_deleted" | "recorded" | "superseded" => {
            Some(true)
        }
        "rejected" => Some(false),
        _ => None,
    }
}

/// One batch of messages, from the queue's hands to each message's fate.
#[derive(Debug)]
pub struct Consumer<'c> {
    config: &'c Config,
    role: Role,
    entries: Vec<Entry>,
    log: ConsumerLog,
}

impl<'c> Consumer<'c> {
    /// `messages`: each message's body (a string, as the relay sent it) and
    /// its timestamp; `now` is the glue's clock.
    pub fn new(
        config: &'c Config,
        queue_name: &str,
        messages: Vec<(Option<String>, UnixMillis)>,
        now: UnixMillis,
    ) -> Self {
        let mut entries = Vec::with_capacity(messages.len());
        for (body, sent) in messages {
            entries.push(read_entry(body, now.0.saturating_sub(sent.0)));
        }
        let role = role(queue_name);
        let log = ConsumerLog {
            level: "info",
            queue: match role {
                Role::Deliveries => "deliveries",
                Role::DeadLetters => "dead_letters",
            },
            messages: entries.len(),
            ..ConsumerLog::default()
        };
        Self {
            config,
            role,
            entries,
            log,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The one call for the batch: its commands to the batch endpoint, or
    /// its dead letters to the failures endpoint. `None` when no message is
    /// a command.
    pub fn request(&mut self) -> Option<ForwardRequest> {
        let (path, opening) = match self.role {
            Role::Deliveries => (BATCH_PATH, r#"{"version":1,"commands":["#),
            Role::DeadLetters => (FAILURES_PATH, r#"{"version":1,"failures":["#),
        };
        let mut body = String::from(opening);
        for e in self.entries.iter() {
            let Some((op, id)) = &e.ids else { continue };
            if body.len() > opening.len() {
                body.push(',');
            }
            if self.role == Role::DeadLetters && !e.is_failure {
                body.push_str(&failure_json(op, id, RETRIES_EXHAUSTED, &e.body));
            } else {
                body.push_str(&e.body);
            }
        }
        if body.len() == opening.len() {
            return None;
        }
        body.push_str("]}");
        self.log.api_calls = 1;
        Some(ForwardRequest {
            url: self.config.api_path(path),
            headers: crate::relay::api_headers(self.config),
            body: body.into_bytes(),
            timeout_ms: self.config.forward_timeout_ms,
        })
    }

    /// What to do with each message, in the order given, after the call
    /// ended as `answer` (`None`: no call was made).
    pub fn decide(&mut self, answer: Option<ApiAnswer>) -> Vec<Disposition> {
        match &answer {
            Some(ApiAnswer::Answered { status, .. }) => self.log.api_status = Some(*status),
            Some(ApiAnswer::Failed(UpstreamResult::TimedOut)) => {
                self.log.api_error = Some("timeout")
            }
            Some(ApiAnswer::Failed(_)) => self.log.api_error = Some("unavailable"),
            None => {}
        }
        // Each sent command's outcome, in order, when the answer is this
        // call's (as many results, the same operation ids, known outcomes).
        let mut outcomes = Vec::new();
        if let Some(ApiAnswer::Answered { status: 200, body }) = &answer {
            let sent = self.entries.iter().filter_map(|e| e.ids.as_ref());
            let results = results(body).unwrap_or_default();
            if results.len() == sent.clone().count() {
                for ((op, outcome), (sent_op, _)) in results.iter().zip(sent) {
                    match taken(outcome) {
                        Some(t) if op == sent_op => outcomes.push(t),
                        _ => {
                            outcomes.clear();
                            break;
                        }
                    }
                }
            }
        }
        let mut outcomes = outcomes.into_iter();
        let mut all = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let delay_seconds = retry_delay(e.age_ms);
            let Some((op, id)) = &e.ids else {
                all.push(Disposition::Ack);
                continue;
            };
            all.push(match outcomes.next() {
                Some(true) => Disposition::Ack,
                // Rejected: a retry cannot change that.
                Some(false) if self.role == Role::Deliveries => Disposition::DeadLetter {
                    message: failure_json(op, id, REJECTED, &e.body),
                    delay_seconds,
                },
                _ => Disposition::Retry { delay_seconds },
            });
        }
        for d in &all {
            match d {
                Disposition::Ack => self.log.acked += 1,
                Disposition::Retry { .. } => self.log.retried += 1,
                Disposition::DeadLetter { .. } => self.log.dead_lettered += 1,
            }
        }
        self.log.dropped = self.entries.iter().filter(|e| e.ids.is_none()).count();
        if self.log.retried + self.log.dropped > 0 {
            self.log.level = "warn";
        }
        all
    }

    /// The batch's one log line: counts and statuses, never a body, an id
    /// or an email. Written by hand: a derived `Serialize` costs bundle size.
    pub fn log_line(&self, duration_ms: u64) -> String {
        let l = &self.log;
        format!(
            r#"{{"level":"{}","msg":"queue_batch","queue":"{}","messages":{},"acked":{},"retried":{},"dead_lettered":{},"dropped":{},"api_calls":{},"api_status":{},"api_error":"{}","duration_ms":{duration_ms}}}"#,
            l.level,
            l.queue,
            l.messages,
            l.acked,
            l.retried,
            l.dead_lettered,
            l.dropped,
            l.api_calls,
            l.api_status.unwrap_or(0),
            l.api_error.unwrap_or(""),
        )
    }
}

#[derive(Debug, Clone, Default)]
struct ConsumerLog {
    level: &'static str,
    queue: &'static str,
    messages: usize,
    acked: usize,
    retried: usize,
    dead_lettered: usize,
    dropped: usize,
    api_calls: u32,
    api_status: Option<u16>,
    api_error: Option<&'static str>,
}

/// A `record_failure` (clerk_sync_contract::failure::RecordFailure) around
/// a command as it was queued.
fn failure_json(operation_id: &str, clerk_id: &str, error: &str, command: &str) -> String {
    format!(
        r#"{{"command":"record_failure","operation_id":{},"clerk_id":{},"error":"{error}","failed":{command}}}"#,
        json_string(operation_id),
        json_string(clerk_id),
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_sync_contract::batch::BatchRequest;
    use clerk_sync_contract::command::{Command, Provenance};
    use clerk_sync_contract::failure::{FailureBatch, RecordFailure};

    const NOW: UnixMillis = UnixMillis(10_000_000);

    fn config() -> Config {
        Config::from_lookup(|k| {
            Some(match k {
                crate::config::CLERK_WEBHOOK_SECRET => {
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()
                }
                crate::config::WEBHOOK_QUERY_SECRET => "q".into(),
                crate::config::API_SECRET => "api-secret".into(),
                crate::config::DELIVERY_MODE => "queue".into(),
                _ => return None,
            })
        })
        .unwrap()
    }

    fn command(op: &str) -> String {
        let c = Command::delete(
            Provenance {
                operation_id: op.into(),
                event_type: "user.deleted".into(),
                occurred_at: "2022-05-31T15:56:31.835Z".into(),
                received_at: "2026-11-28T12:00:00.123Z".into(),
            },
            format!("user_{op}"),
            None,
        );
        String::from_utf8(c.to_json()).unwrap()
    }

    /// Messages of these operation ids, each `age_ms` old.
    fn messages(ops: &[&str], age_ms: i64) -> Vec<(Option<String>, UnixMillis)> {
        ops.iter()
            .map(|op| (Some(command(op)), UnixMillis(NOW.0 - age_ms)))
            .collect()
    }

    fn answer(outcomes: &[(&str, &str)]) -> Option<ApiAnswer> {
        let results: Vec<_> = outcomes
            .iter()
            .map(|(op, o)| serde_json::json!({"operation_id": op, "outcome": o, "error": null}))
            .collect();
        Some(ApiAnswer::Answered {
            status: 200,
            body: serde_json::json!({"ok": true, "results": results}).to_string(),
        })
    }

    fn status(status: u16, body: &str) -> Option<ApiAnswer> {
        Some(ApiAnswer::Answered {
            status,
            body: body.into(),
        })
    }

    const ACK: Disposition = Disposition::Ack;
    fn retry(delay_seconds: u32) -> Disposition {
        Disposition::Retry { delay_seconds }
    }

    #[test]
    fn the_delay_grows_with_the_age_within_its_bounds() {
        for (age_ms, delay) in [
            (-5_000, 1),
            (0, 1),
            (3_999, 1),
            (20_000, 10),
            (600_000, 300),
            (7_200_000, 3_600),
            (86_400_000, 3_600),
            (i64::MAX, 3_600),
        ] {
            assert_eq!(retry_delay(age_ms), delay, "age {age_ms}");
        }
    }

    #[test]
    fn a_batch_is_one_call_and_each_taken_outcome_is_acked() {
        let c = config();
        let mut consumer = Consumer::new(
            &c,
            "clerk-sync",
            messages(&["a", "b", "c", "d"], 1_000),
            NOW,
        );
        assert_eq!(consumer.role(), Role::Deliveries);
        let request = consumer.request().unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:8787/internal/clerk-sync/batch"
        );
        assert!(request
            .headers
            .contains(&("authorization", "Bearer api-secret".into())));
        let batch: BatchRequest = serde_json::from_slice(&request.body).unwrap();
        let ops: Vec<_> = batch
            .commands
            .iter()
            .map(|c| c.operation_id.as_str())
            .collect();
        assert_eq!(ops, ["a", "b", "c", "d"]);
        let decided = consumer.decide(answer(&[
            ("a", "applied"),
            ("b", "duplicate"),
            ("c", "stale"),
            ("d", "ignored_deleted"),
        ]));
        assert_eq!(decided, [ACK; 4]);
        let line = consumer.log_line(3);
        let log: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (log["api_calls"].as_u64(), log["acked"].as_u64()),
            (Some(1), Some(4))
        );
        assert!(!line.contains("user_a") && !line.contains("api-secret"));
    }

    #[test]
    fn a_failed_call_retries_every_message_with_a_delay_by_its_own_age() {
        let c = config();
        for answer in [
            status(500, ""),
            status(503, "{}"),
            status(400, r#"{"ok":false}"#),
            status(302, ""),
            Some(ApiAnswer::Failed(UpstreamResult::Unavailable)),
            Some(ApiAnswer::Failed(UpstreamResult::TimedOut)),
            // 200 but not this batch's answer: fewer results, another
            // order, an unknown outcome, not JSON.
            answer(&[("a", "applied")]),
            answer(&[("b", "applied"), ("a", "applied")]),
            answer(&[("a", "applied"), ("b", "maybe")]),
            status(200, "<html>"),
        ] {
            let mut msgs = messages(&["a"], 0);
            msgs.extend(messages(&["b"], 100_000));
            let mut consumer = Consumer::new(&c, "clerk-sync", msgs, NOW);
            consumer.request().unwrap();
            assert_eq!(
                consumer.decide(answer.clone()),
                [retry(1), retry(50)],
                "{answer:?}"
            );
        }
    }

    #[test]
    fn a_rejected_command_is_dead_lettered_as_a_record_failure() {
        let c = config();
        let mut consumer = Consumer::new(&c, "clerk-sync", messages(&["a", "b"], 0), NOW);
        consumer.request().unwrap();
        let decided = consumer.decide(answer(&[("a", "applied"), ("b", "rejected")]));
        assert_eq!(decided[0], ACK);
        let Disposition::DeadLetter {
            message,
            delay_seconds,
        } = &decided[1]
        else {
            panic!("{decided:?}")
        };
        assert_eq!(*delay_seconds, 1);
        let f: RecordFailure = serde_json::from_str(message).unwrap();
        assert_eq!((f.operation_id.as_str(), f.error.as_str()), ("b", REJECTED));
        assert_eq!(f.validate(), Ok(()));
    }

    #[test]
    fn a_dead_letter_batch_is_recorded_in_one_call_and_retried_if_that_fails() {
        let c = config();
        // A command whose retries ran out, and a rejected one sent as a record_failure.
        let mut msgs = messages(&["a"], 0);
        let rejected = failure_json("b", "user_b", REJECTED, &command("b"));
        msgs.push((Some(rejected), NOW));
        let mut consumer = Consumer::new(&c, "clerk-sync-dlq", msgs.clone(), NOW);
        assert_eq!(consumer.role(), Role::DeadLetters);
        let request = consumer.request().unwrap();
        assert_eq!(
            request.url,
            "http://127.0.0.1:8787/internal/clerk-sync/failures"
        );
        let failures: FailureBatch = serde_json::from_slice(&request.body).unwrap();
        let got: Vec<_> = failures
            .failures
            .iter()
            .map(|f| {
                (
                    f.operation_id.as_str(),
                    f.clerk_id.as_str(),
                    f.error.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", "user_a", RETRIES_EXHAUSTED),
                ("b", "user_b", REJECTED)
            ]
        );
        assert!(failures.failures.iter().all(|f| f.validate().is_ok()));
        let decided = consumer.decide(answer(&[("a", "recorded"), ("b", "superseded")]));
        assert_eq!(decided, [ACK, ACK]);

        for failed in [
            Some(ApiAnswer::Failed(UpstreamResult::TimedOut)),
            status(500, ""),
        ] {
            let mut consumer = Consumer::new(&c, "clerk-sync-dlq", msgs.clone(), NOW);
            consumer.request().unwrap();
            assert_eq!(consumer.decide(failed), [retry(1), retry(1)]);
        }
        // A failure is never dead-lettered again: one not recorded is retried.
        let mut consumer = Consumer::new(&c, "clerk-sync-dlq", msgs, NOW);
        consumer.request().unwrap();
        let decided = consumer.decide(answer(&[("a", "rejected"), ("b", "recorded")]));
        assert_eq!(decided, [retry(1), ACK]);
    }

    #[test]
    fn a_body_that_is_not_a_command_is_dropped_and_never_sent() {
        let c = config();
        let mut msgs = vec![(None, NOW)];
        msgs.extend(messages(&["a"], 0));
        msgs.push((Some("not json".into()), NOW));
        msgs.push((Some(r#"{"operation_id":"","clerk_id":"x"}"#.into()), NOW));
        msgs.extend(messages(&["b"], 0));
        let mut consumer = Consumer::new(&c, "clerk-sync", msgs, NOW);
        let batch: BatchRequest =
            serde_json::from_slice(&consumer.request().unwrap().body).unwrap();
        assert_eq!(batch.commands.len(), 2);
        let decided = consumer.decide(answer(&[("a", "applied"), ("b", "rejected")]));
        assert_eq!(decided[..4], [ACK; 4]);
        assert!(matches!(decided[4], Disposition::DeadLetter { .. }));
        assert!(consumer.log_line(0).contains(r#""dropped":3"#));
        // Nothing to send at all: no call.
        let mut consumer = Consumer::new(&c, "clerk-sync-dlq", vec![(None, NOW)], NOW);
        assert_eq!(consumer.request(), None);
        assert_eq!(consumer.decide(None), [ACK]);
    }
}
