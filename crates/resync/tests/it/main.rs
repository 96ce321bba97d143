//! The re-sync core's integration tests: one binary.

mod convergence;
mod errors;
mod robust;
mod sim;
mod start;
