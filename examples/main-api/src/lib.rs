//! A reference main API for clerk-sync: the receiving side of the sync
//! command contract, as a Cloudflare Worker on D1.
//!
//! ```text
//! relay ─▶ POST /internal/clerk-sync   Authorization: Bearer API_SECRET
//!   1. route + bearer       (service::admit)          404 / 405 / 401 / 500 misconfigured
//!   2. body → ValidCommand  (request::parse_command)  413 / 400 invalid_command   + audit 'rejected'
//!   3. one D1 batch         (plan::apply)             200 applied | stale | ignored_deleted
//!   4. if it failed         (plan::after_failure)     409 already_applied         + audit 'duplicate'
//!                                                     200 if it had committed after all
//!                                                     422 cannot_apply / 500      + row 'failed', audit
//! POST /internal/clerk-sync/batch  1–500 commands (service::sync_batch): 400 invalid_batch
//!                                 applies nothing; else in order, in one D1 batch of chunks of
//!                                 distinct users, 17 statements each (plan::apply_all),
//!                                 200 {"ok":true,"results":[{operation_id, outcome, error}, …]};
//!                                 500 database_error: the caller sends the batch again
//! GET  /internal/users?live=&sync_status=&after=&limit=
//!                                 keyset pages of rows (plan::rows), signups without a Clerk id
//!                                 included, and the opaque cursor of the next page
//! GET  /internal/users/:clerk_id  the row, its sync columns, deleted or not, its audit trail
//! GET  /internal/sync/status      counts by sync_status, latest failures, last applied operation
//! GET  /internal/metrics?format=json|prometheus
//!                                 rows by status, oldest pending, audit outcomes (1 h, 24 h, per
//!                                 hour), last applied/received, in one D1 batch (metrics::reads)
//! POST /internal/users            the application's signup: a 'pending' row, claimed by the rule
//!                                 it names (link_by: external_id | email)
//! ```
//!
//! The command types come from the shared contract crate
//! (`clerk_sync_contract`), as do the bounded body read and the secret
//! comparison; the relay itself is not linked. Everything but the I/O is pure Rust
//! tested natively, the SQL included (against SQLite with the same
//! migrations); `glue` is the only module that knows the `worker` crate.

pub mod error;
pub mod log;
pub mod metrics;
pub mod plan;
pub mod request;
pub mod service;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod glue;
