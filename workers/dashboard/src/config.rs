//! The dashboard's settings, read once per request from secrets and vars.
//! Every problem is reported by the variable's name, never its value.

use clerk_sync_contract::url::base_url;
use clerk_sync_contract::SecretString;

pub const DASHBOARD_PASSWORD: &str = "DASHBOARD_PASSWORD";
pub const SESSION_SECRET: &str = "SESSION_SECRET";
pub const API_URL: &str = "API_URL";
pub const API_SECRET: &str = "API_SECRET";
pub const RELAY_URL: &str = "RELAY_URL";
pub const ADMIN_SECRET: &str = "ADMIN_SECRET";

/// The shortest sign-in password accepted: a short one is guessed even
/// when failures are slowed.
pub const MIN_PASSWORD_LEN: usize = 12;
/// The shortest cookie-signing key accepted (256 bits of hex or more).
pub const MIN_SESSION_SECRET_LEN: usize = 32;

/// Everything the pages need.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    pub password: SecretString,
    pub session_secret: SecretString,
    /// No trailing slash: paths are appended.
    pub api_url: String,
    pub api_secret: SecretString,
    /// No trailing slash: paths are appended.
    pub relay_url: String,
    pub admin_secret: SecretString,
}

/// What is wrong, by variable name.
pub type Problems = Vec<&'static str>;

impl DashboardConfig {
    /// `lookup` reads a secret or var by name (`None`: unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let mut require = |name: &'static str, ok: &dyn Fn(&str) -> bool| {
            let value = lookup(name).filter(|v| !v.trim().is_empty() && ok(v));
            if value.is_none() {
                problems.push(name);
            }
            value
        };
        let password = require(DASHBOARD_PASSWORD, &|v| {
            v.chars().count() >= MIN_PASSWORD_LEN
        });
        let session_secret = require(SESSION_SECRET, &|v| v.len() >= MIN_SESSION_SECRET_LEN);
        let api_url = require(API_URL, &|v| base_url(v).is_some());
        let api_secret = require(API_SECRET, &|_| true);
        let relay_url = require(RELAY_URL, &|v| base_url(v).is_some());
        let admin_secret = require(ADMIN_SECRET, &|_| true);

        match (
            password,
            session_secret,
            api_url.as_deref().and_then(base_url),
            api_secret,
            relay_url.as_deref().and_then(base_url),
            admin_secret,
        ) {
            (
                Some(password),
                Some(session),
                Some(api_url),
                Some(api),
                Some(relay_url),
                Some(admin),
            ) => Ok(Self {
                password: SecretString::new(password),
                session_secret: SecretString::new(session),
                api_url,
                api_secret: SecretString::new(api),
                relay_url,
                admin_secret: SecretString::new(admin),
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dev() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            (DASHBOARD_PASSWORD, "dev-dashboard-password"),
            (
                SESSION_SECRET,
                "dev-session-secret-0123456789abcdef0123456789abcdef",
            ),
            (API_URL, "http://127.0.0.1:8787/"),
            (API_SECRET, "test-api-secret"),
            (RELAY_URL, "http://127.0.0.1:8788"),
            (ADMIN_SECRET, "test-admin-secret"),
        ])
    }

    fn read(vars: &HashMap<&'static str, &'static str>) -> Result<DashboardConfig, Problems> {
        DashboardConfig::from_lookup(|n| vars.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn the_dev_values_make_a_config() {
        let c = read(&dev()).unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:8787");
        assert_eq!(c.relay_url, "http://127.0.0.1:8788");
        assert!(c.password.matches("dev-dashboard-password"));
        let debug = format!("{c:?}");
        for secret in [
            "dev-dashboard-password",
            "dev-session-secret",
            "test-api-secret",
        ] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn nothing_set_names_every_variable() {
        assert_eq!(
            read(&HashMap::new()).unwrap_err(),
            vec![
                DASHBOARD_PASSWORD,
                SESSION_SECRET,
                API_URL,
                API_SECRET,
                RELAY_URL,
                ADMIN_SECRET
            ]
        );
    }

    #[test]
    fn bad_values_are_named_and_never_echoed() {
        let mut v = dev();
        v.insert(DASHBOARD_PASSWORD, "short-pw-11");
        v.insert(SESSION_SECRET, "0123456789abcdef0123456789abcde");
        v.insert(API_URL, "http://api.example.com");
        v.insert(RELAY_URL, "not a url");
        v.insert(ADMIN_SECRET, "   ");
        let problems = read(&v).unwrap_err();
        assert_eq!(
            problems,
            vec![
                DASHBOARD_PASSWORD,
                SESSION_SECRET,
                API_URL,
                RELAY_URL,
                ADMIN_SECRET
            ]
        );
        let text = format!("{problems:?}");
        assert!(!text.contains("short-pw-11") && !text.contains("api.example.com"));
    }

    #[test]
    fn the_limits_are_inclusive() {
        let mut v = dev();
        v.insert(DASHBOARD_PASSWORD, "twelve-chars");
        v.insert(SESSION_SECRET, "0123456789abcdef0123456789abcdef");
        v.insert(RELAY_URL, "https://relay.example.com/");
        let c = read(&v).unwrap();
        assert_eq!(c.relay_url, "https://relay.example.com");
    }
}
