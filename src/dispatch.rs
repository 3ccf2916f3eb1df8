//! IRP_MJ_CREATE / CLEANUP / CLOSE / DEVICE_CONTROL: file objects to KS objects, buffers
//! to slices, and the core's replies to completed IRPs.
//!
//! Every path completes its IRP exactly once: a synchronous reply is completed here; a
//! pended ALLOC is completed by the core through `Platform::complete_alloc` (by a free,
//! by cleanup or close), or by `cancel_routine`.
//!
//! File object contexts: `FsContext` holds a `PoolBox<KsObject<Kernel>>` from create to
//! IRP_MJ_CLOSE. `RelatedFileObject` "is valid only during the processing of
//! IRP_MJ_CREATE requests" ("FILE_OBJECT structure" page): the parent's context is read
//! at create only, and what a child needs of its parent later the core keeps in the
//! child's own object (a reference-counted `PoolArc`), so handles close in any order.
//!
//! Remove lock: every IRP is served under the device's remove lock (IoAcquireRemoveLock
//! at dispatch), released when the IRP completes ("IoReleaseRemoveLock": a driver calls
//! it "when it has completed the I/O operation for which it called
//! IoAcquireRemoveLock"), so IRP_MN_REMOVE_DEVICE's IoReleaseRemoveLockAndWait cannot
//! return while an ALLOC is still pending. For
//! an ALLOC that pends that is after dispatch returns: the guard is kept in the IRP's
//! `Tail.Overlay.DriverContext` (ours while we own the IRP) and released by
//! `Platform::complete_alloc` after `IoCompleteRequest`.

use core::ffi::c_void;
use core::ptr::NonNull;

use ks_abi::NtStatus;
use ksalloc_core::ks::dispatch::{device_control, Ioctl, Reply};
use ksalloc_core::ks::KsObject;
use ksalloc_core::Requestor;

use crate::device::RemoveLockGuard;
use crate::nt;
use crate::platform::{Kernel, Request};
use crate::pool::PoolBox;
use crate::seh::Captured;

/// The KS object behind a file object, if it has one.
///
/// # Safety
/// `file` is null or a live file object of this driver.
pub unsafe fn object_of<'a>(file: *mut nt::FILE_OBJECT) -> Option<&'a KsObject<Kernel>> {
    if file.is_null() {
        return None;
    }
    // SAFETY: the caller's contract; FsContext is null or our PoolBox pointer, live
    // until IRP_MJ_CLOSE of this file object.
    unsafe { (*file).FsContext.cast::<KsObject<Kernel>>().as_ref() }
}

/// Completes `irp` with `status` and returns the status for the dispatch routine.
///
/// # Safety
/// `irp` is live and ours, not yet completed.
unsafe fn complete(irp: nt::PIRP, status: NtStatus, information: usize) -> nt::NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe { nt::IoCompleteRequest(irp, status.0, information) };
    status.0
}

/// IRP_MJ_CREATE. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager with a live create IRP for our device.
pub unsafe extern "C" fn dispatch_create(
    device: nt::PDEVICE_OBJECT,
    irp: nt::PIRP,
) -> nt::NTSTATUS {
    // SAFETY: our device; the guard releases at return, after completion.
    let Some(_guard) = (unsafe { RemoveLockGuard::acquire(device, irp) }) else {
        // SAFETY: live IRP, not completed.
        return unsafe { complete(irp, NtStatus(nt::STATUS_DELETE_PENDING), 0) };
    };
    // SAFETY: a create IRP has a current stack location with its file object.
    let file = unsafe { (*nt::IoGetCurrentIrpStackLocation(irp)).FileObject };
    // SAFETY: the related file object, if any, is one of ours (the I/O manager only
    // routes relative opens to the device that owns the parent).
    let parent = unsafe { object_of((*file).RelatedFileObject) };
    // SAFETY: FileName is a counted UTF-16 string of Length bytes owned by the file object.
    let name = unsafe {
        let name = &(*file).FileName;
        if name.Buffer.is_null() || name.Length == 0 {
            &[][..]
        } else {
            core::slice::from_raw_parts(name.Buffer.cast::<u8>(), usize::from(name.Length))
        }
    };
    // SAFETY: reading the create IRP's header.
    let requestor = unsafe { requestor_of(irp) };
    let status = match KsObject::create(&Kernel, parent, name, requestor) {
        Ok(object) => match PoolBox::try_new(object) {
            Ok(context) => {
                // SAFETY: our file object; FsContext is ours to set at create.
                unsafe { (*file).FsContext = context.into_raw().as_ptr().cast() };
                NtStatus::SUCCESS
            }
            Err(object) => {
                // No context: close and drop the object, which gives back what create
                // took (a pin instance, an allocator slot and its frames).
                object.close();
                drop(object);
                NtStatus::INSUFFICIENT_RESOURCES
            }
        },
        Err(status) => status,
    };
    // SAFETY: live IRP, completed once here.
    unsafe { complete(irp, status, 0) }
}

