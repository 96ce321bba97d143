//! The request path before the database: routing, the bearer check, the
//! body parsed and validated into a [`ValidCommand`] (or a batch of them),
//! the only form the SQL planner accepts, and the rows query of `GET
//! /internal/users` into a [`RowsQuery`].

use clerk_sync_contract::batch::{BatchRequest, MAX_BATCH_COMMANDS};
use clerk_sync_contract::command::{Command, CommandKind, ContractError, CONTRACT_VERSION};
use clerk_sync_contract::failure::{FailureBatch, FailureError};
use clerk_sync_contract::secret::SecretString;

use crate::error::{ApiError, InvalidBatch, InvalidCommand};

pub use clerk_sync_contract::batch::BATCH_PATH;
pub use clerk_sync_contract::failure::FAILURES_PATH;
pub use clerk_sync_contract::metrics::METRICS_PATH;

pub const SYNC_PATH: &str = "/internal/clerk-sync";
pub const USERS_PATH: &str = "/internal/users";
pub const USERS_PREFIX: &str = "/internal/users/";
pub const STATUS_PATH: &str = "/internal/sync/status";
pub const HEALTH_PATH: &str = "/health";

/// A command is a few hundred bytes; this leaves room for long names and URLs.
pub const MAX_BODY_BYTES: u32 = 65_536;
/// The batch route's limit: 500 commands of about 4 KiB each on average
/// (a command is usually under 1 KiB), read by the same bounded reader.
pub const MAX_BATCH_BODY_BYTES: u32 = 2 * 1024 * 1024;
/// Longest accepted Clerk id (the contract bounds the operation id the same way).
pub const MAX_CLERK_ID_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `POST /internal/clerk-sync`
    Sync,
    /// `POST /internal/clerk-sync/batch`: 1–500 commands, applied in order.
    Batch,
    /// `POST /internal/clerk-sync/failures`: 1–500 `record_failure`s.
    Failures,
    /// `GET /internal/users?…`: pages of rows, for a re-sync run.
    Users,
    /// `GET /internal/users/:clerk_id`
    User(&'a str),
    /// `POST /internal/users`: the application's signup (a pending row).
    CreateUser,
    /// `GET /internal/sync/status`
    Status,
    /// `GET /internal/metrics?format=json|prometheus`
    Metrics,
    /// `GET /health`, the only route without the bearer.
    Health,
}

impl Route<'_> {
    /// The route's name for the log line (never the Clerk id in the path).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sync => SYNC_PATH,
            Self::Batch => BATCH_PATH,
            Self::Failures => FAILURES_PATH,
            Self::Users => USERS_PATH,
            Self::User(_) => "/internal/users/:clerk_id",
            Self::CreateUser => USERS_PATH,
            Self::Status => STATUS_PATH,
            Self::Metrics => METRICS_PATH,
            Self::Health => HEALTH_PATH,
        }
    }
}

pub fn route<'a>(method: &str, path: &'a str) -> Result<Route<'a>, ApiError> {
    let read = matches!(method, "GET" | "HEAD");
    let (route, allowed) = match path {
        SYNC_PATH => (Route::Sync, method == "POST"),
        BATCH_PATH => (Route::Batch, method == "POST"),
        FAILURES_PATH => (Route::Failures, method == "POST"),
        USERS_PATH if method == "POST" => (Route::CreateUser, true),
        USERS_PATH => (Route::Users, read),
        STATUS_PATH => (Route::Status, read),
        METRICS_PATH => (Route::Metrics, read),
        HEALTH_PATH => (Route::Health, read),
        _ => match path.strip_prefix(USERS_PREFIX) {
            Some(id) if !id.is_empty() && id.len() <= MAX_CLERK_ID_LEN && !id.contains('/') => {
                (Route::User(id), read)
            }
            _ => return Err(ApiError::NotFound),
        },
    };
    if allowed {
        Ok(route)
    } else {
        Err(ApiError::MethodNotAllowed)
    }
}

/// The `Allow` header of a 405.
pub fn allowed_methods(path: &str) -> &'static str {
    if path == SYNC_PATH || path == BATCH_PATH || path == FAILURES_PATH {
        "POST"
    } else if path == USERS_PATH {
        "GET, HEAD, POST"
    } else {
        "GET, HEAD"
    }
}

