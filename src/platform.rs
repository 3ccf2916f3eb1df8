//! The core's `Platform` over the NT kernel.

use core::cell::UnsafeCell;
use core::ptr::NonNull;

use ks_abi::ks::{eventf, KsEventData};
use ks_abi::NtStatus;
use ksalloc_core::limits::{budget_from_mib, FrameBudget, DEFAULT_FRAME_BUDGET};
use ksalloc_core::platform::FrameMemory;
use ksalloc_core::{Irql, Platform, PoolCharge, ProcessorCall, RequestHandle, Requestor, SpinLock};

use crate::nt::{self, wide};
use crate::pool::{self, PoolArc, PoolBox};
use crate::processor_calls::ProcessorCalls;

/// The driver-wide frame budget (see `ksalloc_core::limits`).
static FRAME_BUDGET: FrameBudget = FrameBudget::new(DEFAULT_FRAME_BUDGET);

static PARAMETERS_KEY: [u16; 10] = wide(b"Parameters");
static BUDGET_VALUE: [u16; 14] = wide(b"FrameBudgetMiB");
const _: () = assert!(BUDGET_VALUE.len() == ksalloc_core::limits::BUDGET_VALUE_NAME.len());

/// Reads the REG_DWORD `FrameBudgetMiB` under the service key's `Parameters` subkey
/// into the frame budget; without it (or with 0) the default stays. DriverEntry,
/// PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
pub unsafe fn load_frame_budget(registry_path: nt::PCUNICODE_STRING) {
    // SAFETY: the caller's contract.
    let mib = unsafe { nt::service_dword(registry_path, &PARAMETERS_KEY, &BUDGET_VALUE) };
    if let Some(mib) = mib.filter(|&mib| mib != 0) {
        FRAME_BUDGET.set_limit(budget_from_mib(mib));
    }
}

/// The NT kernel. A zero-sized handle: every service is a kernel export.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kernel;

/// Frame memory: one pool block, over-allocated so the frames can start at the
/// framing's alignment.
///
/// Invariant: `block` is ours from `pool::allocate`; `base` is inside it, aligned.
pub struct Frames {
    block: NonNull<u8>,
    base: usize,
}

// SAFETY: Frames is an owned address range; the core only does arithmetic on `base`,
// and clients access frames through the pointers it hands out.
unsafe impl Send for Frames {}
// SAFETY: as above; &Frames exposes only `base`.
unsafe impl Sync for Frames {}

impl FrameMemory for Frames {
    fn base(&self) -> usize {
        self.base
    }
}

/// A `KSPIN_LOCK` guarding a `T`.
///
/// Invariant: `value` is only reached between `KeAcquireSpinLockRaiseToDpc` and
/// `KeReleaseSpinLock` on `lock`.
pub struct KernelSpinLock<T> {
    lock: UnsafeCell<nt::KSPIN_LOCK>,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises every access to `value`, so sharing the lock shares `T`
// across threads only one at a time, which `T: Send` permits.
unsafe impl<T: Send> Sync for KernelSpinLock<T> {}
// SAFETY: moving the lock moves an unlocked KSPIN_LOCK (a plain word) and the T.
unsafe impl<T: Send> Send for KernelSpinLock<T> {}

impl<T> SpinLock<T> for KernelSpinLock<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: `lock` is an initialised KSPIN_LOCK (zero); we are at <= DISPATCH_LEVEL
        // (the core's contract for every lock user).
        let old = unsafe { nt::KeAcquireSpinLockRaiseToDpc(self.lock.get()) };
        // SAFETY: the lock is held: no other reference to `value` exists.
        let result = f(unsafe { &mut *self.value.get() });
        // SAFETY: releases the lock we took, restoring the IRQL it returned.
        unsafe { nt::KeReleaseSpinLock(self.lock.get(), old) };
        result
    }
}

