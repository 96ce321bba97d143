#!/usr/bin/env bash
# `npm run dev`'s fixed ports (part of `npm test`): with 5173, then 8787,
# taken by another program, scripts/dev.sh stops before it installs,
# builds or starts anything, exits non-zero, and names the port and the
# service that needs it. Needs the fixed ports free otherwise (it says so
# and fails when one is not).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fixed=(8787 8788 8790 5173 9230 9231 9232)
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "${fixed[@]}"; do
  if listening "$port"; then
    echo "test-ports: port $port is in use before the test; it needs ${fixed[*]} free" >&2
    exit 1
  fi
done

# occupied PORT SERVICE: a loopback listener on PORT while dev.sh runs.
occupied() {
  local port=$1 service=$2 holder out status=0
  python3 -c "
import socket, sys, time
s = socket.socket()
s.bind(('127.0.0.1', $port))
s.listen()
print('ready', flush=True)
time.sleep(300)
" > "target/ports-holder-$port.log" 2>&1 &
  holder=$!
  for _ in $(seq 1 100); do grep -q ready "target/ports-holder-$port.log" 2>/dev/null && break; sleep 0.1; done
  out=$(timeout 120 bash scripts/dev.sh 2>&1) || status=$?
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
    echo "test-ports: with $port taken, dev.sh exited $status (expected a refusal)"; echo "$out"; exit 1
  fi
  grep -qF "dev: port $port is already in use; $service needs it." <<<"$out" ||
    { echo "test-ports: the refusal does not name port $port and $service:"; echo "$out"; exit 1; }
  # Nothing else was said, so nothing was installed, built or started.
  if [ "$(grep -vc "^dev: port " <<<"$out" || true)" != 0 ]; then
    echo "test-ports: dev.sh did more than refuse:"; echo "$out"; exit 1
  fi
  for p in "${fixed[@]}"; do
    if [ "$p" != "$port" ] && listening "$p"; then
      echo "test-ports: port $p is listening after the refusal"; exit 1
    fi
  done
  echo "test-ports: $port taken: refused at once, naming $service"
}

mkdir -p target
occupied 5173 "the dashboard (workers/dashboard)"
occupied 8787 "the main API (examples/main-api)"
