#!/usr/bin/env bash
# The README's test command (`npm test`, which `.ci/run` calls): installs what
# is missing, checks formatting and lints, runs the native tests, builds the
# Worker bundles, enforces the size budget, and runs the end-to-end suites in
# workerd. Every step must pass; the first failure stops the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/tools.sh

step() { printf '\n== %s\n' "$*"; }

step "tools"
ensure_tools

step "format and lints (native and wasm32)"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings

step "build the relay bundle (wrangler deploy --dry-run)"
# A fresh dist/: wrangler adds a new hashed .wasm each build and keeps the old ones.
rm -rf dist
npx wrangler deploy --dry-run --outdir dist 2>&1 | tee target/relay-dry-run.log | grep -E "Total Upload|error" || true
grep -q "Total Upload" target/relay-dry-run.log || { echo "relay build failed"; cat target/relay-dry-run.log; exit 1; }
bash scripts/check-size.sh target/relay-dry-run.log

step "build the reference main API (examples/main-api: wasm32 lints, wrangler deploy --dry-run)"
cargo clippy -p clerk-sync-main-api --lib --target wasm32-unknown-unknown -- -D warnings
(cd examples/main-api && "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir ../../target/main-api/dist) 2>&1 |
  tee target/main-api-dry-run.log | grep -E "Total Upload|error:" || true
grep -q "Total Upload" target/main-api-dry-run.log || { echo "main API build failed"; cat target/main-api-dry-run.log; exit 1; }

step "tests: native and end to end (workerd)"
cargo test --workspace -- --include-ignored