/// `Authorization: Bearer <API_SECRET>`, compared in constant time. No
/// configured secret is a misconfiguration, never an open door.
pub fn authorize(secret: Option<&SecretString>, header: Option<&str>) -> Result<(), ApiError> {
    let secret = secret.ok_or(ApiError::Misconfigured)?;
    let token = header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or(ApiError::Unauthorized)?;
    if secret.matches(token) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// A command that met the contract and whose times are all in the contract's
/// format, so they compare correctly as text in SQL. Only
/// [`parse_command`] and [`parse_batch`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidCommand(Command);

impl ValidCommand {
    pub fn command(&self) -> &Command {
        &self.0
    }

    pub fn kind(&self) -> CommandKind {
        self.0.command
    }

    /// The version an upsert carries: Clerk's `updated_at`, else its
    /// `created_at`, else the earliest time there is. Only what Clerk put in
    /// the user object, never `occurred_at`: the relay may take that from
    /// the signature or its clock, which change on every retry, so a retried
    /// old message would outrank a newer one.
    pub fn version(&self) -> &str {
        let user = self.0.user.as_ref();
        user.and_then(|u| u.updated_at.as_deref())
            .or_else(|| user.and_then(|u| u.created_at.as_deref()))
            .unwrap_or(EARLIEST)
    }

    /// Decides between two upserts of one version: a digest of the user
    /// data (FNV-1a 64 over its contract JSON), so equal versions end the
    /// same way in any order; the operation id decides only between equal
    /// data.
    pub fn data_key(&self) -> String {
        let bytes = self
            .0
            .user
            .as_ref()
            .map(|u| serde_json::to_vec(u).expect("a UserRecord always serializes"))
            .unwrap_or_default();
        format!("{:016x}", fnv1a64(&bytes))
    }

    /// The email to claim a signup by: only a verified one, so nobody claims
    /// an application account by signing up with its address.
    pub fn verified_email(&self) -> Option<&str> {
        let user = self.0.user.as_ref()?;
        user.email.as_deref().filter(|_| user.email_verified)
    }

    /// Whether this is the user's `user.created` event: the email it
    /// carries is the one the user was created with.
    pub fn is_creation(&self) -> bool {
        self.0.event_type == USER_CREATED
    }

    /// The application's own id for the user, as Clerk's `external_id`.
    pub fn external_id(&self) -> Option<&str> {
        match &self.0.user {
            Some(u) => u.external_id.as_deref(),
            None => self.0.external_id.as_deref(),
        }
    }
}

/// The Clerk event that creates a user.
pub const USER_CREATED: &str = "user.created";

/// The version of an upsert whose user object carries no time.
pub const EARLIEST: &str = "0000-01-01T00:00:00.000Z";

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Parses and validates a body: contract version first (so a newer relay gets
/// a precise error), then the shape, the contract rules, and the times.
pub fn parse_command(body: &[u8]) -> Result<ValidCommand, InvalidCommand> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned =
        serde_json::from_slice(body).map_err(|_| InvalidCommand::NotACommand)?;
    if versioned.version != CONTRACT_VERSION {
        return Err(ContractError::Version.into());
    }
    let command: Command = serde_json::from_slice(body).map_err(|_| InvalidCommand::NotACommand)?;
    validate(command)
}

/// The checks after deserializing: the contract's, the length of the Clerk
/// id, the times' format.
fn validate(command: Command) -> Result<ValidCommand, InvalidCommand> {
    command.validate()?;
    if command.clerk_id.len() > MAX_CLERK_ID_LEN {
        return Err(InvalidCommand::TooLong("clerk_id"));
    }
    let user = command.user.as_ref();
    let times = [
        ("occurred_at", Some(command.occurred_at.as_str())),
        ("received_at", Some(command.received_at.as_str())),
        (
            "user.created_at",
            user.and_then(|u| u.created_at.as_deref()),
        ),
        (
            "user.updated_at",
            user.and_then(|u| u.updated_at.as_deref()),
        ),
    ];
    for (name, value) in times {
        if value.is_some_and(|v| !is_contract_time(v)) {
            return Err(InvalidCommand::Timestamp(name));
        }
    }
    Ok(ValidCommand(command))
}

/// Parses and validates a batch (`clerk_sync_contract::batch::BatchRequest`):
/// the version first, then the shape (no unknown field), 1–500 commands,
/// and every command as [`parse_command`] checks one. Any fault refuses the
/// whole batch.
pub fn parse_batch(body: &[u8]) -> Result<Vec<ValidCommand>, InvalidBatch> {
    check_version(body)?;
    let batch: BatchRequest = serde_json::from_slice(body).map_err(|_| diagnose_batch(body))?;
    if !(1..=MAX_BATCH_COMMANDS).contains(&batch.commands.len()) {
        return Err(InvalidBatch::Count);
    }
    batch
        .commands
        .into_iter()
        .enumerate()
        .map(|(index, c)| validate(c).map_err(|error| InvalidBatch::Command { index, error }))
        .collect()
}

/// The version of a batch of commands or failures, read first: any other
/// than this contract's refuses the batch before its shape is looked at.
fn check_version(body: &[u8]) -> Result<(), InvalidBatch> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned = serde_json::from_slice(body).map_err(|_| InvalidBatch::NotABatch)?;
    if versioned.version != CONTRACT_VERSION {
        return Err(InvalidBatch::Version);
    }
    Ok(())
}

