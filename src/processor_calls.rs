//! The core's processor calls (`Platform::ProcessorCalls`): one `KDPC` per processor
//! index, each targeted at its processor, whose routine runs the core's
//! `ProcessorCall::run_on` there.
//!
//! A DPC runs at DISPATCH_LEVEL on the processor whose queue it is in, once that
//! processor's IRQL drops below DISPATCH_LEVEL ("Introduction to DPC Objects",
//! "Organization of DPC Queues"): never inside one of its `with_processor` sections,
//! which run at DISPATCH_LEVEL. That is the property the core relies on.
//!
//! - Storage: a pool-backed `Vec` (the global allocator is nonpaged pool), allocated
//!   fallibly and never grown, so each `KDPC` stays where `KeInitializeDpc` put it and
//!   is resident, as "KeInitializeDpc function (wdm.h)" requires.
//! - Importance: `MediumHighImportance` ("KeSetImportanceDpc function (wdm.h)",
//!   "Organization of DPC Queues"): with the default `MediumImportance` a DPC queued to
//!   *another* processor waits until that processor's queue is deep enough or its DPC
//!   rate low enough, so an idle processor could leave it for a while; MediumHigh makes
//!   the target start processing its queue at once. Not `HighImportance`: the call has
//!   no reason to jump ahead of DPCs already queued there.
//! - Target: `KeGetProcessorNumberFromIndex` + `KeSetTargetProcessorDpcEx` (wdm-nt's
//!   `set_target_processor`), before the DPC is ever queued, since a target set after
//!   queueing does not move it ("KeSetTargetProcessorDpcEx function (wdm.h)"). An index
//!   no processor has at create (the maximum count includes processors that may be
//!   added later) is targeted lazily, at its first queue, under `retarget`; while no
//!   processor has that index the DPC is never queued (an untargeted DPC would run on
//!   the queueing processor, the wrong one), and `queue` returns `false` with nothing
//!   to run: a processor that does not exist has run no `with_processor` section, so
//!   it holds no per-processor state.
//! - Type: the routine is `run_call::<T>` for the `T` the calls were created for, and
//!   `queue` checks, always (a 16-byte compare), that it is handed that same `T`: a
//!   mismatch would make the routine read one type as another in kernel mode.
//!
//! Where the kernel cannot target DPCs, or queued DPCs do not run (Wine 8), the
//! platform reports no processor index at all (wdm-nt's `optional` module), so the core
//! never creates these.

use alloc::vec::Vec;
use core::any::TypeId;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use ksalloc_core::ProcessorCall;

use crate::nt;

/// One processor's DPC.
///
/// Invariant: `dpc` was initialised by `KeInitializeDpc` in place and never moves;
/// `targeted` is set (Release) only after `KeSetTargetProcessorDpcEx` succeeded on it,
/// and `dpc` is queued only when `targeted` is set.
struct Slot {
    dpc: UnsafeCell<nt::KDPC>,
    targeted: AtomicBool,
}

/// A `KDPC` per processor index for one `ProcessorCall` type.
///
/// Invariant: every slot's DPC runs `run_call::<T>` for the `T` whose `TypeId` is
/// `call_type`; `slots` is never resized after `new`.
pub struct ProcessorCalls {
    slots: Vec<Slot>,
    call_type: TypeId,
    /// Serialises lazy targeting (`retarget`), so no two threads set one DPC's target
    /// at once and none queues it meanwhile. A zeroed `KSPIN_LOCK` is an initialised
    /// one (what KeInitializeSpinLock stores).
    retarget_lock: UnsafeCell<nt::KSPIN_LOCK>,
}

// SAFETY: a KDPC is a kernel object the DPC machinery synchronises: inserting, removing
// and running it is legal from any thread. The one other write to it,
// KeSetTargetProcessorDpcEx, happens before the slot is shared (`new`) or under
// `ProcessorCalls::retarget_lock`, and never on a queued DPC. `targeted` is atomic.
// (The KDPC's raw pointers are what make the field not Send; they are the kernel's.)
#[allow(clippy::non_send_fields_in_send_ty)]
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}
// SAFETY: the slots are Sync (above); the spin lock is a kernel lock made to be taken
// from any thread, and `retarget` only reaches it through KeAcquireSpinLockRaiseToDpc
// and KeReleaseSpinLock.
unsafe impl Sync for ProcessorCalls {}

/// The `KDEFERRED_ROUTINE` of calls for `T`: `SystemArgument1` is the `&T` that
/// `queue` was given, `SystemArgument2` the processor index.
unsafe extern "C" fn run_call<T: ProcessorCall>(
    _dpc: *mut nt::KDPC,
    _context: nt::PVOID,
    target: nt::PVOID,
    processor: nt::PVOID,
) {
    // SAFETY: `queue`'s contract: `target` is a live `T` (checked against the calls'
    // type there) until this call has run or the calls were flushed, and a flush waits
    // for a running call (KeFlushQueuedDpcs).
    let target = unsafe { &*target.cast::<T>() };
    target.run_on(processor.addr());
}

