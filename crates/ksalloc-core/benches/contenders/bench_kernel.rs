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
//!
//! Processor calls (DPCs) are a cold path here: a mutex-guarded queue per processor,
//! and one relaxed load of the kernel's queued count where a section ends or a lock is
//! released. A call for processor *p* runs on *p*'s bound thread when it leaves a
//! section or releases a lock (outside its sections, as on Windows), on any thread at a
//! lock release if no live thread is bound to *p* (an idle processor; processor 0 never
//! counts as idle, since unbound threads run there), and at a flush, on the flushing
//! thread: the benches flush only once the threads using the pool are done.

use std::any::TypeId;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ks_abi::ks::KsEventData;
use ks_abi::NtStatus;
use ksalloc_core::platform::FrameMemory;
use ksalloc_core::{
    FrameBudget, Irql, Platform, PoolCharge, ProcessorCall, RequestHandle, Requestor, SpinLock,
};

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
    BINDING.with(|b| b.bind(processor));
}

/// Live threads bound to each processor index (any kernel): a processor with none is
/// idle, and any thread may run its calls while holding this lock (which binding takes,
/// so no thread binds to a processor while its calls run elsewhere).
static BOUND_THREADS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn bound_threads() -> MutexGuard<'static, Vec<usize>> {
    BOUND_THREADS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's entry in [`BOUND_THREADS`], removed when the thread ends.
struct Binding(Cell<Option<usize>>);

impl Binding {
    fn bind(&self, processor: usize) {
        let mut bound = bound_threads();
        if let Some(old) = self.0.replace(Some(processor)) {
            bound[old] -= 1;
        }
        if bound.len() <= processor {
            bound.resize(processor + 1, 0);
        }
        bound[processor] += 1;
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        if let Some(processor) = self.0.get() {
            bound_threads()[processor] -= 1;
        }
    }
}

thread_local! {
    static BINDING: Binding = const { Binding(Cell::new(None)) };
}

/// Runs `target.run_on(processor)` for a target known by address.
type Trampoline = unsafe fn(*const (), usize);

/// # Safety
/// `target` is the address of a live `T`.
unsafe fn trampoline<T: ProcessorCall>(target: *const (), processor: usize) {
    // SAFETY: the caller passes a live `T`'s address: the type was checked when it was
    // queued, and queue_processor_call's caller keeps it alive until the call has run.
    let target = unsafe { &*target.cast::<T>() };
    target.run_on(processor);
}

/// The `KDPC`s of one `ProcessorCalls`: queued flags per processor, and calls running.
struct CallFlags {
    queued: Box<[AtomicBool]>,
    running: AtomicUsize,
}

/// An entry of a processor's queue.
struct QueuedCall {
    flags: Arc<CallFlags>,
    run: Trampoline,
    target: *const (),
}

// SAFETY: `target` is a `&T` with `T: ProcessorCall: Sync`, usable from any thread, and
// kept alive by queue_processor_call's caller until the call has run.
unsafe impl Send for QueuedCall {}

/// The bench platform's `ProcessorCalls`.
pub struct BenchCalls {
    target_type: TypeId,
    run: Trampoline,
    flags: Arc<CallFlags>,
}

impl Drop for BenchCalls {
    fn drop(&mut self) {
        assert!(
            self.flags.queued.iter().all(|q| !q.load(Ordering::Relaxed))
                || std::thread::panicking(),
            "processor calls freed while queued (flush first)"
        );
    }
}

/// Whether a thread leaving `with_processor` runs its processor's queued calls, as the
/// processor's IRQL dropping does on Windows. That check is not free here: callgrind
/// counted 114 -> 149 instructions per allocate+free pair on ksalloc-magazine at 64
/// frames (the core at 6610c33), for one load and a never-taken branch after the section
/// (a no-op cold call or an abort in its place cost about as much: the branch splits the
/// section's code from the caller's). On Windows the delivery is a pending software
/// interrupt that `KeLowerIrql`'s `mov cr8` fires: free on the hot path. So `false`, to
/// cost what the kernel costs: a bound thread's calls run at its lock releases, at
/// queueing below DISPATCH_LEVEL and at flushes. The core never waits for a call, and
/// the paths the benches time queue none in steady state (the pend rows queue theirs
/// under the queue lock, and its release runs them). The model delivers at section exit
/// (what the tests run).
const DELIVER_AT_SECTION_EXIT: bool = false;

/// Calls queued on every bench kernel together: the one load the hot paths pay (a static,
/// so one `cmp` with an immediate address; relaxed: a call queued concurrently is seen at
/// the next delivery point or flush).
static QUEUED: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn any_queued() -> bool {
    QUEUED.load(Ordering::Relaxed) != 0
}

/// The kernel's DPC queues.
struct Dpcs {
    queues: Mutex<Vec<VecDeque<QueuedCall>>>,
}

