#!/usr/bin/env bash
# `npm run bench`: reruns every benchmark and rewrites BENCHMARKS.md.
#   1. native cost per delivery: `cargo bench --bench relay` (criterion),
#      BENCH_NATIVE_ROUNDS runs (default 3);
#   2. the relays inside workerd: benches/load.py builds the Rust relay, the
#      JavaScript relay (benches/js-relay) and a forward-only floor, serves
#      each with plain `workerd serve`, and drives them with wrk in
#      BENCH_LOAD_ROUNDS alternating rounds (default 5) of BENCH_DURATION
#      seconds (default 6) on the 3 KB and 64 KB deliveries, after
#      BENCH_COLD cold starts of each relay (default 5);
#   3. bundle sizes from `wrangler deploy --dry-run`;
#   4. benches/crossings.py counts the JS<->wasm crossings of one delivery,
#      benches/profile.py profiles each relay under load (perf, if present);
#   5. full re-syncs of RESYNC_BENCH_USERS (100,000) stand-in users into
#      the local D1, RESYNC_BENCH_RUNS (3) of them (scripts/bench-resync.sh);
#   6. a burst of QUEUE_BENCH_DELIVERIES (20,000) deliveries, direct mode
#      against queue mode, into the local D1 (bench::bench_burst_direct_vs_queue);
#   7. benches/report.py writes BENCHMARKS.md.
# About 20-25 minutes on 2 cores from a clean clone (most of it the first
# optimized build and the re-sync runs). All traffic stays on 127.0.0.1 and every run is bounded.
# Not part of `npm test`; the size budget is (scripts/check-size.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/tools.sh

NATIVE_ROUNDS=${BENCH_NATIVE_ROUNDS:-3}
LOAD_ROUNDS=${BENCH_LOAD_ROUNDS:-5}
DURATION=${BENCH_DURATION:-6}
COLD=${BENCH_COLD:-5}

step() { printf '\n== %s\n' "$*"; }

step "tools"
ensure_tools
if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk (apt)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
  else
    echo "bench: wrk is missing; install it (apt-get install wrk) and rerun" >&2
    exit 1
  fi
fi
if [ ! -d benches/js-relay/node_modules/standardwebhooks ]; then
  (cd benches/js-relay && npm ci --no-audit --no-fund >&2)
fi
mkdir -p target/bench
rm -f target/bench/native.json

step "native cost per delivery (criterion, $NATIVE_ROUNDS runs)"
for round in $(seq "$NATIVE_ROUNDS"); do
  echo "-- run $round/$NATIVE_ROUNDS" >&2
  cargo bench --bench relay 2>&1 | grep -E '^deliver_|time:' || true
  python3 benches/report.py native-round
done

step "inside workerd: rust vs js vs forward-only ($LOAD_ROUNDS rounds of ${DURATION}s)"
python3 benches/load.py --rounds "$LOAD_ROUNDS" --duration "$DURATION" --bodies 3KB,64KB --cold "$COLD"

step "JS<->wasm crossings per delivery (benches/crossings.py)"
python3 benches/crossings.py target/bench/dist-rust --json target/bench/crossings.json --label now

step "where the CPU goes (benches/profile.py; needs perf)"
rm -f target/bench/profile.json
python3 benches/profile.py || echo "bench: the profile failed; BENCHMARKS.md goes without it" >&2

step "re-sync: ${RESYNC_BENCH_RUNS:-3} full runs of ${RESYNC_BENCH_USERS:-100000} users into D1 (scripts/bench-resync.sh)"
rm -f target/bench/resync.json target/bench/resync-*.json
bash scripts/bench-resync.sh || echo "bench: the re-sync run failed; BENCHMARKS.md goes without it" >&2

step "delivery modes: a burst of ${QUEUE_BENCH_DELIVERIES:-20000} deliveries, direct vs queue, into D1"
# Uses the relay bundle and the re-sync Worker built by bench-resync.sh.
cargo test -p clerk-sync-resync-worker --test it -- --ignored --exact bench::bench_burst_direct_vs_queue --nocapture ||
  echo "bench: the delivery-mode burst failed; BENCHMARKS.md goes without it" >&2

step "BENCHMARKS.md"
python3 benches/report.py write
grep -E '^- (Goal|[0-9]+KB:)|^- Budget' BENCHMARKS.md || true
