//! The re-sync Worker's settings, read once per request from secrets and
//! vars. Every problem is reported by the variable's name, never its value.

use clerk_sync_contract::url::base_url;
use clerk_sync_contract::SecretString;
use clerk_sync_resync::config::MAX_RATE_LIMIT_PER_10S;
use clerk_sync_resync::RunConfig;

pub const CLERK_SECRET_KEY: &str = "CLERK_SECRET_KEY";
pub const ADMIN_SECRET: &str = "ADMIN_SECRET";
pub const API_SECRET: &str = "API_SECRET";
pub const API_URL: &str = "API_URL";
pub const CLERK_API_URL: &str = "CLERK_API_URL";
pub const CLERK_RATE_LIMIT_PER_10S: &str = "CLERK_RATE_LIMIT_PER_10S";
pub const RESYNC_PAGE_SIZE: &str = "RESYNC_PAGE_SIZE";
pub const RESYNC_FAILED_CRON: &str = "RESYNC_FAILED_CRON";
pub const REQUEST_TIMEOUT_MS: &str = "RESYNC_REQUEST_TIMEOUT_MS";

pub const DEFAULT_CLERK_API_URL: &str = "https://api.clerk.com";
/// The cron (in the relay's `[triggers]`) that retries `failed` rows; any
/// other cron starts a full run.
pub const DEFAULT_FAILED_CRON: &str = "*/15 * * * *";
pub const DEFAULT_REQUEST_TIMEOUT_MS: u32 = 30_000;
/// The shortest `ADMIN_SECRET` accepted: a guessable bearer would open
/// every admin route.
pub const MIN_ADMIN_SECRET_LEN: usize = 16;

/// Everything a run and the admin routes need.
#[derive(Debug, Clone)]
pub struct ResyncConfig {
    pub admin_secret: SecretString,
    pub clerk_secret_key: SecretString,
    pub api_secret: SecretString,
    /// No trailing slash: paths are appended.
    pub clerk_api_url: String,
    pub api_url: String,
    pub run: RunConfig,
    pub failed_cron: String,
    pub request_timeout_ms: u32,
}

/// What is wrong, by variable name.
pub type Problems = Vec<&'static str>;

impl ResyncConfig {
    /// `lookup` reads a secret or var by name (`None`: unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Problems> {
        let mut problems = Vec::new();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let admin_secret = get(ADMIN_SECRET).filter(|v| v.len() >= MIN_ADMIN_SECRET_LEN);
        if admin_secret.is_none() {
            problems.push(ADMIN_SECRET);
        }
        let clerk_secret_key = get(CLERK_SECRET_KEY)
            .filter(|v| v.starts_with("sk_live_") || v.starts_with("sk_test_"));
        if clerk_secret_key.is_none() {
            problems.push(CLERK_SECRET_KEY);
        }
        let api_secret = get(API_SECRET);
        if api_secret.is_none() {
            problems.push(API_SECRET);
        }
        let clerk_api_url =
            base_url(&get(CLERK_API_URL).unwrap_or_else(|| DEFAULT_CLERK_API_URL.into()));
        if clerk_api_url.is_none() {
            problems.push(CLERK_API_URL);
        }
        let api_url = get(API_URL).and_then(|u| base_url(&u));
        if api_url.is_none() {
            problems.push(API_URL);
        }
        let mut run = RunConfig::from_rate_limit_var(get(CLERK_RATE_LIMIT_PER_10S).as_deref())
            .map_err(|_| problems.push(CLERK_RATE_LIMIT_PER_10S))
            .unwrap_or_default();
        match number(get(RESYNC_PAGE_SIZE), run.page_size, 1..=500) {
            Some(n) => run.page_size = n,
            None => problems.push(RESYNC_PAGE_SIZE),
        }
        let request_timeout_ms = number(
            get(REQUEST_TIMEOUT_MS),
            DEFAULT_REQUEST_TIMEOUT_MS,
            1_000..=120_000,
        )
        .unwrap_or_else(|| {
            problems.push(REQUEST_TIMEOUT_MS);
            DEFAULT_REQUEST_TIMEOUT_MS
        });
        let failed_cron = get(RESYNC_FAILED_CRON).unwrap_or_else(|| DEFAULT_FAILED_CRON.into());
        debug_assert!(run.rate_limit() <= MAX_RATE_LIMIT_PER_10S);

