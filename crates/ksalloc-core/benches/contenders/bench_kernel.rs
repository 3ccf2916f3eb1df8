//! The bench platform: a `Platform` whose calls cost what the kernel's do, so the
//! benchmarks show the core's own work.
//!
//! | kernel call | here | what it costs on x64 Windows |
//! |---|---|---|
//! | `KeGetCurrentProcessorNumberEx` | a thread-local set when the thread is pinned | a `gs:`-relative load from the PRCB |
//! | `KfRaiseIrql` / `KeLowerIrql` / `KeGetCurrentIrql` | a thread-local IRQL cell | a `mov` to/from `cr8` |
//! | IRQL contract checks | compiled out (the trait's `debug_assert!`) | compiled out in a release driver |
//! | `KSPIN_LOCK` | `std::sync::Mutex` (uncontended: one `lock cmpxchg` + one `xchg`) with the IRQL raised | `lock bts` + a store |
//! | `KeSetEvent` | one `Release` store | the dispatcher lock and a wait-list check (more) |
//! | `IoCompleteRequest` of an ALLOC | a store of the result | much more (APC, I/O completion) |
//!
//! The model platform (`ksalloc-model`) checks every contract and is what the tests and
//! simulator run on; its rows in the tables are labelled `model-`. This one checks
//! nothing beyond what the core itself does: it is for measurement only.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ks_abi::ks::KsEventData;
use ks_abi::NtStatus;
use ksalloc_core::platform::FrameMemory;
use ksalloc_core::{FrameBudget, Irql, Platform, PoolCharge, RequestHandle, Requestor, SpinLock};

/// The driver-wide frame budget, unbounded here: the benches measure the hot path, and
/// the budget is charged only at create.
static FRAME_BUDGET: FrameBudget = FrameBudget::new(usize::MAX);

thread_local! {
    /// The processor this thread is pinned to (`bind_processor`).
    static PROCESSOR: Cell<usize> = const { Cell::new(0) };
    /// This thread's IRQL.
    static IRQL: Cell<Irql> = const { Cell::new(Irql::Passive) };
}

/// Pins the calling thread to bench processor `processor` (the benches also pin it to
/// that CPU): what `KeGetCurrentProcessorNumberEx` returns from now on.
pub fn bind_processor(processor: usize) {
    PROCESSOR.with(|p| p.set(processor));
}

/// Raises the IRQL to `DISPATCH_LEVEL` for `f` (what `KfRaiseIrql` + `KeLowerIrql` do).
#[inline]
fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let old = IRQL.with(|irql| irql.replace(Irql::Dispatch));
    let result = f();
    IRQL.with(|irql| irql.set(old));
    result
}

/// A kernel with `processors` processors.
#[derive(Clone)]
pub struct BenchKernel {
    processors: u32,
}

impl BenchKernel {
    /// A kernel with `processors` processors (threads bind to one with
    /// [`bind_processor`]; unbound threads run on processor 0).
    #[must_use]
    pub const fn with_processors(processors: u32) -> Self {
        Self { processors }
    }
}

/// Frame memory: a heap block the core only does arithmetic on.
pub struct BenchMemory {
    block: Vec<u8>,
    base: usize,
}

impl FrameMemory for BenchMemory {
    fn base(&self) -> usize {
        self.base
    }
}

/// A spin lock: a mutex taken at `DISPATCH_LEVEL`.
pub struct BenchLock<T>(Mutex<T>);

impl<T> SpinLock<T> for BenchLock<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        at_dispatch(|| f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner)))
    }
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CANCELLED: u8 = 2;

struct RequestState {
    cancel: AtomicU8,
    result: AtomicUsize,
    completed: AtomicBool,
}

/// A pended ALLOC: a cancel state (the `IoSetCancelRoutine` exchange) and a result slot.
#[derive(Clone)]
pub struct BenchRequest(Arc<RequestState>);

impl BenchRequest {
    /// An ALLOC request for the hand-off benches.
    #[must_use]
    pub fn new() -> Self {
        Self(Arc::new(RequestState {
            cancel: AtomicU8::new(IDLE),
            result: AtomicUsize::new(0),
            completed: AtomicBool::new(false),
        }))
    }

    /// The frame address the request was completed with, if it was.
    #[must_use]
    pub fn allocated_frame(&self) -> Option<usize> {
        self.0
            .completed
            .load(Ordering::Acquire)
            .then(|| self.0.result.load(Ordering::Relaxed))
            .filter(|&address| address != 0)
    }
}

impl RequestHandle for BenchRequest {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl Platform for BenchKernel {
    type Memory = BenchMemory;
    type Lock<T: Send> = BenchLock<T>;
    type Event = AtomicBool;
    type ClientEvent = Arc<AtomicBool>;
    type Request = BenchRequest;
    type Shared<T: Send + Sync> = Arc<T>;

    #[inline]
    fn current_irql(&self) -> Irql {
        IRQL.with(Cell::get)
    }

    fn alloc_nonpaged(
        &self,
        bytes: usize,
        align: usize,
        _charge: PoolCharge,
    ) -> Option<BenchMemory> {
        let block = vec![0u8; bytes.checked_add(align)?];
        let start = block.as_ptr() as usize;
        Some(BenchMemory {
            base: start.next_multiple_of(align),
            block,
        })
    }

    fn free_nonpaged(&self, memory: BenchMemory) {
        drop(memory.block);
    }

    fn share<T: Send + Sync>(&self, value: T) -> Result<Arc<T>, T> {
        Ok(Arc::new(value))
    }

    fn frame_budget(&self) -> &FrameBudget {
        &FRAME_BUDGET
    }

    fn new_lock<T: Send>(&self, value: T) -> BenchLock<T> {
        BenchLock(Mutex::new(value))
    }

    fn new_event(&self) -> Option<AtomicBool> {
        Some(AtomicBool::new(false))
    }

    #[inline]
    fn set_event(&self, event: &AtomicBool) {
        event.store(true, Ordering::Release);
    }

    fn signal_client(&self, event: &Arc<AtomicBool>) {
        event.store(true, Ordering::Release);
    }

    fn client_event_key(&self, event: &Arc<AtomicBool>) -> usize {
        Arc::as_ptr(event) as usize
    }

    fn arm_cancel(&self, request: &BenchRequest) -> bool {
        request
            .0
            .cancel
            .compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn disarm_cancel(&self, request: &BenchRequest) -> bool {
        request
            .0
            .cancel
            .compare_exchange(ARMED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn complete_alloc(&self, request: BenchRequest, result: Result<usize, NtStatus>) {
        request
            .0
            .result
            .store(result.unwrap_or(0), Ordering::Relaxed);
        let first = !request.0.completed.swap(true, Ordering::Release);
        debug_assert!(first, "request completed twice");
        if request.0.cancel.load(Ordering::Relaxed) == CANCELLED {
            debug_assert!(result.is_err(), "cancelled request completed with a frame");
        }
    }

    fn function_table(&self) -> [usize; 2] {
        [0x1000, 0x2000]
    }

    fn reference_client_event(
        &self,
        _: &KsEventData,
        _: Requestor,
    ) -> Result<Arc<AtomicBool>, NtStatus> {
        Err(NtStatus::NOT_SUPPORTED)
    }

    fn processor_count(&self) -> u32 {
        self.processors
    }

    #[inline]
    fn with_processor<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        at_dispatch(|| f(PROCESSOR.with(Cell::get)))
    }
}
