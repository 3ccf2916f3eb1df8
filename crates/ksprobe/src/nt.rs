//! Every kernel name ksprobe uses, in one place (the root driver's `src/nt.rs` pattern).
//!
//! With the `wdk` feature the names are wdk-sys's (bindgen over the WDK's `ntifs.h` /
//! `ntddk.h`: types at the crate root, functions in `wdk_sys::ntddk`); with `cross` they
//! come from bindgen over mingw-w64's `ddk/ntddk.h` (build.rs), imported from
//! ntoskrnl.exe by raw-dylib. Above this module no code names either source.
//!
//! Below the re-exports: the WDK's inline functions and macros bindgen does not emit,
//! written from their definitions in `wdm.h`, and the constants ksprobe needs (values
//! from `wdm.h` / `ntstatus.h`, the same in every WDK).
//!
//! Status of each name: see crates/ksprobe/README.md ("What has been checked").
#![allow(non_snake_case, non_camel_case_types)] // WDK names.

// ---- functions and types --------------------------------------------------------------

#[cfg(nt_source = "wdk")]
pub use wdk_sys::{
    ntddk::{
        ExFreePoolWithTag, IoBuildDeviceIoControlRequest, IoCancelIrp, IoCreateSymbolicLink,
        IoDeleteDevice, IoDeleteSymbolicLink, IoGetDeviceInterfaces, IoGetRelatedDeviceObject,
        IofCallDriver, IofCompleteRequest, KeClearEvent, KeEnterGuardedRegion, KeInitializeEvent,
        KeLeaveGuardedRegion, KeQueryPerformanceCounter, KeReadStateEvent, KeWaitForSingleObject,
        MmIsAddressValid, ObReferenceObjectByHandle, ObfDereferenceObject, ObfReferenceObject,
        ZwClose, ZwCreateEvent, ZwCreateFile,
    },
    DRIVER_OBJECT, EVENT_TYPE, FILE_OBJECT, GUID, HANDLE, IO_STACK_LOCATION, IO_STATUS_BLOCK,
    KEVENT, KWAIT_REASON, LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES, PCUNICODE_STRING,
    PDEVICE_OBJECT, PFILE_OBJECT, PIRP, PVOID, UNICODE_STRING,
};

/// The cross-build's names: bindgen over mingw-w64's `ddk/ntddk.h` (build.rs).
#[cfg(nt_source = "mingw")]
#[allow(
    missing_docs,
    non_upper_case_globals,
    dead_code,
    unsafe_op_in_unsafe_fn,
    unnecessary_transmutes,
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::undocumented_unsafe_blocks
)]
mod mingw {
    include!(concat!(env!("OUT_DIR"), "/nt_mingw.rs"));
}

#[cfg(nt_source = "mingw")]
pub use mingw::{
    ExAllocatePoolWithTag, ExFreePoolWithTag, IoBuildDeviceIoControlRequest, IoCancelIrp,
    IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink,
    IoGetDeviceInterfaces, IoGetRelatedDeviceObject, IofCallDriver, IofCompleteRequest,
    KeBugCheckEx, KeClearEvent, KeEnterGuardedRegion, KeInitializeEvent, KeLeaveGuardedRegion,
    KeReadStateEvent, KeWaitForSingleObject, MmIsAddressValid, ObReferenceObjectByHandle,
    ObfDereferenceObject, ObfReferenceObject, ZwClose, ZwCreateFile, DRIVER_OBJECT, EVENT_TYPE,
    FILE_OBJECT, GUID, HANDLE, IO_STACK_LOCATION, IO_STATUS_BLOCK, KEVENT, KWAIT_REASON,
    LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES, PDEVICE_OBJECT, PFILE_OBJECT, PIRP, POOL_TYPE,
    PVOID, UNICODE_STRING,
};

/// `PCUNICODE_STRING` (mingw's ntddk.h has the type; the allowlist keeps it out).
#[cfg(nt_source = "mingw")]
pub type PCUNICODE_STRING = *const UNICODE_STRING;

