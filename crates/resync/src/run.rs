//! [`Run`]: one re-sync run as a state machine that performs no I/O and
//! reads no clock. It is asked what to do ([`Run::poll`]) and told what
//! happened ([`Run::handle`]); `now` comes in with every call.
//!
//! A page is the unit of progress: a Clerk page (or a page of the main API's
//! rows), the Clerk lookups it needs, and one batch to the main API. The
//! cursor and the counters move only when the page is done, so a run
//! restored from its persisted state re-reads at most the page it was in,
//! and the main API sees the same operation ids again (duplicates only).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use clerk_sync_contract::time::format_millis;
use clerk_sync_contract::{BatchRequest, Command, CommandKind, Outcome, Provenance, UnixMillis};
use serde::{Deserialize, Serialize};

use crate::clerk_api::{
    self, list_path, lookup_path, parse_count, parse_ids, parse_users, BadResponse, Entry,
    LookupKey, MappedUser, Reject,
};
use crate::config::RunConfig;
use crate::main_api::{parse_batch, parse_rows, rows_path, Row, RowFilter};
use crate::pacing::{retry_after_ms, RateWindow, WINDOW_MS};
use crate::start::{is_clerk_id, RunId, Scope, MAX_CLERK_ID_LEN};
use crate::status::{
    Counters, ErrorCode, ErrorInfo, LogRecord, RejectedId, RunState, RunStatus, MAX_REJECTED_IDS,
};

