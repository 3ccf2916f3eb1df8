//! Loom models of the allocator engine (`ksalloc_core::Allocator`) on a loom platform.
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
//!     cargo test -p ksalloc-core --release --test loom_allocator
//! ```
//!
//! Preemption bound: 3 (`PREEMPTION_BOUND`), except 2 for the event model, whose four
//! threads take ~45 s at 3; `LOOM_MAX_PREEMPTIONS` overrides both. The races here need
//! at most two preemptions (a thread stopped between its check and its act, a second one
//! inside its own window) plus one for the third thread; the first lock-rule race found
//! (ALLOC/free/close, before 07afda5) showed up at 3 and not at 2. The thirteen models
//! before issue 15's two took 37 s together in --release on a 2-core machine (plus the
//! build); the two (cleanup vs a pending ALLOC, a pin's close vs a pin create) add
//! well under a second, and so do the three that check the platform's processor calls
//! and the three magazine scenarios rerun with every call held back (the whole file:
//! 27 s in --release here, 20 models).
//!
//! Loom approximates SeqCst loads (see `setup`); every scenario starts from a state whose
//! `pending_len` was last written by a SeqCst store, so the engine's store-then-load
//! handshake is modelled faithfully.
//!
//! [`LoomPlatform`] implements the core's `Platform` with loom primitives and checks what
//! ksalloc-model checks, in loom's terms:
//! - `Lock<T>` is a loom `Mutex`; holding one raises the thread's IRQL to DISPATCH.
//! - A request is a handle with a loom atomic cancel state (IDLE/ARMED/CANCELLED, the
//!   same protocol as ksalloc-model's `Irp`); completing one records it in a loom
//!   `Mutex<Vec>` and panics on a second completion, on a completion with the cancel
//!   routine still armed, and on a completion under a core lock.
//! - The frame block is one loom `UnsafeCell`: whoever holds a frame reads it, and
//!   `free_nonpaged` writes it, so loom panics unless every holder's use happens-before
//!   the free. A ghost count of frames held by clients must be 0 at the free, and the
//!   block must be freed exactly once.
//! - Events are counters.
//! - Processor calls (DPCs, [`Cpus`]) queue per processor and run at DISPATCH_LEVEL on
//!   their processor's turn, never during its `with_processor` section: when a thread
//!   leaves a section on that processor, when a thread's lock holding ends (or it queues
//!   at PASSIVE_LEVEL) and the processor is free, or when a model thread calls
//!   [`LoomPlatform::run_processor_calls`] (an idle processor running its DPCs; with
//!   [`LoomPlatform::hold_processor_calls`] the only way, so loom tries every delay).
//!
//! Ghost state (std atomics, outside loom) is read in execution order: loom runs one
//! thread at a time, and ghost accesses add no schedule points.
#![cfg(loom)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool as GhostBool, AtomicUsize as GhostCount};

use ks_abi::ks::{pool_type, KsAllocatorFraming, KsEventData};
use ks_abi::NtStatus;
use ksalloc_core::limits::FrameBudget;
use ksalloc_core::platform::FrameMemory;
use ksalloc_core::{
    AllocOutcome, Allocator, Irql, Platform, PoolCharge, ProcessorCall, RequestHandle, Requestor,
    SpinLock,
};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const GHOST: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;
const PREEMPTION_BOUND: usize = 3;

/// Base address of the (fake) frame block.
const BASE: usize = 0x0010_0000;
const FRAME_SIZE: u32 = 64;

mod loom_support;
use loom_support::model;

loom::thread_local! {
    static IRQL: Cell<Irql> = Cell::new(Irql::Passive);
    static LOCKS_HELD: Cell<u32> = Cell::new(0);
    /// The processor this thread runs on (`spawn_on`); the main thread's is 0.
    static PROCESSOR: Cell<usize> = Cell::new(0);
    static IN_PROCESSOR: Cell<bool> = Cell::new(false);
    /// The processor whose call this thread is running (it is "on" it at DISPATCH).
    static IN_CALL: Cell<Option<usize>> = Cell::new(None);
}

/// Processors of the loom kernel: with `MAGAZINE_FRAMES` frames an allocator has magazines.
const PROCESSORS_U32: u32 = 2;
const PROCESSORS: usize = PROCESSORS_U32 as usize;
const MAGAZINE_FRAMES: u32 = PROCESSORS_U32 * 2 * ksalloc_core::magazine::CAPACITY;

fn assert_outside_processor(what: &str) {
    assert!(
        !IN_PROCESSOR.with(Cell::get),
        "{what} inside with_processor"
    );
}

fn irql() -> Irql {
    IRQL.with(Cell::get)
}

/// Runs `f` at `DISPATCH_LEVEL` (what `KeAcquireSpinLock` and `IoCancelIrp` do).
fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let previous = IRQL.with(|c| c.replace(Irql::Dispatch));
    let result = f();
    IRQL.with(|c| c.set(previous));
    result
}

fn locks_held() -> u32 {
    LOCKS_HELD.with(Cell::get)
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const CANCELLED: u8 = 2;

/// A pended ALLOC request: a key and a cancel state shared by every clone.
#[derive(Clone)]
struct Request {
    key: usize,
    cancel: Arc<AtomicU8>,
}

impl RequestHandle for Request {
    fn key(&self) -> usize {
        self.key
    }
}

impl Request {
    fn new(key: usize) -> Self {
        Self {
            key,
            cancel: Arc::new(AtomicU8::new(IDLE)),
        }
    }
}

/// The fake frame block.
struct Block {
    base: usize,
}

impl FrameMemory for Block {
    fn base(&self) -> usize {
        self.base
    }
}

/// A spin lock: a loom mutex that raises IRQL and counts locks held; its release to
/// PASSIVE_LEVEL delivers queued processor calls (a std `Arc` to the processors: a loom
/// `Arc` clone would be one more schedule point per lock).
struct LoomLock<T>(Mutex<T>, std::sync::Arc<Cpus>);

impl<T> SpinLock<T> for LoomLock<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        assert!(irql() <= Irql::Dispatch, "KeAcquireSpinLock above DISPATCH");
        assert_outside_processor("KeAcquireSpinLock");
        let result = at_dispatch(|| {
            let mut guard = self.0.lock().expect("no thread panics holding a lock");
            LOCKS_HELD.with(|c| c.set(c.get() + 1));
            let result = f(&mut guard);
            LOCKS_HELD.with(|c| c.set(c.get() - 1));
            drop(guard);
            result
        });
        self.1.deliver_if_idle();
        result
    }
}

/// Runs `target.run_on(processor)` for a target known by address.
type Trampoline = unsafe fn(*const (), usize);

/// # Safety
/// `target` is the address of a live `T`.
unsafe fn trampoline<T: ProcessorCall>(target: *const (), processor: usize) {
    // SAFETY: the caller passes a live `T`'s address (the type was checked at queue time,
    // and queue_processor_call's caller keeps the target alive until the call ran).
    let target = unsafe { &*target.cast::<T>() };
    target.run_on(processor);
}

/// One processor's `KDPC` of a [`LoomCalls`] (ghost flags, changed only under that
/// processor's queue lock or turn).
#[derive(Default)]
struct CallSlot {
    queued: GhostBool,
    running: GhostBool,
}

