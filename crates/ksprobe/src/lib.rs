//! ksprobe: the companion kernel test driver of ksalloc (WDM).
//!
//! ksprobe creates the control device `\Device\ksprobe` (link `\DosDevices\ksprobe`,
//! SYSTEM and Administrators only). When its user-mode runner (`ksprobe-run`) sends
//! `IOCTL_KSPROBE_RUN`, it runs the scenarios of `ksprobe-scenarios` from kernel mode
//! against the installed ksalloc filter, as a kernel-mode KS client: it opens the filter
//! with `ZwCreateFile`, creates pins and allocators relative to it, sends
//! IOCTL_KS_PROPERTY / METHOD / ENABLE_EVENT with `IoBuildDeviceIoControlRequest`, takes
//! the function table and calls it at DISPATCH_LEVEL, and returns the results through
//! the METHOD_BUFFERED IOCTL.
//!
//! | module | what it holds |
//! |---|---|
//! | `nt` | every kernel name ksprobe uses: the shared kernel layer `wdm-nt` |
//! | `boot` | boot mode: every scenario from a system thread, reported with DbgPrint |
//! | `client` | `ProbeClient` over the kernel: the KS client the scenarios drive |
//! | `raw` | raw KS IOCTLs as a case of `ksprobe_scenarios::requests` says (user or kernel requestor) |
//! | `driver` | DriverEntry, the control device, CREATE / CLEANUP / CLOSE / DEVICE_CONTROL |
//! | `workers` | `run_workers`: one system thread per worker, joined on its thread object |
//! | `standin` | the cross-build's stand-in for the I/O manager's file objects (Wine) |
//!
//! Without the `wdk` or `cross` feature (every Linux host build) the package is an
//! empty library: the scenarios themselves are proven on the model by
//! `cargo test -p ksprobe-scenarios`. None of the driver has run on Windows yet.
#![cfg_attr(driver, no_std)]

#[cfg(driver)]
extern crate alloc;

/// Heap allocations come from nonpaged pool under ksprobe's tag `KspR`, in both builds
/// (wdm-nt's allocator).
#[cfg(driver)]
#[global_allocator]
static ALLOCATOR: wdm_nt::PoolAllocator<{ u32::from_le_bytes(*b"KspR") }> = wdm_nt::PoolAllocator;

#[cfg(driver)]
mod boot;
#[cfg(driver)]
mod client;
#[cfg(driver)]
mod driver;
#[cfg(driver)]
mod nt;
#[cfg(driver)]
mod raw;
#[cfg(nt_source = "mingw")]
mod standin;
#[cfg(driver)]
mod workers;
