//! ksalloc: a Kernel Streaming allocator filter driver (WDM).
//!
//! On Linux this package is a plain library: the driver's decisions live in
//! `ksalloc-core` and are tested there. The Windows glue arrives with the driver issue.
#![cfg_attr(feature = "wdk", no_std)]

pub use ks_abi;
pub use ksalloc_core;
