//! The few lines of Workers glue that every clerk-sync Worker shares, so each
//! Worker's own glue stays small and alike: reading a request body within a
//! limit, as `clerk_sync_contract::body` decided, one outgoing request
//! ([`exchange`]) and an answer. Compiled
//! for wasm32 only (natively only [`json_string`]); it performs I/O and
//! decides nothing.

/// What became of one outgoing request ([`exchange`]).
pub use clerk_sync_contract::exchange::Answer as Exchanged;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::time::Duration;

    use clerk_sync_contract::body::{BodyLimit, BodyRead};
    use futures_util::future::{select, Either};
    use worker::js_sys::{futures::JsFuture, Reflect, Uint8Array, JSON};
    use worker::wasm_bindgen::{JsCast, JsValue};
    use worker::{
        web_sys, AbortController, Delay, Fetch, Fetcher, Headers, Method, Request, RequestInit,
        RequestRedirect, Response, Result,
    };

    use crate::Exchanged;

    /// One request a Worker sends to a service it reads or drives.
    #[derive(Debug)]
    pub struct Outgoing<'a> {
        pub method: Method,
        pub url: &'a str,
        /// Sent as `Authorization: Bearer …`.
        pub bearer: Option<&'a str>,
        /// Sent as `application/json`.
        pub body: Option<&'a [u8]>,
        /// `name/version` of the sender.
        pub user_agent: &'a str,
        pub timeout_ms: u32,
        /// A longer answer's body is dropped (see [`Exchanged::Status`]).
        pub max_answer_bytes: usize,
    }

    /// Sends `out` through `via` (a service binding) when given, else to its
    /// URL, raced against its timeout; redirects are not followed (an answer
    /// from elsewhere is not the service's).
    pub async fn exchange(via: Option<&Fetcher>, out: Outgoing<'_>) -> Exchanged {
        let headers = Headers::new();
        let mut set = vec![
            ("accept", "application/json".to_owned()),
            ("user-agent", out.user_agent.to_owned()),
        ];
        if let Some(bearer) = out.bearer {
            set.push(("authorization", format!("Bearer {bearer}")));
        }
        if out.body.is_some() {
            set.push(("content-type", "application/json".to_owned()));
        }
        for (name, value) in &set {
            if headers.set(name, value).is_err() {
                return Exchanged::Unreachable;
            }
        }
        let mut init = RequestInit::new();
        init.with_method(out.method)
            .with_redirect(RequestRedirect::Manual)
            .with_headers(headers);
        if let Some(body) = out.body {
            init.with_body(Some(Uint8Array::from(body).into()));
        }
        let Ok(request) = Request::new_with_init(out.url, &init) else {
            return Exchanged::Unreachable;
        };
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async move {
            let mut response = match via {
                // A binding's request takes no signal here: the timer still
                // bounds the wait, and the answer is dropped.
                Some(worker) => worker.fetch_request(request).await?,
                None => Fetch::Request(request).send_with_signal(&signal).await?,
            };
            let retry_after = response.headers().get("retry-after").ok().flatten();
            let status = response.status_code();
            let body = response.bytes().await?;
            Ok::<_, worker::Error>((status, retry_after, body))
        });
        let timer = Box::pin(Delay::from(Duration::from_millis(u64::from(
            out.timeout_ms,
        ))));
        match select(exchange, timer).await {
            Either::Left((Ok((status, retry_after, body)), _)) => Exchanged::Status {
                status,
                retry_after,
                body: if body.len() <= out.max_answer_bytes {
                    body
                } else {
                    Vec::new()
                },
            },
            Either::Left((Err(_), _)) => Exchanged::Unreachable,
            Either::Right(((), _)) => {
                controller.abort();
                Exchanged::TimedOut
            }
        }
    }

    /// Why a body could not be read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum BodyError {
        /// More bytes arrived than the limit; reading stopped there.
        TooLarge,
        /// The runtime failed to read the stream.
        Unreadable,
    }

    /// Reads the body as `how` says: in one `arrayBuffer()` call when a
    /// declared length frames it (the caller already held that length to
    /// `max`), else chunk by chunk, stopping as soon as it is over `max`.
    pub async fn read_body(
        req: &mut Request,
        max: u32,
        how: BodyRead,
    ) -> std::result::Result<Vec<u8>, BodyError> {
        // One reader for both: it cancels the sender's stream once the body
        // is over `max` (dropping a half-read `worker` stream did not).
        read_request_body(req.inner(), max, how).await
    }

    /// As [`read_body`], on the runtime's own `Request` (no `worker`
    /// wrapper): one `arrayBuffer()` when a declared length frames the body,
    /// else its stream chunk by chunk, stopping as soon as it is over `max`.
    pub async fn read_request_body(
        req: &web_sys::Request,
        max: u32,
        how: BodyRead,
    ) -> std::result::Result<Vec<u8>, BodyError> {
        let mut limit = BodyLimit::new(max);
        if how == BodyRead::Whole {
            // A request without a body gives an empty buffer.
            let buffer = req.array_buffer().map_err(|_| BodyError::Unreadable)?;
            let buffer = JsFuture::from(buffer)
                .await
                .map_err(|_| BodyError::Unreadable)?;
            limit
                .push(&Uint8Array::new(&buffer).to_vec())
                .map_err(|_| BodyError::TooLarge)?;
            return Ok(limit.into_bytes());
        }
        let Some(stream) = req.body() else {
            return Ok(limit.into_bytes());
        };
        let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        loop {
            let chunk = JsFuture::from(reader.read())
                .await
                .map_err(|_| BodyError::Unreadable)?;
            if Reflect::get(&chunk, &"done".into()).is_ok_and(|d| d.is_truthy()) {
                break;
            }
            let value = Reflect::get(&chunk, &"value".into()).map_err(|_| BodyError::Unreadable)?;
            if limit.push(&Uint8Array::new(&value).to_vec()).is_err() {
                // Stop the sender: nothing more of this body is wanted.
                let _ = reader.cancel();
                return Err(BodyError::TooLarge);
            }
        }
        Ok(limit.into_bytes())
    }

    /// The runtime's own `Response` with `cache-control: no-store`, and
    /// `Allow` for a 405: status and headers go over as one JSON text, so
    /// the answer costs two calls into JavaScript, not one per header.
    pub fn answer(
        status: u16,
        content_type: &str,
        body: &str,
        allow: Option<&str>,
    ) -> std::result::Result<web_sys::Response, JsValue> {
        let mut init = format!(
            r#"{{"status":{status},"headers":{{"cache-control":"no-store","content-type":{}"#,
            crate::json_string(content_type)
        );
        if let Some(allow) = allow {
            init.push_str(r#","allow":"#);
            init.push_str(&crate::json_string(allow));
        }
        init.push_str("}}");
        let init: web_sys::ResponseInit = JSON::parse(&init)?.unchecked_into();
        web_sys::Response::new_with_opt_str_and_init(Some(body), &init)
    }

    /// A JSON answer with `cache-control: no-store`, and `Allow` for a 405.
    pub fn json_response(status: u16, body: String, allow: Option<&str>) -> Result<Response> {
        respond(status, "application/json", body, allow)
    }

    /// An answer of any content type (one passed on from another Worker),
    /// with `cache-control: no-store`, and `Allow` for a 405.
    pub fn respond(
        status: u16,
        content_type: &str,
        body: String,
        allow: Option<&str>,
    ) -> Result<Response> {
        let headers = Headers::new();
        headers.set("content-type", content_type)?;
        headers.set("cache-control", "no-store")?;
        if let Some(allow) = allow {
            headers.set("allow", allow)?;
        }
        Ok(Response::ok(body)?
            .with_status(status)
            .with_headers(headers))
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

/// `s` as a JSON string literal (for the few JSON texts the glue hands to
/// `JSON.parse` in one call).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(
            super::json_string("application/json"),
            r#""application/json""#
        );
        assert_eq!(
            super::json_string("a\"b\\c\n\u{1}é"),
            r#""a\"b\\c\u000a\u0001é""#
        );
    }
}
