#!/usr/bin/env bash
# The re-sync benchmark (part of `npm run bench`): a full run of
# RESYNC_BENCH_USERS (default 100,000) stand-in Clerk users into the local D1
# through the real relay, re-sync Worker and main API (all in wrangler dev,
# on loopback), at Clerk's production rate limit, RESYNC_BENCH_RUNS times.
# Writes target/bench/resync-N.json. Bounded: each run must finish within
# an hour.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/tools.sh
ensure_tools
rm -rf dist
npx wrangler deploy --dry-run --outdir dist >/dev/null
(cd workers/resync && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/resync/dist >/dev/null)
# RESYNC_BENCH_RUNS runs (default 3), one after another on fresh servers:
# the same build moves by about 15% between runs on a shared 2-core machine,
# so the report gives the median run and the spread.
rm -f target/bench/resync-*.json
for run in $(seq "${RESYNC_BENCH_RUNS:-3}"); do
  echo "-- re-sync run $run/${RESYNC_BENCH_RUNS:-3}" >&2
  cargo test -p clerk-sync-resync-worker --test it -- --ignored --exact bench::bench_full_run --nocapture
  mv target/bench/resync.json "target/bench/resync-$run.json"
done