/// A queued call.
struct QueuedCall {
    slot: std::sync::Arc<CallSlot>,
    run: Trampoline,
    target: *const (),
}

// SAFETY: `target` is a `&T` with `T: ProcessorCall: Sync`, usable from any thread, kept
// alive by queue_processor_call's caller until the call has run.
unsafe impl Send for QueuedCall {}

/// The loom platform's `ProcessorCalls`: one [`CallSlot`] per processor.
struct LoomCalls {
    target_type: std::any::TypeId,
    run: Trampoline,
    slots: Vec<std::sync::Arc<CallSlot>>,
}

impl Drop for LoomCalls {
    fn drop(&mut self) {
        assert!(
            self.slots
                .iter()
                .all(|s| !s.queued.load(GHOST) && !s.running.load(GHOST))
                || std::thread::panicking(),
            "processor calls freed while queued (flush first)"
        );
    }
}

/// The processors: one thread at a time at DISPATCH_LEVEL on each, and a DPC queue each.
struct Cpus {
    /// Which processors a thread is inside `with_processor` on.
    on_processor: [GhostBool; PROCESSORS],
    /// One thread at a time at DISPATCH_LEVEL on each processor: a thread entering
    /// `with_processor` on a processor another thread is in waits for it, as it could
    /// not run there on Windows until the other dropped below DISPATCH_LEVEL. A call
    /// runs holding its processor's turn too.
    turn: [Mutex<()>; PROCESSORS],
    /// Each processor's DPC queue: a loom mutex, so what the queuer did happens-before
    /// the call runs (the kernel's DPC queue lock on Windows).
    queue: [Mutex<Vec<QueuedCall>>; PROCESSORS],
    /// Entries in each queue (ghost: lets delivery points skip empty queues without a
    /// schedule point).
    queued: [GhostCount; PROCESSORS],
    /// Calls run only at `run_processor_calls` and flushes.
    hold: GhostBool,
}

impl Cpus {
    fn new() -> Self {
        Self {
            on_processor: [GhostBool::new(false), GhostBool::new(false)],
            turn: [Mutex::new(()), Mutex::new(())],
            queue: [Mutex::new(Vec::new()), Mutex::new(Vec::new())],
            queued: [GhostCount::new(0), GhostCount::new(0)],
            hold: GhostBool::new(false),
        }
    }

    /// Takes the next call queued for `processor` (or `slot`'s only), clearing its flag.
    fn take(
        &self,
        processor: usize,
        slot: Option<&std::sync::Arc<CallSlot>>,
    ) -> Option<QueuedCall> {
        if self.queued[processor].load(GHOST) == 0 {
            return None;
        }
        let mut queue = self.queue[processor].lock().unwrap();
        let index = match slot {
            Some(slot) => queue
                .iter()
                .position(|c| std::sync::Arc::ptr_eq(&c.slot, slot))?,
            None => 0,
        };
        let call = queue.remove(index);
        call.slot.queued.store(false, GHOST);
        self.queued[processor].fetch_sub(1, GHOST);
        drop(queue);
        Some(call)
    }

    /// Runs `call` on `processor`, whose turn the calling thread holds.
    fn run(&self, processor: usize, call: &QueuedCall) {
        assert_eq!(locks_held(), 0, "a call delivered with a lock held");
        assert!(
            !self.on_processor[processor].load(GHOST),
            "a call for processor {processor} ran during its with_processor section"
        );
        assert!(
            IN_CALL.with(Cell::get).is_none(),
            "a call delivered inside a call"
        );
        IN_CALL.with(|c| c.set(Some(processor)));
        call.slot.running.store(true, GHOST);
        at_dispatch(|| {
            // SAFETY: `run` is `trampoline::<T>` for the calls' `T`, the target's type
            // was checked at queue time, and its owner keeps it alive until it ran.
            unsafe { (call.run)(call.target, processor) };
        });
        call.slot.running.store(false, GHOST);
        IN_CALL.with(|c| c.set(None));
        assert_eq!(locks_held(), 0, "a call returned holding a lock");
    }

    /// Runs every call queued for `processor`, whose turn the calling thread holds.
    fn run_queued(&self, processor: usize) -> usize {
        let mut ran = 0;
        while let Some(call) = self.take(processor, None) {
            self.run(processor, &call);
            ran += 1;
        }
        ran
    }

    /// The calling thread is below DISPATCH_LEVEL with no lock: runs the queue of each
    /// processor whose turn is free (unless held).
    fn deliver_if_idle(&self) {
        if irql() >= Irql::Dispatch || locks_held() != 0 || self.hold.load(GHOST) {
            return;
        }
        for processor in 0..PROCESSORS {
            if self.queued[processor].load(GHOST) == 0 {
                continue;
            }
            if let Ok(turn) = self.turn[processor].try_lock() {
                self.run_queued(processor);
                drop(turn);
            }
        }
    }
}

/// A notification event: how often it was set.
struct Event(GhostCount);

impl Event {
    fn sets(&self) -> usize {
        self.0.load(GHOST)
    }
}

/// A client's FREEFRAME target.
#[derive(Clone)]
struct ClientEvent {
    key: usize,
    sets: std::sync::Arc<GhostCount>,
}

/// The kernel's books, shared by every clone of the platform.
struct Kernel {
    /// The frame block's bytes as loom sees them. The std mutex only makes the loom cell
    /// `Sync` (the platform must be): loom never switches threads inside a cell access,
    /// so it is never contended, and loom sees no synchronisation in it.
    memory: std::sync::Mutex<UnsafeCell<()>>,
    memory_live: GhostBool,
    memory_allocs: GhostCount,
    /// The driver's frame budget (unlimited here; the core charges and releases it).
    budget: FrameBudget,
    memory_frees: GhostCount,
    /// Frames clients hold (a request completed with a frame counts as a client).
    frames_out: GhostCount,
    /// Set when frame memory went back to the pool with a core lock held.
    pool_call_under_lock: GhostBool,
    completions: Mutex<Vec<(usize, Result<usize, NtStatus>)>>,
    /// The processors and their DPC queues.
    cpus: std::sync::Arc<Cpus>,
}

#[derive(Clone)]
struct LoomPlatform(Arc<Kernel>);

impl LoomPlatform {
    fn new() -> Self {
        Self(Arc::new(Kernel {
            memory: std::sync::Mutex::new(UnsafeCell::new(())),
            memory_live: GhostBool::new(false),
            memory_allocs: GhostCount::new(0),
            budget: FrameBudget::new(usize::MAX),
            memory_frees: GhostCount::new(0),
            frames_out: GhostCount::new(0),
            pool_call_under_lock: GhostBool::new(false),
            completions: Mutex::new(Vec::new()),
            cpus: std::sync::Arc::new(Cpus::new()),
        }))
    }

    /// Holds queued processor calls back from every automatic delivery point
    /// (`true`): they run only at [`Self::run_processor_calls`] and flushes, so a model
    /// that runs those on a thread of its own has loom try every delay.
    fn hold_processor_calls(&self, hold: bool) {
        self.0.cpus.hold.store(hold, GHOST);
    }

