//! The sync status dashboard (issue 11): a Worker on 127.0.0.1:5173 in
//! development that signs its operator in with `DASHBOARD_PASSWORD` and
//! renders, on the server, what the main API and the relay report. The
//! secrets that read them (`API_SECRET`, `ADMIN_SECRET`) stay in the
//! Worker; the browser gets HTML and a signed session cookie.
//!
//! | module | owns | never does |
//! |---|---|---|
//! | [`config`] | the settings, problems by name | hold a value in a message |
//! | [`session`] | the password check, the signed cookie, the `Origin` check, the slowing of failures | read a clock or sleep |
//! | [`sources`] | what is fetched with which bearer, how each answer is read, each source's failure as text | perform I/O |
//! | [`users`] | the users pages: routes, what each reads or posts, the answers, the markup | `PreEscaped` on data, I/O |
//! | [`views`] | the pages as maud markup, escaped by default | `PreEscaped` on data, I/O |
//! | [`deliveries`] | the overview's metrics section (`GET /internal/metrics`) | read a clock |
//! | [`chart`] | the deliveries per hour as stacked SVG bars | script, data as text |
//! | [`resync_page`] | the Re-sync page: start forms, progress, past runs, the status JSON and its polling script | `innerHTML`, send `rejected_ids` or a secret as JSON |
//! | [`app`] | routes, the order of the checks, every reply and its headers, `PageError`'s one mapping | perform I/O |
//! | [`alerts`] | the alert rules, their messages and state, the settings `ALERT_*`, the overview's alerts section | perform I/O, read a clock |
//! | `alert_state` (wasm32) | the `AlertState` Durable Object and the cron: the checks' fetches, the sends, the storage | decide anything |
//! | `glue` (wasm32) | reading the request, the fetches, the delay, the answer | decide anything |

pub mod alerts;
pub mod app;
pub mod chart;
pub mod config;
pub mod deliveries;
pub mod resync_page;
pub mod session;
pub mod sources;
pub mod users;
pub mod views;

#[cfg(target_arch = "wasm32")]
mod alert_state;
#[cfg(target_arch = "wasm32")]
mod glue;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
