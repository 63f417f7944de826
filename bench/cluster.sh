#!/usr/bin/env bash
# Cluster benchmark: N p2pd daemons against N Debian `serf agent`s, all on
# 127.0.0.1, measured in one run and printed side by side as ratios
# (serf / p2p, so above 1x means p2p is better). Not a test: the figures
# depend on the machine. For each N:
#
#   join seen by all      start one more node until every member sees it alive
#   kill -9 seen by all   SIGKILL one member until every other sees it down
#   leave seen by all     graceful leave (p2pd SIGTERM, serf SIGINT) until
#                         every other member sees it left
#   idle RSS per daemon   mean VmRSS after the cluster has idled 5 s
#   false downs           with QUIET=SECONDS: live members declared down while
#                         the cluster only idles that long, after the trials
#
# and, p2p only (serf has no file queries):
#
#   --all                 `p2p-wc --all FILE` on one small file every member
#                         exports, whole process, median and min of ALL_RUNS;
#                         `--all --group` the same, when p2p-wc has --group
#   --spread              `find DIR -type f | p2p-sha256 --spread --files-from -`
#                         (and p2p-wc) with 1, 2 and 4 members, beside one
#                         daemon without --spread and GNU under `xargs` and
#                         `xargs -P $(nproc)`, as ratios; on cached files:
#                         SPREAD_FILES x SPREAD_KIB KiB (sha256), 10,000 x 4 KiB
#                         and 8 x 256 MiB of text (sha256 and wc); one 4 GiB
#                         file for p2p-wc, split in ranges over the members,
#                         against one daemon and GNU wc (counts checked); then
#                         the 4 members again with one of them slow (nice and
#                         a busy loop, or a CPU quota): who did how much
#
# Usage:
#   bench/cluster.sh                  # N = 10 50 100 (about 10 minutes), then
#                                     # --spread (about 35 minutes)
#   bench/cluster.sh 10 50            # or NODES="10 50" bench/cluster.sh
#   P2P_BIN=target/release bench/cluster.sh 100   # skip cargo build
#   TRIALS=5 bench/cluster.sh         # rounds of join/leave/kill per N (default 3)
#   TOOLS=p2p bench/cluster.sh 100    # one tool only (p2p or serf)
#   SERF_ENCRYPT=1 bench/cluster.sh   # give serf a key as well (p2p always encrypts)
#   KEEP_TMP=1 bench/cluster.sh       # keep the per-node logs in the temp dir
#   ALL_RUNS=50 bench/cluster.sh      # timed --all runs per N (default 20; 0 skips)
#   SPREAD="1 2" SPREAD_FILES=1000 SPREAD_KIB=64 SPREAD_RUNS=5 bench/cluster.sh
#                                     # --spread member counts (default "1 2 4";
#                                     # SPREAD= skips), files, KiB each, runs (3)
#   SPREAD_SMALL=10000 SPREAD_SMALL_KIB=4    # small text files, sha256 and wc (0 skips)
#   SPREAD_BIG=8 SPREAD_BIG_MIB=256   # big text files, sha256 and wc (0 skips)
#   SPREAD_HUGE_GIB=4                 # one file for p2p-wc --spread, split in ranges
#                                     # (fractions allowed; 0 skips); SPREAD_HUGE_RUNS
#                                     # timed runs on it (default 2)
#   SPREAD_NICE=1                     # the largest SPREAD count again with one member
#                                     # slow: a CPU quota (systemd-run --scope -p
#                                     # CPUQuota=25%) when systemd runs and we are root,
#                                     # else nice -n 19 and taskset on the last CPU with
#                                     # a busy loop pinned there; =nice or =quota forces
#                                     # one, 0 skips (default 1)
#   SPREAD_ONLY=1 bench/cluster.sh    # the --spread figures alone (no N, no serf)
#   BENCH_DIR=/tmp/p2p-bench          # keep the --spread data in BENCH_DIR/spread and
#                                     # reuse it next time (default: the temp dir)
#   QUICK=1 bench/cluster.sh          # a short check: N=10, 1 trial, 5 --all runs,
#                                     # 400 files for --spread, 1 run each; 1,000 small
#                                     # files, 2 x 32 MiB, one 320 MiB file
#   LARGE=1 bench/cluster.sh          # the 1,000-daemon run: N=1000, 3 trials,
#                                     # 10 --all runs, 10 idle minutes for p2p (serf:
#                                     # 1 trial, 3 idle minutes), no --spread; about
#                                     # 40 minutes
#   QUIET=600 SERF_QUIET=180          # idle seconds counting false downs (default 0)
#   SERF_TRIALS=1                     # rounds of trials for serf, if not TRIALS
#   START_BUDGET=300 SERF_START_BUDGET=120   # seconds to start the N daemons; when
#                                     # it runs out, the figures are those of the
#                                     # members up (the table says so; default none)
#   MIN_FREE_MIB=4096                 # stop starting daemons below this MemAvailable
#                                     # (there may be no swap; default 4096)
#   BENCH_NO_HEADER=1                 # no machine line (bench/run.sh prints one)
#   REVOKE=1 bench/cluster.sh 100     # then, for each N, the time a revocation
#                                     # takes to reach every certified member
#                                     # (bench/revoke.sh; REVOKE_TRIALS, default 3)
#
# The table goes to stdout, progress and per-trial details to stderr:
#   bench/cluster.sh | tee -a bench/RESULTS.md
#
# The --spread data take about 7.1 GiB of disk and of page cache (the files
# are read once before timing).
#
# Installs serf and jq with apt-get when missing (as root). Timings are each
# tool's defaults (p2p: gossip 100 ms, probe 1 s; serf: memberlist's LAN
# profile). Every process runs in a temp dir and is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# QUICK=1 only changes the defaults; anything set explicitly still wins.
d_quiet=0 d_serf_quiet="" d_serf_trials="" d_spread="1 2 4" d_converge=120
d_small=10000 d_big=8 d_big_mib=256 d_huge=4 d_huge_runs=2
if [ -n "${QUICK:-}" ] && [ "${QUICK}" != 0 ]; then
  d_nodes=10 d_trials=1 d_all=5 d_files=400 d_runs=1
  d_small=1000 d_big=2 d_big_mib=32 d_huge=0.3125 d_huge_runs=1
