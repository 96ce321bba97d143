//! The request path, without I/O: routing, the checks before and after the
//! body is read, the forward request, the interpretation of the main API's
//! answer, and every reply the relay sends. The wasm32 glue only reads the
//! request, calls these in order, performs the one `fetch`, and answers.

use serde_json::json;

use crate::command::Command;
use crate::config::{Config, ConfigProblem};
use crate::error::RelayError;
use crate::event::{map_event, Mapped};
use crate::verify::{SignatureHeaders, VerifiedDelivery, Verifier};

pub const WEBHOOK_PATH: &str = "/webhook";
pub const HEALTH_PATH: &str = "/health";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Webhook,
    Health,
}

/// Which handler a request goes to.
pub fn route(method: &str, path: &str) -> Result<Route, RelayError> {
    match (path, method) {
        (WEBHOOK_PATH, "POST") => Ok(Route::Webhook),
        (HEALTH_PATH, "GET" | "HEAD") => Ok(Route::Health),
        (WEBHOOK_PATH | HEALTH_PATH, _) => Err(RelayError::MethodNotAllowed),
        _ => Err(RelayError::NotFound),
    }
}

/// The `Allow` header for a 405 on `path`.
pub fn allowed_methods(path: &str) -> &'static str {
    if path == HEALTH_PATH {
        "GET, HEAD"
    } else {
        "POST"
    }
}

/// The query of a serialized URL (between the first `?` and any `#`), as
/// `url::Url::query` gives it: `None` without a `?`.
pub fn query_of(url: &str) -> Option<&str> {
    let before_fragment = url.split_once('#').map_or(url, |(head, _)| head);
    before_fragment.split_once('?').map(|(_, query)| query)
}

/// Steps 1 and 2, before any byte of the body is read: the query secret,
/// then the declared length.
pub fn admit(
    config: &Config,
    query: Option<&str>,
    content_length: Option<&str>,
) -> Result<(), RelayError> {
    if !config.check_query_secret(query) {
        return Err(RelayError::Unauthorized);
    }
    if let Some(len) = content_length {
        // A length that is not a number is left to the runtime; the bytes
        // actually read are checked by `BodyLimit` either way.
        let too_long = len
            .trim()
            .parse::<u64>()
            .map(|n| n > u64::from(config.max_body_bytes))
            .unwrap_or(false);
        if too_long {
            return Err(RelayError::PayloadTooLarge);
        }
    }
    Ok(())
}

/// How the glue reads the body once `admit` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// In one read: the declared length is the framing and `admit` already
    /// held it to the limit.
    Whole,
    /// Chunk by chunk through [`BodyLimit`], stopping at the limit: no usable
    /// length, or a `transfer-encoding` beside it (then the runtime frames by
    /// chunks and the length says nothing about how much will arrive).
    Chunked,
}

pub fn body_read(content_length: Option<&str>, transfer_encoding: Option<&str>) -> BodyRead {
    let declared = content_length.is_some_and(|n| n.trim().parse::<u64>().is_ok());
    if declared && transfer_encoding.is_none() {
        BodyRead::Whole
    } else {
        BodyRead::Chunked
    }
}

/// Collects the body chunk by chunk and stops as soon as it is over the
/// limit, so a chunked body with no length cannot grow memory unbounded.
#[derive(Debug)]
pub struct BodyLimit {
    max: usize,
    bytes: Vec<u8>,
}