/// A `KEVENT` in pool (an initialised dispatcher object must not move).
pub struct KernelEvent(PoolBox<UnsafeCell<nt::KEVENT>>);

// SAFETY: KEVENTs are made to be signalled from any thread; the kernel synchronises.
unsafe impl Send for KernelEvent {}
// SAFETY: as above.
unsafe impl Sync for KernelEvent {}

/// A `KEVENT` a client named for FREEFRAME.
///
/// Invariant: with `referenced`, `event` carries one object reference (taken through
/// the client's handle), dropped in `Drop`. Without it, `event` is a kernel client's own
/// KEVENT (KSEVENTF_EVENT_OBJECT): often a bare structure in its pool with no object
/// header, so it must never be referenced or dereferenced; the KS contract makes the
/// client keep it alive until it disables the event.
pub struct ClientEvent {
    event: NonNull<nt::KEVENT>,
    referenced: bool,
}

// SAFETY: a referenced dispatcher object may be signalled from any thread.
unsafe impl Send for ClientEvent {}
// SAFETY: as above.
unsafe impl Sync for ClientEvent {}

impl Clone for ClientEvent {
    fn clone(&self) -> Self {
        if self.referenced {
            // SAFETY: we hold a reference, so the object is live; the clone takes its own.
            unsafe { nt::ObReferenceObject(self.event.as_ptr().cast()) };
        }
        Self {
            event: self.event,
            referenced: self.referenced,
        }
    }
}

impl Drop for ClientEvent {
    fn drop(&mut self) {
        if self.referenced {
            // SAFETY: releases the reference this value carries.
            unsafe { nt::ObDereferenceObject(self.event.as_ptr().cast()) };
        }
    }
}

/// A pended ALLOC IRP.
#[derive(Clone, Copy, Debug)]
pub struct Request(pub NonNull<nt::IRP>);

// SAFETY: an IRP may be completed from any thread; ownership moves with the handle.
unsafe impl Send for Request {}

impl RequestHandle for Request {
    fn key(&self) -> usize {
        self.0.as_ptr() as usize
    }
}

impl Platform for Kernel {
    type Memory = Frames;
    type Lock<T: Send> = KernelSpinLock<T>;
    type Event = KernelEvent;
    type ClientEvent = ClientEvent;
    type Request = Request;
    type ProcessorCalls = ProcessorCalls;
    type Shared<T: Send + Sync> = PoolArc<T>;

    fn current_irql(&self) -> Irql {
        // SAFETY: KeGetCurrentIrql has no preconditions.
        match unsafe { nt::KeGetCurrentIrql() } {
            0 => Irql::Passive,
            1 => Irql::Apc,
            // The core never runs above DISPATCH_LEVEL; treat anything higher as it.
            _ => Irql::Dispatch,
        }
    }

    fn alloc_nonpaged(&self, bytes: usize, align: usize, charge: PoolCharge) -> Option<Frames> {
        // Pool blocks are 16-byte aligned (page aligned from a page up): ask for the
        // slack the framing's alignment needs and align inside.
        let slack = align.saturating_sub(16);
        let block = pool::allocate_charged(bytes.checked_add(slack)?, charge)?;
        let base = (block.as_ptr() as usize).next_multiple_of(align);
        Some(Frames { block, base })
    }

    fn free_nonpaged(&self, memory: Frames) {
        // SAFETY: the block came from pool::allocate and the core frees it exactly once.
        unsafe { pool::free(memory.block) };
    }

    fn share<T: Send + Sync>(&self, value: T) -> Result<PoolArc<T>, T> {
        PoolArc::try_new(value)
    }

    fn frame_budget(&self) -> &FrameBudget {
        &FRAME_BUDGET
    }

    fn new_lock<T: Send>(&self, value: T) -> KernelSpinLock<T> {
        // KeInitializeSpinLock stores zero.
        KernelSpinLock {
            lock: UnsafeCell::new(0),
            value: UnsafeCell::new(value),
        }
    }

