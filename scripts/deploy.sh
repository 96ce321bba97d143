#!/usr/bin/env bash
# `npm run deploy` — the only documented way to production. It deploys the
# `[env.production]` of a Worker's wrangler.toml and refuses, before building
# anything, a setting that only makes sense on a developer's machine:
#
#   npm run deploy                       the relay; needs API_URL=https://… (not loopback)
#   npm run deploy -- --resync           the re-sync Worker (workers/resync); needs API_URL
#                                        like the relay; deploy it before the relay, whose
#                                        RESYNC service binding names it
#   npm run deploy -- --main-api         the reference main API; needs the real D1
#                                        database_id in examples/main-api/wrangler.toml
#   … -- --dry-run --outdir DIR          build and check only (wrangler's own flags pass through)
#
# Secrets are never read here: `wrangler secret put NAME --env production`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=relay
args=()
for arg in "$@"; do
  case "$arg" in
    --main-api) target=main-api ;;
    --resync) target=resync ;;
    *) args+=("$arg") ;;
  esac
done

fail() { echo "deploy: $*" >&2; exit 1; }

is_loopback_host() {
  case "${1,,}" in
    localhost|*.localhost|127.*|::1|\[::1\]) return 0 ;;
    *) return 1 ;;
  esac
}

if [ "$target" = relay ] || [ "$target" = resync ]; then
  [ -n "${API_URL:-}" ] || fail "API_URL is not set: API_URL=https://api.example.com npm run deploy"
  case "$API_URL" in
    https://*) ;;
    *) fail "API_URL must be an https:// URL (the bearer and users' emails travel in it)" ;;
  esac
  host=${API_URL#https://}
  host=${host%%/*}
  host=${host##*@}
  case "$host" in
    \[*) host=${host%%]*}; host=${host#[} ;;
    *) host=${host%%:*} ;;
  esac
  is_loopback_host "$host" && fail "API_URL names a loopback host; set it to the deployed main API"
  source scripts/tools.sh
  [ "$target" = resync ] && cd workers/resync
  exec "$ROOT/node_modules/.bin/wrangler" deploy --env production --var "API_URL:$API_URL" "${args[@]}"
else
  config=examples/main-api/wrangler.toml
  id=$(awk '/^\[env\.production\]/{p=1} p && /database_id/ {gsub(/.*= *"|".*/, ""); print; exit}' "$config")
  case "$id" in
    ""|*REPLACE*|00000000-0000-0000-0000-000000000000)
      fail "examples/main-api/wrangler.toml [env.production] database_id is a placeholder: run \`npx wrangler d1 create clerk-sync-main-api\` and put its id there" ;;
  esac
  source scripts/tools.sh
  cd examples/main-api
  exec "$ROOT/node_modules/.bin/wrangler" deploy --env production "${args[@]}"
fi
