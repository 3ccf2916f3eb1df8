//! The WDM device: DriverEntry, AddDevice, PnP, Power, Unload, and the remove lock.
//!
//! ksalloc is a root-enumerated function driver: PnP creates the physical device
//! object, AddDevice puts our device object (FILE_DEVICE_KS, secure open) on it and
//! registers the filter's device interface under KSCATEGORY_DATATRANSFORM with the
//! KSNAME_Filter reference string, and IRP_MN_START_DEVICE enables it.

use ks_abi::guid::{KSCATEGORY_DATATRANSFORM, KSNAME_FILTER};

use crate::dispatch::{dispatch_cleanup, dispatch_close, dispatch_create, dispatch_device_control};
use crate::nt;
use crate::pool::TAG;

/// The device extension.
///
/// Invariant: initialised by `add_device` before the device is visible; `lower` and
/// `interface` stay valid until IRP_MN_REMOVE_DEVICE.
#[repr(C)]
pub struct DeviceExtension {
    lower: nt::PDEVICE_OBJECT,
    remove_lock: nt::IO_REMOVE_LOCK,
    interface: nt::UNICODE_STRING,
}

impl DeviceExtension {
    /// Initialises the extension of a device with no lower device (the test device of
    /// `legacy`): only its remove lock is needed.
    ///
    /// # Safety
    /// `device` was just created with a DeviceExtension-sized, zeroed extension.
    pub unsafe fn init_legacy(device: nt::PDEVICE_OBJECT) {
        // SAFETY: the caller's contract.
        let ext = unsafe { extension(device) };
        ext.lower = core::ptr::null_mut();
        // SAFETY: initialises the remove lock in place.
        unsafe {
            nt::IoInitializeRemoveLockEx(&raw mut ext.remove_lock, TAG, 0, 0, REMOVE_LOCK_SIZE)
        };
    }
}

/// `sizeof(IO_REMOVE_LOCK)`, which the IoXxxRemoveLock macros pass.
const REMOVE_LOCK_SIZE: u32 = core::mem::size_of::<nt::IO_REMOVE_LOCK>() as u32;

/// The filter interface's reference string: `{9B365890-165F-11D0-A195-0020AFD156E4}`.
static REFERENCE: [u16; 38] = nt::wide(&KSNAME_FILTER.to_braced_ascii());

/// # Safety
/// `device` is our function device object.
unsafe fn extension<'a>(device: nt::PDEVICE_OBJECT) -> &'a mut DeviceExtension {
    // SAFETY: IoCreateDevice gave it a DeviceExtension-sized extension, initialised in
    // add_device before any IRP can arrive.
    unsafe { &mut *(*device).DeviceExtension.cast::<DeviceExtension>() }
}

/// Holds the device's remove lock for one IRP.
pub struct RemoveLockGuard {
    lock: *mut nt::IO_REMOVE_LOCK,
    tag: nt::PVOID,
}

impl RemoveLockGuard {
    /// `IoAcquireRemoveLock`; `None` once removal has begun.
    ///
    /// # Safety
    /// `device` is our device object; `irp` is live.
    pub unsafe fn acquire(device: nt::PDEVICE_OBJECT, irp: nt::PIRP) -> Option<Self> {
        // SAFETY: the caller's contract.
        let lock = unsafe { &raw mut extension(device).remove_lock };
        let tag: nt::PVOID = irp.cast();
        // SAFETY: an initialised remove lock; the size argument is what the macro passes.
        let status = unsafe {
            nt::IoAcquireRemoveLockEx(lock, tag, c"ksalloc".as_ptr(), 0, REMOVE_LOCK_SIZE)
        };
        (status == nt::STATUS_SUCCESS).then_some(Self { lock, tag })
    }
}

impl Drop for RemoveLockGuard {
    fn drop(&mut self) {
        // SAFETY: releases the acquisition this guard holds.
        unsafe { nt::IoReleaseRemoveLockEx(self.lock, self.tag, REMOVE_LOCK_SIZE) };
    }
}