    /// An idle processor runs its DPCs: runs every call queued now, each on its
    /// processor (waiting for its turn). PASSIVE_LEVEL, no lock, outside sections.
    fn run_processor_calls(&self) -> usize {
        assert_eq!(irql(), Irql::Passive, "run_processor_calls above PASSIVE");
        assert_eq!(locks_held(), 0);
        assert_outside_processor("run_processor_calls");
        let cpus = &self.0.cpus;
        let mut ran = 0;
        for processor in 0..PROCESSORS {
            if cpus.queued[processor].load(GHOST) != 0 {
                let turn = cpus.turn[processor].lock().unwrap();
                ran += cpus.run_queued(processor);
                drop(turn);
            }
        }
        ran
    }

    /// A frame holder reads the block (loom records the access).
    fn use_memory(&self) {
        self.0.memory.lock().unwrap().with(|_| ());
    }

    /// A client now holds the frame at `address`: it uses the memory.
    fn took_frame(&self, address: usize) {
        assert!(address >= BASE, "frame address below the block");
        assert!(
            self.0.memory_live.load(GHOST),
            "frame {address:#x} handed out from freed memory"
        );
        self.0.frames_out.fetch_add(1, GHOST);
        self.use_memory();
    }

    /// A client uses its frame a last time and returns it.
    fn client_free(&self, alloc: &Allocator<Self>, address: usize) {
        assert!(
            self.0.memory_live.load(GHOST),
            "client holds a frame of freed memory"
        );
        self.use_memory();
        self.0.frames_out.fetch_sub(1, GHOST);
        alloc.free(address).expect("a held frame is accepted back");
    }

    /// `IoCompleteRequest` for an ALLOC, by the core or by the dispatcher.
    fn complete(&self, request: &Request, result: Result<usize, NtStatus>) {
        assert!(irql() <= Irql::Dispatch);
        assert_outside_processor("IoCompleteRequest");
        assert_eq!(locks_held(), 0, "IoCompleteRequest with a core lock held");
        assert_ne!(
            request.cancel.load(Ordering::Acquire),
            ARMED,
            "request completed with its cancel routine still set"
        );
        {
            let mut done = self.0.completions.lock().unwrap();
            assert!(
                done.iter().all(|&(key, _)| key != request.key),
                "request {} completed twice ({done:?}, now {result:?})",
                request.key
            );
            done.push((request.key, result));
        }
        if let Ok(address) = result {
            self.took_frame(address);
        }
    }

    /// How the request with `key` completed, if it has.
    fn completion(&self, key: usize) -> Option<Result<usize, NtStatus>> {
        let done = self.0.completions.lock().unwrap();
        done.iter().find(|&&(k, _)| k == key).map(|&(_, r)| r)
    }

    /// The dispatcher's side of the ALLOC method: completes the request itself unless it
    /// pended. Returns whether it pended.
    fn method_alloc(&self, alloc: &Allocator<Self>, request: &Request) -> bool {
        match alloc.method_alloc(request) {
            AllocOutcome::Ready(address) => self.complete(request, Ok(address)),
            AllocOutcome::Failed(status) => self.complete(request, Err(status)),
            AllocOutcome::Pended => return true,
        }
        false
    }

    /// `IoCancelIrp` with the allocator's cancel routine installed.
    fn cancel(alloc: &Allocator<Self>, request: &Request) -> bool {
        if request.cancel.swap(CANCELLED, Ordering::AcqRel) != ARMED {
            return false;
        }
        at_dispatch(|| alloc.cancel(request.key))
    }

    fn table_take(&self, alloc: &Allocator<Self>) -> Option<usize> {
        let address = alloc.table_allocate().ok()?;
        self.took_frame(address);
        Some(address)
    }

    fn frames_out(&self) -> usize {
        self.0.frames_out.load(GHOST)
    }

    fn memory_frees(&self) -> usize {
        self.0.memory_frees.load(GHOST)
    }
}

impl Platform for LoomPlatform {
    type Memory = Block;
    type Lock<T: Send> = LoomLock<T>;
    type Event = Event;
    type ClientEvent = ClientEvent;
    type Request = Request;
    type Shared<T: Send + Sync> = std::sync::Arc<T>;
    type ProcessorCalls = LoomCalls;

    fn current_irql(&self) -> Irql {
        irql()
    }

    fn share<T: Send + Sync>(&self, value: T) -> Result<std::sync::Arc<T>, T> {
        Ok(std::sync::Arc::new(value))
    }

    fn frame_budget(&self) -> &FrameBudget {
        &self.0.budget
    }

    fn alloc_nonpaged(&self, bytes: usize, align: usize, _: PoolCharge) -> Option<Block> {
        assert_eq!(locks_held(), 0, "pool allocation with a core lock held");
        assert!(bytes > 0 && BASE % align == 0);
        assert!(
            !self.0.memory_live.swap(true, GHOST),
            "one frame block per allocator"
        );
        self.0.memory_allocs.fetch_add(1, GHOST);
        Some(Block { base: BASE })
    }

    fn free_nonpaged(&self, memory: Block) {
        assert!(irql() <= Irql::Dispatch);
        assert_outside_processor("ExFreePoolWithTag");
        assert_eq!(memory.base, BASE);
        if locks_held() != 0 {
            self.0.pool_call_under_lock.store(true, GHOST);
        }
        assert!(
            self.0.memory_live.swap(false, GHOST),
            "frame memory freed twice"
        );
        assert_eq!(
            self.frames_out(),
            0,
            "frame memory freed while a client holds a frame"
        );
        // The free writes the block: every holder's use must happen-before it.
        self.0.memory.lock().unwrap().with_mut(|_| ());
        self.0.memory_frees.fetch_add(1, GHOST);
    }

    fn new_lock<T: Send>(&self, value: T) -> LoomLock<T> {
        LoomLock(Mutex::new(value), std::sync::Arc::clone(&self.0.cpus))
    }

    fn new_event(&self) -> Option<Event> {
        Some(Event(GhostCount::new(0)))
    }

    fn set_event(&self, event: &Event) {
        assert!(irql() <= Irql::Dispatch);
        assert_outside_processor("KeSetEvent");
        event.0.fetch_add(1, GHOST);
    }

    fn signal_client(&self, event: &ClientEvent) {
        assert!(irql() <= Irql::Dispatch);
        event.sets.fetch_add(1, GHOST);
    }

    fn client_event_key(&self, event: &ClientEvent) -> usize {
        event.key
    }

