#!/usr/bin/env bash
# The README's run command (`npm ci && npm run dev`): the relay on
# 127.0.0.1:8788 with the re-sync Worker (workers/resync) in the same
# `wrangler dev` process, the reference main API (examples/main-api, D1) on
# 127.0.0.1:8787, the dashboard (workers/dashboard) on 127.0.0.1:5173, each
# `wrangler dev` with its own inspector port (9230, 9231, 9232), and the
# stand-in Clerk Backend API (standins/clerk-api) on 127.0.0.1:8790 with
# DEV_CLERK_USERS users (default 1200) to re-sync from.
# Installs what is missing, creates the dev `.dev.vars` files from their
# examples, applies the local D1 migrations, then runs all until Ctrl-C or
# until one exits, and stops all.
#   npm run dev -- --queue   the relay in queue mode (wrangler.queue.toml:
#                            DELIVERY_MODE=queue, local in-memory queues)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

relay_config=wrangler.toml
for arg in "$@"; do
  case $arg in
    --queue) relay_config=wrangler.queue.toml ;;
    *) echo "dev: unknown option $arg (known: --queue)" >&2; exit 2 ;;
  esac
done

# The fixed ports, checked before anything is installed or built: a busy
# port stops everything at once, naming the port and who needs it.
busy=
for entry in "8787:the main API (examples/main-api)" "8788:the relay" \
  "8790:the stand-in Clerk API (standins/clerk-api)" "5173:the dashboard (workers/dashboard)" \
  "9230:the relay's wrangler inspector" "9231:the main API's wrangler inspector" \
  "9232:the dashboard's wrangler inspector"; do
  port=${entry%%:*}
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "dev: port $port is already in use; ${entry#*:} needs it. Stop what listens there (\`ss -ltnp 'sport = :$port'\` shows it) and run again." >&2
    busy=1
  fi
done
[ -z "$busy" ] || exit 1

source scripts/tools.sh
ensure_tools

WRANGLER="$ROOT/node_modules/.bin/wrangler"
API_DIR=examples/main-api

for vars in .dev.vars "$API_DIR/.dev.vars" workers/resync/.dev.vars workers/dashboard/.dev.vars; do
  if [ ! -f "$vars" ]; then
    cp "$vars.example" "$vars"
    echo "dev: created $vars from $vars.example (local secrets only)"
  fi
done

echo "dev: applying the D1 migrations to the local database"
# stdin from /dev/null: non-interactive, so wrangler applies without asking.
(cd "$API_DIR" && "$WRANGLER" d1 migrations apply DB --local </dev/null)

# Job control: each server runs in a process group of its own, so Ctrl-C
# reaches only this script, which then stops each group as a whole
# (wrangler, its build, its workerd).
set -m
pids=()
serve() {
  local name=$1 dir=$2
  shift 2
  (cd "$dir" && exec "$@" </dev/null 2>&1 | sed -u "s/^/[$name] /") &
  pids+=("$!")
}

stopping=
stop() {
  [ -n "$stopping" ] && return
  stopping=1
  trap - INT TERM
  echo
  echo "dev: stopping the relay, the API, the dashboard and the stand-in Clerk API"
  local pid
  for pid in "${pids[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  # The readiness banner and the sender's background build, if still running.
  [ -n "${banner:-}" ] && { kill -- "-$banner" 2>/dev/null || true; }
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

serve clerk . node standins/clerk-api/server.mjs --port 8790 --users "${DEV_CLERK_USERS:-1200}"
serve api "$API_DIR" "$WRANGLER" dev --show-interactive-dev-session=false
# The re-sync Worker runs in the relay's process: the relay's RESYNC service
# binding reaches it there, and its Durable Object's alarms run there.
serve relay . "$WRANGLER" dev --show-interactive-dev-session=false \
  -c "$relay_config" -c workers/resync/wrangler.toml
# Its wrangler.toml points it at the main API (8787) and the relay (8788),
# and sets its port (5173) and inspector port (9232).
serve dashboard workers/dashboard "$WRANGLER" dev --show-interactive-dev-session=false

# ready PORT [PATH]: PATH (default /health) answers 2xx.
ready() {
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1${2:-/health}" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}
(
  for _ in $(seq 1 1200); do
    if ready 8787 && ready 8788 && (exec 3<>/dev/tcp/127.0.0.1/8790) 2>/dev/null &&
      ready 5173 /login; then
      cat <<'EOF'

dev: all are up.
  relay     http://127.0.0.1:8788/webhook?secret=test-webhook-secret
  main API  http://127.0.0.1:8787/internal/clerk-sync  (D1: examples/main-api/.wrangler)
  Clerk     http://127.0.0.1:8790  (stand-in, key sk_test_standin)
  dashboard: http://127.0.0.1:5173 (password: dev-dashboard-password)
  signed delivery:    npm run send -- user.created
  read the row back:  curl -H 'Authorization: Bearer test-api-secret' http://127.0.0.1:8787/internal/users/user_29w83sxmDNGwOuEthce5gg56FcC
  bulk re-sync:       curl -X POST -H 'Authorization: Bearer test-admin-secret' http://127.0.0.1:8788/admin/resync
  its progress:       curl -H 'Authorization: Bearer test-admin-secret' http://127.0.0.1:8788/admin/resync
  Ctrl-C stops all.

EOF
      # The signed sender is a cargo example; compile it now, once both
      # servers are up, so that the first `npm run send` does not wait for it.
      nice cargo build --quiet --example send >/dev/null 2>&1 || true
      exit 0
    fi
    sleep 0.5
  done
) &
banner=$!

# Until either server exits (or Ctrl-C, through the trap).
wait -n "${pids[@]}" || true
kill "$banner" 2>/dev/null || true
echo "dev: a server exited"
exit 1
