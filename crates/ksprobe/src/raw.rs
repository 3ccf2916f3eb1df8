//! Raw KS IOCTLs for the `bad_requests` scenario: one case of
//! `ksprobe_scenarios::requests`, sent exactly as it says.
//!
//! The IRP is built by hand (`IoAllocateIrp`), as the I/O manager builds one for
//! `NtDeviceIoControlFile`: `RequestorMode` as the case says, METHOD_NEITHER buffers in
//! `Type3InputBuffer` / `UserBuffer`. A user-mode case's buffers live in the current
//! process's user address space (`ZwAllocateVirtualMemory`; the run IOCTL arrives in
//! the runner's thread), so the driver must probe and capture them; a bad address is
//! passed on untouched. Completion is ours (a completion routine that keeps the IRP):
//! what the I/O manager would do next for such an IRP, we do here, copying a buffered
//! answer back to `UserBuffer` and freeing the driver's system buffer.

use alloc::vec::Vec;
use core::ptr::null_mut;

use ks_abi::NtStatus;
use ksprobe_scenarios::requests::{Buffer, IoctlCase, Mode};

use crate::nt;

/// How long a case may take before it is cancelled (none should pend).
const WAIT_MS: i64 = 5000;

/// A buffer as the IRP carries it: the address and length, and whether we own it.
#[derive(Clone, Copy)]
struct Place {
    address: usize,
    len: usize,
    ours: bool,
}

/// Sends `case` to `file` on `device`; `spare` is the `KSEVENTDATA` of an event never
/// enabled. Returns the status and Information. PASSIVE_LEVEL, in the runner's thread.
pub fn send(
    file: nt::PFILE_OBJECT,
    device: nt::PDEVICE_OBJECT,
    case: &IoctlCase,
    spare: &[u8],
) -> (NtStatus, usize) {
    let content = |b: &Buffer| -> Option<Vec<u8>> {
        match b {
            Buffer::Bytes(bytes) => Some(bytes.clone()),
            Buffer::SpareEvent => Some(spare.to_vec()),
            Buffer::Bad { .. } => None,
        }
    };
    let (input, data) = (content(&case.input), content(&case.data));
    let owned = input.as_ref().map_or(0, Vec::len) + data.as_ref().map_or(0, Vec::len);
    let mut memory = match Memory::new(case.mode, owned) {
        Ok(memory) => memory,
        Err(status) => return (status, 0),
    };
    let mut at = 0;
    let mut place = |b: &Buffer, bytes: Option<Vec<u8>>| match (b, bytes) {
        (Buffer::Bad { address, len }, _) => Place {
            address: *address,
            len: *len,
            ours: false,
        },
        (_, bytes) => {
            let bytes = bytes.unwrap_or_default();
            let address = memory.put(at, &bytes);
            at += bytes.len();
            Place {
                address,
                len: bytes.len(),
                ours: true,
            }
        }
    };
    let input = place(&case.input, input);
    let data = place(&case.data, data);
    let mode = match case.mode {
        Mode::Kernel => nt::KERNEL_MODE,
        Mode::User => nt::USER_MODE,
    };
    // SAFETY: PASSIVE_LEVEL; `device` and `file` are live (held by the scenario's rig);
    // our buffers stay allocated until `memory` drops, after the IRP is back.
    unsafe { call(device, file, case.code, mode, input, data) }
}

/// The memory of a case's own buffers: nonpaged pool for a kernel requestor, the
/// current process's user space for a user one.
enum Memory {
    Pool(Vec<u8>),
    User { base: nt::PVOID, size: usize },
}

