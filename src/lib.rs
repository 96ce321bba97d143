//! clerk-sync: a Cloudflare Worker that relays Clerk's user webhooks to the
//! application's own API.
//!
//! ```text
//! Clerk ─(Svix)─▶ POST /webhook?secret=…          relay::start / AwaitingBody / AwaitingUpstream
//!   0. configuration    (Config, deployment_problems)           500 misconfigured
//!   1. query secret     (Config::check_query_secret)            401 unauthorized
//!   2. declared length  (contract::body::declared_too_long)     413 payload_too_large
//!      ── the glue reads the body as told (whole, or chunked and bounded) ──
//!   3. Svix signature    (Config::verify → VerifiedDelivery)    401 <class>
//!   4. event and command (event::map_event(&VerifiedDelivery))  400 invalid_json / invalid_payload,
//!                                                               200 ignored (other event types)
//!      ── the glue performs the one forward ──
//!   5. the API's answer  (relay::interpret_upstream)            200 / 502 / 504
//! ```
//!
//! The order lives in `relay`'s state machine, tested natively; `glue`
//! (wasm32 only) performs each step's I/O and nothing else. The clock is
//! always a parameter (`UnixMillis`). See ARCHITECTURE.md.

pub mod config;
pub mod error;
pub mod event;
pub mod log;
pub mod queue;
pub mod relay;
pub mod resync;
pub mod verify;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use clerk_sync_contract::{Command, CommandKind, UnixMillis, UserRecord, CONTRACT_VERSION};
pub use config::{Config, ConfigProblem};
pub use error::RelayError;
pub use event::{map_event, parse_envelope, ClerkEvent, Mapped};
pub use verify::{SignatureHeaders, VerifiedDelivery, Verifier, VerifyError};

/// The crate version, sent to the main API as `User-Agent: clerk-sync/<version>`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