/// A `record_failure` that met the contract: the failed command is a
/// [`ValidCommand`] and the code a stable one. Only [`parse_failures`]
/// makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidFailure {
    pub failed: ValidCommand,
    pub error: String,
}

/// Parses and validates a failure batch
/// (`clerk_sync_contract::failure::FailureBatch`) as [`parse_batch`] does a
/// batch of commands: any fault refuses the whole batch.
pub fn parse_failures(body: &[u8]) -> Result<Vec<ValidFailure>, InvalidBatch> {
    check_version(body)?;
    let batch: FailureBatch = serde_json::from_slice(body).map_err(|_| InvalidBatch::NotABatch)?;
    if !(1..=MAX_BATCH_COMMANDS).contains(&batch.failures.len()) {
        return Err(InvalidBatch::Count);
    }
    batch
        .failures
        .into_iter()
        .enumerate()
        .map(|(index, f)| {
            let invalid = |error| InvalidBatch::Command { index, error };
            f.validate().map_err(|e| match e {
                FailureError::Command(c) => invalid(c.into()),
                FailureError::Mismatch | FailureError::Code => invalid(InvalidCommand::Failure(e)),
            })?;
            let failed = validate(f.failed).map_err(invalid)?;
            Ok(ValidFailure {
                failed,
                error: f.error,
            })
        })
        .collect()
}

/// Why a body of the right version is not a batch: the number of commands,
/// the first command that is not one, or else its shape (an unknown field).
fn diagnose_batch(body: &[u8]) -> InvalidBatch {
    #[derive(serde::Deserialize)]
    struct Loose {
        commands: Vec<serde_json::Value>,
    }
    let Ok(loose) = serde_json::from_slice::<Loose>(body) else {
        return InvalidBatch::NotABatch;
    };
    if !(1..=MAX_BATCH_COMMANDS).contains(&loose.commands.len()) {
        return InvalidBatch::Count;
    }
    loose
        .commands
        .iter()
        .position(|c| <Command as serde::Deserialize>::deserialize(c).is_err())
        .map_or(InvalidBatch::NotABatch, |index| InvalidBatch::Command {
            index,
            error: InvalidCommand::NotACommand,
        })
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: the one format whose text order is time order.
pub fn is_contract_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(99);
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
        && (1..=12).contains(&num(5..7))
        && (1..=31).contains(&num(8..10))
        && num(11..13) <= 23
        && num(14..16) <= 59
        && num(17..19) <= 60
}

/// How a signup is claimed by its Clerk user, decided when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkBy {
    /// By the Clerk user whose `external_id` is the signup's `id` (the
    /// application creates that Clerk user with it). Never by email.
    #[default]
    ExternalId,
    /// By the Clerk user created with the signup's email (an invitation to
    /// it) once the email is verified.
    Email,
}

impl LinkBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalId => "external_id",
            Self::Email => "email",
        }
    }
}

/// The body of `POST /internal/users`: the application's own signup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The application's id for the user (generated when absent); with
    /// `link_by: external_id`, give it to Clerk as the user's `external_id`.
    pub id: Option<String>,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub link_by: LinkBy,
}

pub fn parse_new_user(body: &[u8]) -> Result<NewUser, ApiError> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        id: Option<String>,
        email: String,
        #[serde(default)]
        first_name: Option<String>,
        #[serde(default)]
        last_name: Option<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        link_by: Option<String>,
    }
    let invalid = ApiError::InvalidUser;
    let body: Body = serde_json::from_slice(body)
        .map_err(|_| invalid("body must be a JSON object with a string email"))?;
    let link_by = match body.link_by.as_deref() {
        None | Some("external_id") => LinkBy::ExternalId,
        Some("email") => LinkBy::Email,
        Some(_) => return Err(invalid("link_by must be external_id or email")),
    };
    let user = NewUser {
        id: body.id,
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        username: body.username,
        link_by,
    };
    let email_ok = (3..=320).contains(&user.email.len())
        && user.email.contains('@')
        && !user.email.contains(char::is_whitespace);
    if !email_ok {
        return Err(invalid("email must look like an address"));
    }
    if user
        .id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > MAX_CLERK_ID_LEN)
    {
        return Err(invalid("id must be 1-256 characters"));
    }
    Ok(user)
}

/// What can be told about a rejected body, for its audit row: the contract's
/// identifying fields when they are strings, shortened; never the user data.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Salvaged {
    pub operation_id: Option<String>,
    pub command: Option<String>,
    pub event_type: Option<String>,
    pub clerk_id: Option<String>,
}

