//! What a run reports: its counters, its state and last error, the status
//! view for `GET /admin/resync/{id}`, and its log records. None of these has
//! a field that could hold an email, a name, a body or a secret.

use serde::{Deserialize, Serialize};

/// Whether the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Clerk answered 401 or 403: the secret key is wrong. Fatal.
    ClerkUnauthorized,
    /// 5xx, network errors or timeouts from Clerk, `max_attempts` times in a row.
    ClerkUnavailable,
    /// Clerk's answer is not what its API sends (not JSON, not an array, a
    /// full page with no id to page on), `max_attempts` times in a row.
    ClerkBadResponse,
    /// Clerk refused a request with another 4xx (and for a page, every
    /// fallback cursor too). Fatal.
    ClerkRejectedRequest,
    /// A 429 asked for a longer wait than `max_retry_after_ms`. Fatal.
    ClerkRetryAfterTooLong,
    /// `max_rate_limited` 429s in a row for one request. Fatal.
    ClerkRateLimited,
    /// The main API answered 401 or 403: `API_SECRET` is wrong. Fatal.
    ApiUnauthorized,
    /// 5xx, 408, 429, network errors or timeouts from the main API,
    /// `max_attempts` times in a row.
    ApiUnavailable,
    /// The main API refused a batch with a 4xx (400: malformed). Fatal.
    ApiRejectedBatch,
    /// The main API refused a rows request with a 4xx. Fatal.
    ApiRejectedRequest,
    /// The main API's answer is not the contract's shape, `max_attempts` times.
    ApiBadResponse,
    /// The clock passed in is outside the years 0000–9999. Fatal.
    ClockOutOfRange,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClerkUnauthorized => "clerk_unauthorized",
            Self::ClerkUnavailable => "clerk_unavailable",
            Self::ClerkBadResponse => "clerk_bad_response",
            Self::ClerkRejectedRequest => "clerk_rejected_request",
            Self::ClerkRetryAfterTooLong => "clerk_retry_after_too_long",
            Self::ClerkRateLimited => "clerk_rate_limited",
            Self::ApiUnauthorized => "api_unauthorized",
            Self::ApiUnavailable => "api_unavailable",
            Self::ApiRejectedBatch => "api_rejected_batch",
            Self::ApiRejectedRequest => "api_rejected_request",
            Self::ApiBadResponse => "api_bad_response",
            Self::ClockOutOfRange => "clock_out_of_range",
        }
    }
}

/// The latest error: the one that failed the run, or (while it runs, or
/// after it recovered) the latest one it retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    /// Short fixed text, at most a status number added; never a body.
    pub message: String,
}

/// The run's counters. Page counters change only when the page is done
/// (its batch answered), so a page re-read after a restart is counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// `all`: Clerk's `/v1/users/count` at the start (null until read);
    /// `users`: the ids given; `failed`/`pending`: rows listed so far.
    pub clerk_users_total: Option<u64>,
    /// Clerk requests issued (retries and 429s included).
    pub clerk_requests: u64,
    /// Clerk users read to be upserted (pages and lookups; not the sweep's lookups).
    pub clerk_users_seen: u64,
    /// `upsert_user` commands the main API took an answer for.
    pub upserts_sent: u64,
    /// `delete_user` commands the main API took an answer for.
    pub deletes_sent: u64,
    pub applied: u64,
    pub stale: u64,
    pub duplicates: u64,
    pub ignored_deleted: u64,
    /// Users Clerk sent that cannot be mapped, ids the run cannot use, and
    /// commands the main API rejected; the first few are in `rejected_ids`.
    pub rejected: u64,
    /// `pending` rows Clerk has no user for; left as they are.
    pub pending_unmatched: u64,
    /// `failed` rows whose Clerk id Clerk no longer has; left for a full
    /// run's deletion sweep.
    pub failed_unmatched: u64,
}

impl Counters {
    /// Adds a page's counts (its `clerk_users_total` is the rows it listed).
    pub(crate) fn absorb(&mut self, page: &Counters) {
        if let Some(rows) = page.clerk_users_total {
            self.clerk_users_total = Some(self.clerk_users_total.unwrap_or(0).saturating_add(rows));
        }
        self.clerk_requests = self.clerk_requests.saturating_add(page.clerk_requests);
        self.clerk_users_seen = self.clerk_users_seen.saturating_add(page.clerk_users_seen);
        self.upserts_sent = self.upserts_sent.saturating_add(page.upserts_sent);
        self.deletes_sent = self.deletes_sent.saturating_add(page.deletes_sent);
        self.applied = self.applied.saturating_add(page.applied);
        self.stale = self.stale.saturating_add(page.stale);
        self.duplicates = self.duplicates.saturating_add(page.duplicates);
        self.ignored_deleted = self.ignored_deleted.saturating_add(page.ignored_deleted);
        self.rejected = self.rejected.saturating_add(page.rejected);
        self.pending_unmatched = self
            .pending_unmatched
            .saturating_add(page.pending_unmatched);
        self.failed_unmatched = self.failed_unmatched.saturating_add(page.failed_unmatched);
    }
}

/// Most entries `rejected_ids` keeps; `rejected` counts them all.
pub const MAX_REJECTED_IDS: usize = 50;

/// A user that was not upserted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedId {
    /// Null when Clerk sent a user without one.
    pub clerk_id: Option<String>,
    /// `missing_id`, `invalid_user`, `time_out_of_range`, `id_too_long`,
    /// `unusable_id`, or the main API's code for a rejected command.
    pub reason: String,
}

/// `GET /admin/resync/{run_id}`: everything a dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunStatus {
    pub run_id: String,
    pub scope: &'static str,
    pub state: RunState,
    /// `count`, `upsert`, `sweep`, `users`, `rows` or `done`.
    pub phase: &'static str,
    /// RFC 3339, like every time in the contract.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub last_error: Option<ErrorInfo>,
    #[serde(flatten)]
    pub counters: Counters,
    pub rejected_ids: Vec<RejectedId>,
    /// Pages done.
    pub pages: u64,
    /// No request goes before this (a `Retry-After` or a backoff), if later than the start.
    pub waiting_until: Option<String>,
}

/// One structured log line: `resync_page` when a page is done, `resync_end`
/// when the run stops. The glue serializes it as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub level: &'static str,
    pub event: &'static str,
    pub run_id: String,
    pub scope: &'static str,
    pub state: RunState,
    /// The phase the page belonged to (for `resync_end`, the phase it stopped in).
    pub phase: &'static str,
    pub page: u64,
    /// This page alone (zero in `resync_end`).
    pub page_users: u64,
    pub page_upserts: u64,
    pub page_deletes: u64,
    pub page_rejected: u64,
    /// The run so far.
    #[serde(flatten)]
    pub counters: Counters,
    /// From the start of the run to this record.
    pub duration_ms: i64,
    pub error: Option<ErrorCode>,
}
