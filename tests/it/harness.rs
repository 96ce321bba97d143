//! Test harness for the real runtime: the relay bundle (built by
//! `scripts/test.sh` with `wrangler deploy --dry-run --outdir dist`) served by
//! plain `workerd serve`, and a recording stand-in for the main API on a
//! loopback port that can be told how to answer. Everything binds 127.0.0.1
//! on a free port and is killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The dev secrets of `.dev.vars.example`, as the tests use them.
pub const DEV_SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const DEV_QUERY_SECRET: &str = "test-webhook-secret";
pub const DEV_API_SECRET: &str = "test-api-secret";

/// The relay's bindings for a test: dev secrets, forwarding to `api_url`.
pub fn relay_bindings(api_url: &str) -> Vec<(String, String)> {
    [
        ("CLERK_WEBHOOK_SECRET", DEV_SIGNING_SECRET),
        ("WEBHOOK_QUERY_SECRET", DEV_QUERY_SECRET),
        ("API_SECRET", DEV_API_SECRET),
        ("API_URL", api_url),
        ("API_SYNC_PATH", "/internal/clerk-sync"),
        ("FORWARD_TIMEOUT_MS", "1500"),
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

/// A workerd process serving a bundle made by `wrangler deploy --dry-run --outdir`.
pub struct Workerd {
    pub port: u16,
    pub base_url: String,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl Workerd {
    /// Serves the relay bundle in `dist/` (or `$CLERK_SYNC_DIST`).
    pub fn serve_relay(bindings: &[(String, String)]) -> Self {
        let dist = std::env::var_os("CLERK_SYNC_DIST")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("dist"));
        Self::serve(&dist, bindings)
    }

    /// Serves any bundle directory (an `index.js` plus the `.wasm` files it imports).
    pub fn serve(dist: &Path, bindings: &[(String, String)]) -> Self {
        assert!(
            dist.join("index.js").exists(),
            "{} has no index.js: build it with `bash scripts/test.sh` (or `npx wrangler deploy --dry-run --outdir dist`)",
            dist.display()
        );
        let dir = TempDir::new("workerd");
        let port = free_port();
        // capnp embeds are relative to the config file: link the bundle beside it.
        let link = |name: &std::ffi::OsStr| {
            std::os::unix::fs::symlink(dist.join(name), dir.path().join(name)).unwrap()
        };
        link("index.js".as_ref());
        let mut modules = vec!["(name = \"index.js\", esModule = embed \"index.js\")".to_string()];
        for entry in std::fs::read_dir(dist).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                let name = path.file_name().unwrap();
                link(name);
                modules.push(format!(
                    "(name = \"{0}\", wasm = embed \"{0}\")",
                    name.to_string_lossy()
                ));
            }
        }
        let bindings: Vec<String> = bindings
            .iter()
            .map(|(k, v)| format!("(name = \"{k}\", text = \"{}\")", capnp_escape(v)))
            .collect();
        let config = format!(
            r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "loopback", network = (allow = ["public", "private", "local"], tlsOptions = (trustBrowserCas = true))),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [ {modules} ],
  compatibilityDate = "2026-04-20",
  bindings = [ {bindings} ],
  globalOutbound = "loopback",
);
"#,
            modules = modules.join(", "),
            bindings = bindings.join(", "),
        );
        let config_path = dir.path().join("config.capnp");
        std::fs::write(&config_path, config).unwrap();
        let log = dir.path().join("workerd.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(workerd_bin())
            .args(["serve", "--verbose"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start workerd");
        let mut w = Workerd {
            port,
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _dir: dir,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = w.child.try_wait().unwrap().is_some();
            assert!(
                !exited && start.elapsed() < Duration::from_secs(30),
                "workerd did not listen: {}",
                w.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
        w
    }

    /// Everything workerd wrote (the worker's `console.log` lines included).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines the relay wrote.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| l.find('{').map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| v.get("msg").is_some())
            .collect()
    }

    /// The process id, for reading its RSS and CPU time from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn workerd_bin() -> PathBuf {
    std::env::var_os("WORKERD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("node_modules/.bin/workerd"))
}

fn capnp_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// How the stand-in main API answers the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer this status (with a small JSON body).
    Status(u16),
    /// Wait, then answer this status.
    Delay(Duration, u16),
    /// Read the request, then reset the connection (RST, no answer).
    Reset,
    /// Stop listening: new connections are refused; a kept-alive connection
    /// is reset at its next request.
    Refuse,
    /// Answer this 3xx status with `location: /redirected`; a request to
    /// `/redirected` is answered 200 (what a follow would reach).
    Redirect(u16),
}

/// Where `Behaviour::Redirect` points.
pub const REDIRECT_TARGET: &str = "/redirected";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with; `None` for a reset.
    pub answered: Option<u16>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the stand-in received JSON")
    }
}

/// A recording stand-in for the main API.
pub struct StandIn {
    pub port: u16,
    pub url: String,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    /// False while `Behaviour::Refuse` has the listening socket closed.
    listening: Arc<AtomicBool>,
}

