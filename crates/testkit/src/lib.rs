//! Test support for every clerk-sync suite (the relay's, the main API's, the
//! fuzz targets' signing), and nothing that ships: a dev-dependency only.
//!
//! - [`svix`]: a Svix / Standard Webhooks signer written independently of
//!   the relay (the `svix` crate checks it in the relay's tests);
//! - [`http`]: the one HTTP helper: `get`/`post` through ureq, and requests
//!   written byte for byte on a raw socket;
//! - [`process`]: the one process helper: a child in its own process group,
//!   a watchdog that stops the group when the test process is gone,
//!   readiness by polling a condition, the child's log;
//! - [`workerd`]: a built Worker bundle served by plain `workerd serve`;
//! - [`standin`]: a recording stand-in for the main API that can be told how
//!   to answer;
//! - [`relay`]: the relay's dev settings as the suites use them;
//! - [`clerk`]: the stand-in Clerk Backend API (node) and its control surface;
//! - [`stack`]: `wrangler dev` servers: the main API on D1, and the relay
//!   with the re-sync Worker in one process;
//! - [`ports`], [`tempdir`], [`wait_until`].
//!
//! It never depends on the `clerk-sync` crate: the relay's own tests depend
//! on this one, and a cycle would give them two copies of its types.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub mod clerk;
pub mod http;
pub mod ports;
pub mod process;
pub mod relay;
pub mod stack;
pub mod standin;
pub mod svix;
pub mod tempdir;
pub mod workerd;

/// What a suite usually needs, in one `use`.
pub mod prelude {
    pub use crate::clerk::{ClerkStandIn, STANDIN_SECRET_KEY};
    pub use crate::http::{
        chunk, get, get_with, post, raw_request, raw_request_half_closed, raw_request_streaming,
        request, try_get_status, try_get_with, RawResponse,
    };
    pub use crate::ports::{free_port, wait_for_port};
    pub use crate::process::{cpu_ticks, rss_kib, start_on_free_ports, Process};
    pub use crate::relay::{
        relay_bindings, svix_headers, with_binding, DEV_API_SECRET, DEV_QUERY_SECRET,
        DEV_SIGNING_SECRET,
    };
    pub use crate::stack::{
        queue_settings, MainApiDev, QueueDev, RelayDev, RelayDevOptions, DEV_ADMIN_SECRET,
    };
    pub use crate::standin::{Behaviour, Recorded, StandIn, REDIRECT_TARGET};
    pub use crate::tempdir::TempDir;
    pub use crate::workerd::Workerd;
    pub use crate::{exclusive, fixture, repo_root, unix_now, wait_until};
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    root.canonicalize().unwrap_or(root)
}

/// A payload from `tests/fixtures/` (Clerk's docs, dashboard, OpenAPI
/// examples, a captured delivery, the seed's curl body).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Polls `condition` until it holds (true) or `timeout` has passed (false).
/// The timeout is a bound for when something is broken, never a wait:
/// make it generous, it costs nothing when the condition comes true.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Seconds since the Unix epoch, as a Svix timestamp.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Tests whose timing matters (the fault timings) hold this, so that they do
/// not run at the same time as each other in one test process.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