elif [ -n "${LARGE:-}" ] && [ "${LARGE}" != 0 ]; then
  d_nodes=1000 d_trials=3 d_all=10 d_files=4000 d_runs=3
  d_quiet=600 d_serf_quiet=180 d_serf_trials=1 d_spread="" d_converge=300
else
  d_nodes="10 50 100" d_trials=3 d_all=20 d_files=4000 d_runs=3
fi
NODES=${*:-${NODES:-$d_nodes}}
SPREAD_ONLY=${SPREAD_ONLY:-}
[ "$SPREAD_ONLY" = 0 ] && SPREAD_ONLY=
[ -n "$SPREAD_ONLY" ] && NODES=""
TRIALS=${TRIALS:-$d_trials}
TOOLS=${TOOLS:-p2p serf}
ALL_RUNS=${ALL_RUNS:-$d_all}
SPREAD=${SPREAD-$d_spread}       # set but empty: no --spread figures
QUIET=${QUIET:-$d_quiet}
SERF_QUIET=${SERF_QUIET:-$d_serf_quiet}
SERF_TRIALS=${SERF_TRIALS:-$d_serf_trials}
START_BUDGET=${START_BUDGET:-0}
SERF_START_BUDGET=${SERF_START_BUDGET:-0}
MIN_FREE_MIB=${MIN_FREE_MIB:-4096}
CONVERGE_TIMEOUT=${CONVERGE_TIMEOUT:-$d_converge}

# A daemon per member, a watcher and a pipe per member in the harness, and
# --all opening a session per member: raise the soft descriptor limit to the
# hard one (the daemons inherit it).
ulimit -n "$(ulimit -Hn)"
SPREAD_FILES=${SPREAD_FILES:-$d_files}
SPREAD_KIB=${SPREAD_KIB:-256}
SPREAD_RUNS=${SPREAD_RUNS:-$d_runs}
SPREAD_SMALL=${SPREAD_SMALL:-$d_small}
SPREAD_SMALL_KIB=${SPREAD_SMALL_KIB:-4}
SPREAD_BIG=${SPREAD_BIG:-$d_big}
SPREAD_BIG_MIB=${SPREAD_BIG_MIB:-$d_big_mib}
SPREAD_HUGE_GIB=${SPREAD_HUGE_GIB:-$d_huge}
SPREAD_HUGE_RUNS=${SPREAD_HUGE_RUNS:-$d_huge_runs}
SPREAD_NICE=${SPREAD_NICE:-1}

