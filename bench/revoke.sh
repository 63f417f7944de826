#!/usr/bin/env bash
# Revocation benchmark: N certified p2pd on 127.0.0.1; a revocation list is
# handed to one member (p2p-revoke) and timed until every other member lists
# the revoked one as `revoked`. Not a test: the figure depends on the
# machine. bench/cluster.sh runs it too with REVOKE=1. See bench/revoke.py.
#
# Usage:
#   bench/revoke.sh                  # N = 100, 3 trials (a minute or two)
#   bench/revoke.sh 30               # another N
#   TRIALS=1 bench/revoke.sh 100
#   P2P_BIN=target/release bench/revoke.sh   # skip cargo build
#   KEEP_TMP=1 bench/revoke.sh       # keep the per-node logs
#
# The result line goes to stdout, progress to stderr. Every process runs in a
# temp dir and is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-${REVOKE_NODES:-100}}
TRIALS=${TRIALS:-3}
ulimit -n "$(ulimit -Hn)"

. bench/need.sh
need bench/revoke.sh python3
p2p_binaries
for b in p2pd p2p-peers p2p-keygen p2p-ca p2p-revoke; do
  [ -x "$BIN/$b" ] || { echo "no $BIN/$b" >&2; exit 2; }
done

TMP=$(mktemp -d -t p2p-revoke.XXXXXX)
cleanup() {
  # The harness kills its processes, and they die with it (PR_SET_PDEATHSIG);
  # this is the last resort, for the pids it recorded that carry our marker.
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

python3 bench/revoke.py --bin "$BIN" --tmp "$TMP" --nodes "$N" --trials "$TRIALS" &
harness=$!
stop() { kill -TERM "$harness" 2>/dev/null || true; wait "$harness" || true; exit "$1"; }
trap 'stop 130' INT
trap 'stop 143' TERM
wait "$harness"
