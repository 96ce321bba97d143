//! The re-sync Worker (issue 9): the relay's `/admin/*` routes and its cron
//! reach it through the `RESYNC` service binding; one Durable Object,
//! [`glue::ResyncCoordinator`], owns the current run and its history and
//! drives [`clerk_sync_resync::Run`] with alarms.
//!
//! Why a Worker of its own rather than more code in the relay: the relay is
//! the public, per-delivery hot path whose bundle, cold start and CPU are
//! budgeted (issue 13), and it never needs Clerk's Backend API key; this
//! Worker holds that key, has no public route (`workers_dev = false`, no
//! routes) and is reached only through the binding.
//!
//! | module | owns | never does |
//! |---|---|---|
//! | [`config`] | the settings, problems by name | hold a value in a message |
//! | [`admin`] | routes, the bearer check, the one error-to-status mapping | touch storage |
//! | [`coordinator`] | one run at a time, the latest run, past runs | perform I/O or read a clock |
//! | [`cron`] | which run a cron starts | start one while one runs |
//! | `glue` (wasm32) | storage, alarms, fetches, log lines | decide anything |

pub mod admin;
pub mod config;
pub mod coordinator;
pub mod cron;

#[cfg(target_arch = "wasm32")]
mod glue;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
