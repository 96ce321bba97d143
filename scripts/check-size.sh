#!/usr/bin/env bash
# Fails when the relay bundle's gzip size is over the budget in size-budget.txt.
#   bash scripts/check-size.sh target/relay-dry-run.log
# The log is the output of `wrangler deploy --dry-run`, which prints
# "Total Upload: 313.74 KiB / gzip: 120.53 KiB".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log=${1:-target/relay-dry-run.log}

budget=$(sed -n 's/^gzip_kib=\([0-9.]*\)$/\1/p' size-budget.txt)
[ -n "$budget" ] || { echo "size: no gzip_kib= line in size-budget.txt" >&2; exit 1; }

line=$(grep -Eo 'Total Upload: [0-9.]+ [KM]iB / gzip: [0-9.]+ [KM]iB' "$log" | tail -1 || true)
[ -n "$line" ] || { echo "size: no 'Total Upload' line in $log" >&2; exit 1; }

# In KiB, whichever unit wrangler chose.
read -r total gzip < <(echo "$line" | awk '{
  t = $3; if ($4 == "MiB") t *= 1024
  g = $7; if ($8 == "MiB") g *= 1024
  printf "%.2f %.2f\n", t, g }')

if awk -v g="$gzip" -v b="$budget" 'BEGIN { exit !(g > b) }'; then
  echo "size: FAIL relay bundle gzip ${gzip} KiB is over the budget of ${budget} KiB (total ${total} KiB; size-budget.txt)" >&2
  exit 1
fi
echo "size: ok relay bundle gzip ${gzip} KiB <= budget ${budget} KiB (total ${total} KiB)"
