//! A simulated Clerk Backend API and main API, and a driver that performs a
//! run's actions against them on a simulated clock, the way the Durable
//! Object will: persist after `poll`, perform, maybe crash, `handle`, persist.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use clerk_sync_contract::clerk::ClerkUser;
use clerk_sync_contract::time::format_millis;
use clerk_sync_contract::{
    BatchRequest, Command, CommandKind, CommandResult, Outcome, Provenance, UnixMillis,
};
use clerk_sync_resync::{Action, Answer, Run};
use serde_json::{json, Value};

pub const WINDOW: i64 = 10_000;

/// One Clerk user as the simulation holds it.
#[derive(Debug, Clone)]
pub struct SimUser {
    pub id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub email: String,
    pub external_id: Option<String>,
    pub first_name: String,
    /// Its `updated_at` is out of range: Clerk sends it, the run rejects it.
    pub bad_time: bool,
    /// Sent without an `id` (only in table tests: a Clerk that does this
    /// cannot be looked up by id).
    pub no_id: bool,
}

impl SimUser {
    pub fn new(id: &str, created_at: i64) -> Self {
        Self {
            id: id.to_owned(),
            created_at,
            updated_at: created_at,
            email: format!("{id}@example.com"),
            external_id: None,
            first_name: format!("First {id}"),
            bad_time: false,
            no_id: false,
        }
    }

    pub fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": "user",
            "email_addresses": [{"id": format!("idn_{}", self.id), "email_address": self.email,
                                 "verification": {"status": "verified"}}],
            "primary_email_address_id": format!("idn_{}", self.id),
            "first_name": self.first_name,
            "last_name": null,
            "username": null,
            "image_url": "https://img.clerk.com/x",
            "external_id": self.external_id,
            "created_at": self.created_at,
            "updated_at": if self.bad_time { i64::MAX } else { self.updated_at },
        });
        if self.no_id {
            v.as_object_mut().unwrap().remove("id");
        }
        v
    }

    /// The command a webhook for this user's current version carries.
    pub fn webhook(&self, msg: u64, now: i64) -> Command {
        let user: ClerkUser = serde_json::from_value(self.json()).unwrap();
        let record = user.to_record().unwrap();
        Command::upsert(
            Provenance {
                operation_id: format!("msg_{msg}"),
                event_type: "user.updated".into(),
                occurred_at: format_millis(self.updated_at).unwrap(),
                received_at: format_millis(now).unwrap(),
            },
            self.id.clone(),
            record,
        )
    }
}

/// What the stand-in Clerk does besides answering.
#[derive(Debug, Clone)]
pub struct ClerkFaults {
    /// Its own limit per 10 s (answering 429 past it).
    pub limit_per_10s: usize,
    /// Chance of a 5xx, a reset or a timeout.
    pub p_fault: f64,
    /// Chance of a 429 with a random Retry-After (or none).
    pub p_429: f64,
    /// Refuse `starting_after` for an id it no longer has (422), rather than
    /// paging from where that user was.
    pub strict_cursor: bool,
}

impl ClerkFaults {
    pub fn none() -> Self {
        Self {
            limit_per_10s: usize::MAX,
            p_fault: 0.0,
            p_429: 0.0,
            strict_cursor: true,
        }
    }
}

pub struct SimClerk {
    /// Live users, ordered by (created_at, id).
    pub users: Vec<SimUser>,
    /// Deleted users' created_at, for a lenient cursor.
    pub deleted: HashMap<String, i64>,
    /// Every version ever held: (id, updated_at as contract text) → (first name, email).
    pub history: HashMap<(String, String), (String, String)>,
    pub faults: ClerkFaults,
    /// When each request arrived.
    pub requests: Vec<i64>,
    /// When each request it served (not refused with 429) arrived.
    served: Vec<i64>,
    /// No request may arrive before this (the last Retry-After).
    pub blocked_until: i64,
    /// `blocked_until` before the last answer, for an answer the run never got.
    blocked_before: i64,
    /// While requests sent together are answered: `blocked_until` when they
    /// were sent (none of them saw the others' 429s).
    pub sent_together: Option<i64>,
    pub violations: Vec<String>,
    pub answered_429: u64,
}

