//! Sign-in: the password check, the signed session cookie, the `Origin`
//! check every state-changing request passes, and the slowing of failed
//! sign-ins. Pure: the clock is a parameter and nothing here sleeps (the
//! glue waits the delay [`Throttle::fail`] returns).
//!
//! ```text
//! POST /login password=…   matches DASHBOARD_PASSWORD (SHA-256 digests, constant time)
//!   → Set-Cookie: clerk_sync_session=v1.<expires ms>.<hex HMAC-SHA256>; HttpOnly; SameSite=Strict; Path=/[; Secure]
//! GET  /  Cookie: …        → Session (MAC verified in constant time, not expired) or 303 /login
//! POST …  Origin: …        → must equal the request URL's own origin, else 403
//! ```
//!
//! The MAC covers the expiry and a digest of the password, keyed with
//! `SESSION_SECRET`: changing either setting signs everyone out. The
//! cookie holds no state on the server, so `POST /logout` clears it in the
//! browser; a copy of the value taken before stays valid until it expires
//! (revocation needs storage, not built yet).

use std::collections::VecDeque;

use clerk_sync_contract::{SecretString, UnixMillis};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const COOKIE_NAME: &str = "clerk_sync_session";
/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
const MAC_CONTEXT: &str = "clerk-sync-dashboard/session/v1";

/// A request whose cookie carried a valid, unexpired session. Only
/// [`verify`] constructs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    expires_at: UnixMillis,
}

impl Session {
    pub fn expires_at(&self) -> UnixMillis {
        self.expires_at
    }
}

fn mac(secret: &SecretString, password: &SecretString, expires_at: i64) -> Hmac<Sha256> {
    // Any key length is valid for HMAC; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    let password_digest = Sha256::digest(password.expose().as_bytes());
    mac.update(MAC_CONTEXT.as_bytes());
    mac.update(b"|");
    mac.update(expires_at.to_string().as_bytes());
    mac.update(b"|");
    mac.update(&password_digest);
    mac
}

/// The cookie value of a session signed in at `now`.
pub fn issue(secret: &SecretString, password: &SecretString, now: UnixMillis) -> String {
    let expires_at = now.as_millis().saturating_add(SESSION_TTL_MS);
    let tag = mac(secret, password, expires_at).finalize().into_bytes();
    format!("v1.{expires_at}.{}", hex::encode(tag))
}

/// The session in a `Cookie` header, if its MAC verifies and it has not
/// expired at `now`.
pub fn verify(
    secret: &SecretString,
    password: &SecretString,
    cookie_header: Option<&str>,
    now: UnixMillis,
) -> Option<Session> {
    let value = cookie_header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)?;
    let rest = value.strip_prefix("v1.")?;
    let (expires, tag) = rest.split_once('.')?;
    // Canonical digits only: one expiry has one text, so one MAC.
    if expires.is_empty()
        || expires.starts_with('0')
        || !expires.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let expires_at: i64 = expires.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    mac(secret, password, expires_at).verify_slice(&tag).ok()?;
    (now.as_millis() < expires_at).then_some(Session {
        expires_at: UnixMillis(expires_at),
    })
}

/// The password typed on the form against `DASHBOARD_PASSWORD`, in
/// constant time (and hiding the length: SHA-256 digests are compared).
pub fn password_matches(password: &SecretString, candidate: &str) -> bool {
    password.matches(candidate)
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = SESSION_TTL_MS / 1000;
    cookie(value, max_age, secure)
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    cookie("", 0, secure)
}

