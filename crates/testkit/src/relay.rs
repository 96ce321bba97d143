//! The relay's settings as the suites use them: the dev secrets of
//! `.dev.vars.example`, the bindings of a test relay, and deliveries signed
//! with the dev signing secret. (Names and values only: this crate never
//! links the relay.)

use std::path::PathBuf;

/// The dev secrets of `.dev.vars.example`.
pub const DEV_SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const DEV_QUERY_SECRET: &str = "test-webhook-secret";
pub const DEV_API_SECRET: &str = "test-api-secret";

/// The relay's `FORWARD_TIMEOUT_MS` in [`relay_bindings`]. Generous: a
/// forward that the suites expect to be answered must not time out on a
/// busy machine; a test of the timeout sets its own.
pub const TEST_FORWARD_TIMEOUT_MS: u32 = 8_000;

/// The relay bundle built by `scripts/test.sh` (`wrangler deploy --dry-run
/// --outdir dist`), or `$CLERK_SYNC_DIST`.
pub fn relay_dist() -> PathBuf {
    std::env::var_os("CLERK_SYNC_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("dist"))
}

/// The relay's bindings for a test: dev secrets, forwarding to `api_url`.
pub fn relay_bindings(api_url: &str) -> Vec<(String, String)> {
    [
        ("CLERK_WEBHOOK_SECRET", DEV_SIGNING_SECRET),
        ("WEBHOOK_QUERY_SECRET", DEV_QUERY_SECRET),
        ("API_SECRET", DEV_API_SECRET),
        ("API_URL", api_url),
        ("API_SYNC_PATH", "/internal/clerk-sync"),
        ("FORWARD_TIMEOUT_MS", &TEST_FORWARD_TIMEOUT_MS.to_string()),
        ("MAX_BODY_BYTES", "262144"),
        ("ALLOW_UNSIGNED_WEBHOOKS", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Replaces or adds one binding.
pub fn with_binding(
    mut b: Vec<(String, String)>,
    name: &str,
    value: &str,
) -> Vec<(String, String)> {
    b.retain(|(k, _)| k != name);
    b.push((name.into(), value.into()));
    b
}

/// `content-type` and the three `svix-*` headers for `body`, signed now with
/// the dev secret (in that order: the signature is the fourth).
pub fn svix_headers(id: &str, body: &[u8]) -> Vec<(String, String)> {
    let mut h = vec![("content-type".to_string(), "application/json".to_string())];
    h.extend(crate::svix::headers(
        DEV_SIGNING_SECRET,
        id,
        crate::unix_now(),
        body,
    ));
    h
}
