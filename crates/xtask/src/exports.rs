//! Which kernels export each kernel name the two drivers use: the facts the image check
//! of `cargo xtask pe` holds every import to.
//!
//! A driver whose import the loader cannot resolve does not load at all, so an import
//! must be exported by every kernel the drivers target: Windows x64 from build 16299 (the
//! INF's floor), Wine 8's ntoskrnl.exe/hal.dll, and ReactOS amd64. A name some of them
//! lack is looked up at run time instead (`Use::RunTime`, MmGetSystemRoutineAddress at
//! DriverEntry, crates/wdm-nt/src/optional.rs) and must not be imported.
//!
//! Sources of the columns:
//! - `windows`: Microsoft's DDI reference pages (minimum version of each routine);
//!   for imports the check also confirms the name in mingw-w64's import libraries
//!   (`libntoskrnl.a`, `libhal.a`), which list Windows's exports.
//! - `wine`: Wine 8.0's `ntoskrnl.exe`/`hal.dll` (Debian's wine64); the check compares
//!   the column with the installed modules' export tables whenever they are installed.
//!   Wine's unimplemented `@ stub` entries are exports too (the loader resolves them;
//!   calling one aborts the driver host), so a row's comment says where Wine's routine
//!   is such a stub or does nothing; the drivers call those only where a kernel has
//!   shown the routine works (crates/wdm-nt/src/optional.rs).
//! - `reactos`: ReactOS's `ntoskrnl/ntoskrnl.spec` and `hal/hal.spec` (reactos/reactos,
//!   read 2026-12-03: x86_64 entries, including `-private` ones, which are exported but
//!   left out of the import library). Not checked automatically: update by hand.

/// How a driver reaches a name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Use {
    /// In the import table: every kernel must export it.
    Import,
    /// Looked up with MmGetSystemRoutineAddress, with a fallback where absent.
    RunTime,
}

/// One kernel name and where it is exported.
pub struct Export {
    pub name: &'static str,
    pub module: &'static str,
    pub windows: bool,
    pub wine: bool,
    pub reactos: bool,
    pub how: Use,
}

const NT: &str = "ntoskrnl.exe";
const HAL: &str = "hal.dll";
const Y: bool = true;
const N: bool = false;
use Use::{Import, RunTime};

const fn row(
    name: &'static str,
    module: &'static str,
    [windows, wine, reactos]: [bool; 3],
    how: Use,
) -> Export {
    Export {
        name,
        module,
        windows,
        wine,
        reactos,
        how,
    }
}