    fn arm_cancel(&self, request: &Request) -> bool {
        assert!(locks_held() > 0, "arm_cancel must run under the queue lock");
        request
            .cancel
            .compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn disarm_cancel(&self, request: &Request) -> bool {
        assert!(
            locks_held() > 0,
            "disarm_cancel must run under the queue lock"
        );
        request
            .cancel
            .compare_exchange(ARMED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn complete_alloc(&self, request: Request, result: Result<usize, NtStatus>) {
        self.complete(&request, result);
    }

    fn function_table(&self) -> [usize; 2] {
        [0x1000, 0x2000]
    }

    fn processor_count(&self) -> u32 {
        PROCESSORS_U32
    }

    fn with_processor<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        assert!(irql() <= Irql::Dispatch);
        assert_outside_processor("with_processor");
        if let Some(processor) = IN_CALL.with(Cell::get) {
            // In a call for `processor`: on it at DISPATCH_LEVEL already.
            IN_PROCESSOR.with(|c| c.set(true));
            let result = f(processor);
            IN_PROCESSOR.with(|c| c.set(false));
            return result;
        }
        let processor = PROCESSOR.with(Cell::get);
        let cpus = &self.0.cpus;
        let turn = cpus.turn[processor]
            .lock()
            .expect("no thread panics inside with_processor");
        let busy = &cpus.on_processor[processor];
        assert!(
            !busy.swap(true, GHOST),
            "two threads inside with_processor on processor {processor}"
        );
        let result = at_dispatch(|| {
            IN_PROCESSOR.with(|c| c.set(true));
            let result = f(processor);
            IN_PROCESSOR.with(|c| c.set(false));
            result
        });
        busy.store(false, GHOST);
        // Leaving the section: the processor's own queue runs first, on this thread.
        if locks_held() == 0 && !cpus.hold.load(GHOST) {
            at_dispatch(|| cpus.run_queued(processor));
        }
        drop(turn);
        cpus.deliver_if_idle();
        result
    }

    fn new_processor_calls<T: ProcessorCall>(&self, processors: usize) -> Option<LoomCalls> {
        assert_eq!(irql(), Irql::Passive, "new_processor_calls above PASSIVE");
        assert!(processors <= PROCESSORS);
        Some(LoomCalls {
            target_type: std::any::TypeId::of::<T>(),
            run: trampoline::<T>,
            slots: (0..processors).map(|_| std::sync::Arc::default()).collect(),
        })
    }

    unsafe fn queue_processor_call<T: ProcessorCall>(
        &self,
        calls: &LoomCalls,
        processor: usize,
        target: &T,
    ) -> bool {
        assert!(irql() <= Irql::Dispatch, "KeInsertQueueDpc above DISPATCH");
        assert_outside_processor("KeInsertQueueDpc");
        assert!(
            calls.target_type == std::any::TypeId::of::<T>(),
            "queue_processor_call with a target type the calls were not made for"
        );
        let cpus = &self.0.cpus;
        let slot = &calls.slots[processor];
        let mut queue = cpus.queue[processor].lock().unwrap();
        // KeInsertQueueDpc: FALSE, and nothing else, while the DPC is queued.
        let inserted = !slot.queued.swap(true, GHOST);
        if inserted {
            queue.push(QueuedCall {
                slot: std::sync::Arc::clone(slot),
                run: calls.run,
                target: std::ptr::from_ref(target).cast(),
            });
            cpus.queued[processor].fetch_add(1, GHOST);
        }
        drop(queue);
        cpus.deliver_if_idle();
        inserted
    }

    fn flush_processor_calls(&self, calls: &LoomCalls) {
        assert_eq!(irql(), Irql::Passive, "KeFlushQueuedDpcs above PASSIVE");
        assert_eq!(locks_held(), 0);
        assert_outside_processor("KeFlushQueuedDpcs");
        let cpus = &self.0.cpus;
        // Passes until none of these calls is queued or running (a call may queue another).
        while calls
            .slots
            .iter()
            .any(|s| s.queued.load(GHOST) || s.running.load(GHOST))
        {
            for (processor, slot) in calls.slots.iter().enumerate() {
                if !slot.queued.load(GHOST) && !slot.running.load(GHOST) {
                    continue;
                }
                // Its turn: a call for it that is running holds it, so it has finished.
                let turn = cpus.turn[processor].lock().unwrap();
                if let Some(call) = cpus.take(processor, Some(slot)) {
                    cpus.run(processor, &call);
                }
                drop(turn);
            }
        }
    }

    fn reference_client_event(
        &self,
        _: &KsEventData,
        _: Requestor,
    ) -> Result<ClientEvent, NtStatus> {
        // These models enable client events directly.
        Err(NtStatus::NOT_SUPPORTED)
    }

    fn check_irql(&self, max: Irql) {
        assert!(irql() <= max, "IRQL contract: at {:?}, max {max:?}", irql());
    }
}

const fn framing(frames: u32) -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames,
        frame_size: FRAME_SIZE,
        file_alignment: 7,
        reserved: 0,
    }
}

fn setup(frames: u32) -> (LoomPlatform, Arc<Allocator<LoomPlatform>>) {
    let kernel = LoomPlatform::new();
    let alloc = Allocator::create(kernel.clone(), &framing(frames)).expect("valid framing");
    // Loom models SeqCst loads as Acquire, except that a SeqCst load never returns an
    // older SeqCst store once a newer SeqCst store exists. An atomic's initial value is
    // not a SeqCst store in loom, so a SeqCst load of `pending_len` could still return
    // the constructor's 0 after another thread's SeqCst store of 1: a false alarm in the
    // engine's store-then-load handshake, impossible in C++20's single total order (the
    // constructor happens-before that store). Cancelling a key that is not queued stores
    // `pending_len` (0, SeqCst) under the lock, and makes every later store SeqCst-ordered.
    assert!(!at_dispatch(|| alloc.cancel(usize::MAX)));
    // Every scenario starts with one frame cached on each processor (cached, taken and
    // cached again: the owner's whole round trip).
    if alloc.has_magazines() {
        for processor in 0..PROCESSORS {
            PROCESSOR.with(|c| c.set(processor));
            let frame = at_dispatch(|| alloc.table_allocate()).expect("free frame");
            at_dispatch(|| alloc.free(frame)).expect("held frame");
            assert_eq!(at_dispatch(|| alloc.table_allocate()), Ok(frame), "cached");
            at_dispatch(|| alloc.free(frame)).expect("held frame");
        }
        PROCESSOR.with(|c| c.set(0));
        assert_eq!(alloc.snapshot().cached, PROCESSORS_U32);
    }
    (kernel, Arc::new(alloc))
}

/// Runs `f` on a new thread with clones of the kernel and allocator.
fn spawn<R: 'static>(
    kernel: &LoomPlatform,
    alloc: &Arc<Allocator<LoomPlatform>>,
    f: impl FnOnce(&LoomPlatform, &Allocator<LoomPlatform>) -> R + 'static,
) -> thread::JoinHandle<R> {
    let (kernel, alloc) = (kernel.clone(), Arc::clone(alloc));
    thread::spawn(move || f(&kernel, &alloc))
}

/// `spawn` with the thread on `processor` (each thread its own: the platform checks).
fn spawn_on<R: 'static>(
    processor: usize,
    kernel: &LoomPlatform,
    alloc: &Arc<Allocator<LoomPlatform>>,
    f: impl FnOnce(&LoomPlatform, &Allocator<LoomPlatform>) -> R + 'static,
) -> thread::JoinHandle<R> {
    spawn(kernel, alloc, move |k, a| {
        PROCESSOR.with(|c| c.set(processor));
        f(k, a)
    })
}

/// At rest: the snapshot agrees with the ghost books.
fn assert_at_rest(kernel: &LoomPlatform, alloc: &Allocator<LoomPlatform>) {
    let s = alloc.snapshot();
    assert!(s.conserved(), "conservation broken: {s:?}");
    if !s.memory_released {
        assert_eq!(s.free + s.outstanding, s.total, "{s:?}");
    }
    assert_eq!(
        s.outstanding as usize,
        kernel.frames_out(),
        "rundown count vs frames clients hold: {s:?}"
    );
    assert!(
        !(s.pending > 0 && s.free > 0),
        "a request waits while a frame is free: {s:?}"
    );
}

