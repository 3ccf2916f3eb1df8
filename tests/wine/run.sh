#!/usr/bin/env bash
# The Wine end-to-end test of the real driver image. ksalloc.sys and ksprobe.sys (both
# cross-built by `cargo xtask pe`) run as kernel services in ONE service group, so Wine
# hosts them in one winedevice.exe and ksprobe can reach ksalloc's device. Two clients:
#
# - ksclient.exe (ksclient.c, mingw-w64): a user-mode KS client of the filter: property
#   and bad-input checks through NtDeviceIoControlFile;
# - ksprobe-run.exe (crates/ksprobe-run, cross-built for x86_64-pc-windows-gnu): asks
#   ksprobe to run every scenario of ksprobe-scenarios from kernel mode: filter, pins,
#   allocators, the function table, pending/cancelled ALLOCs, FREEFRAME events, close
#   with frames out. Wine cannot route a relative create to a driver, so ksprobe's
#   cross-build opens pins and allocators through its in-process stand-in for the I/O
#   manager (crates/ksprobe/src/standin.rs says what it does not reproduce).
# - sehprobe.sys (sehprobe.c, mingw-w64): a kernel client in the same host that sends a
#   user-mode requestor's METHOD_NEITHER pointer 0x10, which Wine's user mode cannot.
#
# Prints one PASS/FAIL line per check (SKIP lines are not checks) and ends with
# `N passed, M failed`; on a failure it also shows the drivers' debug output (DbgPrint
# and Wine's errors, WINEDEBUG=+debugstr of the driver host). Exit status: 0 when every
# check passed.
#
# Usage: tests/wine/run.sh [ksalloc.sys [ksprobe.sys [ksprobe-run.exe]]]
#   (defaults: target/pe/ksalloc.sys, target/pe/ksprobe.sys and
#   target/wingnu/x86_64-pc-windows-gnu/release/ksprobe-run.exe, built here if missing)
# Needs: wine (Debian's wine + wine64), mingw-w64, rustup's x86_64-pc-windows-gnu target.
# Uses a private prefix under target/wine and only ever kills that prefix's wineserver.
#
# What it cannot say: Wine runs drivers in a user process and emulates cr8 as 0, so
# nothing here says anything about IRQL (the model checks that).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ksalloc_sys=${1:-$root/target/pe/ksalloc.sys}
ksprobe_sys=${2:-$root/target/pe/ksprobe.sys}
runner=${3:-$root/target/wingnu/x86_64-pc-windows-gnu/release/ksprobe-run.exe}
work=$root/target/wine
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# Both services in this group share one winedevice.exe (reference/linux-pe-wine.md).
group=ksalloc_test
mkdir -p "$work"
start_time=$(date +%s.%N)

x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o "$work/ksclient.exe" "$root/tests/wine/ksclient.c" -lntdll
# The kernel-mode client for the SEH check user mode cannot make under Wine (sehprobe.c).
x86_64-w64-mingw32-gcc -O2 -Wall -Werror -fno-stack-protector -I/usr/share/mingw-w64/include/ddk \
    -shared -nostdlib -nostartfiles -Wl,--subsystem,native -Wl,--entry,DriverEntry \
    -o "$work/sehprobe.sys" "$root/tests/wine/sehprobe.c" -lntoskrnl
if [ ! -f "$runner" ]; then
    (cd "$root" && cargo build -q -p ksprobe-run --target x86_64-pc-windows-gnu --release --target-dir target/wingnu)
fi

# Never pipe wine's output (its background processes inherit the pipe): files only.
stop() { wineserver -k >/dev/null 2>&1 || true; }
trap stop EXIT
if [ ! -d "$WINEPREFIX/drive_c" ]; then
    timeout 300 wine wineboot -i >"$work/wineboot.log" 2>&1 </dev/null
fi
# No server left from an earlier step, so the one started here is persistent.
wineserver -k >/dev/null 2>&1 || true
wineserver -w >/dev/null 2>&1 || true
wineserver -p >/dev/null 2>&1 </dev/null &
sleep 1
# The first wine process starts services.exe and through it the driver host: they
# inherit its environment and its stderr, so the drivers' DbgPrint lands in drivers.log.
WINEDEBUG=-all,err+all,+debugstr wine sc query ksalloc >"$work/drivers.log" 2>&1 </dev/null || true

mkdir -p "$WINEPREFIX/drive_c/drv"
: >"$work/sc.log"
for name in ksprobe ksalloc; do
    wine sc stop "$name" >>"$work/sc.log" 2>&1 </dev/null || true
    wine sc delete "$name" >>"$work/sc.log" 2>&1 </dev/null || true
done
cp "$ksalloc_sys" "$WINEPREFIX/drive_c/drv/ksalloc.sys"
cp "$ksprobe_sys" "$WINEPREFIX/drive_c/drv/ksprobe.sys"
for name in ksalloc ksprobe; do
    wine sc create "$name" type= kernel start= demand group= "$group" 'binPath=' "C:\\drv\\$name.sys" \
        >>"$work/sc.log" 2>&1 </dev/null
done
# No PnP under Wine: ask DriverEntry for the named test device (src/legacy.rs); and no
# relative creates: ask ksprobe for its in-process stand-in (crates/ksprobe/src/standin.rs).
wine reg add 'HKLM\System\CurrentControlSet\Services\ksalloc' /v TestDevice /t REG_DWORD /d 1 /f >>"$work/sc.log" 2>&1 </dev/null
wine reg add 'HKLM\System\CurrentControlSet\Services\ksprobe' /v StandIn /t REG_DWORD /d 1 /f >>"$work/sc.log" 2>&1 </dev/null

