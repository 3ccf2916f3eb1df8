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
//! | `KeGetCurrentProcessorNumberEx` | ReactOS amd64 | `KeGetCurrentProcessorNumber` where exported (Wine; Windows x64 has it inline only), else no processor index |
//! | `KeQueryMaximumProcessorCountEx` | ReactOS | `KeNumberProcessors` (data export) |
//!
//! Without any processor index the driver reports `u32::MAX` processors and the index
//! `u32::MAX`: past the core's `MAX_PROCESSOR_SLOTS`, so an allocator keeps no
//! per-processor state at all (no magazines, no per-processor counters), and every frame
//! and count goes through the shared list and counters. (Found on ReactOS: sizing
//! per-processor slots by the sentinel made every allocator create fail.)

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::bindings::{
    ExAllocatePoolWithQuotaTag, ExAllocatePoolWithTag, MmGetSystemRoutineAddress, PVOID,
};
use crate::constants::{
    NON_PAGED_POOL_NX, POOL_FLAG_NON_PAGED, POOL_FLAG_USE_QUOTA, POOL_QUOTA_FAIL_INSTEAD_OF_RAISE,
};
use crate::strings::{counted, wide};

/// `PVOID ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)`.
type ExAllocatePool2Routine = unsafe extern "system" fn(u64, usize, u32) -> PVOID;
/// `ULONG KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber)`.
type ProcessorNumberExRoutine = unsafe extern "system" fn(*mut c_void) -> u32;
/// `ULONG KeGetCurrentProcessorNumber(VOID)`.
type ProcessorNumberRoutine = unsafe extern "system" fn() -> u32;
/// `ULONG KeQueryMaximumProcessorCountEx(USHORT GroupNumber)`.
type MaximumProcessorCountExRoutine = unsafe extern "system" fn(u16) -> u32;

// Each slot is written once, by resolve_optional_routines in DriverEntry, before the
// driver has a device or a dispatch routine anyone can reach, and read afterwards from
// any thread. Release/Acquire makes the pointer's publication explicit rather than
// relying on the I/O manager's own ordering between DriverEntry and the first IRP.
static EX_ALLOCATE_POOL2: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_GET_CURRENT_PROCESSOR_NUMBER_EX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_GET_CURRENT_PROCESSOR_NUMBER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// Address of the `CCHAR KeNumberProcessors` data export.
static KE_NUMBER_PROCESSORS: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

static EX_ALLOCATE_POOL2_NAME: [u16; 15] = wide(b"ExAllocatePool2");
static KE_GET_CURRENT_PROCESSOR_NUMBER_EX_NAME: [u16; 29] = wide(b"KeGetCurrentProcessorNumberEx");
static KE_GET_CURRENT_PROCESSOR_NUMBER_NAME: [u16; 27] = wide(b"KeGetCurrentProcessorNumber");
static KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX_NAME: [u16; 30] =
    wide(b"KeQueryMaximumProcessorCountEx");
static KE_NUMBER_PROCESSORS_NAME: [u16; 18] = wide(b"KeNumberProcessors");

/// `MmGetSystemRoutineAddress(name)`: the export's address, or null.
fn look_up(name: &'static [u16]) -> *mut c_void {
    let mut name = counted(name);
    // SAFETY: PASSIVE_LEVEL (DriverEntry); a counted name the call only reads.
    unsafe { MmGetSystemRoutineAddress(&raw mut name) }
}

