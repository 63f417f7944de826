#!/usr/bin/env bash
# p2p-get beside scp and rsync over ssh, on loopback, for one file of
# SIZE_MIB (1 GiB by default) in the page cache; and p2p-get --any from
# three members that hold it beside p2p-get from one. Not a test: the figures
# depend on the machine. Every row is the best of RUNS runs.
#
#   bench/get.sh
#   SIZE_MIB=256 RUNS=2 bench/get.sh
#   P2P_BIN=target/release bench/get.sh     # skip cargo build
#
# Needs openssh-server, openssh-client, rsync (installed with apt-get when
# run as root: for this bench only, the tests never need them). The sshd is
# a private one, of this run only, on a port from 43000-43999, with keys
# made for the run, and stopped at the end.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
SSH_PORT=${SSH_PORT:-43022}

. bench/need.sh
need bench/get.sh sshd=openssh-server scp=openssh-client rsync jq
p2p_binaries

work=$(mktemp -d /tmp/p2p-get-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

src=$work/export/big.bin
mkdir -p "$work/export" "$work/out"
echo "generating $SIZE_MIB MiB in $src ..." >&2
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$src"
cat "$src" > /dev/null
bytes=$(stat -c %s "$src")

# --- two daemons -------------------------------------------------------------
export P2PD_SECRET
P2PD_SECRET=$("$BIN/p2p-keygen")
start() { # NAME ARGS...
  local name=$1
  shift
  mkdir -p "$work/$name"
  "$BIN/p2pd" 0 --name "$name" --socket "$work/$name/sock" --port-file "$work/$name/port" \
    "$@" 2> "$work/$name/log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/$name/port" ] && break; sleep 0.05; done
}
start sender --export "$work/export"
start asker --join "127.0.0.1:$(cat "$work/sender/port")"
# Two more members that hold the same file, for p2p-get --any (three sources).
start sender2 --export "$work/export" --join "127.0.0.1:$(cat "$work/sender/port")"
start sender3 --export "$work/export" --join "127.0.0.1:$(cat "$work/sender/port")"
for _ in $(seq 100); do
  [ "$(P2P_SOCKET=$work/asker/sock "$BIN/p2p-peers" | jq -s 'map(select(.state=="alive"))|length')" = 4 ] && break
  sleep 0.1
done

# --- a private sshd ------------------------------------------------------------
ssh_dir=$work/ssh
mkdir -p "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host"
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/user"
cp "$ssh_dir/user.pub" "$ssh_dir/authorized_keys"
chmod 600 "$ssh_dir/authorized_keys"
cat > "$ssh_dir/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $ssh_dir/host
AuthorizedKeysFile $ssh_dir/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $ssh_dir/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
mkdir -p /run/sshd 2>/dev/null || true
"$(command -v sshd)" -D -e -f "$ssh_dir/sshd_config" 2> "$ssh_dir/log" &
pids+=($!)
sleep 0.5
ssh_opts=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
  -i "$ssh_dir/user")
cipher=$(ssh -v "${ssh_opts[@]}" -o LogLevel=DEBUG1 -p "$SSH_PORT" 127.0.0.1 true 2>&1 | sed -n 's/.*kex: server->client cipher: \([^ ]*\).*/\1/p' | head -1)

# --- runs --------------------------------------------------------------------
best() { # COMMAND...: the best wall time of RUNS runs, in seconds
  local b= t
  echo "timing $1 ${*: -2:1} ..." >&2
  for _ in $(seq "$RUNS"); do
    rm -f "$work/out/"*
    t=$(python3 -c "import time,subprocess,sys; s=time.perf_counter(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(time.perf_counter()-s)" "$@")
    b=$(python3 -c "print(min(float('$t'), float('${b:-inf}')))")
  done
  echo "$b"
}
mbs() { python3 -c "print(f'{$bytes / $1 / 1e6:.0f} MB/s')"; }

t_get=$(best env P2P_SOCKET="$work/asker/sock" "$BIN/p2p-get" --no-progress "sender:$src" "$work/out/big.bin")
rm -f "$work/out/"*
P2P_SOCKET="$work/asker/sock" "$BIN/p2p-get" --no-progress "sender:$src" "$work/out/big.bin" > /dev/null
cmp "$src" "$work/out/big.bin"
# --any: the manifests (each member reads and hashes the whole file) are in
# the time, as they are for a user.
t_any=$(best env P2P_SOCKET="$work/asker/sock" "$BIN/p2p-get" --no-progress --any "$src" "$work/out/big.bin")
rm -f "$work/out/"*
P2P_SOCKET="$work/asker/sock" "$BIN/p2p-get" --no-progress --any "$src" "$work/out/big.bin" > "$work/any.json"
cmp "$src" "$work/out/big.bin"
any_sources=$(jq -r '[.sources[] | "\(.peer) \(.bytes / 1048576 | floor) MiB"] | join(", ")' "$work/any.json")
t_scp=$(best scp -q "${ssh_opts[@]}" -P "$SSH_PORT" "127.0.0.1:$src" "$work/out/big.bin")
t_rsync=$(best rsync -q --whole-file -e "ssh ${ssh_opts[*]} -p $SSH_PORT" "127.0.0.1:$src" "$work/out/big.bin")

printf '# bench/get.sh, %s, commit %s; %s, %s MiB in the page cache, best of %s\n' \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" "$(nproc) CPUs" "$SIZE_MIB" "$RUNS"
printf '# ssh %s, cipher %s; rsync %s\n' "$(ssh -V 2>&1 | cut -d, -f1)" "${cipher:-default}" \
  "$(rsync --version | head -1 | awk '{print $3}')"
printf '# load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '# p2p-get also syncs the file and its directory (fsync) before the rename; scp and rsync do not\n'
printf '%-46s %12s %12s %9s\n' "one file over loopback" "p2p-get" "reference" "ratio"
row() { printf '%-46s %12s %12s %8.1fx\n' "$1" "$(mbs "$t_get")" "$(mbs "$2")" "$(python3 -c "print($2 / $t_get)")"; }
row "p2p-get vs scp" "$t_scp"
row "p2p-get vs rsync -e ssh (--whole-file)" "$t_rsync"
printf '%-46s %12s %12s %8.1fx\n' "p2p-get --any (3 members) vs p2p-get (1)" "$(mbs "$t_any")" "$(mbs "$t_get")" "$(python3 -c "print($t_get / $t_any)")"
printf '# --any sources of the last run: %s\n' "$any_sources"