    fn new_event(&self) -> Option<KernelEvent> {
        // SAFETY: KEVENT is plain data; zero is a valid bit pattern before init.
        let storage = PoolBox::try_new(UnsafeCell::new(unsafe {
            core::mem::zeroed::<nt::KEVENT>()
        }))
        .ok()?;
        // SAFETY: the event lives at a stable pool address from here on.
        unsafe { nt::KeInitializeEvent(storage.get(), nt::NOTIFICATION_EVENT as _, 0) };
        Some(KernelEvent(storage))
    }

    fn set_event(&self, event: &KernelEvent) {
        // SAFETY: an initialised KEVENT; Wait = FALSE is legal at <= DISPATCH_LEVEL.
        unsafe { nt::KeSetEvent(event.0.get(), 0, 0) };
    }

    fn signal_client(&self, event: &ClientEvent) {
        // SAFETY: a referenced KEVENT; Wait = FALSE is legal at <= DISPATCH_LEVEL.
        unsafe { nt::KeSetEvent(event.event.as_ptr(), 0, 0) };
    }

    fn client_event_key(&self, event: &ClientEvent) -> usize {
        event.event.as_ptr() as usize
    }

    fn arm_cancel(&self, request: &Request) -> bool {
        let irp = request.0.as_ptr();
        // SAFETY: the IRP is live and ours until completed; marking it pending before it
        // becomes visible to a completer is what makes completion from another thread
        // legal.
        unsafe { nt::IoMarkIrpPending(irp) };
        // SAFETY: as above.
        unsafe { nt::IoSetCancelRoutine(irp, Some(crate::dispatch::cancel_routine)) };
        // SAFETY: reading the IRP's Cancel flag after publishing the routine (the
        // exchange above is a full barrier), as the WDM pattern requires.
        let cancelled = unsafe { (*irp).Cancel } != 0;
        // Cancelled before we armed: take the routine back if IoCancelIrp has not. If it
        // has, its routine will run and must find the IRP queued, so report "armed".
        // SAFETY: as above.
        !(cancelled && unsafe { nt::IoSetCancelRoutine(irp, None) }.is_some())
    }

    fn disarm_cancel(&self, request: &Request) -> bool {
        // SAFETY: the IRP is live while queued.
        unsafe { nt::IoSetCancelRoutine(request.0.as_ptr(), None) }.is_some()
    }

    fn complete_alloc(&self, request: Request, result: Result<usize, NtStatus>) {
        let irp = request.0.as_ptr();
        let information = match result {
            Ok(frame) => {
                // SAFETY: dispatch set up the output for every pended ALLOC (see
                // `dispatch::alloc_output`): a kernel address of at least 8 bytes that
                // stays valid until completion, in any thread context.
                unsafe {
                    crate::dispatch::alloc_output(irp)
                        .cast::<usize>()
                        .write_unaligned(frame)
                };
                8
            }
            Err(_) => 0,
        };
        let status = result.err().unwrap_or(NtStatus::SUCCESS);
        // The remove lock dispatch took for this IRP, held while it was pending: taken
        // out of the IRP before completion frees it, released after ("IoReleaseRemoveLock":
        // a driver releases it when it has completed the I/O it acquired it for).
        // SAFETY: a pended ALLOC, which dispatch stashed a guard in (see there).
        let remove_lock = unsafe { crate::dispatch::take_remove_lock(irp) };
        // SAFETY: the core hands each pended request to exactly one completer.
        unsafe { nt::IoCompleteRequest(irp, status.0, information) };
        drop(remove_lock);
    }

    fn function_table(&self) -> [usize; 2] {
        crate::table::addresses()
    }

    fn processor_count(&self) -> u32 {
        // The maximum, not the active count: processors added later get indices below it.
        // SAFETY: KeQueryMaximumProcessorCountEx takes any group number, at any IRQL.
        unsafe { nt::KeQueryMaximumProcessorCountEx(nt::ALL_PROCESSOR_GROUPS) }
    }

