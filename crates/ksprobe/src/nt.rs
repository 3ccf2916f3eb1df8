//! Every kernel name ksprobe uses: the shared kernel layer `wdm-nt` (crates/wdm-nt), which
//! the ksalloc driver builds on too, under the names ksprobe's code uses, plus the one
//! routine only ksprobe needs.
#![allow(non_snake_case)] // WDK names.

pub use wdm_nt::*;
pub use wdm_nt::{counted_checked as counted, IoCompleteRequest as complete_request};

// `IoCreateDeviceSecure` (wdmsec.h), which is not part of the kernel: the WDK's static
// library wdmsec.lib implements it (build.rs links it). Current WDKs name the routine
// `WdmlibIoCreateDeviceSecure` and `#define` the old name to it; the prototype is the MS
// page "WdmlibIoCreateDeviceSecure function (wdmsec.h)".
#[cfg(nt_source = "wdk")]
unsafe extern "C" {
    /// `NTSTATUS WdmlibIoCreateDeviceSecure(...)`: IoCreateDevice with an SDDL string.
    pub fn WdmlibIoCreateDeviceSecure(
        DriverObject: *mut DRIVER_OBJECT,
        DeviceExtensionSize: u32,
        DeviceName: *mut UNICODE_STRING,
        DeviceType: u32,
        DeviceCharacteristics: u32,
        Exclusive: u8,
        DefaultSDDLString: PCUNICODE_STRING,
        DeviceClassGuid: *const GUID,
        DeviceObject: *mut PDEVICE_OBJECT,
    ) -> NTSTATUS;
}
