//! The dashboard end to end: its built bundle under `wrangler dev` on free
//! ports, in front of the reference main API on a local D1 (also `wrangler
//! dev`), driven as a browser would drive it (cookies kept by hand,
//! redirects not followed). Ignored by a plain `cargo test` (they need the
//! built bundles and wrangler); `scripts/test.sh` runs them. The rules
//! (routes, the session, the `Origin` check, each source's failure, the
//! escaping) are tested natively beside each module; these prove the glue.

mod support;

mod flow;
mod users;
