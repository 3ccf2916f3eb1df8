//! The cross-build's stand-in for the I/O manager's file objects (Wine only).
//!
//! Wine 8 cannot open a KS pin or allocator: a create relative to a device-file handle
//! never reaches the driver (shared/reference/linux-pe-wine.md, "Relative creates").
//! ksprobe runs in the same winedevice.exe as ksalloc (one service group), so here it
//! does the I/O manager's part of `ZwCreateFile` / `ZwClose` / `ObReferenceObject` /
//! `ObDereferenceObject` itself:
//!
//! - finds ksalloc's device through `\Driver\ksalloc` (`ObReferenceObjectByName`): the
//!   one name it resolves is `\Device\ksalloc` followed by the KS create name;
//! - makes a zeroed `FILE_OBJECT` in nonpaged pool (`Type`, `Size`, `DeviceObject`,
//!   `FileName` = the create name with its parameters, `RelatedFileObject` = the
//!   parent's file object) and sends IRP_MJ_CREATE with `IoAllocateIrp` +
//!   `IoCallDriver`; a failed create frees it without CLEANUP or CLOSE;
//! - counts the references itself (the handle is one): closing the handle sends
//!   IRP_MJ_CLEANUP, the last reference IRP_MJ_CLOSE. `ObReferenceObject` must never see
//!   these file objects: Wine keeps an object header in front of every real object.
//! - After CLOSE the file object is poisoned (every byte 0xDD, as a freed block under
//!   Driver Verifier) and parked in a small quarantine before it goes back to pool, so a
//!   driver that reads a closed file object (a child's `RelatedFileObject`) meets the
//!   poison instead of a reused block. As on Windows, a child holds no reference on its
//!   parent: `RelatedFileObject` is valid during IRP_MJ_CREATE only ("FILE_OBJECT
//!   structure" DDI page).
//!
//! It is on only when ksprobe's service key has the DWORD `StandIn` = 1 (set by
//! tests/wine/run.sh, never by the INF), read once in DriverEntry ([`configure`]):
//! elsewhere (ReactOS under QEMU) the cross-build opens with `ZwCreateFile` through the
//! kernel's own I/O manager.
//!
//! What it does not reproduce: the object manager (no handles, no names beyond the one
//! above, no access checks or share access, no security context in the create), the
//! I/O manager's own ordering of CLEANUP and CLOSE against IRPs still in flight (IRPs do
//! not reference their file object here; ksprobe's IOCTLs come from
//! `IoBuildDeviceIoControlRequest`, which does not either), APC completion, and IRQL
//! (Wine's is not real). The WDK build never compiles this module: there ksprobe opens
//! everything with `ZwCreateFile` through the real I/O manager.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use ks_abi::NtStatus;
use ksprobe_scenarios::path::{eq_ascii_ignore_case, KSALLOC_DRIVER_NAME};

use crate::nt;

/// Whether the stand-in is on (set once in DriverEntry, before any run).
static ENABLED: AtomicBool = AtomicBool::new(false);

static VALUE_NAME: [u16; 7] = nt::wide(b"StandIn");

