//! The one structured log line per request. Its fields cannot hold the
//! bearer, an email, a name or a body: only identifiers, codes and numbers.

use serde::Serialize;

use crate::error::ApiError;
use crate::request::ValidCommand;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RequestLog {
    pub level: &'static str,
    pub msg: &'static str,
    pub method: &'static str,
    pub route: &'static str,
    pub operation_id: Option<String>,
    pub clerk_id: Option<String>,
    pub command: Option<&'static str>,
    /// `applied`, `stale`, `ignored_deleted`, or the error code.
    pub outcome: Option<&'static str>,
    pub status: u16,
    /// The constraint that refused a command (table and column names only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Recording a failure or a rejection in the database failed too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub audit_failed: bool,
    /// The apply batch answered with an error, yet had committed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub committed_despite_error: bool,
    /// What a batch became (`POST /internal/clerk-sync/batch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchLog>,
    pub duration_ms: u64,
}

/// A batch's counts: its commands, their outcomes, and the D1 batches
/// (round trips) the request took.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct BatchLog {
    pub commands: usize,
    pub applied: usize,
    pub duplicate: usize,
    pub stale: usize,
    pub ignored_deleted: usize,
    pub rejected: usize,
    pub d1_batches: u32,
    /// A constraint refused the one-transaction plan: the commands were
    /// applied one D1 batch each, as the single endpoint applies them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub one_by_one: bool,
}

impl BatchLog {
    pub fn count(&mut self, outcome: clerk_sync_contract::batch::Outcome) {
        use clerk_sync_contract::batch::Outcome;
        let n = match outcome {
            Outcome::Applied => &mut self.applied,
            Outcome::Duplicate => &mut self.duplicate,
            Outcome::Stale => &mut self.stale,
            Outcome::IgnoredDeleted => &mut self.ignored_deleted,
            Outcome::Rejected => &mut self.rejected,
        };
        *n += 1;
    }
}

impl RequestLog {
    pub fn new(method: &str, route: &'static str) -> Self {
        let method = match method {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            _ => "OTHER",
        };
        Self {
            level: "info",
            msg: "request",
            method,
            route,
            ..Self::default()
        }
    }

    pub fn command(&mut self, c: &ValidCommand) {
        self.operation_id = Some(c.command().operation_id.clone());
        self.clerk_id = Some(c.command().clerk_id.clone());
        self.command = Some(c.kind().as_str());
    }

    pub fn finish(&mut self, result: Result<(), &ApiError>, status: u16, duration_ms: u64) {
        self.status = status;
        self.duration_ms = duration_ms;
        if let Err(e) = result {
            self.outcome = Some(e.code());
            self.level = if status >= 500 { "error" } else { "warn" };
            if let ApiError::CannotApply(c) = e {
                self.constraint = Some(c.clone());
            }
        }
        if self.audit_failed {
            self.level = "error";
        } else if self.committed_despite_error {
            self.level = "warn";
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a RequestLog always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_not_echoed_and_errors_are_warned() {
        let mut l = RequestLog::new("BREW", "other");
        l.finish(Err(&ApiError::Unauthorized), 401, 2);
        let line = l.to_json();
        assert!(!line.contains("BREW"));
        assert!(line.contains(r#""outcome":"unauthorized""#));
        assert!(line.contains(r#""level":"warn""#));
        assert!(!line.contains("audit_failed"));
    }
}
