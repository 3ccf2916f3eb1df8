//! DriverEntry, the control device, and its four dispatch routines.
//!
//! ksprobe is a legacy (non-PnP) kernel service: DriverEntry creates one named control
//! device, `\Device\ksprobe` with the link `\DosDevices\ksprobe` (`\\.\ksprobe` from
//! user mode), and DriverUnload deletes it. The device is created by
//! `IoCreateDeviceSecure` (wdmsec.lib) with the SDDL `D:P(A;;GA;;;SY)(A;;GA;;;BA)` and
//! FILE_DEVICE_SECURE_OPEN, so only SYSTEM and Administrators can open it, or anything
//! below it. (A legacy service has no device node, so the INF's Security directive could
//! not apply; the cross-build for Wine, which has no wdmsec, uses `IoCreateDevice`.)
//!
//! CREATE, CLEANUP and CLOSE succeed; DEVICE_CONTROL serves `IOCTL_KSPROBE_RUN` through
//! `ksprobe_scenarios::wire::serve`, one run at a time.

use core::sync::atomic::{AtomicBool, Ordering};

use ksprobe_scenarios::wire::{serve, IOCTL_KSPROBE_RUN};

use crate::client::KernelClient;
use crate::nt;

static DEVICE_NAME: [u16; 15] = nt::wide(b"\\Device\\ksprobe");
static LINK_NAME: [u16; 19] = nt::wide(b"\\DosDevices\\ksprobe");
/// SYSTEM and built-in Administrators: all access; nobody else (protected DACL).
static SDDL: [u16; 27] = nt::wide(b"D:P(A;;GA;;;SY)(A;;GA;;;BA)");

/// The class GUID IoCreateDeviceSecure files the device under: an administrator can
/// override the SDDL under the registry key of this class. ksprobe's own,
/// `{6C7F5A10-2B3E-4F7A-9D1C-5E8B0A4C3D21}`.
#[cfg(nt_source = "wdk")]
const DEVICE_CLASS: ks_abi::Guid =
    ks_abi::Guid::from_u128(0x6c7f_5a10_2b3e_4f7a_9d1c_5e8b_0a4c_3d21);

/// Device type of the control device (the IOCTL's device type too).
const DEVICE_TYPE: u32 = ksprobe_scenarios::wire::FILE_DEVICE_KSPROBE;

/// `STATUS_DEVICE_BUSY`: a run is already in progress (ksalloc's pins admit one
/// instance each, so two runs at once would fail each other).
const STATUS_DEVICE_BUSY: nt::NTSTATUS = 0x8000_0011_u32 as nt::NTSTATUS;
/// `STATUS_INVALID_DEVICE_REQUEST`.
const STATUS_INVALID_DEVICE_REQUEST: nt::NTSTATUS = 0xC000_0010_u32 as nt::NTSTATUS;
/// `STATUS_INVALID_PARAMETER`.
const STATUS_INVALID_PARAMETER: nt::NTSTATUS = 0xC000_000D_u32 as nt::NTSTATUS;

/// Set while a run is in progress.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// `DriverEntry`. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the I/O manager with the driver object and service key path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut nt::DRIVER_OBJECT,
    registry_path: nt::PCUNICODE_STRING,
) -> nt::NTSTATUS {
    // Before anything allocates: which optional kernel routines this kernel has (the
    // global allocator takes ExAllocatePool2 where it exists).
    nt::resolve_optional_routines();
    driver.MajorFunction[nt::IRP_MJ_CREATE] = Some(dispatch_success);
    driver.MajorFunction[nt::IRP_MJ_CLEANUP] = Some(dispatch_success);
    driver.MajorFunction[nt::IRP_MJ_CLOSE] = Some(dispatch_success);
    driver.MajorFunction[nt::IRP_MJ_DEVICE_CONTROL] = Some(dispatch_device_control);
    driver.DriverUnload = Some(driver_unload);
    // SAFETY: DriverEntry's own registry path, at PASSIVE_LEVEL; before the device
    // exists and before boot mode starts, so every open sees the final setting.
    #[cfg(nt_source = "mingw")]
    unsafe {
        crate::standin::configure(registry_path);
    }

    let Some(mut device_name) = nt::counted(&DEVICE_NAME) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut device: nt::PDEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL, in DriverEntry; a named device with secure open, no
    // extension; the name and out pointer are valid for the call.
    let status = unsafe { create_device(driver, &raw mut device_name, &raw mut device) };
    if !nt::nt_success(status) {
        return status;
    }
    let Some(mut link) = nt::counted(&LINK_NAME) else {
        return STATUS_INVALID_PARAMETER;
    };
    // SAFETY: PASSIVE_LEVEL; both names are counted strings over statics.
    let status = unsafe { nt::IoCreateSymbolicLink(&raw mut link, &raw mut device_name) };
    if !nt::nt_success(status) {
        // SAFETY: nothing can reference the device yet: it has no link and no opener.
        unsafe { nt::IoDeleteDevice(device) };
        return status;
    }
    // SAFETY: our device, fully set up: it may receive IRPs from here on.
    unsafe { (*device).Flags &= !nt::DO_DEVICE_INITIALIZING };
    // SAFETY: DriverEntry's own registry path, at PASSIVE_LEVEL.
    let status = unsafe { crate::boot::start_if_requested(registry_path) };
    if !nt::nt_success(status) {
        // SAFETY: DriverEntry fails, so nothing opened the device: undo it as unload does.
        unsafe { driver_unload(driver) };
        return status;
    }
    nt::STATUS_SUCCESS
}

