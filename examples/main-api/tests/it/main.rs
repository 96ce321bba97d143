//! The API's tests. Native: the same `service` functions the Worker runs,
//! against SQLite with the same migrations D1 applies. In the real runtime
//! (`#[ignore]`, run by `scripts/test.sh`): the API under `wrangler dev`,
//! behind the built relay in workerd (`through_relay`).

mod apply;
mod batch;
mod convergence;
mod endpoints_d1;
mod failures;
mod linking;
mod linking_d1;
mod metrics;
mod migration;
mod plans;
mod rows;
mod sqlite;
mod through_relay;
