//! Boot mode: run every scenario once, with no user mode, and report through DbgPrint.
//!
//! For kernels where no runner can be started (ReactOS under QEMU: `cargo xtask reactos`),
//! the service key's DWORD value `BootRun` = 1 makes DriverEntry start a system thread
//! that waits for ksalloc's filter, runs every scenario through the same kernel client the
//! IOCTL path uses (ZwCreateFile on the filter, pins and allocators relative to their
//! parents: the real I/O manager's path), prints one `ksprobe: PASS|FAIL ...` line per
//! scenario and then `ksprobe: N passed, M failed`, and ends. The INF never sets
//! `BootRun`; without it ksprobe behaves as before.
//!
//! `SkipFaultingCases` = 1 (set by `cargo xtask reactos`) makes `bad_requests` report its
//! bad-address cases as unsent instead of sending them. Found 2026-12-03: on the shared
//! ReactOS amd64 image any exception raised inside ksalloc.sys's `__try` (a page fault on
//! user address 0x10, or ProbeForRead's STATUS_ACCESS_VIOLATION for a kernel address)
//! sends ReactOS's exception dispatcher into recursion with every frame in ntoskrnl: a
//! silent reset (no bugcheck on COM1) for the page fault, kdb on an embedded INT3 for
//! the raise. The same unit passes those cases under Wine 8 (tests/wine/run.sh), whose
//! unwinder handles the image's unwind data; Windows is expected to, but has not run it.

use alloc::string::String;
use core::ffi::c_void;
use core::ptr::null_mut;

use ks_abi::NtStatus;
use ksprobe_scenarios::report;
use ksprobe_scenarios::wire::Request;
use ksprobe_scenarios::{run_all, Config};

use crate::client::KernelClient;
use crate::nt;

static VALUE_NAME: [u16; 7] = nt::wide(b"BootRun");
static SKIP_FAULTING_NAME: [u16; 17] = nt::wide(b"SkipFaultingCases");

/// Set at DriverEntry from `SkipFaultingCases`, read by the boot thread (which the same
/// DriverEntry starts afterwards: thread creation orders the two).
static SKIP_FAULTING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// How long the thread waits for ksalloc's filter to appear (both are system-start
/// services; the loader may start ksprobe first).
const WAIT_FOR_FILTER_SECONDS: u32 = 60;

/// Whether the service key asks for boot mode. PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
unsafe fn requested(registry_path: nt::PCUNICODE_STRING) -> bool {
    // SAFETY: the caller's contract.
    unsafe { nt::service_dword(registry_path, &[], &VALUE_NAME) }.is_some_and(|v| v != 0)
}

/// Starts the boot-mode thread if the service key asks for it. PASSIVE_LEVEL.
///
/// # Safety
/// Called from DriverEntry with its registry path.
pub unsafe fn start_if_requested(registry_path: nt::PCUNICODE_STRING) -> nt::NTSTATUS {
    // SAFETY: the caller's contract.
    if !unsafe { requested(registry_path) } {
        return nt::STATUS_SUCCESS;
    }
    // SAFETY: the caller's contract.
    let skip = unsafe { nt::service_dword(registry_path, &[], &SKIP_FAULTING_NAME) };
    // Relaxed: PsCreateSystemThread below orders this store before the thread's load.
    SKIP_FAULTING.store(
        skip.is_some_and(|v| v != 0),
        core::sync::atomic::Ordering::Relaxed,
    );
    let mut thread: nt::HANDLE = null_mut();
    // SAFETY: PASSIVE_LEVEL; a system thread (no process handle) running `boot_thread`,
    // which touches no driver state that DriverUnload frees before it ends (ksprobe in
    // boot mode is never unloaded while it runs: the service has no stop path here).
    let status = unsafe {
        nt::PsCreateSystemThread(
            &raw mut thread,
            nt::THREAD_ALL_ACCESS,
            null_mut(),
            null_mut(),
            null_mut(),
            Some(boot_thread),
            null_mut(),
        )
    };
    if nt::nt_success(status) {
        // SAFETY: the handle PsCreateSystemThread returned; the thread runs on without it.
        let _ = unsafe { nt::ZwClose(thread) };
    } else {
        say("boot mode: PsCreateSystemThread failed");
    }
    status
}

/// Prints `ksprobe: <text>` on the kernel debugger (COM1 on a debug ReactOS).
fn say(text: &str) {
    let bytes = text.as_bytes();
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    // SAFETY: "%.*s" reads exactly `len` bytes of `bytes`; the format is NUL-terminated.
    unsafe { nt::DbgPrint(c"ksprobe: %.*s\n".as_ptr(), len, bytes.as_ptr()) };
}

/// Sleeps `ms` milliseconds. PASSIVE_LEVEL.
fn sleep_ms(ms: i64) {
    // Relative times are negative, in 100 ns units.
    let mut interval = nt::LARGE_INTEGER {
        QuadPart: -ms * 10_000,
    };
    // SAFETY: PASSIVE_LEVEL, kernel mode, not alertable; `interval` outlives the call.
    let _ = unsafe { nt::KeDelayExecutionThread(nt::KERNEL_MODE, 0, &raw mut interval) };
}

/// The boot-mode thread: find the filter, run, report, end.
unsafe extern "C" fn boot_thread(_context: *mut c_void) {
    let mut client = Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    for _ in 0..WAIT_FOR_FILTER_SECONDS * 2 {
        client = KernelClient::for_request(&Request::all());
        if client.is_ok() {
            break;
        }
        sleep_ms(500);
    }
    // Relaxed: see SKIP_FAULTING.
    let client = if SKIP_FAULTING.load(core::sync::atomic::Ordering::Relaxed) {
        say("bad-address cases not sent (SkipFaultingCases; see boot.rs)");
        client.map(KernelClient::without_faulting_cases)
    } else {
        client
    };
    match client {
        Ok(client) => {
            let results = run_all(&client, &Config::DEFAULT);
            for result in &results {
                say(&report::line(result));
            }
            say(&report::summary(&results));
        }
        Err(status) => {
            let mut line = String::new();
            let _ = core::fmt::write(
                &mut line,
                format_args!("FAIL find ksalloc's filter [status {:#010x}]", status.0),
            );
            say(&line);
            // The search is the one check that ran, and it failed.
            say("0 passed, 1 failed");
        }
    }
    // SAFETY: a system thread ends itself this way, at PASSIVE_LEVEL.
    let _ = unsafe { nt::PsTerminateSystemThread(nt::STATUS_SUCCESS) };
}
