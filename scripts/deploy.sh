#!/usr/bin/env bash
# `npm run deploy` — the only documented way to production. It deploys the
# `[env.production]` of a Worker's wrangler.toml and refuses, before building
# anything, a setting that only makes sense on a developer's machine:
#
#   npm run deploy                       the relay; needs API_URL=https://… (not loopback)
#   npm run deploy -- --resync           the re-sync Worker (workers/resync); needs API_URL
#                                        like the relay; deploy it before the relay, whose
#                                        RESYNC service binding names it
#   npm run deploy -- --dashboard        the dashboard (workers/dashboard); needs API_URL and
#                                        RELAY_URL (https, not loopback); deploy it after the
#                                        relay (and the main API), which its bindings name
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
    --dashboard) target=dashboard ;;
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

# NAME must hold an https:// URL that is not a loopback host.
require_public_https() {
  local name=$1 value=${!1:-}
  [ -n "$value" ] || fail "$name is not set: $name=https://… npm run deploy${2:+ -- $2}"
  case "$value" in
    https://*) ;;
    *) fail "$name must be an https:// URL (bearers and users' emails travel in it)" ;;
  esac
  local host=${value#https://}
  host=${host%%/*}
  host=${host##*@}
  case "$host" in
    \[*) host=${host%%]*}; host=${host#[} ;;
    *) host=${host%%:*} ;;
  esac
  if is_loopback_host "$host"; then
    fail "$name names a loopback host; set it to the deployed service"
  fi
}

if [ "$target" = relay ] || [ "$target" = resync ]; then
  require_public_https API_URL
  source scripts/tools.sh
  [ "$target" = resync ] && cd workers/resync
  exec "$ROOT/node_modules/.bin/wrangler" deploy --env production --var "API_URL:$API_URL" "${args[@]}"
elif [ "$target" = dashboard ]; then
  # Through its service bindings (RELAY, and API when the main API is a
  # Worker) the URLs' hosts are not looked up; they are still the
  # public addresses used when a binding is removed.
  require_public_https API_URL --dashboard
  require_public_https RELAY_URL --dashboard
  source scripts/tools.sh
  cd workers/dashboard
  exec "$ROOT/node_modules/.bin/wrangler" deploy --env production \
    --var "API_URL:$API_URL" --var "RELAY_URL:$RELAY_URL" "${args[@]}"
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
