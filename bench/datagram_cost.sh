#!/bin/sh
# What one gossip datagram costs its receiver: opening a valid one, and
# rejecting forged, replayed, misaddressed and garbage ones, with replay
# protection on, beside the cost before it (datagram version 1), and the
# signed datagrams of certified members (version 3). Prints ns
# per datagram; see bench/README.md.
#
#   bench/datagram_cost.sh [ITERATIONS]     # default 20000 per round
set -eu
cd "$(dirname "$0")/.."
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
cargo run --quiet --release --example datagram_cost -- "${1:-20000}"
