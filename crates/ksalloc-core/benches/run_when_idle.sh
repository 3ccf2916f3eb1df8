#!/usr/bin/env bash
# Runs benches/alloc_free.rs one contender at a time, each only when the machine is idle,
# and re-runs a contender's two-thread cases until its threads were preempted for less
# than MAX_WAIT percent of the timed time (the bench prints that on its "contended"
# lines, with the median over the samples that were hardly preempted). On a shared
# two-core machine that is the difference between measuring contention and measuring
# the scheduler.
#
# usage: crates/ksalloc-core/benches/run_when_idle.sh
#   IDLE_BUSY=10   start a two-thread run only when the CPUs were at most this % busy
#                  over 2 s (summed over all CPUs)
#   IDLE_BUSY_1T=40  the same for one-thread and hand-off runs (one CPU free is enough)
#   PHASES="1t handoff 2t"  which groups to run
#   CONTENDERS="ksalloc ..."  which contenders (default: all)
#   MAX_WAIT=5     accept a two-thread run when every case's run-queue wait is below this %
#   TRIES=8        give up on a contender after this many two-thread runs (keeps the last)
#   BENCH_ARGS     criterion options (default: --warm-up-time 1 --measurement-time 2
#                  --sample-size 20)
# Results land in $CARGO_TARGET_DIR/criterion; the log, with every "contended" line,
# goes to stdout. Read both with: benches/report.py CRITERION_DIR --log LOG.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
idle_busy=${IDLE_BUSY:-10}
idle_busy_1t=${IDLE_BUSY_1T:-40}
phases=${PHASES:-1t handoff 2t}
max_wait=${MAX_WAIT:-5}
tries=${TRIES:-8}
read -r -a bench_args <<<"${BENCH_ARGS:---warm-up-time 1 --measurement-time 2 --sample-size 20}"

busy_percent() {
    local a b c d e f g h t1 i1 t2 i2
    read -r _ a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
    sleep 2
    read -r _ a b c d e f g h _ </proc/stat
    t2=$((a + b + c + d + e + f + g + h)) i2=$((d + e))
    echo $((100 - 100 * (i2 - i1) / (t2 - t1)))
}

wait_idle() {
    local busy
    while busy=$(busy_percent) && [ "$busy" -gt "$1" ]; do
        sleep 3
    done
}

bench() {
    (cd "$root" && cargo bench -q -p ksalloc-core --bench alloc_free -- "${bench_args[@]}" "$1")
}

(cd "$root" && cargo bench -q -p ksalloc-core --bench alloc_free --no-run)

read -r -a contenders <<<"${CONTENDERS:-ksalloc-magazine ksalloc ksalloc-armed freelist \
freelist+rundown freelist+rundown+stats tagged-stack spinlock-list mutex-vec arrayqueue heap \
local-stack model-with-processor-only}"
has_phase() { [[ " $phases " == *" $1 "* ]]; }

if has_phase 1t; then
    for name in "${contenders[@]}"; do
        filter="^pair_1thread/${name//+/\\+}/"
        wait_idle "$idle_busy_1t"
        echo "== $(date +%T) $filter"
        bench "$filter"
    done
fi
if has_phase handoff; then
    wait_idle "$idle_busy_1t"
    echo "== $(date +%T) ^handoff/"
    bench "^handoff/"
fi

if has_phase 2t; then
    for name in "${contenders[@]}"; do
        filter="^pair_2threads/${name//+/\\+}/"
        for try in $(seq 1 "$tries"); do
            wait_idle "$idle_busy"
            echo "== $(date +%T) $filter try $try"
            out=$(bench "$filter")
            echo "$out"
            worst=$(sed -n 's/^contended .* wait \([0-9.]*\)% .*$/\1/p' <<<"$out" | sort -g | tail -1)
            if awk -v w="${worst:-100}" -v m="$max_wait" 'BEGIN { exit !(w < m) }'; then
                break
            fi
            echo "== worst run-queue wait ${worst:-?}%: again"
        done
    done
fi
