//! The one HTTP helper of the suites: `get`/`post` through ureq (any status
//! is an answer, never an error), and requests written byte for byte on a
//! raw socket, for the framing a client library would refuse to send
//! (chunked bodies, false lengths, repeated or malformed headers, a sender
//! that stops halfway).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// How long one request may take before the helper gives up: a bound for a
/// hung server, not a performance expectation.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build()
}

fn answer(url: &str, result: Result<ureq::Response, ureq::Error>) -> ureq::Response {
    match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    }
}

/// A POST with these headers: the status and the body as JSON (`Null` when
/// it is not JSON).
pub fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Json) {
    request("POST", url, headers, body)
}

/// Any method with a body: the status and the body as JSON (`Null` when it
/// is not JSON).
pub fn request(method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> (u16, Json) {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = answer(url, req.send_bytes(body));
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Json::Null))
}

/// A GET: the status, the body as JSON, and the headers.
pub fn get(url: &str) -> (u16, Json, Vec<(String, String)>) {
    get_full(url, &[])
}

/// A GET with these headers: the status and the body as JSON.
pub fn get_with(url: &str, headers: &[(String, String)]) -> (u16, Json) {
    let (status, json, _) = get_full(url, headers);
    (status, json)
}

fn get_full(url: &str, headers: &[(String, String)]) -> (u16, Json, Vec<(String, String)>) {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = answer(url, req.call());
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), resp.header(&n).unwrap_or_default().to_string()))
        .collect();
    let json = serde_json::from_str(&resp.into_string().unwrap_or_default()).unwrap_or(Json::Null);
    (status, json, headers)
}

/// A GET with these headers and its own timeout: the status and the body as
/// JSON, or `None` when nothing answered in time (for bounded polls).
pub fn try_get_with(
    url: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Option<(u16, Json)> {
    let mut req = agent().get(url).timeout(timeout);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => {
            let status = r.status();
            let text = r.into_string().unwrap_or_default();
            Some((status, serde_json::from_str(&text).unwrap_or(Json::Null)))
        }
        Err(_) => None,
    }
}

/// The status of a GET, or `None` when nothing answered (yet): for
/// readiness polls.
pub fn try_get_status(url: &str) -> Option<u16> {
    match agent().get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => Some(r.status()),
        Err(_) => None,
    }
}

/// One chunk of a `transfer-encoding: chunked` body, framed.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat()
}

/// An HTTP answer read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// From the first byte written to the last byte of the answer read.
    pub elapsed: Duration,
}

impl RawResponse {
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` as is (any framing, any headers, repeated or malformed)
/// to 127.0.0.1:`port` and reads one answer. `None` when the connection
/// closed without an answer.
pub fn raw_request(port: u16, request: &[u8]) -> Option<RawResponse> {
    raw_request_streaming(port, request, std::iter::empty(), Duration::ZERO)
}

/// Writes `head`, then each chunk of `body` with `pause` between them,
/// stopping early if the server stops reading (it may answer before the body
/// is complete), then reads one answer.
pub fn raw_request_streaming(
    port: u16,
    head: &[u8],
    body: impl IntoIterator<Item = Vec<u8>>,
    pause: Duration,
) -> Option<RawResponse> {
    raw_exchange(port, head, body, pause, false)
}

/// Like [`raw_request`], then closes the writing half: the sender is done,
/// whatever its `content-length` said.
pub fn raw_request_half_closed(port: u16, request: &[u8]) -> Option<RawResponse> {
    raw_exchange(port, request, std::iter::empty(), Duration::ZERO, true)
}

fn raw_exchange(
    port: u16,
    head: &[u8],
    body: impl IntoIterator<Item = Vec<u8>>,
    pause: Duration,
    half_close: bool,
) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).ok()?;
    let start = Instant::now();
    stream.write_all(head).ok()?;
    for chunk in body {
        if !pause.is_zero() {
            thread::sleep(pause);
        }
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut reader = BufReader::new(stream);
    read_response(&mut reader).map(|(status, headers, body)| RawResponse {
        status,
        headers,
        body,
        elapsed: start.elapsed(),
    })
}

type Head = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 answer: status, headers (names lowercase) and the body
/// as framed by `content-length`, chunks, or the end of the connection.
pub fn read_response(reader: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        let _ = reader.read_to_end(&mut body);
    }
    Some((status, headers, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_each_framing() {
        let read = |text: &str| read_response(&mut text.as_bytes()).unwrap();
        let (s, h, b) = read("HTTP/1.1 413 X\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((s, b.as_slice()), (413, &b"{}"[..]));
        assert_eq!(h, vec![("content-length".into(), "2".into())]);
        let (s, _, b) = read(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        );
        assert_eq!((s, b.as_slice()), (200, &b"abc"[..]));
        let (_, _, b) = read("HTTP/1.1 200 OK\r\n\r\nto the end");
        assert_eq!(b, b"to the end");
        assert!(read_response(&mut &b"HTTP/1.1 200 OK\r\nx: y\r\n"[..]).is_none());
        assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
    }
}