/// Looks every optional routine up. Call once, first thing in DriverEntry
/// (PASSIVE_LEVEL).
pub fn resolve_optional_routines() {
    let slots: [(&AtomicPtr<c_void>, &'static [u16]); 5] = [
        (&EX_ALLOCATE_POOL2, &EX_ALLOCATE_POOL2_NAME),
        (
            &KE_GET_CURRENT_PROCESSOR_NUMBER_EX,
            &KE_GET_CURRENT_PROCESSOR_NUMBER_EX_NAME,
        ),
        (
            &KE_GET_CURRENT_PROCESSOR_NUMBER,
            &KE_GET_CURRENT_PROCESSOR_NUMBER_NAME,
        ),
        (
            &KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX,
            &KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX_NAME,
        ),
        (&KE_NUMBER_PROCESSORS, &KE_NUMBER_PROCESSORS_NAME),
    ];
    for (slot, name) in slots {
        // Release: pairs with the Acquire loads below (module comment on the slots).
        slot.store(look_up(name), Ordering::Release);
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

/// `KeGetCurrentProcessorNumberEx(number)` where the kernel has it, else
/// `KeGetCurrentProcessorNumber()` (the group-relative number: every kernel without the
/// Ex routine has a single processor group), else `u32::MAX` (no index; module docs).
/// `number` must be null: the fallbacks cannot fill a `PROCESSOR_NUMBER`.
///
/// # Safety
/// Any IRQL; the caller keeps the thread on this processor (DISPATCH_LEVEL) for as long
/// as the index must stay true.
pub unsafe fn KeGetCurrentProcessorNumberEx(number: *mut c_void) -> u32 {
    debug_assert!(
        number.is_null(),
        "the fallbacks have no PROCESSOR_NUMBER to fill"
    );
    // Acquire: see the slots' comment.
    let ex = KE_GET_CURRENT_PROCESSOR_NUMBER_EX.load(Ordering::Acquire);
    if !ex.is_null() {
        // SAFETY: the kernel's KeGetCurrentProcessorNumberEx, whose prototype this is.
        let routine = unsafe { core::mem::transmute::<*mut c_void, ProcessorNumberExRoutine>(ex) };
        // SAFETY: any IRQL; the output is optional.
        return unsafe { routine(number) };
    }
    // Acquire: see the slots' comment.
    let plain = KE_GET_CURRENT_PROCESSOR_NUMBER.load(Ordering::Acquire);
    if !plain.is_null() {
        // SAFETY: the kernel's KeGetCurrentProcessorNumber, whose prototype this is.
        let routine = unsafe { core::mem::transmute::<*mut c_void, ProcessorNumberRoutine>(plain) };
        // SAFETY: any IRQL.
        return unsafe { routine() };
    }
    u32::MAX
}

/// `KeQueryMaximumProcessorCountEx(group)` where the kernel has it, else
/// `KeNumberProcessors` (processors added later then get indices past the count, which
/// name no magazine); `u32::MAX` when the driver cannot learn the current processor's
/// index (module docs).
///
/// # Safety
/// Any IRQL.
pub unsafe fn KeQueryMaximumProcessorCountEx(group: u16) -> u32 {
    // Acquire: see the slots' comment.
    let has_index = !KE_GET_CURRENT_PROCESSOR_NUMBER_EX
        .load(Ordering::Acquire)
        .is_null()
        || !KE_GET_CURRENT_PROCESSOR_NUMBER
            .load(Ordering::Acquire)
            .is_null();
    if !has_index {
        return u32::MAX;
    }
    // Acquire: see the slots' comment.
    let ex = KE_QUERY_MAXIMUM_PROCESSOR_COUNT_EX.load(Ordering::Acquire);
    if !ex.is_null() {
        // SAFETY: the kernel's KeQueryMaximumProcessorCountEx, whose prototype this is.
        let routine =
            unsafe { core::mem::transmute::<*mut c_void, MaximumProcessorCountExRoutine>(ex) };
        // SAFETY: any IRQL, any group number.
        return unsafe { routine(group) };
    }
    // Acquire: see the slots' comment.
    let count = KE_NUMBER_PROCESSORS.load(Ordering::Acquire).cast::<i8>();
    if count.is_null() {
        return u32::MAX;
    }
    // SAFETY: the CCHAR variable the kernel exports and set before drivers load.
    let count = unsafe { count.read_volatile() };
    u32::try_from(count).unwrap_or(u32::MAX)
}
