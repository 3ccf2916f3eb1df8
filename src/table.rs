//! The routines KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE hands out, with the exact
//! ks.h signatures (no calling-convention keyword: the C default, the only x64 ABI).
//! Both are safe at IRQL <= DISPATCH_LEVEL: they reach the allocator through the file
//! object and call the core's lock-free paths; no pool call, no wait.

use core::ffi::c_void;

use ks_abi::ks::{FileObject, PfnAllocatorAllocateFrame, PfnAllocatorFreeFrame};
use ks_abi::NtStatus;

use crate::dispatch::object_of;

/// The two addresses, in table order.
pub fn addresses() -> [usize; 2] {
    let allocate: PfnAllocatorAllocateFrame = allocate_frame;
    let free: PfnAllocatorFreeFrame = free_frame;
    // Exposed, so a client that turns the integers back into pointers gets provenance.
    [
        (allocate as *const ()).expose_provenance(),
        (free as *const ()).expose_provenance(),
    ]
}

/// `AllocateFrame(FileObject, &Frame)`: a free frame now, or
/// STATUS_INSUFFICIENT_RESOURCES now. It keeps working after IRP_MJ_CLEANUP (the caller
/// holds a reference); once IRP_MJ_CLOSE has run no caller may hold the file object, but
/// a stale call finds no context and gets STATUS_INVALID_DEVICE_REQUEST.
///
/// # Safety
/// The KS contract: `file_object` is the allocator's file object, which the caller keeps
/// referenced (it got it with ObReferenceObjectByHandle); `frame` is writable.
unsafe extern "C" fn allocate_frame(
    file_object: *mut FileObject,
    frame: *mut *mut c_void,
) -> NtStatus {
    // SAFETY: the caller's contract: a live file object of ours.
    let Some(allocator) = (unsafe { object_of(file_object.cast()) }).and_then(|o| o.as_allocator())
    else {
        return NtStatus::INVALID_DEVICE_REQUEST;
    };
    match allocator.table_allocate() {
        Ok(address) => {
            // SAFETY: the caller's out pointer.
            unsafe { frame.write(address as *mut c_void) };
            NtStatus::SUCCESS
        }
        Err(status) => status,
    }
}

/// `FreeFrame(FileObject, Frame)`. VOID: a frame that is not one of ours, or not out,
/// is refused and counted by the core, never put on the list.
///
/// # Safety
/// As [`allocate_frame`].
unsafe extern "C" fn free_frame(file_object: *mut FileObject, frame: *mut c_void) {
    // SAFETY: the caller's contract.
    if let Some(allocator) =
        (unsafe { object_of(file_object.cast()) }).and_then(|o| o.as_allocator())
    {
        let _ = allocator.free(frame as usize);
    }
}
