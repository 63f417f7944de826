#!/usr/bin/env bash
# Library-level benchmark of the file computations (p2p::ops: wc, wc -l,
# sha256, stat) on a cached text file, beside GNU wc, sha256sum and
# `openssl speed`, printed as MB/s and ratios. No daemon involved: this
# measures the counting and hashing alone. Not a test: timings are
# machine-dependent.
#
#   bench/ops_bench.sh        # uses $BENCH_DIR (default /tmp/p2p-bench)
#
# The timing harness is a throwaway crate built in $BENCH_DIR that depends on
# this one by path, so nothing in the tree changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BENCH_DIR=${BENCH_DIR:-/tmp/p2p-bench}
SIZE_MIB=${SIZE_MIB:-1024}
REPS=${REPS:-5}
mkdir -p "$BENCH_DIR"

# --- data: mostly English prose, a few percent of words in other scripts ---
text=$BENCH_DIR/ops-text.txt
if [ ! -f "$text" ] || [ "$(stat -c %s "$text")" -ne $((SIZE_MIB * 1024 * 1024)) ]; then
  echo "generating $SIZE_MIB MiB of text in $text ..." >&2
  python3 - "$text" "$SIZE_MIB" <<'PY'
import random, sys
path, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
words = ("the quick brown fox jumps over lazy dog and then some more words appear in "
         "this text about systems networks files hashing counting performance").split()
other = "café naïve 東京 日本語 🙂 Grüße résumé Ελληνικά русский “quoted” —".split()
lines = []
for _ in range(20000):
    ws = [rng.choice(other) if rng.random() < 0.03 else rng.choice(words)
          for _ in range(rng.randint(3, 20))]
    lines.append(" ".join(ws) + rng.choice([".", ",", "", "!"]))
block = ("\n".join(lines) + "\n").encode()
with open(path, "wb") as f:
    total = mib * 1024 * 1024
    while total > 0:
        f.write(block[:total])
        total -= min(total, len(block))
PY
fi
bytes=$(stat -c %s "$text")
cat "$text" >/dev/null # into the page cache

# --- harness ----------------------------------------------------------------
harness=$BENCH_DIR/ops-harness
mkdir -p "$harness/src"
cat >"$harness/Cargo.toml" <<EOF
[package]
name = "ops-harness"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
p2p = { path = "$ROOT" }

[profile.release]
lto = "thin"
codegen-units = 4
EOF
cat >"$harness/src/main.rs" <<'EOF'
use p2p::ops::{sha, stat, wc};
use std::time::Instant;

// ops-harness MODE FILE REPS: prints the best time in seconds.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (mode, path, reps) = (&a[1], &a[2], a[3].parse::<usize>().unwrap());
    let mut best = f64::MAX;
    for _ in 0..reps {
        let f = std::fs::File::open(path).unwrap();
        let t = Instant::now();
        match mode.as_str() {
            "wc" => drop(wc::wc_file(&f, false).unwrap()),
            "lines" => drop(wc::wc_file(&f, true).unwrap()),
            "sha256" => drop(sha::sha256_file(&f).unwrap()),
            "stat" => drop(stat::wc_and_sha256(&f).unwrap()),
            _ => panic!("mode: wc, lines, sha256 or stat"),
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("{best:.6}");
}
EOF
CARGO_TARGET_DIR=$harness/target cargo build --release --quiet --manifest-path "$harness/Cargo.toml"
run=$harness/target/release/ops-harness

# Best wall time of REPS runs of a command, in seconds.
best_of() {
  local best=""
  for _ in $(seq "$REPS"); do
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    best=$(echo "$t0 $t1 ${best:-1e9}" | awk '{d = $2 - $1; print (d < $3) ? d : $3}')
  done
  echo "$best"
}
mbs() { echo "$bytes $1" | awk '{printf "%.0f", $1 / $2 / 1e6}'; }
ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }

gnu_wc=$(best_of env LC_ALL=C.UTF-8 wc -lwmc "$text")
gnu_l=$(best_of wc -l "$text")
gnu_sha=$(best_of sha256sum "$text")
# openssl prints k (1000 bytes) per second for 16 KiB blocks on one core.
openssl_mbs=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null |
  awk '/^sha256/ {sub("k", "", $2); printf "%.0f", $2 / 1000}')

ours_wc=$($run wc "$text" "$REPS")
ours_l=$($run lines "$text" "$REPS")
ours_sha=$($run sha256 "$text" "$REPS")
ours_stat=$($run stat "$text" "$REPS")

echo "file: $text, $bytes bytes, cached; best of $REPS; $(nproc) cores"
printf '%-22s %8s MB/s   %-32s %8s MB/s   %s\n' \
  "p2p wc (l,w,m,c)" "$(mbs "$ours_wc")" "LC_ALL=C.UTF-8 wc -lwmc" "$(mbs "$gnu_wc")" "x$(ratio "$gnu_wc" "$ours_wc")"
printf '%-22s %8s MB/s   %-32s %8s MB/s   %s\n' \
  "p2p wc, lines only" "$(mbs "$ours_l")" "wc -l" "$(mbs "$gnu_l")" "x$(ratio "$gnu_l" "$ours_l")"
printf '%-22s %8s MB/s   %-32s %8s MB/s   %s\n' \
  "p2p sha256" "$(mbs "$ours_sha")" "sha256sum" "$(mbs "$gnu_sha")" "x$(ratio "$gnu_sha" "$ours_sha")"
printf '%-22s %8s MB/s   %-32s %8s MB/s   %s\n' \
  "p2p sha256" "$(mbs "$ours_sha")" "openssl speed -evp sha256 16K" "$openssl_mbs" \
  "$(echo "$(mbs "$ours_sha") $openssl_mbs" | awk '{printf "%.0f%%", 100 * $1 / $2}')"
printf '%-22s %8s MB/s   %-32s %8s MB/s   %s\n' \
  "p2p stat (wc+sha256)" "$(mbs "$ours_stat")" "p2p sha256 alone" "$(mbs "$ours_sha")" \
  "$(echo "$(mbs "$ours_stat") $(mbs "$ours_sha")" | awk '{printf "%.0f%%", 100 * $1 / $2}')"
