//! The one structured log line per request. It has a fixed set of fields,
//! none of which can hold a secret, a signature, a query string, an email
//! address or a body: the type makes leaking one a compile-visible change.

use serde::Serialize;

use crate::error::RelayError;
use crate::event::Mapped;
use crate::relay::Processed;
use clerk_sync_contract::command::Command;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RequestLog {
    pub level: &'static str,
    pub msg: &'static str,
    pub method: String,
    pub path: &'static str,
    pub operation_id: Option<String>,
    pub event_type: Option<String>,
    pub clerk_id: Option<String>,
    pub command: Option<&'static str>,
    pub outcome: &'static str,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub duration_ms: u64,
    /// Set when an unsigned delivery was accepted (ALLOW_UNSIGNED_WEBHOOKS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
    /// Names (never values) of misconfigured variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub misconfigured: Vec<&'static str>,
}

/// Known paths are logged as themselves, admin paths as the class `admin`;
/// anything else as `other`, so a scanner's path (which may carry anything)
/// is never written.
fn known_path(path: &str) -> &'static str {
    match path {
        crate::relay::WEBHOOK_PATH => crate::relay::WEBHOOK_PATH,
        crate::relay::HEALTH_PATH => crate::relay::HEALTH_PATH,
        p if p.starts_with(crate::relay::ADMIN_PREFIX) => "admin",
        _ => "other",
    }
}

impl RequestLog {
    pub fn new(method: &str, path: &str) -> Self {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        Self {
            level: "info",
            msg: "request",
            method: method.to_owned(),
            path: known_path(path),
            ..Self::default()
        }
    }

    /// What verification and mapping established.
    pub fn processed(&mut self, p: &Processed) {
        self.operation_id = Some(p.delivery.operation_id().to_owned());
        if !p.delivery.is_signed() {
            self.warning = Some("unsigned delivery accepted because ALLOW_UNSIGNED_WEBHOOKS=true");
        }
        match &p.mapped {
            Mapped::Forward(c) => self.command(c),
            Mapped::Ignored { event_type } => {
                // An unknown type is attacker-shaped text only if the sender
                // is verified; still, keep it short.
                self.event_type = Some(event_type.chars().take(64).collect());
            }
        }
    }

    fn command(&mut self, c: &Command) {
        self.event_type = Some(c.event_type.clone());
        self.clerk_id = Some(c.clerk_id.chars().take(128).collect());
        self.command = Some(c.command.as_str());
    }

    /// Closes the line with the outcome (the glue adds the duration).
    pub fn finish(&mut self, result: Result<&'static str, &RelayError>, status: u16) {
        self.status = status;
        match result {
            Ok(outcome) => self.outcome = outcome,
            Err(e) => {
                self.outcome = e.code();
                self.level = if status >= 500 { "error" } else { "warn" };
                if let RelayError::Misconfigured(problems) = e {
                    self.misconfigured = problems.iter().map(|p| p.variable).collect();
                }
                if let RelayError::UpstreamRejected(s) = e {
                    self.upstream_status = Some(*s);
                }
            }
        }
        if self.warning.is_some() && self.level == "info" {
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
    fn unknown_paths_and_methods_are_not_echoed() {
        let mut l = RequestLog::new("BREW", "/webhook?secret=abc/../x");
        l.finish(Err(&RelayError::NotFound), 404);
        let line = l.to_json();
        assert!(!line.contains("secret") && !line.contains("abc") && !line.contains("BREW"));
        assert!(line.contains(r#""outcome":"not_found""#));
        assert!(line.contains(r#""level":"warn""#));
    }

    #[test]
    fn misconfiguration_names_variables() {
        let mut l = RequestLog::new("POST", "/webhook");
        let e = RelayError::Misconfigured(vec![crate::config::ConfigProblem {
            variable: "API_SECRET",
            problem: "missing",
        }]);
        l.finish(Err(&e), 500);
        assert!(l.to_json().contains(r#""misconfigured":["API_SECRET"]"#));
        assert_eq!(l.level, "error");
    }
}
