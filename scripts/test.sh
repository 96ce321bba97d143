#!/usr/bin/env bash
# The README's test command (`npm test`, which `.ci/run` calls): installs what
# is missing, checks formatting and lints (the fuzz targets included), runs
# the native tests, builds the Worker bundles, enforces the size budget, runs
# the end-to-end suites in workerd, wrangler dev and headless Chromium, and
# last the load test, alone. Every step must pass; the first failure stops the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/tools.sh

step() { printf '\n== %s\n' "$*"; }

step "tools"
ensure_tools

step "format and lints (native and wasm32)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --target wasm32-unknown-unknown -- -D warnings
cargo clippy -p clerk-sync-contract -p clerk-sync-platform -p clerk-sync-resync \
  -p clerk-sync-resync-worker -p clerk-sync-dashboard --lib --target wasm32-unknown-unknown -- -D warnings
# The fuzz targets (their own workspace, fuzz/) are compiled and linted here,
# so an API change cannot leave them broken until the next fuzzing run. On
# stable: libfuzzer-sys builds libFuzzer's C++ with the system compiler and
# nothing is instrumented (that needs nightly and cargo-fuzz: scripts/fuzz.sh).
cargo clippy --manifest-path fuzz/Cargo.toml --bins -- -D warnings

step "build the relay bundle (wrangler deploy --dry-run)"
# A fresh dist/: wrangler adds a new hashed .wasm each build and keeps the old ones.
rm -rf dist
npx wrangler deploy --dry-run --outdir dist 2>&1 | tee target/relay-dry-run.log | grep -E "Total Upload|error" || true
grep -q "Total Upload" target/relay-dry-run.log || { echo "relay build failed"; cat target/relay-dry-run.log; exit 1; }
bash scripts/check-size.sh target/relay-dry-run.log

step "deployment guard (npm run deploy refuses dev settings; the production environment builds)"
# refuses EXPECTED API_URL [deploy.sh arguments]: it must exit non-zero, saying EXPECTED.
refuses() {
  local expected=$1 api_url=$2 out; shift 2
  if out=$(API_URL=$api_url bash scripts/deploy.sh --dry-run "$@" 2>&1); then
    echo "deploy.sh accepted API_URL=$api_url $*"; exit 1
  fi
  grep -q "$expected" <<<"$out" || { echo "deploy.sh: expected '$expected', got: $out"; exit 1; }
}
refuses "API_URL is not set" ""
refuses "must be an https" http://api.example.com
refuses "loopback" https://127.0.0.1:8787
refuses "loopback" https://localhost/
refuses "placeholder" "" --main-api
refuses "API_URL is not set" "" --resync
refuses "loopback" https://127.0.0.1:8787 --resync
API_URL=https://api.example.com bash scripts/deploy.sh --dry-run --outdir target/production-dist 2>&1 |
  tee target/production-dry-run.log | grep -E "Total Upload|error" || true
grep -q "Total Upload" target/production-dry-run.log || { echo "production build failed"; cat target/production-dry-run.log; exit 1; }

step "build the re-sync Worker (workers/resync: wrangler deploy --dry-run, and its production environment)"
# Its [build] command writes workers/resync/build/, which the end-to-end
# suite serves beside the relay.
(cd workers/resync && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/resync/dist) 2>&1 |
  tee target/resync-dry-run.log | grep -E "Total Upload|error:" || true
grep -q "Total Upload" target/resync-dry-run.log || { echo "re-sync Worker build failed"; cat target/resync-dry-run.log; exit 1; }
API_URL=https://api.example.com bash scripts/deploy.sh --resync --dry-run --outdir ../../target/resync/production-dist 2>&1 |
  tee target/resync-production-dry-run.log | grep -E "Total Upload|error" || true
grep -q "Total Upload" target/resync-production-dry-run.log || { echo "re-sync production build failed"; cat target/resync-production-dry-run.log; exit 1; }

step "build the dashboard (workers/dashboard: wrangler deploy --dry-run)"
# Its [build] command writes workers/dashboard/build/, which its end-to-end
# suite serves.
(cd workers/dashboard && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/dashboard/dist) 2>&1 |
  tee target/dashboard-dry-run.log | grep -E "Total Upload|error:" || true
grep -q "Total Upload" target/dashboard-dry-run.log || { echo "dashboard build failed"; cat target/dashboard-dry-run.log; exit 1; }
refuses "RELAY_URL is not set" https://api.example.com --dashboard
refuses "API_URL names a loopback" https://127.0.0.1:8787 --dashboard
RELAY_URL=http://relay.example.com refuses "RELAY_URL must be an https" https://api.example.com --dashboard
# Its production environment builds, with both service bindings and the
# Durable Object restated.
API_URL=https://api.example.com RELAY_URL=https://relay.example.com bash scripts/deploy.sh --dashboard \
  --dry-run --outdir ../../target/dashboard/production-dist 2>&1 |
  tee target/dashboard-production-dry-run.log | grep -E "Total Upload|error" || true
for binding in "env.RELAY (clerk-sync-production)" "env.API (clerk-sync-main-api-production)" "env.ALERT_STATE (AlertState)"; do
  grep -qF "$binding" target/dashboard-production-dry-run.log ||
    { echo "dashboard production: no $binding"; cat target/dashboard-production-dry-run.log; exit 1; }
done

step "the Clerk Backend API stand-in (node --test)"
node --test standins/

step "npm run dev refuses a taken port before anything else (5173, then 8787)"
bash scripts/test-ports.sh

step "build the reference main API (examples/main-api: wasm32 lints, wrangler deploy --dry-run)"
cargo clippy -p clerk-sync-main-api --lib --target wasm32-unknown-unknown -- -D warnings
(cd examples/main-api && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/main-api/dist) 2>&1 |
  tee target/main-api-dry-run.log | grep -E "Total Upload|error:" || true
grep -q "Total Upload" target/main-api-dry-run.log || { echo "main API build failed"; cat target/main-api-dry-run.log; exit 1; }

step "headless Chromium for the dashboard's tests in a real browser"
# Debian's chromium package, installed when missing (scripts/ensure-chromium.sh).
bash scripts/ensure-chromium.sh

step "tests: native and end to end (workerd, wrangler dev, Chromium), all but the load test"
# --include-ignored is for the server suites; doc tests run apart, without
# it: an `ignore`d doc example is a sketch that is not meant to compile.
cargo test --workspace --lib --bins --tests -- --include-ignored --skip load:: --skip bench::
cargo test --workspace --doc

# Last and alone: no suite that starts servers runs beside it, so its
# numbers are the relay's, not the machine's other work.
step "load test (tests/it/load.rs), alone"
cargo test -p clerk-sync --test it -- --include-ignored --test-threads=1 load::