/// The persisted layout's version; [`Run::from_json`] refuses any other.
pub const STATE_VERSION: u32 = 1;
/// Ids kept from the end of the pages done, newest first: if Clerk refuses
/// `starting_after` for the last one (that user was deleted meanwhile), the
/// page is asked again after the one before it.
pub const CURSOR_FALLBACKS: usize = 5;
/// The longest lookup path: longer lists of values are split.
pub const MAX_LOOKUP_PATH: usize = 8 * 1024;
/// What the main API's `event_type` says for every re-sync command.
pub const EVENT_TYPE: &str = "resync";

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET {CLERK_API_URL}{path_and_query}` with `Authorization: Bearer <CLERK_SECRET_KEY>`.
    /// A lookup's query may carry emails: never log it.
    Clerk { path_and_query: String },
    /// `GET {API_URL}{path_and_query}` with `Authorization: Bearer <API_SECRET>`.
    ApiGet { path_and_query: String },
    /// `POST {API_URL}/internal/clerk-sync/batch` with this body (a
    /// serialized `BatchRequest`) and `Authorization: Bearer <API_SECRET>`.
    ApiBatch { body: Vec<u8> },
    /// Nothing to do before then: set the alarm and come back.
    WakeAt(UnixMillis),
    /// The run stopped (completed, failed or cancelled).
    Finished,
}

/// What became of the request the last [`Action`] asked for.
pub use clerk_sync_contract::exchange::Answer;

/// The persisted state cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the run state is not readable")]
    Unreadable,
    #[error("the run state has another layout version")]
    Version,
}

/// Where the run is. Persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
enum Phase {
    /// `all`: read `/v1/users/count`.
    Count,
    /// `all`: page every user; `after` is the cursor, then its fallbacks
    /// (empty: the first page).
    Upsert {
        #[serde(default)]
        after: Vec<String>,
    },
    /// `all`: page the main API's live rows and delete those Clerk lacks.
    Sweep {
        #[serde(default)]
        after: Option<String>,
    },
    /// `users`: the ids from `next` on.
    Users {
        #[serde(default)]
        next: usize,
    },
    /// `failed`/`pending`: page the main API's rows with that status.
    Rows {
        #[serde(default)]
        after: Option<String>,
    },
    Done,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Upsert { .. } => "upsert",
            Self::Sweep { .. } => "sweep",
            Self::Users { .. } => "users",
            Self::Rows { .. } => "rows",
            Self::Done => "done",
        }
    }
}

/// The request the caller is performing. Not persisted: after a restart the
/// run asks again for whatever its phase and page need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    ClerkCount,
    ClerkPage,
    ClerkLookup,
    ApiRows,
    ApiBatch,
}

impl Request {
    fn is_clerk(self) -> bool {
        matches!(self, Self::ClerkCount | Self::ClerkPage | Self::ClerkLookup)
    }
}

#[derive(Debug, Clone)]
struct Lookup {
    key: LookupKey,
    values: Vec<String>,
}

/// A pending row's best key for a lookup.
#[derive(Debug, Clone)]
enum RowKey {
    Id(String),
    ExternalId(String),
    Email(String),
}

/// What a page does with its lookups' answers.
#[derive(Debug, Clone)]
enum Resolve {
    /// Nothing: the upserts came with the page.
    Nothing,
    /// Delete the rows (id, external id) whose id Clerk did not return.
    Sweep(Vec<(String, Option<String>)>),
    /// Upsert the ids Clerk returned; delete the others.
    Users(Vec<String>),
    /// Upsert the ids Clerk returned; count the others as `failed_unmatched`.
    Failed(Vec<String>),
    /// Upsert each user that matches a row; count rows nobody matches.
    Pending(Vec<RowKey>),
}

/// One command of the batch in flight, to read its result.
#[derive(Debug, Clone)]
struct Sent {
    operation_id: String,
    clerk_id: String,
    kind: CommandKind,
}

/// The page in progress. Not persisted. Its `Debug` shows counts only: it
/// holds users' emails and names.
#[derive(Clone)]
struct Work {
    phase: &'static str,
    /// The phase once this page is done.
    next: Phase,
    lookups: VecDeque<Lookup>,
    resolve: Resolve,
    /// Ids any lookup answer held, mappable or not.
    present: BTreeSet<String>,
    found: BTreeMap<String, MappedUser>,
    unmappable: BTreeMap<String, Reject>,
    /// Whether rejected users count (not in the sweep, which only asks "exists?").
    upserting: bool,
    upserts: Vec<MappedUser>,
    deletes: Vec<(String, Option<String>)>,
    sent: Vec<Sent>,
    body: Option<Vec<u8>>,
    resolved: bool,
    page: Counters,
    rejected: Vec<RejectedId>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("phase", &self.phase)
            .field("lookups", &self.lookups.len())
            .field("upserts", &self.upserts.len())
            .field("deletes", &self.deletes.len())
            .field("batch", &self.body.is_some())
            .finish_non_exhaustive()
    }
}

impl Work {
    fn new(phase: &'static str, next: Phase, resolve: Resolve, upserting: bool) -> Self {
        Self {
            phase,
            next,
            lookups: VecDeque::new(),
            resolve,
            present: BTreeSet::new(),
            found: BTreeMap::new(),
            unmappable: BTreeMap::new(),
            upserting,
            upserts: Vec::new(),
            deletes: Vec::new(),
            sent: Vec::new(),
            body: None,
            resolved: false,
            page: Counters::default(),
            rejected: Vec::new(),
        }
    }

    fn reject(&mut self, clerk_id: Option<&str>, reason: &str) {
        self.page.rejected += 1;
        if self.rejected.len() < MAX_REJECTED_IDS {
            self.rejected.push(RejectedId {
                clerk_id: clerk_id.map(|id| truncate(id, MAX_CLERK_ID_LEN).to_owned()),
                reason: reason.to_owned(),
            });
        }
    }

    /// Queues lookups of `values`, at most `size` and [`MAX_LOOKUP_PATH`]
    /// bytes each. Returns the values too long to look up at all.
    fn queue_lookups(&mut self, key: LookupKey, values: Vec<String>, size: usize) -> Vec<String> {
        let mut too_long = Vec::new();
        let mut chunk: Vec<String> = Vec::new();
        for value in values {
            if lookup_path(key, std::slice::from_ref(&value)).len() > MAX_LOOKUP_PATH {
                too_long.push(value);
                continue;
            }
            chunk.push(value);
            if chunk.len() > size || lookup_path(key, &chunk).len() > MAX_LOOKUP_PATH {
                let last = chunk.pop();
                self.lookups.push_back(Lookup {
                    key,
                    values: std::mem::take(&mut chunk),
                });
                chunk.extend(last);
            }
        }
        if !chunk.is_empty() {
            self.lookups.push_back(Lookup { key, values: chunk });
        }
        too_long
    }

    /// Takes one lookup answer.
    fn take_lookup(&mut self, key: LookupKey, asked: &[String], entries: Vec<Entry>) {
        for entry in entries {
            let Some(id) = entry.id.filter(|id| !id.is_empty()) else {
                if self.upserting {
                    self.page.clerk_users_seen += 1;
                    self.reject(None, Reject::MissingId.code());
                }
                continue;
            };
            if key == LookupKey::UserId && !asked.contains(&id) {
                continue;
            }
            if !self.present.insert(id.clone()) {
                continue;
            }
            match entry.user {
                Ok(user) => {
                    self.found.insert(id, user);
                }
                Err(reject) => {
                    self.unmappable.insert(id, reject);
                }
            }
        }
    }

    /// Takes one answer to a lookup by id that only asks which ids exist.
    fn take_ids(&mut self, asked: &[String], ids: impl Iterator<Item = String>) {
        for id in ids {
            if asked.contains(&id) {
                self.present.insert(id);
            }
        }
    }

    /// Turns the lookups' answers into upserts and deletes.
    fn resolve(&mut self) {
        if self.resolved {
            return;
        }
        self.resolved = true;
        if self.upserting {
            self.page.clerk_users_seen += (self.found.len() + self.unmappable.len()) as u64;
            let unmappable = std::mem::take(&mut self.unmappable);
            for (id, reject) in &unmappable {
                self.reject(Some(id), reject.code());
            }
        }
        match std::mem::replace(&mut self.resolve, Resolve::Nothing) {
            Resolve::Nothing => {}
            Resolve::Sweep(rows) => {
                for (id, external_id) in rows {
                    if !self.present.contains(&id) {
                        self.deletes.push((id, external_id));
                    }
                }
            }
            Resolve::Users(ids) => {
                for id in ids {
                    if let Some(user) = self.found.remove(&id) {
                        self.upserts.push(user);
                    } else if !self.present.contains(&id) {
                        self.deletes.push((id, None));
                    }
                }
            }
            Resolve::Failed(ids) => {
                for id in ids {
                    if let Some(user) = self.found.remove(&id) {
                        self.upserts.push(user);
                    } else if !self.present.contains(&id) {
                        self.page.failed_unmatched += 1;
                    }
                }
            }
            Resolve::Pending(rows) => {
                let mut matched: Vec<String> = Vec::new();
                for row in rows {
                    let hit = match &row {
                        RowKey::Id(id) => self.present.contains(id).then(|| id.clone()),
                        RowKey::ExternalId(x) => self
                            .found
                            .iter()
                            .find(|(_, u)| u.user.external_id.as_deref() == Some(x.as_str()))
                            .map(|(id, _)| id.clone()),
                        RowKey::Email(e) => self
                            .found
                            .iter()
                            .find(|(_, u)| has_email(u, e))
                            .map(|(id, _)| id.clone()),
                    };
                    match hit {
                        Some(id) => {
                            if !matched.contains(&id) {
                                matched.push(id);
                            }
                        }
                        None => self.page.pending_unmatched += 1,
                    }
                }
                for id in matched {
                    if let Some(user) = self.found.remove(&id) {
                        self.upserts.push(user);
                    }
                }
            }
        }
    }

    /// The batch of this page's commands, or `None` when there are none.
    /// `started` (the run's start) is the `occurred_at` of what has no time
    /// of its own, a delete above all: one operation id is always sent with
    /// the same command, whenever the page is redone.
    fn build_batch(&mut self, run_id: &RunId, started: &str, now: &str) -> Option<Vec<u8>> {
        let mut commands = Vec::with_capacity(self.upserts.len() + self.deletes.len());
        for MappedUser { user, record } in std::mem::take(&mut self.upserts) {
            let version = user
                .updated_at
                .map_or_else(|| "none".to_owned(), |ms| ms.to_string());
            let occurred_at = record
                .updated_at
                .clone()
                .or_else(|| record.created_at.clone())
                .unwrap_or_else(|| started.to_owned());
            let provenance = Provenance {
                operation_id: format!("resync_{run_id}_{}_{version}", user.id),
                event_type: EVENT_TYPE.to_owned(),
                occurred_at,
                received_at: now.to_owned(),
            };
            commands.push(Command::upsert(provenance, user.id, record));
        }
        for (id, external_id) in std::mem::take(&mut self.deletes) {
            let provenance = Provenance {
                operation_id: format!("resync_{run_id}_{id}_deleted"),
                event_type: EVENT_TYPE.to_owned(),
                occurred_at: started.to_owned(),
                received_at: now.to_owned(),
            };
            commands.push(Command::delete(provenance, id, external_id));
        }
        if commands.is_empty() {
            return None;
        }
        self.sent = commands
            .iter()
            .map(|c| Sent {
                operation_id: c.operation_id.clone(),
                clerk_id: c.clerk_id.clone(),
                kind: c.command,
            })
            .collect();
        Some(BatchRequest::new(commands).to_json())
    }
}

fn has_email(user: &MappedUser, email: &str) -> bool {
    user.user
        .email_addresses
        .iter()
        .flatten()
        .filter_map(|a| a.email_address.as_deref())
        .any(|a| a.eq_ignore_ascii_case(email))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A rejected command's code from the main API, kept only if it looks like one.
fn api_code(error: Option<&str>) -> &str {
    match error {
        Some(e)
            if (1..=64).contains(&e.len())
                && e.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            e
        }
        _ => "api_rejected",
    }
}

/// A page read ahead of its turn, beside the request in flight: a Clerk
/// page's users, or a sweep rows page's answer. Not persisted. Its `Debug`
/// shows the path only: what was read holds emails and names.
#[derive(Clone)]
struct ReadAhead<T> {
    path_and_query: String,
    read: T,
}

impl<T> ReadAhead<T> {
    fn is_for(slot: &Option<Self>, path_and_query: &str) -> bool {
        slot.as_ref()
            .is_some_and(|a| a.path_and_query == path_and_query)
    }

    /// What was read for `path_and_query`, when the run gets to it; a page
    /// read for another path is dropped (the run moved past it).
    fn take_for(slot: &mut Option<Self>, path_and_query: &str) -> Option<T> {
        slot.take()
            .filter(|a| a.path_and_query == path_and_query)
            .map(|a| a.read)
    }
}

impl<T> std::fmt::Debug for ReadAhead<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("path_and_query", &self.path_and_query)
            .finish_non_exhaustive()
    }
}

/// One re-sync run. Serialize it (or [`Run::to_json`]) to persist it; the
/// page in progress is not part of it and is redone after a restore.
///
/// The caller persists the run after every [`Run::poll`] that returned a
/// request (before performing it: the request's time is now in the rate
/// window) and after every [`Run::handle`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    version: u32,
    run_id: RunId,
    scope: Scope,
    config: RunConfig,
    state: RunState,
    phase: Phase,
    started_at: i64,
    #[serde(default)]
    finished_at: Option<i64>,
    #[serde(default)]
    last_error: Option<ErrorInfo>,
    #[serde(default)]
    counters: Counters,
    #[serde(default)]
    rejected_ids: Vec<RejectedId>,
    #[serde(default)]
    pages: u64,
    /// When the Clerk requests of the last 10 s were issued.
    #[serde(default)]
    clerk_sent: RateWindow,
    /// No request before this (Retry-After, backoff).
    #[serde(default)]
    not_before: i64,
    /// Failed tries of the current request.
    #[serde(default)]
    attempts: u32,
    /// 429s in a row.
    #[serde(default)]
    rate_limited: u32,
    #[serde(skip)]
    work: Option<Work>,
    #[serde(skip)]
    in_flight: Option<Request>,
    /// The path of the next page, asked for beside the batch in flight.
    #[serde(skip)]
    prefetch_in_flight: Option<String>,
    /// That page's users, read: taken when the run gets to it.
    #[serde(skip)]
    prefetched: Option<ReadAhead<Vec<Entry>>>,
    /// The paths of the sweep's lookups asked for beside the one in flight.
    #[serde(skip)]
    lookups_beside: Vec<String>,
    /// The path of the sweep's next rows page, asked for beside a lookup.
    #[serde(skip)]
    rows_in_flight: Option<String>,
    /// That page, read (the main API's answer): taken when the run gets to it.
    #[serde(skip)]
    rows_ahead: Option<ReadAhead<Vec<u8>>>,
    #[serde(skip)]
    logs: VecDeque<LogRecord>,
}

impl Run {
    pub fn new(run_id: RunId, scope: Scope, config: RunConfig, now: UnixMillis) -> Self {
        let (phase, total) = match &scope {
            Scope::All => (Phase::Count, None),
            Scope::Users { clerk_ids } => (Phase::Users { next: 0 }, Some(clerk_ids.len() as u64)),
            Scope::Failed | Scope::Pending => (Phase::Rows { after: None }, Some(0)),
        };
        Self {
            version: STATE_VERSION,
            run_id,
            scope,
            config,
            state: RunState::Running,
            phase,
            started_at: now.as_millis(),
            finished_at: None,
            last_error: None,
            counters: Counters {
                clerk_users_total: total,
                ..Counters::default()
            },
            rejected_ids: Vec::new(),
            pages: 0,
            clerk_sent: RateWindow::default(),
            not_before: i64::MIN,
            attempts: 0,
            rate_limited: 0,
            work: None,
            in_flight: None,
            prefetch_in_flight: None,
            prefetched: None,
            lookups_beside: Vec::new(),
            rows_in_flight: None,
            rows_ahead: None,
            logs: VecDeque::new(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a run always serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, StateError> {
        let run: Self = serde_json::from_slice(bytes).map_err(|_| StateError::Unreadable)?;
        if run.version != STATE_VERSION {
            return Err(StateError::Version);
        }
        Ok(run)
    }

    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn state(&self) -> RunState {
        self.state
    }

    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The next log record (a page done, or the end), oldest first.
    pub fn poll_log(&mut self) -> Option<LogRecord> {
        self.logs.pop_front()
    }

    pub fn status(&self) -> RunStatus {
        RunStatus {
            run_id: self.run_id.to_string(),
            scope: self.scope.name(),
            state: self.state,
            phase: self.phase.name(),
            started_at: format_millis(self.started_at),
            finished_at: self.finished_at.and_then(format_millis),
            last_error: self.last_error.clone(),
            counters: self.counters.clone(),
            rejected_ids: self.rejected_ids.clone(),
            pages: self.pages,
            waiting_until: (self.is_running() && self.not_before > self.started_at)
                .then(|| format_millis(self.not_before))
                .flatten(),
        }
    }

    /// Stops the run. False when it had already stopped.
    pub fn cancel(&mut self, now: UnixMillis) -> bool {
        if !self.is_running() {
            return false;
        }
        self.finish(now, RunState::Cancelled, None);
        true
    }

    /// What to do next. A request asked for earlier and never answered is
    /// forgotten: the same request comes back (and counts again against the
    /// rate limit, since it will be sent again).
    pub fn poll(&mut self, now: UnixMillis) -> Action {
        self.in_flight = None;
        self.prefetch_in_flight = None;
        self.lookups_beside.clear();
        self.rows_in_flight = None;
        // Each turn without a request finishes a page or a phase, so this
        // ends; the bound only guards against a state that would not.
        for _ in 0..10_000 {
            if !self.is_running() {
                return Action::Finished;
            }
            let Some((request, action)) = self.next_request(now) else {
                continue;
            };
            if now.as_millis() < self.not_before {
                return Action::WakeAt(UnixMillis(self.not_before));
            }
            if request.is_clerk() {
                let slot = self.clerk_sent.next_slot(now, self.config.rate_limit());
                if slot > now {
                    return Action::WakeAt(slot);
                }
                self.clerk_sent.record(now);
                self.counters.clerk_requests = self.counters.clerk_requests.saturating_add(1);
            }
            self.in_flight = Some(request);
            return action;
        }
        Action::WakeAt(now.plus_millis(WINDOW_MS))
    }

    /// A request the caller may perform beside the one [`Run::poll`] just
    /// asked for, concurrently: while an upsert page's batch is in flight,
    /// the next Clerk page. `None` when there is none, or when the rate
    /// window or a wait has no room for it now (the page is then asked for
    /// in its turn). Persist the run after this too (the request is in the
    /// rate window now), and give its answer to [`Run::handle_prefetch`].
    ///
    /// Nothing of the next page counts until its own batch is answered, so
    /// the cursor and the counters move exactly as without it; what a
    /// restart loses is only the page read ahead, asked for again.
    pub fn poll_prefetch(&mut self, now: UnixMillis) -> Option<Action> {
        if !self.is_running()
            || self.in_flight != Some(Request::ApiBatch)
            || self.prefetch_in_flight.is_some()
            || now.as_millis() < self.not_before
        {
            return None;
        }
        let (Phase::Upsert { .. }, Some(work)) = (&self.phase, &self.work) else {
            return None;
        };
        let Phase::Upsert { after } = &work.next else {
            return None;
        };
        let path_and_query = list_path(self.config.page_size(), after.first().map(String::as_str));
        if ReadAhead::is_for(&self.prefetched, &path_and_query) {
            return None;
        }
        if self.clerk_sent.next_slot(now, self.config.rate_limit()) > now {
            return None;
        }
        self.clerk_sent.record(now);
        self.counters.clerk_requests = self.counters.clerk_requests.saturating_add(1);
        self.prefetch_in_flight = Some(path_and_query.clone());
        Some(Action::Clerk { path_and_query })
    }

    /// Tells the run what became of the request [`Run::poll_prefetch`] asked
    /// for. A page read is kept for its turn; a 429 makes the run wait as
    /// any 429 does (never sooner than Clerk asked); any other failure is
    /// forgotten (a `Retry-After` beside it still holds), and the page is
    /// asked for again in its turn, where its errors count.
    pub fn handle_prefetch(&mut self, now: UnixMillis, answer: Answer) {
        let Some(path_and_query) = self.prefetch_in_flight.take() else {
            return;
        };
        let Some(body) = self.answer_beside(now, answer) else {
            return;
        };
        if let Ok(entries) = parse_users(&body, self.config.page_size() as usize) {
            self.prefetched = Some(ReadAhead {
                path_and_query,
                read: entries,
            });
        }
    }

    /// An answer to a request made beside the one in flight: its body when
    /// it is a 2xx and the run still runs; a 429 makes the run wait as any
    /// 429 does, any other failure only keeps a `Retry-After` beside it.
    fn answer_beside(&mut self, now: UnixMillis, answer: Answer) -> Option<Vec<u8>> {
        if !self.is_running() {
            return None;
        }
        let Answer::Status {
            status,
            retry_after,
            body,
        } = answer
        else {
            return None;
        };
        match status {
            200..=299 => Some(body),
            429 => {
                self.rate_limited(now, retry_after.as_deref());
                None
            }
            _ => {
                self.wait_at_least(now, retry_after.as_deref());
                None
            }
        }
    }

    /// Requests the caller may perform beside the one [`Run::poll`] just
    /// asked for, concurrently: while a sweep page's lookup is in flight,
    /// the page's other lookups, as many as the rate window has room for
    /// now (none while a wait holds). Persist the run after this too (the
    /// requests are in the rate window now), and give each answer, with its
    /// path, to [`Run::handle_lookup_beside`].
    ///
    /// A sweep lookup only asks which ids exist and changes nothing but the
    /// page in progress, so answers taken out of order end the page as in
    /// order; what a restart loses is only that page's lookups, asked again.
    pub fn poll_lookups_beside(&mut self, now: UnixMillis) -> Vec<Action> {
        let mut beside = Vec::new();
        if !self.is_running()
            || self.in_flight != Some(Request::ClerkLookup)
            || now.as_millis() < self.not_before
        {
            return beside;
        }
        let (Phase::Sweep { .. }, Some(work)) = (&self.phase, &self.work) else {
            return beside;
        };
        if !matches!(work.resolve, Resolve::Sweep(_)) {
            return beside;
        }
        // The first is the one in flight.
        for lookup in work.lookups.iter().skip(1) {
            let path_and_query = lookup_path(lookup.key, &lookup.values);
            if self.lookups_beside.contains(&path_and_query) {
                continue;
            }
            if self.clerk_sent.next_slot(now, self.config.rate_limit()) > now {
                break;
            }
            self.clerk_sent.record(now);
            self.counters.clerk_requests = self.counters.clerk_requests.saturating_add(1);
            self.lookups_beside.push(path_and_query.clone());
            beside.push(Action::Clerk { path_and_query });
        }
        beside
    }

    /// Tells the run what became of a lookup [`Run::poll_lookups_beside`]
    /// asked for at `path_and_query`. Its ids are taken for the page; a 429
    /// makes the run wait as any 429 does; any other failure is forgotten,
    /// and the lookup is asked for again in its turn, where its errors count.
    pub fn handle_lookup_beside(&mut self, now: UnixMillis, path_and_query: &str, answer: Answer) {
        let Some(at) = self.lookups_beside.iter().position(|p| p == path_and_query) else {
            return;
        };
        self.lookups_beside.swap_remove(at);
        let Some(body) = self.answer_beside(now, answer) else {
            return;
        };
        let Some(work) = self.work.as_mut() else {
            return;
        };
        // Never the one in flight: its answer goes to `handle`.
        let Some(at) = work
            .lookups
            .iter()
            .skip(1)
            .position(|l| lookup_path(l.key, &l.values) == path_and_query)
        else {
            return;
        };
        let limit = work.lookups[at + 1].values.len().max(1);
        let Ok(ids) = parse_ids(&body, limit) else {
            return;
        };
        if ids.iter().any(Option::is_none) {
            return;
        }
        if let Some(lookup) = work.lookups.remove(at + 1) {
            work.take_ids(&lookup.values, ids.into_iter().flatten());
        }
    }

    /// A request the caller may perform beside the lookup [`Run::poll`]
    /// just asked for, concurrently: while a sweep page's lookups are in
    /// flight, the main API's next rows page. `None` when there is none (the
    /// last page, or another phase), or while a wait holds. Give its answer
    /// to [`Run::handle_rows_beside`].
    ///
    /// The sweep reads rows only to ask Clerk which of their ids still
    /// exist, so a page read a little early ends as one read in its turn: a
    /// row deleted meanwhile is deleted again (a repeat the main API takes),
    /// a row created meanwhile is a live Clerk user's. Nothing counts until
    /// the page's turn; a restart reads it again.
    pub fn poll_rows_beside(&mut self, now: UnixMillis) -> Option<Action> {
        if !self.is_running()
            || self.in_flight != Some(Request::ClerkLookup)
            || self.rows_in_flight.is_some()
            || now.as_millis() < self.not_before
        {
            return None;
        }
        let (Phase::Sweep { .. }, Some(work)) = (&self.phase, &self.work) else {
            return None;
        };
        let Phase::Sweep { after: Some(after) } = &work.next else {
            return None;
        };
        let path_and_query = rows_path(RowFilter::Live, Some(after), self.config.rows_limit());
        if ReadAhead::is_for(&self.rows_ahead, &path_and_query) {
            return None;
        }
        self.rows_in_flight = Some(path_and_query.clone());
        Some(Action::ApiGet { path_and_query })
    }

    /// Tells the run what became of the request [`Run::poll_rows_beside`]
    /// asked for. A 2xx is kept for its turn; anything else is forgotten,
    /// and the page is asked for again in its turn, where its errors count.
    pub fn handle_rows_beside(&mut self, answer: Answer) {
        let Some(path_and_query) = self.rows_in_flight.take() else {
            return;
        };
        if !self.is_running() {
            return;
        }
        if let Answer::Status {
            status: 200..=299,
            body,
            ..
        } = answer
        {
            self.rows_ahead = Some(ReadAhead {
                path_and_query,
                read: body,
            });
        }
    }

    /// The request the page or phase needs, or `None` after a step that
    /// needed none (the caller asks again).
    fn next_request(&mut self, now: UnixMillis) -> Option<(Request, Action)> {
        if let Some(work) = &self.work {
            if let Some(lookup) = work.lookups.front() {
                let path_and_query = lookup_path(lookup.key, &lookup.values);
                return Some((Request::ClerkLookup, Action::Clerk { path_and_query }));
            }
            if let Some(body) = &work.body {
                let body = body.clone();
                return Some((Request::ApiBatch, Action::ApiBatch { body }));
            }
            self.advance_work(now);
            return None;
        }
        let rows_limit = self.config.rows_limit();
        match &self.phase {
            Phase::Count => Some((
                Request::ClerkCount,
                Action::Clerk {
                    path_and_query: clerk_api::COUNT_PATH.to_owned(),
                },
            )),
            Phase::Upsert { after } => {
                let path_and_query =
                    list_path(self.config.page_size(), after.first().map(String::as_str));
                if let Some(entries) = ReadAhead::take_for(&mut self.prefetched, &path_and_query) {
                    // As if asked and answered now: the request was counted when sent.
                    self.rate_limited = 0;
                    match self.take_page(now, entries) {
                        Ok(()) => self.attempts = 0,
                        Err(BadResponse(message)) => {
                            self.retry(now, ErrorCode::ClerkBadResponse, message.to_owned())
                        }
                    }
                    return None;
                }
                Some((Request::ClerkPage, Action::Clerk { path_and_query }))
            }
            Phase::Sweep { after } => {
                let path_and_query = rows_path(RowFilter::Live, after.as_deref(), rows_limit);
                if let Some(body) = ReadAhead::take_for(&mut self.rows_ahead, &path_and_query) {
                    // As if asked and answered now.
                    match self.on_rows(now, &body) {
                        Ok(()) => self.attempts = 0,
                        Err(BadResponse(message)) => {
                            self.retry(now, ErrorCode::ApiBadResponse, message.to_owned())
                        }
                    }
                    return None;
                }
                Some((Request::ApiRows, Action::ApiGet { path_and_query }))
            }
            Phase::Rows { after } => {
                let path_and_query = rows_path(self.row_filter(), after.as_deref(), rows_limit);
                Some((Request::ApiRows, Action::ApiGet { path_and_query }))
            }
            Phase::Users { next } => {
                let next = *next;
                self.start_users_page(now, next);
                None
            }
            Phase::Done => {
                self.finish(now, RunState::Completed, None);
                None
            }
        }
    }

    fn row_filter(&self) -> RowFilter {
        match self.scope {
            Scope::Pending => RowFilter::Pending,
            _ => RowFilter::Failed,
        }
    }

    /// Tells the run what became of the request the last `poll` asked for.
    /// An answer when none was asked for (after a restore, a cancel, or a
    /// second answer) changes nothing.
    pub fn handle(&mut self, now: UnixMillis, answer: Answer) {
        let Some(request) = self.in_flight.take() else {
            return;
        };
        if !self.is_running() {
            return;
        }
        let (status, retry_after, body) = match answer {
            Answer::Status {
                status,
                retry_after,
                body,
            } => (status, retry_after, body),
            Answer::Unreachable | Answer::TimedOut => {
                let (code, who) = if request.is_clerk() {
                    (ErrorCode::ClerkUnavailable, "clerk")
                } else {
                    (ErrorCode::ApiUnavailable, "the main api")
                };
                let what = if answer == Answer::TimedOut {
                    "timed out"
                } else {
                    "is unreachable"
                };
                return self.retry(now, code, format!("{who} {what}"));
            }
        };
        if request.is_clerk() {
            self.handle_clerk(now, request, status, retry_after.as_deref(), &body);
        } else {
            self.handle_api(now, request, status, retry_after.as_deref(), &body);
        }
    }

    fn handle_clerk(
        &mut self,
        now: UnixMillis,
        request: Request,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) {
        let said = || format!("clerk answered {status}");
        match status {
            200..=299 => {}
            429 => return self.rate_limited(now, retry_after),
            401 | 403 => return self.fail(now, ErrorCode::ClerkUnauthorized, said()),
            408 | 500..=599 => {
                self.retry(now, ErrorCode::ClerkUnavailable, said());
                return self.wait_at_least(now, retry_after);
            }
            400..=499 => return self.clerk_refused(now, request, said()),
            _ => return self.retry(now, ErrorCode::ClerkBadResponse, said()),
        }
        self.rate_limited = 0;
        let read = match request {
            Request::ClerkCount => self.on_count(body),
            Request::ClerkPage => self.on_page(now, body),
            Request::ClerkLookup => self.on_lookup(now, body),
            Request::ApiRows | Request::ApiBatch => Ok(()),
        };
        match read {
            Ok(()) => self.attempts = 0,
            Err(BadResponse(message)) => {
                self.retry(now, ErrorCode::ClerkBadResponse, message.to_owned())
            }
        }
    }

    fn handle_api(
        &mut self,
        now: UnixMillis,
        request: Request,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
    ) {
        let said = || format!("the main api answered {status}");
        match status {
            200..=299 => {}
            401 | 403 => return self.fail(now, ErrorCode::ApiUnauthorized, said()),
            408 | 429 | 500..=599 => {
                self.retry(now, ErrorCode::ApiUnavailable, said());
                return self.wait_at_least(now, retry_after);
            }
            400..=499 if request == Request::ApiBatch => {
                return self.fail(now, ErrorCode::ApiRejectedBatch, said())
            }
            400..=499 => return self.fail(now, ErrorCode::ApiRejectedRequest, said()),
            _ => return self.retry(now, ErrorCode::ApiBadResponse, said()),
        }
        let read = match request {
            Request::ApiRows => self.on_rows(now, body),
            Request::ApiBatch => self.on_batch(now, body),
            _ => Ok(()),
        };
        match read {
            Ok(()) => self.attempts = 0,
            Err(BadResponse(message)) => {
                self.retry(now, ErrorCode::ApiBadResponse, message.to_owned())
            }
        }
    }

    /// A failed try: wait and try the same request again, or give up.
    fn retry(&mut self, now: UnixMillis, code: ErrorCode, message: String) {
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts >= self.config.max_attempts() {
            return self.fail(now, code, message);
        }
        self.last_error = Some(ErrorInfo { code, message });
        let wait = self.config.backoff_ms(self.attempts);
        self.not_before = self.not_before.max(now.plus_millis(wait).as_millis());
    }

    /// A `Retry-After` beside a 5xx (or the main API's 429) lengthens the
    /// backoff, up to the bound; it never fails the run.
    fn wait_at_least(&mut self, now: UnixMillis, retry_after: Option<&str>) {
        if let Some(wait) = retry_after_ms(retry_after, now) {
            let wait = wait.min(self.config.max_retry_after_ms());
            self.not_before = self.not_before.max(now.plus_millis(wait).as_millis());
        }
    }

    /// A 429 from Clerk: wait what it asks (a full window if it does not
    /// say), never less; give up past the bound.
    fn rate_limited(&mut self, now: UnixMillis, retry_after: Option<&str>) {
        self.rate_limited = self.rate_limited.saturating_add(1);
        if self.rate_limited >= self.config.max_rate_limited() {
            let message = format!("clerk answered 429 {} times in a row", self.rate_limited);
            return self.fail(now, ErrorCode::ClerkRateLimited, message);
        }
        let wait = retry_after_ms(retry_after, now).unwrap_or(WINDOW_MS);
        if wait > self.config.max_retry_after_ms() {
            let message = "clerk asked to retry after longer than the bound".to_owned();
            return self.fail(now, ErrorCode::ClerkRetryAfterTooLong, message);
        }
        self.last_error = Some(ErrorInfo {
            code: ErrorCode::ClerkRateLimited,
            message: "clerk answered 429".to_owned(),
        });
        self.not_before = self.not_before.max(now.plus_millis(wait).as_millis());
    }

    /// Another 4xx from Clerk. For a page, the cursor's user may have been
    /// deleted since: ask again after the one before it, while there is one.
    ///
    /// A lookup by external id or email carries values from the main API's
    /// rows that Clerk may refuse as malformed: those rows stay unmatched
    /// and the page goes on. A lookup by id never deletes on a refusal: the
    /// run fails.
    fn clerk_refused(&mut self, now: UnixMillis, request: Request, message: String) {
        let code = ErrorCode::ClerkRejectedRequest;
        if let (Request::ClerkPage, Phase::Upsert { after }) = (request, &mut self.phase) {
            if after.len() > 1 {
                after.remove(0);
                let message = format!("{message}; paging after an earlier user");
                self.last_error = Some(ErrorInfo { code, message });
                return;
            }
        }
        if let (Request::ClerkLookup, Some(work)) = (request, self.work.as_mut()) {
            if work
                .lookups
                .front()
                .is_some_and(|l| l.key != LookupKey::UserId)
            {
                work.lookups.pop_front();
                let message = format!("{message}; those rows are left unmatched");
                self.last_error = Some(ErrorInfo { code, message });
                self.attempts = 0;
                return self.advance_work(now);
            }
        }
        self.fail(now, code, message);
    }

    fn on_count(&mut self, body: &[u8]) -> Result<(), BadResponse> {
        let total = parse_count(body)?;
        self.counters.clerk_users_total = Some(total);
        if self.phase == Phase::Count {
            self.phase = Phase::Upsert { after: Vec::new() };
        }
        Ok(())
    }

    fn on_page(&mut self, now: UnixMillis, body: &[u8]) -> Result<(), BadResponse> {
        if !matches!(self.phase, Phase::Upsert { .. }) {
            return Ok(());
        }
        let entries = parse_users(body, self.config.page_size() as usize)?;
        self.take_page(now, entries)
    }

    /// A page of users read (just now, or fetched ahead): its work, and the
    /// phase after it.
    fn take_page(&mut self, now: UnixMillis, entries: Vec<Entry>) -> Result<(), BadResponse> {
        let Phase::Upsert { after: before } = &self.phase else {
            return Ok(());
        };
        let limit = self.config.page_size() as usize;
        let next = if entries.len() < limit {
            Phase::Sweep { after: None }
        } else {
            let mut after: Vec<String> = entries
                .iter()
                .rev()
                .filter_map(|e| e.id.clone())
                .filter(|id| !id.is_empty() && id.len() <= MAX_CLERK_ID_LEN)
                .take(CURSOR_FALLBACKS)
                .collect();
            if after.is_empty() {
                return Err(BadResponse(
                    "clerk answered a full page without a usable id",
                ));
            }
            // This page's last ids first, then those of the pages before.
            for id in before {
                if !after.contains(id) {
                    after.push(id.clone());
                }
            }
            after.truncate(CURSOR_FALLBACKS);
            Phase::Upsert { after }
        };
        let mut work = Work::new("upsert", next, Resolve::Nothing, true);
        let mut ids = HashSet::new();
        for entry in entries {
            work.page.clerk_users_seen += 1;
            match entry.user {
                Ok(user) => {
                    if ids.insert(user.user.id.clone()) {
                        work.upserts.push(user);
                    }
                }
                Err(reject) => work.reject(entry.id.as_deref(), reject.code()),
            }
        }
        work.resolved = true;
        self.work = Some(work);
        self.advance_work(now);
        Ok(())
    }

    fn on_lookup(&mut self, now: UnixMillis, body: &[u8]) -> Result<(), BadResponse> {
        let Some(work) = self.work.as_mut() else {
            return Ok(());
        };
        let Some(lookup) = work.lookups.front() else {
            return Ok(());
        };
        let limit = lookup.values.len().max(1);
        if matches!(work.resolve, Resolve::Sweep(_)) {
            // The sweep asks only which ids exist: nothing else is read.
            let ids = parse_ids(body, limit)?;
            if ids.iter().any(Option::is_none) {
                return Err(BadResponse(
                    "clerk answered a lookup with a user without an id",
                ));
            }
            let Some(lookup) = work.lookups.pop_front() else {
                return Ok(());
            };
            work.take_ids(&lookup.values, ids.into_iter().flatten());
            self.advance_work(now);
            return Ok(());
        }
        let entries = parse_users(body, limit)?;
        // "Not among the ids returned" deletes a row: an answer whose users
        // cannot all be named says nothing about which ids are missing.
        if lookup.key == LookupKey::UserId && entries.iter().any(|e| e.id.is_none()) {
            return Err(BadResponse(
                "clerk answered a lookup with a user without an id",
            ));
        }
        let Some(lookup) = work.lookups.pop_front() else {
            return Ok(());
        };
        work.take_lookup(lookup.key, &lookup.values, entries);
        self.advance_work(now);
        Ok(())
    }

    fn on_rows(&mut self, now: UnixMillis, body: &[u8]) -> Result<(), BadResponse> {
        let (after, sweep) = match &self.phase {
            Phase::Sweep { after } => (after.clone(), true),
            Phase::Rows { after } => (after.clone(), false),
            _ => return Ok(()),
        };
        let limit = self.config.rows_limit() as usize;
        let size = self.config.lookup_size() as usize;
        let page = parse_rows(body, limit, after.as_deref())?;
        let next = match (page.next_after, sweep) {
            (None, _) => Phase::Done,
            (Some(after), true) => Phase::Sweep { after: Some(after) },
            (Some(after), false) => Phase::Rows { after: Some(after) },
        };
        let work = if sweep {
            sweep_work(next, page.users, size)
        } else if self.scope == Scope::Pending {
            pending_work(next, page.users, size)
        } else {
            failed_work(next, page.users, size)
        };
        self.work = Some(work);
        self.advance_work(now);
        Ok(())
    }

    fn on_batch(&mut self, now: UnixMillis, body: &[u8]) -> Result<(), BadResponse> {
        let Some(work) = self.work.as_mut() else {
            return Ok(());
        };
        let ids: Vec<String> = work.sent.iter().map(|s| s.operation_id.clone()).collect();
        let results = parse_batch(body, &ids)?;
        let sent = std::mem::take(&mut work.sent);
        for (result, sent) in results.iter().zip(&sent) {
            match sent.kind {
                CommandKind::UpsertUser => work.page.upserts_sent += 1,
                CommandKind::DeleteUser => work.page.deletes_sent += 1,
            }
            match result.outcome {
                Outcome::Applied => work.page.applied += 1,
                Outcome::Duplicate => work.page.duplicates += 1,
                Outcome::Stale => work.page.stale += 1,
                Outcome::IgnoredDeleted => work.page.ignored_deleted += 1,
                Outcome::Rejected => {
                    work.reject(Some(&sent.clerk_id), api_code(result.error.as_deref()))
                }
            }
        }
        work.body = None;
        self.commit(now);
        Ok(())
    }

    /// `users`: the next chunk of the given ids, looked up by id.
    fn start_users_page(&mut self, now: UnixMillis, next: usize) {
        let size = self.config.lookup_size() as usize;
        let ids = match &self.scope {
            Scope::Users { clerk_ids } => clerk_ids.as_slice(),
            _ => &[],
        };
        let start = next.min(ids.len());
        let end = start.saturating_add(size).min(ids.len());
        let chunk = ids[start..end].to_vec();
        let next = if end >= ids.len() {
            Phase::Done
        } else {
            Phase::Users { next: end }
        };
        let mut usable = Vec::new();
        let mut work = Work::new("users", next, Resolve::Nothing, true);
        for id in chunk {
            if is_clerk_id(&id) {
                if !usable.contains(&id) {
                    usable.push(id);
                }
            } else {
                work.reject(Some(&id), "unusable_id");
            }
        }
        work.queue_lookups(LookupKey::UserId, usable.clone(), size);
        work.resolve = Resolve::Users(usable);
        self.work = Some(work);
        self.advance_work(now);
    }

    /// Once a page's lookups are answered: build its batch, or finish the
    /// page when there is nothing to send.
    fn advance_work(&mut self, now: UnixMillis) {
        let Some(work) = self.work.as_mut() else {
            return;
        };
        if !work.lookups.is_empty() || work.body.is_some() {
            return;
        }
        let Some(now_text) = now.to_rfc3339() else {
            let message = "the clock is out of range".to_owned();
            return self.fail(now, ErrorCode::ClockOutOfRange, message);
        };
        let started = format_millis(self.started_at).unwrap_or_else(|| now_text.clone());
        work.resolve();
        match work.build_batch(&self.run_id, &started, &now_text) {
            Some(body) => work.body = Some(body),
            None => self.commit(now),
        }
    }

    /// The page is done: its counts, its cursor, its log line.
    fn commit(&mut self, now: UnixMillis) {
        let Some(work) = self.work.take() else {
            return;
        };
        self.counters.absorb(&work.page);
        for r in work.rejected {
            if self.rejected_ids.len() >= MAX_REJECTED_IDS {
                break;
            }
            self.rejected_ids.push(r);
        }
        self.pages = self.pages.saturating_add(1);
        self.phase = work.next;
        self.logs.push_back(LogRecord {
            level: "info",
            event: "resync_page",
            run_id: self.run_id.to_string(),
            scope: self.scope.name(),
            state: self.state,
            phase: work.phase,
            page: self.pages,
            page_users: work.page.clerk_users_seen,
            page_upserts: work.page.upserts_sent,
            page_deletes: work.page.deletes_sent,
            page_rejected: work.page.rejected,
            counters: self.counters.clone(),
            duration_ms: now.as_millis().saturating_sub(self.started_at),
            error: None,
        });
        if self.phase == Phase::Done {
            self.finish(now, RunState::Completed, None);
        }
    }

    fn fail(&mut self, now: UnixMillis, code: ErrorCode, message: String) {
        self.finish(now, RunState::Failed, Some(ErrorInfo { code, message }));
    }

    fn finish(&mut self, now: UnixMillis, state: RunState, error: Option<ErrorInfo>) {
        self.state = state;
        self.finished_at = Some(now.as_millis());
        if state == RunState::Completed {
            self.phase = Phase::Done;
        }
        let code = error.as_ref().map(|e| e.code);
        if error.is_some() {
            self.last_error = error;
        }
        self.work = None;
        self.in_flight = None;
        self.prefetch_in_flight = None;
        self.prefetched = None;
        self.lookups_beside.clear();
        self.rows_in_flight = None;
        self.rows_ahead = None;
        self.logs.push_back(LogRecord {
            level: match state {
                RunState::Failed => "error",
                RunState::Cancelled => "warn",
                _ => "info",
            },
            event: "resync_end",
            run_id: self.run_id.to_string(),
            scope: self.scope.name(),
            state,
            phase: self.phase.name(),
            page: self.pages,
            page_users: 0,
            page_upserts: 0,
            page_deletes: 0,
            page_rejected: 0,
            counters: self.counters.clone(),
            duration_ms: now.as_millis().saturating_sub(self.started_at),
            error: code,
        });
    }
}

/// The sweep: look the live rows up by id; delete those Clerk lacks.
fn sweep_work(next: Phase, rows: Vec<Row>, size: usize) -> Work {
    let mut work = Work::new("sweep", next, Resolve::Nothing, false);
    let mut live: Vec<(String, Option<String>)> = Vec::new();
    for row in rows {
        let Some(id) = row.clerk_id.filter(|_| !row.deleted) else {
            continue;
        };
        if !is_clerk_id(&id) {
            // Never delete what an unambiguous lookup has not shown missing.
            work.reject(Some(&id), "unusable_id");
        } else if !live.iter().any(|(known, _)| *known == id) {
            live.push((id, row.external_id));
        }
    }
    let ids = live.iter().map(|(id, _)| id.clone()).collect();
    work.queue_lookups(LookupKey::UserId, ids, size);
    work.resolve = Resolve::Sweep(live);
    work
}

/// `failed` rows: re-read each by id; upsert those Clerk has.
fn failed_work(next: Phase, rows: Vec<Row>, size: usize) -> Work {
    let mut work = Work::new("rows", next, Resolve::Nothing, true);
    work.page.clerk_users_total = Some(rows.len() as u64);
    let mut ids: Vec<String> = Vec::new();
    for row in rows {
        match row.clerk_id {
            Some(id) if is_clerk_id(&id) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(id) => work.reject(Some(&id), "unusable_id"),
            None => work.page.failed_unmatched += 1,
        }
    }
    work.queue_lookups(LookupKey::UserId, ids.clone(), size);
    work.resolve = Resolve::Failed(ids);
    work
}

/// `pending` rows: by Clerk id when the row has one, else by external id,
/// else by email; a row with none of them is unmatched.
fn pending_work(next: Phase, rows: Vec<Row>, size: usize) -> Work {
    let mut work = Work::new("rows", next, Resolve::Nothing, true);
    work.page.clerk_users_total = Some(rows.len() as u64);
    let mut keys = Vec::new();
    let (mut by_id, mut by_external, mut by_email) = (Vec::new(), Vec::new(), Vec::new());
    let add = |list: &mut Vec<String>, v: &str| {
        if !list.iter().any(|known| known == v) {
            list.push(v.to_owned());
        }
    };
    for row in rows {
        let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
        let key = if let Some(id) = row.clerk_id.filter(|id| is_clerk_id(id)) {
            add(&mut by_id, &id);
            RowKey::Id(id)
        } else if let Some(x) = nonempty(row.external_id) {
            add(&mut by_external, &x);
            RowKey::ExternalId(x)
        } else if let Some(e) = nonempty(row.email) {
            add(&mut by_email, &e);
            RowKey::Email(e)
        } else {
            work.page.pending_unmatched += 1;
            continue;
        };
        keys.push(key);
    }
    // Values too long to look up stay in `keys` and simply match nothing.
    work.queue_lookups(LookupKey::UserId, by_id, size);
    work.queue_lookups(LookupKey::ExternalId, by_external, size);
    work.queue_lookups(LookupKey::EmailAddress, by_email, size);
    work.resolve = Resolve::Pending(keys);
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_split_by_count_and_by_length() {
        let mut work = Work::new("x", Phase::Done, Resolve::Nothing, true);
        let ids: Vec<String> = (0..250).map(|i| format!("user_{i}")).collect();
        assert!(work.queue_lookups(LookupKey::UserId, ids, 100).is_empty());
        let sizes: Vec<usize> = work.lookups.iter().map(|l| l.values.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);

        let mut work = Work::new("x", Phase::Done, Resolve::Nothing, true);
        let emails: Vec<String> = (0..100)
            .map(|i| format!("{i}{}@x.io", "a".repeat(200)))
            .collect();
        let too_long = vec!["b".repeat(MAX_LOOKUP_PATH)];
        let skipped = work.queue_lookups(LookupKey::EmailAddress, [emails, too_long].concat(), 100);
        assert_eq!(skipped.len(), 1);
        assert!(work.lookups.len() > 1);
        assert_eq!(
            work.lookups.iter().map(|l| l.values.len()).sum::<usize>(),
            100
        );
        for l in &work.lookups {
            assert!(lookup_path(l.key, &l.values).len() <= MAX_LOOKUP_PATH);
        }
    }

    #[test]
    fn api_codes_are_kept_only_when_code_like() {
        assert_eq!(api_code(Some("invalid_command")), "invalid_command");
        assert_eq!(api_code(Some("Bad thing: a@x")), "api_rejected");
        assert_eq!(api_code(None), "api_rejected");
        assert_eq!(truncate("éé", 3), "é");
    }
}