impl Memory {
    fn new(mode: Mode, len: usize) -> Result<Self, NtStatus> {
        if mode == Mode::Kernel || len == 0 {
            return Ok(Self::Pool(alloc::vec![0; len.max(1)]));
        }
        let mut base: nt::PVOID = null_mut();
        // SIZE_T: 64 bits on x64 (wdk-sys's type; the cross-build's declaration agrees).
        let mut size = len as u64;
        // SAFETY: PASSIVE_LEVEL; fresh read-write pages in the current process (the
        // runner's), released in Drop.
        let status = unsafe {
            nt::ZwAllocateVirtualMemory(
                nt::CURRENT_PROCESS,
                &raw mut base,
                0,
                &raw mut size,
                nt::MEM_COMMIT_RESERVE,
                nt::PAGE_READWRITE,
            )
        };
        if nt::nt_success(status) {
            Ok(Self::User {
                base,
                size: usize::try_from(size).unwrap_or(len),
            })
        } else {
            Err(NtStatus(status))
        }
    }

    /// Copies `bytes` to offset `at`; their address.
    fn put(&mut self, at: usize, bytes: &[u8]) -> usize {
        match self {
            Self::Pool(v) => {
                v[at..at + bytes.len()].copy_from_slice(bytes);
                v.as_ptr() as usize + at
            }
            Self::User { base, size } => {
                assert!(at + bytes.len() <= *size, "user buffers fit their pages");
                let to = base.cast::<u8>().wrapping_add(at);
                // SAFETY: our committed pages, `at + len <= size` (checked), in our own
                // process: nobody else writes them before the IRP is sent.
                unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to, bytes.len()) };
                to as usize
            }
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Self::User { base, .. } = self {
            let mut size = 0u64;
            // SAFETY: the region ZwAllocateVirtualMemory gave us; no IRP refers to it now.
            let _ = unsafe {
                nt::ZwFreeVirtualMemory(nt::CURRENT_PROCESS, base, &raw mut size, nt::MEM_RELEASE)
            };
        }
    }
}

/// Completion routine: signals the sender's event (`context`) and keeps the IRP (the
/// sender frees it). Also the stand-in's (standin.rs).
pub(crate) unsafe extern "C" fn completed(
    _device: nt::PDEVICE_OBJECT,
    _irp: nt::PIRP,
    context: nt::PVOID,
) -> nt::NTSTATUS {
    // SAFETY: `context` is the sender's event, waited on before it goes away.
    unsafe { nt::KeSetEvent(context.cast(), 0, 0) };
    nt::STATUS_MORE_PROCESSING_REQUIRED
}

