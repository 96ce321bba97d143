//! A recording stand-in for the main API on a loopback port: it keeps every
//! request it receives and answers as it is told ([`Behaviour`]): a status,
//! a slow status, a reset, a refused connection, a redirect.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value as Json;

/// How the stand-in answers the next requests.
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

/// How long a switch of [`Behaviour::Refuse`] may take: a bound for a
/// broken stand-in, not a wait.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

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

    pub fn json(&self) -> Json {
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
                    crate::wait_until(Duration::MAX, || {
                        *b.lock().unwrap() != Behaviour::Refuse || s.load(Ordering::SeqCst)
                    });
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
            assert!(
                crate::wait_until(SWITCH_TIMEOUT, || {
                    self.listening.load(Ordering::SeqCst) == want_listening
                }),
                "the stand-in did not switch listening to {want_listening}"
            );
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

/// Listens on `port` again after `Behaviour::Refuse` (retrying: the port may
/// be in use for a moment as another socket's source port).
fn rebind(port: u16) -> TcpListener {
    let mut listener = None;
    crate::wait_until(SWITCH_TIMEOUT, || {
        listener = TcpListener::bind(("127.0.0.1", port)).ok();
        listener.is_some()
    });
    listener.unwrap_or_else(|| panic!("the stand-in could not listen on {port} again"))
}

fn serve_connection(
    stream: TcpStream,
    behaviour: &Mutex<Behaviour>,
    received: &Mutex<Vec<Recorded>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
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
            // The behaviour under test: a slow main API.
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
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid fd with a correctly sized struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}
