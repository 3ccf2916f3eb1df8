//! ksalloc-model: a host model of the kernel services `ksalloc-core` needs, strict the
//! way Driver Verifier is strict.
//!
//! - IRQL is tracked per thread; raising and lowering are checked, and every platform
//!   call and core entry point asserts its IRQL contract ([`irql`]).
//! - IRPs pend, cancel through a cancel routine, and complete exactly once; a second
//!   completion panics ([`irp`]).
//! - Spin locks raise to `DISPATCH_LEVEL` and panic on recursive acquisition
//!   ([`lock`]); events panic when waited on at `DISPATCH_LEVEL` ([`event`]).
//! - Nonpaged pool has fault injection and leak accounting ([`pool`]).
//! - A kernel has a fixed number of processors, one thread at a time at
//!   `DISPATCH_LEVEL` on each ([`processor`]), and a DPC queue each
//!   ([`processor_call`]).
//!
//! A violation is a panic, so a test that breaks a kernel rule fails.

pub mod catalogue;
pub mod client;
pub mod driver;
pub mod event;
pub mod irp;
pub mod irql;
pub mod kernel;
pub mod lock;
pub mod pool;
pub mod processor;
pub mod processor_call;

pub use client::{FunctionTable, KsClient};
pub use driver::{AllocatorRef, FileObject, FileRef, Handle, ModelDriver};
pub use event::ModelEvent;
pub use irp::{Irp, RequestorMode};
pub use irql::{current_irql, raise_irql, IrqlGuard};
pub use kernel::ModelKernel;
pub use lock::ModelSpinLock;
pub use processor::bind_processor;
pub use processor_call::ModelProcessorCalls;
