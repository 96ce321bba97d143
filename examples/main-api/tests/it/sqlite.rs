//! A `Database` over an in-memory SQLite with the migrations applied, one
//! transaction per batch like D1, and builders for contract commands.

use std::cell::{Cell, RefCell};
use std::collections::hash_map::{Entry, HashMap};

use clerk_sync_contract::command::{Command, Provenance, UserRecord};
use clerk_sync_contract::time::format_millis;
use clerk_sync_main_api::log::RequestLog;
use clerk_sync_main_api::plan::{Batch, Value};
use clerk_sync_main_api::service::{self, Database};
use clerk_sync_main_api::view::Reply;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Statement};
use serde_json::{json, Map, Value as Json};

pub struct Sqlite {
    conn: RefCell<Option<Conn>>,
    /// Whether the connection goes back to the pool when dropped.
    pooled: bool,
    /// Faults to inject into the next batches, in order (test setup).
    pub faults: RefCell<std::collections::VecDeque<Fault>>,
    /// When set, after `faults`: each batch fails before it commits, or
    /// after, one time in eight each.
    pub chaos: RefCell<Option<fastrand::Rng>>,
}

/// A connection and its prepared statements. Preparing the API's
/// statements is most of what a delivery costs in SQLite, so connections
/// with all migrations are pooled per test thread and emptied for reuse.
/// A connection is leaked, never closed: its statements borrow it for ever.
struct Conn {
    conn: &'static Connection,
    statements: HashMap<&'static str, Statement<'static>>,
}

thread_local! {
    static POOL: RefCell<Vec<Conn>> = const { RefCell::new(Vec::new()) };
}

/// What a batch does instead of answering normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers normally: holds a place in the queue of faults.
    Pass,
    /// Fails before anything is written: D1 unavailable.
    Before,
    /// Commits, then answers with an error: the answer was lost.
    AfterCommit,
}

/// The text D1 gives when the connection to the database drops.
pub const LOST: &str = "D1_ERROR: Network connection lost.";

/// The migration files, in the order D1 applies them.
pub fn migrations() -> Vec<std::path::PathBuf> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 3);
    files
}

