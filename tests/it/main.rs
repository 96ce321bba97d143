//! One integration-test binary. Native modules run with plain `cargo test`;
//! the ones marked `#[ignore]` need the built Worker and workerd, and run via
//! `scripts/test.sh` (`cargo test -- --include-ignored`).

mod bad_input;
mod e2e;
mod faults;
mod fixtures;
mod harness;
mod load;
mod logs;
mod main_api;
mod properties;
mod svix_reference;