# On a fresh prefix the service manager can miss a service created a moment ago
# (error 1060): retry until the driver reports RUNNING. ksalloc first: ksprobe looks
# for its device when a run starts, not at load, but the order keeps the log readable.
start_service() {
    local name=$1
    for _ in $(seq 1 20); do
        wine sc start "$name" >>"$work/sc.log" 2>&1 </dev/null || true
        wine sc query "$name" >"$work/query.log" 2>&1 </dev/null || true
        if grep -q RUNNING "$work/query.log"; then
            return 0
        fi
        sleep 1
    done
    echo "$name.sys did not start under Wine; see $work/sc.log and $work/drivers.log" >&2
    tail -n 40 "$work/drivers.log" >&2 || true
    return 1
}
start_service ksalloc
start_service ksprobe

ksclient_status=0
timeout 120 wine "$work/ksclient.exe" >"$work/ksclient.log" 2>&1 </dev/null || ksclient_status=$?
runner_status=0
timeout 300 wine "$runner" >"$work/ksprobe-run.log" 2>&1 </dev/null || runner_status=$?

# ksalloc's SEH capture against a user-mode requestor's METHOD_NEITHER pointer 0x10, sent
# from kernel mode by sehprobe.sys in the same driver host (its DriverEntry records the
# statuses in its service key and fails unless they are right).
cp "$work/sehprobe.sys" "$WINEPREFIX/drive_c/drv/sehprobe.sys"
key='HKLM\System\CurrentControlSet\Services\kssehprobe'
wine sc stop kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
wine sc delete kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
wine sc create kssehprobe type= kernel start= demand group= "$group" 'binPath=' 'C:\drv\sehprobe.sys' >>"$work/sc.log" 2>&1 </dev/null
wine sc start kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
value() {
    wine reg query "$key" /v "$1" >"$work/reg.log" 2>&1 </dev/null || true
    local v
    v=$(tr -d '\r' <"$work/reg.log" | awk -v n="$1" '$1 == n { print $3 }')
    printf '0x%08X' "${v:-0xFFFFFFFF}"
}
seh_check() {
    local got verdict=FAIL
    got=$(value "$2")
    [ "$got" = "$3" ] && verdict=PASS
    printf '%s sehprobe: %s: status %s (want %s)\n' "$verdict" "$1" "$got" "$3"
}
{
    seh_check "kernel client: METHOD_NEITHER input at user 0x10" BadPointer 0xC0000005
    seh_check "kernel client: still serving after it" StillServing 0x00000000
} >"$work/seh.log"
for name in kssehprobe ksprobe ksalloc; do
    wine sc stop "$name" >>"$work/sc.log" 2>&1 </dev/null || true
done
# Windows programs end their lines with CRLF.
sed -i 's/\r$//' "$work/ksclient.log" "$work/ksprobe-run.log"

# One line per check: ksclient's as they are, ksprobe-run's table rows as
# "PASS|FAIL ksprobe <scenario> (time details)" and the requests bad_requests sent
# (its "  case PASS|FAIL <name>" lines) as "PASS|FAIL ksprobe request: <name>".
{
    grep -E '^(PASS|FAIL|SKIP) ' "$work/ksclient.log" || true
    awk '$1 == "case" && ($2 == "PASS" || $2 == "FAIL") {
        verdict = $2; $1 = ""; $2 = ""; sub(/^ +/, "")
        print verdict " ksprobe request: " $0
        next
    }
    $2 == "PASS" || $2 == "FAIL" {
        name = $1; verdict = $2; $1 = ""; $2 = ""; sub(/^ +/, "")
        print verdict " ksprobe " name " (" $0 ")"
    }' "$work/ksprobe-run.log"
    cat "$work/seh.log"
} >"$work/checks.log"
cat "$work/checks.log"
passed=$(grep -c '^PASS ' "$work/checks.log" || true)
failed=$(grep -c '^FAIL ' "$work/checks.log" || true)
# A client that ended without reporting every check is a failure too.
if ! grep -qE '^[0-9]+ failures$' "$work/ksclient.log"; then
    echo "FAIL ksclient ended early (exit $ksclient_status); log: $work/ksclient.log"
    failed=$((failed + 1))
fi
if [ "$runner_status" -ne 0 ] && ! grep -q '^FAIL ksprobe ' "$work/checks.log"; then
    echo "FAIL ksprobe-run exited $runner_status without a failing scenario:"
    sed 's/^/  /' "$work/ksprobe-run.log"
    failed=$((failed + 1))
fi
if [ "$passed" -eq 0 ]; then
    echo "FAIL no check passed"
    failed=$((failed + 1))
fi
if [ "$failed" -ne 0 ]; then
    echo "== the drivers' debug output ($work/drivers.log, last 60 lines):"
    tail -n 60 "$work/drivers.log" | sed 's/^/  /'
fi
grep -E '^timings|samples' "$work/ksprobe-run.log" | sed 's/^/  /' || true
awk -v s="$start_time" -v e="$(date +%s.%N)" 'BEGIN { printf "wall time %.1f s\n", e - s }'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
