//! Loopback ports.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True once something accepts connections on 127.0.0.1:`port`; false if
/// nothing did within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    crate::wait_until(timeout, || TcpStream::connect(("127.0.0.1", port)).is_ok())
}
