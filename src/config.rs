//! The relay's configuration, read through a lookup function (the Worker's
//! `env` in production, a map in tests) and validated as a whole: every
//! problem is reported, by variable name, never by value.

use clerk_sync_contract::secret::SecretString;
use clerk_sync_contract::time::UnixMillis;

use crate::verify::{
    Challenge, SignatureHeaders, SigningSecret, VerifiedDelivery, Verifier, VerifyError,
};

/// A delivery's signature step, as far as it can go without a MAC.
#[derive(Debug)]
pub enum Checked {
    /// Unsigned, and the configuration allows it.
    Verified(VerifiedDelivery),
    /// Signed: the MACs decide.
    NeedsMacs(Challenge),
}

pub const CLERK_WEBHOOK_SECRET: &str = "CLERK_WEBHOOK_SECRET";
pub const WEBHOOK_QUERY_SECRET: &str = "WEBHOOK_QUERY_SECRET";
pub const API_SECRET: &str = "API_SECRET";
pub const API_URL: &str = "API_URL";
pub const API_SYNC_PATH: &str = "API_SYNC_PATH";
pub const FORWARD_TIMEOUT_MS: &str = "FORWARD_TIMEOUT_MS";
pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
pub const ALLOW_UNSIGNED_WEBHOOKS: &str = "ALLOW_UNSIGNED_WEBHOOKS";
/// `direct` (default: each delivery forwarded as it comes) or `queue`.
pub const DELIVERY_MODE: &str = "DELIVERY_MODE";
/// Queue mode's producer binding: not a variable, but a missing one is a
/// configuration problem under this name.
pub const SYNC_QUEUE: &str = "SYNC_QUEUE";
/// The dead-letter queue's producer binding: where the consumer sends a
/// command the main API rejected (optional: without it, such a command is
/// retried until the queue dead-letters it).
pub const SYNC_DLQ: &str = "SYNC_DLQ";

/// Every variable the relay reads (the glue fetches them in one call).
pub const VARIABLES: [&str; 9] = [
    CLERK_WEBHOOK_SECRET,
    WEBHOOK_QUERY_SECRET,
    API_SECRET,
    API_URL,
    API_SYNC_PATH,
    FORWARD_TIMEOUT_MS,
    MAX_BODY_BYTES,
    ALLOW_UNSIGNED_WEBHOOKS,
    DELIVERY_MODE,
];

/// Secrets, read with `env.secret()`; the rest are plain vars.
pub const SECRET_VARIABLES: [&str; 3] = [CLERK_WEBHOOK_SECRET, WEBHOOK_QUERY_SECRET, API_SECRET];
pub const PLAIN_VARIABLES: [&str; 6] = [
    API_URL,
    API_SYNC_PATH,
    FORWARD_TIMEOUT_MS,
    MAX_BODY_BYTES,
    ALLOW_UNSIGNED_WEBHOOKS,
    DELIVERY_MODE,
];

/// Queue mode's retry delay is half the message's age, within these: a
/// blip is retried within seconds, an outage of days about hourly (each
/// delay half again the last, so `max_retries = 100` spans about 3 days).
pub const QUEUE_RETRY_MIN_SECONDS: u32 = 1;
pub const QUEUE_RETRY_MAX_SECONDS: u32 = 3_600;

/// How a verified, mapped delivery reaches the main API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Forwarded at once, one command per call; Svix's retries are the
    /// delivery guarantee.
    Direct,
    /// Sent to `SYNC_QUEUE`; the consumer posts batches and retries past
    /// Svix's budget, then records what it could not deliver as failed.
    Queue,
}

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8787";
pub const DEFAULT_API_SYNC_PATH: &str = "/internal/clerk-sync";
pub const DEFAULT_FORWARD_TIMEOUT_MS: u32 = 8_000;
/// Svix gives up on an attempt after 15 s; the forward must end well before.
pub const MAX_FORWARD_TIMEOUT_MS: u32 = 14_000;
pub const DEFAULT_MAX_BODY_BYTES: u32 = 262_144;
/// Workers cap request bodies at 100 MB; a webhook never needs more than this.
pub const MAX_MAX_BODY_BYTES: u32 = 16 * 1024 * 1024;

/// One thing wrong with the configuration: which variable, and what kind of
/// problem. Safe to log and to show on `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub problem: &'static str,
}

