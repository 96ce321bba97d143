//! The dashboard end to end: its built bundle under `wrangler dev` on free
//! ports, in front of the reference main API on a local D1 (also `wrangler
//! dev`). `flow` drives it as a browser would (cookies kept by hand,
//! redirects not followed); `in_browser` drives it in headless Chromium
//! (`browser`), with the relay, the re-sync Worker and the stand-in Clerk
//! API running too. Ignored by a plain `cargo test` (they need the built
//! bundles, wrangler and chromium); `scripts/test.sh` runs them. The rules
//! (routes, the session, the `Origin` check, each source's failure, the
//! escaping) are tested natively beside each module; these prove the glue.

mod browser;
mod support;

mod alerts;
mod bindings;
mod flow;
mod in_browser;
mod resync;
mod users;