/// Builds, sends and finishes one METHOD_NEITHER IOCTL IRP.
///
/// # Safety
/// PASSIVE_LEVEL; `device` and `file` live for the call; buffers marked ours are valid
/// for their lengths until it returns.
unsafe fn call(
    device: nt::PDEVICE_OBJECT,
    file: nt::PFILE_OBJECT,
    code: u32,
    mode: i8,
    input: Place,
    data: Place,
) -> (NtStatus, usize) {
    // SAFETY: a live device.
    let stack_size = unsafe { (*device).StackSize };
    // SAFETY: PASSIVE_LEVEL; no quota charge.
    let irp = unsafe { nt::IoAllocateIrp(stack_size, 0) };
    if irp.is_null() {
        return (NtStatus::INSUFFICIENT_RESOURCES, 0);
    }
    #[allow(clippy::cast_possible_truncation)] // Case buffers are at most 64 KiB + 1.
    let (input_len, data_len) = (input.len as u32, data.len as u32);
    // SAFETY: KEVENT is plain data, initialised right below; waited on before it goes.
    let mut event: nt::KEVENT = unsafe { core::mem::zeroed() };
    // SAFETY: our stack event.
    unsafe { nt::KeInitializeEvent(&raw mut event, nt::NOTIFICATION_EVENT, 0) };
    {
        // SAFETY: a fresh IRP, ours until sent.
        let irp = unsafe { &mut *irp };
        irp.RequestorMode = mode;
        irp.UserBuffer = data.address as nt::PVOID;
    }
    // SAFETY: a fresh IRP: its next location is the one the device reads.
    let next = unsafe { nt::IoGetNextIrpStackLocation(irp) };
    // SAFETY: that location, inside the IRP, ours until sent.
    let next = unsafe { &mut *next };
    #[allow(clippy::cast_possible_truncation)] // IRP_MJ_DEVICE_CONTROL is 0x0E.
    let major = nt::IRP_MJ_DEVICE_CONTROL as u8;
    next.MajorFunction = major;
    next.FileObject = file;
    {
        // SAFETY: the DeviceIoControl member is the one an IOCTL location carries.
        let p = unsafe { &mut next.Parameters.DeviceIoControl };
        p.IoControlCode = code;
        p.InputBufferLength = input_len;
        p.OutputBufferLength = data_len;
        p.Type3InputBuffer = input.address as nt::PVOID;
    }
    next.CompletionRoutine = Some(completed);
    next.Context = (&raw mut event).cast();
    next.Control = nt::SL_INVOKE_ALWAYS;
    // SAFETY: a set-up IRP for a live device.
    unsafe { nt::IoCallDriver(device, irp) };
    let mut limit = nt::LARGE_INTEGER {
        QuadPart: -WAIT_MS * 10_000,
    };
    // SAFETY: PASSIVE_LEVEL; our event.
    let waited = unsafe {
        nt::KeWaitForSingleObject(
            (&raw mut event).cast(),
            nt::EXECUTIVE,
            nt::KERNEL_MODE,
            0,
            &raw mut limit,
        )
    };
    if waited != nt::STATUS_SUCCESS {
        // Pending past the limit: cancel, then wait for the completion we need before
        // the IRP and buffers may go.
        // SAFETY: not completed yet (our routine keeps it until we free it below).
        unsafe { nt::IoCancelIrp(irp) };
        // SAFETY: as above, no timeout. With no timeout and not alertable the wait can
        // only end in STATUS_SUCCESS, so its status says nothing.
        let _ = unsafe {
            nt::KeWaitForSingleObject(
                (&raw mut event).cast(),
                nt::EXECUTIVE,
                nt::KERNEL_MODE,
                0,
                null_mut(),
            )
        };
    }
    // SAFETY: completed and kept by our routine: the IRP is ours again.
    let done = unsafe { &*irp };
    // SAFETY: Status is the union's NTSTATUS view.
    let status = unsafe { done.IoStatus.__bindgen_anon_1.Status };
    // SAFETY: a buffered-I/O IRP's union holds SystemBuffer (null otherwise: unused).
    let system = unsafe { done.AssociatedIrp.SystemBuffer };
    #[allow(clippy::cast_possible_truncation)] // ULONG_PTR: 64 bits on x64, as usize.
    let (information, flags) = (done.IoStatus.Information as usize, done.Flags);
    // The I/O manager's part for a buffered answer: copy back, then free the buffer.
    if flags & nt::IRP_BUFFERED_IO != 0 && !system.is_null() {
        // Not for an error (severity 3); warnings such as BUFFER_OVERFLOW copy too.
        #[allow(clippy::cast_sign_loss)] // The NTSTATUS bit pattern.
        let error = status as u32 >= 0xC000_0000;
        let copy = flags & nt::IRP_INPUT_OPERATION != 0 && data.ours && !error;
        if copy {
            let n = information.min(data.len);
            // SAFETY: the driver's system buffer holds at least Information bytes of
            // answer (at most the output length); `data` is our buffer of `data.len`.
            unsafe {
                core::ptr::copy_nonoverlapping(system.cast::<u8>(), data.address as *mut u8, n);
            }
        }
        if flags & nt::IRP_DEALLOCATE_BUFFER != 0 {
            // SAFETY: the driver handed the pool block to the IRP; freed once, here.
            unsafe { nt::ExFreePool(system) };
        }
    }
    // SAFETY: ours, freed once.
    unsafe { nt::IoFreeIrp(irp) };
    (NtStatus(status), information)
}