/// Every kernel name either driver imports or looks up: `[Windows, Wine, ReactOS]`.
#[rustfmt::skip]
pub const EXPORTS: &[Export] = &[
    row("__C_specific_handler", NT, [Y, Y, Y], Import),
    row("DbgPrint", NT, [Y, Y, Y], Import),
    row("ExAllocatePool2", NT, [N, N, N], RunTime), // Windows: build 19041 and later only
    row("ExAllocatePoolWithQuotaTag", NT, [Y, Y, Y], Import),
    row("ExAllocatePoolWithTag", NT, [Y, Y, Y], Import),
    row("ExEventObjectType", NT, [Y, Y, Y], RunTime), // data: looked up, never imported
    row("ExFreePoolWithTag", NT, [Y, Y, Y], Import),
    row("IoAcquireRemoveLockEx", NT, [Y, Y, Y], Import),
    row("IoAllocateIrp", NT, [Y, Y, Y], Import),
    row("IoAttachDeviceToDeviceStack", NT, [Y, Y, Y], Import),
    row("IoBuildDeviceIoControlRequest", NT, [Y, Y, Y], Import),
    row("IoCancelIrp", NT, [Y, Y, Y], Import),
    row("IoCreateDevice", NT, [Y, Y, Y], Import),
    row("IoCreateSymbolicLink", NT, [Y, Y, Y], Import),
    row("IoDeleteDevice", NT, [Y, Y, Y], Import),
    row("IoDeleteSymbolicLink", NT, [Y, Y, Y], Import),
    row("IoDetachDevice", NT, [Y, Y, Y], Import),
    row("IoDriverObjectType", NT, [Y, Y, Y], RunTime), // data: ksprobe's Wine stand-in looks it up
    row("IofCallDriver", NT, [Y, Y, Y], Import),
    row("IofCompleteRequest", NT, [Y, Y, Y], Import),
    row("IoForwardIrpSynchronously", NT, [Y, Y, Y], Import),
    row("IoFreeIrp", NT, [Y, Y, Y], Import),
    row("IoGetDeviceInterfaces", NT, [Y, Y, Y], Import),
    row("IoGetRelatedDeviceObject", NT, [Y, Y, Y], Import),
    row("IoInitializeRemoveLockEx", NT, [Y, Y, Y], Import),
    row("IoRegisterDeviceInterface", NT, [Y, Y, Y], Import),
    row("IoReleaseCancelSpinLock", NT, [Y, Y, Y], Import),
    row("IoReleaseRemoveLockAndWaitEx", NT, [Y, Y, Y], Import),
    row("IoReleaseRemoveLockEx", NT, [Y, Y, Y], Import),
    row("IoSetDeviceInterfaceState", NT, [Y, Y, Y], Import),
    row("KeAcquireSpinLockRaiseToDpc", NT, [Y, Y, Y], Import),
    row("KeBugCheckEx", NT, [Y, Y, Y], Import),
    row("KeClearEvent", NT, [Y, Y, Y], Import),
    row("KeDelayExecutionThread", NT, [Y, Y, Y], Import),
    row("KeEnterGuardedRegion", NT, [Y, Y, Y], Import),
    row("KeFlushQueuedDpcs", NT, [Y, Y, Y], Import),
    row("KeGetCurrentProcessorNumberEx", NT, [Y, Y, N], RunTime),
    row("KeGetProcessorNumberFromIndex", NT, [Y, N, N], RunTime), // Windows 7 and later
    row("KeInitializeDpc", NT, [Y, Y, Y], Import),
    row("KeInitializeEvent", NT, [Y, Y, Y], Import),
    row("KeInsertQueueDpc", NT, [Y, Y, Y], Import), // Wine 8: a stub, the DPC never runs
    row("KeLeaveGuardedRegion", NT, [Y, Y, Y], Import),
    row("KeLowerIrql", NT, [Y, Y, Y], Import),
    row("KeQueryMaximumProcessorCountEx", NT, [Y, Y, N], RunTime),
    row("KeQueryPerformanceCounter", HAL, [Y, Y, Y], Import),
    row("KeReadStateEvent", NT, [Y, Y, Y], Import),
    row("KeReleaseSpinLock", NT, [Y, Y, Y], Import),
    row("KeRemoveQueueDpc", NT, [Y, Y, Y], Import), // Wine 8: a stub that aborts if called
    row("KeSetEvent", NT, [Y, Y, Y], Import),
    row("KeSetImportanceDpc", NT, [Y, Y, Y], Import),
    row("KeSetTargetProcessorDpcEx", NT, [Y, Y, N], RunTime), // Windows 7 and later
    row("KeWaitForSingleObject", NT, [Y, Y, Y], Import),
    row("KfRaiseIrql", NT, [Y, Y, Y], Import),
    row("MmGetSystemRoutineAddress", NT, [Y, Y, Y], Import),
    row("MmIsAddressValid", NT, [Y, Y, Y], Import),
    row("ObfDereferenceObject", NT, [Y, Y, Y], Import),
    row("ObfReferenceObject", NT, [Y, Y, Y], Import),
    row("ObReferenceObjectByHandle", NT, [Y, Y, Y], Import),
    row("ObReferenceObjectByName", NT, [Y, Y, Y], Import), // ksprobe's Wine stand-in only
    row("PoCallDriver", NT, [Y, Y, Y], Import),
    row("PoStartNextPowerIrp", NT, [Y, Y, Y], Import),
    row("ProbeForRead", NT, [Y, Y, Y], Import),
    row("ProbeForWrite", NT, [Y, Y, Y], Import),
    row("PsCreateSystemThread", NT, [Y, Y, Y], Import),
    row("PsTerminateSystemThread", NT, [Y, Y, Y], Import),
    row("RtlFreeUnicodeString", NT, [Y, Y, Y], Import),
    row("ZwClose", NT, [Y, Y, Y], Import),
    row("ZwAllocateVirtualMemory", NT, [Y, Y, Y], Import),
    row("ZwCreateEvent", NT, [Y, Y, Y], Import),
    row("ZwCreateFile", NT, [Y, Y, Y], Import),
    row("ZwFreeVirtualMemory", NT, [Y, Y, Y], Import),
    row("ZwOpenKey", NT, [Y, Y, Y], Import),
    row("ZwQueryValueKey", NT, [Y, Y, Y], Import),
];

/// The facts about `name` in `module`, if the table has them.
pub fn find(module: &str, name: &str) -> Option<&'static Export> {
    EXPORTS
        .iter()
        .find(|e| e.module == module && e.name == name)
}

impl Export {
    /// Exported by every kernel the drivers target.
    pub const fn everywhere(&self) -> bool {
        self.windows && self.wine && self.reactos
    }

    /// `W- w+ R-`-style summary for the report.
    pub fn columns(&self) -> String {
        let mark = |b: bool| if b { '+' } else { '-' };
        format!(
            "Windows{} Wine{} ReactOS{}",
            mark(self.windows),
            mark(self.wine),
            mark(self.reactos)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_import_is_exported_everywhere_and_names_are_unique() {
        for (i, e) in EXPORTS.iter().enumerate() {
            if e.how == Use::Import {
                assert!(
                    e.everywhere(),
                    "{} is imported but not exported everywhere",
                    e.name
                );
            }
            assert!(
                EXPORTS[..i]
                    .iter()
                    .all(|o| o.name != e.name || o.module != e.module),
                "{} listed twice",
                e.name
            );
        }
    }
}