pub fn salvage(body: &[u8]) -> Salvaged {
    serde_json::from_slice(body).map_or_else(|_| Salvaged::default(), |v| salvage_value(&v))
}

/// The identifiers of the batch's command at `index` (the one at fault).
pub fn salvage_batch(body: &[u8], index: usize) -> Salvaged {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("commands")?.get(index).map(salvage_value))
        .unwrap_or_default()
}

fn salvage_value(value: &serde_json::Value) -> Salvaged {
    let Some(map) = value.as_object() else {
        return Salvaged::default();
    };
    let field = |name: &str| {
        map.get(name)
            .and_then(|v| v.as_str())
            .map(|s| s.chars().take(MAX_CLERK_ID_LEN).collect())
    };
    Salvaged {
        operation_id: field("operation_id"),
        command: field("command"),
        event_type: field("event_type"),
        clerk_id: field("clerk_id"),
    }
}

// ---- GET /internal/users ------------------------------------------------

/// Rows per page when `limit` is not given, and the most a page may ask for.
pub const DEFAULT_ROWS_LIMIT: u32 = 100;
pub const MAX_ROWS_LIMIT: u32 = 500;
/// Longest cursor accepted or produced (the re-sync run persists it).
pub const MAX_CURSOR_LEN: usize = 512;
/// Longest `email` a rows query takes (RFC 5321's 64 + 1 + 255, rounded as
/// commonly to 320).
pub const MAX_EMAIL_QUERY_LEN: usize = 320;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    Synced,
    Pending,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

/// Where a page of rows starts: after a row. Rows are ordered by the key
/// (`clerk_id IS NULL`, `clerk_id`, `id`): first the rows linked to a Clerk
/// user, by `clerk_id` (unique), then the rows with no Clerk id yet (the
/// signups), by their own `id` (the primary key). Both keys are unique, so
/// a row inserted while pages are read never makes the cursor skip or
/// repeat another. On the wire it is opaque: `c:<clerk_id>`
/// or `i:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// After the row linked to this Clerk id.
    Linked(String),
    /// After the unlinked row with this `id`.
    Unlinked(String),
}

impl Cursor {
    pub fn encode(&self) -> String {
        match self {
            Self::Linked(clerk_id) => format!("c:{clerk_id}"),
            Self::Unlinked(id) => format!("i:{id}"),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > MAX_CURSOR_LEN {
            return None;
        }
        let (kind, key) = text.split_at_checked(2)?;
        if key.is_empty() {
            return None;
        }
        match kind {
            "c:" => Some(Self::Linked(key.to_owned())),
            "i:" => Some(Self::Unlinked(key.to_owned())),
            _ => None,
        }
    }
}

/// `GET /internal/users?live=true|false&sync_status=…&after=<cursor>&limit=N`,
/// or `?email=<address>[&sync_status=…][&limit=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowsQuery {
    /// `true`: rows linked to a Clerk user and not deleted; `false`: every
    /// other row (deleted, or not linked yet). Absent: both.
    pub live: Option<bool>,
    pub sync_status: Option<SyncStatus>,
    pub after: Option<Cursor>,
    pub limit: u32,
    /// The row not deleted whose email equals this one, ASCII case
    /// ignored (the column's `NOCASE`): at most one row, so never with
    /// `after` or `live`.
    pub email: Option<String>,
}

/// Parses the query string (without the `?`). Every parameter at most once;
/// an unknown one, or a value out of its range, is refused.
pub fn parse_rows_query(query: Option<&str>) -> Result<RowsQuery, ApiError> {
    let invalid = ApiError::InvalidQuery;
    let mut q = RowsQuery {
        live: None,
        sync_status: None,
        after: None,
        limit: DEFAULT_ROWS_LIMIT,
        email: None,
    };
    let mut seen: Vec<String> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key =
            percent_decode(key).ok_or(invalid("the query is not valid percent-encoded UTF-8"))?;
        let value =
            percent_decode(value).ok_or(invalid("the query is not valid percent-encoded UTF-8"))?;
        if seen.contains(&key) {
            return Err(invalid("a query parameter is repeated"));
        }
        match key.as_str() {
            "live" => {
                q.live = Some(match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("live must be true or false")),
                });
            }
            "sync_status" => {
                q.sync_status = Some(match value.as_str() {
                    "synced" => SyncStatus::Synced,
                    "pending" => SyncStatus::Pending,
                    "failed" => SyncStatus::Failed,
                    _ => return Err(invalid("sync_status must be synced, pending or failed")),
                });
            }
            "after" => {
                q.after = Some(
                    Cursor::decode(&value)
                        .ok_or(invalid("after must be a next_after this API answered"))?,
                );
            }
            "limit" => {
                q.limit = Some(value.as_str())
                    .filter(|v| (1..=3).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|n| (1..=MAX_ROWS_LIMIT).contains(n))
                    .ok_or(invalid("limit must be an integer from 1 to 500"))?;
            }
            "email" => {
                if value.is_empty() || value.len() > MAX_EMAIL_QUERY_LEN {
                    return Err(invalid("email must be 1 to 320 bytes"));
                }
                q.email = Some(value);
            }
            _ => {
                return Err(invalid(
                    "unknown query parameter: live, sync_status, after, limit and email are known",
                ))
            }
        }
        seen.push(key);
    }
    if q.email.is_some() && (q.after.is_some() || q.live.is_some()) {
        return Err(invalid(
            "email matches at most one live row: after and live are not taken with it",
        ));
    }
    Ok(q)
}

