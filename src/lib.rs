//! clerk-sync: a Cloudflare Worker that relays Clerk's user webhooks to the
//! application's own API.
//!
//! ```text
//! Clerk ─(Svix)─▶ POST /webhook?secret=…
//!   1. query secret     (config::Config::check_query_secret)   401 unauthorized
//!   2. body size         (relay::BodyLimit)                     413 payload_too_large
//!   3. Svix signature    (verify::Verifier::verify)             401 <class>
//!   4. JSON envelope     (event::parse_envelope)                400 invalid_json / invalid_payload
//!   5. map to a command  (event::map_event)                     200 ignored (other event types)
//!   6. forward           (glue, wasm32 only)  ─▶ main API       200 / 502 / 504 (relay::interpret_upstream)
//! ```
//!
//! Everything except the last step's I/O is pure Rust that knows nothing of
//! the `worker` crate: it compiles and is tested natively. The clock is always
//! a parameter. The only module that touches the platform is `glue`, compiled
//! for wasm32 with the default `worker-glue` feature.

pub mod config;
pub mod error;
pub mod event;
pub mod log;
pub mod relay;
pub mod verify;

#[cfg(all(target_arch = "wasm32", feature = "worker-glue"))]
mod glue;
pub use clerk_sync_contract::{Command, CommandKind, UnixMillis, UserRecord, CONTRACT_VERSION};
pub use config::{Config, ConfigProblem};
pub use error::RelayError;
pub use event::{map_event, parse_envelope, ClerkEvent, Mapped};
pub use verify::{SignatureHeaders, VerifiedDelivery, Verifier, VerifyError};

/// The crate version, sent to the main API as `User-Agent: clerk-sync/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
