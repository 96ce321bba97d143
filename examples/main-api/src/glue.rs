//! The Workers glue: read the request, take the time from JavaScript, run
//! the batches on D1, answer, and write the one log line. Every decision is
//! in `service`.

use clerk_sync_contract::body::{body_read, declared_too_long};
use clerk_sync_contract::secret::SecretString;
use clerk_sync_platform::{respond, BodyError};
use serde_json::Value as Json;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_log, event, Context, D1Database, D1PreparedStatement, Date, Env, Request, Response,
    Result,
};

use crate::error::ApiError;
use crate::log::RequestLog;
use crate::plan::{Batch, Value};
use crate::request::{self, Route, MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES};
use crate::service::{self, Database};
use crate::view::Reply;

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = Date::now().as_millis();
    let method = req.method().to_string();
    let path = req.path();
    let secret = env
        .secret("API_SECRET")
        .ok()
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .map(SecretString::new);
    let authorization = req.headers().get("authorization").ok().flatten();

    let admitted = service::admit(&method, &path, secret.as_ref(), authorization.as_deref());
    // The route's name even when the bearer is refused.
    let route_name = request::route(&method, &path).map_or("other", |r| r.name());
    let mut log = RequestLog::new(&method, route_name);
    let result = match admitted {
        Err(e) => Err(e),
        Ok(Route::Health) => Ok(Reply::health()),
        Ok(route) => match env.d1("DB") {
            Err(_) => Err(ApiError::Misconfigured),
            Ok(db) => {
                let db = D1(db);
                match route {
                    Route::Sync => {
                        let body = read_body(&mut req, MAX_BODY_BYTES).await;
                        let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
                        service::sync(&db, body.as_deref().map_err(Clone::clone), now_ms, &mut log)
                            .await
                    }
                    Route::Batch => {
                        let body = read_body(&mut req, MAX_BATCH_BODY_BYTES).await;
                        let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
                        let body = body.as_deref().map_err(Clone::clone);
                        service::sync_batch(&db, body, now_ms, &mut log).await
                    }
                    Route::Failures => {
                        let body = read_body(&mut req, MAX_BATCH_BODY_BYTES).await;
                        let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
                        let body = body.as_deref().map_err(Clone::clone);
                        service::record_failures(&db, body, now_ms, &mut log).await
                    }
                    Route::Users => {
                        let query = req.url().ok().and_then(|u| u.query().map(str::to_owned));
                        service::users(&db, query.as_deref()).await
                    }
                    Route::CreateUser => {
                        let body = read_body(&mut req, MAX_BODY_BYTES).await;
                        let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
                        service::create_user(&db, body.as_deref().map_err(Clone::clone), now_ms)
                            .await
                    }
                    Route::User(clerk_id) => service::user(&db, clerk_id).await,
                    Route::Status => service::status(&db).await,
                    Route::Metrics => {
                        let query = req.url().ok().and_then(|u| u.query().map(str::to_owned));
                        let now_ms = i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX);
                        service::metrics(&db, query.as_deref(), now_ms).await
                    }
                    Route::Health => Ok(Reply::health()),
                }
            }
        },
    };
    let reply = match &result {
        Ok(reply) => reply.clone(),
        Err(e) => Reply::error(e, &path),
    };
    let elapsed = Date::now().as_millis().saturating_sub(started);
    log.finish(result.as_ref().map(|_| ()), reply.status, elapsed);
    console_log!("{}", log.to_json());
    respond(reply.status, reply.content_type, reply.body, reply.allow)
}

/// The body, read as the relay reads its own (`clerk_sync_contract::body`):
/// a declared length over `max` is refused before reading, a chunked or
/// length-less body is counted as it arrives and refused at `max` (the
/// route's limit: [`MAX_BODY_BYTES`], or [`MAX_BATCH_BODY_BYTES`] for a batch).
async fn read_body(req: &mut Request, max: u32) -> std::result::Result<Vec<u8>, ApiError> {
    let headers = req.headers();
    let declared = headers.get("content-length").ok().flatten();
    let transfer_encoding = headers.get("transfer-encoding").ok().flatten();
    if declared_too_long(declared.as_deref(), max) {
        return Err(ApiError::PayloadTooLarge);
    }
    let how = body_read(declared.as_deref(), transfer_encoding.as_deref());
    clerk_sync_platform::read_body(req, max, how)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => ApiError::PayloadTooLarge,
            BodyError::Unreadable => ApiError::UnreadableBody,
        })
}

struct D1(D1Database);

impl Database for D1 {
    async fn batch(&self, batch: &Batch) -> std::result::Result<Vec<Vec<Json>>, String> {
        let statements = batch
            .statements
            .iter()
            .map(|s| {
                let params: Vec<JsValue> = s
                    .params
                    .iter()
                    .map(|p| match p {
                        Value::Null => JsValue::NULL,
                        Value::Text(t) => JsValue::from_str(t),
                    })
                    .collect();
                self.0.prepare(s.sql).bind(&params)
            })
            .collect::<Result<Vec<D1PreparedStatement>>>()
            .map_err(|e| error_text(&e))?;
        let results = self.0.batch(statements).await.map_err(|e| error_text(&e))?;
        results
            .iter()
            .map(|r| r.results::<Json>().map_err(|e| error_text(&e)))
            .collect()
    }
}

/// The database's own words (SQLite's message inside D1's), for
/// `error::classify_db_error`. Never logged as a whole.
fn error_text(e: &worker::Error) -> String {
    match e {
        worker::Error::D1(d1) => {
            let js: &worker::js_sys::Error = d1.as_ref();
            format!("{}: {}", String::from(js.message()), d1.cause())
        }
        other => other.to_string(),
    }
}