/// `DriverEntry`. PASSIVE_LEVEL.
///
/// # Safety
/// Called once by the kernel with our driver object.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut nt::DRIVER_OBJECT,
    registry_path: nt::PCUNICODE_STRING,
) -> nt::NTSTATUS {
    // Before anything allocates: which optional kernel routines this kernel has.
    report_processor_support(nt::resolve_optional_routines());
    // SAFETY: DriverEntry's own registry path, PASSIVE_LEVEL.
    unsafe { crate::platform::load_frame_budget(registry_path) };
    driver.MajorFunction[nt::IRP_MJ_CREATE] = Some(dispatch_create);
    driver.MajorFunction[nt::IRP_MJ_CLEANUP] = Some(dispatch_cleanup);
    driver.MajorFunction[nt::IRP_MJ_CLOSE] = Some(dispatch_close);
    driver.MajorFunction[nt::IRP_MJ_DEVICE_CONTROL] = Some(dispatch_device_control);
    driver.MajorFunction[nt::IRP_MJ_PNP] = Some(dispatch_pnp);
    driver.MajorFunction[nt::IRP_MJ_POWER] = Some(dispatch_power);
    driver.MajorFunction[nt::IRP_MJ_SYSTEM_CONTROL] = Some(dispatch_pass_down);
    driver.DriverUnload = Some(driver_unload);
    // SAFETY: every driver object has a driver extension.
    unsafe { (*driver.DriverExtension).AddDevice = Some(add_device) };
    // SAFETY: DriverEntry's own arguments.
    unsafe { crate::legacy::create_if_requested(driver, registry_path) }
}

/// One debugger line (COM1 under ReactOS, the `+debugstr` channel under Wine): whether
/// allocators keep per-processor state on this kernel, and if not, why (wdm-nt's
/// `optional` module). PASSIVE_LEVEL.
fn report_processor_support(support: nt::ProcessorSupport) {
    let line = match (support.routines, support.queued_dpcs_run) {
        (true, true) => c"ksalloc: per-processor state on: DPCs can be targeted and run\n",
        (false, true) => {
            c"ksalloc: per-processor state off: queued DPCs run, but no \
              KeGetCurrentProcessorNumberEx, KeQueryMaximumProcessorCountEx, \
              KeGetProcessorNumberFromIndex or KeSetTargetProcessorDpcEx\n"
        }
        (_, false) => c"ksalloc: per-processor state off: a queued DPC did not run\n",
    };
    // SAFETY: a NUL-terminated format without conversions; PASSIVE_LEVEL, within
    // DbgPrint's IRQL <= DIRQL ("DbgPrint function (wdm.h)").
    unsafe { nt::DbgPrint(line.as_ptr()) };
}

/// `DriverUnload`: PnP devices are gone by now (deleted at IRP_MN_REMOVE_DEVICE); the
/// test device, if any, goes here. PASSIVE_LEVEL.
unsafe extern "C" fn driver_unload(driver: *mut nt::DRIVER_OBJECT) {
    // SAFETY: unload: no IRP is in flight.
    unsafe { crate::legacy::delete(driver) };
}

/// `AddDevice`. PASSIVE_LEVEL.
///
/// # Safety
/// Called by the PnP manager with our driver object and a new PDO.
unsafe extern "C" fn add_device(
    driver: *mut nt::DRIVER_OBJECT,
    pdo: nt::PDEVICE_OBJECT,
) -> nt::NTSTATUS {
    let mut fdo: nt::PDEVICE_OBJECT = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; an unnamed FILE_DEVICE_KS device, opened only through its
    // interface, with secure open so names below the device get the same ACL check.
    let status = unsafe {
        nt::IoCreateDevice(
            driver,
            core::mem::size_of::<DeviceExtension>() as u32,
            core::ptr::null_mut(),
            nt::FILE_DEVICE_KS,
            nt::FILE_DEVICE_SECURE_OPEN,
            0,
            &raw mut fdo,
        )
    };
    if status != nt::STATUS_SUCCESS {
        return status;
    }
    // SAFETY: IoCreateDevice zeroed the extension; we own it until the device is live.
    let ext = unsafe { extension(fdo) };
    // SAFETY: initialises the remove lock in place, with the size the macro passes.
    unsafe { nt::IoInitializeRemoveLockEx(&raw mut ext.remove_lock, TAG, 0, 0, REMOVE_LOCK_SIZE) };
    // SAFETY: fdo is ours and not yet initialised-done; pdo is the PnP manager's.
    ext.lower = unsafe { nt::IoAttachDeviceToDeviceStack(fdo, pdo) };
    if ext.lower.is_null() {
        // SAFETY: nothing references fdo yet.
        unsafe { nt::IoDeleteDevice(fdo) };
        return nt::STATUS_NO_SUCH_DEVICE;
    }
    let guid = nt::guid(&KSCATEGORY_DATATRANSFORM);
    let mut reference = nt::counted(&REFERENCE);
    // SAFETY: PASSIVE_LEVEL; the call copies the reference string and allocates
    // `interface`, which we free at removal.
    let status = unsafe {
        nt::IoRegisterDeviceInterface(
            pdo,
            &raw const guid,
            &raw mut reference,
            &raw mut ext.interface,
        )
    };
    if status != nt::STATUS_SUCCESS {
        // SAFETY: undo the attach and the create; nothing else references fdo.
        unsafe {
            nt::IoDetachDevice(ext.lower);
            nt::IoDeleteDevice(fdo);
        }
        return status;
    }
    // SAFETY: our device object; setting flags before clearing INITIALIZING.
    unsafe {
        (*fdo).Flags |= nt::DO_POWER_PAGABLE;
        (*fdo).Flags &= !nt::DO_DEVICE_INITIALIZING;
    }
    nt::STATUS_SUCCESS
}