/// `IoCreateDeviceSecure` with ksprobe's SDDL.
///
/// # Safety
/// PASSIVE_LEVEL; pointers valid for the call.
#[cfg(nt_source = "wdk")]
unsafe fn create_device(
    driver: *mut nt::DRIVER_OBJECT,
    name: *mut nt::UNICODE_STRING,
    device: *mut nt::PDEVICE_OBJECT,
) -> nt::NTSTATUS {
    let Some(sddl) = nt::counted(&SDDL) else {
        return STATUS_INVALID_PARAMETER;
    };
    let class = nt::guid(&DEVICE_CLASS);
    // SAFETY: the caller's contract; the SDDL string and class GUID outlive the call.
    unsafe {
        nt::WdmlibIoCreateDeviceSecure(
            driver,
            0,
            name,
            DEVICE_TYPE,
            nt::FILE_DEVICE_SECURE_OPEN,
            0,
            &raw const sddl,
            &raw const class,
            device,
        )
    }
}

/// The cross-build (Wine has no wdmsec.lib and no access checks to speak of):
/// `IoCreateDevice`, still with FILE_DEVICE_SECURE_OPEN.
///
/// # Safety
/// PASSIVE_LEVEL; pointers valid for the call.
#[cfg(nt_source = "mingw")]
unsafe fn create_device(
    driver: *mut nt::DRIVER_OBJECT,
    name: *mut nt::UNICODE_STRING,
    device: *mut nt::PDEVICE_OBJECT,
) -> nt::NTSTATUS {
    let _ = &SDDL; // Only the WDK build applies it.
                   // SAFETY: the caller's contract.
    unsafe {
        nt::IoCreateDevice(
            driver,
            0,
            name,
            DEVICE_TYPE,
            nt::FILE_DEVICE_SECURE_OPEN,
            0,
            device,
        )
    }
}

/// `DriverUnload`: deletes the link and the device. PASSIVE_LEVEL; no handle is open
/// (the I/O manager does not unload a driver whose device has open files).
unsafe extern "C" fn driver_unload(driver: *mut nt::DRIVER_OBJECT) {
    if let Some(mut link) = nt::counted(&LINK_NAME) {
        // SAFETY: PASSIVE_LEVEL; the link DriverEntry created.
        let deleted = unsafe { nt::IoDeleteSymbolicLink(&raw mut link) };
        // Unload goes on either way: a link that is already gone is what we want.
        let _ = deleted;
    }
    // SAFETY: the driver object the I/O manager passes; its only device is ours.
    let device = unsafe { (*driver).DeviceObject };
    if !device.is_null() {
        // SAFETY: no IRP is in flight at unload.
        unsafe { nt::IoDeleteDevice(device) };
    }
}

/// IRP_MJ_CREATE / CLEANUP / CLOSE: nothing to set up or tear down per handle.
unsafe extern "C" fn dispatch_success(_device: nt::PDEVICE_OBJECT, irp: nt::PIRP) -> nt::NTSTATUS {
    // SAFETY: the I/O manager hands us the IRP to complete, once.
    unsafe { nt::complete_request(irp, nt::STATUS_SUCCESS, 0) };
    nt::STATUS_SUCCESS
}

/// IRP_MJ_DEVICE_CONTROL: `IOCTL_KSPROBE_RUN` runs the requested scenarios. PASSIVE_LEVEL
/// in the runner's thread (we are the top of our one-device stack), which the
/// scenarios' waits need.
unsafe extern "C" fn dispatch_device_control(
    _device: nt::PDEVICE_OBJECT,
    irp: nt::PIRP,
) -> nt::NTSTATUS {
    // SAFETY: the IRP the I/O manager sent us, with its current stack location.
    let stack = unsafe { nt::IoGetCurrentIrpStackLocation(irp) };
    // SAFETY: the current stack location of a live IRP.
    let parameters = unsafe { &(*stack).Parameters };
    // SAFETY: a DEVICE_CONTROL stack location: DeviceIoControl is the member set.
    let p = unsafe { &parameters.DeviceIoControl };
    let (code, input_len, output_len) = (
        p.IoControlCode,
        p.InputBufferLength as usize,
        p.OutputBufferLength as usize,
    );
    // SAFETY: a live IRP.
    let associated = unsafe { &(*irp).AssociatedIrp };
    // SAFETY: METHOD_BUFFERED: the union holds SystemBuffer, the I/O manager's
    // nonpaged copy of the input.
    let system = unsafe { associated.SystemBuffer }.cast::<u8>();
    let (status, information) = if code != IOCTL_KSPROBE_RUN {
        (STATUS_INVALID_DEVICE_REQUEST, 0)
    } else if system.is_null() || input_len == 0 {
        (STATUS_INVALID_PARAMETER, 0)
    } else if RUNNING.swap(true, Ordering::Acquire) {
        (STATUS_DEVICE_BUSY, 0)
    } else {
        // SAFETY: for METHOD_BUFFERED the I/O manager allocates SystemBuffer with
        // max(InputBufferLength, OutputBufferLength) bytes, holding the input; nothing
        // else touches it until we complete the IRP.
        let buffer = unsafe { core::slice::from_raw_parts_mut(system, input_len.max(output_len)) };
        let (status, information) = serve(buffer, input_len, output_len, KernelClient::for_request);
        RUNNING.store(false, Ordering::Release);
        (status.0, information)
    };
    // SAFETY: our IRP, completed once; for METHOD_BUFFERED the I/O manager copies
    // `information` bytes of SystemBuffer back to the runner.
    unsafe { nt::complete_request(irp, status, information) };
    status
}
