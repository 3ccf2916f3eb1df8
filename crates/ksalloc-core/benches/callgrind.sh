#!/usr/bin/env bash
# Instructions per allocate+free pair for every contender of benches/alloc_free.rs,
# counted by valgrind's callgrind (deterministic, unlike wall time on a shared machine).
#
# Each contender runs N and 2N pairs in examples/callgrind_pair.rs; setup is identical in
# both runs, so (Ir(2N) - Ir(N)) / N is the cost of one pair, setup cancelled.
#
# usage: crates/ksalloc-core/benches/callgrind.sh [contender...]
#   FRAMES="2 64 4096 65536"  frame counts to run at (default: all four)
#   N=100000                  pairs in the short run (the long run does 2N)
#   CARGO_TARGET_DIR          honoured, as cargo does
# needs: valgrind (Debian/Ubuntu: apt-get install -y valgrind)
# prints: a markdown table on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
frames_list=${FRAMES:-2 64 4096 65536}
n=${N:-100000}

command -v valgrind >/dev/null || {
    echo "callgrind.sh: valgrind not found (apt-get install -y valgrind)" >&2
    exit 1
}

(cd "$root" && cargo build --quiet --release -p ksalloc-core --example callgrind_pair)
bin=$target/release/examples/callgrind_pair

if [ $# -gt 0 ]; then
    contenders=("$@")
else
    mapfile -t contenders < <("$bin" --list)
fi

# Total instructions callgrind collected for one run.
ir() {
    local out
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1) || {
        echo "callgrind.sh: run failed: $*" >&2
        echo "$out" >&2
        exit 1
    }
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' <<<"$out"
}

echo "| contender | frames | Ir($n pairs) | Ir($((2 * n)) pairs) | instructions/pair |"
echo "|---|---:|---:|---:|---:|"
for contender in "${contenders[@]}"; do
    for frames in $frames_list; do
        one=$(ir "$contender" "$n" "$frames")
        two=$(ir "$contender" "$((2 * n))" "$frames")
        awk -v c="$contender" -v f="$frames" -v a="$one" -v b="$two" -v n="$n" \
            'BEGIN { printf "| %s | %d | %d | %d | %.2f |\n", c, f, a, b, (b - a) / n }'
    done
done
