//! The two URL questions every Worker's configuration asks (which host, and
//! is it a developer's machine), answered without a URL parser: the values
//! come from the Workers' own settings, and the `url` crate would add about
//! 100 KiB of IDNA tables to each bundle for them.

/// The host of an absolute URL (`scheme://[user@]host[:port]/…`), brackets
/// stripped from an IPv6 literal. `None` without a `://`.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `::1`: a developer's machine.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host == "0:0:0:0:0:0:0:1"
        || host.strip_prefix("127.").is_some_and(|rest| {
            rest.split('.').count() == 3 && rest.split('.').all(|o| o.parse::<u8>().is_ok())
        })
}

/// A base URL a Worker may send requests to: `https://host…`, or
/// `http://` to a loopback host (local development). Trailing slashes are
/// dropped so that paths can be appended. `None` for anything else.
pub fn base_url(url: &str) -> Option<String> {
    let url = url.trim();
    let host = url_host(url).filter(|h| !h.is_empty())?;
    let https = url.starts_with("https://");
    let local_http = url.starts_with("http://") && is_loopback_host(host);
    if !(https || local_http) || url.contains(['?', '#', ' ']) {
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(url_host("https://api.clerk.com/v1"), Some("api.clerk.com"));
        assert_eq!(url_host("http://u:p@127.0.0.1:8790"), Some("127.0.0.1"));
        assert_eq!(url_host("http://[::1]:80/x"), Some("::1"));
        assert_eq!(url_host("api.clerk.com"), None);
    }

    #[test]
    fn loopback() {
        for h in ["localhost", "a.localhost", "127.0.0.1", "127.9.8.7", "::1"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "127.0.0",
            "128.0.0.1",
            "localhost.example.com",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("https://api.clerk.com/").as_deref(),
            Some("https://api.clerk.com")
        );
        assert_eq!(
            base_url("http://127.0.0.1:8790").as_deref(),
            Some("http://127.0.0.1:8790")
        );
        assert_eq!(
            base_url("http://api.clerk.com"),
            None,
            "plain http off loopback"
        );
        assert_eq!(base_url("ftp://127.0.0.1"), None);
        assert_eq!(base_url("https://"), None);
        assert_eq!(base_url("https://a.example/?x=1"), None);
        assert_eq!(base_url("not a url"), None);
    }
}
