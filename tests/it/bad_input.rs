//! The bad-input catalogue, end to end: each malformed request is written
//! byte for byte on a raw socket to the built relay in workerd, and must get
//! its documented 4xx (SECURITY.md), for little work (workerd's CPU time,
//! which a busy machine does not inflate as it does elapsed time), with one
//! log line, and nothing forwarded. Controls of the same shapes that are
//! valid pass, so each rejection is down to the one defect.

use std::time::Duration;

use crate::fixtures;
use crate::logs::Sensitive;
use clerk_sync_testkit::prelude::*;

/// How the bytes go on the wire.
enum Wire {
    /// Written at once.
    Whole(Vec<u8>),
    /// Written at once, then the writing half closed.
    HalfClosed(Vec<u8>),
    /// The head, then the chunks (already framed) one after the other.
    Streamed(Vec<u8>, Vec<Vec<u8>>),
}

struct Case {
    name: &'static str,
    wire: Wire,
    status: u16,
    /// The relay's error code; `None` when the runtime answers before the worker runs.
    code: Option<&'static str>,
}

const SYNC: &str = "/webhook";

fn query() -> String {
    format!("?secret={DEV_QUERY_SECRET}")
}

/// A request head: request line, host, `connection: close`, the given header
/// lines (each `name: value`, raw bytes allowed), and the blank line.
fn head(port: u16, target: &str, lines: &[Vec<u8>]) -> Vec<u8> {
    let mut h =
        format!("POST {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n")
            .into_bytes();
    for l in lines {
        h.extend_from_slice(l);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

fn line(name: &str, value: &str) -> Vec<u8> {
    format!("{name}: {value}").into_bytes()
}

/// The signed header lines for `body` as `id`, with a `content-length` of `len`.
fn signed(id: &str, body: &[u8], len: usize) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = svix_headers(id, body)
        .iter()
        .map(|(k, v)| line(k, v))
        .collect();
    lines.push(line("content-length", &len.to_string()));
    lines
}

/// `headers` (name, value) as lines, replacing `name`'s value.
fn replaced(id: &str, body: &[u8], name: &str, value: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for (k, v) in svix_headers(id, body) {
        if k == name {
            lines.push([format!("{k}: ").as_bytes(), value].concat());
        } else {
            lines.push(line(&k, &v));
        }
    }
    lines.push(line("content-length", &body.len().to_string()));
    lines
}

fn whole(port: u16, lines: &[Vec<u8>], body: &[u8]) -> Wire {
    Wire::Whole(
        [
            head(port, &format!("{SYNC}{}", query()), lines),
            body.to_vec(),
        ]
        .concat(),
    )
}

fn signed_body(port: u16, id: &str, body: &[u8]) -> Wire {
    whole(port, &signed(id, body, body.len()), body)
}

/// The work one bad input may cost workerd: 2 s of CPU (100 ticks a second).
/// Each costs milliseconds; a quadratic path on a 100 kB input costs far more.
const MAX_CPU_TICKS: u64 = 200;

/// A bound for an answer that never comes, not a performance expectation.
const MAX_ELAPSED: Duration = Duration::from_secs(20);

fn send(port: u16, wire: Wire) -> Option<RawResponse> {
    match wire {
        Wire::Whole(bytes) => raw_request(port, &bytes),
        Wire::HalfClosed(bytes) => raw_request_half_closed(port, &bytes),
        Wire::Streamed(head, chunks) => raw_request_streaming(port, &head, chunks, Duration::ZERO),
    }
}

fn catalogue(port: u16) -> Vec<Case> {
    let delete = fixtures::load("dashboard_user_deleted.json");
    let now = unix_now().to_string();
    let mut cases = vec![];
    let mut case = |name, wire, status, code: Option<&'static str>| {
        cases.push(Case {
            name,
            wire,
            status,
            code,
        })
    };

    // Framing.
    let mut bytes = head(
        port,
        &format!("{SYNC}{}", query()),
        &signed("msg_cl_long", &delete, delete.len() + 100),
    );
    bytes.extend_from_slice(&delete);
    case(
        "content-length larger than the body",
        Wire::HalfClosed(bytes),
        400,
        Some("unreadable_body"),
    );
    case(
        "content-length smaller than the body",
        whole(
            port,
            &signed("msg_cl_short", &delete, delete.len() - 10),
            &delete,
        ),
        401,
        Some("invalid_signature"),
    );
    let mut lines = signed("msg_cl_huge", &delete, 0);
    lines.pop();
    lines.push(line("content-length", "999999999"));
    case(
        "content-length over the limit, nothing sent",
        Wire::Whole(head(port, &format!("{SYNC}{}", query()), &lines)),
        413,
        Some("payload_too_large"),
    );
    let big = vec![b' '; 1 << 20];
    let mut lines = signed("msg_chunked", &big, 0);
    lines.pop();
    lines.push(line("transfer-encoding", "chunked"));
    let mut chunks: Vec<Vec<u8>> = big.chunks(16 * 1024).map(chunk).collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    case(
        "chunked body over the limit, no length",
        Wire::Streamed(head(port, &format!("{SYNC}{}", query()), &lines), chunks),
        413,
        Some("payload_too_large"),
    );

    // Bodies (each correctly signed: only the content is wrong).
    case(
        "empty body",
        signed_body(port, "msg_empty", b""),
        400,
        Some("invalid_json"),
    );
    case(
        "empty body, unsigned",
        whole(port, &[line("content-length", "0")], b""),
        401,
        Some("missing_signature_headers"),
    );
    case(
        "not JSON",
        signed_body(port, "msg_nj", b"type=user.created"),
        400,
        Some("invalid_json"),
    );
    case(
        "invalid UTF-8",
        signed_body(
            port,
            "msg_utf8",
            b"{\"type\":\"user.deleted\",\"data\":{\"id\":\"user_\xff\"}}",
        ),
        400,
        Some("invalid_json"),
    );
    for (name, body) in [
        ("JSON that is not an object: array", &b"[]"[..]),
        ("JSON that is not an object: number", b"42"),
        ("JSON that is not an object: string", b"\"user.deleted\""),
        ("JSON that is not an object: null", b"null"),
        (
            "JSON that is not an object: an array in the envelope's field order",
            br#"["user.deleted",{"id":"user_1"}]"#,
        ),
        (
            "type not a string: number",
            br#"{"type":7,"data":{"id":"user_1"}}"#,
        ),
        (
            "type not a string: null",
            br#"{"type":null,"data":{"id":"user_1"}}"#,
        ),
        (
            "type not a string: array",
            br#"{"type":["user.deleted"],"data":{"id":"user_1"}}"#,
        ),
        (
            "type not a string: object",
            br#"{"type":{"user":"deleted"},"data":{"id":"user_1"}}"#,
        ),
        ("no type", br#"{"data":{"id":"user_1"}}"#),
        (
            "user data that is an array",
            br#"{"type":"user.deleted","data":["user_1"]}"#,
        ),
        (
            "user data with an empty id",
            br#"{"type":"user.deleted","data":{"id":""}}"#,
        ),
    ] {
        case(
            name,
            signed_body(port, "msg_shape", body),
            400,
            Some("invalid_payload"),
        );
    }
    let nested = format!(
        "{{\"type\":\"user.created\",\"data\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    case(
        "user data nested 100 000 deep",
        signed_body(port, "msg_nested", nested.as_bytes()),
        400,
        Some("invalid_payload"),
    );
    // Rejected at the first `[` (not an object), before the missing end is seen.
    case(
        "100 000 unclosed brackets",
        signed_body(port, "msg_unclosed", "[".repeat(100_000).as_bytes()),
        400,
        Some("invalid_payload"),
    );
    let huge = format!(
        "{{\"type\":\"user.created\",\"data\":{{\"first_name\":\"{}\"}}}}",
        "x".repeat(200_000)
    );
    case(
        "a 200 kB string and no id",
        signed_body(port, "msg_huge", huge.as_bytes()),
        400,
        Some("invalid_payload"),
    );

    // Signature headers.
    let mut dup = signed("msg_dup", &delete, delete.len());
    dup.push(line(
        "svix-signature",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ));
    case(
        "duplicate signature headers (joined with \", \")",
        whole(port, &dup, &delete),
        401,
        Some("invalid_signature"),
    );
    let mut dup = signed("msg_dup_id", &delete, delete.len());
    dup.push(line("svix-id", "msg_dup_id"));
    case(
        "duplicate id headers",
        whole(port, &dup, &delete),
        401,
        Some("invalid_message_id"),
    );
    let mut dup = signed("msg_dup_ts", &delete, delete.len());
    dup.push(line("svix-timestamp", &now));
    case(
        "duplicate timestamp headers",
        whole(port, &dup, &delete),
        401,
        Some("invalid_timestamp"),
    );
    let good = svix_headers("msg_long_sig", &delete)[3].1.clone();
    let long_sig = format!(
        "{}{good}",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(2_000)
    );
    case(
        "a 94 kB signature header of 2 001 entries, the last one valid",
        whole(
            port,
            &replaced(
                "msg_long_sig",
                &delete,
                "svix-signature",
                long_sig.as_bytes(),
            ),
            &delete,
        ),
        401,
        Some("invalid_signature"),
    );
    let long_id = "a".repeat(60_000);
    case(
        "a 60 kB id",
        whole(
            port,
            &replaced("msg_x", &delete, "svix-id", long_id.as_bytes()),
            &delete,
        ),
        401,
        Some("invalid_message_id"),
    );
    let mut lines = signed("msg_431", &delete, delete.len());
    lines.push(line("x-padding", &"p".repeat(200_000)));
    case(
        "headers over the runtime's limit (200 kB)",
        whole(port, &lines, &delete),
        431,
        None,
    );
    let id_257 = "m".repeat(257);
    case(
        "an id of 257 characters",
        signed_body(port, &id_257, &delete),
        401,
        Some("invalid_message_id"),
    );
    case(
        "an id with bytes that are not UTF-8",
        whole(
            port,
            &replaced("msg_x", &delete, "svix-id", b"msg_\xff\xfe"),
            &delete,
        ),
        401,
        Some("invalid_message_id"),
    );
    for (name, ts, code) in [
        (
            "a 20-digit timestamp beyond u64",
            "99999999999999999999",
            "invalid_timestamp",
        ),
        (
            "a 20-digit timestamp within u64",
            "10000000000000000000",
            "timestamp_out_of_tolerance",
        ),
        (
            "a timestamp zero-padded to 20 digits",
            &format!("{now:0>20}"),
            "invalid_timestamp",
        ),
    ] {
        case(
            name,
            whole(
                port,
                &replaced("msg_ts", &delete, "svix-timestamp", ts.as_bytes()),
                &delete,
            ),
            401,
            Some(code),
        );
    }
    let mixed: Vec<Vec<u8>> = signed("msg_mixed", &delete, delete.len())
        .into_iter()
        .map(|l| {
            let text = String::from_utf8(l).unwrap();
            text.replace("svix-timestamp", "webhook-timestamp")
                .replace("svix-signature", "webhook-signature")
                .into_bytes()
        })
        .collect();
    case(
        "svix and webhook families mixed",
        whole(port, &mixed, &delete),
        401,
        Some("missing_signature_headers"),
    );

    // The query secret.
    let lines = signed("msg_q", &delete, delete.len());
    let twice = format!("{SYNC}{}&secret={DEV_QUERY_SECRET}", query());
    case(
        "query secret given twice",
        Wire::Whole([head(port, &twice, &lines), delete.clone()].concat()),
        401,
        Some("unauthorized"),
    );
    case(
        "no query secret",
        Wire::Whole([head(port, SYNC, &lines), delete.clone()].concat()),
        401,
        Some("unauthorized"),
    );
    cases
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn each_bad_input_gets_its_4xx_quickly_and_nothing_is_forwarded() {
    let api = StandIn::start();
    let relay = Workerd::serve_relay(&relay_bindings(&api.url));
    let cases = catalogue(relay.port);
    let mut logged = Vec::new();
    let mut failures = Vec::new();
    let cpu = || cpu_ticks(relay.pid()).expect("workerd's CPU time");
    let mut costliest = (0, "");
    for c in cases {
        let before = cpu();
        let answer = send(relay.port, c.wire);
        let ticks = cpu() - before;
        costliest = costliest.max((ticks, c.name));
        if ticks > MAX_CPU_TICKS {
            failures.push(format!("{}: cost workerd {ticks} CPU ticks", c.name));
        }
        let Some(r) = answer else {
            failures.push(format!("{}: no answer", c.name));
            continue;
        };
        let code = r.json()["error"].as_str().map(str::to_owned);
        if r.status != c.status || (c.code.is_some() && code.as_deref() != c.code) {
            failures.push(format!(
                "{}: got {} {code:?}, want {} {:?}",
                c.name, r.status, c.status, c.code
            ));
        }
        if r.elapsed > MAX_ELAPSED {
            failures.push(format!("{}: took {:?}", c.name, r.elapsed));
        }
        if let Some(code) = c.code {
            logged.push((c.name, code, c.status));
        }
    }
    eprintln!(
        "bad inputs: the costliest took workerd {} CPU ticks of 10 ms ({})",
        costliest.0, costliest.1
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(api.received().is_empty(), "a bad input was forwarded");

    // One line per request that reached the worker, saying what happened.
    let lines = relay.wait_for_log_lines(logged.len());
    assert_eq!(lines.len(), logged.len());
    for (line, (name, code, status)) in lines.iter().zip(&logged) {
        assert_eq!(
            (line["outcome"].as_str(), &line["status"]),
            (Some(*code), &(*status).into()),
            "{name}: {line}"
        );
    }
    // No panic, no trap: the same instance still serves.
    let logs = relay.logs();
    for sign in ["panicked", "RuntimeError", "unreachable"] {
        assert!(!logs.contains(sign), "{sign} in the logs:\n{logs}");
    }
    let body = fixtures::load("docs_user_created.json");
    let (s, _) = post(
        &format!("{}{SYNC}{}", relay.base_url, query()),
        &svix_headers("msg_after", &body),
        &body,
    );
    assert_eq!(s, 200);
    let mut sensitive = Sensitive::new();
    sensitive.secret("padding header", &"p".repeat(64));
    sensitive.secret("long id", &"a".repeat(64));
    sensitive.secret("long body string", &"x".repeat(64));
    sensitive.secret("query string", "secret=");
    sensitive.assert_absent_from(&logs);
}

#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn the_same_shapes_pass_when_valid() {
    let api = StandIn::start();
    let relay = Workerd::serve_relay(&relay_bindings(&api.url));
    let port = relay.port;
    let delete = fixtures::load("dashboard_user_deleted.json");
    let mut lines = signed("msg_ok_chunked", &delete, 0);
    lines.pop();
    lines.push(line("transfer-encoding", "chunked"));
    let mut chunks: Vec<Vec<u8>> = delete.chunks(100).map(chunk).collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    let id_256 = "m".repeat(256);
    let mut padded = signed("msg_ok_padded", &delete, delete.len());
    padded.push(line("x-padding", &"p".repeat(60_000)));
    let good = svix_headers("msg_ok_16", &delete)[3].1.clone();
    let sixteen = format!(
        "{}{good}",
        "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ".repeat(15)
    );
    // Deep nesting where it is allowed (an unknown field) is parsed without
    // recursion: no stack overflow in the 1 MiB WASM stack.
    let deep = format!(
        "{{\"type\":\"user.deleted\",\"data\":{{\"id\":\"user_1\",\"x\":{}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let controls = [
        (
            "chunked within the limit",
            Wire::Streamed(head(port, &format!("{SYNC}{}", query()), &lines), chunks),
        ),
        (
            "an id of 256 characters",
            signed_body(port, &id_256, &delete),
        ),
        ("60 kB of other headers", whole(port, &padded, &delete)),
        (
            "16 signature entries, the last one valid",
            whole(
                port,
                &replaced("msg_ok_16", &delete, "svix-signature", sixteen.as_bytes()),
                &delete,
            ),
        ),
        (
            "an unknown field nested 100 000 deep",
            signed_body(port, "msg_ok_deep", deep.as_bytes()),
        ),
    ];
    let n = controls.len();
    for (name, wire) in controls {
        let r = send(port, wire).unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(api.received().len(), n);
}

/// The limit holds while the body is still arriving: a chunked body is
/// answered 413 once the bytes read pass `MAX_BODY_BYTES`, and the connection
/// closes, long before the sender would have finished (it sends for 20 s;
/// the limit is passed in its first 0.3 s).
#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_chunked_body_over_the_limit_is_refused_before_it_ends() {
    refused_before_the_end(None);
}

/// The same with a small `content-length` beside `transfer-encoding:
/// chunked`: the runtime frames by chunks and passes both headers on, and
/// the relay once took the length at its word and buffered the whole body
/// with `bytes()` (found by this test).
#[test]
#[ignore = "needs the built worker: scripts/test.sh"]
fn a_chunked_body_with_a_false_length_is_refused_before_it_ends() {
    refused_before_the_end(Some("100"));
}

fn refused_before_the_end(false_length: Option<&str>) {
    use std::io::{Read, Write};
    let api = StandIn::start();
    let relay = Workerd::serve_relay(&relay_bindings(&api.url));
    // 16 MiB in 16 KiB chunks, 20 ms apart: 20 s to send it all, of which
    // the first 0.3 s pass the 256 KiB limit. Stopped before the half: the
    // relay had 10 s to answer, which no busy machine takes.
    let big = vec![b' '; 16 << 20];
    let mut lines = signed("msg_chunked_slow", &big, 0);
    lines.pop();
    lines.push(line("transfer-encoding", "chunked"));
    if let Some(length) = false_length {
        lines.push(line("content-length", length));
    }
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(&head(relay.port, &format!("{SYNC}{}", query()), &lines))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        // Until the relay closes (or resets) the connection.
        let (mut got, mut buf) = (Vec::new(), [0u8; 512]);
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).to_string()
    });
    let mut sent = 0;
    for c in big.chunks(16 * 1024) {
        std::thread::sleep(Duration::from_millis(20));
        if stream.write_all(&chunk(c)).is_err() {
            break;
        }
        sent += c.len();
    }
    let answer = answer.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(
        sent < big.len() / 2,
        "the sender got {sent} of {} bytes out before the connection closed",
        big.len()
    );
    assert!(api.received().is_empty());
}
