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

// ---- raw IOCTLs (raw.rs) and the Wine stand-in for the I/O manager (standin.rs) -------
//
// In the cross-build declared by hand from their prototypes so that build.rs needs no
// change: wdm.h's IoAllocateIrp and IoFreeIrp,
// ntifs.h's ZwAllocateVirtualMemory and ZwFreeVirtualMemory (MS pages of those names),
// and ObReferenceObjectByName, which the WDK does not document and mingw-w64 declares in
// ntifs.h (not in ntddk.h); ntoskrnl exports all of them, Wine 8's too. IoDriverObjectType
// is a data export: the stand-in looks its address up with MmGetSystemRoutineAddress
// instead of importing data. Only raw.rs's names exist in the WDK build.

// (The WDK build takes these four from wdm-nt's wdk-sys names.)

#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `PIRP IoAllocateIrp(CCHAR StackSize, BOOLEAN ChargeQuota)`.
    pub fn IoAllocateIrp(StackSize: i8, ChargeQuota: u8) -> PIRP;
    /// `VOID IoFreeIrp(PIRP Irp)`.
    pub fn IoFreeIrp(Irp: PIRP);
    /// `NTSTATUS ZwAllocateVirtualMemory(HANDLE ProcessHandle, PVOID *BaseAddress,
    /// ULONG_PTR ZeroBits, PSIZE_T RegionSize, ULONG AllocationType, ULONG Protect)`.
    pub fn ZwAllocateVirtualMemory(
        ProcessHandle: HANDLE,
        BaseAddress: *mut PVOID,
        ZeroBits: usize,
        RegionSize: *mut u64,
        AllocationType: u32,
        Protect: u32,
    ) -> NTSTATUS;
    /// `NTSTATUS ZwFreeVirtualMemory(HANDLE ProcessHandle, PVOID *BaseAddress,
    /// PSIZE_T RegionSize, ULONG FreeType)`.
    pub fn ZwFreeVirtualMemory(
        ProcessHandle: HANDLE,
        BaseAddress: *mut PVOID,
        RegionSize: *mut u64,
        FreeType: u32,
    ) -> NTSTATUS;
    /// `NTSTATUS ObReferenceObjectByName(PUNICODE_STRING ObjectName, ULONG Attributes,
    /// PACCESS_STATE AccessState, ACCESS_MASK DesiredAccess, POBJECT_TYPE ObjectType,
    /// KPROCESSOR_MODE AccessMode, PVOID ParseContext, PVOID *Object)`.
    pub fn ObReferenceObjectByName(
        ObjectName: *mut UNICODE_STRING,
        Attributes: u32,
        AccessState: PVOID,
        DesiredAccess: u32,
        ObjectType: PVOID,
        AccessMode: i8,
        ParseContext: PVOID,
        Object: *mut PVOID,
    ) -> NTSTATUS;
}

/// `SynchronizationEvent` (`EVENT_TYPE`).
#[cfg(nt_source = "mingw")]
pub const SYNCHRONIZATION_EVENT: EVENT_TYPE = 1;
/// `STATUS_MORE_PROCESSING_REQUIRED`: a completion routine keeps the IRP.
#[allow(clippy::cast_possible_wrap)] // An NTSTATUS bit pattern.
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = 0xC000_0016_u32 as NTSTATUS;
/// `IO_TYPE_FILE`: `FILE_OBJECT.Type`.
#[cfg(nt_source = "mingw")]
pub const IO_TYPE_FILE: i16 = 5;
/// `IRP_CREATE_OPERATION` | `IRP_SYNCHRONOUS_API` (`IRP.Flags` of a create).
#[cfg(nt_source = "mingw")]
pub const IRP_CREATE_FLAGS: u32 = 0x0000_0080 | 0x0000_0004;
/// `IRP_CLOSE_OPERATION` | `IRP_SYNCHRONOUS_API` (`IRP.Flags` of a cleanup or close).
#[cfg(nt_source = "mingw")]
pub const IRP_CLOSE_FLAGS: u32 = 0x0000_0400 | 0x0000_0004;
/// `SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL`.
pub const SL_INVOKE_ALWAYS: u8 = 0x40 | 0x80 | 0x20;
/// `UserMode` (`KPROCESSOR_MODE`).
pub const USER_MODE: i8 = 1;
/// `NtCurrentProcess()`.
pub const CURRENT_PROCESS: HANDLE = -1_isize as HANDLE;
/// `MEM_COMMIT | MEM_RESERVE`.
pub const MEM_COMMIT_RESERVE: u32 = 0x0000_1000 | 0x0000_2000;
/// `MEM_RELEASE`.
pub const MEM_RELEASE: u32 = 0x0000_8000;
/// `PAGE_READWRITE`.
pub const PAGE_READWRITE: u32 = 0x04;
