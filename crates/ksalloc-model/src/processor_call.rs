//! Processor calls: the model's DPCs, each targeted at one processor
//! (`Platform::queue_processor_call`).
//!
//! What Windows promises, and so what the model does:
//! - Each processor has its own DPC queue; a DPC targeted at a processor
//!   (`KeSetTargetProcessorDpcEx`: "Each processor in a multiprocessor system has its own
//!   DPC queue") runs there, at `DISPATCH_LEVEL`, once that processor's IRQL drops below
//!   `DISPATCH_LEVEL` ("Introduction to DPC Objects"). So a call for *p* never runs
//!   during one of *p*'s `with_processor` sections: running it takes *p*'s busy flag.
//! - `KeInsertQueueDpc` returns `FALSE` and does nothing else when the DPC object is
//!   already queued ("If the specified DPC object has already been queued, no operation
//!   is performed except to return FALSE"); a DPC that has started may be queued again.
//! - `KeFlushQueuedDpcs` returns once every DPC queued before it ran to completion
//!   (PASSIVE_LEVEL).
//! - Windows gives no bound on when a queued DPC runs. The model runs calls at the points
//!   below, and [`crate::ModelKernel::hold_processor_calls`] holds them back entirely
//!   until [`crate::ModelKernel::run_processor_calls`], so tests can check the core at
//!   any delay.
//!
//! Delivery points (never on a thread holding a model spin lock, never nested in a call):
//! - a thread leaving `with_processor` on *p* runs *p*'s queue before it gives *p* up;
//! - a thread whose IRQL drops below `DISPATCH_LEVEL` (a spin lock released, a
//!   `with_processor` left, or after queueing at `PASSIVE_LEVEL`) runs the queue of every
//!   processor whose busy flag it can take (an idle processor runs its DPCs at once).
//!
//! While a call for *p* runs, its thread is "on *p* at DISPATCH_LEVEL": `with_processor`
//! from inside `run_on` runs on *p* without taking the busy flag again, as
//! `KeGetCurrentProcessorNumberEx` in a DPC returns the DPC's processor.

use std::any::TypeId;
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ksalloc_core::{Irql, ProcessorCall};

use crate::irql::{current_irql, locks_held, raise_irql};
use crate::processor::{swap_state, Processors, IN_CALL};

/// Runs `target.run_on(processor)` for a `target` known only by address.
type Trampoline = unsafe fn(*const (), usize);

/// The trampoline for `T`: what `KeInitializeDpc` records as the deferred routine.
///
/// # Safety
/// `target` is the address of a live `T`.
unsafe fn trampoline<T: ProcessorCall>(target: *const (), processor: usize) {
    // SAFETY: the caller passes the address of a live `T` (queue_processor_call checked
    // the type against the calls' own, and its caller keeps the target alive until the
    // call has run); `T: Sync`, so a shared reference on this thread is fine.
    let target = unsafe { &*target.cast::<T>() };
    target.run_on(processor);
}