        match (
            admin_secret,
            clerk_secret_key,
            api_secret,
            clerk_api_url,
            api_url,
        ) {
            (Some(admin), Some(clerk), Some(api), Some(clerk_url), Some(api_url))
                if problems.is_empty() =>
            {
                Ok(Self {
                    admin_secret: SecretString::new(admin),
                    clerk_secret_key: SecretString::new(clerk),
                    api_secret: SecretString::new(api),
                    clerk_api_url: clerk_url,
                    api_url,
                    run,
                    failed_cron: failed_cron.trim().to_owned(),
                    request_timeout_ms,
                })
            }
            _ => Err(problems),
        }
    }
}

/// Just the admin bearer, so that a request can be authenticated (and
/// refused with 401) even while another setting is missing.
pub fn admin_secret(lookup: impl Fn(&str) -> Option<String>) -> Option<SecretString> {
    lookup(ADMIN_SECRET)
        .filter(|v| v.len() >= MIN_ADMIN_SECRET_LEN)
        .map(SecretString::new)
}

fn number(text: Option<String>, default: u32, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    match text {
        None => Some(default),
        Some(t) => t.trim().parse::<u32>().ok().filter(|n| range.contains(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn dev() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            (ADMIN_SECRET, "test-admin-secret"),
            (CLERK_SECRET_KEY, "sk_test_standin"),
            (API_SECRET, "test-api-secret"),
            (API_URL, "http://127.0.0.1:8787/"),
            (CLERK_API_URL, "http://127.0.0.1:8790"),
        ])
    }

    fn read(vars: &HashMap<&'static str, &'static str>) -> Result<ResyncConfig, Problems> {
        ResyncConfig::from_lookup(|n| vars.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn the_dev_values_make_a_config_with_the_defaults() {
        let c = read(&dev()).unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:8787");
        assert_eq!(c.clerk_api_url, "http://127.0.0.1:8790");
        assert_eq!(c.run.rate_limit(), 100);
        assert_eq!(c.run.page_size(), 500);
        assert_eq!(c.failed_cron, DEFAULT_FAILED_CRON);
        assert_eq!(c.request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS);
        let mut no_url = dev();
        no_url.remove(CLERK_API_URL);
        assert_eq!(
            read(&no_url).unwrap().clerk_api_url,
            "https://api.clerk.com"
        );
    }

    #[test]
    fn problems_are_named_and_never_hold_a_value() {
        let mut v = dev();
        v.remove(CLERK_SECRET_KEY);
        assert_eq!(read(&v).unwrap_err(), vec![CLERK_SECRET_KEY]);

        let mut v = dev();
        v.insert(CLERK_SECRET_KEY, "pk_test_publishable");
        v.insert(ADMIN_SECRET, "short");
        v.insert(API_URL, "http://api.example.com");
        v.insert(CLERK_API_URL, "http://api.clerk.com");
        v.insert(CLERK_RATE_LIMIT_PER_10S, "1001");
        v.insert(RESYNC_PAGE_SIZE, "0");
        v.insert(REQUEST_TIMEOUT_MS, "ten");
        let problems = read(&v).unwrap_err();
        assert_eq!(
            problems,
            vec![
                ADMIN_SECRET,
                CLERK_SECRET_KEY,
                CLERK_API_URL,
                API_URL,
                CLERK_RATE_LIMIT_PER_10S,
                RESYNC_PAGE_SIZE,
                REQUEST_TIMEOUT_MS
            ]
        );
    }

    #[test]
    fn settings_are_read() {
        let mut v = dev();
        v.insert(CLERK_RATE_LIMIT_PER_10S, "1000");
        v.insert(RESYNC_PAGE_SIZE, "50");
        v.insert(RESYNC_FAILED_CRON, " */5 * * * * ");
        let c = read(&v).unwrap();
        assert_eq!((c.run.rate_limit(), c.run.page_size()), (1000, 50));
        assert_eq!(c.failed_cron, "*/5 * * * *");
        assert!(!format!("{c:?}").contains("sk_test_standin"));
    }

    #[test]
    fn the_admin_bearer_alone() {
        assert!(
            admin_secret(|n| (n == ADMIN_SECRET).then(|| "test-admin-secret".into())).is_some()
        );
        assert!(admin_secret(|n| (n == ADMIN_SECRET).then(|| "short".into())).is_none());
        assert!(admin_secret(|_| None).is_none());
    }
}