/// A validated configuration. The verifier and the unsigned switch are
/// private: a delivery is verified only through [`Config::verify`], so an
/// unsigned one is accepted only when this configuration allows it.
#[derive(Debug, Clone)]
pub struct Config {
    verifier: Verifier,
    allow_unsigned: bool,
    pub query_secret: SecretString,
    pub api_secret: SecretString,
    /// `API_URL` (no trailing slash) + `API_SYNC_PATH`.
    pub forward_url: String,
    /// `API_URL` as configured.
    pub api_url: String,
    pub forward_timeout_ms: u32,
    pub max_body_bytes: u32,
    pub delivery: DeliveryMode,
}

impl Config {
    /// Reads every variable through `lookup` (empty counts as unset) and
    /// returns the configuration or every problem found.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Vec<ConfigProblem>> {
        Self::read(&lookup)
    }

    /// One copy of the reading for every kind of lookup (the glue has two):
    /// each generic copy cost the bundle about 2 KiB of gzip.
    fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<ConfigProblem>> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let mut problem = |variable, problem| problems.push(ConfigProblem { variable, problem });

        let verifier = match get(CLERK_WEBHOOK_SECRET) {
            None => {
                problem(CLERK_WEBHOOK_SECRET, "missing");
                None
            }
            Some(text) => match parse_signing_secrets(&text) {
                Ok(v) => Some(v),
                Err(what) => {
                    problem(CLERK_WEBHOOK_SECRET, what);
                    None
                }
            },
        };
        let query_secret = get(WEBHOOK_QUERY_SECRET).map(SecretString::new);
        if query_secret.is_none() {
            problem(WEBHOOK_QUERY_SECRET, "missing");
        }
        let api_secret = get(API_SECRET).map(SecretString::new);
        if api_secret.is_none() {
            problem(API_SECRET, "missing");
        }

        let api_url = get(API_URL).unwrap_or_else(|| DEFAULT_API_URL.into());
        if !is_http_base_url(&api_url) {
            problem(API_URL, "not an http(s) URL without a query");
        }
        let sync_path = get(API_SYNC_PATH).unwrap_or_else(|| DEFAULT_API_SYNC_PATH.into());
        if !sync_path.starts_with('/') || sync_path.contains(['?', '#', ' ']) {
            problem(API_SYNC_PATH, "must be a path starting with /");
        }

        let forward_timeout_ms = parse_number(
            get(FORWARD_TIMEOUT_MS),
            DEFAULT_FORWARD_TIMEOUT_MS,
            1..=MAX_FORWARD_TIMEOUT_MS,
        )
        .unwrap_or_else(|()| {
            problem(FORWARD_TIMEOUT_MS, "must be an integer from 1 to 14000");
            DEFAULT_FORWARD_TIMEOUT_MS
        });
        let max_body_bytes = parse_number(
            get(MAX_BODY_BYTES),
            DEFAULT_MAX_BODY_BYTES,
            1..=MAX_MAX_BODY_BYTES,
        )
        .unwrap_or_else(|()| {
            problem(MAX_BODY_BYTES, "must be an integer from 1 to 16777216");
            DEFAULT_MAX_BODY_BYTES
        });
        let allow_unsigned = match get(ALLOW_UNSIGNED_WEBHOOKS).as_deref().map(str::trim) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                problem(ALLOW_UNSIGNED_WEBHOOKS, "must be true or false");
                false
            }
        };

        let delivery = match get(DELIVERY_MODE).as_deref().map(str::trim) {
            None | Some("direct") => DeliveryMode::Direct,
            Some("queue") => DeliveryMode::Queue,
            Some(_) => {
                problem(DELIVERY_MODE, "must be direct or queue");
                DeliveryMode::Direct
            }
        };

        match (verifier, query_secret, api_secret) {
            (Some(verifier), Some(query_secret), Some(api_secret)) if problems.is_empty() => {
                Ok(Self {
                    verifier,
                    query_secret,
                    api_secret,
                    forward_url: format!("{}{}", api_url.trim_end_matches('/'), sync_path),
                    api_url,
                    forward_timeout_ms,
                    max_body_bytes,
                    allow_unsigned,
                    delivery,
                })
            }
            _ => Err(problems),
        }
    }

    /// Step 3 of a delivery: the Svix signature over `body` at `now`, or,
    /// only when `ALLOW_UNSIGNED_WEBHOOKS=true` and none of the six signature
    /// headers is present, an unsigned delivery. The MACs in software.
    pub fn verify(
        &self,
        headers: &SignatureHeaders,
        body: Vec<u8>,
        now: UnixMillis,
    ) -> Result<VerifiedDelivery, VerifyError> {
        match self.check(headers, body, now)? {
            Checked::Verified(delivery) => Ok(delivery),
            Checked::NeedsMacs(challenge) => {
                let macs = self.verifier.macs(challenge.signed_content());
                challenge.settle(&macs)
            }
        }
    }

    /// Step 3 up to the MACs: an allowed unsigned delivery is done; a signed
    /// one passed every check but the MAC, to be computed with [`Config::keys`].
    pub fn check(
        &self,
        headers: &SignatureHeaders,
        body: Vec<u8>,
        now: UnixMillis,
    ) -> Result<Checked, VerifyError> {
        if self.allow_unsigned && headers.is_empty() {
            Ok(Checked::Verified(Verifier::accept_unsigned(body)))
        } else {
            self.verifier
                .challenge(headers, body, now)
                .map(Checked::NeedsMacs)
        }
    }

    /// The signing secrets' raw keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.verifier.keys()
    }

    pub fn signing_secret_count(&self) -> usize {
        self.verifier.secret_count()
    }

    /// Settings that are fine on a developer's machine and wrong anywhere
    /// else: checked when a request did not come to a loopback host. A
    /// loopback or plain-http `API_URL` (the bearer and emails in clear), or
    /// unsigned deliveries allowed.
    pub fn deployment_problems(&self, request_to_loopback: bool) -> Vec<ConfigProblem> {
        if request_to_loopback {
            return Vec::new();
        }
        let mut problems = Vec::new();
        let api_host = url_host(&self.api_url).unwrap_or_default();
        if is_loopback_host(api_host) {
            problems.push(ConfigProblem {
                variable: API_URL,
                problem: "must name the deployed main API",
            });
        } else if self
            .api_url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            problems.push(ConfigProblem {
                variable: API_URL,
                problem: "must be https",
            });
        }
        if self.allow_unsigned {
            problems.push(ConfigProblem {
                variable: ALLOW_UNSIGNED_WEBHOOKS,
                problem: "must be false",
            });
        }
        problems
    }

    /// Step 1 of a delivery: the `?secret=` value, in constant time. The
    /// parameter must appear exactly once.
    pub fn check_query_secret(&self, query: Option<&str>) -> bool {
        let mut values = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "secret")
            .map(|(_, v)| v);
        match (values.next(), values.next()) {
            (Some(value), None) => self.query_secret.matches(&value),
            _ => false,
        }
    }
}

