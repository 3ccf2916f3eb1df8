//! `ProbeClient::run_workers` in the kernel: one system thread per worker, each joined
//! by waiting on its thread object.
//!
//! Each thread gets a [`Slot`] (boxed, so it does not move) holding the work and a
//! result cell; [`run`] starts every thread (`PsCreateSystemThread`), references its
//! thread object (`ObReferenceObjectByHandle`, KernelMode, no type check: the handle
//! is our own, fresh), closes the handle, then waits for each object
//! (`KeWaitForSingleObject`: a thread object is signalled when the thread ends, MS page
//! "KeWaitForSingleObject function (wdm.h)") before it reads any result or frees a slot.
//! Should a reference fail, the slot's `done` flag is polled instead (a thread's last
//! touch of its slot), so no slot is ever freed under a running thread.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use ks_abi::NtStatus;
use ksprobe_scenarios::client::Work;
use ksprobe_scenarios::Failure;

use crate::nt;

/// One worker's start block.
struct Slot<'a> {
    work: &'a Work<'a>,
    index: u32,
    /// Written once by the worker before it sets `done`; read by [`run`] after the
    /// thread ended.
    result: UnsafeCell<Option<Result<(), Failure>>>,
    /// Set (Release) by the worker after writing `result`; its last access to the slot.
    done: AtomicBool,
}

/// A worker system thread: runs its work, leaves the result, ends. PASSIVE_LEVEL.
unsafe extern "C" fn worker_main(context: *mut c_void) {
    {
        // SAFETY: `context` is a `Slot` that `run` keeps alive until this thread has
        // ended (or, failing a thread reference, until `done` is set below, after which
        // this thread no longer touches it).
        let slot = unsafe { &*context.cast::<Slot<'_>>() };
        let result = (slot.work)(slot.index);
        // SAFETY: only this thread writes `result`, and `run` reads it only after
        // seeing the thread end or `done` set.
        unsafe { *slot.result.get() = Some(result) };
        // Release: the result is written before `run` can see `done` (Acquire).
        slot.done.store(true, Ordering::Release);
    }
    // SAFETY: a system thread ends itself this way, at PASSIVE_LEVEL.
    let _ = unsafe { nt::PsTerminateSystemThread(nt::STATUS_SUCCESS) };
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

/// Offers the processor to another ready thread: `KeDelayExecutionThread` with a zero
/// interval (what `Sleep(0)` does through `NtDelayExecution`; ReactOS and Wine treat a
/// zero delay as a yield too). PASSIVE_LEVEL.
pub fn yield_now() {
    sleep_ms(0);
}

/// Runs `work(0..workers)` on as many system threads at once and waits for all of
/// them. PASSIVE_LEVEL.
///
/// # Errors
/// A thread that could not be started, else the first failing worker's failure.
pub fn run(workers: u32, work: &Work<'_>) -> Result<(), Failure> {
    let slots: Vec<Box<Slot<'_>>> = (0..workers)
        .map(|index| {
            Box::new(Slot {
                work,
                index,
                result: UnsafeCell::new(None),
                done: AtomicBool::new(false),
            })
        })
        .collect();
    // Per started slot: its referenced thread object, or null if the reference failed.
    let mut threads: Vec<(&Slot<'_>, nt::PVOID)> = Vec::with_capacity(slots.len());
    let mut started = Ok(());
    for slot in &slots {
        let mut handle: nt::HANDLE = null_mut();
        let context: *const Slot<'_> = &raw const **slot;
        // SAFETY: PASSIVE_LEVEL; a system thread running `worker_main` on `slot`, which
        // stays alive until the thread has ended (waited for below).
        let status = unsafe {
            nt::PsCreateSystemThread(
                &raw mut handle,
                nt::THREAD_ALL_ACCESS,
                null_mut(),
                null_mut(),
                null_mut(),
                Some(worker_main),
                context.cast_mut().cast(),
            )
        };
        if !nt::nt_success(status) {
            started = Err(Failure::status(
                "PsCreateSystemThread failed (worker)",
                NtStatus(status),
            )
            .with_values(u64::from(slot.index), 0));
            break;
        }
        let mut thread: nt::PVOID = null_mut();
        // SAFETY: the kernel handle PsCreateSystemThread just returned; KernelMode skips
        // the access check, a NULL type skips the type check (PsThreadType is a data
        // export, which the image does not import).
        let status = unsafe {
            nt::ObReferenceObjectByHandle(
                handle,
                0,
                null_mut(),
                nt::KERNEL_MODE,
                &raw mut thread,
                null_mut(),
            )
        };
        if !nt::nt_success(status) {
            thread = null_mut();
        }
        // SAFETY: our handle, closed once; the thread runs on without it.
        unsafe { nt::close_handle(handle) };
        threads.push((slot, thread));
    }
    for &(slot, thread) in &threads {
        if thread.is_null() {
            // Acquire: pairs with the worker's Release store.
            while !slot.done.load(Ordering::Acquire) {
                sleep_ms(10);
            }
        } else {
            // SAFETY: PASSIVE_LEVEL; a referenced thread object; KernelMode,
            // non-alertable, no timeout: returns STATUS_SUCCESS when the thread ended.
            let _ = unsafe {
                nt::KeWaitForSingleObject(thread, nt::EXECUTIVE, nt::KERNEL_MODE, 0, null_mut())
            };
            // SAFETY: the reference taken above, dropped once.
            unsafe { nt::ObDereferenceObject(thread) };
        }
    }
    started?;
    threads
        .iter()
        .map(|&(slot, _)| {
            // SAFETY: the thread has ended (waited for above); nothing else writes it.
            unsafe { *slot.result.get() }
                .unwrap_or_else(|| Err(Failure::new("a worker thread ended without a result")))
        })
        .collect()
}