/// Passes an IRP we have nothing to add to down the stack.
///
/// # Safety
/// `device` is ours, `irp` is live and ours to pass.
unsafe extern "C" fn dispatch_pass_down(device: nt::PDEVICE_OBJECT, irp: nt::PIRP) -> nt::NTSTATUS {
    // SAFETY: our device.
    let Some(_guard) = (unsafe { RemoveLockGuard::acquire(device, irp) }) else {
        // SAFETY: live IRP, completed once here.
        unsafe { nt::IoCompleteRequest(irp, nt::STATUS_DELETE_PENDING, 0) };
        return nt::STATUS_DELETE_PENDING;
    };
    // SAFETY: skipping our stack location hands the lower driver our parameters.
    unsafe { nt::IoSkipCurrentIrpStackLocation(irp) };
    // SAFETY: the lower device is valid while we hold the remove lock.
    unsafe { nt::IoCallDriver(extension(device).lower, irp) }
}

/// IRP_MJ_POWER: we own no hardware; pass it down as WDM requires. PASSIVE_LEVEL
/// (DO_POWER_PAGABLE).
///
/// # Safety
/// As [`dispatch_pass_down`].
unsafe extern "C" fn dispatch_power(device: nt::PDEVICE_OBJECT, irp: nt::PIRP) -> nt::NTSTATUS {
    // SAFETY: our device.
    let Some(_guard) = (unsafe { RemoveLockGuard::acquire(device, irp) }) else {
        // SAFETY: the next power IRP may start; then complete this one once.
        unsafe {
            nt::PoStartNextPowerIrp(irp);
            nt::IoCompleteRequest(irp, nt::STATUS_DELETE_PENDING, 0);
        }
        return nt::STATUS_DELETE_PENDING;
    };
    // SAFETY: required before Windows Vista, harmless after; then pass down with
    // PoCallDriver.
    unsafe {
        nt::PoStartNextPowerIrp(irp);
        nt::IoSkipCurrentIrpStackLocation(irp);
        nt::PoCallDriver(extension(device).lower, irp)
    }
}