impl Sqlite {
    /// An empty database with every migration applied.
    pub fn migrated() -> Self {
        let Some(conn) = POOL.with(|p| p.borrow_mut().pop()) else {
            let mut db = Self::with_migrations(&migrations());
            db.pooled = true;
            return db;
        };
        // A test that panicked inside a batch left its transaction open.
        if !conn.conn.is_autocommit() {
            conn.conn.execute_batch("ROLLBACK").unwrap();
        }
        let tables: Vec<String> = conn
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_stat%'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for t in tables {
            conn.conn
                .execute(&format!("DELETE FROM \"{t}\""), [])
                .unwrap();
        }
        Sqlite {
            conn: RefCell::new(Some(conn)),
            pooled: true,
            faults: RefCell::default(),
            chaos: RefCell::default(),
        }
    }

    /// A database with only these migrations applied (never pooled).
    pub fn with_migrations(files: &[std::path::PathBuf]) -> Self {
        let conn: &'static Connection = Box::leak(Box::new(Connection::open_in_memory().unwrap()));
        let db = Sqlite {
            conn: RefCell::new(Some(Conn {
                conn,
                statements: HashMap::new(),
            })),
            pooled: false,
            faults: RefCell::default(),
            chaos: RefCell::default(),
        };
        for f in files {
            db.execute(&std::fs::read_to_string(f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        db
    }

    /// Plain SQL, outside the API (migrations, test setup).
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        let conn = self.conn.borrow();
        conn.as_ref()
            .unwrap()
            .conn
            .execute_batch(sql)
            .map_err(|e| e.to_string())
    }

    fn run(&self, batch: &Batch) -> Result<Vec<Vec<Json>>, String> {
        let fault = self.faults.borrow_mut().pop_front().or_else(|| {
            let mut chaos = self.chaos.borrow_mut();
            match chaos.as_mut()?.u8(..8) {
                0 => Some(Fault::Before),
                1 => Some(Fault::AfterCommit),
                _ => None,
            }
        });
        if fault == Some(Fault::Before) {
            return Err(LOST.into());
        }
        let out = self.run_now(batch)?;
        if fault == Some(Fault::AfterCommit) {
            return Err(LOST.into());
        }
        Ok(out)
    }

    /// One transaction; on an error everything is rolled back, as D1 does.
    fn run_now(&self, batch: &Batch) -> Result<Vec<Vec<Json>>, String> {
        let mut guard = self.conn.borrow_mut();
        let c = guard.as_mut().unwrap();
        let conn = c.conn;
        conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
        let result = Self::statements(conn, &mut c.statements, batch);
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        if let Err(e) = conn.execute_batch(end) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.to_string());
        }
        result
    }

    fn statements(
        conn: &'static Connection,
        cache: &mut HashMap<&'static str, Statement<'static>>,
        batch: &Batch,
    ) -> Result<Vec<Vec<Json>>, String> {
        let mut out = Vec::new();
        for s in &batch.statements {
            let stmt = match cache.entry(s.sql) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(conn.prepare(s.sql).map_err(|e| e.to_string())?),
            };
            for (i, p) in s.params.iter().enumerate() {
                let r = match p {
                    Value::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
                    Value::Text(t) => stmt.raw_bind_parameter(i + 1, t.as_str()),
                };
                r.map_err(|e| e.to_string())?;
            }
            let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
            let mut rows = stmt.raw_query();
            let mut got = Vec::new();
            while let Some(row) = rows.next().map_err(|e| e.to_string())? {
                let mut obj = Map::new();
                for (i, name) in names.iter().enumerate() {
                    let v = match row.get_ref(i).unwrap() {
                        ValueRef::Null => Json::Null,
                        ValueRef::Integer(n) => json!(n),
                        ValueRef::Real(f) => json!(f),
                        ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                        ValueRef::Blob(_) => panic!("no blobs"),
                    };
                    obj.insert(name.clone(), v);
                }
                got.push(Json::Object(obj));
            }
            out.push(got);
        }
        Ok(out)
    }

    /// One ad hoc statement (test setup and inspection).
    pub fn query(&self, sql: &'static str, params: &[&str]) -> Vec<Json> {
        let batch = Batch {
            statements: vec![clerk_sync_main_api::plan::Statement {
                sql,
                params: params.iter().map(|p| Value::from(*p)).collect(),
            }],
        };
        self.run_now(&batch).unwrap().remove(0)
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take().filter(|_| self.pooled) {
            POOL.with(|p| p.borrow_mut().push(conn));
        }
    }
}

impl Database for Sqlite {
    async fn batch(&self, batch: &Batch) -> Result<Vec<Vec<Json>>, String> {
        self.run(batch)
    }
}

/// Runs a future that never waits (SQLite answers synchronously).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the SQLite database never waits"),
    }
}

/// The API over SQLite, with a clock that ticks one millisecond per request.
pub struct Api {
    pub db: Sqlite,
    clock: Cell<i64>,
    pub last_log: RefCell<Option<RequestLog>>,
}

pub const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

impl Api {
    pub fn new() -> Self {
        Self::with_db(Sqlite::migrated())
    }

    pub fn with_db(db: Sqlite) -> Self {
        Api {
            db,
            clock: Cell::new(START_MS),
            last_log: RefCell::new(None),
        }
    }

    pub fn now(&self) -> String {
        format_millis(self.clock.get()).unwrap()
    }

    fn answer(result: Result<Reply, clerk_sync_main_api::error::ApiError>) -> (u16, Json) {
        let (status, body) = Self::answer_raw(result);
        (status, serde_json::from_str(&body).unwrap())
    }

    /// The status and the body's bytes, as the Worker sends them.
    fn answer_raw(result: Result<Reply, clerk_sync_main_api::error::ApiError>) -> (u16, String) {
        let reply = result.unwrap_or_else(|e| Reply::error(&e, "/"));
        (reply.status, reply.body)
    }

