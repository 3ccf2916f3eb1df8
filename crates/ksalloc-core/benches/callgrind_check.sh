#!/usr/bin/env bash
# CI check: instructions and locked read-modify-writes per allocate+free pair (callgrind,
# deterministic) must not rise above the limits below. A change that makes a hot path
# dearer fails here with the contender, the count and the limit; a change that makes it
# cheaper should lower the limit in the same commit (benches/PERFORMANCE.md has the
# table they come from).
#
# Each instruction limit is the count measured on the commit that set it plus a few
# instructions of slack for code layout across compiler versions; the counts themselves
# do not vary between runs. The locked limits are exact: issue 18's "at most one locked
# read-modify-write per pair" on the magazine path is one of them.
#
# usage: crates/ksalloc-core/benches/callgrind_check.sh
# needs: valgrind (Debian: valgrind), objdump or llvm-objdump-19. About half a minute
# after the build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# contender frames instruction-limit locked-limit  (bench platform rows unless model-*)
limits=(
    "ksalloc-magazine 64 100 1"
    "ksalloc-magazine 65536 100 1"
    "ksalloc 64 176 3"
    "ksalloc-pend-handoff 64 560 16"
    "ksalloc-method-ready 64 190 3"
    "model-ksalloc-magazine 64 240 5"
)

contenders=()
for row in "${limits[@]}"; do
    read -r name _ _ <<<"$row"
    case " ${contenders[*]:-} " in *" $name "*) ;; *) contenders+=("$name") ;; esac
done

table=$(FRAMES="64 65536" N=20000 "$here/callgrind.sh" "${contenders[@]}")
echo "$table"

failed=0
for row in "${limits[@]}"; do
    read -r name frames limit locked_limit <<<"$row"
    read -r got locked < <(awk -F'|' -v c="$name" -v f="$frames" \
        '{ gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $6); gsub(/ /, "", $7) }
         $2 == c && $3 == f { print $6, $7 }' <<<"$table") || true
    if [ -z "${got:-}" ]; then
        echo "callgrind_check: no count for $name at $frames frames" >&2
        failed=1
    elif awk -v g="$got" -v l="$limit" 'BEGIN { exit !(g > l) }'; then
        echo "callgrind_check: $name at $frames frames: $got instructions per pair, limit $limit" >&2
        failed=1
    elif awk -v g="$locked" -v l="$locked_limit" 'BEGIN { exit !(g > l) }'; then
        echo "callgrind_check: $name at $frames frames: $locked locked RMWs per pair, limit $locked_limit" >&2
        failed=1
    else
        echo "callgrind_check: $name at $frames frames: $got <= $limit instructions, $locked <= $locked_limit locked"
    fi
done
exit "$failed"
