//! The pure core of a re-sync run (issue 9): read the truth from Clerk's
//! Backend API and drive the main API's user table back to it, paced by
//! Clerk's rate limit, resumable after any restart.
//!
//! A [`Run`] is a sans-IO state machine in the manner of quinn-proto: it is
//! asked what to do and told what happened, with `now` passed in every time.
//! The Durable Object that owns it only performs I/O, persists and sets alarms:
//!
//! ```ignore
//! let mut run = Run::from_json(&stored)?;          // or Run::new(id, parse_start(body)?, config, now)
//! loop {
//!     let action = run.poll(now());
//!     let beside = run.poll_prefetch(now());       // the next page while a batch is in flight
//!     let lookups = run.poll_lookups_beside(now()); // a sweep page's other lookups beside its lookup
//!     storage.put(run.to_json());                  // before the requests: they are in the rate window now
//!     let answer = match action {
//!         Action::Clerk { path_and_query } => get(clerk_url + path_and_query, clerk_key),
//!         Action::ApiGet { path_and_query } => get(api_url + path_and_query, api_secret),
//!         Action::ApiBatch { body } => post(api_url + BATCH_PATH, body, api_secret),
//!         Action::WakeAt(t) => { set_alarm(t); break }
//!         Action::Finished => break,
//!     };  // performed together with `beside`, each answer handed back as it comes:
//!     run.handle_prefetch(now(), beside_answer);
//!     run.handle_lookup_beside(now(), &lookup_path, lookup_answer);   // each, as it comes
//!     run.handle(now(), answer);
//!     storage.put(run.to_json());
//!     while let Some(record) = run.poll_log() { log(record) }   // a page done: a good place to yield
//! }
//! ```
//!
//! The page read beside a batch only waits for its turn: it is taken when
//! the batch before it is answered, so the cursor and the counters move
//! page by page as without it, and a restart loses only that read. The
//! sweep's lookups beside its lookup only say which ids exist, for the page
//! in progress: in any order they end the page as in order.
//!
//! Persisting after `poll` matters: the request's time is then part of the
//! rate window, so a restart cannot exceed the limit. What is not persisted
//! is the page in progress; after a restore the run asks for that page again,
//! and the main API sees the same operation ids (duplicates only). To stay
//! within one invocation's limits the glue may stop after any `resync_page`
//! record and set the alarm for now.
//!
//! Neither [`Action`] paths (a lookup may carry emails) nor answer bodies
//! are for logging; [`LogRecord`] and [`RunStatus`] are.
//!
//! | module | owns | never does |
//! |---|---|---|
//! | [`start`] | the start body, [`Scope`], [`RunId`] | accept an id it could not look up safely |
//! | [`config`] | pacing and bounds, each clamped to its range | read the environment |
//! | [`pacing`] | the 10-second sliding window, `Retry-After` | read a clock |
//! | [`clerk_api`] | Clerk's paths and answers; users mapped by the contract's `to_record` | map a user a second way |
//! | [`main_api`] | the rows endpoint's shape, the batch answer's check | trust a result that does not match what was sent |
//! | [`run`] | the phases, pages, retries, the cursor and counters | perform I/O, panic on any answer |
//! | [`status`] | counters, status view, log records | hold an email, a name, a body or a secret |

pub mod clerk_api;
pub mod config;
pub mod main_api;
pub mod pacing;
pub mod run;
pub mod start;
pub mod status;

pub use config::RunConfig;
pub use run::{Action, Answer, Run, StateError};
pub use start::{parse_start, RunId, Scope, StartError};
pub use status::{Counters, ErrorCode, ErrorInfo, LogRecord, RejectedId, RunState, RunStatus};
