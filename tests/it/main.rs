//! One integration-test binary. Native modules run with plain `cargo test`;
//! the ones marked `#[ignore]` need the built Worker and workerd, and run via
//! `scripts/test.sh` (`cargo test -- --include-ignored`), the load test in a
//! step of its own. The servers, the HTTP helpers and the signer come from
//! `clerk-sync-testkit`.

mod bad_input;
mod e2e;
mod faults;
mod fixtures;
mod load;
mod logs;
mod properties;
mod queue;
mod resync_binding;
mod signing;
mod svix_reference;
