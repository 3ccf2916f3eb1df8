//! Kernel routines not every NT kernel exports, looked up by name at DriverEntry.
//!
//! An import the loader cannot resolve keeps the whole driver from loading, so a routine
//! that some kernel this driver targets lacks is never imported: [`resolve_optional_routines`]
//! asks `MmGetSystemRoutineAddress` for it once (MS page "MmGetSystemRoutineAddress
//! function (wdm.h)": PASSIVE_LEVEL, ntoskrnl and hal exports, NULL when absent), and
//! each use has a documented fallback. Both builds (WDK and cross) take this same path.
//!
//! | routine | who lacks it | fallback |
//! |---|---|---|
//! | `ExAllocatePool2` | Windows before 10 2004 (build 19041), Wine 8, ReactOS | `ExAllocatePoolWithTag(NonPagedPoolNx)` and zeroing |
//! | `KeGetCurrentProcessorNumberEx` | ReactOS amd64 | no processor index |
//! | `KeQueryMaximumProcessorCountEx` | ReactOS amd64 | no processor index |
//! | `KeGetProcessorNumberFromIndex` | Wine 8, ReactOS amd64 | no processor index |
//! | `KeSetTargetProcessorDpcEx` | ReactOS amd64 | no processor index |
//!
//! A processor index is only worth having where another processor can be asked to run
//! code on the processor it names: the core reaches a processor's per-processor state
//! only through a DPC targeted at that processor (`Platform::queue_processor_call`). So
//! the driver hands out indices only when the kernel has all four processor routines
//! above (every Windows from 7 on) *and* a queued DPC really runs there, which
//! [`resolve_optional_routines`] checks once by queueing one and flushing
//! ([`QueuedDpcProbe`]): Wine 8's `KeInsertQueueDpc` is a stub that returns TRUE and
//! never calls the routine, so a call queued there would never run (and its
//! `KeRemoveQueueDpc` is an unimplemented stub that aborts the driver host if called:
//! nothing calls it where processor calls do not exist).
//!
//! Without a processor index the driver reports `u32::MAX` processors and the index
//! `u32::MAX`: past the core's `MAX_PROCESSOR_SLOTS`, so an allocator keeps no
//! per-processor state at all (no magazines, no per-processor counters), never creates
//! or queues processor calls, and every frame and count goes through the shared list
//! and counters. That is the case on ReactOS amd64 and on Wine 8. (Found on ReactOS:
//! sizing per-processor slots by the sentinel made every allocator create fail.)

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::bindings::{
    ExAllocatePoolWithQuotaTag, ExAllocatePoolWithTag, KeFlushQueuedDpcs, KeInitializeDpc,
    KeInsertQueueDpc, MmGetSystemRoutineAddress, KDPC, NTSTATUS, PVOID,
};
use crate::constants::{
    NON_PAGED_POOL_NX, POOL_FLAG_NON_PAGED, POOL_FLAG_USE_QUOTA, POOL_QUOTA_FAIL_INSTEAD_OF_RAISE,
};
use crate::strings::{counted, wide};

/// `PROCESSOR_NUMBER` (winnt.h/ntdef.h): a processor's group and its number in the
/// group. Written here because only the run-time routines below take it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessorNumber {
    /// `Group`.
    pub group: u16,
    /// `Number`: the processor within the group.
    pub number: u8,
    /// `Reserved`.
    pub reserved: u8,
}

/// `PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)`.
type ExAllocatePool2Routine = unsafe extern "system" fn(u64, usize, u32) -> PVOID;
/// `ULONG KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber)`.
type ProcessorNumberExRoutine = unsafe extern "system" fn(*mut ProcessorNumber) -> u32;
/// `ULONG KeQueryMaximumProcessorCountEx(USHORT GroupNumber)`.
type MaximumProcessorCountExRoutine = unsafe extern "system" fn(u16) -> u32;
/// `NTSTATUS KeGetProcessorNumberFromIndex(ULONG ProcIndex, PPROCESSOR_NUMBER
/// ProcNumber)` (MS page "KeGetProcessorNumberFromIndex function (ntifs.h)").
type ProcessorNumberFromIndexRoutine =
    unsafe extern "system" fn(u32, *mut ProcessorNumber) -> NTSTATUS;
/// `NTSTATUS KeSetTargetProcessorDpcEx(PKDPC Dpc, PPROCESSOR_NUMBER ProcNumber)` (MS
/// page "KeSetTargetProcessorDpcEx function (wdm.h)").
type SetTargetProcessorDpcExRoutine =
    unsafe extern "system" fn(*mut KDPC, *mut ProcessorNumber) -> NTSTATUS;