thread_local! {
    /// The kernel (its processors' address) and processor whose call this thread runs.
    static RUNNING_CALL: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Whether the calling thread runs a processor call (of any kernel).
pub(crate) fn in_call() -> bool {
    RUNNING_CALL.with(Cell::get).is_some()
}

/// The processor whose call the calling thread is running for `processors`, if any.
pub(crate) fn running_call_on(processors: &Processors) -> Option<usize> {
    RUNNING_CALL
        .with(Cell::get)
        .and_then(|(kernel, p)| (kernel == std::ptr::from_ref(processors) as usize).then_some(p))
}

/// One `KDPC`: queued or not, and how many runs of it are under way.
///
/// Written only with the kernel's [`CallQueues`] lock held, so every decision sees a
/// consistent pair; the atomics only let the drop check and flush read it.
#[derive(Default)]
struct CallSlot {
    queued: AtomicBool,
    running: AtomicU32,
}

/// An entry of a processor's DPC queue.
struct QueuedCall {
    slot: Arc<CallSlot>,
    run: Trampoline,
    target: *const (),
}

// SAFETY: `target` is a `&T` with `T: ProcessorCall: Sync`, which may be used from any
// thread; queue_processor_call's caller keeps it alive until the call has run.
unsafe impl Send for QueuedCall {}

/// The kernel's per-processor DPC queues.
pub(crate) struct CallQueues {
    queues: Mutex<Box<[VecDeque<QueuedCall>]>>,
    /// Calls queued on every processor together. SeqCst: with a leaving thread's SeqCst
    /// release of its busy flag, either that thread sees a new call or the queuer takes
    /// the flag (see `Processors::run`).
    queued: AtomicUsize,
    /// [`crate::ModelKernel::hold_processor_calls`].
    hold: AtomicBool,
}

impl CallQueues {
    pub(crate) fn new(processors: usize) -> Self {
        Self {
            queues: Mutex::new((0..processors).map(|_| VecDeque::new()).collect()),
            queued: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<[VecDeque<QueuedCall>]>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether any call is queued (a hint: a call queued concurrently may be missed).
    pub(crate) fn any_queued(&self) -> bool {
        self.queued.load(Ordering::SeqCst) != 0
    }

    /// Whether calls may run at the automatic delivery points.
    pub(crate) fn delivering(&self) -> bool {
        !self.hold.load(Ordering::Relaxed)
    }

    pub(crate) fn set_hold(&self, hold: bool) {
        self.hold.store(hold, Ordering::Relaxed);
    }

    /// `KeInsertQueueDpc`: `false` if the slot is queued already.
    fn push(&self, processor: usize, call: QueuedCall) -> bool {
        let mut queues = self.lock();
        let inserted = !call.slot.queued.load(Ordering::Relaxed);
        if inserted {
            call.slot.queued.store(true, Ordering::Relaxed);
            queues[processor].push_back(call);
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        drop(queues);
        inserted
    }

    /// Takes the next call off `processor`'s queue, marking it running.
    fn pop(&self, processor: usize) -> Option<QueuedCall> {
        let mut queues = self.lock();
        let call = queues[processor].pop_front();
        if let Some(call) = &call {
            Self::started(call);
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        drop(queues);
        call
    }

    /// Takes `slot`'s call off `processor`'s queue, if it is there, marking it running.
    fn take(&self, processor: usize, slot: &Arc<CallSlot>) -> Option<QueuedCall> {
        let mut queues = self.lock();
        let queue = &mut queues[processor];
        let call = queue
            .iter()
            .position(|c| Arc::ptr_eq(&c.slot, slot))
            .and_then(|index| queue.remove(index));
        if let Some(call) = &call {
            Self::started(call);
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        drop(queues);
        call
    }

    /// Under the queues lock: a dequeued call is no longer queued and is under way.
    fn started(call: &QueuedCall) {
        call.slot.queued.store(false, Ordering::Relaxed);
        call.slot.running.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self, call: &QueuedCall) {
        let _queues = self.lock();
        call.slot.running.fetch_sub(1, Ordering::Release);
    }

    fn has_queued(&self, processor: usize) -> bool {
        !self.lock()[processor].is_empty()
    }

    /// Removes `slot`'s queued call, if any, without running it (for a panicking drop).
    fn discard(&self, processor: usize, slot: &Arc<CallSlot>) -> bool {
        let mut queues = self.lock();
        let queue = &mut queues[processor];
        let removed = queue
            .iter()
            .position(|c| Arc::ptr_eq(&c.slot, slot))
            .and_then(|index| queue.remove(index))
            .is_some();
        if removed {
            slot.queued.store(false, Ordering::Relaxed);
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        drop(queues);
        removed
    }
}

impl Processors {
    /// Runs `call` on `processor`, whose busy flag the calling thread holds.
    fn run_call(&self, processor: usize, call: &QueuedCall) {
        assert_eq!(
            locks_held(),
            0,
            "model bug: a processor call delivered on a thread holding a spin lock"
        );
        assert!(
            RUNNING_CALL.with(Cell::get).is_none(),
            "model bug: a processor call delivered inside another"
        );
        let irql = raise_irql(Irql::Dispatch);
        RUNNING_CALL.with(|c| c.set(Some((std::ptr::from_ref(self) as usize, processor))));
        let state = swap_state(IN_CALL);
        // SAFETY: `run` is `trampoline::<T>` for the `T` the calls were made for, and
        // queue_processor_call checked that `target` is a `&T`; its caller keeps the
        // target alive until the call has run (the Safety contract), and it has not.
        unsafe { (call.run)(call.target, processor) };
        swap_state(state);
        RUNNING_CALL.with(|c| c.set(None));
        assert_eq!(
            locks_held(),
            0,
            "a processor call returned holding a spin lock"
        );
        drop(irql);
        self.calls().finished(call);
    }

    /// Runs every call queued for `processor`, whose busy flag the calling thread holds,
    /// including calls those calls queue there.
    pub(crate) fn run_own_calls(&self, processor: usize) -> usize {
        let mut ran = 0;
        while let Some(call) = self.calls().pop(processor) {
            self.run_call(processor, &call);
            ran += 1;
        }
        ran
    }

    /// The calling thread just dropped below `DISPATCH_LEVEL` with no lock held: runs the
    /// queue of every processor it can take (unless calls are held). `wait`: waits for
    /// busy processors too, until nothing is queued.
    pub(crate) fn deliver_calls(&self, wait: bool) -> usize {
        let mut ran = 0;
        loop {
            // Passes until one runs nothing: a call may queue calls on processors this
            // pass already went by.
            let mut ran_now = 0;
            let mut left = false;
            for processor in 0..self.count() {
                if !self.calls().has_queued(processor) {
                    continue;
                }
                if self.try_enter(processor) {
                    ran_now += self.run_own_calls(processor);
                    self.leave(processor);
                } else {
                    left = true;
                }
            }
            ran += ran_now;
            if ran_now == 0 {
                if !(left && wait) {
                    return ran;
                }
                std::thread::yield_now();
            }
        }
    }

    /// At the automatic delivery points: if the thread is below `DISPATCH_LEVEL` with no
    /// lock held, not in a call, and calls are not held, [`Self::deliver_calls`].
    #[cold]
    #[inline(never)]
    pub(crate) fn deliver_if_idle(&self) {
        if self.calls().any_queued()
            && self.calls().delivering()
            && current_irql() < Irql::Dispatch
            && locks_held() == 0
            && RUNNING_CALL.with(Cell::get).is_none()
        {
            self.deliver_calls(false);
        }
    }
}

/// The model's `Platform::ProcessorCalls`: one `KDPC` per processor for one target type,
/// in a pool block (a nonpaged array of `KDPC`s on Windows).
pub struct ModelProcessorCalls {
    kernel: crate::ModelKernel,
    target_type: TypeId,
    run: Trampoline,
    slots: Box<[Arc<CallSlot>]>,
    memory: Option<crate::pool::ModelMemory>,
}

impl std::fmt::Debug for ModelProcessorCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelProcessorCalls")
            .field("processors", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// Bytes of a `KDPC` on x64 (what the pool block per processor stands for).
const KDPC_BYTES: usize = 64;

impl ModelProcessorCalls {
    pub(crate) fn new<T: ProcessorCall>(
        kernel: crate::ModelKernel,
        processors: usize,
        memory: crate::pool::ModelMemory,
    ) -> Self {
        Self {
            kernel,
            target_type: TypeId::of::<T>(),
            run: trampoline::<T>,
            slots: (0..processors).map(|_| Arc::default()).collect(),
            memory: Some(memory),
        }
    }

    pub(crate) const fn pool_bytes(processors: usize) -> usize {
        KDPC_BYTES * if processors == 0 { 1 } else { processors }
    }

    /// Whether these calls belong to `kernel`.
    pub(crate) fn is_of(&self, kernel: &crate::ModelKernel) -> bool {
        std::ptr::eq(self.kernel.processors(), kernel.processors())
    }

    /// Whether processor `processor`'s call is queued and has not started.
    #[must_use]
    pub fn is_queued(&self, processor: usize) -> bool {
        self.slots[processor].queued.load(Ordering::Relaxed)
    }

    /// `Platform::queue_processor_call` after its checks: `target` is a `&T`.
    pub(crate) fn queue<T: ProcessorCall>(&self, processor: usize, target: &T) -> bool {
        assert!(
            self.target_type == TypeId::of::<T>(),
            "queue_processor_call with a target type the calls were not made for \
             (the Safety contract: calls created by new_processor_calls for T)"
        );
        let slot = self.slot(processor);
        self.kernel.processors().calls().push(
            processor,
            QueuedCall {
                slot: Arc::clone(slot),
                run: self.run,
                target: std::ptr::from_ref(target).cast(),
            },
        )
    }

    fn slot(&self, processor: usize) -> &Arc<CallSlot> {
        assert!(
            processor < self.slots.len() && processor < self.kernel.processors().count(),
            "processor call for processor {processor}: calls exist for {} of the kernel's {}",
            self.slots.len(),
            self.kernel.processors().count()
        );
        &self.slots[processor]
    }

    /// `Platform::flush_processor_calls` after its checks. With `discard`, queued calls
    /// are removed (`KeRemoveQueueDpc`) instead of run.
    pub(crate) fn flush(&self, discard: bool) {
        let processors = self.kernel.processors();
        loop {
            let mut busy = false;
            for (processor, slot) in self.slots.iter().enumerate() {
                if discard {
                    processors.calls().discard(processor, slot);
                } else if let Some(call) = processors.calls().take(processor, slot) {
                    processors.enter_waiting(processor);
                    processors.run_call(processor, &call);
                    processors.leave(processor);
                }
                // Acquire: what a finished run did happens-before the flush returns.
                busy |= slot.queued.load(Ordering::Relaxed)
                    || slot.running.load(Ordering::Acquire) != 0;
            }
            if !busy {
                return;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for ModelProcessorCalls {
    fn drop(&mut self) {
        let processors = self.kernel.processors();
        let mut queued = Vec::new();
        for (processor, slot) in self.slots.iter().enumerate() {
            if processors.calls().discard(processor, slot) {
                queued.push(processor);
            }
        }
        let running: Vec<usize> = (0..self.slots.len())
            .filter(|&p| self.slots[p].running.load(Ordering::Acquire) != 0)
            .collect();
        if let Some(memory) = self.memory.take() {
            self.kernel.free_pool_block(&memory);
        }
        assert!(
            (queued.is_empty() && running.is_empty()) || std::thread::panicking(),
            "processor calls freed while queued on {queued:?} / running on {running:?} \
             (a KDPC freed while queued crashes Windows: flush first)"
        );
    }
}