fn cookie(value: &str, max_age: i64, secure: bool) -> String {
    let mut c =
        format!("{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// Whether the request arrived over https (the cookie is then `Secure`).
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// `scheme://host[:port]` of an absolute URL, as a browser writes it in an
/// `Origin` header (lowercase; no user info, path or query).
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// The `Origin` header of a state-changing request equals the dashboard's
/// own origin (that of the URL the request was made to). A missing header,
/// `null` or another site's origin is refused.
pub fn same_origin(request_url: &str, origin_header: Option<&str>) -> bool {
    match (origin_of(request_url), origin_header) {
        (Some(own), Some(sent)) => own == sent.trim().to_ascii_lowercase(),
        _ => false,
    }
}

/// Failed sign-ins in this isolate: each failure is answered only after a
/// delay that grows with the failures of the last [`Throttle::WINDOW_MS`]
/// (1 s per failure, at most 10 s). Per isolate, so a slowdown rather than
/// a lockout: the runtime may run several isolates, and a lockout would let
/// anyone lock the operator out. In production, Cloudflare Access (or a
/// rate-limiting rule) in front is the real gate.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: VecDeque<UnixMillis>,
}

impl Throttle {
    pub const WINDOW_MS: i64 = 15 * 60 * 1000;
    pub const DELAY_PER_FAILURE_MS: u32 = 1_000;
    pub const MAX_DELAY_MS: u32 = 10_000;
    /// Failures remembered; more add nothing to the delay anyway.
    const MAX_REMEMBERED: usize = 64;

    /// Records a failure at `now`; how long to wait before answering it.
    pub fn fail(&mut self, now: UnixMillis) -> u32 {
        let since = now.as_millis() - Self::WINDOW_MS;
        while self
            .failures
            .front()
            .is_some_and(|t| t.as_millis() <= since)
        {
            self.failures.pop_front();
        }
        if self.failures.len() == Self::MAX_REMEMBERED {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        let n = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        n.saturating_mul(Self::DELAY_PER_FAILURE_MS)
            .min(Self::MAX_DELAY_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn keys() -> (SecretString, SecretString) {
        (
            SecretString::new("dev-session-secret-0123456789abcdef0123456789abcdef"),
            SecretString::new("dev-dashboard-password"),
        )
    }

    fn header(value: &str) -> String {
        format!("theme=dark; {COOKIE_NAME}={value}; other=1")
    }

    #[test]
    fn an_issued_session_verifies_until_it_expires() {
        let (secret, password) = keys();
        let value = issue(&secret, &password, NOW);
        let h = header(&value);
        let session = verify(&secret, &password, Some(&h), NOW).unwrap();
        assert_eq!(
            session.expires_at().as_millis(),
            NOW.as_millis() + SESSION_TTL_MS
        );
        let just_before = UnixMillis(NOW.as_millis() + SESSION_TTL_MS - 1);
        assert!(verify(&secret, &password, Some(&h), just_before).is_some());
        let at_expiry = UnixMillis(NOW.as_millis() + SESSION_TTL_MS);
        assert_eq!(verify(&secret, &password, Some(&h), at_expiry), None);
    }

    #[test]
    fn a_known_vector() {
        // Computed apart (Python's hmac): HMAC-SHA256(SESSION_SECRET,
        // "clerk-sync-dashboard/session/v1|1800043200000|" ‖ SHA-256(password)).
        let (secret, password) = keys();
        assert_eq!(
            issue(&secret, &password, NOW),
            "v1.1800043200000.7651cc55d6d4679f239de6c0de6cbf78c32abe049e10460cefa42b26b934244a"
        );
    }

    #[test]
    fn anything_changed_is_refused() {
        let (secret, password) = keys();
        let value = issue(&secret, &password, NOW);
        let later = format!(
            "v1.{}.{}",
            NOW.as_millis() + 2 * SESSION_TTL_MS,
            &value[18..]
        );
        let mut flipped = value.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            later.as_str(),
            flipped.as_str(),
            "",
            "v1.",
            "v1..",
            "v2.1800043200000.00",
            &value[..value.len() - 2],
            &format!("v1.0{}", &value[3..]),
        ] {
            assert_eq!(
                verify(&secret, &password, Some(&header(bad)), NOW),
                None,
                "{bad}"
            );
        }
        let other_secret = SecretString::new("another-session-secret-0123456789abcdef");
        let other_password = SecretString::new("another-password");
        let h = header(&value);
        assert_eq!(verify(&other_secret, &password, Some(&h), NOW), None);
        assert_eq!(verify(&secret, &other_password, Some(&h), NOW), None);
        assert_eq!(verify(&secret, &password, None, NOW), None);
        assert_eq!(
            verify(
                &secret,
                &password,
                Some(&format!("x{COOKIE_NAME}={value}")),
                NOW
            ),
            None,
            "another cookie's name"
        );
    }

    #[test]
    fn passwords_match_exactly() {
        let (_, password) = keys();
        assert!(password_matches(&password, "dev-dashboard-password"));
        for wrong in [
            "",
            "dev-dashboard-passworD",
            "dev-dashboard-password ",
            "dev",
        ] {
            assert!(!password_matches(&password, wrong), "{wrong}");
        }
    }

    #[test]
    fn cookies_have_the_attributes() {
        let c = set_cookie("v1.1.ab", false);
        assert_eq!(
            c,
            "clerk_sync_session=v1.1.ab; Max-Age=43200; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie("v", true).ends_with("; Secure"));
        let cleared = clear_cookie(true);
        assert!(cleared
            .starts_with("clerk_sync_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"));
        assert!(cleared.ends_with("; Secure"));
        assert!(is_https("https://dash.example.com/login") && is_https("HTTPS://x"));
        assert!(!is_https("http://127.0.0.1:5173/"));
    }

    #[test]
    fn only_the_dashboards_own_origin_passes() {
        let url = "http://127.0.0.1:5173/logout";
        assert!(same_origin(url, Some("http://127.0.0.1:5173")));
        assert!(same_origin(
            "https://Dash.Example.com/x?y",
            Some("https://dash.example.com")
        ));
        for bad in [
            None,
            Some("null"),
            Some(""),
            Some("http://127.0.0.1:5174"),
            Some("https://127.0.0.1:5173"),
            Some("http://127.0.0.1"),
            Some("http://evil.example"),
            Some("http://127.0.0.1:5173.evil.example"),
        ] {
            assert!(!same_origin(url, bad), "{bad:?}");
        }
        assert_eq!(origin_of("http://u:p@h:1/a"), Some("http://h:1".into()));
        assert_eq!(origin_of("nothing"), None);
    }

    #[test]
    fn failures_are_slowed_more_the_more_there_are() {
        let mut t = Throttle::default();
        assert_eq!(t.fail(NOW), 1_000);
        assert_eq!(t.fail(NOW), 2_000);
        for _ in 0..20 {
            t.fail(NOW);
        }
        assert_eq!(t.fail(NOW), Throttle::MAX_DELAY_MS);
        // Once the window has passed, the count starts again.
        let later = UnixMillis(NOW.as_millis() + Throttle::WINDOW_MS);
        assert_eq!(t.fail(later), 1_000);
        for _ in 0..1000 {
            t.fail(later);
        }
        assert!(t.failures.len() <= Throttle::MAX_REMEMBERED);
    }
}