// Each slot is written once, by resolve_optional_routines in DriverEntry, before the
// driver has a device or a dispatch routine anyone can reach, and read afterwards from
// any thread. Release/Acquire makes the pointer's publication explicit rather than
// relying on the I/O manager's own ordering between DriverEntry and the first IRP.
static EX_ALLOCATE_POOL2: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_GET_CURRENT_PROCESSOR_NUMBER_EX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_GET_PROCESSOR_NUMBER_FROM_INDEX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_SET_TARGET_PROCESSOR_DPC_EX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// Whether the driver hands out processor indices (module docs). Written once in
/// DriverEntry after the slots above, with the same Release/Acquire pairing.
static PROCESSOR_INDEX: AtomicBool = AtomicBool::new(false);

static EX_ALLOCATE_POOL2_NAME: [u16; 15] = wide(b"ExAllocatePool2");
static KE_GET_CURRENT_PROCESSOR_NUMBER_EX_NAME: [u16; 29] = wide(b"KeGetCurrentProcessorNumberEx");
static KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX_NAME: [u16; 30] =
    wide(b"KeQueryMaximumProcessorCountEx");
static KE_GET_PROCESSOR_NUMBER_FROM_INDEX_NAME: [u16; 29] = wide(b"KeGetProcessorNumberFromIndex");
static KE_SET_TARGET_PROCESSOR_DPC_EX_NAME: [u16; 25] = wide(b"KeSetTargetProcessorDpcEx");

/// `MmGetSystemRoutineAddress(name)`: the export's address, or null.
fn look_up(name: &'static [u16]) -> *mut c_void {
    let mut name = counted(name);
    // SAFETY: PASSIVE_LEVEL (DriverEntry); a counted name the call only reads.
    unsafe { MmGetSystemRoutineAddress(&raw mut name) }
}

/// What [`resolve_optional_routines`] found, for the driver's DriverEntry line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessorSupport {
    /// All four processor routines of the module docs are exported.
    pub routines: bool,
    /// A DPC queued at DriverEntry had run once `KeFlushQueuedDpcs` returned.
    pub queued_dpcs_run: bool,
}

impl ProcessorSupport {
    /// The driver hands out processor indices (both of the above).
    #[must_use]
    pub const fn processor_index(self) -> bool {
        self.routines && self.queued_dpcs_run
    }
}

