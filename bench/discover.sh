#!/usr/bin/env bash
# LAN discovery: how long two daemons on one link take to find each other
# with no --join, p2pd (--discover, sealed beacons) beside Debian's serf
# (-discover, mDNS), in two network namespaces joined by a veth pair that
# this script makes and deletes. Not a test: timings depend on the machine.
#
#   sudo bench/discover.sh                    # 5 trials each
#   TRIALS=10 P2P_BIN=target/debug sudo -E bench/discover.sh
#
# Each trial starts the first daemon, waits until it serves, then starts the
# second and times until both list each other as alive. Needs root, ip
# (iproute2) and serf (TOOLS=p2p to leave serf out).
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS=${TRIALS:-5}
TOOLS=${TOOLS:-"p2p serf"}
P2P_BIN=${P2P_BIN:-}
if [ -z "$P2P_BIN" ]; then
  cargo build --release --bins >&2
  P2P_BIN=target/release
fi
[ "$(id -u)" = 0 ] || { echo "bench/discover.sh: needs root (network namespaces)" >&2; exit 2; }

tag=$$
A=p2pdisc${tag}a
B=p2pdisc${tag}b
tmp=$(mktemp -d)
cleanup() {
  pkill -f "p2pdisc${tag}" 2>/dev/null || true
  for p in $(cat "$tmp"/pids 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$A"
ip netns add "$B"
ip link add eth0 netns "$A" type veth peer name eth0 netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev eth0
ip -n "$B" addr add 10.78.0.2/24 dev eth0
for n in "$A" "$B"; do
  ip -n "$n" link set eth0 up
  ip -n "$n" link set lo up
done

now_ms() { date +%s%3N; }

# p2pd: both see two members alive.
p2p_trial() {
  local key
  key=$("$P2P_BIN"/p2p-keygen | head -1)
  P2PD_SECRET=$key ip netns exec "$A" "$P2P_BIN"/p2pd 0 --discover --name a --bind 10.78.0.1 \
    --socket "$tmp/a.sock" --port-file "$tmp/a.port" 2>"$tmp/a.log" &
  echo $! >>"$tmp/pids"
  until [ -s "$tmp/a.port" ]; do sleep 0.01; done
  local t0
  t0=$(now_ms)
  P2PD_SECRET=$key ip netns exec "$B" "$P2P_BIN"/p2pd 0 --discover --name b --bind 10.78.0.2 \
    --socket "$tmp/b.sock" 2>"$tmp/b.log" &
  echo $! >>"$tmp/pids"
  local deadline=$(( t0 + 30000 ))
  while [ "$(now_ms)" -lt $deadline ]; do
    local na nb
    na=$(P2P_SOCKET=$tmp/a.sock "$P2P_BIN"/p2p-peers --state alive 2>/dev/null | wc -l)
    nb=$(P2P_SOCKET=$tmp/b.sock "$P2P_BIN"/p2p-peers --state alive 2>/dev/null | wc -l)
    if [ "$na" = 2 ] && [ "$nb" = 2 ]; then break; fi
    sleep 0.01
  done
  local t1
  t1=$(now_ms)
  for p in $(cat "$tmp/pids"); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  : >"$tmp/pids"
  rm -f "$tmp/a.port" "$tmp"/*.sock
  echo $(( t1 - t0 ))
}

# serf: both list two members alive.
serf_trial() {
  ip netns exec "$A" serf agent -node a -bind 10.78.0.1:7946 -rpc-addr 127.0.0.1:7373 \
    -discover "p2pdisc${tag}" -iface eth0 >"$tmp/sa.log" 2>&1 &
  local agent=$!
  echo $agent >>"$tmp/pids"
  local ready=$(( $(now_ms) + 10000 ))
  until ip netns exec "$A" serf members -rpc-addr 127.0.0.1:7373 >/dev/null 2>&1; do
    if ! kill -0 "$agent" 2>/dev/null || [ "$(now_ms)" -gt $ready ]; then
      # Debian's serf 0.9.4 panics in its mDNS code here: say so.
      echo "serf agent -discover did not come up: $(grep -m1 -E 'panic|error' "$tmp/sa.log" || true)" >&2
      : >"$tmp/pids"
      echo fail
      return
    fi
    sleep 0.01
  done
  local t0
  t0=$(now_ms)
  ip netns exec "$B" serf agent -node b -bind 10.78.0.2:7946 -rpc-addr 127.0.0.1:7373 \
    -discover "p2pdisc${tag}" -iface eth0 >"$tmp/sb.log" 2>&1 &
  echo $! >>"$tmp/pids"
  local deadline=$(( t0 + 30000 ))
  while [ "$(now_ms)" -lt $deadline ]; do
    local na nb
    na=$(ip netns exec "$A" serf members -rpc-addr 127.0.0.1:7373 -status alive 2>/dev/null | wc -l)
    nb=$(ip netns exec "$B" serf members -rpc-addr 127.0.0.1:7373 -status alive 2>/dev/null | wc -l)
    if [ "$na" = 2 ] && [ "$nb" = 2 ]; then break; fi
    sleep 0.01
  done
  local t1
  t1=$(now_ms)
  for p in $(cat "$tmp/pids"); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  : >"$tmp/pids"
  echo $(( t1 - t0 ))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A med
for tool in $TOOLS; do
  : >"$tmp/$tool.times"
  for _ in $(seq "$TRIALS"); do
    "${tool}_trial" >>"$tmp/$tool.times"
  done
  if grep -q fail "$tmp/$tool.times"; then
    med[$tool]=failed
  else
    med[$tool]=$(median <"$tmp/$tool.times")
  fi
  echo "$tool trials (ms): $(paste -sd/ "$tmp/$tool.times")" >&2
done

printf '%-52s %10s %10s %8s\n' "LAN discovery, two namespaces on a veth pair" p2p serf ratio
p=${med[p2p]:-}
s=${med[serf]:-}
ratio=-
if [ -n "$p" ] && [ -n "$s" ] && [ "$s" != failed ] && [ "$p" != failed ]; then
  ratio=$(awk -v a="$s" -v b="$p" 'BEGIN {printf "%.1fx", a / b}')
fi
shown() { case $1 in '') echo - ;; failed) echo failed ;; *) echo "$1 ms" ;; esac; }
printf '%-52s %10s %10s %8s\n' "both see each other, median of $TRIALS" "$(shown "$p")" "$(shown "$s")" "$ratio"