/// Closes, returns every frame still held, and checks the memory went back exactly once.
fn teardown(kernel: &LoomPlatform, alloc: &Allocator<LoomPlatform>, held: &[usize]) {
    alloc.close();
    for &address in held {
        kernel.client_free(alloc, address);
    }
    assert!(alloc.is_drained());
    assert_eq!(kernel.frames_out(), 0);
    assert_eq!(
        kernel.memory_frees(),
        1,
        "frame memory released exactly once"
    );
    assert!(alloc.snapshot().memory_released);
    assert_eq!(kernel.0.memory_allocs.load(GHOST), 1);
}

/// (i) A frame comes back while its waiter is pended and cancelled, all at once. The
/// request completes exactly once, with the frame or `STATUS_CANCELLED`, and the frame is
/// out exactly when the request got it.
#[test]
fn free_vs_pended_alloc_vs_cancel() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("one free frame");
        let request = Request::new(1);
        assert!(kernel.method_alloc(&alloc, &request), "no frame: it pends");

        let freer = spawn(&kernel, &alloc, move |k, a| k.client_free(a, frame));
        let r = request;
        let canceller = spawn(&kernel, &alloc, move |_, a| LoomPlatform::cancel(a, &r));
        // A second ALLOC arrives meanwhile: FIFO says it only gets a frame after the first.
        let second = Request::new(2);
        let r2 = second;
        let late = spawn(&kernel, &alloc, move |k, a| k.method_alloc(a, &r2));
        freer.join().unwrap();
        let cancel_ran = canceller.join().unwrap();
        let late_pended = late.join().unwrap();

        let first = kernel.completion(1).expect("completed exactly once");
        let second = kernel.completion(2);
        match first {
            Ok(address) => {
                assert_eq!(address, frame);
                assert!(
                    !cancel_ran,
                    "a cancel routine ran for a request that got a frame"
                );
                assert!(
                    late_pended && second.is_none(),
                    "FIFO: the first waiter is served first"
                );
            }
            Err(status) => {
                assert_eq!(status, NtStatus::CANCELLED);
                assert!(cancel_ran);
                assert_eq!(
                    second,
                    Some(Ok(frame)),
                    "the frame went to the remaining request"
                );
            }
        }
        assert_at_rest(&kernel, &alloc);
        let s = alloc.snapshot();
        assert_eq!(s.pending, u32::from(second.is_none()));
        let c = s.counters;
        assert_eq!(c.frees, 1);
        assert_eq!(
            c.allocations, 2,
            "the table's frame, then one for a request"
        );
        assert_eq!(c.pends, 1 + u64::from(late_pended));
        assert_eq!(c.cancels, u64::from(cancel_ran));
        assert_eq!((c.rejected_frees, c.failed_allocations), (0, 0));
        let held: Vec<usize> = [first, second.unwrap_or(Err(NtStatus::PENDING))]
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        // Close cancels a still-pending second request.
        if second.is_none() {
            assert_eq!(alloc.close(), 1);
            assert_eq!(kernel.completion(2), Some(Err(NtStatus::CANCELLED)));
        }
        teardown(&kernel, &alloc, &held);
    });
}

/// (ii) ALLOC pends while another thread frees the only frame and a third tries the
/// function table: no lost wakeup. At rest the request has the frame, or the table caller
/// has it and the request still waits; never a waiting request beside a free frame.
#[test]
fn pended_alloc_and_free_no_lost_wakeup() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("one free frame");
        let request = Request::new(1);

        let r = request;
        let allocer = spawn(&kernel, &alloc, move |k, a| k.method_alloc(a, &r));
        let freer = spawn(&kernel, &alloc, move |k, a| k.client_free(a, frame));
        let grabber = spawn(&kernel, &alloc, LoomPlatform::table_take);
        allocer.join().unwrap();
        freer.join().unwrap();
        let taken = grabber.join().unwrap();

        assert_at_rest(&kernel, &alloc);
        let s = alloc.snapshot();
        match (kernel.completion(1), taken) {
            (Some(Ok(address)), None) => {
                assert_eq!(address, frame);
                assert_eq!(s.pending, 0);
            }
            (None, Some(address)) => {
                assert_eq!(address, frame);
                assert_eq!((s.pending, s.free), (1, 0));
            }
            other => panic!("request / table outcome {other:?}, {s:?}"),
        }
        let held: Vec<usize> = kernel
            .completion(1)
            .and_then(Result::ok)
            .into_iter()
            .chain(taken)
            .collect();
        teardown(&kernel, &alloc, &held);
        assert_eq!(
            kernel.completion(1).is_some_and(|r| r.is_ok()),
            taken.is_none()
        );
        if taken.is_some() {
            assert_eq!(kernel.completion(1), Some(Err(NtStatus::CANCELLED)));
        }
    });
}

/// (iii) Two frames come back while close runs, with an ALLOC pending. The request
/// completes exactly once (a returned frame or `STATUS_CANCELLED` from close); the frame
/// memory is released exactly once, when no frame is out (checked in `free_nonpaged`).
#[test]
fn frees_race_close_with_frames_out() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(2);
        let f1 = kernel.table_take(&alloc).expect("free frame");
        let f2 = kernel.table_take(&alloc).expect("free frame");
        let request = Request::new(1);
        assert!(kernel.method_alloc(&alloc, &request));

        let t1 = spawn(&kernel, &alloc, move |k, a| k.client_free(a, f1));
        let t2 = spawn(&kernel, &alloc, move |k, a| k.client_free(a, f2));
        let closer = spawn(&kernel, &alloc, |_, a| a.close());
        t1.join().unwrap();
        t2.join().unwrap();
        let cancelled = closer.join().unwrap();

        let s = alloc.snapshot();
        assert!(s.closed && s.pending == 0, "{s:?}");
        assert!(s.conserved());
        assert_eq!(s.outstanding as usize, kernel.frames_out());
        let held: Vec<usize> = match kernel.completion(1).expect("completed exactly once") {
            Ok(address) => {
                assert!(address == f1 || address == f2);
                assert_eq!(cancelled, 0);
                assert!(!s.memory_released, "a frame is still out");
                assert_eq!(kernel.memory_frees(), 0);
                vec![address]
            }
            Err(status) => {
                assert_eq!(status, NtStatus::CANCELLED);
                assert_eq!(cancelled, 1, "close cancelled the pending request");
                assert!(s.memory_released, "every frame is back after close");
                vec![]
            }
        };
        assert_eq!(alloc.table_allocate(), Err(NtStatus::INVALID_DEVICE_STATE));
        teardown(&kernel, &alloc, &held);
    });
}

/// (iii b) The function-table path after close and a free racing close with no waiter:
/// memory goes when the last frame returns, whoever returns it.
#[test]
fn last_free_races_close_and_alloc() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("free frame");
        let request = Request::new(1);

        let freer = spawn(&kernel, &alloc, move |k, a| k.client_free(a, frame));
        let closer = spawn(&kernel, &alloc, |_, a| a.close());
        let r = request;
        let allocer = spawn(&kernel, &alloc, move |k, a| k.method_alloc(a, &r));
        freer.join().unwrap();
        let cancelled = closer.join().unwrap();
        allocer.join().unwrap();

        let held: Vec<usize> = match kernel.completion(1).expect("completed exactly once") {
            Ok(address) => vec![address],
            Err(status) => {
                assert!(
                    status == NtStatus::CANCELLED || status == NtStatus::INVALID_DEVICE_STATE,
                    "{status:?}"
                );
                assert_eq!(cancelled, usize::from(status == NtStatus::CANCELLED));
                assert!(alloc.snapshot().memory_released);
                vec![]
            }
        };
        teardown(&kernel, &alloc, &held);
    });
}