/// How `GET /internal/metrics` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// `application/json`, the contract's `Metrics` (the default).
    Json,
    /// The Prometheus text exposition format 0.0.4 (`format=prometheus`).
    Prometheus,
}

/// `GET /internal/metrics`' query: nothing, or `format=json|prometheus`.
pub fn parse_metrics_query(query: Option<&str>) -> Result<MetricsFormat, ApiError> {
    let invalid = ApiError::InvalidQuery;
    let mut format = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key =
            percent_decode(key).ok_or(invalid("the query is not valid percent-encoded UTF-8"))?;
        let value =
            percent_decode(value).ok_or(invalid("the query is not valid percent-encoded UTF-8"))?;
        if key != "format" {
            return Err(invalid("unknown query parameter: format is the only one"));
        }
        if format.is_some() {
            return Err(invalid("a query parameter is repeated"));
        }
        format = Some(match value.as_str() {
            "json" => MetricsFormat::Json,
            "prometheus" => MetricsFormat::Prometheus,
            _ => return Err(invalid("format must be json or prometheus")),
        });
    }
    Ok(format.unwrap_or(MetricsFormat::Json))
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), strict:
/// a broken `%` escape or bytes that are not UTF-8 are `None`.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upsert() -> serde_json::Value {
        json!({
            "version": 1, "command": "upsert_user", "operation_id": "msg_1",
            "event_type": "user.created", "occurred_at": "2024-01-05T04:46:40.000Z",
            "received_at": "2024-01-05T04:46:41.000Z", "clerk_id": "user_1",
            "user": {"email": "a@example.com", "email_verified": true, "first_name": "A",
                     "last_name": null, "username": null, "image_url": null,
                     "external_id": "42", "created_at": "2024-01-05T04:46:40.000Z",
                     "updated_at": "2024-01-05T04:46:40.500Z"}
        })
    }

    fn parse(v: &serde_json::Value) -> Result<ValidCommand, InvalidCommand> {
        parse_command(v.to_string().as_bytes())
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", SYNC_PATH), Ok(Route::Sync));
        assert_eq!(route("GET", SYNC_PATH), Err(ApiError::MethodNotAllowed));
        assert_eq!(
            route("GET", "/internal/users/user_1"),
            Ok(Route::User("user_1"))
        );
        assert_eq!(route("GET", "/internal/users/"), Err(ApiError::NotFound));
        assert_eq!(route("GET", "/internal/users/a/b"), Err(ApiError::NotFound));
        assert_eq!(
            route("POST", "/internal/users/u"),
            Err(ApiError::MethodNotAllowed)
        );
        assert_eq!(route("GET", STATUS_PATH), Ok(Route::Status));
        assert_eq!(route("HEAD", HEALTH_PATH), Ok(Route::Health));
        assert_eq!(route("POST", "/"), Err(ApiError::NotFound));
        assert_eq!(route("POST", USERS_PATH), Ok(Route::CreateUser));
        assert_eq!(route("GET", USERS_PATH), Ok(Route::Users));
        assert_eq!(route("HEAD", USERS_PATH), Ok(Route::Users));
        assert_eq!(route("PUT", USERS_PATH), Err(ApiError::MethodNotAllowed));
        assert_eq!(allowed_methods(USERS_PATH), "GET, HEAD, POST");
        assert_eq!(route("POST", BATCH_PATH), Ok(Route::Batch));
        assert_eq!(route("GET", BATCH_PATH), Err(ApiError::MethodNotAllowed));
        assert_eq!(allowed_methods(BATCH_PATH), "POST");
        assert_eq!(
            route("POST", "/internal/clerk-sync/batch/"),
            Err(ApiError::NotFound)
        );
        assert_eq!(
            Route::User("user_secretish").name(),
            "/internal/users/:clerk_id"
        );
    }

    #[test]
    fn bearer_is_required_and_compared() {
        let s = SecretString::new("test-api-secret");
        assert_eq!(authorize(Some(&s), Some("Bearer test-api-secret")), Ok(()));
        assert_eq!(authorize(Some(&s), Some("bearer test-api-secret")), Ok(()));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic test-api-secret"),
            Some("Bearer test-api-secreT"),
            Some("Bearer  test-api-secret"),
            Some("test-api-secret"),
        ] {
            assert_eq!(
                authorize(Some(&s), bad),
                Err(ApiError::Unauthorized),
                "{bad:?}"
            );
        }
        assert_eq!(
            authorize(None, Some("Bearer anything")),
            Err(ApiError::Misconfigured)
        );
    }

    #[test]
    fn a_contract_command_parses() {
        let c = parse(&upsert()).unwrap();
        assert_eq!(c.kind(), CommandKind::UpsertUser);
        assert_eq!(c.version(), "2024-01-05T04:46:40.500Z");
        assert_eq!(c.verified_email(), Some("a@example.com"));
        assert_eq!(c.external_id(), Some("42"));
    }

    #[test]
    fn version_falls_back_to_the_user_object_only_and_unverified_email_does_not_link() {
        let mut v = upsert();
        v["user"]["updated_at"] = json!(null);
        v["user"]["created_at"] = json!("2024-01-01T00:00:00.000Z");
        v["user"]["email_verified"] = json!(false);
        let c = parse(&v).unwrap();
        assert_eq!(c.version(), "2024-01-01T00:00:00.000Z");
        assert_eq!(c.verified_email(), None);
        // occurred_at (a retry's signature time, perhaps) is never a version.
        v["user"]["created_at"] = json!(null);
        v["occurred_at"] = json!("2030-01-01T00:00:00.000Z");
        assert_eq!(parse(&v).unwrap().version(), EARLIEST);
    }

    #[test]
    fn the_data_key_is_a_digest_of_the_user_data_only() {
        let a = parse(&upsert()).unwrap();
        let mut v = upsert();
        v["operation_id"] = json!("msg_other");
        v["received_at"] = json!("2025-01-01T00:00:00.000Z");
        assert_eq!(parse(&v).unwrap().data_key(), a.data_key());
        v["user"]["first_name"] = json!("B");
        assert_ne!(parse(&v).unwrap().data_key(), a.data_key());
        assert_eq!(a.data_key().len(), 16);
        // FNV-1a 64's published vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert!(a.is_creation());
    }

    #[test]
    fn every_rule_rejects() {
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(Change, InvalidCommand)> = vec![
            (
                Box::new(|v| v["version"] = json!(2)),
                ContractError::Version.into(),
            ),
            (
                Box::new(|v| v["command"] = json!("drop_table")),
                InvalidCommand::NotACommand,
            ),
            (
                Box::new(|v| v["user"] = json!(null)),
                ContractError::UpsertWithoutUser.into(),
            ),
            (
                Box::new(|v| v["operation_id"] = json!("")),
                ContractError::OperationId.into(),
            ),
            (
                Box::new(|v| v["clerk_id"] = json!("")),
                ContractError::ClerkId.into(),
            ),
            (
                Box::new(|v| v["clerk_id"] = json!("u".repeat(257))),
                InvalidCommand::TooLong("clerk_id"),
            ),
            (
                Box::new(|v| v["occurred_at"] = json!("2024-01-05T04:46:40Z")),
                InvalidCommand::Timestamp("occurred_at"),
            ),
            (
                Box::new(|v| v["received_at"] = json!("2024-01-05 04:46:40.000Z")),
                InvalidCommand::Timestamp("received_at"),
            ),
            (
                Box::new(|v| v["user"]["updated_at"] = json!("2024-01-05T04:46:40.000+00:00")),
                InvalidCommand::Timestamp("user.updated_at"),
            ),
            (
                Box::new(|v| v["user"]["created_at"] = json!(1704430000000_u64)),
                InvalidCommand::NotACommand,
            ),
        ];
        for (n, (change, expected)) in cases.into_iter().enumerate() {
            let mut v = upsert();
            change(&mut v);
            assert_eq!(parse(&v), Err(expected), "case {n}");
        }
        assert_eq!(parse_command(b"not json"), Err(InvalidCommand::NotACommand));
        assert_eq!(parse_command(b"{}"), Err(InvalidCommand::NotACommand));
    }

    #[test]
    fn contract_times() {
        assert!(is_contract_time("2024-01-05T04:46:40.000Z"));
        assert!(is_contract_time("0000-12-31T23:59:59.999Z"));
        for bad in [
            "",
            "2024-01-05T04:46:40.00Z",
            "2024-01-05T04:46:40.0000Z",
            "2024-13-05T04:46:40.000Z",
            "2024-01-05T24:46:40.000Z",
            "2024-01-05t04:46:40.000Z",
            "2024-01-05T04:46:40.000z",
            "+024-01-05T04:46:40.000Z",
            "2024-01-05T04:46:40.000\u{0}",
            "２024-01-05T04:46:40.000Z",
        ] {
            assert!(!is_contract_time(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_new_user_needs_an_email() {
        let ok = parse_new_user(br#"{"id":"app_1","email":"a@example.com"}"#).unwrap();
        assert_eq!(
            (ok.id.as_deref(), ok.email.as_str(), ok.link_by),
            (Some("app_1"), "a@example.com", LinkBy::ExternalId)
        );
        let invite = parse_new_user(br#"{"email":"a@example.com","link_by":"email"}"#).unwrap();
        assert_eq!(invite.link_by, LinkBy::Email);
        for bad in [
            &br#"{}"#[..],
            br#"{"email":"a@example.com","link_by":"username"}"#,
            br#"{"email":"a@example.com","link_by":1}"#,
            br#"{"email":"nope"}"#,
            br#"{"email":"a @example.com"}"#,
            br#"{"email":"a@example.com","id":""}"#,
            b"[]",
        ] {
            assert!(
                matches!(parse_new_user(bad), Err(ApiError::InvalidUser(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn batch(commands: Vec<serde_json::Value>) -> Vec<u8> {
        json!({"version": 1, "commands": commands})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_batch_parses_in_order() {
        let mut second = upsert();
        second["operation_id"] = json!("msg_2");
        let parsed = parse_batch(&batch(vec![upsert(), second])).unwrap();
        let ops: Vec<&str> = parsed
            .iter()
            .map(|c| c.command().operation_id.as_str())
            .collect();
        assert_eq!(ops, ["msg_1", "msg_2"]);
        let most = vec![upsert(); MAX_BATCH_COMMANDS];
        assert_eq!(parse_batch(&batch(most)).unwrap().len(), MAX_BATCH_COMMANDS);
    }

    #[test]
    fn every_batch_fault_refuses_the_whole_batch() {
        let mut bad_time = upsert();
        bad_time["occurred_at"] = json!("yesterday");
        let mut bad_kind = upsert();
        bad_kind["command"] = json!("drop_table");
        let cases: Vec<(Vec<u8>, InvalidBatch)> = vec![
            (b"not json".to_vec(), InvalidBatch::NotABatch),
            (b"[]".to_vec(), InvalidBatch::NotABatch),
            (br#"{"commands":[]}"#.to_vec(), InvalidBatch::NotABatch),
            (
                json!({"version": 2, "commands": [upsert()]})
                    .to_string()
                    .into_bytes(),
                InvalidBatch::Version,
            ),
            (batch(vec![]), InvalidBatch::Count),
            (
                batch(vec![upsert(); MAX_BATCH_COMMANDS + 1]),
                InvalidBatch::Count,
            ),
            (
                json!({"version": 1, "commands": [upsert()], "extra": true})
                    .to_string()
                    .into_bytes(),
                InvalidBatch::NotABatch,
            ),
            (
                json!({"version": 1, "commands": {}})
                    .to_string()
                    .into_bytes(),
                InvalidBatch::NotABatch,
            ),
            (
                batch(vec![upsert(), bad_time]),
                InvalidBatch::Command {
                    index: 1,
                    error: InvalidCommand::Timestamp("occurred_at"),
                },
            ),
            (
                batch(vec![upsert(), upsert(), bad_kind]),
                InvalidBatch::Command {
                    index: 2,
                    error: InvalidCommand::NotACommand,
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                parse_batch(&body).map(|c| c.len()),
                Err(expected),
                "{}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        let e = InvalidBatch::Command {
            index: 7,
            error: InvalidCommand::Timestamp("occurred_at"),
        };
        assert!(e.to_string().starts_with("commands[7]: occurred_at"));
    }

    #[test]
    fn a_rejected_batch_salvages_the_command_at_fault() {
        let mut other = upsert();
        other["operation_id"] = json!("msg_bad");
        let body = batch(vec![upsert(), other]);
        assert_eq!(
            salvage_batch(&body, 1).operation_id.as_deref(),
            Some("msg_bad")
        );
        assert_eq!(salvage_batch(&body, 9), Salvaged::default());
        assert_eq!(salvage_batch(b"nope", 0), Salvaged::default());
    }

    #[test]
    fn rows_queries() {
        let q = parse_rows_query(None).unwrap();
        assert_eq!(
            q,
            RowsQuery {
                live: None,
                sync_status: None,
                after: None,
                limit: DEFAULT_ROWS_LIMIT,
                email: None,
            }
        );
        let q = parse_rows_query(Some(
            "email=Ann%2Bx%40Example.com&sync_status=failed&limit=50",
        ))
        .unwrap();
        assert_eq!(
            (q.email.as_deref(), q.sync_status, q.limit),
            (Some("Ann+x@Example.com"), Some(SyncStatus::Failed), 50)
        );
        let longest = format!("email={}", "a".repeat(MAX_EMAIL_QUERY_LEN));
        assert!(parse_rows_query(Some(&longest)).is_ok());
        let q = parse_rows_query(Some("live=true&limit=7&after=c%3Auser%5F1")).unwrap();
        assert_eq!(
            (q.live, q.limit, q.after),
            (Some(true), 7, Some(Cursor::Linked("user_1".into())))
        );
        let q =
            parse_rows_query(Some("sync_status=pending&live=false&after=i:a+b&limit=500")).unwrap();
        assert_eq!(
            (q.live, q.sync_status, q.after),
            (
                Some(false),
                Some(SyncStatus::Pending),
                Some(Cursor::Unlinked("a b".into()))
            )
        );
        for bad in [
            "limit=0",
            "limit=501",
            "limit=",
            "limit=+5",
            "limit=0005",
            "limit=abc",
            "live=yes",
            "live=",
            "sync_status=lost",
            "sync_status=Failed",
            "after=",
            "after=user_1",
            "after=c:",
            "after=x:user_1",
            "after=c%3",
            "after=c:%FF",
            "limit=5&limit=5",
            "offset=3",
            "live",
            "email=",
            "email=a@x.com&email=a@x.com",
            "email=a@x.com&after=c:user_1",
            "email=a@x.com&live=true",
            "live=false&email=a@x.com",
            "Email=a@x.com",
        ] {
            assert!(
                matches!(parse_rows_query(Some(bad)), Err(ApiError::InvalidQuery(_))),
                "{bad}"
            );
        }
        let long = format!("after=c:{}", "u".repeat(MAX_CURSOR_LEN));
        assert!(parse_rows_query(Some(&long)).is_err());
        let long = format!("email={}", "a".repeat(MAX_EMAIL_QUERY_LEN + 1));
        assert!(parse_rows_query(Some(&long)).is_err());
    }

    #[test]
    fn metrics_queries() {
        assert_eq!(route("GET", METRICS_PATH), Ok(Route::Metrics));
        assert_eq!(route("HEAD", METRICS_PATH), Ok(Route::Metrics));
        assert_eq!(route("POST", METRICS_PATH), Err(ApiError::MethodNotAllowed));
        assert_eq!(route("GET", "/internal/metrics/"), Err(ApiError::NotFound));
        assert_eq!(Route::Metrics.name(), METRICS_PATH);
        for (query, format) in [
            (None, MetricsFormat::Json),
            (Some(""), MetricsFormat::Json),
            (Some("format=json"), MetricsFormat::Json),
            (Some("format=prometheus"), MetricsFormat::Prometheus),
            (Some("format=%70rometheus"), MetricsFormat::Prometheus),
            (Some("&format=prometheus&"), MetricsFormat::Prometheus),
        ] {
            assert_eq!(parse_metrics_query(query), Ok(format), "{query:?}");
        }
        for bad in [
            "format=",
            "format",
            "format=Prometheus",
            "format=text",
            "format=openmetrics",
            "format=json&format=json",
            "format=prometheus&format=json",
            "window=1h",
            "format=json&limit=5",
            "format=%FF",
            "format=%7",
        ] {
            assert!(
                matches!(
                    parse_metrics_query(Some(bad)),
                    Err(ApiError::InvalidQuery(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cursors_round_trip() {
        for c in [
            Cursor::Linked("user_1".into()),
            Cursor::Unlinked("app_1".into()),
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("é"), None);
    }

    #[test]
    fn salvage_keeps_identifiers_only() {
        let mut v = upsert();
        v["version"] = json!(9);
        let s = salvage(v.to_string().as_bytes());
        assert_eq!(s.operation_id.as_deref(), Some("msg_1"));
        assert_eq!(s.clerk_id.as_deref(), Some("user_1"));
        assert_eq!(s.command.as_deref(), Some("upsert_user"));
        assert_eq!(salvage(b"[1,2]"), Salvaged::default());
        let long = json!({"clerk_id": "x".repeat(1000), "operation_id": 5});
        let s = salvage(long.to_string().as_bytes());
        assert_eq!(s.clerk_id.unwrap().len(), MAX_CLERK_ID_LEN);
        assert_eq!(s.operation_id, None);
    }
}