/// Looks every optional routine up and checks that a queued DPC runs. Call once, first
/// thing in DriverEntry (PASSIVE_LEVEL).
pub fn resolve_optional_routines() -> ProcessorSupport {
    let slots: [(&AtomicPtr<c_void>, &'static [u16]); 5] = [
        (&EX_ALLOCATE_POOL2, &EX_ALLOCATE_POOL2_NAME),
        (
            &KE_GET_CURRENT_PROCESSOR_NUMBER_EX,
            &KE_GET_CURRENT_PROCESSOR_NUMBER_EX_NAME,
        ),
        (
            &KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX,
            &KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX_NAME,
        ),
        (
            &KE_GET_PROCESSOR_NUMBER_FROM_INDEX,
            &KE_GET_PROCESSOR_NUMBER_FROM_INDEX_NAME,
        ),
        (
            &KE_SET_TARGET_PROCESSOR_DPC_EX,
            &KE_SET_TARGET_PROCESSOR_DPC_EX_NAME,
        ),
    ];
    for (slot, name) in slots {
        // Release: pairs with the Acquire loads below (module comment on the slots).
        slot.store(look_up(name), Ordering::Release);
    }
    // Relaxed: this thread wrote them just above.
    let routines = slots[1..]
        .iter()
        .all(|(slot, _)| !slot.load(Ordering::Relaxed).is_null());
    let support = ProcessorSupport {
        routines,
        queued_dpcs_run: QueuedDpcProbe::run(),
    };
    // Release: as for the slots.
    PROCESSOR_INDEX.store(support.processor_index(), Ordering::Release);
    support
}

/// The DriverEntry check that a queued DPC runs (module docs): one DPC in static
/// storage (an initialised KDPC must not move, and static storage outlives any queue
/// entry a kernel might keep by mistake), queued untargeted, then `KeFlushQueuedDpcs`,
/// which returns only after every DPC queued on every processor has run (MS page
/// "KeFlushQueuedDpcs function (wdm.h)").
struct QueuedDpcProbe(UnsafeCell<KDPC>);

// SAFETY: only resolve_optional_routines touches the KDPC, once, in DriverEntry, and
// the kernel's DPC machinery (which synchronises itself) afterwards.
unsafe impl Sync for QueuedDpcProbe {}

// SAFETY: KDPC is plain data (integers and pointers), for which all zeroes is a valid
// value; KeInitializeDpc initialises it before any other use.
static PROBE_DPC: QueuedDpcProbe = QueuedDpcProbe(UnsafeCell::new(unsafe { core::mem::zeroed() }));
/// Set by the probe's DPC routine.
static PROBE_RAN: AtomicBool = AtomicBool::new(false);

/// The probe's `KDEFERRED_ROUTINE`.
unsafe extern "C" fn probe_routine(_dpc: *mut KDPC, _context: PVOID, _one: PVOID, _two: PVOID) {
    // Release: pairs with the Acquire load in `run`, after the flush.
    PROBE_RAN.store(true, Ordering::Release);
}

impl QueuedDpcProbe {
    /// Queues the probe DPC, flushes, and says whether its routine ran. PASSIVE_LEVEL,
    /// once.
    fn run() -> bool {
        let dpc = PROBE_DPC.0.get();
        // SAFETY: a KDPC in static storage, not queued (never initialised before);
        // KeInitializeDpc may be called at any IRQL ("KeInitializeDpc function (wdm.h)").
        unsafe { KeInitializeDpc(dpc, Some(probe_routine), null_mut()) };
        // SAFETY: an initialised DPC; any IRQL ("KeInsertQueueDpc function (wdm.h)").
        // Untargeted: it runs on this processor. Its BOOLEAN only says whether
        // it was queued already, which a fresh DPC is not.
        let _ = unsafe { KeInsertQueueDpc(dpc, null_mut(), null_mut()) };
        // SAFETY: PASSIVE_LEVEL (DriverEntry), as the flush requires.
        unsafe { KeFlushQueuedDpcs() };
        // Acquire: sees the routine's store if it ran before the flush returned. A DPC
        // that did not run is left as it is, not removed: Wine 8's KeRemoveQueueDpc is an
        // unimplemented stub that aborts the driver host when called (seen in
        // tests/wine/run.sh), and the KDPC's static storage stays valid while the
        // driver is loaded even on a kernel that kept it queued.
        PROBE_RAN.load(Ordering::Acquire)
    }
}

/// `ExAllocatePool2(flags)` where the kernel has it (it zeroes the block), else
/// `fallback()` zeroed here, so callers see the same memory either way.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; `fallback` allocates at least `bytes` bytes or returns null.
unsafe fn allocate_zeroed(
    flags: u64,
    bytes: usize,
    tag: u32,
    fallback: impl FnOnce() -> PVOID,
) -> PVOID {
    // Acquire: see the slots' comment.
    let routine = EX_ALLOCATE_POOL2.load(Ordering::Acquire);
    if !routine.is_null() {
        // SAFETY: the address of the kernel's ExAllocatePool2, whose prototype this is.
        let allocate =
            unsafe { core::mem::transmute::<*mut c_void, ExAllocatePool2Routine>(routine) };
        // SAFETY: the caller's IRQL contract; without POOL_FLAG_RAISE_ON_FAILURE it
        // returns null on failure; it zeroes the block.
        return unsafe { allocate(flags, bytes, tag) };
    }
    let block = fallback();
    if !block.is_null() {
        // SAFETY: a fresh block of at least `bytes` bytes (the caller's contract), ours.
        unsafe { block.cast::<u8>().write_bytes(0, bytes) };
    }
    block
}

/// Nonpaged, zeroed pool: `ExAllocatePool2(POOL_FLAG_NON_PAGED)` where the kernel has
/// it, else `ExAllocatePoolWithTag(NonPagedPoolNx)` zeroed. Null when the pool is
/// exhausted.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub unsafe fn allocate_nonpaged(bytes: usize, tag: u32) -> PVOID {
    let fallback = || {
        // SAFETY: the caller's IRQL contract; null when the pool is exhausted.
        unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX as _, bytes as _, tag) }
    };
    // SAFETY: the caller's IRQL contract; the fallback allocates `bytes` or returns null.
    unsafe { allocate_zeroed(POOL_FLAG_NON_PAGED, bytes, tag, fallback) }
}

/// Nonpaged, zeroed pool charged to the current process's quota:
/// `ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_USE_QUOTA)` where the kernel has it,
/// else `ExAllocatePoolWithQuotaTag(NonPagedPoolNx | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE)`
/// zeroed. Null when the pool or the quota is exhausted (neither raises). Call in the
/// context of the process to charge (IRP_MJ_CREATE of its request); the block keeps that
/// process referenced until it is freed.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub unsafe fn allocate_nonpaged_quota(bytes: usize, tag: u32) -> PVOID {
    let pool_type = NON_PAGED_POOL_NX | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
    let fallback = || {
        // SAFETY: the caller's IRQL contract; with FAIL_INSTEAD_OF_RAISE a spent pool or
        // quota gives null instead of an exception.
        unsafe { ExAllocatePoolWithQuotaTag(pool_type as _, bytes as _, tag) }
    };
    // SAFETY: the caller's IRQL contract; the fallback allocates `bytes` or returns null.
    unsafe {
        allocate_zeroed(
            POOL_FLAG_NON_PAGED | POOL_FLAG_USE_QUOTA,
            bytes,
            tag,
            fallback,
        )
    }
}

