//! A `Database` over an in-memory SQLite with the migrations applied, one
//! transaction per batch like D1, and builders for contract commands.

use std::cell::{Cell, RefCell};

use clerk_sync_contract::command::{Command, Provenance, UserRecord};
use clerk_sync_contract::time::format_millis;
use clerk_sync_main_api::log::RequestLog;
use clerk_sync_main_api::plan::{Batch, Value};
use clerk_sync_main_api::service::{self, Database};
use clerk_sync_main_api::view::Reply;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

pub struct Sqlite(RefCell<Connection>);

impl Sqlite {
    pub fn migrated() -> Self {
        let conn = Connection::open_in_memory().unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        assert!(files.len() >= 2);
        for f in files {
            conn.execute_batch(&std::fs::read_to_string(&f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        }
        Sqlite(RefCell::new(conn))
    }

    fn run(&self, batch: &Batch) -> Result<Vec<Vec<Json>>, String> {
        let mut conn = self.0.borrow_mut();
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for s in &batch.statements {
            let mut stmt = tx.prepare(s.sql).map_err(|e| e.to_string())?;
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
        // Dropping `tx` without commit rolls back, as D1 does on an error.
        tx.commit().map_err(|e| e.to_string())?;
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
        self.run(&batch).unwrap().remove(0)
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
        Api {
            db: Sqlite::migrated(),
            clock: Cell::new(START_MS),
            last_log: RefCell::new(None),
        }
    }

    pub fn now(&self) -> String {
        format_millis(self.clock.get()).unwrap()
    }

    fn answer(result: Result<Reply, clerk_sync_main_api::error::ApiError>) -> (u16, Json) {
        let reply = result.unwrap_or_else(|e| Reply::error(&e, "/"));
        (reply.status, serde_json::from_str(&reply.body).unwrap())
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

    pub fn create_user(&self, body: &Json) -> (u16, Json) {
        let bytes = body.to_string().into_bytes();
        Self::answer(block_on(service::create_user(&self.db, Ok(&bytes))))
    }

    pub fn status(&self) -> Json {
        let (s, body) = Self::answer(block_on(service::status(&self.db)));
        assert_eq!(s, 200);
        body
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