impl BodyLimit {
    pub fn new(max_bytes: u32) -> Self {
        Self {
            max: max_bytes as usize,
            bytes: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), RelayError> {
        if self.bytes.len() + chunk.len() > self.max {
            return Err(RelayError::PayloadTooLarge);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A delivery that passed every check, and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub delivery: VerifiedDelivery,
    pub mapped: Mapped,
}

/// Steps 3 and 4: signature (or an allowed unsigned delivery), then the
/// event and its command. `now_ms` is the relay's clock in Unix milliseconds.
pub fn process(
    config: &Config,
    headers: &SignatureHeaders,
    body: &[u8],
    now_ms: u64,
) -> Result<Processed, RelayError> {
    if body.len() > config.max_body_bytes as usize {
        return Err(RelayError::PayloadTooLarge);
    }
    let delivery = if config.allow_unsigned && headers.is_empty() {
        Verifier::accept_unsigned(body)
    } else {
        config.verifier.verify(headers, body, now_ms / 1000)?
    };
    let mapped = map_event(body, &delivery, i64::try_from(now_ms).unwrap_or(i64::MAX))?;
    Ok(Processed { delivery, mapped })
}

/// The request the glue sends to the main API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The contract's `POST {API_URL}{API_SYNC_PATH}`.
pub fn forward_request(config: &Config, command: &Command) -> ForwardRequest {
    ForwardRequest {
        url: config.forward_url.clone(),
        headers: vec![
            (
                "authorization",
                format!("Bearer {}", config.api_secret.expose()),
            ),
            ("content-type", "application/json".into()),
            ("idempotency-key", command.operation_id.clone()),
            ("user-agent", format!("clerk-sync/{}", crate::VERSION)),
        ],
        body: command.to_json(),
    }
}

/// How the one forward attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamResult {
    Status(u16),
    Unavailable,
    TimedOut,
}

/// 2xx, or 409 (already applied), means the main API has the command.
/// Everything else is an error, so Svix retries.
pub fn interpret_upstream(result: UpstreamResult) -> Result<u16, RelayError> {
    match result {
        UpstreamResult::Status(s) if (200..300).contains(&s) || s == 409 => Ok(s),
        UpstreamResult::Status(s) => Err(RelayError::UpstreamRejected(s)),
        UpstreamResult::Unavailable => Err(RelayError::UpstreamUnavailable),
        UpstreamResult::TimedOut => Err(RelayError::UpstreamTimeout),
    }
}

/// An answer: status, JSON body, and the `Allow` header for a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            allow: None,
        }
    }

    pub fn forwarded(command: &Command) -> Self {
        Self::json(
            200,
            json!({"ok": true, "forwarded": true, "operation_id": command.operation_id, "command": command.command.as_str()}),
        )
    }

    pub fn ignored() -> Self {
        Self::json(200, json!({"ok": true, "ignored": true}))
    }

    pub fn error(err: &RelayError, path: &str) -> Self {
        let mut reply = Self::json(
            err.status(),
            json!({"ok": false, "error": err.code(), "message": err.message()}),
        );
        if *err == RelayError::MethodNotAllowed {
            reply.allow = Some(allowed_methods(path));
        }
        reply
    }

    /// `GET /health`: 200 with no secret, or 503 naming each problem.
    pub fn health(config: &Result<Config, Vec<ConfigProblem>>) -> Self {
        match config {
            Ok(c) => Self::json(
                200,
                json!({
                    "ok": true,
                    "status": "ok",
                    "service": "clerk-sync",
                    "version": crate::VERSION,
                    "signing_secrets": c.verifier.secret_count(),
                    "allow_unsigned": c.allow_unsigned,
                    "forward_timeout_ms": c.forward_timeout_ms,
                    "max_body_bytes": c.max_body_bytes,
                }),
            ),
            Err(problems) => Self::json(
                503,
                json!({
                    "ok": false,
                    "status": "misconfigured",
                    "error": "misconfigured",
                    "message": "the relay is misconfigured",
                    "problems": problems,
                }),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        ALLOW_UNSIGNED_WEBHOOKS, API_SECRET, CLERK_WEBHOOK_SECRET, WEBHOOK_QUERY_SECRET,
    };
    use crate::verify::VerifyError;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(allow_unsigned: bool) -> Config {
        Config::from_lookup(|k| {
            Some(match k {
                CLERK_WEBHOOK_SECRET => SECRET.into(),
                WEBHOOK_QUERY_SECRET => "q".into(),
                API_SECRET => "api-secret".into(),
                ALLOW_UNSIGNED_WEBHOOKS => allow_unsigned.to_string(),
                crate::config::MAX_BODY_BYTES => "100".into(),
                _ => return None,
            })
        })
        .unwrap()
    }

    #[test]
    fn query_of_takes_what_url_query_would() {
        assert_eq!(
            query_of("http://h/webhook?secret=a%20b&x=1"),
            Some("secret=a%20b&x=1")
        );
        assert_eq!(
            query_of("http://h/webhook?secret=a?b#frag"),
            Some("secret=a?b")
        );
        assert_eq!(query_of("http://h/webhook?"), Some(""));
        assert_eq!(query_of("http://h/webhook"), None);
        assert_eq!(query_of("http://h/webhook#x?y"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/webhook"), Ok(Route::Webhook));
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("GET", "/webhook"), Err(RelayError::MethodNotAllowed));
        assert_eq!(route("POST", "/webhook/"), Err(RelayError::NotFound));
        assert_eq!(route("POST", "/"), Err(RelayError::NotFound));
        let r = Reply::error(&RelayError::MethodNotAllowed, "/webhook");
        assert_eq!((r.status, r.allow), (405, Some("POST")));
    }

    #[test]
    fn admit_checks_secret_before_length() {
        let c = config(false);
        assert_eq!(
            admit(&c, Some("secret=x"), Some("999999")),
            Err(RelayError::Unauthorized)
        );
        assert_eq!(
            admit(&c, Some("secret=q"), Some("101")),
            Err(RelayError::PayloadTooLarge)
        );
        assert_eq!(admit(&c, Some("secret=q"), Some("100")), Ok(()));
        assert_eq!(admit(&c, Some("secret=q"), None), Ok(()));
    }

    #[test]
    fn only_a_plain_declared_length_is_read_whole() {
        assert_eq!(body_read(Some("12"), None), BodyRead::Whole);
        assert_eq!(body_read(Some("12"), Some("chunked")), BodyRead::Chunked);
        assert_eq!(body_read(None, Some("chunked")), BodyRead::Chunked);
        assert_eq!(body_read(None, None), BodyRead::Chunked);
        assert_eq!(body_read(Some("x"), None), BodyRead::Chunked);
    }

    #[test]
    fn body_limit_counts_actual_bytes() {
        let mut b = BodyLimit::new(10);
        assert!(b.push(b"12345").is_ok());
        assert!(b.push(b"67890").is_ok());
        assert_eq!(b.push(b"1"), Err(RelayError::PayloadTooLarge));
        assert_eq!(b.into_bytes(), b"1234567890");
    }

    #[test]
    fn unsigned_needs_the_flag_and_no_signature_header() {
        let body = br#"{"type":"user.deleted","data":{"id":"u"}}"#;
        let none = SignatureHeaders::default();
        assert_eq!(
            process(&config(false), &none, body, 1_000).unwrap_err(),
            RelayError::Signature(VerifyError::MissingHeaders)
        );
        let p = process(&config(true), &none, body, 1_000).unwrap();
        assert!(p.delivery.operation_id().starts_with("unsigned_"));
        // One header present: it must verify even when unsigned is allowed.
        let partial = SignatureHeaders {
            webhook_id: Some("msg_1".into()),
            ..Default::default()
        };
        assert_eq!(
            process(&config(true), &partial, body, 1_000).unwrap_err(),
            RelayError::Signature(VerifyError::MissingHeaders)
        );
    }

    #[test]
    fn forward_request_carries_the_contract_headers() {
        let c = config(true);
        let body = br#"{"type":"user.deleted","data":{"id":"u"}}"#;
        let p = process(&c, &SignatureHeaders::default(), body, 1_000).unwrap();
        let Mapped::Forward(cmd) = p.mapped else {
            panic!()
        };
        let f = forward_request(&c, &cmd);
        assert_eq!(f.url, "http://127.0.0.1:8787/internal/clerk-sync");
        assert!(f
            .headers
            .contains(&("authorization", "Bearer api-secret".into())));
        assert!(f
            .headers
            .contains(&("idempotency-key", cmd.operation_id.clone())));
        assert!(f
            .headers
            .contains(&("user-agent", format!("clerk-sync/{}", crate::VERSION))));
        assert_eq!(f.body, cmd.to_json());
    }

    #[test]
    fn only_2xx_and_409_are_taken() {
        for s in [200, 201, 202, 204, 299, 409] {
            assert_eq!(interpret_upstream(UpstreamResult::Status(s)), Ok(s));
        }
        for s in [100, 301, 400, 401, 404, 408, 410, 422, 429, 500, 502, 503] {
            assert_eq!(
                interpret_upstream(UpstreamResult::Status(s)),
                Err(RelayError::UpstreamRejected(s))
            );
        }
        assert_eq!(
            interpret_upstream(UpstreamResult::Unavailable)
                .unwrap_err()
                .status(),
            502
        );
        assert_eq!(
            interpret_upstream(UpstreamResult::TimedOut)
                .unwrap_err()
                .status(),
            504
        );
    }

    #[test]
    fn health_shows_no_secret() {
        let ok = Reply::health(&Ok(config(false)));
        assert_eq!(ok.status, 200);
        assert!(ok.body.contains(r#""status":"ok""#));
        assert!(!ok.body.contains("api-secret") && !ok.body.contains("MfKQ"));
        let bad = Reply::health(&Err(vec![ConfigProblem {
            variable: API_SECRET,
            problem: "missing",
        }]));
        assert_eq!(bad.status, 503);
        assert!(bad.body.contains("API_SECRET"));
    }
}
