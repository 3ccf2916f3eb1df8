#!/usr/bin/env bash
# Instructions per allocate+free pair for every contender of benches/alloc_free.rs,
# counted by valgrind's callgrind (deterministic, unlike wall time on a shared machine),
# and the locked read-modify-writes among them.
#
# Each contender runs N and 2N pairs in examples/callgrind_pair.rs; setup is identical in
# both runs, so (Ir(2N) - Ir(N)) / N is the cost of one pair, setup cancelled. The
# locked column is the same difference over the executions of the benchmark binary's
# locked instructions (a `lock` prefix, or `xchg` with memory, which locks implicitly),
# found by address in its disassembly: exact, per pair. Locked instructions inside
# shared libraries (glibc's malloc, futexes) are not counted.
#
# usage: crates/ksalloc-core/benches/callgrind.sh [contender...]
#   FRAMES="2 64 4096 65536"  frame counts to run at (default: all four)
#   N=100000                  pairs in the short run (the long run does 2N)
#   CARGO_TARGET_DIR          honoured, as cargo does
# needs: valgrind (Debian/Ubuntu: apt-get install -y valgrind), llvm-objdump-19 (or objdump)
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

objdump=$(command -v llvm-objdump-19 || command -v objdump) || {
    echo "callgrind.sh: neither llvm-objdump-19 nor objdump found (apt-get install -y llvm-19)" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Addresses of the binary's locked instructions: `lock`-prefixed ones, and `xchg` with a
# memory operand (AT&T syntax: the operand in parentheses).
# (GNU objdump prints "lock cmpxchg ..." on one line; llvm-objdump prints "lock" alone at
# the instruction's address. Either way that address is the one callgrind counts.)
"$objdump" -d --no-show-raw-insn "$bin" |
    awk 'match($0, /^ *[0-9a-f]+:/) {
        a = substr($0, 1, RLENGTH - 1); gsub(/ /, "", a)
        rest = substr($0, RLENGTH + 1)
        if (rest ~ /^[ \t]*lock([ \t]|$)/ || rest ~ /^[ \t]*xchg[a-z]*[ \t].*\(/) print "0x" a }' \
    >"$tmp/locked"
binpath=$(realpath "$bin")

# "instructions locked" callgrind collected for one run.
ir() {
    local out
    out=$(valgrind --tool=callgrind --dump-instr=yes --dump-line=no --compress-pos=no \
        --compress-strings=no --callgrind-out-file="$tmp/out" "$bin" "$@" 2>&1) || {
        echo "callgrind.sh: run failed: $*" >&2
        echo "$out" >&2
        exit 1
    }
    local total locked
    total=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' <<<"$out")
    # Cost lines are "address count" under the current object (ob=); the line after a
    # calls= line is a call's inclusive cost, not an instruction's.
    locked=$(awk -v bin="$binpath" '
        FNR == NR { lock[$1] = 1; next }
        /^ob=/ { ob = substr($0, 4); next }
        /^calls=/ { skip = 1; next }
        /^0x/ { if (skip) { skip = 0; next } if (ob == bin && ($1 in lock)) n += $2 }
        END { print n + 0 }' "$tmp/locked" "$tmp/out")
    echo "$total $locked"
}

echo "| contender | frames | Ir($n pairs) | Ir($((2 * n)) pairs) | instructions/pair | locked RMWs/pair |"
echo "|---|---:|---:|---:|---:|---:|"
for contender in "${contenders[@]}"; do
    for frames in $frames_list; do
        read -r one lone < <(ir "$contender" "$n" "$frames")
        read -r two ltwo < <(ir "$contender" "$((2 * n))" "$frames")
        awk -v c="$contender" -v f="$frames" -v a="$one" -v b="$two" -v n="$n" \
            -v la="$lone" -v lb="$ltwo" \
            'BEGIN { printf "| %s | %d | %d | %d | %.2f | %.2f |\n", c, f, a, b, (b - a) / n, (lb - la) / n }'
    done
done