impl Dpcs {
    fn queues(&self) -> MutexGuard<'_, Vec<VecDeque<QueuedCall>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next call for `processor` (or `flags`' only), marking it running.
    fn take(&self, processor: usize, flags: Option<&Arc<CallFlags>>) -> Option<QueuedCall> {
        let mut queues = self.queues();
        let queue = queues.get_mut(processor)?;
        let index = match flags {
            Some(flags) => queue.iter().position(|c| Arc::ptr_eq(&c.flags, flags))?,
            None => 0,
        };
        let call = queue.remove(index)?;
        drop(queues);
        call.flags.running.fetch_add(1, Ordering::Relaxed);
        call.flags.queued[processor].store(false, Ordering::Relaxed);
        QUEUED.fetch_sub(1, Ordering::Relaxed);
        Some(call)
    }

    /// Runs `call` as processor `processor` at DISPATCH_LEVEL.
    fn run(processor: usize, call: &QueuedCall) {
        let bound = PROCESSOR.with(|p| p.replace(processor));
        at_dispatch(|| {
            // SAFETY: `run` is `trampoline::<T>` for the calls' `T`, the target's type
            // was checked when it was queued, and its owner keeps it alive until it ran.
            unsafe { (call.run)(call.target, processor) };
        });
        PROCESSOR.with(|p| p.set(bound));
        // Release: what the call did happens-before a flush that sees it finished.
        call.flags.running.fetch_sub(1, Ordering::Release);
    }

    /// Runs the calling thread's own processor's queue, then (if `idle_too`) the queue of
    /// every processor no live thread is bound to, if the thread is below DISPATCH_LEVEL
    /// (outside any section and lock).
    #[cold]
    #[inline(never)]
    fn deliver(&self, idle_too: bool) {
        if IRQL.with(Cell::get) >= Irql::Dispatch {
            return;
        }
        let own = PROCESSOR.with(Cell::get);
        while let Some(call) = self.take(own, None) {
            Self::run(own, &call);
        }
        if !idle_too {
            return;
        }
        let bound = bound_threads();
        let processors = self.queues().len();
        for processor in 1..processors {
            if processor == own || bound.get(processor).is_some_and(|&n| n > 0) {
                continue;
            }
            while let Some(call) = self.take(processor, None) {
                Self::run(processor, &call);
            }
        }
        drop(bound);
    }
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
    dpcs: Arc<Dpcs>,
}

impl BenchKernel {
    /// A kernel with `processors` processors (threads bind to one with
    /// [`bind_processor`]; unbound threads run on processor 0).
    #[must_use]
    pub fn with_processors(processors: u32) -> Self {
        Self {
            processors,
            dpcs: Arc::new(Dpcs {
                queues: Mutex::new((0..processors).map(|_| VecDeque::new()).collect()),
            }),
        }
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

/// A spin lock: a mutex taken at `DISPATCH_LEVEL`; its release below DISPATCH_LEVEL
/// delivers queued processor calls.
pub struct BenchLock<T>(Mutex<T>, Arc<Dpcs>);

impl<T> SpinLock<T> for BenchLock<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let result = at_dispatch(|| f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner)));
        if any_queued() {
            self.1.deliver(true);
        }
        result
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
    type ProcessorCalls = BenchCalls;

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
        BenchLock(Mutex::new(value), Arc::clone(&self.dpcs))
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
        let result = at_dispatch(|| f(PROCESSOR.with(Cell::get)));
        // Leaving the section below DISPATCH_LEVEL: this processor's calls run now.
        if DELIVER_AT_SECTION_EXIT && any_queued() {
            self.dpcs.deliver(false);
        }
        result
    }

    fn new_processor_calls<T: ProcessorCall>(&self, processors: usize) -> Option<BenchCalls> {
        Some(BenchCalls {
            target_type: TypeId::of::<T>(),
            run: trampoline::<T>,
            flags: Arc::new(CallFlags {
                queued: (0..processors).map(|_| AtomicBool::new(false)).collect(),
                running: AtomicUsize::new(0),
            }),
        })
    }

    unsafe fn queue_processor_call<T: ProcessorCall>(
        &self,
        calls: &BenchCalls,
        processor: usize,
        target: &T,
    ) -> bool {
        assert!(
            calls.target_type == TypeId::of::<T>(),
            "queue_processor_call with a target type the calls were not made for"
        );
        let mut queues = self.dpcs.queues();
        // KeInsertQueueDpc: FALSE, and nothing else, while the DPC is queued.
        let inserted = !calls.flags.queued[processor].swap(true, Ordering::Relaxed);
        if inserted {
            queues[processor].push_back(QueuedCall {
                flags: Arc::clone(&calls.flags),
                run: calls.run,
                target: std::ptr::from_ref(target).cast(),
            });
            QUEUED.fetch_add(1, Ordering::Relaxed);
        }
        drop(queues);
        self.dpcs.deliver(true);
        inserted
    }

    fn flush_processor_calls(&self, calls: &BenchCalls) {
        for processor in 0..calls.flags.queued.len() {
            while let Some(call) = self.dpcs.take(processor, Some(&calls.flags)) {
                Dpcs::run(processor, &call);
            }
        }
        // Acquire: a call running elsewhere has finished, and what it did is visible.
        while calls.flags.running.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
    }
}
