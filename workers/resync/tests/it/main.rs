//! End-to-end tests of the re-sync Worker (wrangler dev).