/// The configuration with what the glue found among the bindings: queue
/// mode without a `SYNC_QUEUE` producer binding is a problem by that name
/// (500 on webhooks, 503 on `/health`), never a panic at the first send.
pub fn with_bindings(
    config: Result<Config, Vec<ConfigProblem>>,
    queue_bound: impl FnOnce() -> bool,
) -> Result<Config, Vec<ConfigProblem>> {
    match config {
        Ok(c) if c.delivery == DeliveryMode::Queue && !queue_bound() => Err(vec![ConfigProblem {
            variable: SYNC_QUEUE,
            problem: "queue mode needs this producer binding",
        }]),
        other => other,
    }
}

impl Config {
    /// The main API's URL for a contract path (`/internal/clerk-sync/batch`…).
    pub fn api_path(&self, path: &str) -> String {
        format!("{}{}", self.api_url.trim_end_matches('/'), path)
    }
}

/// `CLERK_WEBHOOK_SECRET`: one or more `whsec_` secrets separated by spaces
/// or commas.
fn parse_signing_secrets(text: &str) -> Result<Verifier, &'static str> {
    let secrets = text
        .split([' ', ',', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(SigningSecret::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| match e {
            crate::verify::SecretError::MissingPrefix => "an entry does not start with whsec_",
            crate::verify::SecretError::NotBase64 => "an entry is not canonical base64",
            crate::verify::SecretError::BadLength => "an entry does not decode to 24-64 bytes",
        })?;
    Verifier::new(secrets).ok_or("missing")
}

/// `http(s)://host[:port][/path]`: ASCII, no query, fragment or whitespace.
/// A hand check rather than the `url` crate, whose IDNA and normalisation
/// tables were about a fifth of the Worker bundle for this one check.
fn is_http_base_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_ok = port.is_none_or(|p| p.is_empty() || p.parse::<u16>().is_ok());
    let host_ok = !host.is_empty()
        && !host.contains('@')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    host_ok
        && port_ok
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
}

/// The two URL questions (which host, and is it a developer's machine)
/// are the contract's, shared with the re-sync Worker.
pub use clerk_sync_contract::url::{is_loopback_host, url_host};