    /// `POST /internal/clerk-sync/batch` with these bytes (or the glue's
    /// error reading them), at the API's clock (which ticks): the status
    /// and the body as sent.
    pub fn batch_raw(
        &self,
        body: Result<&[u8], clerk_sync_main_api::error::ApiError>,
    ) -> (u16, String) {
        self.clock.set(self.clock.get() + 1);
        let mut log = RequestLog::new("POST", "/internal/clerk-sync/batch");
        let result = block_on(service::sync_batch(
            &self.db,
            body,
            self.clock.get(),
            &mut log,
        ));
        *self.last_log.borrow_mut() = Some(log);
        Self::answer_raw(result)
    }

    pub fn batch_bytes(&self, body: &[u8]) -> (u16, Json) {
        let (status, body) = self.batch_raw(Ok(body));
        (status, serde_json::from_str(&body).unwrap())
    }

    /// The contract's batch of these commands.
    pub fn send_batch(&self, commands: &[Command]) -> (u16, Json) {
        let batch = clerk_sync_contract::batch::BatchRequest::new(commands.to_vec());
        self.batch_bytes(&batch.to_json())
    }

    /// `POST /internal/clerk-sync/failures` with these bytes, at the API's
    /// clock (which ticks).
    pub fn failures_bytes(&self, body: &[u8]) -> (u16, Json) {
        self.clock.set(self.clock.get() + 1);
        let mut log = RequestLog::new("POST", "/internal/clerk-sync/failures");
        let result = block_on(service::record_failures(
            &self.db,
            Ok(body),
            self.clock.get(),
            &mut log,
        ));
        *self.last_log.borrow_mut() = Some(log);
        Self::answer(result)
    }

    /// A `record_failure` for each command, with the code `code`.
    pub fn record_failures(&self, failed: &[Command], code: &str) -> (u16, Json) {
        use clerk_sync_contract::failure::{FailureBatch, RecordFailure};
        let batch = FailureBatch::new(
            failed
                .iter()
                .map(|c| RecordFailure::new(c.clone(), code))
                .collect(),
        );
        self.failures_bytes(&batch.to_json())
    }

    /// `GET /internal/users?<query>`: the status and the body as sent.
    pub fn rows_raw(&self, query: Option<&str>) -> (u16, String) {
        Self::answer_raw(block_on(service::users(&self.db, query)))
    }

    pub fn rows(&self, query: &str) -> (u16, Json) {
        let (status, body) = self.rows_raw(Some(query));
        (status, serde_json::from_str(&body).unwrap())
    }

    pub fn send_bytes(&self, body: &[u8]) -> (u16, Json) {
        self.clock.set(self.clock.get() + 1);
        let mut log = RequestLog::new("POST", "/internal/clerk-sync");
        let result = block_on(service::sync(
            &self.db,
            Ok(body),
            self.clock.get(),
            &mut log,
        ));
        let (status, body) = Self::answer(result);
        *self.last_log.borrow_mut() = Some(log);
        (status, body)
    }

    pub fn send(&self, c: &Command) -> (u16, Json) {
        self.send_bytes(&c.to_json())
    }

    pub fn user(&self, clerk_id: &str) -> (u16, Json) {
        Self::answer(block_on(service::user(&self.db, clerk_id)))
    }

    /// `POST /internal/users` at the API's clock (which ticks).
    pub fn create_user(&self, body: &Json) -> (u16, Json) {
        self.clock.set(self.clock.get() + 1);
        let bytes = body.to_string().into_bytes();
        Self::answer(block_on(service::create_user(
            &self.db,
            Ok(&bytes),
            self.clock.get(),
        )))
    }

    pub fn status(&self) -> Json {
        let (s, body) = Self::answer(block_on(service::status(&self.db)));
        assert_eq!(s, 200);
        body
    }

    /// The API's clock now (it ticks one millisecond per write request).
    pub fn clock_ms(&self) -> i64 {
        self.clock.get()
    }