/// IRP_MJ_CLEANUP: the last handle is closed; kernel references may remain
/// ("IRP_MJ_CLEANUP" page). An allocator cancels its pending ALLOCs here (they reference
/// the file object; CLOSE waits for them), refuses new IRP-based requests and disables
/// its events; its function table keeps working until IRP_MJ_CLOSE. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager with a live IRP.
pub unsafe extern "C" fn dispatch_cleanup(
    _device: nt::PDEVICE_OBJECT,
    irp: nt::PIRP,
) -> nt::NTSTATUS {
    // SAFETY: a cleanup IRP carries its file object.
    let file = unsafe { (*nt::IoGetCurrentIrpStackLocation(irp)).FileObject };
    // SAFETY: our file object.
    if let Some(object) = unsafe { object_of(file) } {
        object.cleanup();
    }
    // SAFETY: live IRP, completed once here.
    unsafe { complete(irp, NtStatus::SUCCESS, 0) }
}

/// IRP_MJ_CLOSE: the last reference is gone ("IRP_MJ_CLOSE" page); the context goes with
/// it, and with the context what the object held of its parent. The related file object
/// is not read: it may be gone. An allocator with frames still out leaks its frame block
/// rather than free it under a client (the core's drop). PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager with a live IRP.
pub unsafe extern "C" fn dispatch_close(
    _device: nt::PDEVICE_OBJECT,
    irp: nt::PIRP,
) -> nt::NTSTATUS {
    // SAFETY: a close IRP carries its file object.
    let file = unsafe { (*nt::IoGetCurrentIrpStackLocation(irp)).FileObject };
    // SAFETY: our file object; after this IRP nobody reads FsContext.
    let context = unsafe { NonNull::new((*file).FsContext.cast::<KsObject<Kernel>>()) };
    if let Some(context) = context {
        // SAFETY: set from PoolBox::into_raw at create, taken back once, here.
        let object = unsafe { PoolBox::from_raw(context) };
        object.close();
        // SAFETY: our file object.
        unsafe { (*file).FsContext = core::ptr::null_mut() };
        drop(object);
    }
    // SAFETY: live IRP, completed once here.
    unsafe { complete(irp, NtStatus::SUCCESS, 0) }
}

/// `Irp->RequestorMode` as the core's requestor.
///
/// # Safety
/// `irp` is live.
unsafe fn requestor_of(irp: nt::PIRP) -> Requestor {
    // SAFETY: the caller's contract.
    if unsafe { (*irp).RequestorMode } == nt::KERNEL_MODE {
        Requestor::Kernel
    } else {
        Requestor::User
    }
}

/// The IRP's `Tail.Overlay.DriverContext`, where an IOCTL's remove-lock guard waits for
/// the IRP's completion (4 pointers; the guard is 2).
///
/// # Safety
/// `irp` is live and ours (the driver owns DriverContext while it owns the IRP).
unsafe fn guard_slot(irp: nt::PIRP) -> *mut RemoveLockGuard {
    const {
        assert!(
            core::mem::size_of::<RemoveLockGuard>() <= 4 * core::mem::size_of::<usize>()
                && core::mem::align_of::<RemoveLockGuard>() <= core::mem::align_of::<usize>()
        );
    };
    // SAFETY: the caller's contract; the Overlay arm of Tail is the one a driver that
    // owns the IRP uses (the Apc arm is the I/O manager's after completion).
    unsafe {
        (&raw mut (*irp)
            .Tail
            .Overlay
            .__bindgen_anon_1
            .__bindgen_anon_1
            .DriverContext)
            .cast()
    }
}

/// Keeps `guard` in `irp` until [`take_remove_lock`].
///
/// # Safety
/// `irp` is live and ours, not yet visible to another completer, with no guard stashed.
unsafe fn stash_remove_lock(irp: nt::PIRP, guard: RemoveLockGuard) {
    // SAFETY: the caller's contract; the slot fits the guard (guard_slot's assertion).
    unsafe { guard_slot(irp).write(guard) };
}

/// Takes back the guard [`stash_remove_lock`] kept in `irp`; the caller drops it after
/// completing the IRP.
///
/// # Safety
/// `irp` is live and ours, went through [`dispatch_device_control`] (which stashed a
/// guard), and its guard has not been taken yet.
pub unsafe fn take_remove_lock(irp: nt::PIRP) -> RemoveLockGuard {
    // SAFETY: the caller's contract: a guard written by stash_remove_lock, read once.
    unsafe { guard_slot(irp).read() }
}