// Three routines the cross-build's bindgen input cannot give: ZwCreateEvent is declared
// in ntifs.h, which ntddk.h does not include (prototype: MS page "ZwCreateEvent function
// (ntifs.h)"); KfRaiseIrql and KeLowerIrql are FORCEINLINE cr8 accesses in mingw-w64's
// x64 wdm.h, as in the WDK's, but ntoskrnl exports them too (mingw-w64's import library
// and Wine list them), and under Wine, where drivers run in user mode, the exports are
// the way to reach them.
#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `KIRQL KfRaiseIrql(KIRQL NewIrql)`.
    fn KfRaiseIrql(NewIrql: u8) -> u8;
    /// `VOID KeLowerIrql(KIRQL NewIrql)`.
    #[link_name = "KeLowerIrql"]
    fn KeLowerIrqlExport(NewIrql: u8);
    /// `NTSTATUS ZwCreateEvent(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES, EVENT_TYPE,
    /// BOOLEAN)`.
    pub fn ZwCreateEvent(
        EventHandle: *mut HANDLE,
        DesiredAccess: u32,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        EventType: EVENT_TYPE,
        InitialState: u8,
    ) -> NTSTATUS;
}

// KeQueryPerformanceCounter is a HAL routine (NTHALAPI): hal.dll exports it, in Wine too;
// mingw-w64's ntoskrnl import library and Wine's ntoskrnl.exe do not. (The WDK build
// links hal.lib as well, through wdk-build.)
#[cfg(nt_source = "mingw")]
#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `LARGE_INTEGER KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency)`.
    pub fn KeQueryPerformanceCounter(PerformanceFrequency: *mut LARGE_INTEGER) -> LARGE_INTEGER;
}

/// `IoCreateDeviceSecure` (wdmsec.h), which is not part of the kernel: the WDK's
/// static library wdmsec.lib implements it (build.rs links it). Current WDKs name the
/// routine `WdmlibIoCreateDeviceSecure` and `#define` the old name to it; the prototype
/// is the MS page "WdmlibIoCreateDeviceSecure function (wdmsec.h)".
#[cfg(nt_source = "wdk")]
unsafe extern "C" {
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

/// `ExFreePool` is a macro for `ExFreePoolWithTag(P, 0)`.
///
/// # Safety
/// `p` is a pool block the caller owns (e.g. an `IoGetDeviceInterfaces` list).
pub unsafe fn ExFreePool(p: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ExFreePoolWithTag(p, 0) };
}

// ---- constants (wdm.h / ntstatus.h / winnt.h values) ----------------------------------

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `IRP_MJ_CREATE`.
pub const IRP_MJ_CREATE: usize = 0x00;
/// `IRP_MJ_CLOSE`.
pub const IRP_MJ_CLOSE: usize = 0x02;
/// `IRP_MJ_DEVICE_CONTROL`.
pub const IRP_MJ_DEVICE_CONTROL: usize = 0x0e;
/// `IRP_MJ_CLEANUP`.
pub const IRP_MJ_CLEANUP: usize = 0x12;
/// `DO_DEVICE_INITIALIZING`.
pub const DO_DEVICE_INITIALIZING: u32 = 0x0000_0080;
/// `FILE_DEVICE_SECURE_OPEN`.
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x0000_0100;
/// `IO_NO_INCREMENT`.
pub const IO_NO_INCREMENT: i8 = 0;
/// `KernelMode` (`KPROCESSOR_MODE`).
pub const KERNEL_MODE: i8 = 0;
/// `Executive` (`KWAIT_REASON`). C enums are `int` in the WDK's (MSVC) bindings and
/// `unsigned int` in mingw's (GNU) ones: the constants take the bindings' own type.
pub const EXECUTIVE: KWAIT_REASON = 0;
/// `NotificationEvent` (`EVENT_TYPE`).
pub const NOTIFICATION_EVENT: EVENT_TYPE = 0;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;
/// `OBJ_CASE_INSENSITIVE`.
pub const OBJ_CASE_INSENSITIVE: u32 = 0x0000_0040;
/// `OBJ_KERNEL_HANDLE`: the handle lives in the kernel's handle table, not the
/// process the IOCTL arrived in.
pub const OBJ_KERNEL_HANDLE: u32 = 0x0000_0200;
/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `EVENT_ALL_ACCESS`.
pub const EVENT_ALL_ACCESS: u32 = 0x001F_0003;
/// `FILE_ATTRIBUTE_NORMAL`.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;
/// `FILE_OPEN` (create disposition).
pub const FILE_OPEN: u32 = 0x0000_0001;
/// `PAGE_SIZE` on x64.
pub const PAGE_SIZE: usize = 4096;

/// `NT_SUCCESS`.
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

// ---- inline functions and macros of wdm.h ---------------------------------------------

