#!/usr/bin/env bash
# CI check: instructions per allocate+free pair (callgrind, deterministic) must not rise
# above the limits below. A change that makes a hot path dearer fails here with the
# contender, the count and the limit; a change that makes it cheaper should lower the
# limit in the same commit (benches/PERFORMANCE.md has the table they come from).
#
# Each limit is the count measured on the commit that set it plus a few instructions of
# slack for code layout across compiler versions; the counts themselves do not vary
# between runs.
#
# usage: crates/ksalloc-core/benches/callgrind_check.sh
# needs: valgrind (Debian: valgrind). About half a minute after the build.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# contender frames limit   (bench platform rows unless named model-*)
limits=(
    "ksalloc-magazine 64 120"
    "ksalloc-magazine 65536 120"
    "ksalloc 64 215"
    "ksalloc-pend-handoff 64 600"
    "ksalloc-method-ready 64 225"
    "model-ksalloc-magazine 64 235"
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
    read -r name frames limit <<<"$row"
    got=$(awk -F'|' -v c="$name" -v f="$frames" \
        '{ gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $6) }
         $2 == c && $3 == f { print $6 }' <<<"$table")
    if [ -z "$got" ]; then
        echo "callgrind_check: no count for $name at $frames frames" >&2
        failed=1
    elif awk -v g="$got" -v l="$limit" 'BEGIN { exit !(g > l) }'; then
        echo "callgrind_check: $name at $frames frames: $got instructions per pair, limit $limit" >&2
        failed=1
    else
        echo "callgrind_check: $name at $frames frames: $got <= $limit"
    fi
done
exit "$failed"
