#!/usr/bin/env bash
# Every benchmark of the project in one run, printed as one table of ratios:
# bench/local.sh (p2p against GNU wc, sha256sum, find and du, and openssl
# speed, on one host) and then bench/cluster.sh (N p2pd against N serf agents
# on loopback, --all latency and --spread throughput). Each of those two still
# runs alone; this script only installs what they need, builds once, makes
# the data directory, prints the machine facts and stitches their rows
# together, since both print the same columns.
#
# Usage:
#   bench/run.sh                 # the full run (about 45 minutes on 2 cores, 35 of
#                                # them --spread, 15 of which the slow member)
#   QUICK=1 bench/run.sh         # a short check (about 4 minutes): 64 MiB instead
#                                # of 1 GiB, 1,000 small files, a tree of 10,000
#                                # entries, N=10 only, 1 trial, 400 files for --spread
#   bench/run.sh --write         # also put the table and the machine facts into
#   RESULTS=1 bench/run.sh       # bench/RESULTS.md (replacing the previous run's block)
#   BENCH_DIR=/tmp/p2p-bench bench/run.sh   # keep the generated data there for
#                                # the next run (default: a temp dir, removed at the end)
#
# Every knob of the two scripts passes through (SIZE_MIB, SMALL_FILES,
# TREE_ENTRIES, NODES, TRIALS, TOOLS, ALL_RUNS, SPREAD, SPREAD_FILES,
# SPREAD_KIB, SPREAD_RUNS, SPREAD_SMALL, SPREAD_BIG, SPREAD_HUGE_GIB,
# SPREAD_NICE, KEEP_TMP, ...); see bench/README.md.
#
# The table goes to stdout, progress and per-trial details to stderr. All
# processes run on 127.0.0.1 in temp dirs and are stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

write=
for arg in "$@"; do
  case $arg in
    --write) write=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "${RESULTS:-}" ] && [ "$RESULTS" != 0 ]; then write=1; fi
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
export QUICK

# --- what the scripts need ----------------------------------------------------
# COMMAND[=Debian package], installed when we may (bench/need.sh); cargo is
# assumed (this is a Rust project's machine).
. bench/need.sh
need bench/run.sh hyperfine jq serf openssl sha256sum=coreutils find=findutils python3

# --- build once; both scripts then skip their own build -----------------------
echo "building the release binaries ..." >&2
cargo build --release --quiet
P2P_BIN=$PWD/target/release
export P2P_BIN

# --- data and scratch ---------------------------------------------------------
own_data=
if [ -z "${BENCH_DIR:-}" ]; then
  BENCH_DIR=$(mktemp -d -t p2p-bench.XXXXXX)
  own_data=1
fi
export BENCH_DIR
table=$(mktemp -t p2p-bench-table.XXXXXX)
child=
cleanup() {
  # The scripts stop their own daemons; here only what this script made.
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  rm -f "$table"
  if [ -n "$own_data" ]; then rm -rf "$BENCH_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run one script in the background and wait for it, so that a TERM or INT
# reaches our traps at once (bash defers traps while a foreground child
# runs) and cleanup can pass it on to the script.
step() {
  "$@" &
  child=$!
  wait "$child"
  child=
}

# --- machine facts --------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
flags=$(awk -F': ' '/^flags/ { print $2; exit }' /proc/cpuinfo)
simd=()
for f in avx2 avx512bw sha_ni; do
  case " $flags " in *" $f "*) simd+=("$f") ;; esac
done
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
if [ "$commit" != "?" ] && ! git diff --quiet HEAD 2>/dev/null; then commit="$commit+changes"; fi
# shellcheck disable=SC1091  # read at run time
os=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || uname -s)
coreutils=$(wc --version | awk 'NR == 1 { print $NF }')
started=$(date -u '+%Y-%m-%d %H:%M UTC')
t0=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)

row() { printf '%-46s %14s %14s %9s\n' "$@"; }

# --- the run ----------------------------------------------------------------------
# Everything on our stdout, the scripts' rows included, goes through one tee
# into $table too, in order; it is closed and waited for before the table is
# written to RESULTS.md.
exec 3>&1
exec > >(tee "$table")
tee_pid=$!
{
  echo "# bench/run.sh${QUICK:+ (QUICK=1: reduced data and trials)}, $started, commit $commit"
  echo "# $(nproc) CPUs: $cpu (${simd[*]:-no avx2/avx512bw/sha_ni}), $mem RAM; $os, Linux $(uname -r)"
  echo "# p2p $("$P2P_BIN/p2pd" --version | awk '{print $2}'), GNU coreutils $coreutils," \
    "$(openssl version | awk '{print $1, $2}'), serf $(dpkg-query -W -f '${Version}' serf 2>/dev/null || echo '?');" \
    "load average at start $load0"
  echo "# ratio = reference / p2p (time, or figure where lower is better): above 1x, p2p is ahead"
  echo
  row "one host ($(nproc) cores, files in page cache)" "p2p" "reference" "ratio"
}

BENCH_NO_HEADER=1 step bench/local.sh
BENCH_NO_HEADER=1 step bench/cluster.sh

secs=$(($(date +%s) - t0))
echo
echo "# took $((secs / 60)) min $((secs % 60)) s; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
exec >&3 3>&-
wait "$tee_pid"

# --- bench/RESULTS.md -------------------------------------------------------------
# The run goes between two markers, replacing the previous run's block; the
# notes written by hand around it stay. Without the markers the block goes
# right under the title.
if [ -n "$write" ]; then
  python3 - bench/RESULTS.md "$table" <<'PY'
import sys
path, table = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
begin = "<!-- bench/run.sh --write: begin -->"
end = "<!-- bench/run.sh --write: end -->"
block = (f"{begin}\n"
         "The last `bench/run.sh --write`, as printed (this block is replaced by the next one):\n\n"
         f"```\n{table}\n```\n{end}")
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmark results\n"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    title, _, rest = text.partition("\n")
    text = f"{title}\n\n{block}\n{rest}"
open(path, "w").write(text)
PY
  echo "written to bench/RESULTS.md" >&2
fi
