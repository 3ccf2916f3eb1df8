//! ksprobe-scenarios: the checks ksprobe runs against a ksalloc allocator, written once.
//!
//! The scenarios are plain `no_std` code over [`ProbeClient`], a small KS client trait:
//! open the filter, create a pin and an allocator, take the function table as a kernel
//! requestor, call it at DISPATCH_LEVEL, pend and cancel ALLOC requests, wait for the
//! FREEFRAME event, close with frames outstanding. Two implementations exist:
//!
//! - `tests/model.rs` here, over `ksalloc_model::KsClient`: the same scenarios run in
//!   `cargo test` on Linux against the model kernel and the real `ksalloc-core`;
//! - `crates/ksprobe` (Windows, wdk), which implements the trait with `ZwCreateFile`,
//!   `IoBuildDeviceIoControlRequest` and `KeRaiseIrql` and runs the scenarios when its
//!   user-mode runner (`crates/ksprobe-run`) asks through the IOCTL in [`wire`].
//!
//! Each scenario sets up its own filter/pin/allocator, checks one contract, and tears
//! everything down again, also when it fails (see [`rig`]), so a failure in one does not
//! leak into the next, and a model test can check for leaks after each.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod frame;
pub mod ks;
pub mod path;
pub mod report;
pub mod requests;
pub mod result;
pub mod rig;
pub mod scenario;
pub mod wire;

pub use client::ProbeClient;
pub use result::{Failure, Outcome, ScenarioResult, Text, Timings};
pub use scenario::{run, run_all, run_selected, Config, ScenarioId};
