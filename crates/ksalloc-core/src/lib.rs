//! ksalloc-core: every decision the ksalloc driver makes, with no FFI.
//!
//! The core is generic over [`Platform`], the few kernel services it needs (nonpaged
//! memory, a spin lock, a notification event, IRP completion and cancel hooks, the
//! current IRQL). The Windows driver implements it over wdk-sys; `ksalloc-model`
//! implements it as a strict host model for tests, benchmarks and the simulator.
//!
//! One `unsafe` call, and nothing else: frames are addresses the core computes and hands
//! out but never dereferences, and the lock-free free list works on indices into an
//! array of atomics. The exception is queueing a processor call (a DPC on Windows): the
//! platform keeps the address of the allocator's state until the call runs, and the
//! core promises in `allocator::ProcessorCalls` that the state outlives it.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub mod allocator;
pub mod framing;
pub mod free_list;
pub mod ks;
pub mod limits;
pub mod magazine;
pub mod pending;
pub mod platform;
pub mod rundown;
pub mod stats;
mod sync;
pub mod wire;

pub use allocator::{AllocOutcome, Allocator, Snapshot};
pub use framing::{Framing, FramingError};
pub use limits::FrameBudget;
pub use platform::{
    Irql, OutOfMemory, Platform, PoolCharge, ProcessorCall, RequestHandle, Requestor, SpinLock,
};
