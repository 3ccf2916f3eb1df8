//! The WDK's inline functions and macros that bindgen does not emit, written once from
//! their definitions in `wdm.h`, and small helpers over the kernel's own routines.
//!
//! The bindgen field paths of anonymous unions (`__bindgen_anon_N`) follow bindgen's
//! numbering of the structs, which `cargo xtask wdk-check` type-checks against wdk-sys's
//! and `cargo xtask pe` against mingw-w64's.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::bindings::{
    ExFreePoolWithTag, IofCallDriver, IofCompleteRequest, KfRaiseIrql, MmGetSystemRoutineAddress,
    ObfDereferenceObject, ObfReferenceObject, ZwClose, HANDLE, IO_STACK_LOCATION, NTSTATUS,
    PDEVICE_OBJECT, PDRIVER_CANCEL, PIRP, POBJECT_TYPE, PVOID,
};
use crate::constants::{IO_NO_INCREMENT, SL_PENDING_RETURNED};
use crate::strings::{counted, wide};

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` is a live IRP this driver owns, with a current stack location.
pub unsafe fn IoGetCurrentIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract; the field is the x64 layout of Tail.Overlay.
    unsafe {
        (*irp)
            .Tail
            .Overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation
    }
}

/// `IoMarkIrpPending`.
///
/// # Safety
/// As [`IoGetCurrentIrpStackLocation`].
pub unsafe fn IoMarkIrpPending(irp: PIRP) {
    // SAFETY: the caller's contract gives a valid current stack location.
    unsafe { (*IoGetCurrentIrpStackLocation(irp)).Control |= SL_PENDING_RETURNED };
}

/// `IoSkipCurrentIrpStackLocation`.
///
/// # Safety
/// As [`IoGetCurrentIrpStackLocation`], and the IRP is about to be passed down.
pub unsafe fn IoSkipCurrentIrpStackLocation(irp: PIRP) {
    // SAFETY: the caller's contract; this is the macro's body.
    unsafe {
        (*irp).CurrentLocation += 1;
        let slot = &raw mut (*irp)
            .Tail
            .Overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation;
        *slot = (*slot).add(1);
    }
}

/// `IoSetCancelRoutine`: an interlocked exchange of `Irp->CancelRoutine`, returning the
/// previous routine.
///
/// # Safety
/// `irp` is a live IRP this driver owns.
pub unsafe fn IoSetCancelRoutine(irp: PIRP, routine: PDRIVER_CANCEL) -> PDRIVER_CANCEL {
    // PDRIVER_CANCEL is Option<fn>: pointer-sized, None = null.
    let new: *mut core::ffi::c_void = routine.map_or(core::ptr::null_mut(), |f| f as *mut _);
    // SAFETY: CancelRoutine is a pointer-sized, pointer-aligned field of a live IRP;
    // IoCancelIrp exchanges it atomically too, so an AtomicPtr view is the right access.
    let slot = unsafe {
        AtomicPtr::from_ptr((&raw mut (*irp).CancelRoutine).cast::<*mut core::ffi::c_void>())
    };
    // SeqCst: InterlockedExchangePointer is a full barrier.
    let old = slot.swap(new, Ordering::SeqCst);
    // SAFETY: `old` is null or a DRIVER_CANCEL function pointer stored by this macro or
    // the I/O manager; Option<fn> has the null-pointer niche.
    unsafe { core::mem::transmute::<*mut core::ffi::c_void, PDRIVER_CANCEL>(old) }
}

/// `IoCompleteRequest`.
///
/// # Safety
/// `irp` is a live IRP this driver owns and completes exactly once, at IRQL <= DISPATCH_LEVEL.
pub unsafe fn IoCompleteRequest(irp: PIRP, status: NTSTATUS, information: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        (*irp).IoStatus.__bindgen_anon_1.Status = status;
        (*irp).IoStatus.Information = information as _;
        IofCompleteRequest(irp, IO_NO_INCREMENT);
    }
}

/// `IoCallDriver`.
///
/// # Safety
/// `device` is the next-lower device and `irp` has its next stack location set up.
pub unsafe fn IoCallDriver(device: PDEVICE_OBJECT, irp: PIRP) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe { IofCallDriver(device, irp) }
}

/// `ObDereferenceObject`.
///
/// # Safety
/// `object` is an object the caller holds a reference on.
pub unsafe fn ObDereferenceObject(object: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ObfDereferenceObject(object) };
}

/// `ObReferenceObject`.
///
/// # Safety
/// `object` is a live object.
pub unsafe fn ObReferenceObject(object: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ObfReferenceObject(object) };
}

/// `IoGetNextIrpStackLocation`: the location the next driver (the one the IRP is sent
/// to) reads.
///
/// # Safety
/// `irp` is a live IRP this driver built and has not sent yet.
pub unsafe fn IoGetNextIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract; an IRP from IoBuildDeviceIoControlRequest has its
    // current location one past the first stack location it set up, so one below the
    // current one is inside the IRP's stack locations.
    unsafe { IoGetCurrentIrpStackLocation(irp) }.wrapping_sub(1)
}

/// `KeRaiseIrql(new, &old)` (a macro over `KfRaiseIrql` in every header): returns the
/// old IRQL.
///
/// # Safety
/// `new` >= the current IRQL (lowering through it bugchecks on Windows).
pub unsafe fn KeRaiseIrql(new: u8) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { KfRaiseIrql(new) }
}

/// `ExFreePool` is a macro for `ExFreePoolWithTag(P, 0)`.
///
/// # Safety
/// `p` is a pool block the caller owns (e.g. an `IoGetDeviceInterfaces` list).
pub unsafe fn ExFreePool(p: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ExFreePoolWithTag(p, 0) };
}

/// `*ExEventObjectType`, looked up by name in both builds. wdk-sys declares the variable
/// at its crate root (not in `ntddk`), but a data import may not link
/// (windows-drivers-rs issue #338, LNK1120 on PsInitialSystemProcess), and a data
/// import through raw-dylib is not reliable either; `MmGetSystemRoutineAddress` finds
/// data exports too (MS page "MmGetSystemRoutineAddress function (wdm.h)").
#[must_use]
pub fn event_object_type() -> POBJECT_TYPE {
    static NAME: [u16; 17] = wide(b"ExEventObjectType");
    let mut name = counted(&NAME);
    // SAFETY: PASSIVE_LEVEL (event enable/disable); a counted name of an ntoskrnl export.
    let slot = unsafe { MmGetSystemRoutineAddress(&raw mut name) }.cast::<POBJECT_TYPE>();
    if slot.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the export is a POBJECT_TYPE variable ntoskrnl initialised at boot.
    unsafe { *slot }
}

/// `ZwClose` of a kernel handle the caller owns, its status dropped on purpose: closing
/// a valid handle succeeds, and its failures (STATUS_INVALID_HANDLE,
/// STATUS_HANDLE_NOT_CLOSABLE) would be this driver's bug, which Driver Verifier reports,
/// with nothing a caller could undo (MS page "ZwClose function (wdm.h)").
///
/// # Safety
/// `handle` is an open kernel handle of the caller's, not used afterwards; PASSIVE_LEVEL.
pub unsafe fn close_handle(handle: HANDLE) {
    // SAFETY: the caller's contract.
    let status = unsafe { ZwClose(handle) };
    let _ = status;
}