fn parse_number(
    text: Option<String>,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ()> {
    match text {
        None => Ok(default),
        Some(t) => t
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SECRET_B: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            (CLERK_WEBHOOK_SECRET, SECRET_A),
            (WEBHOOK_QUERY_SECRET, "q"),
            (API_SECRET, "a"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = good();
        for (k, val) in extra {
            v.retain(|(kk, _)| kk != k);
            v.push((k, val));
        }
        v
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<&'static str> {
        Config::from_lookup(env(pairs))
            .unwrap_err()
            .into_iter()
            .map(|p| p.variable)
            .collect()
    }

    fn deployment(pairs: &[(&'static str, &'static str)], loopback: bool) -> Vec<&'static str> {
        Config::from_lookup(env(&with(pairs)))
            .unwrap()
            .deployment_problems(loopback)
            .into_iter()
            .map(|p| p.variable)
            .collect()
    }

    #[test]
    fn dev_settings_are_problems_only_off_loopback() {
        let dev = [(ALLOW_UNSIGNED_WEBHOOKS, "true")];
        assert!(deployment(&dev, true).is_empty());
        assert_eq!(
            deployment(&dev, false),
            [API_URL, ALLOW_UNSIGNED_WEBHOOKS],
            "the default API_URL is loopback"
        );
        for loopback in [
            "http://localhost:8787",
            "https://127.0.0.2",
            "http://[::1]:8787",
            "http://api.localhost",
        ] {
            assert_eq!(
                deployment(&[(API_URL, loopback)], false),
                [API_URL],
                "{loopback}"
            );
        }
        assert_eq!(
            deployment(&[(API_URL, "http://api.example.com")], false),
            [API_URL]
        );
        assert!(deployment(&[(API_URL, "https://api.example.com")], false).is_empty());
        assert!(deployment(&[(API_URL, "https://127.example.com")], false).is_empty());
    }

    #[test]
    fn hosts_are_read_from_urls() {
        assert_eq!(
            url_host("http://127.0.0.1:8788/webhook?x"),
            Some("127.0.0.1")
        );
        assert_eq!(url_host("https://[::1]:8787/"), Some("::1"));
        assert_eq!(
            url_host("https://relay.example.workers.dev/health"),
            Some("relay.example.workers.dev")
        );
        assert_eq!(url_host("not a url"), None);
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("127.0.0.1.nip.io"));
        assert!(!is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn defaults_apply() {
        let c = Config::from_lookup(env(&good())).unwrap();
        assert_eq!(c.forward_url, "http://127.0.0.1:8787/internal/clerk-sync");
        assert_eq!(c.forward_timeout_ms, 8000);
        assert_eq!(c.max_body_bytes, 262_144);
        assert!(!c.allow_unsigned);
        assert_eq!(c.verifier.secret_count(), 1);
    }

    #[test]
    fn overrides_apply() {
        let c = Config::from_lookup(env(&with(&[
            (API_URL, "https://api.example.com/"),
            (API_SYNC_PATH, "/hooks/clerk"),
            (FORWARD_TIMEOUT_MS, "2500"),
            (MAX_BODY_BYTES, "1024"),
            (ALLOW_UNSIGNED_WEBHOOKS, "true"),
        ])))
        .unwrap();
        assert_eq!(c.forward_url, "https://api.example.com/hooks/clerk");
        assert_eq!(c.forward_timeout_ms, 2500);
        assert_eq!(c.max_body_bytes, 1024);
        assert!(c.allow_unsigned);
    }

    #[test]
    fn rotation_lists() {
        for list in [
            format!("{SECRET_A} {SECRET_B}"),
            format!("{SECRET_A},{SECRET_B}"),
            format!(" {SECRET_A} ,  {SECRET_B}, "),
        ] {
            let pairs = [
                (CLERK_WEBHOOK_SECRET, list.as_str()),
                (WEBHOOK_QUERY_SECRET, "q"),
                (API_SECRET, "a"),
            ];
            assert_eq!(
                Config::from_lookup(env(&pairs))
                    .unwrap()
                    .verifier
                    .secret_count(),
                2
            );
        }
    }

    #[test]
    fn missing_everything_is_reported_by_name() {
        let p = Config::from_lookup(env(&[])).unwrap_err();
        assert_eq!(
            p,
            vec![
                ConfigProblem {
                    variable: CLERK_WEBHOOK_SECRET,
                    problem: "missing"
                },
                ConfigProblem {
                    variable: WEBHOOK_QUERY_SECRET,
                    problem: "missing"
                },
                ConfigProblem {
                    variable: API_SECRET,
                    problem: "missing"
                },
            ]
        );
        assert_eq!(problems(&with(&[(API_SECRET, "  ")])), vec![API_SECRET]);
    }

    #[test]
    fn malformed_secrets_are_named_without_value() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not*base64",
            "whsec_AAAA",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_oops",
        ] {
            let p = Config::from_lookup(env(&with(&[(CLERK_WEBHOOK_SECRET, bad)]))).unwrap_err();
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].variable, CLERK_WEBHOOK_SECRET);
            assert!(!p[0].problem.contains("MfKQ") && !p[0].problem.contains("oops"));
        }
    }

    #[test]
    fn api_url_is_an_http_base_url() {
        for good in [
            "http://127.0.0.1:8787",
            "HTTPS://Api.Example.com:443/base/",
            "http://[::1]:8787/x",
            "http://localhost",
        ] {
            assert!(is_http_base_url(good), "{good}");
        }
        for bad in [
            "http://",
            "https:///x",
            "https://x/?",
            "https://x?y=1",
            "https://x#f",
            "http://x:99999",
            "http://x:8o",
            "http://a b",
            " https://x",
            "https://user@x",
            "https://bücher.example",
            "mailto:x@y",
        ] {
            assert!(!is_http_base_url(bad), "{bad}");
        }
    }

    #[test]
    fn malformed_plain_vars() {
        assert_eq!(problems(&with(&[(API_URL, "ftp://x")])), vec![API_URL]);
        assert_eq!(problems(&with(&[(API_URL, "not a url")])), vec![API_URL]);
        assert_eq!(
            problems(&with(&[(API_SYNC_PATH, "internal")])),
            vec![API_SYNC_PATH]
        );
        assert_eq!(
            problems(&with(&[(FORWARD_TIMEOUT_MS, "15000")])),
            vec![FORWARD_TIMEOUT_MS]
        );
        assert_eq!(
            problems(&with(&[(FORWARD_TIMEOUT_MS, "0")])),
            vec![FORWARD_TIMEOUT_MS]
        );
        assert_eq!(
            problems(&with(&[(FORWARD_TIMEOUT_MS, "8s")])),
            vec![FORWARD_TIMEOUT_MS]
        );
        assert_eq!(
            problems(&with(&[(MAX_BODY_BYTES, "-1")])),
            vec![MAX_BODY_BYTES]
        );
        assert_eq!(
            problems(&with(&[(ALLOW_UNSIGNED_WEBHOOKS, "yes")])),
            vec![ALLOW_UNSIGNED_WEBHOOKS]
        );
        assert_eq!(
            problems(&with(&[(FORWARD_TIMEOUT_MS, "x"), (API_SECRET, "")])),
            vec![API_SECRET, FORWARD_TIMEOUT_MS]
        );
    }

    #[test]
    fn delivery_mode_is_direct_unless_queue_and_its_settings_are_checked() {
        let c = Config::from_lookup(env(&good())).unwrap();
        assert_eq!(c.delivery, DeliveryMode::Direct);
        let q = Config::from_lookup(env(&with(&[(DELIVERY_MODE, "queue")]))).unwrap();
        assert_eq!(q.delivery, DeliveryMode::Queue);
        assert_eq!(
            q.api_path("/internal/clerk-sync/batch"),
            "http://127.0.0.1:8787/internal/clerk-sync/batch"
        );
        assert_eq!(
            problems(&with(&[(DELIVERY_MODE, "Queue")])),
            vec![DELIVERY_MODE]
        );
    }

    #[test]
    fn queue_mode_without_its_binding_is_a_named_problem() {
        let queue = || Config::from_lookup(env(&with(&[(DELIVERY_MODE, "queue")])));
        let problems = with_bindings(queue(), || false).unwrap_err();
        assert_eq!(problems[0].variable, SYNC_QUEUE);
        assert!(with_bindings(queue(), || true).is_ok());
        // Direct mode never asks.
        let direct = Config::from_lookup(env(&good()));
        assert!(with_bindings(direct, || panic!("asked")).is_ok());
    }

    #[test]
    fn query_secret_must_appear_once_and_match() {
        let c = Config::from_lookup(env(&with(&[(WEBHOOK_QUERY_SECRET, "s3cret value")]))).unwrap();
        assert!(c.check_query_secret(Some("secret=s3cret%20value")));
        assert!(c.check_query_secret(Some("x=1&secret=s3cret+value")));
        assert!(!c.check_query_secret(Some("secret=s3cret")));
        assert!(!c.check_query_secret(Some("secret=s3cret%20value&secret=s3cret%20value")));
        assert!(!c.check_query_secret(Some("Secret=s3cret%20value")));
        assert!(!c.check_query_secret(None));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Config::from_lookup(env(&with(&[
            (WEBHOOK_QUERY_SECRET, "qqq-secret"),
            (API_SECRET, "aaa-secret"),
        ])))
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("qqq-secret") && !dbg.contains("aaa-secret") && !dbg.contains("MfKQ")
        );
    }
}