. bench/need.sh
if [ -n "$SPREAD_ONLY" ]; then
  need bench/cluster.sh python3
  TOOLS=p2p
else
  need bench/cluster.sh serf jq python3
fi

p2p_binaries
for b in p2pd p2p-peers p2p-keygen p2p-wc p2p-sha256 p2p-status; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b" >&2; exit 2; }
done

P2P_VERSION="$("$BIN/p2pd" --version | awk '{print $2}')"
rev=$(git rev-parse --short HEAD 2>/dev/null || true)
[ -n "$rev" ] && P2P_VERSION="$P2P_VERSION ($rev)"
SERF_VERSION=$(dpkg-query -W -f '${Version}' serf 2>/dev/null || serf version 2>/dev/null | head -1 || true)

TMP=$(mktemp -d -t p2p-cluster.XXXXXX)
cleanup() {
  # The harness kills its daemons itself, and they die with it anyway
  # (PR_SET_PDEATHSIG); this is the last resort. Only pids the harness
  # recorded, and only while they still carry this run's marker.
  if [ -f "$TMP/pids" ]; then
    while read -r pid; do
      if grep -qzx "P2P_BENCH_RUN=$TMP" "/proc/$pid/environ" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done < "$TMP/pids"
  fi
  if [ -n "${KEEP_TMP:-}" ]; then
    echo "logs kept in $TMP" >&2
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

extra=()
[ -n "${SERF_ENCRYPT:-}" ] && extra+=(--serf-encrypt)
[ -n "${BENCH_NO_HEADER:-}" ] && extra+=(--no-facts)
[ -n "$SERF_QUIET" ] && extra+=(--serf-quiet "$SERF_QUIET")
[ -n "$SERF_TRIALS" ] && extra+=(--serf-trials "$SERF_TRIALS")
[ -n "${BENCH_DIR:-}" ] && extra+=(--spread-root "$BENCH_DIR/spread")

# In the background so that our traps run at once on INT or TERM (bash defers
# them while a foreground child runs); the harness stops its daemons on TERM.
# shellcheck disable=SC2086  # NODES, TOOLS and SPREAD are lists of words
python3 bench/cluster.py --bin "$BIN" --tmp "$TMP" --nodes $NODES --tools $TOOLS \
  --trials "$TRIALS" --all-runs "$ALL_RUNS" --spread $SPREAD \
  --spread-files "$SPREAD_FILES" --spread-kib "$SPREAD_KIB" --spread-runs "$SPREAD_RUNS" \
  --spread-small "$SPREAD_SMALL" --spread-small-kib "$SPREAD_SMALL_KIB" \
  --spread-big "$SPREAD_BIG" --spread-big-mib "$SPREAD_BIG_MIB" \
  --spread-huge-gib "$SPREAD_HUGE_GIB" --spread-huge-runs "$SPREAD_HUGE_RUNS" \
  --spread-nice "$SPREAD_NICE" \
  --quiet "$QUIET" --start-budget "$START_BUDGET" --serf-start-budget "$SERF_START_BUDGET" \
  --min-free-mib "$MIN_FREE_MIB" --converge-timeout "$CONVERGE_TIMEOUT" \
  --p2p-version "$P2P_VERSION" --serf-version "$SERF_VERSION" "${extra[@]}" &
harness=$!
stop() { kill -TERM "$harness" 2>/dev/null || true; wait "$harness" || true; exit "$1"; }
trap 'stop 130' INT
trap 'stop 143' TERM
wait "$harness"
if [ -n "${REVOKE:-}" ] && [ "${REVOKE}" != 0 ]; then
  for n in $NODES; do
    TRIALS=${REVOKE_TRIALS:-3} P2P_BIN=$BIN bench/revoke.sh "$n"
  done
fi