    /// `GET /internal/metrics?<query>` at `now_ms`: the status, the body as
    /// sent and its content type.
    pub fn metrics_raw(&self, query: Option<&str>, now_ms: i64) -> (u16, String, &'static str) {
        let reply = block_on(service::metrics(&self.db, query, now_ms))
            .unwrap_or_else(|e| Reply::error(&e, "/internal/metrics"));
        (reply.status, reply.body, reply.content_type)
    }

    /// The metrics JSON at `now_ms`, read as the dashboard reads it.
    pub fn metrics(
        &self,
        query: Option<&str>,
        now_ms: i64,
    ) -> clerk_sync_contract::metrics::Metrics {
        let (status, body, _) = self.metrics_raw(query, now_ms);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

pub fn ms(t: i64) -> String {
    format_millis(t).unwrap()
}

fn prov(op: &str, event_type: &str, at_ms: i64) -> Provenance {
    Provenance {
        operation_id: op.into(),
        event_type: event_type.into(),
        occurred_at: ms(at_ms),
        received_at: ms(at_ms + 5),
    }
}

/// A Clerk user at version `updated_ms`; the names carry the version so a
/// test can tell which version a row holds.
pub fn record(email: Option<&str>, updated_ms: i64) -> UserRecord {
    UserRecord {
        email: email.map(str::to_owned),
        email_verified: true,
        first_name: Some(format!("First{updated_ms}")),
        last_name: Some("Last".into()),
        username: None,
        image_url: Some("https://img.example/u.png".into()),
        external_id: None,
        created_at: Some(ms(START_MS - 10_000)),
        updated_at: Some(ms(updated_ms)),
    }
}

pub fn upsert(op: &str, clerk_id: &str, user: UserRecord) -> Command {
    let at = START_MS;
    Command::upsert(prov(op, "user.updated", at), clerk_id.into(), user)
}

pub fn delete(op: &str, clerk_id: &str, external_id: Option<&str>) -> Command {
    Command::delete(
        prov(op, "user.deleted", START_MS),
        clerk_id.into(),
        external_id.map(str::to_owned),
    )
}

/// `POST /internal/users` for the application's signup `id`, claimed by
/// `link_by` (`external_id` or `email`): its row.
pub fn signup(api: &Api, id: &str, email: &str, link_by: &str) -> Json {
    let (s, body) = api.create_user(
        &json!({"id": id, "email": email, "first_name": "Pending", "link_by": link_by}),
    );
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["user"]["sync_status"], "pending");
    assert_eq!(body["user"]["link_by"], link_by);
    body["user"].clone()
}

/// One version of a Clerk user, as an event Clerk sends: build it with
/// [`Event::created`] and change it with the builders.
#[derive(Debug, Clone)]
pub struct Event {
    pub op: String,
    pub event_type: &'static str,
    pub clerk_id: String,
    pub created_ms: i64,
    pub updated_ms: Option<i64>,
    pub email: Option<String>,
    pub verified: bool,
    pub external_id: Option<String>,
}

impl Event {
    /// `user.created` at `created_ms`, with a verified primary email.
    pub fn created(op: &str, clerk_id: &str, created_ms: i64, email: Option<&str>) -> Self {
        Event {
            op: op.into(),
            event_type: "user.created",
            clerk_id: clerk_id.into(),
            created_ms,
            updated_ms: Some(created_ms),
            email: email.map(str::to_owned),
            verified: true,
            external_id: None,
        }
    }

    /// The same user, `user.updated` at `updated_ms`.
    pub fn updated(&self, op: &str, updated_ms: i64) -> Self {
        Event {
            op: op.into(),
            event_type: "user.updated",
            updated_ms: Some(updated_ms),
            ..self.clone()
        }
    }

    pub fn email(mut self, email: Option<&str>) -> Self {
        self.email = email.map(str::to_owned);
        self
    }

    pub fn unverified(mut self) -> Self {
        self.verified = false;
        self
    }

    pub fn verified(mut self) -> Self {
        self.verified = true;
        self
    }

    pub fn external_id(mut self, id: Option<&str>) -> Self {
        self.external_id = id.map(str::to_owned);
        self
    }

    /// The name the row shows for this version.
    pub fn first_name(&self) -> String {
        format!("{}@{}", self.clerk_id, self.updated_ms.unwrap_or(0))
    }

