//! `POST /admin/resync` bodies: exactly what issue 9 accepts, and a stable
//! code for everything else.

use clerk_sync_resync::start::MAX_START_BODY_BYTES;
use clerk_sync_resync::{parse_start, Scope, StartError};

fn ids(n: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("\"user_{i}\"")).collect();
    format!(r#"{{"scope":"users","clerk_ids":[{}]}}"#, list.join(","))
}

#[test]
fn accepted_bodies() {
    for body in [
        "",
        "  \n",
        "{}",
        r#"{"scope":"all"}"#,
        " { \"scope\" : \"all\" } ",
    ] {
        assert_eq!(parse_start(body.as_bytes()), Ok(Scope::All), "{body:?}");
    }
    assert_eq!(parse_start(br#"{"scope":"failed"}"#), Ok(Scope::Failed));
    assert_eq!(parse_start(br#"{"scope":"pending"}"#), Ok(Scope::Pending));
    assert_eq!(
        parse_start(br#"{"clerk_ids":["user_a","user_b","user_a"],"scope":"users"}"#),
        Ok(Scope::Users {
            clerk_ids: vec!["user_a".into(), "user_b".into()]
        })
    );
    let Ok(Scope::Users { clerk_ids }) = parse_start(ids(500).as_bytes()) else {
        panic!("500 ids are accepted");
    };
    assert_eq!(clerk_ids.len(), 500);
    let long = format!(r#"{{"scope":"users","clerk_ids":["{}"]}}"#, "a".repeat(128));
    assert!(parse_start(long.as_bytes()).is_ok());
}

#[test]
fn refused_bodies_have_stable_codes() {
    let long = format!(r#"{{"scope":"users","clerk_ids":["{}"]}}"#, "a".repeat(129));
    let huge = vec![b' '; MAX_START_BODY_BYTES + 1];
    let cases: Vec<(&[u8], &str)> = vec![
        (&huge, "body_too_large"),
        (b"{", "invalid_json"),
        (b"scope=all", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"{}{}", "invalid_json"),
        (b"null", "invalid_body"),
        (b"[]", "invalid_body"),
        (b"\"all\"", "invalid_body"),
        (br#"{"scope":"all","extra":1}"#, "unknown_field"),
        (br#"{"Scope":"all"}"#, "unknown_field"),
        (
            br#"{"scope":"all","clerk_ids":["user_a"]}"#,
            "unknown_field",
        ),
        (br#"{"scope":"failed","clerk_ids":[]}"#, "unknown_field"),
        (br#"{"clerk_ids":["user_a"]}"#, "unknown_field"),
        (br#"{"scope":"all","scope":"users"}"#, "duplicate_field"),
        (
            br#"{"scope":"users","clerk_ids":["a"],"clerk_ids":["b"]}"#,
            "duplicate_field",
        ),
        (br#"{"scope":"everything"}"#, "invalid_scope"),
        (br#"{"scope":"ALL"}"#, "invalid_scope"),
        (br#"{"scope":null}"#, "invalid_scope"),
        (br#"{"scope":1}"#, "invalid_scope"),
        (br#"{"scope":"users"}"#, "missing_clerk_ids"),
        (
            br#"{"scope":"users","clerk_ids":"user_a"}"#,
            "invalid_clerk_ids",
        ),
        (
            br#"{"scope":"users","clerk_ids":null}"#,
            "invalid_clerk_ids",
        ),
        (br#"{"scope":"users","clerk_ids":[1]}"#, "invalid_clerk_ids"),
        (br#"{"scope":"users","clerk_ids":[]}"#, "no_clerk_ids"),
        (br#"{"scope":"users","clerk_ids":[""]}"#, "invalid_clerk_id"),
        (
            br#"{"scope":"users","clerk_ids":["user a"]}"#,
            "invalid_clerk_id",
        ),
        (
            br#"{"scope":"users","clerk_ids":["-user_a"]}"#,
            "invalid_clerk_id",
        ),
        (
            br#"{"scope":"users","clerk_ids":["user_a,user_b"]}"#,
            "invalid_clerk_id",
        ),
        (long.as_bytes(), "invalid_clerk_id"),
    ];
    for (body, code) in cases {
        let got = parse_start(body).map_err(StartError::code);
        assert_eq!(got, Err(code), "{:?}", String::from_utf8_lossy(body));
    }
    assert_eq!(
        parse_start(ids(501).as_bytes()),
        Err(StartError::TooManyClerkIds)
    );
    // 501 entries are too many even when some repeat.
    let repeated = format!(
        r#"{{"scope":"users","clerk_ids":[{}]}}"#,
        vec!["\"u\""; 501].join(",")
    );
    assert_eq!(
        parse_start(repeated.as_bytes()),
        Err(StartError::TooManyClerkIds)
    );
}

#[test]
fn messages_echo_nothing() {
    let err = parse_start(br#"{"scope":"sk_live_secret"}"#).unwrap_err();
    assert!(!err.to_string().contains("sk_live"));
    assert_eq!(err.to_string(), err.to_string().to_lowercase());
}

#[test]
fn scope_round_trips_as_the_start_body() {
    let scope = Scope::Users {
        clerk_ids: vec!["user_a".into()],
    };
    let text = serde_json::to_string(&scope).unwrap();
    assert_eq!(text, r#"{"scope":"users","clerk_ids":["user_a"]}"#);
    assert_eq!(parse_start(text.as_bytes()), Ok(scope));
    assert_eq!(
        serde_json::to_string(&Scope::All).unwrap(),
        r#"{"scope":"all"}"#
    );
}