impl ProcessorCalls {
    /// `processors` DPCs running `T::run_on`, each targeted where a processor has its
    /// index. `None` when the pool is exhausted. PASSIVE_LEVEL (the core creates them
    /// at create); every routine used may run at any IRQL.
    pub fn new<T: ProcessorCall>(processors: usize) -> Option<Self> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(processors).ok()?;
        // Within the reserved capacity: no reallocation, so nothing moves after the
        // KDPCs are initialised below.
        slots.resize_with(processors, || Slot {
            // SAFETY: KDPC is plain data (integers and pointers), for which all zeroes
            // is a valid value; KeInitializeDpc initialises it before any other use.
            dpc: UnsafeCell::new(unsafe { core::mem::zeroed() }),
            targeted: AtomicBool::new(false),
        });
        for (index, slot) in slots.iter().enumerate() {
            let dpc = slot.dpc.get();
            // SAFETY: resident (nonpaged pool), final address, not queued; any IRQL.
            unsafe { nt::KeInitializeDpc(dpc, Some(run_call::<T>), core::ptr::null_mut()) };
            // SAFETY: an initialised DPC, not queued; any IRQL.
            unsafe { nt::KeSetImportanceDpc(dpc, nt::MEDIUM_HIGH_IMPORTANCE) };
            let targeted = u32::try_from(index).is_ok_and(|index| {
                // SAFETY: an initialised DPC, not queued (nothing can reach it yet).
                unsafe { nt::set_target_processor(dpc, index) }
            });
            // Relaxed: the calls are not shared yet; handing them out publishes this.
            slot.targeted.store(targeted, Ordering::Relaxed);
        }
        Some(Self {
            slots,
            call_type: TypeId::of::<T>(),
            retarget_lock: UnsafeCell::new(0),
        })
    }

    /// Queues processor `processor`'s DPC with `target`; the DPC's own `BOOLEAN`: `false`
    /// when it was queued already and has not started (it then runs once, with the
    /// target it was queued with). Also `false`, queueing nothing, while no processor
    /// has that index (module docs). IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// `target` stays alive at its address until the call has run or [`Self::flush`]
    /// has returned.
    pub unsafe fn queue<T: ProcessorCall>(&self, processor: usize, target: &T) -> bool {
        assert!(
            self.call_type == TypeId::of::<T>(),
            "processor calls queued with another type than they were created for"
        );
        let Some(slot) = self.slots.get(processor) else {
            debug_assert!(false, "processor index {processor} past the calls");
            return false;
        };
        // Acquire: pairs with the Release in `retarget`, so the target it set is seen.
        if !slot.targeted.load(Ordering::Acquire) && !self.retarget(slot, processor) {
            return false;
        }
        let target: *const T = target;
        // SAFETY: an initialised, targeted DPC at its final address; any IRQL
        // ("KeInsertQueueDpc function (wdm.h)"); the routine gets `target` back as the
        // `T` it was created for (checked above), alive per the caller's contract.
        let queued = unsafe {
            nt::KeInsertQueueDpc(
                slot.dpc.get(),
                target.cast_mut().cast(),
                core::ptr::without_provenance_mut(processor),
            )
        };
        queued != 0
    }

    /// Targets a slot no processor had at create; `true` once it is targeted.
    fn retarget(&self, slot: &Slot, processor: usize) -> bool {
        let Ok(index) = u32::try_from(processor) else {
            return false;
        };
        // SAFETY: an initialised KSPIN_LOCK; IRQL <= DISPATCH_LEVEL (the caller's).
        let old = unsafe { nt::KeAcquireSpinLockRaiseToDpc(self.retarget_lock.get()) };
        // Relaxed: under the lock, which orders this with the store below of any
        // earlier holder.
        let targeted = slot.targeted.load(Ordering::Relaxed)
            // SAFETY: an initialised DPC, never queued while untargeted (the
            // invariant); the lock keeps any other thread from targeting or queueing
            // it meanwhile.
            || unsafe { nt::set_target_processor(slot.dpc.get(), index) };
        // Release: publishes the target to `queue`'s Acquire load.
        slot.targeted.store(targeted, Ordering::Release);
        // SAFETY: releases the lock taken above, restoring its IRQL.
        unsafe { nt::KeReleaseSpinLock(self.retarget_lock.get(), old) };
        targeted
    }

    /// Returns once no call is queued or running: `KeRemoveQueueDpc` on each (a removed
    /// call never runs), then `KeFlushQueuedDpcs`, which returns after every DPC queued
    /// before it, on every processor, has run to completion ("KeFlushQueuedDpcs
    /// function (wdm.h)"), so a call that had already started has finished too.
    /// PASSIVE_LEVEL. Calls queued meanwhile by another thread are not covered: the
    /// core queues none once it flushes.
    pub fn flush(&self) {
        self.remove_queued();
        // SAFETY: PASSIVE_LEVEL (the core's contract for this method).
        unsafe { nt::KeFlushQueuedDpcs() };
    }

    /// `KeRemoveQueueDpc` on every slot; whether any was queued. Any IRQL.
    fn remove_queued(&self) -> bool {
        let mut any = false;
        for slot in &self.slots {
            // SAFETY: an initialised DPC; any IRQL ("KeRemoveQueueDpc function
            // (wdm.h)"); removing one that is not queued does nothing.
            any |= unsafe { nt::KeRemoveQueueDpc(slot.dpc.get()) } != 0;
        }
        any
    }
}

impl Drop for ProcessorCalls {
    /// Takes any still-queued DPC out of its queue before the storage goes. It cannot
    /// wait for a call already running (that needs PASSIVE_LEVEL, and a drop may come
    /// at DISPATCH_LEVEL, e.g. with the last reference to shared state), which is why
    /// the core flushes first
    /// (`Platform::flush_processor_calls`); a call still queued here is that bug, which
    /// debug builds report. Any IRQL <= DISPATCH_LEVEL.
    fn drop(&mut self) {
        let was_queued = self.remove_queued();
        debug_assert!(
            !was_queued,
            "processor calls dropped with a call queued: flush them first"
        );
    }
}
