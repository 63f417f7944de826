#!/usr/bin/env bash
# One-host benchmark: p2p side by side with GNU coreutils and openssl, from
# one run, printed as ratios. Not a test: timings are machine-dependent.
#
#   bench/local.sh            # uses $BENCH_DIR (default /tmp/p2p-bench)
#
# Needs hyperfine and jq; installs them with apt-get when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/tmp/p2p-bench}
SIZE_MIB=${SIZE_MIB:-1024}
mkdir -p "$BENCH_DIR"

for tool in hyperfine jq openssl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    else
      echo "bench/local.sh needs $tool (apt-get install $tool)" >&2
      exit 2
    fi
  fi
done

cargo build --release --quiet
BIN=$PWD/target/release

# --- data -----------------------------------------------------------------
big=$BENCH_DIR/big.txt
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
small=$BENCH_DIR/small
if [ ! -d "$small" ] || [ "$(ls "$small" | wc -l)" -ne 10000 ]; then
  rm -rf "$small"; mkdir -p "$small"
  python3 - "$small" <<'PY'
import random, sys, os
d = sys.argv[1]
rng = random.Random(7)
for i in range(10000):
    with open(os.path.join(d, f"f{i:05}.txt"), "w") as f:
        f.write("".join(f"line {j} of file {i} with some words\n" for j in range(rng.randint(1, 60))))
PY
fi
ls "$small"/* > "$BENCH_DIR/small.list"
tr '\n' '\0' < "$BENCH_DIR/small.list" > "$BENCH_DIR/small.list0"
half1=$BENCH_DIR/half1.bin half2=$BENCH_DIR/half2.bin
[ -f "$half1" ] || head -c $((SIZE_MIB / 2 * 1024 * 1024)) "$big" > "$half1"
[ -f "$half2" ] || tail -c $((SIZE_MIB / 2 * 1024 * 1024)) "$big" > "$half2"
cat "$big" "$half1" "$half2" > /dev/null   # into the page cache

# --- daemons: one without cache (to time the computation), one with -----------
run=$(mktemp -d)
cleanup() { kill "$nocache_pid" "$cached_pid" 2>/dev/null || true; rm -rf "$run"; }
trap cleanup EXIT
"$BIN/p2pd" 65001 --socket "$run/nocache.sock" --cache-entries 0 2>"$run/nocache.log" & nocache_pid=$!
"$BIN/p2pd" 65002 --socket "$run/cached.sock" 2>"$run/cached.log" & cached_pid=$!
for s in nocache cached; do
  for _ in $(seq 100); do [ -S "$run/$s.sock" ] && break; sleep 0.05; done
done
NC="--socket=$run/nocache.sock"
CA="--socket=$run/cached.sock"

# mean seconds of a command, by hyperfine
mean() {
  local runs=$1; shift
  hyperfine --style none --warmup 1 --runs "$runs" -N --export-json "$run/h.json" "$@" >/dev/null 2>&1
  jq -r '.results[0].mean' "$run/h.json"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
mbs() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.0f MB/s", s / t / 1e6 }'; }
ms() { awk -v t="$1" 'BEGIN { printf "%.2f ms", t * 1000 }'; }

bytes=$(stat -c %s "$big")
printf '%-46s %14s %14s %9s\n' "benchmark ($(nproc) cores)" "p2p" "reference" "ratio"
row() { printf '%-46s %14s %14s %9s\n' "$@"; }

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
ossl=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ { v=$NF; sub("k","",v); print v * 1000 }')
p2p_rate=$(awk -v s="$bytes" -v t="$t_p" 'BEGIN { print s / t }')
row "sha256 vs openssl speed -evp sha256 (16 KiB)" "$(mbs "$bytes" "$t_p")" "$(awk -v r="$ossl" 'BEGIN { printf "%.0f MB/s", r / 1e6 }')" "$(awk -v a="$p2p_rate" -v b="$ossl" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
t_two=$(mean 3 "$BIN/p2p-sha256 $NC $half1 $half2")
row "sha256, two $((SIZE_MIB / 2)) MiB files vs one ${SIZE_MIB} MiB" "$(ms "$t_two")" "$(ms "$t_p")" "$(ratio "$t_p" "$t_two")"

t_p=$(mean 5 "$BIN/p2p-stat $NC $big")
row "stat (wc + sha256, one read) vs sha256 alone" "$(mbs "$bytes" "$t_p")" "$(mbs "$bytes" "$(mean 3 "$BIN/p2p-sha256 $NC $big")")" ""

"$BIN/p2p-sha256" $CA "$big" > /dev/null
"$BIN/p2p-wc" $CA "$big" > /dev/null
t_r=$(mean 20 "$BIN/p2p-sha256 $CA $big")
row "sha256 again, unchanged file (cache)" "$(ms "$t_r")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_r")"
t_r=$(mean 20 "$BIN/p2p-wc $CA $big")
row "wc again, unchanged file (cache)" "$(ms "$t_r")" "" ""

one=$small/f00001.txt
t_p=$(mean 200 "$BIN/p2p-wc $NC $one")
t_g=$(mean 200 "wc $one")
row "one small file, whole process, vs wc" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"

t_p=$(mean 5 "$BIN/p2p-wc $NC --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "env LC_ALL=C.UTF-8 wc --files0-from=$BENCH_DIR/small.list0")
row "10,000 small files: wc" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
t_p=$(mean 5 "$BIN/p2p-sha256 $NC --files-from $BENCH_DIR/small.list")
t_g=$(mean 5 "xargs -a $BENCH_DIR/small.list sha256sum")
row "10,000 small files: sha256 vs xargs sha256sum" "$(ms "$t_p")" "$(ms "$t_g")" "$(ratio "$t_g" "$t_p")"