/// `IoGetCurrentIrpStackLocation`.
///
/// # Safety
/// `irp` is a live IRP this driver was handed, with a current stack location.
pub unsafe fn IoGetCurrentIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract: `irp` is live.
    let tail = unsafe { &(*irp).Tail };
    // SAFETY: while the IRP is in a driver's hands, Tail is the Overlay member (x64
    // layout of wdm.h's IRP).
    let overlay = unsafe { &tail.Overlay };
    // SAFETY: likewise, the union inside holds CurrentStackLocation, not PacketType.
    unsafe {
        overlay
            .__bindgen_anon_2
            .__bindgen_anon_1
            .CurrentStackLocation
    }
}

/// `IoGetNextIrpStackLocation`: the location the next driver (the one the IRP is sent
/// to) reads.
///
/// # Safety
/// `irp` is a live IRP this driver built and has not sent yet.
pub unsafe fn IoGetNextIrpStackLocation(irp: PIRP) -> *mut IO_STACK_LOCATION {
    // SAFETY: the caller's contract; an IRP from IoBuildDeviceIoControlRequest has its
    // current location one past the first stack location it set up, so one below the
    // current one is inside the IRP's stack locations.
    unsafe { IoGetCurrentIrpStackLocation(irp) }.wrapping_sub(1)
}

/// `IoCompleteRequest` with `IoStatus` set.
///
/// # Safety
/// `irp` is a live IRP this driver owns and completes exactly once, at IRQL <=
/// DISPATCH_LEVEL.
pub unsafe fn complete_request(irp: PIRP, status: NTSTATUS, information: usize) {
    // SAFETY: the caller's contract: the IRP is ours until completed.
    let io_status = unsafe { &mut (*irp).IoStatus };
    io_status.__bindgen_anon_1.Status = status;
    io_status.Information = information as _;
    // SAFETY: the caller's contract: completed once, at <= DISPATCH_LEVEL.
    unsafe { IofCompleteRequest(irp, IO_NO_INCREMENT) };
}

/// `IoCallDriver`.
///
/// # Safety
/// `device` is a live device object and `irp` has its next stack location set up.
pub unsafe fn IoCallDriver(device: PDEVICE_OBJECT, irp: PIRP) -> NTSTATUS {
    // SAFETY: the caller's contract.
    unsafe { IofCallDriver(device, irp) }
}

/// `ObDereferenceObject`.
///
/// # Safety
/// The caller holds a reference on `object`.
pub unsafe fn ObDereferenceObject(object: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ObfDereferenceObject(object) };
}

/// `ObReferenceObject`.
///
/// # Safety
/// `object` is a live object.
pub unsafe fn ObReferenceObject(object: PVOID) {
    // SAFETY: the caller's contract.
    unsafe { ObfReferenceObject(object) };
}

/// `KeRaiseIrql(new, &old)`: on x64 wdm.h defines `KfRaiseIrql` as a FORCEINLINE that
/// reads cr8 (the old IRQL) and writes the new one; bindgen emits no symbol for it.
///
/// # Safety
/// Kernel mode, and `new` >= the current IRQL (lowering through it bugchecks on
/// Windows).
#[cfg(nt_source = "wdk")]
pub unsafe fn KeRaiseIrql(new: u8) -> u8 {
    let old: u64;
    // SAFETY: ring 0: cr8 is the task priority register, i.e. the IRQL.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) old, options(nomem, nostack, preserves_flags));
    }
    // SAFETY: as above; raising only (the caller's contract).
    unsafe {
        core::arch::asm!("mov cr8, {}", in(reg) u64::from(new), options(nomem, nostack, preserves_flags));
    }
    #[allow(clippy::cast_possible_truncation)] // IRQL is 4 bits.
    let old = old as u8;
    old
}

/// `KeLowerIrql(old)`: on x64 a FORCEINLINE write of cr8 in wdm.h.
///
/// # Safety
/// Kernel mode; `old` is what the matching [`KeRaiseIrql`] returned.
#[cfg(nt_source = "wdk")]
pub unsafe fn KeLowerIrql(old: u8) {
    // SAFETY: ring 0; restores the level the caller raised from.
    unsafe {
        core::arch::asm!("mov cr8, {}", in(reg) u64::from(old), options(nomem, nostack, preserves_flags));
    }
}

/// `KeRaiseIrql` in the cross-build: ntoskrnl's exported `KfRaiseIrql` (Wine exports
/// it; there IRQL is not real and cr8 cannot be written from user mode).
///
/// # Safety
/// As the WDK version.
#[cfg(nt_source = "mingw")]
pub unsafe fn KeRaiseIrql(new: u8) -> u8 {
    // SAFETY: the caller's contract.
    unsafe { KfRaiseIrql(new) }
}

