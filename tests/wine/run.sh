#!/usr/bin/env bash
# The Wine end-to-end test: ksalloc.sys (cross-built by `cargo xtask pe`) runs as a
# kernel service inside Wine's winedevice.exe, and a user-mode KS client (ksclient.c,
# built with mingw-w64) talks to it.
#
# Usage: tests/wine/run.sh [path/to/ksalloc.sys]   (default: target/pe/ksalloc.sys)
# Needs: wine (Debian's wine + wine64), mingw-w64. Uses a private prefix under
# target/wine and only ever kills that prefix's wineserver.
#
# What it proves and what it cannot: the real driver image loads, DriverEntry runs,
# create names, KS property/method dispatch, SEH capture of user buffers and IRP
# completion work against Wine's ntoskrnl. Wine runs drivers in a user process and
# emulates cr8 as 0, so nothing here says anything about IRQL: the model checks that.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
sys=${1:-$root/target/pe/ksalloc.sys}
work=$root/target/wine
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
mkdir -p "$work"

x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o "$work/ksclient.exe" "$root/tests/wine/ksclient.c" -lntdll
# The kernel-mode client for the SEH check user mode cannot make under Wine (sehprobe.c).
x86_64-w64-mingw32-gcc -O2 -Wall -Werror -fno-stack-protector -I/usr/share/mingw-w64/include/ddk \
    -shared -nostdlib -nostartfiles -Wl,--subsystem,native -Wl,--entry,DriverEntry \
    -o "$work/sehprobe.sys" "$root/tests/wine/sehprobe.c" -lntoskrnl

# Never pipe wine's output (its background processes inherit the pipe): files only.
stop() { wineserver -k >/dev/null 2>&1 || true; }
trap stop EXIT
if [ ! -d "$WINEPREFIX/drive_c" ]; then
    timeout 300 wine wineboot -i >"$work/wineboot.log" 2>&1 </dev/null
fi
wineserver -p >/dev/null 2>&1 </dev/null &
sleep 1
mkdir -p "$WINEPREFIX/drive_c/drv"
cp "$sys" "$WINEPREFIX/drive_c/drv/ksalloc.sys"
wine sc stop ksalloc >"$work/sc.log" 2>&1 </dev/null || true
wine sc delete ksalloc >>"$work/sc.log" 2>&1 </dev/null || true
# One service group: Wine runs drivers of the same group in one winedevice.exe, where
# sehprobe.sys can reach ksalloc's device.
wine sc create ksalloc type= kernel start= demand group= ksalloctest 'binPath=' 'C:\drv\ksalloc.sys' >>"$work/sc.log" 2>&1 </dev/null
# No PnP under Wine: ask DriverEntry for the named test device (src/legacy.rs).
wine reg add 'HKLM\System\CurrentControlSet\Services\ksalloc' /v TestDevice /t REG_DWORD /d 1 /f >>"$work/sc.log" 2>&1 </dev/null
# On a fresh prefix the service manager can miss a service created a moment ago
# (error 1060): retry until the driver reports RUNNING.
running=""
for _ in $(seq 1 20); do
    wine sc start ksalloc >>"$work/sc.log" 2>&1 </dev/null || true
    wine sc query ksalloc >"$work/query.log" 2>&1 </dev/null || true
    if grep -q RUNNING "$work/query.log"; then
        running=yes
        break
    fi
    sleep 1
done
if [ -z "$running" ]; then
    echo "ksalloc.sys did not start under Wine; see $work/sc.log" >&2
    exit 1
fi
status=0
timeout 120 wine "$work/ksclient.exe" >"$work/ksclient.log" 2>&1 </dev/null || status=$?
grep -E '^(PASS|FAIL|SKIP)|failures' "$work/ksclient.log" || cat "$work/ksclient.log"

# ksalloc's SEH capture against a user-mode requestor's METHOD_NEITHER pointer 0x10, sent
# from kernel mode by sehprobe.sys in the same driver host (its DriverEntry records the
# statuses in its service key and fails unless they are right).
cp "$work/sehprobe.sys" "$WINEPREFIX/drive_c/drv/sehprobe.sys"
key='HKLM\System\CurrentControlSet\Services\kssehprobe'
wine sc stop kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
wine sc delete kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
wine sc create kssehprobe type= kernel start= demand group= ksalloctest 'binPath=' 'C:\drv\sehprobe.sys' >>"$work/sc.log" 2>&1 </dev/null
wine sc start kssehprobe >>"$work/sc.log" 2>&1 </dev/null || true
value() {
    wine reg query "$key" /v "$1" >"$work/reg.log" 2>&1 </dev/null || true
    local v
    v=$(tr -d '\r' <"$work/reg.log" | awk -v n="$1" '$1 == n { print $3 }')
    printf '0x%08X' "${v:-0xFFFFFFFF}"
}
seh_check() {
    local got
    got=$(value "$2")
    if [ "$got" = "$3" ]; then
        printf 'PASS %-58s status %s (want %s)\n' "$1" "$got" "$3"
    else
        printf 'FAIL %-58s status %s (want %s)\n' "$1" "$got" "$3"
        status=1
    fi
}
seh_check "kernel client: METHOD_NEITHER input at user 0x10" BadPointer 0xC0000005
seh_check "kernel client: still serving after it" StillServing 0x00000000
wine sc stop ksalloc >>"$work/sc.log" 2>&1 </dev/null || true
exit "$status"
