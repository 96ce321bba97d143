#!/usr/bin/env bash
# The re-sync benchmark (part of `npm run bench`): one full run of
# RESYNC_BENCH_USERS (default 100,000) stand-in Clerk users into the local D1
# through the real relay, re-sync Worker and main API (all in wrangler dev,
# on loopback), at Clerk's production rate limit. Writes
# target/bench/resync.json. Bounded: the run must finish within an hour.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/tools.sh
ensure_tools
rm -rf dist
npx wrangler deploy --dry-run --outdir dist >/dev/null
(cd workers/resync && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/resync/dist >/dev/null)
cargo test -p clerk-sync-resync-worker --test it -- --ignored --exact bench::bench_full_run --nocapture