/// (iv) Once FUNCTIONTABLE has been handed out, a free signals the internal event: a free
/// that starts after the table is armed (ordered by a release/acquire flag) must set it.
/// Meanwhile a client FREEFRAME event is enabled the same way.
#[test]
fn table_acquired_then_free_signals_event() {
    model(2, || {
        let (kernel, alloc) = setup(2);
        let f1 = kernel.table_take(&alloc).expect("free frame");
        let f2 = kernel.table_take(&alloc).expect("free frame");
        let armed = Arc::new(AtomicBool::new(false));
        let client = ClientEvent {
            key: 100,
            sets: std::sync::Arc::new(GhostCount::new(0)),
        };

        let flag = Arc::clone(&armed);
        let c = client.clone();
        let arming = spawn(&kernel, &alloc, move |_, a| {
            a.acquire_function_table().expect("open");
            a.enable_free_frame_event(c).expect("first enable");
            flag.store(true, Ordering::Release);
        });
        let freers: Vec<_> = [f1, f2]
            .into_iter()
            .map(|frame| {
                let flag = Arc::clone(&armed);
                let c = client.clone();
                spawn(&kernel, &alloc, move |k, a| {
                    let after = flag.load(Ordering::Acquire);
                    let before = (a.internal_event().sets(), c.sets.load(GHOST));
                    k.client_free(a, frame);
                    if after {
                        assert!(a.internal_event().sets() > before.0, "free did not signal");
                        assert!(c.sets.load(GHOST) > before.1, "client event not signalled");
                    }
                })
            })
            .collect();
        arming.join().unwrap();
        for f in freers {
            f.join().unwrap();
        }
        assert!(alloc.internal_event().sets() <= 2);
        // Everything is ordered now: the next free must signal both.
        let sets = (alloc.internal_event().sets(), client.sets.load(GHOST));
        let frame = kernel.table_take(&alloc).expect("free frame");
        kernel.client_free(&alloc, frame);
        assert_eq!(alloc.internal_event().sets(), sets.0 + 1);
        assert_eq!(client.sets.load(GHOST), sets.1 + 1);
        assert_at_rest(&kernel, &alloc);
        teardown(&kernel, &alloc, &[]);
    });
}

/// Close disarms the internal free-frame event; FUNCTIONTABLE racing close must not
/// re-arm it behind close's back (frees after close would keep signalling an event
/// nobody is supposed to be waiting on, and, once the owner frees the allocator after
/// the last frame, touch it).
#[test]
fn function_table_racing_close_stays_disarmed() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("free frame");
        let acquirer = spawn(&kernel, &alloc, |_, a| a.acquire_function_table());
        let closer = spawn(&kernel, &alloc, |_, a| a.close());
        let table = acquirer.join().unwrap();
        closer.join().unwrap();
        assert!(table.is_ok() || table == Err(NtStatus::INVALID_DEVICE_STATE));
        let before = alloc.internal_event().sets();
        kernel.client_free(&alloc, frame);
        assert_eq!(
            alloc.internal_event().sets(),
            before,
            "a free after close signalled the internal event"
        );
        assert_eq!(kernel.memory_frees(), 1);
    });
}

/// Checks the engine's lock rule ("no pool call ... with either lock held") at rest: the
/// frame memory never went back to the pool from inside a core lock.
fn assert_memory_released_outside_locks(kernel: &LoomPlatform) {
    assert!(
        !kernel.0.pool_call_under_lock.load(GHOST),
        "free_nonpaged ran with a core lock held"
    );
}

/// The lock rule under ALLOC (queues, then services the queue under the lock), the last
/// frame's free and close, all at once. Before 07afda5, service_pending took a frame
/// reference under the lock, found the list empty, and its release could be the one
/// that drained a closed allocator: free_nonpaged under the queue lock (found at bound 3).
#[test]
fn alloc_free_close_release_memory_outside_the_lock() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("free frame");
        let request = Request::new(1);
        let allocer = spawn(&kernel, &alloc, move |k, a| k.method_alloc(a, &request));
        let freer = spawn(&kernel, &alloc, move |k, a| k.client_free(a, frame));
        let closer = spawn(&kernel, &alloc, |_, a| a.close());
        allocer.join().unwrap();
        freer.join().unwrap();
        closer.join().unwrap();
        assert_memory_released_outside_locks(&kernel);
        let held: Vec<usize> = kernel
            .completion(1)
            .and_then(Result::ok)
            .into_iter()
            .collect();
        teardown(&kernel, &alloc, &held);
    });
}

/// The lock rule when the only waiter is being cancelled: the free finds the request's
/// cancel routine running (`disarm_cancel` fails), pushes its frame, and services the
/// queue; service_pending takes the frame and a reference under the lock, finds no
/// request it may complete, and puts the frame back and releases the reference, still
/// under the lock. If close ran in between, that release drains the allocator.
#[test]
fn cancel_free_close_release_memory_outside_the_lock() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("free frame");
        let request = Request::new(1);
        assert!(kernel.method_alloc(&alloc, &request));
        let canceller = spawn(&kernel, &alloc, move |_, a| {
            LoomPlatform::cancel(a, &request)
        });
        let freer = spawn(&kernel, &alloc, move |k, a| k.client_free(a, frame));
        let closer = spawn(&kernel, &alloc, |_, a| a.close());
        canceller.join().unwrap();
        freer.join().unwrap();
        closer.join().unwrap();
        assert_memory_released_outside_locks(&kernel);
        let held: Vec<usize> = kernel
            .completion(1)
            .and_then(Result::ok)
            .into_iter()
            .collect();
        teardown(&kernel, &alloc, &held);
    });
}

// ---- magazines (allocators with `MAGAZINE_FRAMES` frames on two processors) ----------

/// Takes every frame on the main thread (processor 0).
fn take_every_frame(kernel: &LoomPlatform, alloc: &Allocator<LoomPlatform>) -> Vec<usize> {
    let held: Vec<usize> = std::iter::from_fn(|| kernel.table_take(alloc)).collect();
    assert_eq!(held.len(), MAGAZINE_FRAMES as usize);
    assert!(alloc.has_magazines());
    held
}

// Each magazine scenario runs twice: with the processor calls delivered at the
// platform's first delivery point, and with every call held back and run on a thread of
// its own (an idle processor running its DPC queue), so loom tries every delay: before,
// between and after the racing operations, and after the owner has or has not yet seen
// a block. Removing the pend's DPCs or the owner's block check fails the held runs.

/// Holds the calls back when `held`, and starts the idle processor that runs them.
fn idle_processor(
    kernel: &LoomPlatform,
    alloc: &Arc<Allocator<LoomPlatform>>,
    held: bool,
) -> Option<thread::JoinHandle<usize>> {
    kernel.hold_processor_calls(held);
    held.then(|| spawn(kernel, alloc, |k, _| k.run_processor_calls()))
}