/// Where a pended ALLOC's frame address goes: the system buffer for a user requestor
/// (the I/O manager copies it out in the requestor's context), the caller's own kernel
/// buffer for a kernel requestor.
///
/// # Safety
/// `irp` is a live IOCTL IRP that went through [`dispatch_device_control`].
pub unsafe fn alloc_output(irp: nt::PIRP) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe {
        if (*irp).Flags & nt::IRP_BUFFERED_IO != 0 {
            (*irp).AssociatedIrp.SystemBuffer
        } else {
            (*irp).UserBuffer
        }
    }
}

/// IRP_MJ_DEVICE_CONTROL: KS property, method and event requests. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager with a live IRP, in the requestor's thread context.
pub unsafe extern "C" fn dispatch_device_control(
    device: nt::PDEVICE_OBJECT,
    irp: nt::PIRP,
) -> nt::NTSTATUS {
    // SAFETY: our device.
    let Some(guard) = (unsafe { RemoveLockGuard::acquire(device, irp) }) else {
        // SAFETY: live IRP, not completed.
        return unsafe { complete(irp, NtStatus(nt::STATUS_DELETE_PENDING), 0) };
    };
    // SAFETY: an IOCTL IRP has a current stack location.
    let stack = unsafe { nt::IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: the DeviceIoControl arm of the parameters union is the one an IOCTL IRP
    // fills.
    let (code, in_len, out_len, type3, file) = unsafe {
        let p = &(*stack).Parameters.DeviceIoControl;
        (
            p.IoControlCode,
            p.InputBufferLength as usize,
            p.OutputBufferLength as usize,
            p.Type3InputBuffer,
            (*stack).FileObject,
        )
    };
    // SAFETY: our file object.
    let Some(object) = (unsafe { object_of(file) }) else {
        // SAFETY: live IRP, not completed.
        let status = unsafe { complete(irp, NtStatus::INVALID_DEVICE_REQUEST, 0) };
        drop(guard);
        return status;
    };
    // SAFETY: reading the IRP header.
    let (user_buffer, requestor) = unsafe { ((*irp).UserBuffer, requestor_of(irp)) };
    // The guard stays with the IRP until it completes: a pended ALLOC may be completed
    // by another thread before dispatch returns, so it goes into the IRP first.
    // SAFETY: our IRP, not yet visible to any completer.
    unsafe { stash_remove_lock(irp, guard) };
    let reply = match requestor {
        // SAFETY: a kernel requestor's METHOD_NEITHER buffers are kernel addresses it
        // vouches for, valid for this call (and, for a pended ALLOC, until completion).
        Requestor::Kernel => unsafe {
            kernel_request(object, irp, code, type3, in_len, user_buffer, out_len)
        },
        // SAFETY: PASSIVE_LEVEL in the requestor's context, as captures need.
        Requestor::User => {
            match unsafe { user_request(object, irp, code, type3, in_len, user_buffer, out_len) } {
                Ok(reply) => reply,
                Err(status) => Reply::Complete {
                    status,
                    information: 0,
                },
            }
        }
    };
    match reply {
        // The IRP and its remove-lock guard belong to the completer now.
        Reply::Pending => nt::STATUS_PENDING,
        Reply::Complete {
            mut status,
            mut information,
        } => {
            // SAFETY: a synchronous reply: the IRP never became visible to a completer,
            // so the guard stashed above is still there.
            let guard = unsafe { take_remove_lock(irp) };
            // SAFETY: the stack location is still ours until we complete.
            let marked = unsafe { (*stack).Control } & nt::SL_PENDING_RETURNED != 0;
            // SAFETY: reading our IRP's flags and system buffer before completion.
            let (buffered, system) = unsafe {
                (
                    (*irp).Flags & nt::IRP_BUFFERED_IO != 0,
                    (*irp).AssociatedIrp.SystemBuffer,
                )
            };
            if buffered {
                // A synchronous answer goes back now, in the requestor's context, under
                // SEH; the I/O manager's buffered copy is only for a pended ALLOC.
                // SAFETY: our IRP, before completion.
                unsafe { (*irp).Flags &= !nt::IRP_INPUT_OPERATION };
                if !status.is_error() && information > 0 && information <= out_len {
                    // SAFETY: PASSIVE_LEVEL, requestor's context; the system buffer holds
                    // out_len bytes.
                    if let Err(fault) =
                        unsafe { crate::seh::publish(user_buffer, system, information) }
                    {
                        (status, information) = (fault, 0);
                    }
                }
            }
            // SAFETY: live IRP, completed once here.
            unsafe { complete(irp, status, information) };
            drop(guard);
            // An IRP marked pending (a refused ALLOC that was armed) must return PENDING.
            if marked {
                nt::STATUS_PENDING
            } else {
                status.0
            }
        }
    }
}

/// A kernel requestor's IOCTL: its buffers are used in place.
///
/// # Safety
/// See [`dispatch_device_control`].
unsafe fn kernel_request(
    object: &KsObject<Kernel>,
    irp: nt::PIRP,
    code: u32,
    input: *mut c_void,
    in_len: usize,
    output: *mut c_void,
    out_len: usize,
) -> Reply {
    if (input.is_null() && in_len != 0) || (output.is_null() && out_len != 0) {
        return Reply::Complete {
            status: NtStatus::INVALID_PARAMETER,
            information: 0,
        };
    }
    // SAFETY: non-null (checked) kernel buffers of these lengths, per the contract.
    let (input, output) = unsafe {
        (
            if in_len == 0 {
                &[][..]
            } else {
                core::slice::from_raw_parts(input.cast::<u8>(), in_len)
            },
            if out_len == 0 {
                &mut [][..]
            } else {
                core::slice::from_raw_parts_mut(output.cast::<u8>(), out_len)
            },
        )
    };
    let request = Request(NonNull::new(irp).expect("the I/O manager passes a live IRP"));
    device_control(
        &Kernel,
        object,
        Ioctl {
            code,
            input,
            output,
            requestor: Requestor::Kernel,
            request: &request,
        },
    )
}

/// A user requestor's IOCTL: the request is captured into pool; the data buffer is
/// captured into a pool block that becomes the IRP's system buffer, which the I/O
/// manager copies back to the caller's buffer on completion (Information bytes) and
/// frees. This is what ks.sys's property handler does.
///
/// # Safety
/// See [`dispatch_device_control`].
unsafe fn user_request(
    object: &KsObject<Kernel>,
    irp: nt::PIRP,
    code: u32,
    input: *mut c_void,
    in_len: usize,
    output: *mut c_void,
    out_len: usize,
) -> Result<Reply, NtStatus> {
    // SAFETY: PASSIVE_LEVEL, requestor's context: the capture probes and catches.
    let mut request_copy = unsafe { Captured::from_user(input, in_len) }?;
    // SAFETY: as above.
    let mut data = unsafe { Captured::from_user(output, out_len) }?;
    let data_slice: *mut [u8] = data.bytes_mut();
    if out_len != 0 {
        let buffer = data.into_irp_buffer();
        // SAFETY: our IRP; from here the I/O manager owns the buffer (DEALLOCATE) and
        // copies Information bytes of it to UserBuffer at completion (INPUT_OPERATION).
        unsafe {
            (*irp).AssociatedIrp.SystemBuffer = buffer;
            (*irp).Flags |=
                nt::IRP_BUFFERED_IO | nt::IRP_DEALLOCATE_BUFFER | nt::IRP_INPUT_OPERATION;
        }
    }
    let request = Request(NonNull::new(irp).expect("the I/O manager passes a live IRP"));
    // SAFETY: the data block lives until the IRP completes (owned by the IRP now, or by
    // `data` when empty), which is after this call for a synchronous reply, and the core
    // does not keep the slice for a pended one (it writes through alloc_output).
    let output = unsafe { &mut *data_slice };
    Ok(device_control(
        &Kernel,
        object,
        Ioctl {
            code,
            input: request_copy.bytes_mut(),
            output,
            requestor: Requestor::User,
            request: &request,
        },
    ))
}

/// The cancel routine of a pended ALLOC. Called by IoCancelIrp at DISPATCH_LEVEL with
/// the cancel spin lock held.
///
/// # Safety
/// Called by the I/O manager with a live, cancelled IRP whose routine we armed.
pub unsafe extern "C" fn cancel_routine(_device: nt::PDEVICE_OBJECT, irp: nt::PIRP) {
    // SAFETY: we hold the cancel spin lock on entry and must drop it first.
    unsafe { nt::IoReleaseCancelSpinLock((*irp).CancelIrql) };
    // SAFETY: the IRP is live (queued until the core completes it) and its file object
    // is referenced by it.
    let file = unsafe { (*nt::IoGetCurrentIrpStackLocation(irp)).FileObject };
    // SAFETY: our file object.
    if let Some(allocator) = unsafe { object_of(file) }.and_then(KsObject::as_allocator) {
        // Completes the IRP with STATUS_CANCELLED if still queued; if a free took it
        // first, the free completes it.
        allocator.cancel(irp as usize);
    }
}
