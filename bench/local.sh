#!/usr/bin/env bash
# One-host benchmark: p2p side by side with GNU coreutils and openssl, from
# one run, printed as ratios. Not a test: timings are machine-dependent.
#
#   bench/local.sh            # data in $BENCH_DIR (default /tmp/p2p-bench), kept for reuse
#   QUICK=1 bench/local.sh    # a short check: 64 MiB, 1,000 small files, a tree
#                             # of 10,000 entries, at most 3 runs per figure
#   SIZE_MIB=256 SMALL_FILES=2000 TREE_ENTRIES=50000 bench/local.sh
#   P2P_BIN=target/release bench/local.sh     # use built binaries, skip cargo build
#   BENCH_NO_HEADER=1 bench/local.sh          # rows only (bench/run.sh)
#
# Needs hyperfine and jq; installs them with apt-get when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# QUICK=1 only changes the defaults; anything set explicitly still wins.
QUICK=${QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
BENCH_DIR=${BENCH_DIR:-/tmp/p2p-bench}
SIZE_MIB=${SIZE_MIB:-${QUICK:+64}}
SIZE_MIB=${SIZE_MIB:-1024}
SMALL_FILES=${SMALL_FILES:-${QUICK:+1000}}
SMALL_FILES=${SMALL_FILES:-10000}
TREE_ENTRIES=${TREE_ENTRIES:-${QUICK:+10000}}
TREE_ENTRIES=${TREE_ENTRIES:-100000}
mkdir -p "$BENCH_DIR"

. bench/need.sh
need bench/local.sh hyperfine jq openssl

p2p_binaries

# --- data -----------------------------------------------------------------
# Named after their size, so that a QUICK run never overwrites a full run's data.
big=$BENCH_DIR/big-${SIZE_MIB}M.txt
if [ ! -f "$big" ] || [ "$(stat -c %s "$big")" -ne $((SIZE_MIB * 1024 * 1024)) ]; then
  echo "generating $SIZE_MIB MiB of text in $big ..." >&2
  python3 - "$big" "$SIZE_MIB" <<'PY'
import random, sys
path, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
# Mostly ASCII prose with a sprinkling of other scripts, like real text.
ascii_words = ("the of and to in is was that for on with as by at from his her they this "
               "which have are were been has one all would there their will when who more "
               "file host cluster daemon gossip member query result stream count hash, "
               "(see) \"quoted\" 1024 3.14 e-mail").split()
other_words = "naïve café straße 東京 данные δεδομένα 🙂 señor".split()
def word():
    return rng.choice(other_words) if rng.random() < 0.01 else rng.choice(ascii_words)
lines = []
size = 0
while size < 4 * 1024 * 1024:
    n = rng.randint(0, 16)
    line = " ".join(word() for _ in range(n))
    if rng.random() < 0.05:
        line = "\t" + line
    lines.append(line)
    size += len(line.encode()) + 1
chunk = ("\n".join(lines) + "\n").encode()[: 4 * 1024 * 1024]
# Cut on a line end so the copies join cleanly.
chunk = chunk[: chunk.rfind(b"\n") + 1]
with open(path, "wb") as f:
    total = mib * 1024 * 1024
    while total > 0:
        part = chunk[:total] if total < len(chunk) else chunk
        f.write(part)
        total -= len(part)
PY
fi
small=$BENCH_DIR/small-$SMALL_FILES
if [ ! -d "$small" ] || [ "$(ls "$small" | wc -l)" -ne "$SMALL_FILES" ]; then
  rm -rf "$small"; mkdir -p "$small"
  python3 - "$small" "$SMALL_FILES" <<'PY'
import random, sys, os
d = sys.argv[1]
rng = random.Random(7)
for i in range(int(sys.argv[2])):
    with open(os.path.join(d, f"f{i:05}.txt"), "w") as f:
        f.write("".join(f"line {j} of file {i} with some words\n" for j in range(rng.randint(1, 60))))
PY
fi
find "$small" -type f | sort > "$BENCH_DIR/small.list"
tr '\n' '\0' < "$BENCH_DIR/small.list" > "$BENCH_DIR/small.list0"
half1=$BENCH_DIR/half1-${SIZE_MIB}M.bin half2=$BENCH_DIR/half2-${SIZE_MIB}M.bin
[ -f "$half1" ] || head -c $((SIZE_MIB / 2 * 1024 * 1024)) "$big" > "$half1"
[ -f "$half2" ] || tail -c $((SIZE_MIB / 2 * 1024 * 1024)) "$big" > "$half2"
# A directory tree of TREE_ENTRIES entries below its root (1% directories,
# 1% of the rest symlinks, the others small files), for p2p-count -r against
# find. The .done marker sits beside the tree, not in it, and is written last,
# so an interrupted generation is redone.
tree=$BENCH_DIR/tree-$TREE_ENTRIES
if [ ! -f "$tree.done" ]; then
  echo "generating a tree of $TREE_ENTRIES entries in $tree ..." >&2
  rm -rf "$tree"
  python3 - "$tree" "$TREE_ENTRIES" <<'PY'
import os, sys
root, entries = sys.argv[1], int(sys.argv[2])
ndirs = max(1, entries // 100)
# Two levels: about sqrt(ndirs) top directories, the rest spread below them.
top = max(1, int(ndirs ** 0.5))
dirs = [os.path.join(root, f"d{i:03}") for i in range(top)]
dirs += [os.path.join(dirs[i % top], f"s{i:04}") for i in range(ndirs - top)]
for d in dirs:
    os.makedirs(d)
for i in range(entries - ndirs):
    path = os.path.join(dirs[i % ndirs], f"f{i:06}")
    if i % 100 == 99:
        os.symlink(f"f{i - 1:06}", path)
    else:
        with open(path, "w") as f:
            f.write("x" * (i % 200))
PY
  touch "$tree.done"
fi
# Fresh data is flushed to disk now (quick when there is none), or the
# kernel's write-back of a few GiB would overlap the timed runs, and make
# deleting the data slow later; then everything is read once, into the page
# cache.
sync -f "$BENCH_DIR/"
cat "$big" "$half1" "$half2" > /dev/null

# --- daemons: one without cache (to time the computation), one with -----------
run=$(mktemp -d -t p2p-local.XXXXXX)
nocache_pid='' cached_pid=''
cleanup() {
  for pid in $nocache_pid $cached_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT
# Two free loopback ports below the ephemeral range (the daemons also listen
# for peers, though none come), and a key of this run's own, so that nothing
# is written to ~/.config.
read -r port1 port2 < <(python3 - <<'PY'
import random, socket
def free(p):
    try:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
ports = [p for p in random.sample(range(20000, 30000), 200) if free(p)]
print(ports[0], ports[1])
PY
)
P2PD_SECRET=$("$BIN/p2p-keygen")
export P2PD_SECRET
"$BIN/p2pd" "$port1" --socket "$run/nocache.sock" --cache-entries 0 2>"$run/nocache.log" & nocache_pid=$!
"$BIN/p2pd" "$port2" --socket "$run/cached.sock" 2>"$run/cached.log" & cached_pid=$!
for s in nocache cached; do
  for _ in $(seq 100); do [ -S "$run/$s.sock" ] && break; sleep 0.05; done
  [ -S "$run/$s.sock" ] || { echo "p2pd ($s) did not start:" >&2; cat "$run/$s.log" >&2; exit 1; }
done
NC="--socket=$run/nocache.sock"
CA="--socket=$run/cached.sock"

# mean seconds of a command, by hyperfine (QUICK: at most 3 runs)
mean() {
  local runs=$1; shift
  if [ -n "$QUICK" ] && [ "$runs" -gt 3 ]; then runs=3; fi
  hyperfine --style none --warmup 1 --runs "$runs" -N --export-json "$run/h.json" "$@" >/dev/null 2>&1
  jq -r '.results[0].mean' "$run/h.json"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
mbs() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.0f MB/s", s / t / 1e6 }'; }
ms() { awk -v t="$1" 'BEGIN { printf "%.2f ms", t * 1000 }'; }

bytes=$(stat -c %s "$big")
# The same columns as bench/cluster.py's, so bench/run.sh prints one table.
row() { printf '%-46s %14s %14s %9s\n' "$@"; }
[ -n "${BENCH_NO_HEADER:-}" ] || row "benchmark ($(nproc) cores)" "p2p" "reference" "ratio"

t_p=$(mean 5 "$BIN/p2p-wc $NC $big")
t_g=$(mean 2 "env LC_ALL=C.UTF-8 wc $big")
row "wc, ${SIZE_MIB} MiB vs LC_ALL=C.UTF-8 wc" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$t_g")" "$(ratio "$t_g" "$t_p")"
t_c=$(mean 2 "env LC_ALL=C wc $big")
row "wc, ${SIZE_MIB} MiB vs LC_ALL=C wc" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$t_c")" "$(ratio "$t_c" "$t_p")"
t_p=$(mean 10 "$BIN/p2p-wc $NC -l $big")
t_g=$(mean 10 "wc -l $big")
row "wc -l, ${SIZE_MIB} MiB vs wc -l" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$t_g")" "$(ratio "$t_g" "$t_p")"

t_p=$(mean 5 "$BIN/p2p-sha256 $NC $big")
t_g=$(mean 2 "sha256sum $big")
row "sha256, ${SIZE_MIB} MiB vs sha256sum" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$t_g")" "$(ratio "$t_g" "$t_p")"
# openssl speed prints thousands of bytes per second per block size; take 16 KiB.
ossl=$(openssl speed -evp sha256 -bytes 16384 -seconds "$([ -n "$QUICK" ] && echo 1 || echo 3)" 2>/dev/null | awk '/^sha256/ { v=$NF; sub("k","",v); print v * 1000 }')
p2p_rate=$(awk -v s="$bytes" -v t="$t_p" 'BEGIN { print s / t }')
row "sha256 vs openssl speed -evp sha256 (16 KiB)" "$(mbs "$bytes" "$t_p")" "$(awk -v r="$ossl" 'BEGIN { printf "%.0f MB/s", r / 1e6 }')" "$(awk -v a="$p2p_rate" -v b="$ossl" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
t_two=$(mean 3 "$BIN/p2p-sha256 $NC $half1 $half2")
row "sha256, two $((SIZE_MIB / 2)) MiB files vs one ${SIZE_MIB} MiB" "$(ms "$t_two")" "$(ms "$t_p")" "$(ratio "$t_p" "$t_two")"

t_p=$(mean 5 "$BIN/p2p-stat $NC $big")
row "stat (wc + sha256, one read) vs sha256 alone" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$(mean 3 "$BIN/p2p-sha256 $NC $big")")" ""

"$BIN/p2p-sha256" "$CA" "$big" > /dev/null
"$BIN/p2p-wc" "$CA" "$big" > /dev/null
t_r=$(mean 20 "$BIN/p2p-sha256 $CA $big")
row "sha256 again, unchanged file (cache)" "$(ms "$t_r")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_r")"
t_r=$(mean 20 "$BIN/p2p-wc $CA $big")
row "wc again, unchanged file (cache)" "$(ms "$t_r")" "" ""

# A whole process for one small file is about a millisecond, and the
# machine's other load moves single runs by as much: both commands are timed
# in one hyperfine run, and compared by their medians.
pair_median() {
  local runs=$1; shift
  if [ -n "$QUICK" ] && [ "$runs" -gt 50 ]; then runs=50; fi
  hyperfine --style none --warmup 10 --runs "$runs" -N --export-json "$run/h.json" "$@" >/dev/null 2>&1
  jq -r '[.results[].median | tostring] | join(" ")' "$run/h.json"
}
one=$small/f00001.txt
read -r t_p t_g < <(pair_median 300 "$BIN/p2p-wc $NC $one" "wc $one")
row "one small file, whole process, vs wc" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
read -r t_p t_g < <(pair_median 300 "$BIN/p2p-sha256 $NC $one" "sha256sum $one")
row "one small file, whole process, vs sha256sum" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"

t_p=$(mean 5 "$BIN/p2p-wc $NC --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "xargs -a $BENCH_DIR/small.list wc")
row "$SMALL_FILES small files: wc vs xargs wc" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
t_g=$(mean 5 "env LC_ALL=C.UTF-8 wc --files0-from=$BENCH_DIR/small.list0")
row "  the same vs LC_ALL=C.UTF-8 wc --files0-from" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
t_p=$(mean 5 "$BIN/p2p-sha256 $NC --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "xargs -a $BENCH_DIR/small.list sha256sum")
row "$SMALL_FILES small files: sha256 vs xargs sha256sum" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
# The same lists again on the daemon with its cache (the default), warmed
# by one run: unchanged files are answered from the cache after a statx.
"$BIN/p2p-wc" "$CA" --files-from "$BENCH_DIR/small.list" >/dev/null
"$BIN/p2p-sha256" "$CA" --files-from "$BENCH_DIR/small.list" >/dev/null
t_p=$(mean 5 "$BIN/p2p-wc $CA --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "xargs -a $BENCH_DIR/small.list wc")
row "  wc again, cached daemon, vs xargs wc" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
t_p=$(mean 5 "$BIN/p2p-sha256 $CA --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "xargs -a $BENCH_DIR/small.list sha256sum")
row "  sha256 again, cached daemon, vs xargs sha256sum" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"

# p2p-count -r walks the tree in the daemon (with the caller's rights) and
# stats every regular file for its size; find only reads the directories.
p2p_n=$("$BIN/p2p-count" "$NC" -r "$tree" | jq '.files + .dirs + .symlinks + .other')
find_n=$(find "$tree" -mindepth 1 | wc -l)
[ "$p2p_n" = "$find_n" ] || echo "warning: p2p-count -r counted $p2p_n entries, find $find_n" >&2
t_p=$(mean 10 "$BIN/p2p-count $NC -r $tree")
t_g=$(mean 10 "sh -c 'find $tree | wc -l'")
row "count -r, $TREE_ENTRIES entries vs find | wc -l" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
t_f=$(mean 10 "sh -c 'find $tree -type f | wc -l'")
row "  the same vs find -type f | wc -l" "$(ms "$t_p")" "$(ms "$t_f")" "$(ratio "$t_f" "$t_p")"
# du stats every entry too, as p2p-count must for the byte total: the
# reference that does the same work.
t_d=$(mean 10 "du -sb $tree")
row "  the same vs du -sb (stats every entry)" "$(ms "$t_p")" "$(ms "$t_d")" "$(ratio "$t_d" "$t_p")"
