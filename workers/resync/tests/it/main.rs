//! The re-sync Worker end to end, as `npm run dev` runs it: the relay and the
//! re-sync Worker in one `wrangler dev` (the admin routes and crons reach it
//! through the relay's service binding), the reference main API on a local
//! D1, and the stand-in Clerk Backend API. Ignored by a plain `cargo test`
//! (they need the built bundles and wrangler); `scripts/test.sh` runs them.
//! The run's logic, its pacing and its answers to every kind of bad input
//! are tested natively in `crates/resync`; these prove the glue: storage,
//! alarms, restarts, the binding, the cron, and the table at the end.

mod support;

mod admin;
mod bench;
mod dead_letters;
mod runs;