    fn new_processor_calls<T: ProcessorCall>(&self, processors: usize) -> Option<ProcessorCalls> {
        ProcessorCalls::new::<T>(processors)
    }

    unsafe fn queue_processor_call<T: ProcessorCall>(
        &self,
        calls: &ProcessorCalls,
        processor: usize,
        target: &T,
    ) -> bool {
        // SAFETY: the trait's contract, which is `queue`'s: `target` outlives the call
        // or the flush (the type is checked there).
        unsafe { calls.queue(processor, target) }
    }

    fn flush_processor_calls(&self, calls: &ProcessorCalls) {
        calls.flush();
    }

    fn with_processor<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        // A function-table caller is usually at DISPATCH_LEVEL already (a DPC, or a
        // spin lock held): then there is nothing to raise or lower, and one CR8 read
        // replaces KfRaiseIrql's read and write and KeLowerIrql's write.
        // SAFETY: KeGetCurrentIrql has no preconditions.
        if unsafe { nt::KeGetCurrentIrql() } >= nt::DISPATCH_LEVEL {
            // SAFETY: any IRQL; the PROCESSOR_NUMBER output is optional (null). At
            // DISPATCH_LEVEL the thread stays on this processor, alone, until we return.
            let index = unsafe { nt::KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) };
            return f(index as usize);
        }
        // SAFETY: below DISPATCH_LEVEL (checked above), so this raises, never lowers
        // (which KfRaiseIrql forbids).
        let old = unsafe { nt::KfRaiseIrql(nt::DISPATCH_LEVEL) };
        // At DISPATCH_LEVEL this thread cannot be preempted or moved, so the index stays
        // this processor's, and no other thread runs here, until KeLowerIrql.
        // SAFETY: any IRQL; the PROCESSOR_NUMBER output is optional (null).
        let index = unsafe { nt::KeGetCurrentProcessorNumberEx(core::ptr::null_mut()) };
        let result = f(index as usize);
        // SAFETY: restores exactly the IRQL KfRaiseIrql returned, on the same processor.
        unsafe { nt::KeLowerIrql(old) };
        result
    }

    fn reference_client_event(
        &self,
        data: &KsEventData,
        requestor: Requestor,
    ) -> Result<ClientEvent, NtStatus> {
        let (event, referenced): (*mut nt::KEVENT, bool) = match (data.notification_type, requestor)
        {
            (eventf::EVENT_HANDLE, _) => {
                let mode = match requestor {
                    Requestor::Kernel => nt::KERNEL_MODE,
                    Requestor::User => 1,
                };
                let mut object: nt::PVOID = core::ptr::null_mut();
                // SAFETY: PASSIVE_LEVEL (event enable/disable dispatch); the handle is
                // checked against the requestor's handle table, type and access.
                let status = unsafe {
                    nt::ObReferenceObjectByHandle(
                        data.object as nt::HANDLE,
                        nt::EVENT_MODIFY_STATE,
                        nt::event_object_type(),
                        mode,
                        &raw mut object,
                        core::ptr::null_mut(),
                    )
                };
                if status != NtStatus::SUCCESS.0 {
                    return Err(NtStatus::INVALID_HANDLE);
                }
                (object.cast(), true)
            }
            (eventf::EVENT_OBJECT, Requestor::Kernel) => {
                let event = data.object as *mut nt::KEVENT;
                if event.is_null() {
                    return Err(NtStatus::INVALID_PARAMETER);
                }
                // A kernel requestor vouches for its KEVENT (the KS contract for
                // KSEVENTF_EVENT_OBJECT); it may have no object header: no reference.
                (event, false)
            }
            _ => return Err(NtStatus::INVALID_PARAMETER),
        };
        NonNull::new(event)
            .map(|event| ClientEvent { event, referenced })
            .ok_or(NtStatus::INVALID_HANDLE)
    }
}