/// `KeLowerIrql` in the cross-build: the exported routine.
///
/// # Safety
/// As the WDK version.
#[cfg(nt_source = "mingw")]
pub unsafe fn KeLowerIrql(old: u8) {
    // SAFETY: the caller's contract.
    unsafe { KeLowerIrqlExport(old) };
}

/// A counted string over `text` (no terminator needed). `None` above 32,767 characters.
#[must_use]
pub fn counted(text: &[u16]) -> Option<UNICODE_STRING> {
    let bytes = u16::try_from(text.len() * 2)
        .ok()
        .filter(|&b| b < u16::MAX)?;
    Some(UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: text.as_ptr().cast_mut(),
    })
}

/// ASCII to UTF-16 at compile time.
#[must_use]
pub const fn wide<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = ascii[i] as u16;
        i += 1;
    }
    out
}

/// A `ks_abi::Guid` as the kernel's `GUID`.
#[must_use]
pub const fn guid(g: &ks_abi::Guid) -> GUID {
    GUID {
        Data1: g.data1,
        Data2: g.data2,
        Data3: g.data3,
        Data4: g.data4,
    }
}

// ---- boot mode (boot.rs): system thread, delay, debugger output, service key ----------

#[cfg(nt_source = "wdk")]
pub use wdk_sys::ntddk::{
    DbgPrint, KeDelayExecutionThread, PsCreateSystemThread, PsTerminateSystemThread, ZwOpenKey,
    ZwQueryValueKey,
};

// Declared by hand from their wdm.h prototypes (MS pages "PsCreateSystemThread",
// "PsTerminateSystemThread", "KeDelayExecutionThread", "ZwOpenKey", "ZwQueryValueKey",
// "DbgPrint"): every kernel exports them (Windows, Wine, ReactOS).
#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: u32,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
        ProcessHandle: HANDLE,
        ClientId: *mut c_void,
        StartRoutine: Option<unsafe extern "C" fn(StartContext: *mut c_void)>,
        StartContext: *mut c_void,
    ) -> NTSTATUS;
    pub fn PsTerminateSystemThread(ExitStatus: NTSTATUS) -> NTSTATUS;
    pub fn KeDelayExecutionThread(
        WaitMode: i8,
        Alertable: u8,
        Interval: *mut LARGE_INTEGER,
    ) -> NTSTATUS;
    pub fn ZwOpenKey(
        KeyHandle: *mut HANDLE,
        DesiredAccess: u32,
        ObjectAttributes: *mut OBJECT_ATTRIBUTES,
    ) -> NTSTATUS;
    pub fn ZwQueryValueKey(
        KeyHandle: HANDLE,
        ValueName: *mut UNICODE_STRING,
        KeyValueInformationClass: i32,
        KeyValueInformation: *mut c_void,
        Length: u32,
        ResultLength: *mut u32,
    ) -> NTSTATUS;
}

// DbgPrint is variadic: its own block (reference/linux-pe-wine.md).
#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    pub fn DbgPrint(Format: *const core::ffi::c_char, ...) -> u32;
}

#[cfg(nt_source = "mingw")]
use core::ffi::c_void;

/// `THREAD_ALL_ACCESS` (winnt.h, Vista and later).
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
/// `KEY_READ`.
pub const KEY_READ: u32 = 0x0002_0019;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `KeyValuePartialInformation` (`KEY_VALUE_INFORMATION_CLASS`).
pub const KEY_VALUE_PARTIAL_INFORMATION_CLASS: i32 = 2;

/// A DWORD value of the driver's service key, if it is there and is a REG_DWORD.
/// PASSIVE_LEVEL.
///
/// # Safety
/// `registry_path` is DriverEntry's service key path.
pub unsafe fn service_dword(registry_path: PCUNICODE_STRING, name: &[u16]) -> Option<u32> {
    // SAFETY: OBJECT_ATTRIBUTES is plain data; every field is set below.
    let mut attributes: OBJECT_ATTRIBUTES = unsafe { core::mem::zeroed() };
    attributes.Length = core::mem::size_of::<OBJECT_ATTRIBUTES>() as u32;
    attributes.ObjectName = registry_path.cast_mut();
    attributes.Attributes = OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE;
    let mut key: HANDLE = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; a kernel handle to our own service key, closed below.
    if !nt_success(unsafe { ZwOpenKey(&raw mut key, KEY_READ, &raw mut attributes) }) {
        return None;
    }
    let mut value = counted(name)?;
    // KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, then the DWORD.
    let mut info = [0u32; 4];
    let mut returned = 0u32;
    // SAFETY: `info` is a buffer of the size passed; `key` is open.
    let status = unsafe {
        ZwQueryValueKey(
            key,
            &raw mut value,
            KEY_VALUE_PARTIAL_INFORMATION_CLASS as _,
            info.as_mut_ptr().cast(),
            core::mem::size_of_val(&info) as u32,
            &raw mut returned,
        )
    };
    // SAFETY: the handle ZwOpenKey gave us. Nothing to do if closing fails.
    let _ = unsafe { ZwClose(key) };
    (nt_success(status) && info[1] == REG_DWORD && info[2] == 4).then_some(info[3])
}