/// Whether the driver hands out processor indices (module docs).
fn processor_index() -> bool {
    // Acquire: see the slots' comment.
    PROCESSOR_INDEX.load(Ordering::Acquire)
}

/// Loads a routine slot that [`processor_index`] guarantees is set.
fn routine_address(slot: &AtomicPtr<c_void>) -> *mut c_void {
    // Acquire: see the slots' comment.
    let address = slot.load(Ordering::Acquire);
    debug_assert!(
        !address.is_null(),
        "processor_index() promised this routine"
    );
    address
}

/// `KeGetCurrentProcessorNumberEx(number)`, or `u32::MAX` (module docs).
///
/// `u32::MAX` where the driver hands out no processor indices. `number` must be null:
/// without an index there is no `PROCESSOR_NUMBER` to fill.
///
/// # Safety
/// Any IRQL; the caller keeps the thread on this processor (DISPATCH_LEVEL) for as long
/// as the index must stay true.
pub unsafe fn KeGetCurrentProcessorNumberEx(number: *mut ProcessorNumber) -> u32 {
    debug_assert!(
        number.is_null(),
        "no PROCESSOR_NUMBER is filled without an index"
    );
    if !processor_index() {
        return u32::MAX;
    }
    let ex = routine_address(&KE_GET_CURRENT_PROCESSOR_NUMBER_EX);
    // SAFETY: the kernel's KeGetCurrentProcessorNumberEx, whose prototype this is.
    let routine = unsafe { core::mem::transmute::<*mut c_void, ProcessorNumberExRoutine>(ex) };
    // SAFETY: any IRQL; the output is optional.
    unsafe { routine(number) }
}

/// `KeQueryMaximumProcessorCountEx(group)` where the driver hands out processor
/// indices, else `u32::MAX` (module docs).
///
/// # Safety
/// Any IRQL.
#[must_use]
pub unsafe fn KeQueryMaximumProcessorCountEx(group: u16) -> u32 {
    if !processor_index() {
        return u32::MAX;
    }
    let ex = routine_address(&KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX);
    // SAFETY: the kernel's KeQueryMaximumProcessorCountEx, whose prototype this is.
    let routine =
        unsafe { core::mem::transmute::<*mut c_void, MaximumProcessorCountExRoutine>(ex) };
    // SAFETY: any IRQL, any group number.
    unsafe { routine(group) }
}

/// Targets `dpc` at the processor with system-wide index `index`.
///
/// `KeGetProcessorNumberFromIndex`, then `KeSetTargetProcessorDpcEx`. `false` when the
/// driver hands out no indices, or no processor has that index (yet: the maximum count
/// includes processors that may be added later, and the conversion fails with
/// STATUS_INVALID_PARAMETER for those); the DPC's target is then unchanged.
///
/// # Safety
/// `dpc` is initialised (`KeInitializeDpc`) and not queued: a target set after queueing
/// does not move it ("KeSetTargetProcessorDpcEx function (wdm.h)"). Any IRQL (both
/// routines' pages).
pub unsafe fn set_target_processor(dpc: *mut KDPC, index: u32) -> bool {
    if !processor_index() {
        return false;
    }
    let from_index = routine_address(&KE_GET_PROCESSOR_NUMBER_FROM_INDEX);
    // SAFETY: the kernel's KeGetProcessorNumberFromIndex, whose prototype this is.
    let from_index =
        unsafe { core::mem::transmute::<*mut c_void, ProcessorNumberFromIndexRoutine>(from_index) };
    let mut number = ProcessorNumber::default();
    // SAFETY: any IRQL; writes only `number`. NT_SUCCESS: a status >= 0.
    if unsafe { from_index(index, &raw mut number) } < 0 {
        return false;
    }
    let set_target = routine_address(&KE_SET_TARGET_PROCESSOR_DPC_EX);
    // SAFETY: the kernel's KeSetTargetProcessorDpcEx, whose prototype this is.
    let set_target =
        unsafe { core::mem::transmute::<*mut c_void, SetTargetProcessorDpcExRoutine>(set_target) };
    // SAFETY: the caller's contract; `number` names an existing processor.
    unsafe { set_target(dpc, &raw mut number) >= 0 }
}