/// IRP_MJ_PNP. PASSIVE_LEVEL.
///
/// # Safety
/// As [`dispatch_pass_down`].
unsafe extern "C" fn dispatch_pnp(device: nt::PDEVICE_OBJECT, irp: nt::PIRP) -> nt::NTSTATUS {
    // SAFETY: our device.
    let ext = unsafe { extension(device) };
    // SAFETY: our device.
    let Some(guard) = (unsafe { RemoveLockGuard::acquire(device, irp) }) else {
        // SAFETY: live IRP, completed once here.
        unsafe { nt::IoCompleteRequest(irp, nt::STATUS_DELETE_PENDING, 0) };
        return nt::STATUS_DELETE_PENDING;
    };
    // SAFETY: a PnP IRP has a current stack location.
    let minor = unsafe { (*nt::IoGetCurrentIrpStackLocation(irp)).MinorFunction };
    match minor {
        nt::IRP_MN_START_DEVICE => {
            // Start the lower stack first, then enable the interface.
            // SAFETY: PASSIVE_LEVEL; waits for the lower driver and leaves the IRP ours.
            let forwarded = unsafe { nt::IoForwardIrpSynchronously(ext.lower, irp) } != 0;
            // SAFETY: the IRP is ours again after the synchronous forward.
            let mut status = if forwarded {
                unsafe { (*irp).IoStatus.__bindgen_anon_1.Status }
            } else {
                nt::STATUS_NO_SUCH_DEVICE
            };
            if nt::nt_success(status) {
                // SAFETY: `interface` was registered in add_device. Informational codes
                // count as success (NT_SUCCESS), as the MS page "IoSetDeviceInterfaceState
                // function (wdm.h)" has callers test.
                status = unsafe { nt::IoSetDeviceInterfaceState(&raw mut ext.interface, 1) };
            }
            // SAFETY: live IRP, completed once here.
            unsafe { nt::IoCompleteRequest(irp, status, 0) };
            status
        }
        nt::IRP_MN_SURPRISE_REMOVAL | nt::IRP_MN_STOP_DEVICE => {
            if minor == nt::IRP_MN_SURPRISE_REMOVAL {
                // SAFETY: disabling an enabled (or already disabled) interface.
                let disabled = unsafe { nt::IoSetDeviceInterfaceState(&raw mut ext.interface, 0) };
                // Nothing to undo and no one to tell if it fails: this IRP must succeed
                // and the device is going away either way.
                let _ = disabled;
            }
            // SAFETY: we must succeed these and pass them down.
            unsafe {
                (*irp).IoStatus.__bindgen_anon_1.Status = nt::STATUS_SUCCESS;
                nt::IoSkipCurrentIrpStackLocation(irp);
                nt::IoCallDriver(ext.lower, irp)
            }
        }
        nt::IRP_MN_QUERY_REMOVE_DEVICE
        | nt::IRP_MN_QUERY_STOP_DEVICE
        | nt::IRP_MN_CANCEL_REMOVE_DEVICE
        | nt::IRP_MN_CANCEL_STOP_DEVICE => {
            // The device holds no hardware state, so it can always be stopped or removed
            // and has nothing to restore on a cancel. Each of these must leave this driver
            // with IoStatus.Status = STATUS_SUCCESS before it goes down: MS pages
            // "IRP_MN_QUERY_REMOVE_DEVICE" and "IRP_MN_QUERY_STOP_DEVICE" (a function
            // driver that can remove/stop the device sets STATUS_SUCCESS and passes the IRP
            // down), "IRP_MN_CANCEL_REMOVE_DEVICE" and "IRP_MN_CANCEL_STOP_DEVICE" (a driver
            // must set STATUS_SUCCESS; a started device simply sets it and passes the IRP
            // on, no completion routine needed). Passed down untouched, the lower driver
            // would see the STATUS_NOT_SUPPORTED the PnP manager initialises PnP IRPs with.
            // SAFETY: a PnP IRP we pass down; our stack location is skipped.
            unsafe {
                (*irp).IoStatus.__bindgen_anon_1.Status = nt::STATUS_SUCCESS;
                nt::IoSkipCurrentIrpStackLocation(irp);
                nt::IoCallDriver(ext.lower, irp)
            }
        }
        nt::IRP_MN_REMOVE_DEVICE => {
            // SAFETY: disable the interface; wait until every IRP holding the lock has
            // finished (this releases our own acquisition too), then pass down, detach
            // and delete. Handles are all closed before REMOVE arrives, so no pended
            // ALLOC can remain (CLEANUP cancelled them).
            unsafe {
                // Ignored as at surprise removal: removal goes on whatever it returns.
                let _ = nt::IoSetDeviceInterfaceState(&raw mut ext.interface, 0);
                nt::IoReleaseRemoveLockAndWaitEx(guard.lock, guard.tag, REMOVE_LOCK_SIZE);
            }
            core::mem::forget(guard);
            // SAFETY: as above; after IoDeleteDevice nothing touches `ext`.
            unsafe {
                (*irp).IoStatus.__bindgen_anon_1.Status = nt::STATUS_SUCCESS;
                nt::IoSkipCurrentIrpStackLocation(irp);
                let status = nt::IoCallDriver(ext.lower, irp);
                nt::IoDetachDevice(ext.lower);
                nt::RtlFreeUnicodeString(&raw mut ext.interface);
                nt::IoDeleteDevice(device);
                status
            }
        }
        _ => {
            // SAFETY: anything else goes down untouched.
            unsafe {
                nt::IoSkipCurrentIrpStackLocation(irp);
                nt::IoCallDriver(ext.lower, irp)
            }
        }
    }
}
