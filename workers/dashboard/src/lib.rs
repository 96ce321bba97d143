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
//! | [`app`] | routes, the order of the checks, every reply and its headers, `PageError`'s one mapping | perform I/O |
//! | `glue` (wasm32) | reading the request, the fetches, the delay, the answer | decide anything |

pub mod app;
pub mod config;
pub mod session;
pub mod sources;
pub mod users;
pub mod views;

#[cfg(target_arch = "wasm32")]
mod glue;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
