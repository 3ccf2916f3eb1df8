//! ksalloc: a Kernel Streaming allocator filter driver (WDM).
//!
//! Almost everything the driver does is decided in `ksalloc-core` and tested on Linux
//! against `ksalloc-model`. This package adds the thin Windows glue around it, built
//! only when `build.rs` sets `cfg(driver)` (today: the `wdk` feature, in an eWDK
//! prompt through `cargo make`):
//!
//! | module | what it holds |
//! |---|---|
//! | `nt` | every kernel name the glue uses: the shared kernel layer `wdm-nt` |
//! | `pool` | the one place that allocates pool (`ExAllocatePool2` where the kernel has it) |
//! | `platform` | the core's `Platform` over the kernel: pool, spin lock, KEVENT, IRP cancel and completion |
//! | `processor_calls` | the core's processor calls: a `KDPC` per processor, targeted at it |
//! | `seh` | capture of user-mode buffers under structured exception handling (C unit) |
//! | `dispatch` | IRP_MJ_CREATE / CLEANUP / CLOSE / DEVICE_CONTROL into the core's KS dispatcher |
//! | `table` | the two FUNCTIONTABLE routines |
//! | `device` | DriverEntry, AddDevice, PnP, Power |
//! | `legacy` | a named test device for hosts without PnP (Wine), opt-in by registry |
//!
//! On Linux (no `cfg(driver)`) the package is a plain library that re-exports the core,
//! so `cargo build` and `cargo test` work on a fresh machine.
#![cfg_attr(driver, no_std)]

#[cfg(driver)]
extern crate alloc;

/// Heap allocations come from nonpaged pool under the driver's tag, in both builds
/// (wdm-nt's allocator: wdk-alloc would import ExAllocatePool2, which kernels before
/// Windows 10 2004 lack).
#[cfg(driver)]
#[global_allocator]
static ALLOCATOR: wdm_nt::PoolAllocator<{ pool::TAG }> = wdm_nt::PoolAllocator;

#[cfg(driver)]
mod device;
#[cfg(driver)]
mod dispatch;
#[cfg(driver)]
mod legacy;
#[cfg(driver)]
mod nt;
#[cfg(driver)]
mod platform;
#[cfg(driver)]
mod pool;
#[cfg(driver)]
mod processor_calls;
#[cfg(driver)]
mod seh;
#[cfg(driver)]
mod table;

pub use ks_abi;
pub use ksalloc_core;
