//! Capturing a user-mode requestor's buffers, inside structured exception handling.
//!
//! The C unit `capture.c` does the probe and the copy under `__try/__except`; Rust
//! never dereferences a user address. A fault comes back as its NTSTATUS (usually
//! `STATUS_ACCESS_VIOLATION`), which the dispatcher completes the IRP with.

use core::ffi::c_void;
use core::ptr::NonNull;

use ks_abi::NtStatus;

use crate::pool;

unsafe extern "C" {
    fn ksalloc_capture_from_user(
        kernel_dst: *mut c_void,
        user_src: *const c_void,
        len: u64,
        align: u32,
    ) -> i32;
    fn ksalloc_publish_to_user(
        user_dst: *mut c_void,
        kernel_src: *const c_void,
        len: u64,
        align: u32,
    ) -> i32;
}

/// Copies `len` bytes of `kernel` out to the user address `user` under SEH.
///
/// # Errors
/// The exception a bad address raised.
///
/// # Safety
/// PASSIVE_LEVEL in the requestor's context; `kernel` holds `len` readable bytes.
pub unsafe fn publish(
    user: *mut c_void,
    kernel: *const c_void,
    len: usize,
) -> Result<(), NtStatus> {
    // SAFETY: the C unit probes `user` and catches any fault writing it; `kernel` is
    // readable per the contract.
    let status = unsafe { ksalloc_publish_to_user(user, kernel, len as u64, 1) };
    if status == 0 {
        Ok(())
    } else {
        Err(NtStatus(status))
    }
}

/// Largest request or data buffer a user-mode requestor may send (KS requests here are
/// at most a few hundred bytes; this bounds the pool a caller can make us allocate).
pub const MAX_USER_BUFFER: usize = 64 * 1024;

/// A kernel copy of a user buffer, in pool.
///
/// Invariant: `ptr` is a pool block of `len` bytes (dangling when `len == 0`), owned.
pub struct Captured {
    ptr: NonNull<u8>,
    len: usize,
}

impl Captured {
    /// Allocates `len` bytes and fills them from `user` (a user address) under SEH.
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` past [`MAX_USER_BUFFER`],
    /// `STATUS_INSUFFICIENT_RESOURCES`, or the exception a bad address raised.
    ///
    /// # Safety
    /// PASSIVE_LEVEL, in the requestor's thread context (so `user` means its address).
    pub unsafe fn from_user(user: *const c_void, len: usize) -> Result<Self, NtStatus> {
        if len == 0 {
            return Ok(Self {
                ptr: NonNull::dangling(),
                len,
            });
        }
        if len > MAX_USER_BUFFER {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let ptr = pool::allocate(len).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        let this = Self { ptr, len };
        // SAFETY: `ptr` is ours with `len` bytes; the C unit probes `user` and catches
        // any fault reading it.
        let status = unsafe { ksalloc_capture_from_user(ptr.as_ptr().cast(), user, len as u64, 1) };
        if status == 0 {
            Ok(this)
        } else {
            Err(NtStatus(status))
        }
    }

    /// The captured bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the invariant: `len` owned bytes (an empty slice when dangling).
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Hands the block to the IRP as its system buffer (the I/O manager frees it with
    /// IRP_DEALLOCATE_BUFFER); returns the pointer, or null for an empty buffer.
    pub fn into_irp_buffer(self) -> *mut c_void {
        let ptr = if self.len == 0 {
            core::ptr::null_mut()
        } else {
            self.ptr.as_ptr().cast()
        };
        core::mem::forget(self);
        ptr
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: the block is ours (invariant) and freed once, here.
            unsafe { pool::free(self.ptr) };
        }
    }
}
