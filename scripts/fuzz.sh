#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets/) one after the other, each
# for SECONDS (default 600), seeded with tests/fixtures/ and fuzz/seeds/.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     targets: verify envelope
# Installs cargo-fuzz and the nightly toolchain if missing. Each target's
# libFuzzer output goes to target/fuzz-<target>.log and a summary line to
# target/fuzz-report.txt; a crash leaves its input in fuzz/artifacts/<target>/
# and makes the script exit non-zero (turn it into a regression test in
# tests/it/properties.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET=${1:-600}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(verify envelope)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seeds. envelope: the fixtures as they are. verify: each fixture behind
# headers (flags 0x02: append the correct signature, so the run starts past
# the HMAC; 0x06: the clock at the timestamp; 0x0f: webhook-* family,
# unsigned allowed), plus the hand-made seeds.
mkdir -p fuzz/corpus/verify fuzz/corpus/envelope target
cp tests/fixtures/*.json fuzz/seeds/envelope/* fuzz/corpus/envelope/
cp fuzz/seeds/verify/* fuzz/corpus/verify/
for f in tests/fixtures/*.json; do
  name=$(basename "$f" .json)
  for flags in 02 06 0f; do
    { printf "\\x$flags"; printf 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W\n1700000000\nv1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n'; cat "$f"; } \
      > "fuzz/corpus/verify/fixture_${name}_$flags"
  done
done

: > target/fuzz-report.txt
failed=0
for t in "${TARGETS[@]}"; do
  echo "== fuzz $t for ${SECONDS_PER_TARGET}s" >&2
  status=0
  # -timeout: one input taking over 5 s is a finding (no quadratic paths).
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=5 \
    -print_final_stats=1 > "target/fuzz-$t.log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "target/fuzz-$t.log" | tail -1 || true)
  execs=$(grep -E 'stat::number_of_executed_units' "target/fuzz-$t.log" | tail -1 | awk '{print $2}' || true)
  crashes=$(ls "fuzz/artifacts/$t" 2>/dev/null | wc -l)
  line="$t: status=$status seconds=$SECONDS_PER_TARGET executions=${execs:-?} artifacts=$crashes ${done_line}"
  echo "$line" | tee -a target/fuzz-report.txt >&2
  [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