/// Turns the stand-in on if the service key asks for it. PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
pub unsafe fn configure(registry_path: nt::PCUNICODE_STRING) {
    // SAFETY: the caller's contract.
    let on = unsafe { nt::service_dword(registry_path, &[], &VALUE_NAME) }.is_some_and(|v| v != 0);
    // Relaxed: written in DriverEntry, before the device accepts IRPs and before boot
    // mode's thread starts (both happen-after through the kernel's own synchronisation).
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether opens go through the stand-in.
pub fn enabled() -> bool {
    // Relaxed: see `configure`.
    ENABLED.load(Ordering::Relaxed)
}

/// The device name the stand-in resolves: ksalloc's named test device (src/legacy.rs).
const DEVICE_NAME: &str = "\\Device\\ksalloc";

/// A file object and the stand-in's bookkeeping. `file` comes first, so the
/// `PFILE_OBJECT` drivers see is the block's own address.
#[repr(C)]
struct Block {
    file: nt::FILE_OBJECT,
    /// The handle (until [`close_handle`]) plus every [`reference`].
    references: AtomicUsize,
    /// `FileName`'s buffer.
    name: Vec<u16>,
    /// The referenced `\Driver\ksalloc` of an absolute open (null for a relative one):
    /// keeps the device from going away while the file is open, as a file object does.
    driver: nt::PVOID,
}

/// Closed file objects kept poisoned before they go back to pool.
static QUARANTINE: [AtomicPtr<Block>; 64] = [const { AtomicPtr::new(null_mut()) }; 64];
/// Next quarantine slot.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// `ZwCreateFile` on `name`: relative to `parent` when given, else an absolute NT path
/// under `\Device\ksalloc`. Returns the file object (one reference: the handle's) and
/// the device its IRPs go to. PASSIVE_LEVEL.
///
/// # Errors
/// `STATUS_OBJECT_NAME_NOT_FOUND` for another name, `STATUS_INSUFFICIENT_RESOURCES`,
/// or the driver's create status.
///
/// # Safety
/// `parent` is null or a file object this module opened and still references.
pub unsafe fn open(
    parent: nt::PFILE_OBJECT,
    name: &[u16],
) -> Result<(nt::PFILE_OBJECT, nt::PDEVICE_OBJECT), NtStatus> {
    let (device, driver, name) = if parent.is_null() {
        let rest = strip_device_name(name).ok_or(NtStatus::OBJECT_NAME_NOT_FOUND)?;
        let driver = reference_ksalloc()?;
        // SAFETY: a referenced driver object; its device list is the driver's.
        let device = unsafe { (*driver.cast::<nt::DRIVER_OBJECT>()).DeviceObject };
        if device.is_null() {
            // SAFETY: the reference taken just above.
            unsafe { nt::ObDereferenceObject(driver) };
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
        (device, driver, rest)
    } else {
        // SAFETY: the caller's contract: a live file object of ours.
        (unsafe { (*parent).DeviceObject }, null_mut(), name)
    };
    let block = Box::into_raw(Box::new(Block {
        // SAFETY: FILE_OBJECT is plain data for which all-zero is valid (and is what
        // the I/O manager starts from).
        file: unsafe { core::mem::zeroed() },
        references: AtomicUsize::new(1),
        name: name.to_vec(),
        driver,
    }));
    let file = block.cast::<nt::FILE_OBJECT>();
    // SAFETY: `block` is fresh and ours alone until the create is sent.
    unsafe { init_file(block, device, parent) };
    // SAFETY: PASSIVE_LEVEL; a live device and a file object set up for it.
    let status = unsafe { send(device, file, nt::IRP_MJ_CREATE) };
    if status != NtStatus::SUCCESS {
        // A failed create: the I/O manager deletes the file object unseen by the driver
        // (no CLEANUP, no CLOSE).
        // SAFETY: nobody else knows the block: the driver failed its create.
        unsafe { free(block) };
        return Err(status);
    }
    Ok((file, device))
}

/// The rest of `name` after [`DEVICE_NAME`] (empty, or starting with a backslash).
fn strip_device_name(name: &[u16]) -> Option<&[u16]> {
    let prefix = name.get(..DEVICE_NAME.len())?;
    let rest = &name[DEVICE_NAME.len()..];
    (eq_ascii_ignore_case(prefix, DEVICE_NAME)
        && rest.first().is_none_or(|&c| c == u16::from(b'\\')))
    .then_some(rest)
}

/// `\Driver\ksalloc`, referenced. PASSIVE_LEVEL.
fn reference_ksalloc() -> Result<nt::PVOID, NtStatus> {
    let type_name: Vec<u16> = "IoDriverObjectType".encode_utf16().collect();
    let mut type_name = nt::counted(&type_name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    // SAFETY: PASSIVE_LEVEL; a counted string that outlives the call.
    let address = unsafe { nt::MmGetSystemRoutineAddress(&raw mut type_name) };
    if address.is_null() {
        return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
    }
    // SAFETY: ntoskrnl's `POBJECT_TYPE *IoDriverObjectType` data export: the address of a
    // pointer, set when the kernel started.
    let driver_type = unsafe { address.cast::<nt::PVOID>().read() };
    let driver_name: Vec<u16> = KSALLOC_DRIVER_NAME.encode_utf16().collect();
    let mut driver_name = nt::counted(&driver_name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let mut driver: nt::PVOID = null_mut();
    // SAFETY: PASSIVE_LEVEL; a kernel-mode lookup of a driver object by name; the
    // string outlives the call and `driver` receives a referenced object.
    let status = unsafe {
        nt::ObReferenceObjectByName(
            &raw mut driver_name,
            nt::OBJ_CASE_INSENSITIVE,
            null_mut(),
            0,
            driver_type,
            nt::KERNEL_MODE,
            null_mut(),
            &raw mut driver,
        )
    };
    if nt::nt_success(status) && !driver.is_null() {
        Ok(driver)
    } else {
        Err(NtStatus(status))
    }
}

/// Fills in the file object as the I/O manager does before IRP_MJ_CREATE.
///
/// # Safety
/// `block` is a fresh block from [`open`], not yet shared.
unsafe fn init_file(block: *mut Block, device: nt::PDEVICE_OBJECT, parent: nt::PFILE_OBJECT) {
    // SAFETY: the caller's contract: ours alone.
    let block = unsafe { &mut *block };
    let bytes = u16::try_from(block.name.len() * 2).unwrap_or(0xFFFE);
    let file = &mut block.file;
    file.Type = nt::IO_TYPE_FILE;
    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // 0xD8 bytes.
    let size = core::mem::size_of::<nt::FILE_OBJECT>() as i16;
    file.Size = size;
    file.DeviceObject = device;
    file.RelatedFileObject = parent;
    file.FileName = nt::UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: block.name.as_mut_ptr(),
    };
    // SAFETY: the file object's own events, initialised once before any use (the I/O
    // manager does the same).
    unsafe { nt::KeInitializeEvent(&raw mut file.Lock, nt::SYNCHRONIZATION_EVENT, 0) };
    // SAFETY: as above.
    unsafe { nt::KeInitializeEvent(&raw mut file.Event, nt::NOTIFICATION_EVENT, 0) };
}

/// `ZwClose` of the handle `open` returned: IRP_MJ_CLEANUP (it was the only handle),
/// then the handle's reference goes. PASSIVE_LEVEL.
///
/// # Safety
/// `file` came from [`open`]; its handle is closed once.
pub unsafe fn close_handle(file: nt::PFILE_OBJECT) {
    // SAFETY: the caller's contract: the handle's reference keeps it live.
    let device = unsafe { (*file).DeviceObject };
    // SAFETY: PASSIVE_LEVEL; CLEANUP of a file object the driver created.
    let _ = unsafe { send(device, file, nt::IRP_MJ_CLEANUP) };
    // SAFETY: the handle's reference.
    unsafe { dereference(file) };
}

/// `ObReferenceObject` on one of our file objects.
///
/// # Safety
/// `file` came from [`open`] and is still referenced by the caller.
pub unsafe fn reference(file: nt::PFILE_OBJECT) {
    // SAFETY: the caller's contract: the block is live.
    let block = unsafe { &*file.cast::<Block>() };
    // Relaxed: taking a reference while holding one orders nothing (as Arc::clone).
    block.references.fetch_add(1, Ordering::Relaxed);
}

/// `ObDereferenceObject` on one of our file objects: the last reference sends
/// IRP_MJ_CLOSE and retires the file object. PASSIVE_LEVEL.
///
/// # Safety
/// `file` came from [`open`]; the caller gives up one reference it holds.
pub unsafe fn dereference(file: nt::PFILE_OBJECT) {
    let block = file.cast::<Block>();
    // SAFETY: the caller's reference keeps the block live until this decrement.
    let references = unsafe { &(*block).references };
    // AcqRel: every use under another reference happens before the close below (as
    // Arc's drop).
    if references.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: the last reference: the file object stays valid for its CLOSE.
    let device = unsafe { (*file).DeviceObject };
    // SAFETY: PASSIVE_LEVEL; CLOSE of a file object the driver created, sent once.
    let _ = unsafe { send(device, file, nt::IRP_MJ_CLOSE) };
    // SAFETY: closed: no reference is left.
    unsafe { retire(block) };
}

/// Poisons a closed file object and parks it in the quarantine; the block it displaces
/// goes back to pool.
///
/// # Safety
/// `block` is closed and unreferenced.
unsafe fn retire(block: *mut Block) {
    // SAFETY: the caller's contract: ours alone now.
    let driver = unsafe { (*block).driver };
    if !driver.is_null() {
        // SAFETY: the reference `open` took on the driver object.
        unsafe { nt::ObDereferenceObject(driver) };
        // SAFETY: as above.
        unsafe { (*block).driver = null_mut() };
    }
    // SAFETY: the FILE_OBJECT part of our block; a driver reading it later finds 0xDD
    // in every field (FsContext 0xDDDD...: not a canonical address).
    unsafe {
        block
            .cast::<u8>()
            .write_bytes(0xDD, core::mem::size_of::<nt::FILE_OBJECT>());
    }
    // Relaxed: the slot index only spreads blocks over the ring.
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % QUARANTINE.len();
    // AcqRel: the displaced block's poisoning (by whoever parked it) happens before our
    // free, and ours before its eventual free.
    let old = QUARANTINE[slot].swap(block, Ordering::AcqRel);
    if !old.is_null() {
        // SAFETY: a retired block: nobody refers to it.
        unsafe { free(old) };
    }
}

/// Frees a block (its name goes with it).
///
/// # Safety
/// `block` came from `Box::into_raw` in [`open`] and nobody refers to it.
unsafe fn free(block: *mut Block) {
    // SAFETY: the caller's contract. The FILE_OBJECT part is plain data (poison
    // included); the Vec and the rest were never poisoned.
    drop(unsafe { Box::from_raw(block) });
}

/// Sends one IRP_MJ_CREATE / CLEANUP / CLOSE for `file` and waits for it. PASSIVE_LEVEL.
///
/// # Safety
/// `device` is live and `file` is a file object for it that outlives the call.
unsafe fn send(device: nt::PDEVICE_OBJECT, file: nt::PFILE_OBJECT, major: usize) -> NtStatus {
    // SAFETY: a live device.
    let stack_size = unsafe { (*device).StackSize };
    // SAFETY: PASSIVE_LEVEL; no quota charge.
    let irp = unsafe { nt::IoAllocateIrp(stack_size, 0) };
    if irp.is_null() {
        return NtStatus::INSUFFICIENT_RESOURCES;
    }
    // SAFETY: KEVENT is plain data, initialised right below; waited on before it goes.
    let mut event: nt::KEVENT = unsafe { core::mem::zeroed() };
    // SAFETY: our stack event.
    unsafe { nt::KeInitializeEvent(&raw mut event, nt::NOTIFICATION_EVENT, 0) };
    {
        // SAFETY: a fresh IRP, ours until sent.
        let irp = unsafe { &mut *irp };
        irp.RequestorMode = nt::KERNEL_MODE;
        irp.Flags = if major == nt::IRP_MJ_CREATE {
            nt::IRP_CREATE_FLAGS
        } else {
            nt::IRP_CLOSE_FLAGS
        };
    }
    // SAFETY: a fresh IRP from IoAllocateIrp: its next location is the first the
    // device reads.
    let next = unsafe { nt::IoGetNextIrpStackLocation(irp) };
    // SAFETY: that location, inside the IRP, ours until sent.
    let next = unsafe { &mut *next };
    #[allow(clippy::cast_possible_truncation)] // IRP_MJ_* codes are below 0x1C.
    let major = major as u8;
    next.MajorFunction = major;
    next.FileObject = file;
    // IoSetCompletionRoutine(irp, completed, &event, TRUE, TRUE, TRUE).
    next.CompletionRoutine = Some(crate::raw::completed);
    next.Context = (&raw mut event).cast();
    next.Control = nt::SL_INVOKE_ALWAYS;
    // SAFETY: a set-up IRP for a live device.
    unsafe { nt::IoCallDriver(device, irp) };
    // The completion routine runs on every path and signals the event.
    // SAFETY: PASSIVE_LEVEL; our event; no timeout.
    unsafe {
        nt::KeWaitForSingleObject(
            (&raw mut event).cast(),
            nt::EXECUTIVE,
            nt::KERNEL_MODE,
            0,
            null_mut(),
        )
    };
    // SAFETY: completed and kept by our routine: the IRP is ours again.
    let io_status = unsafe { &(*irp).IoStatus };
    // SAFETY: Status is the union's NTSTATUS view.
    let status = unsafe { io_status.__bindgen_anon_1.Status };
    // SAFETY: ours, freed once.
    unsafe { nt::IoFreeIrp(irp) };
    NtStatus(status)
}