/// Joins the idle processor, runs what is still queued (Windows runs it at some point)
/// and stops holding calls back.
fn calls_done(kernel: &LoomPlatform, idle: Option<thread::JoinHandle<usize>>) {
    if let Some(idle) = idle {
        idle.join().unwrap();
        kernel.run_processor_calls();
        kernel.hold_processor_calls(false);
    }
}

/// (vi) The magazine rule: a frame freed on processor 1, where it may be cached (by a
/// processor that has not seen the block yet), while an ALLOC on processor 0 finds
/// nothing free and pends. Whatever the interleaving and the calls' delay, the request
/// ends up with that frame: it never waits while the frame sits in a magazine.
fn cached_free_vs_pending_alloc(held: bool) {
    model(PREEMPTION_BOUND, move || {
        let (kernel, alloc) = setup(MAGAZINE_FRAMES);
        let mut held_frames = take_every_frame(&kernel, &alloc);
        let frame = held_frames.pop().unwrap();
        let idle = idle_processor(&kernel, &alloc, held);
        let freer = spawn_on(1, &kernel, &alloc, move |k, a| k.client_free(a, frame));
        let request = Request::new(1);
        let r = request.clone();
        let allocer = spawn_on(0, &kernel, &alloc, move |k, a| k.method_alloc(a, &r));
        freer.join().unwrap();
        allocer.join().unwrap();
        calls_done(&kernel, idle);

        assert_eq!(
            kernel.completion(request.key),
            Some(Ok(frame)),
            "the request got the freed frame"
        );
        let s = alloc.snapshot();
        assert_eq!((s.pending, s.cached, s.free), (0, 0, 0), "{s:?}");
        assert_at_rest(&kernel, &alloc);
        held_frames.push(frame);
        teardown(&kernel, &alloc, &held_frames);
    });
}

#[test]
fn cached_free_vs_pending_alloc_never_strands_the_frame() {
    cached_free_vs_pending_alloc(false);
}

#[test]
fn held_calls_cached_free_vs_pending_alloc_never_strands_the_frame() {
    cached_free_vs_pending_alloc(true);
}

/// (vii) A free caching its frame on processor 1 while close runs (and processor 1's
/// own cached frame from setup). Close counts cached frames out; each comes back
/// through its processor's call; the memory goes once, after the last frame out is back.
fn cached_free_vs_close(held: bool) {
    model(PREEMPTION_BOUND, move || {
        let (kernel, alloc) = setup(MAGAZINE_FRAMES);
        let kept = kernel.table_take(&alloc).expect("free frame");
        let frame = kernel.table_take(&alloc).expect("free frame");
        let idle = idle_processor(&kernel, &alloc, held);
        let freer = spawn_on(1, &kernel, &alloc, move |k, a| k.client_free(a, frame));
        let closer = spawn_on(0, &kernel, &alloc, |_, a| a.close());
        freer.join().unwrap();
        assert_eq!(closer.join().unwrap(), 0);
        calls_done(&kernel, idle);

        let s = alloc.snapshot();
        assert_eq!((s.cached, s.outstanding), (0, 1), "{s:?}");
        assert!(!s.memory_released && !alloc.is_drained());
        assert_at_rest(&kernel, &alloc);
        teardown(&kernel, &alloc, &[kept]);
    });
}

#[test]
fn cached_free_vs_close_strands_no_frame() {
    cached_free_vs_close(false);
}

#[test]
fn held_calls_cached_free_vs_close_strands_no_frame() {
    cached_free_vs_close(true);
}

/// (viii) The last free frame sits in processor 1's magazine; processor 1 pops it while
/// processor 0, whose magazine and the shared list are empty, misses and asks processor
/// 1 for it. At most one of them gets it, and if neither does, the call listed it; with
/// the call delivered at once (the asker at PASSIVE_LEVEL), exactly one gets it.
fn owner_pop_vs_recall(held: bool) {
    model(PREEMPTION_BOUND, move || {
        let (kernel, alloc) = setup(MAGAZINE_FRAMES);
        let mut held_frames = take_every_frame(&kernel, &alloc);
        let frame = held_frames.pop().unwrap();
        spawn_on(1, &kernel, &alloc, move |k, a| k.client_free(a, frame))
            .join()
            .unwrap();
        assert_eq!(alloc.snapshot().cached, 1);
        let idle = idle_processor(&kernel, &alloc, held);

        let owner = spawn_on(1, &kernel, &alloc, LoomPlatform::table_take);
        let other = spawn_on(0, &kernel, &alloc, LoomPlatform::table_take);
        let got: Vec<usize> = [owner.join().unwrap(), other.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        calls_done(&kernel, idle);

        assert!(got.len() <= 1, "handed out twice: {got:?}");
        let s = alloc.snapshot();
        if got.is_empty() {
            assert!(held, "a PASSIVE asker gets the frame its call lists");
            assert_eq!((s.cached, s.free), (0, 1), "the call listed it: {s:?}");
        } else {
            assert_eq!(got, [frame]);
        }
        assert_at_rest(&kernel, &alloc);
        held_frames.extend(got);
        teardown(&kernel, &alloc, &held_frames);
    });
}

#[test]
fn owner_pop_vs_recall_hand_out_a_cached_frame_once() {
    owner_pop_vs_recall(false);
}

#[test]
fn held_calls_owner_pop_vs_recall_hand_out_a_cached_frame_once() {
    owner_pop_vs_recall(true);
}

/// (ix) The same frame freed twice at once on two processors (a client bug): exactly one
/// free is accepted, and the frame is cached or listed once.
#[test]
fn double_free_on_two_processors_is_refused_once() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(MAGAZINE_FRAMES);
        let frame = kernel.table_take(&alloc).expect("free frame");
        kernel.0.frames_out.fetch_sub(1, GHOST);
        let first = spawn_on(0, &kernel, &alloc, move |_, a| a.free(frame));
        let second = spawn_on(1, &kernel, &alloc, move |_, a| a.free(frame));
        let results = [first.join().unwrap(), second.join().unwrap()];
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results.contains(&Err(NtStatus::INVALID_PARAMETER)));
        let s = alloc.snapshot();
        assert_eq!(
            (s.free, s.outstanding, s.counters.rejected_frees),
            (MAGAZINE_FRAMES, 0, 1),
            "{s:?}"
        );
        assert!(
            s.cached <= 2,
            "the one primed on processor 1, and this one: {s:?}"
        );
        assert_at_rest(&kernel, &alloc);
        teardown(&kernel, &alloc, &[]);
    });
}