impl SimClerk {
    pub fn new(mut users: Vec<SimUser>, faults: ClerkFaults) -> Self {
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let mut clerk = Self {
            users: Vec::new(),
            deleted: HashMap::new(),
            history: HashMap::new(),
            faults,
            requests: Vec::new(),
            served: Vec::new(),
            blocked_until: i64::MIN,
            blocked_before: i64::MIN,
            sent_together: None,
            violations: Vec::new(),
            answered_429: 0,
        };
        for u in users {
            clerk.remember(&u);
            clerk.users.push(u);
        }
        clerk
    }

    fn remember(&mut self, u: &SimUser) {
        self.history.insert(
            (u.id.clone(), format_millis(u.updated_at).unwrap()),
            (u.first_name.clone(), u.email.clone()),
        );
    }

    pub fn has(&self, id: &str) -> bool {
        self.users.iter().any(|u| u.id == id)
    }

    pub fn get(&self, id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn insert(&mut self, u: SimUser) {
        self.remember(&u);
        let pos = self
            .users
            .partition_point(|x| (x.created_at, &x.id) < (u.created_at, &u.id));
        self.users.insert(pos, u);
    }

    pub fn update(&mut self, id: &str, now: i64, first_name: String) -> Option<SimUser> {
        let u = self.users.iter_mut().find(|u| u.id == id)?;
        u.updated_at = now.max(u.updated_at + 1);
        u.first_name = first_name;
        let u = u.clone();
        self.remember(&u);
        Some(u)
    }

    pub fn delete(&mut self, id: &str) -> Option<SimUser> {
        let pos = self.users.iter().position(|u| u.id == id)?;
        let u = self.users.remove(pos);
        self.deleted.insert(u.id.clone(), u.created_at);
        Some(u)
    }

    /// Answers `GET {path_and_query}` arriving at `now`.
    pub fn answer(&mut self, now: i64, path_and_query: &str, rng: &mut fastrand::Rng) -> Answer {
        let blocked_until = self.sent_together.unwrap_or(self.blocked_until);
        if now < blocked_until {
            self.violations.push(format!(
                "request at {now} before Retry-After expired at {blocked_until}"
            ));
        }
        self.requests.push(now);
        self.blocked_before = blocked_until;
        if rng.f64() < self.faults.p_fault {
            return match rng.u8(0..4) {
                0 => Answer::Unreachable,
                1 => Answer::TimedOut,
                2 => status(502, b"<html>bad gateway</html>".to_vec()),
                _ => status(500, br#"{"errors":[{"code":"internal"}]}"#.to_vec()),
            };
        }
        // Its own window counts the requests it served.
        let served: Vec<i64> = self
            .served
            .iter()
            .copied()
            .filter(|&t| t > now - WINDOW)
            .collect();
        if served.len() >= self.faults.limit_per_10s {
            let frees_at = served[served.len() - self.faults.limit_per_10s] + WINDOW;
            let secs = (frees_at - now + 999) / 1000;
            return self.too_many(now, Some(secs.max(1)));
        }
        if rng.f64() < self.faults.p_429 {
            let secs = if rng.bool() {
                Some(rng.i64(0..=5))
            } else {
                None
            };
            return self.too_many(now, secs);
        }
        self.served.push(now);
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let params = parse_query(query);
        match path {
            "/v1/users/count" => status(
                200,
                json!({"object":"total_count","total_count": self.users.len()})
                    .to_string()
                    .into_bytes(),
            ),
            "/v1/users" => self.list(&params),
            _ => status(404, b"{}".to_vec()),
        }
    }

    /// The run never received the last answer (its process died): a
    /// Retry-After it never saw cannot bind it.
    pub fn answer_lost(&mut self) {
        self.blocked_until = self.blocked_before;
    }

    fn too_many(&mut self, now: i64, secs: Option<i64>) -> Answer {
        self.answered_429 += 1;
        // Without Retry-After the run promises one full window.
        self.blocked_until = now + secs.map_or(WINDOW, |s| s * 1000);
        Answer::Status {
            status: 429,
            retry_after: secs.map(|s| s.to_string()),
            body: br#"{"errors":[{"code":"too_many_requests"}]}"#.to_vec(),
        }
    }

    fn list(&self, params: &[(String, String)]) -> Answer {
        let one = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let many = |k: &str| -> Vec<&str> {
            params
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let limit = match one("limit").map(str::parse::<usize>) {
            None => 10,
            Some(Ok(n)) if (1..=500).contains(&n) => n,
            _ => {
                return status(
                    422,
                    br#"{"errors":[{"code":"form_param_value_invalid"}]}"#.to_vec(),
                )
            }
        };
        if one("starting_after").is_some() && one("offset").is_some_and(|o| o != "0") {
            return status(
                422,
                br#"{"errors":[{"code":"form_param_value_invalid"}]}"#.to_vec(),
            );
        }
        let strip = |v: &str| v.strip_prefix('+').unwrap_or(v).to_owned();
        let ids: Vec<String> = many("user_id").into_iter().map(strip).collect();
        let externals: Vec<String> = many("external_id").into_iter().map(strip).collect();
        let emails: Vec<String> = many("email_address")
            .into_iter()
            .map(str::to_ascii_lowercase)
            .collect();
        let lookup = !(ids.is_empty() && externals.is_empty() && emails.is_empty());
        let page: Vec<Value> = if lookup {
            if ids.len().max(externals.len()).max(emails.len()) > 100 {
                return status(422, b"{}".to_vec());
            }
            // Kinds are ANDed; newest first, as Clerk's default order.
            self.users
                .iter()
                .rev()
                .filter(|u| ids.is_empty() || ids.contains(&u.id))
                .filter(|u| {
                    externals.is_empty()
                        || u.external_id
                            .as_ref()
                            .is_some_and(|x| externals.contains(x))
                })
                .filter(|u| emails.is_empty() || emails.contains(&u.email.to_ascii_lowercase()))
                .take(limit)
                .map(SimUser::json)
                .collect()
        } else {
            assert_eq!(
                one("order_by"),
                Some("+created_at"),
                "the run pages oldest first"
            );
            let start = match one("starting_after") {
                None => 0,
                Some(after) => match self.users.iter().position(|u| u.id == after) {
                    Some(i) => i + 1,
                    None => match self.deleted.get(after) {
                        Some(&created) if !self.faults.strict_cursor => self
                            .users
                            .partition_point(|u| (u.created_at, u.id.as_str()) <= (created, after)),
                        _ => {
                            return status(
                                422,
                                br#"{"errors":[{"code":"resource_not_found"}]}"#.to_vec(),
                            )
                        }
                    },
                },
            };
            self.users
                .iter()
                .skip(start)
                .take(limit)
                .map(SimUser::json)
                .collect()
        };
        status(200, serde_json::to_vec(&page).unwrap())
    }
}

pub fn status(status: u16, body: Vec<u8>) -> Answer {
    Answer::Status {
        status,
        retry_after: None,
        body,
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            assert_ne!(b[i], b'+', "a literal + in a query is read as a space");
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// One row of the simulated main API's table.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRow {
    pub clerk_id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub sync_status: &'static str,
    /// Clerk's `updated_at` of the data, as contract text.
    pub clerk_updated_at: Option<String>,
    pub deleted: bool,
    /// The cursor key: the Clerk id, or one after every id for a row without.
    pub key: String,
}

impl SimRow {
    pub fn linked(
        id: &str,
        email: &str,
        first_name: &str,
        updated_at: i64,
        status: &'static str,
    ) -> Self {
        Self {
            clerk_id: Some(id.to_owned()),
            email: Some(email.to_owned()),
            external_id: None,
            first_name: Some(first_name.to_owned()),
            sync_status: status,
            clerk_updated_at: format_millis(updated_at),
            deleted: false,
            key: id.to_owned(),
        }
    }

    pub fn pending(n: usize, email: Option<&str>, external_id: Option<&str>) -> Self {
        Self {
            clerk_id: None,
            email: email.map(str::to_owned),
            external_id: external_id.map(str::to_owned),
            first_name: None,
            sync_status: "pending",
            clerk_updated_at: None,
            deleted: false,
            key: format!("~pending_{n:05}"),
        }
    }
}

pub struct ApiFaults {
    /// Chance of a 5xx or a timeout before applying.
    pub p_fault: f64,
    /// Chance of applying a batch and then losing the answer.
    pub p_lost_answer: f64,
    /// Whether `next_after` is given on a full last page too.
    pub cursor_on_full_page: bool,
}

impl ApiFaults {
    pub fn none() -> Self {
        Self {
            p_fault: 0.0,
            p_lost_answer: 0.0,
            cursor_on_full_page: false,
        }
    }
}

pub struct SimApi {
    pub rows: Vec<SimRow>,
    pub tombstones: HashSet<String>,
    /// Operation ids applied (applied, stale, ignored_deleted), with the command.
    pub applied_ops: HashMap<String, Command>,
    pub faults: ApiFaults,
    pub violations: Vec<String>,
    /// Outcomes of the run's commands (operation id starts with `resync_`).
    pub run_outcomes: BTreeMap<&'static str, u64>,
    pub batches: u64,
}

impl SimApi {
    pub fn new(rows: Vec<SimRow>, tombstones: &[&str], faults: ApiFaults) -> Self {
        Self {
            rows,
            tombstones: tombstones.iter().map(|s| (*s).to_owned()).collect(),
            applied_ops: HashMap::new(),
            faults,
            violations: Vec::new(),
            run_outcomes: BTreeMap::new(),
            batches: 0,
        }
    }

    pub fn row(&self, id: &str) -> Option<&SimRow> {
        self.rows.iter().find(|r| r.clerk_id.as_deref() == Some(id))
    }

    /// The reference API's rules: idempotent by operation id, a tombstone
    /// wins over any upsert, last writer wins by Clerk's `updated_at`, an
    /// unknown id links a pending row by external id or email.
    pub fn apply(&mut self, c: &Command) -> Outcome {
        if c.validate().is_err() {
            return Outcome::Rejected;
        }
        if let Some(before) = self.applied_ops.get(&c.operation_id) {
            let mut again = c.clone();
            again.received_at.clone_from(&before.received_at);
            if &again != before {
                self.violations.push(format!(
                    "operation id {} reused for a different command",
                    c.operation_id
                ));
            }
            return Outcome::Duplicate;
        }
        let outcome = match c.command {
            CommandKind::DeleteUser => {
                self.tombstones.insert(c.clerk_id.clone());
                for r in self.rows.iter_mut() {
                    if r.clerk_id.as_deref() == Some(&c.clerk_id) {
                        r.deleted = true;
                        r.sync_status = "synced";
                    }
                }
                Outcome::Applied
            }
            CommandKind::UpsertUser if self.tombstones.contains(&c.clerk_id) => {
                Outcome::IgnoredDeleted
            }
            CommandKind::UpsertUser => {
                let user = c.user.as_ref().unwrap();
                let pos = self
                    .rows
                    .iter()
                    .position(|r| r.clerk_id.as_deref() == Some(&c.clerk_id))
                    .or_else(|| {
                        self.rows.iter().position(|r| {
                            r.clerk_id.is_none()
                                && !r.deleted
                                && ((r.external_id.is_some() && r.external_id == user.external_id)
                                    || (r.email.is_some()
                                        && r.email.as_deref().map(str::to_ascii_lowercase)
                                            == user.email.as_deref().map(str::to_ascii_lowercase)))
                        })
                    });
                let pos = pos.unwrap_or_else(|| {
                    self.rows.push(SimRow {
                        clerk_id: None,
                        email: None,
                        external_id: None,
                        first_name: None,
                        sync_status: "pending",
                        clerk_updated_at: None,
                        deleted: false,
                        key: String::new(),
                    });
                    self.rows.len() - 1
                });
                let row = &mut self.rows[pos];
                if row.clerk_updated_at.is_some() && row.clerk_updated_at > user.updated_at {
                    Outcome::Stale
                } else {
                    row.clerk_id = Some(c.clerk_id.clone());
                    row.key.clone_from(&c.clerk_id);
                    row.email.clone_from(&user.email);
                    row.external_id.clone_from(&user.external_id);
                    row.first_name.clone_from(&user.first_name);
                    row.clerk_updated_at.clone_from(&user.updated_at);
                    row.sync_status = "synced";
                    Outcome::Applied
                }
            }
        };
        self.applied_ops.insert(c.operation_id.clone(), c.clone());
        outcome
    }

    /// `POST /internal/clerk-sync/batch`.
    pub fn batch(&mut self, body: &[u8], clerk: &SimClerk, rng: &mut fastrand::Rng) -> Answer {
        if rng.f64() < self.faults.p_fault {
            return if rng.bool() {
                status(503, b"busy".to_vec())
            } else {
                Answer::TimedOut
            };
        }
        let Ok(batch) = serde_json::from_slice::<BatchRequest>(body) else {
            return status(400, br#"{"ok":false,"error":"invalid_batch"}"#.to_vec());
        };
        if batch.commands.is_empty() || batch.commands.len() > 500 {
            return status(400, br#"{"ok":false,"error":"invalid_batch"}"#.to_vec());
        }
        self.batches += 1;
        let mut results = Vec::new();
        for c in &batch.commands {
            self.check_run_command(c, clerk);
            let outcome = self.apply(c);
            *self.run_outcomes.entry(outcome.as_str()).or_default() += 1;
            results.push(CommandResult {
                operation_id: c.operation_id.clone(),
                outcome,
                error: (outcome == Outcome::Rejected).then(|| "invalid_command".to_owned()),
            });
        }
        if rng.f64() < self.faults.p_lost_answer {
            return Answer::TimedOut;
        }
        status(
            200,
            json!({"ok": true, "results": results})
                .to_string()
                .into_bytes(),
        )
    }

    /// What the run may send: a delete only for an id Clerk does not have;
    /// an upsert only with data Clerk held at that version.
    fn check_run_command(&mut self, c: &Command, clerk: &SimClerk) {
        if c.event_type != "resync" || !c.operation_id.starts_with("resync_") {
            self.violations
                .push(format!("unexpected provenance {}", c.operation_id));
        }
        match c.command {
            CommandKind::DeleteUser => {
                if clerk.has(&c.clerk_id) {
                    self.violations
                        .push(format!("delete of {} which Clerk has", c.clerk_id));
                }
            }
            CommandKind::UpsertUser => {
                let user = c.user.as_ref().unwrap();
                let version = user
                    .updated_at
                    .as_ref()
                    .and_then(|at| clerk.history.get(&(c.clerk_id.clone(), at.clone())));
                match version {
                    Some((first, email)) => {
                        if user.first_name.as_ref() != Some(first)
                            || user.email.as_ref() != Some(email)
                        {
                            self.violations.push(format!(
                                "upsert of {} carries other data than its version",
                                c.clerk_id
                            ));
                        }
                    }
                    None => self.violations.push(format!(
                        "upsert of {} with a version Clerk never had",
                        c.clerk_id
                    )),
                }
                if Some(&c.occurred_at) != user.updated_at.as_ref() {
                    self.violations.push(format!(
                        "upsert of {}: occurred_at is not updated_at",
                        c.clerk_id
                    ));
                }
            }
        }
    }

    /// `GET /internal/users?…`.
    pub fn list(&mut self, path_and_query: &str, rng: &mut fastrand::Rng) -> Answer {
        if rng.f64() < self.faults.p_fault {
            return if rng.bool() {
                status(500, b"oops".to_vec())
            } else {
                Answer::Unreachable
            };
        }
        let (path, query) = path_and_query.split_once('?').unwrap();
        assert_eq!(path, "/internal/users");
        let params = parse_query(query);
        let one = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let limit: usize = one("limit").unwrap().parse().unwrap();
        assert!((1..=500).contains(&limit));
        let after = one("after");
        let live = one("live").as_deref() == Some("true");
        let sync_status = one("sync_status");
        let mut rows: Vec<&SimRow> = self
            .rows
            .iter()
            .filter(|r| !r.deleted)
            .filter(|r| !live || r.clerk_id.is_some())
            .filter(|r| sync_status.as_deref().is_none_or(|s| r.sync_status == s))
            .filter(|r| after.as_ref().is_none_or(|a| r.key > *a))
            .collect();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        let more = rows.len() > limit;
        rows.truncate(limit);
        let full = rows.len() == limit;
        let next_after = if more || (full && self.faults.cursor_on_full_page) {
            rows.last().map(|r| r.key.clone())
        } else {
            None
        };
        let users: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"clerk_id": r.clerk_id, "email": r.email, "external_id": r.external_id,
                       "sync_status": r.sync_status, "sync_error": null, "last_sync_attempt": null,
                       "deleted": r.deleted})
            })
            .collect();
        status(
            200,
            json!({"users": users, "next_after": next_after})
                .to_string()
                .into_bytes(),
        )
    }
}

/// How the driver disturbs a run.
pub struct Chaos {
    /// Chance per step of a restart from the persisted state.
    pub p_restart: f64,
    /// Chance per step of a change in Clerk (update, create, delete), each
    /// followed by its webhook some time later.
    pub p_mutation: f64,
    /// Latency of every request, ms.
    pub latency: std::ops::RangeInclusive<i64>,
}

impl Chaos {
    pub fn calm() -> Self {
        Self {
            p_restart: 0.0,
            p_mutation: 0.0,
            latency: 20..=300,
        }
    }
}

pub struct World {
    pub clerk: SimClerk,
    pub api: SimApi,
    pub now: i64,
    pub rng: fastrand::Rng,
    pub webhooks: VecDeque<(i64, Command)>,
    pub next_msg: u64,
    pub next_user: u64,
    pub restarts: u64,
    pub steps: u64,
    pub wakes: u64,
    /// Sweep rows pages read beside a lookup and handed to the run.
    pub rows_read_ahead: u64,
}

pub struct Ran {
    pub run: Run,
    pub logs: Vec<clerk_sync_resync::LogRecord>,
}

impl World {
    pub fn new(clerk: SimClerk, api: SimApi, seed: u64) -> Self {
        Self {
            clerk,
            api,
            now: 1_764_331_200_000,
            rng: fastrand::Rng::with_seed(seed),
            webhooks: VecDeque::new(),
            next_msg: 0,
            next_user: 0,
            restarts: 0,
            steps: 0,
            wakes: 0,
            rows_read_ahead: 0,
        }
    }

    /// Drives the run until it finishes (or `max_steps`), then delivers
    /// every webhook still on its way.
    pub fn drive(&mut self, run: Run, chaos: &Chaos, max_steps: u64) -> Ran {
        let mut run = run;
        let mut stored = run.to_json();
        let mut logs = Vec::new();
        loop {
            self.steps += 1;
            assert!(
                self.steps <= max_steps,
                "the run did not finish in {max_steps} steps"
            );
            self.deliver_due_webhooks();
            if self.rng.f64() < chaos.p_mutation {
                self.mutate();
            }
            if self.rng.f64() < chaos.p_restart {
                self.restarts += 1;
                run = Run::from_json(&stored).unwrap();
            }
            let action = run.poll(UnixMillis(self.now));
            logs.extend(std::iter::from_fn(|| run.poll_log()));
            let sent_at = self.now;
            // The glue asks for the next page beside every batch; sometimes
            // not here, so that both orders of pages and batches are driven.
            let prefetch = match action {
                Action::ApiBatch { .. } if self.rng.f64() < 0.8 => {
                    run.poll_prefetch(UnixMillis(self.now))
                }
                _ => None,
            };
            self.clerk.sent_together = Some(self.clerk.blocked_until);
            let ahead = prefetch.map(|action| match action {
                Action::Clerk { path_and_query } => {
                    self.clerk.answer(sent_at, &path_and_query, &mut self.rng)
                }
                other => panic!("a prefetch is a Clerk page, not {other:?}"),
            });
            // And a sweep's other lookups beside its lookup; sometimes not.
            let lookups = match action {
                Action::Clerk { .. } if self.rng.f64() < 0.8 => {
                    run.poll_lookups_beside(UnixMillis(self.now))
                }
                _ => Vec::new(),
            };
            let beside: Vec<(String, Answer)> = lookups
                .into_iter()
                .map(|action| match action {
                    Action::Clerk { path_and_query } => {
                        let answer = self.clerk.answer(sent_at, &path_and_query, &mut self.rng);
                        (path_and_query, answer)
                    }
                    other => panic!("a lookup beside is a Clerk request, not {other:?}"),
                })
                .collect();
            // And the sweep's next rows page beside its lookups, read now.
            let rows = match action {
                Action::Clerk { .. } if self.rng.f64() < 0.8 => {
                    run.poll_rows_beside(UnixMillis(self.now))
                }
                _ => None,
            };
            let rows = rows.map(|action| match action {
                Action::ApiGet { path_and_query } => self.api.list(&path_and_query, &mut self.rng),
                other => panic!("rows beside are the main API's, not {other:?}"),
            });
            let answer = match action {
                Action::Finished => break,
                Action::WakeAt(t) => {
                    assert!(
                        t.as_millis() > self.now,
                        "WakeAt({t:?}) is not after now {}",
                        self.now
                    );
                    // What a poll without a request changed is redone after a restore.
                    self.wakes += 1;
                    self.now = t.as_millis();
                    continue;
                }
                Action::Clerk { path_and_query } => {
                    self.clerk.answer(sent_at, &path_and_query, &mut self.rng)
                }
                Action::ApiGet { path_and_query } => self.api.list(&path_and_query, &mut self.rng),
                Action::ApiBatch { body } => self.api.batch(&body, &self.clerk, &mut self.rng),
            };
            self.clerk.sent_together = None;
            // Persisted before the request goes out (the glue's order); the
            // simulation performs it first only to keep the code short.
            if chaos.p_restart > 0.0 {
                stored = run.to_json();
            }
            let latency = self.rng.i64(chaos.latency.clone());
            if self.rng.f64() < chaos.p_restart / 2.0 {
                // The process died with the request performed, its answer lost.
                self.now += latency;
                self.restarts += 1;
                self.clerk.answer_lost();
                run = Run::from_json(&stored).unwrap();
                continue;
            }
            // All answers handled as they come, each then persisted.
            let mut answers = vec![(latency, Some(answer), None, None, None)];
            if let Some(ahead) = ahead {
                answers.push((
                    self.rng.i64(chaos.latency.clone()),
                    None,
                    Some(ahead),
                    None,
                    None,
                ));
            }
            for lookup in beside {
                answers.push((
                    self.rng.i64(chaos.latency.clone()),
                    None,
                    None,
                    Some(lookup),
                    None,
                ));
            }
            if let Some(rows) = rows {
                answers.push((
                    self.rng.i64(chaos.latency.clone()),
                    None,
                    None,
                    None,
                    Some(rows),
                ));
            }
            answers.sort_by_key(|(at, _, _, _, _)| *at);
            for (at, answer, ahead, lookup, rows) in answers {
                self.now = self.now.max(sent_at + at);
                if let Some(answer) = answer {
                    run.handle(UnixMillis(self.now), answer);
                }
                if let Some(ahead) = ahead {
                    run.handle_prefetch(UnixMillis(self.now), ahead);
                }
                if let Some((path, answer)) = lookup {
                    run.handle_lookup_beside(UnixMillis(self.now), &path, answer);
                }
                if let Some(rows) = rows {
                    self.rows_read_ahead += 1;
                    run.handle_rows_beside(rows);
                }
                if chaos.p_restart > 0.0 {
                    stored = run.to_json();
                }
            }
            logs.extend(std::iter::from_fn(|| run.poll_log()));
        }
        while let Some((_, c)) = self.webhooks.pop_front() {
            self.api.apply(&c);
        }
        Ran { run, logs }
    }

    fn deliver_due_webhooks(&mut self) {
        while self.webhooks.front().is_some_and(|(at, _)| *at <= self.now) {
            let (_, c) = self.webhooks.pop_front().unwrap();
            self.api.apply(&c);
        }
    }

    fn send_webhook(&mut self, c: Command) {
        let at = self.now + self.rng.i64(0..=30_000);
        let pos = self.webhooks.partition_point(|(t, _)| *t <= at);
        self.webhooks.insert(pos, (at, c));
    }

    /// A change in Clerk while the run pages, and its webhook.
    pub fn mutate(&mut self) {
        let good: Vec<String> = self
            .clerk
            .users
            .iter()
            .filter(|u| !u.bad_time)
            .map(|u| u.id.clone())
            .collect();
        self.next_msg += 1;
        let msg = self.next_msg;
        match self.rng.u8(0..3) {
            0 if !good.is_empty() => {
                let id = &good[self.rng.usize(..good.len())];
                let name = format!("Renamed {msg}");
                let u = self.clerk.update(id, self.now, name).unwrap();
                let c = u.webhook(msg, self.now);
                self.send_webhook(c);
            }
            1 if !good.is_empty() => {
                let id = good[self.rng.usize(..good.len())].clone();
                self.clerk.delete(&id);
                let c = Command::delete(
                    Provenance {
                        operation_id: format!("msg_{msg}"),
                        event_type: "user.deleted".into(),
                        occurred_at: format_millis(self.now).unwrap(),
                        received_at: format_millis(self.now).unwrap(),
                    },
                    id,
                    None,
                );
                self.send_webhook(c);
            }
            _ => {
                self.next_user += 1;
                let u = SimUser::new(&format!("user_new{:05}", self.next_user), self.now);
                self.clerk.insert(u.clone());
                let c = u.webhook(msg, self.now);
                self.send_webhook(c);
            }
        }
    }

    /// No `limit` + 1 Clerk requests within any 10-second window.
    pub fn assert_rate_limit(&self, limit: u32) {
        let mut t = self.clerk.requests.clone();
        t.sort_unstable();
        let limit = limit as usize;
        for i in limit..t.len() {
            assert!(
                t[i] - t[i - limit] >= WINDOW,
                "{} Clerk requests within 10 s: {} .. {}",
                limit + 1,
                t[i - limit],
                t[i]
            );
        }
    }

    /// The table equals Clerk: every live, mappable Clerk user synced with
    /// its latest data; every other row with a Clerk id deleted; nothing
    /// deleted that Clerk has.
    pub fn assert_converged(&self) {
        assert!(
            self.clerk.violations.is_empty(),
            "{:?}",
            self.clerk.violations
        );
        assert!(self.api.violations.is_empty(), "{:?}", self.api.violations);
        for u in &self.clerk.users {
            let row = self.api.row(&u.id);
            if u.bad_time {
                assert!(
                    row.is_none_or(|r| !r.deleted),
                    "unmappable {} was deleted",
                    u.id
                );
                continue;
            }
            let row = row.unwrap_or_else(|| panic!("{} is missing from the table", u.id));
            assert!(!row.deleted, "{} is live in Clerk but deleted", u.id);
            assert_eq!(row.sync_status, "synced", "{}", u.id);
            assert_eq!(
                row.clerk_updated_at,
                format_millis(u.updated_at),
                "{}",
                u.id
            );
            assert_eq!(
                row.first_name.as_deref(),
                Some(u.first_name.as_str()),
                "{}",
                u.id
            );
            assert_eq!(row.email.as_deref(), Some(u.email.as_str()), "{}", u.id);
        }
        for r in &self.api.rows {
            if let Some(id) = &r.clerk_id {
                if !self.clerk.has(id) {
                    assert!(r.deleted, "{id} is not in Clerk but live in the table");
                }
            }
        }
    }
}