// ---- raw IOCTLs (raw.rs) and the Wine stand-in for the I/O manager (standin.rs) -------
//
// In the cross-build declared by hand from their prototypes so that build.rs needs no
// change: wdm.h's IoAllocateIrp, IoFreeIrp, KeSetEvent and MmGetSystemRoutineAddress,
// ntifs.h's ZwAllocateVirtualMemory and ZwFreeVirtualMemory (MS pages of those names),
// and ObReferenceObjectByName, which the WDK does not document and mingw-w64 declares in
// ntifs.h (not in ntddk.h); ntoskrnl exports all of them, Wine 8's too. IoDriverObjectType
// is a data export: the stand-in looks its address up with MmGetSystemRoutineAddress
// instead of importing data. Only raw.rs's names exist in the WDK build.

#[cfg(nt_source = "wdk")]
pub use wdk_sys::ntddk::{
    IoAllocateIrp, IoFreeIrp, KeSetEvent, ZwAllocateVirtualMemory, ZwFreeVirtualMemory,
};

#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `PIRP IoAllocateIrp(CCHAR StackSize, BOOLEAN ChargeQuota)`.
    pub fn IoAllocateIrp(StackSize: i8, ChargeQuota: u8) -> PIRP;
    /// `VOID IoFreeIrp(PIRP Irp)`.
    pub fn IoFreeIrp(Irp: PIRP);
    /// `LONG KeSetEvent(PRKEVENT Event, KPRIORITY Increment, BOOLEAN Wait)`.
    pub fn KeSetEvent(Event: *mut KEVENT, Increment: i32, Wait: u8) -> i32;
    /// `NTSTATUS ZwAllocateVirtualMemory(HANDLE ProcessHandle, PVOID *BaseAddress,
    /// ULONG_PTR ZeroBits, PSIZE_T RegionSize, ULONG AllocationType, ULONG Protect)`.
    pub fn ZwAllocateVirtualMemory(
        ProcessHandle: HANDLE,
        BaseAddress: *mut PVOID,
        ZeroBits: usize,
        RegionSize: *mut usize,
        AllocationType: u32,
        Protect: u32,
    ) -> NTSTATUS;
    /// `NTSTATUS ZwFreeVirtualMemory(HANDLE ProcessHandle, PVOID *BaseAddress,
    /// PSIZE_T RegionSize, ULONG FreeType)`.
    pub fn ZwFreeVirtualMemory(
        ProcessHandle: HANDLE,
        BaseAddress: *mut PVOID,
        RegionSize: *mut usize,
        FreeType: u32,
    ) -> NTSTATUS;
    /// `PVOID MmGetSystemRoutineAddress(PUNICODE_STRING SystemRoutineName)`.
    pub fn MmGetSystemRoutineAddress(SystemRoutineName: *mut UNICODE_STRING) -> PVOID;
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
/// `IRP_BUFFERED_IO`: `AssociatedIrp.SystemBuffer` holds the data.
pub const IRP_BUFFERED_IO: u32 = 0x0000_0010;
/// `IRP_DEALLOCATE_BUFFER`: the I/O manager frees the system buffer at completion.
pub const IRP_DEALLOCATE_BUFFER: u32 = 0x0000_0020;
/// `IRP_INPUT_OPERATION`: completion copies the system buffer to `UserBuffer`.
pub const IRP_INPUT_OPERATION: u32 = 0x0000_0040;
/// `NtCurrentProcess()`.
pub const CURRENT_PROCESS: HANDLE = -1_isize as HANDLE;
/// `MEM_COMMIT | MEM_RESERVE`.
pub const MEM_COMMIT_RESERVE: u32 = 0x0000_1000 | 0x0000_2000;
/// `MEM_RELEASE`.
pub const MEM_RELEASE: u32 = 0x0000_8000;
/// `PAGE_READWRITE`.
pub const PAGE_READWRITE: u32 = 0x04;