/// IRP_MJ_CLEANUP races an ALLOC that is about to pend: whatever the order, after
/// cleanup no request waits (it was cancelled, or refused), the request completed exactly
/// once, and the function table still takes back and hands out frames. Then close
/// releases the memory once.
#[test]
fn cleanup_vs_pending_alloc_leaves_nothing_waiting_and_the_table_working() {
    model(PREEMPTION_BOUND, || {
        let (kernel, alloc) = setup(1);
        let frame = kernel.table_take(&alloc).expect("one free frame");
        let request = Request::new(1);

        let r = request;
        let allocer = spawn(&kernel, &alloc, move |k, a| k.method_alloc(a, &r));
        let cleaner = spawn(&kernel, &alloc, |_, a| a.cleanup());
        let pended = allocer.join().unwrap();
        let cancelled = cleaner.join().unwrap();

        assert!(alloc.is_cleaned_up());
        let s = alloc.snapshot();
        assert_eq!(s.pending, 0, "a request waits after cleanup: {s:?}");
        let done = kernel.completion(1).expect("completed exactly once");
        if pended {
            assert_eq!(cancelled, 1, "cleanup cancelled the pended request");
            assert_eq!(done, Err(NtStatus::CANCELLED));
        } else {
            assert_eq!(cancelled, 0);
            assert_eq!(
                done,
                Err(NtStatus::INVALID_DEVICE_STATE),
                "refused after cleanup"
            );
        }
        // The table keeps working after cleanup.
        kernel.client_free(&alloc, frame);
        let again = kernel
            .table_take(&alloc)
            .expect("the table works after cleanup");
        assert_at_rest(&kernel, &alloc);
        teardown(&kernel, &alloc, &[again]);
    });
}

/// A pin's object is dropped (its IRP_MJ_CLOSE, after its filter's handle may be gone)
/// while another pin is created on the same filter, whose factory allows one instance.
/// The pin holds the filter's state itself (`PinInstance`), so the release never touches
/// freed memory, and the count stays exact: the create succeeds exactly when it ran
/// after the release, and the filter ends with one instance per live pin.
#[test]
fn pin_close_races_pin_create_on_its_filter() {
    use ksalloc_core::ks::KsObject;
    use ksalloc_model::client::{connect_bytes, create_name, standard_connect};

    let pin_name = create_name(
        &ks_abi::guid::KSNAME_PIN,
        Some(&connect_bytes(
            &standard_connect(0),
            &ksalloc_core::ks::filter::DATA_RANGE,
        )),
    );
    model(PREEMPTION_BOUND, move || {
        let kernel = LoomPlatform::new();
        let filter = KsObject::create(&kernel, None, &[], Requestor::Kernel).expect("filter");
        let first =
            KsObject::create(&kernel, Some(&filter), &pin_name, Requestor::Kernel).expect("pin");
        let KsObject::Filter(state) = &filter else {
            panic!("a filter")
        };
        let state = state.clone();
        // The filter's own object goes first: its handle closed, its CLOSE ran.
        drop(filter);
        let closer = thread::spawn(move || {
            first.close();
            drop(first);
        });
        let parent = KsObject::<LoomPlatform>::Filter(state.clone());
        let second = KsObject::create(&kernel, Some(&parent), &pin_name, Requestor::Kernel);
        closer.join().unwrap();
        let live = u32::from(second.is_ok());
        assert_eq!(state.instances(0), live, "one instance per live pin");
        if let Err(status) = &second {
            assert_eq!(*status, NtStatus::INSUFFICIENT_RESOURCES);
        }
        drop(second);
        drop(parent);
        assert_eq!(state.instances(0), 0, "every instance given back");
    });
}

// ---- the platform's processor calls themselves ------------------------------------------

/// State only processor 1 touches, with plain accesses: in its `with_processor` sections
/// and in calls for it. Loom reports a race unless each access happens-before the next.
struct OwnedByProcessor1 {
    kernel: LoomPlatform,
    touches: UnsafeCell<u32>,
}

// SAFETY: `touches` is accessed only on processor 1's turn (its sections and its calls),
// one thread at a time; the models below check exactly that.
unsafe impl Sync for OwnedByProcessor1 {}

impl OwnedByProcessor1 {
    /// A plain increment, on processor 1 (checked).
    fn touch(&self, processor: usize) {
        assert_eq!(processor, 1);
        // SAFETY: on processor 1's turn (see the Sync impl); loom checks it.
        self.touches.with_mut(|n| unsafe { *n += 1 });
    }

    /// The count, read by a thread every toucher happens-before (loom checks it).
    fn touches(&self) -> u32 {
        // SAFETY: read after the touching threads joined and the calls were flushed, or
        // under the test's own lock with the call not run yet; loom checks it.
        self.touches.with(|n| unsafe { *n })
    }
}

impl ProcessorCall for OwnedByProcessor1 {
    fn run_on(&self, processor: usize) {
        assert_eq!(irql(), Irql::Dispatch);
        // `with_processor` in a call runs on the call's processor.
        self.kernel.with_processor(|p| self.touch(p));
        assert_eq!(processor, 1);
    }
}

/// A section on processor 1 and a call for processor 1 queued from processor 0: the call
/// runs on processor 1 after the section or before it, never during it. `held`: the call
/// runs only on a third thread that plays the idle processor.
fn call_vs_section(held: bool) {
    let kernel = LoomPlatform::new();
    kernel.hold_processor_calls(held);
    let target = Arc::new(OwnedByProcessor1 {
        kernel: kernel.clone(),
        touches: UnsafeCell::new(0),
    });
    let calls = Arc::new(
        kernel
            .new_processor_calls::<OwnedByProcessor1>(PROCESSORS)
            .expect("calls"),
    );
    let owner = {
        let (kernel, target) = (kernel.clone(), Arc::clone(&target));
        thread::spawn(move || {
            PROCESSOR.with(|c| c.set(1));
            kernel.with_processor(|p| target.touch(p));
        })
    };
    let queuer = {
        let (kernel, target, calls) = (kernel.clone(), Arc::clone(&target), Arc::clone(&calls));
        thread::spawn(move || {
            PROCESSOR.with(|c| c.set(0));
            // SAFETY: made for this type; `target` outlives the flush below.
            assert!(unsafe { kernel.queue_processor_call(&*calls, 1, &*target) });
        })
    };
    let idle = held.then(|| {
        let kernel = kernel.clone();
        thread::spawn(move || kernel.run_processor_calls())
    });
    owner.join().unwrap();
    queuer.join().unwrap();
    if let Some(idle) = idle {
        assert!(idle.join().unwrap() <= 1);
    }
    kernel.flush_processor_calls(&calls);
    assert_eq!(target.touches(), 2, "section + call");
}

#[test]
fn processor_call_never_overlaps_its_processors_section() {
    model(PREEMPTION_BOUND, || call_vs_section(false));
}

#[test]
fn held_processor_call_runs_on_an_idle_thread_or_at_flush() {
    model(PREEMPTION_BOUND, || call_vs_section(true));
}

/// A call queued with a lock held runs after the release, never with the lock held, and
/// queueing it again before it ran returns false.
#[test]
fn processor_call_queued_under_a_lock() {
    model(PREEMPTION_BOUND, || {
        let kernel = LoomPlatform::new();
        let target = Arc::new(OwnedByProcessor1 {
            kernel: kernel.clone(),
            touches: UnsafeCell::new(0),
        });
        let calls = kernel
            .new_processor_calls::<OwnedByProcessor1>(PROCESSORS)
            .expect("calls");
        let lock = kernel.new_lock(());
        lock.with(|()| {
            // SAFETY: made for this type; `target` outlives the flush below.
            assert!(unsafe { kernel.queue_processor_call(&calls, 1, &*target) });
            // SAFETY: as above.
            assert!(!unsafe { kernel.queue_processor_call(&calls, 1, &*target) });
            assert_eq!(target.touches(), 0);
        });
        assert_eq!(target.touches(), 1, "ran at the release");
        kernel.flush_processor_calls(&calls);
    });
}
