#!/bin/sh
# Runs the fuzz targets one after another, each for SECONDS (default 60), on
# the stable toolchain, and prints what each did. See README.md.
#
#   fuzz/run.sh [-t SECONDS] [TARGET...]
#
# The corpus of each target grows in corpus/TARGET (only the seed-* files are
# committed); a crash stops that target and leaves its input in
# artifacts/TARGET/. The exit status is 1 when any target crashed.
set -eu
cd "$(dirname "$0")"
secs=60
if [ "${1:-}" = "-t" ]; then
  secs=$2
  shift 2
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz builds with -Zsanitizer=address; stable rustc takes -Z flags
# only with this set.
export RUSTC_BOOTSTRAP=1
cargo fuzz build
targets=${*:-$(cargo fuzz list)}
status=0
mkdir -p target
for t in $targets; do
  log=target/run-$t.log
  if ! cargo fuzz run "$t" -- -max_total_time="$secs" -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    echo "$t: CRASHED; see $log and artifacts/$t/"
    status=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 \2 \3/p')
  set -- $cov
  printf '%-20s %6ss %12s execs  cov %6s  ft %7s  corpus %6s\n' \
    "$t" "$secs" "$execs" "${1:-?}" "${2:-?}" "${3:-?}"
done
exit $status
