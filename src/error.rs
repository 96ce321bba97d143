//! The request path's one error type and its one mapping to an HTTP status
//! and a stable code. Statuses are chosen by what Svix does with them: any
//! non-2xx is retried for about 27 hours, so nothing the main API did not
//! take may ever map to 2xx.

use crate::config::ConfigProblem;
use crate::event::EventError;
use crate::verify::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the relay is misconfigured")]
    Misconfigured(Vec<ConfigProblem>),
    #[error("unauthorized")]
    Unauthorized,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("the request body could not be read")]
    UnreadableBody,
    #[error("the signature could not be computed")]
    SigningUnavailable,
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("the main API answered {0}")]
    UpstreamRejected(u16),
    #[error("the main API could not be reached")]
    UpstreamUnavailable,
    #[error("the main API did not answer in time")]
    UpstreamTimeout,
    #[error("the delivery queue did not take the command")]
    QueueUnavailable,
    #[error("re-sync is not configured")]
    ResyncUnconfigured,
    #[error("the re-sync worker could not be reached")]
    ResyncUnavailable,
}

impl From<clerk_sync_contract::body::TooLarge> for RelayError {
    fn from(_: clerk_sync_contract::body::TooLarge) -> Self {
        Self::PayloadTooLarge
    }
}

impl RelayError {
    /// The HTTP status the relay answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Misconfigured(_) => 500,
            Self::Unauthorized | Self::Signature(_) => 401,
            Self::PayloadTooLarge => 413,
            Self::UnreadableBody => 400,
            Self::Event(_) => 400,
            Self::UpstreamRejected(_) | Self::UpstreamUnavailable => 502,
            Self::UpstreamTimeout => 504,
            Self::QueueUnavailable | Self::SigningUnavailable => 503,
            Self::ResyncUnconfigured => 503,
            Self::ResyncUnavailable => 502,
        }
    }

    /// The stable machine-readable code (the `error` field and the log's `outcome`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Misconfigured(_) => "misconfigured",
            Self::Unauthorized => "unauthorized",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::SigningUnavailable => "signing_unavailable",
            Self::Signature(VerifyError::MissingHeaders) => "missing_signature_headers",
            Self::Signature(VerifyError::InvalidId) => "invalid_message_id",
            Self::Signature(VerifyError::InvalidTimestamp) => "invalid_timestamp",
            Self::Signature(VerifyError::TimestampOutOfTolerance) => "timestamp_out_of_tolerance",
            Self::Signature(VerifyError::InvalidSignature) => "invalid_signature",
            Self::Event(EventError::InvalidJson) => "invalid_json",
            Self::Event(EventError::InvalidPayload(_)) => "invalid_payload",
            Self::UpstreamRejected(_) => "upstream_rejected",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::QueueUnavailable => "queue_unavailable",
            Self::ResyncUnconfigured => "resync_unconfigured",
            Self::ResyncUnavailable => "resync_unavailable",
        }
    }

    /// A short human message. Built only from constants and the upstream
    /// status number: never a header value, a body or a secret.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_that_was_not_taken_maps_to_2xx() {
        let all = [
            RelayError::NotFound,
            RelayError::MethodNotAllowed,
            RelayError::Misconfigured(vec![]),
            RelayError::Unauthorized,
            RelayError::PayloadTooLarge,
            RelayError::UnreadableBody,
            RelayError::Signature(VerifyError::MissingHeaders),
            RelayError::Signature(VerifyError::InvalidId),
            RelayError::Signature(VerifyError::InvalidTimestamp),
            RelayError::Signature(VerifyError::TimestampOutOfTolerance),
            RelayError::Signature(VerifyError::InvalidSignature),
            RelayError::Event(EventError::InvalidJson),
            RelayError::Event(EventError::InvalidPayload("x")),
            RelayError::UpstreamRejected(500),
            RelayError::UpstreamUnavailable,
            RelayError::UpstreamTimeout,
            RelayError::QueueUnavailable,
            RelayError::ResyncUnconfigured,
            RelayError::ResyncUnavailable,
        ];
        let mut codes = std::collections::HashSet::new();
        for e in &all {
            assert!(e.status() >= 400, "{e:?}");
            assert!(codes.insert(e.code()), "duplicate code {}", e.code());
        }
        assert_eq!(
            RelayError::UpstreamRejected(503).message(),
            "the main API answered 503"
        );
    }
}
