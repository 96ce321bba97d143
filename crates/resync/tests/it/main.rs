//! The re-sync core's integration tests: one binary.
