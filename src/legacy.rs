//! A named device for hosts without Plug and Play (Wine's winedevice.exe).
//!
//! On Windows the PnP manager calls AddDevice for the root-enumerated device the INF
//! installs. A test host that only starts the service (`sc start`) never does, so the
//! filter would have no device to open. When the service key carries the DWORD value
//! `TestDevice` = 1 (set by the Wine test, never by the INF), DriverEntry also creates
//! `\Device\ksalloc` with the link `\DosDevices\ksalloc`, serving the same KS dispatch.
//! It has no lower device and sees no PnP or power IRPs; DriverUnload deletes it.

use crate::device::DeviceExtension;
use crate::nt::{self, counted, wide};

static VALUE_NAME: [u16; 10] = wide(b"TestDevice");
static DEVICE_NAME: [u16; 15] = wide(b"\\Device\\ksalloc");
static LINK_NAME: [u16; 19] = wide(b"\\DosDevices\\ksalloc");

/// Whether the service key asks for the test device. PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
unsafe fn requested(registry_path: nt::PCUNICODE_STRING) -> bool {
    // SAFETY: the caller's contract.
    unsafe { nt::service_dword(registry_path, &[], &VALUE_NAME) }.is_some_and(|v| v != 0)
}

/// Creates the test device if the service key asks for it. PASSIVE_LEVEL.
///
/// # Safety
/// Called from DriverEntry with its arguments.
pub unsafe fn create_if_requested(
    driver: &mut nt::DRIVER_OBJECT,
    registry_path: nt::PCUNICODE_STRING,
) -> nt::NTSTATUS {
    // SAFETY: DriverEntry's registry path.
    if !unsafe { requested(registry_path) } {
        return nt::STATUS_SUCCESS;
    }
    let mut device_name = counted(&DEVICE_NAME);
    let mut device: nt::PDEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; a named FILE_DEVICE_KS device with secure open.
    let status = unsafe {
        nt::IoCreateDevice(
            driver,
            core::mem::size_of::<DeviceExtension>() as u32,
            &raw mut device_name,
            nt::FILE_DEVICE_KS,
            nt::FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut device,
        )
    };
    if status != nt::STATUS_SUCCESS {
        return status;
    }
    // SAFETY: a fresh device whose zeroed extension is ours to initialise.
    unsafe { DeviceExtension::init_legacy(device) };
    let mut link = counted(&LINK_NAME);
    // SAFETY: PASSIVE_LEVEL; both names are counted strings.
    let status = unsafe { nt::IoCreateSymbolicLink(&raw mut link, &raw mut device_name) };
    if status != nt::STATUS_SUCCESS {
        // SAFETY: nothing references the device yet.
        unsafe { nt::IoDeleteDevice(device) };
        return status;
    }
    // SAFETY: our device; it may receive IRPs from here on.
    unsafe { (*device).Flags &= !nt::DO_DEVICE_INITIALIZING };
    nt::STATUS_SUCCESS
}

/// Deletes the test device, if any (DriverUnload). PASSIVE_LEVEL.
///
/// # Safety
/// Called from DriverUnload: no IRP is in flight.
pub unsafe fn delete(driver: *mut nt::DRIVER_OBJECT) {
    // SAFETY: the driver's device list; PnP devices are gone by unload, so any device
    // left is the test device.
    let device = unsafe { (*driver).DeviceObject };
    if device.is_null() {
        return;
    }
    let mut link = counted(&LINK_NAME);
    // SAFETY: the link and device we created.
    let deleted = unsafe { nt::IoDeleteSymbolicLink(&raw mut link) };
    // Unload goes on either way: a link that is already gone is what we want.
    let _ = deleted;
    // SAFETY: as above.
    unsafe { nt::IoDeleteDevice(device) };
}
