//! The kernel names: wdk-sys's in the WDK build, bindgen's over mingw-w64's DDK headers in
//! the cross-build (build.rs), and the few that neither gives and are declared here.
//!
//! `KfRaiseIrql` and `KeLowerIrql` are ntoskrnl exports in both builds, not cr8 writes:
//! for NTDDI_WIN8 and later the WDK's x64 `wdm.h` declares them `NTKERNELAPI` (only older
//! targets get its inline `KzRaiseIrql`/`KzLowerIrql`), and other wdk-sys drivers call
//! them as `wdk_sys::ntddk::KfRaiseIrql`/`KeLowerIrql`. mingw-w64's x64 `wdm.h` still
//! defines them inline as cr8 writes (privileged: under Wine each would trap into its
//! instruction emulator), so build.rs has bindgen declare them and binds them to the
//! exports like every other import, the same calls as the WDK build. (`KeRaiseIrql` is a
//! macro over `KfRaiseIrql` in every header: `macros::KeRaiseIrql`.)

/// Re-exports each name once from whichever source this build has: wdk-sys keeps
/// functions in `ntddk` and types at its root; the mingw-w64 bindings have both at theirs.
macro_rules! kernel_names {
    (functions: $($function:ident),* $(,)?; types: $($type:ident),* $(,)?;) => {
        #[cfg(nt_source = "wdk")]
        pub use wdk_sys::{ntddk::{$($function),*}, $($type),*};
        #[cfg(nt_source = "mingw")]
        pub use mingw::{$($function,)* $($type),*};
    };
}

// Every name both builds take from their bindings (the cross-build's allowlist in build.rs
// is the same set). The rest, below, comes from one source only.
kernel_names! {
    functions:
        ExFreePoolWithTag, IoAcquireRemoveLockEx, IoAttachDeviceToDeviceStack,
        IoBuildDeviceIoControlRequest, IoCancelIrp, IoCreateDevice, IoCreateSymbolicLink,
        IoDeleteDevice, IoDeleteSymbolicLink, IoDetachDevice, IoForwardIrpSynchronously,
        IoGetDeviceInterfaces, IoGetRelatedDeviceObject, IoInitializeRemoveLockEx,
        IoRegisterDeviceInterface, IoReleaseCancelSpinLock, IoReleaseRemoveLockAndWaitEx,
        IoReleaseRemoveLockEx, IoSetDeviceInterfaceState, IofCallDriver, IofCompleteRequest,
        KeAcquireSpinLockRaiseToDpc, KeBugCheckEx, KeClearEvent, KeDelayExecutionThread,
        KeEnterGuardedRegion, KeFlushQueuedDpcs, KeInitializeDpc,
        KeInitializeEvent, KeInsertQueueDpc, KeLeaveGuardedRegion, KeLowerIrql,
        KeReadStateEvent, KeReleaseSpinLock, KeRemoveQueueDpc, KeSetEvent,
        KeSetImportanceDpc, KeWaitForSingleObject, KfRaiseIrql,
        MmGetSystemRoutineAddress, MmIsAddressValid, ObReferenceObjectByHandle,
        ObfDereferenceObject, ObfReferenceObject, PoCallDriver, PoStartNextPowerIrp,
        PsCreateSystemThread, PsTerminateSystemThread, RtlFreeUnicodeString, ZwClose, ZwCreateFile, ZwOpenKey, ZwQueryValueKey;
    types:
        CCHAR, DRIVER_OBJECT, EVENT_TYPE, FILE_OBJECT, GUID, HANDLE, IO_REMOVE_LOCK,
        IO_STACK_LOCATION, IO_STATUS_BLOCK, IRP, KDPC, KDPC_IMPORTANCE, KEVENT, KSPIN_LOCK,
        KWAIT_REASON,
        LARGE_INTEGER, NTSTATUS, OBJECT_ATTRIBUTES, PCUNICODE_STRING, PDEVICE_OBJECT,
        PDRIVER_CANCEL, PFILE_OBJECT, PIRP, POBJECT_TYPE, POOL_TYPE, PVOID, UNICODE_STRING;
}

