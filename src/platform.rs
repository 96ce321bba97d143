//! The one piece of platform code both Workers share (wasm32 only, with or
//! without the relay's `worker-glue` feature): how a JSON answer becomes a
//! `worker::Response`.

use worker::{Headers, Response, Result};

/// A JSON answer with `cache-control: no-store`, and `Allow` for a 405.
pub fn json_response(status: u16, body: String, allow: Option<&str>) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    if let Some(allow) = allow {
        headers.set("allow", allow)?;
    }
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}