impl StandIn {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let behaviour = Arc::new(Mutex::new(Behaviour::Status(200)));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let listening = Arc::new(AtomicBool::new(true));
        let (b, r, s, l) = (
            behaviour.clone(),
            received.clone(),
            stop.clone(),
            listening.clone(),
        );
        thread::spawn(move || {
            let mut listener = Some(listener);
            while let Some(current) = listener.as_ref() {
                let stream = current.accept();
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if *b.lock().unwrap() == Behaviour::Refuse {
                    // Close the socket so connects are refused, until told otherwise.
                    drop(stream);
                    drop(listener.take());
                    l.store(false, Ordering::SeqCst);
                    while *b.lock().unwrap() == Behaviour::Refuse && !s.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(2));
                    }
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    listener = Some(rebind(port));
                    l.store(true, Ordering::SeqCst);
                    continue;
                }
                let Ok((stream, _)) = stream else { continue };
                let (b, r) = (b.clone(), r.clone());
                thread::spawn(move || serve_connection(stream, &b, &r));
            }
        });
        StandIn {
            port,
            url: format!("http://127.0.0.1:{port}"),
            behaviour,
            received,
            stop,
            listening,
        }
    }

    /// Changes how the next requests are answered. `Refuse` returns once the
    /// port refuses connections; leaving it returns once it listens again.
    pub fn set(&self, b: Behaviour) {
        let was = std::mem::replace(&mut *self.behaviour.lock().unwrap(), b);
        let want_listening = b != Behaviour::Refuse;
        if was == Behaviour::Refuse || !want_listening {
            if !want_listening {
                // Wake the accept loop so that it closes the socket.
                let _ = TcpStream::connect(("127.0.0.1", self.port));
            }
            let start = Instant::now();
            while self.listening.load(Ordering::SeqCst) != want_listening {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "the stand-in did not switch listening to {want_listening}"
                );
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Listens on `port` again after `Behaviour::Refuse` (retrying briefly: the
/// port may be in use for a moment as another socket's source port).
fn rebind(port: u16) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if start.elapsed() > Duration::from_secs(5) => {
                panic!("the stand-in could not listen on {port} again: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    behaviour: &Mutex<Behaviour>,
    received: &Mutex<Vec<Recorded>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut now = *behaviour.lock().unwrap();
        if path == REDIRECT_TARGET {
            now = Behaviour::Status(200);
        }
        let answered = match now {
            Behaviour::Status(s) | Behaviour::Delay(_, s) | Behaviour::Redirect(s) => Some(s),
            Behaviour::Reset | Behaviour::Refuse => None,
        };
        received.lock().unwrap().push(Recorded {
            method,
            path,
            headers,
            body,
            answered,
        });
        match now {
            Behaviour::Reset | Behaviour::Refuse => {
                reset(&stream);
                return;
            }
            Behaviour::Delay(d, _) => thread::sleep(d),
            Behaviour::Status(_) | Behaviour::Redirect(_) => {}
        }
        let status = answered.unwrap();
        // 204 and 304 carry no body: bytes after them would corrupt the connection.
        let body = if matches!(status, 204 | 304) {
            String::new()
        } else {
            format!("{{\"status\":{status}}}")
        };
        let location = if matches!(now, Behaviour::Redirect(_)) {
            format!("location: {REDIRECT_TARGET}\r\n")
        } else {
            String::new()
        };
        let length = if matches!(status, 204 | 304) {
            String::new()
        } else {
            format!("content-length: {}\r\n", body.len())
        };
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{location}{length}\r\n{body}"
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Closes with SO_LINGER 0, so the peer sees a reset rather than a clean close.
fn reset(stream: &TcpStream) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let linger = libc_linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a valid fd with a correctly sized struct.
        unsafe {
            setsockopt(
                stream.as_raw_fd(),
                1,  /* SOL_SOCKET */
                13, /* SO_LINGER */
                &linger as *const libc_linger as *const std::ffi::c_void,
                std::mem::size_of::<libc_linger>() as u32,
            );
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[repr(C)]
struct libc_linger {
    l_onoff: i32,
    l_linger: i32,
}

extern "C" {
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
}

/// A POST with extra headers; returns the status and the parsed JSON body.
pub fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> (u16, serde_json::Value) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build();
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub fn get(url: &str) -> (u16, serde_json::Value, Vec<(String, String)>) {
    let resp = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), resp.header(&n).unwrap_or_default().to_string()))
        .collect();
    let json = serde_json::from_str(&resp.into_string().unwrap_or_default())
        .unwrap_or(serde_json::Value::Null);
    (status, json, headers)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The three `svix-*` headers for `body`, signed now with the dev secret.
pub fn svix_headers(id: &str, body: &[u8]) -> Vec<(String, String)> {
    let ts = unix_now();
    let secret = clerk_sync::verify::SigningSecret::parse(DEV_SIGNING_SECRET).unwrap();
    vec![
        ("content-type".into(), "application/json".into()),
        ("svix-id".into(), id.into()),
        ("svix-timestamp".into(), ts.to_string()),
        ("svix-signature".into(), secret.sign(id, ts, body)),
    ]
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "clerk-sync-{prefix}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
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
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .ok()?;
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

fn read_response(reader: &mut impl BufRead) -> Option<Head> {
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

/// Resident memory of a process, in KiB (`VmRSS` in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU time of a process, in clock ticks (/proc/<pid>/stat).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Tests whose timing matters (the load run, the fault timings) hold this,
/// so that they do not run at the same time as each other in one `cargo test`.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until the relay has written at least `n` request lines (its
/// `console.log` reaches the file a moment after the answer), then returns them.
pub fn wait_for_log_lines(w: &Workerd, n: usize) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let lines = w.log_lines();
        if lines.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