// In wdk-sys, not in mingw-w64's ntddk.h bindings (declared by hand below for mingw).
#[cfg(nt_source = "wdk")]
pub use wdk_sys::ntddk::{DbgPrint, KeGetCurrentIrql, KeQueryPerformanceCounter, ZwCreateEvent};

// Only ksprobe's hand-built IRPs (its raw.rs) use these; the cross-build declares them in
// ksprobe's nt.rs, since mingw-w64's ntddk.h lacks the Zw*VirtualMemory pair.
#[cfg(nt_source = "wdk")]
pub use wdk_sys::ntddk::{IoAllocateIrp, IoFreeIrp, ZwAllocateVirtualMemory, ZwFreeVirtualMemory};

// wdk-sys blocklists ExAllocatePoolWithTag as deprecated (wdk-build's bindgen setup): the
// WDK prefers ExAllocatePool2 from Windows 10 2004 on. Every NT kernel exports
// ExAllocatePoolWithTag, and kernels before 2004 (and Wine, ReactOS) have nothing else,
// so the WDK build declares it here (prototype: MS page "ExAllocatePoolWithTag function
// (wdm.h)"; POOL_TYPE is a C enum, an `int` in MSVC); ntoskrnl.lib, which wdk-build
// links, exports it. ExAllocatePoolWithQuotaTag likewise (MS page
// "ExAllocatePoolWithQuotaTag function (wdm.h)"): the quota charge where ExAllocatePool2
// is absent.
#[cfg(nt_source = "wdk")]
unsafe extern "system" {
    /// `PVOID ExAllocatePoolWithTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes, ULONG Tag)`.
    pub fn ExAllocatePoolWithTag(PoolType: i32, NumberOfBytes: u64, Tag: u32) -> PVOID;
    /// `PVOID ExAllocatePoolWithQuotaTag(POOL_TYPE PoolType, SIZE_T NumberOfBytes,
    /// ULONG Tag)`.
    pub fn ExAllocatePoolWithQuotaTag(PoolType: i32, NumberOfBytes: u64, Tag: u32) -> PVOID;
}

/// The cross-build's bindings (build.rs).
#[cfg(nt_source = "mingw")]
#[allow(
    missing_docs,
    non_camel_case_types,
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
pub use mingw::{ExAllocatePoolWithQuotaTag, ExAllocatePoolWithTag};

// ZwCreateEvent is declared in ntifs.h, which ntddk.h does not include (prototype: MS page
// "ZwCreateEvent function (ntifs.h)").
#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
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

// DbgPrint is variadic, which the bindings leave out: its own block
// (shared/reference/linux-pe-wine.md); prototype: MS page "DbgPrint function (wdm.h)".
#[cfg(nt_source = "mingw")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `ULONG DbgPrint(PCSTR Format, ...)`.
    pub fn DbgPrint(Format: *const core::ffi::c_char, ...) -> u32;
}

// KeQueryPerformanceCounter is a HAL routine (NTHALAPI): hal.dll exports it, in Wine and
// ReactOS too; mingw-w64's ntoskrnl import library and Wine's ntoskrnl.exe do not. (The WDK
// build links hal.lib as well, through wdk-build.)
#[cfg(nt_source = "mingw")]
#[link(name = "hal.dll", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `LARGE_INTEGER KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency)`.
    pub fn KeQueryPerformanceCounter(PerformanceFrequency: *mut LARGE_INTEGER) -> LARGE_INTEGER;
}

/// `KeGetCurrentIrql`: on x64 an inline `mov rax, cr8` in the WDK's headers, so mingw's
/// bindings have no symbol for it. (Under Wine cr8 reads as 0: IRQL is not real there.)
///
/// # Safety
/// Kernel mode (reading cr8 faults in user mode on real hardware).
#[cfg(nt_source = "mingw")]
pub unsafe fn KeGetCurrentIrql() -> u8 {
    let irql: u64;
    // SAFETY: reading cr8 has no side effects in ring 0.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) irql, options(nomem, nostack, preserves_flags))
    };
    #[allow(clippy::cast_possible_truncation)] // IRQL is 4 bits.
    let irql = irql as u8;
    irql
}
