//! The contract every clerk-sync component shares, and nothing else: the
//! sync commands and their batches (what the relay, the queue consumer and
//! the re-sync runs send, and what a main API answers), the time format,
//! Clerk's user object and its one mapping, constant-time secret comparison,
//! the bounded body read both Workers use, a main API's metrics (the
//! JSON the dashboard reads, and its Prometheus text) and its rows as its
//! read endpoints answer them.
//!
//! Pure Rust with no platform dependency: it never performs I/O, reads a
//! clock, or logs.

pub mod batch;
pub mod body;
pub mod clerk;
pub mod command;
pub mod exchange;
pub mod failure;
pub mod metrics;
pub mod rows;
pub mod secret;
pub mod time;
pub mod url;

pub use batch::{BatchRequest, BatchResponse, CommandResult, Outcome};
pub use command::{Command, CommandKind, ContractError, Provenance, UserRecord, CONTRACT_VERSION};
pub use failure::{FailureBatch, FailureOutcome, RecordFailure};
pub use secret::SecretString;
pub use time::UnixMillis;