    pub fn command(&self) -> Command {
        let user = UserRecord {
            email: self.email.clone(),
            email_verified: self.email.is_some() && self.verified,
            first_name: Some(self.first_name()),
            last_name: None,
            username: None,
            image_url: None,
            external_id: self.external_id.clone(),
            created_at: Some(ms(self.created_ms)),
            updated_at: self.updated_ms.map(ms),
        };
        let at = self.updated_ms.unwrap_or(self.created_ms);
        Command::upsert(
            prov(&self.op, self.event_type, at),
            self.clerk_id.clone(),
            user,
        )
    }

    /// The user's `user.deleted` (with its external id when `with_external_id`).
    pub fn deleted(&self, op: &str, at_ms: i64, with_external_id: bool) -> Command {
        let external_id = self.external_id.clone().filter(|_| with_external_id);
        Command::delete(
            prov(op, "user.deleted", at_ms),
            self.clerk_id.clone(),
            external_id,
        )
    }
}

impl Api {
    /// Sends and expects `status`.
    pub fn expect(&self, c: &Command, status: u16) -> Json {
        let (s, body) = self.send(c);
        assert_eq!(s, status, "{} {}: {body}", c.operation_id, c.clerk_id);
        body
    }

    /// The `users` row with this id, if any.
    pub fn row(&self, id: &str) -> Option<Json> {
        self.db
            .query("SELECT * FROM users WHERE id = ?1", &[id])
            .pop()
    }

    /// The `users` rows of this Clerk id (never more than one).
    pub fn rows_of(&self, clerk_id: &str) -> Vec<Json> {
        self.db
            .query("SELECT * FROM users WHERE clerk_id = ?1", &[clerk_id])
    }
}

/// The table as order must not change it: every row keyed by its signup id
/// or, for a row the sync made (random id), its Clerk id; without the times
/// the API's clock writes (`updated_at`, `last_sync_attempt`, the deletion
/// time: only whether the row is deleted).
pub fn table(api: &Api) -> Vec<Json> {
    let rows = api.db.query(
        "SELECT CASE WHEN u.id IN (SELECT id FROM signups) THEN 'signup:' || u.id
                     ELSE 'clerk:' || u.clerk_id END AS key,
                u.clerk_id, u.email, u.first_name, u.last_name, u.username, u.image_url,
                CASE WHEN u.id IN (SELECT id FROM signups) THEN NULL ELSE u.created_at END
                    AS clerk_created_at,
                u.clerk_updated_at, u.last_operation_id, u.deleted_at IS NOT NULL AS deleted,
                u.sync_status, u.sync_error
         FROM users u ORDER BY key",
        &[],
    );
    let tombstones = api.db.query(
        "SELECT clerk_id, NULL AS key FROM clerk_tombstones ORDER BY clerk_id",
        &[],
    );
    rows.into_iter().chain(tombstones).collect()
}

/// Delivers every command in `order`, then redelivers those not taken (as
/// Svix does) until all are: `None` if a whole round takes none and none of
/// its answers was a server error (the table is stuck: only a change of
/// data could free it), else the number of deliveries. `after` sees each
/// answer.
pub fn deliver_until_taken(
    api: &Api,
    order: &[Command],
    mut after: impl FnMut(&Api, &Command, u16),
) -> Option<usize> {
    let mut taken = std::collections::HashSet::new();
    let mut waiting: Vec<&Command> = order.iter().collect();
    let mut deliveries = 0;
    loop {
        let before = taken.len();
        let mut again = Vec::new();
        let mut server_error = false;
        for c in waiting {
            let (status, _) = api.send(c);
            deliveries += 1;
            server_error |= status >= 500;
            after(api, c, status);
            if status == 200 || status == 409 {
                taken.insert(c.operation_id.clone());
            } else if !taken.contains(&c.operation_id) {
                again.push(c);
            }
        }
        if again.is_empty() {
            return Some(deliveries);
        }
        if taken.len() == before && !server_error {
            return None;
        }
        waiting = again;
    }
}
