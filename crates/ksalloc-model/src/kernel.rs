//! The model kernel: one instance per test, implementing the core's `Platform`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ks_abi::ks::{eventf, KsEventData};
use ks_abi::NtStatus;
use ksalloc_core::limits::{FrameBudget, DEFAULT_FRAME_BUDGET};
use ksalloc_core::{Irql, Platform, PoolCharge, Requestor};

use crate::event::ModelEvent;
use crate::irp::{Irp, RequestorMode};
use crate::irql::{assert_irql_at_most, current_irql, locks_held};
use crate::lock::ModelSpinLock;
use crate::pool::{fault_point, ModelMemory, Pool};
use crate::processor::{assert_outside, Processors};
use crate::processor_call::ModelProcessorCalls;

/// Random pool failures for long runs (the simulator's `--fault-rate`).
struct RandomFaults {
    /// Failure probability scaled to `u64::MAX`.
    threshold: u64,
    state: u64,
}

impl RandomFaults {
    /// splitmix64: tiny, seedable, good enough to pick which allocation fails.
    const fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

struct Inner {
    pool: Mutex<Pool>,
    /// Event handles and kernel event objects clients may name in a `KSEVENTDATA`.
    events: Mutex<BTreeMap<usize, Arc<ModelEvent>>>,
    next_handle: AtomicU64,
    live_files: AtomicI64,
    random_faults: Mutex<Option<RandomFaults>>,
    live_irps: AtomicI64,
    irps_created: AtomicU64,
    processors: Processors,
    frame_budget: FrameBudget,
    /// [`ModelKernel::flush_discards_queued_calls`].
    flush_discards: AtomicBool,
}

/// A model kernel. Clones share one kernel.
#[derive(Clone)]
pub struct ModelKernel(Arc<Inner>);

impl Default for ModelKernel {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ModelKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelKernel")
            .field("live_blocks", &self.live_blocks())
            .field("live_irps", &self.live_irps())
            .finish_non_exhaustive()
    }
}

impl ModelKernel {
    /// Processors a kernel from [`Self::new`] has (this machine's count, for the
    /// benchmarks' sake; tests that depend on it say so with [`Self::with_processors`]).
    pub const DEFAULT_PROCESSORS: usize = 2;

    /// A fresh kernel: empty pool, no faults, [`Self::DEFAULT_PROCESSORS`] processors.
    #[must_use]
    pub fn new() -> Self {
        Self::with_processors(Self::DEFAULT_PROCESSORS)
    }

    /// A fresh kernel with `processors` processors.
    ///
    /// # Panics
    /// If `processors` is 0.
    #[must_use]
    pub fn with_processors(processors: usize) -> Self {
        Self(Arc::new(Inner {
            pool: Mutex::new(Pool::default()),
            events: Mutex::new(BTreeMap::new()),
            next_handle: AtomicU64::new(0x104),
            live_files: AtomicI64::new(0),
            random_faults: Mutex::new(None),
            live_irps: AtomicI64::new(0),
            irps_created: AtomicU64::new(0),
            processors: Processors::new(processors),
            frame_budget: FrameBudget::new(DEFAULT_FRAME_BUDGET),
            flush_discards: AtomicBool::new(false),
        }))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.0
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails each pool allocation with probability `rate` (0.0..=1.0), reproducibly
    /// from `seed`. `rate == 0` turns it off.
    pub fn set_random_faults(&self, rate: f64, seed: u64) {
        let mut faults = self
            .0
            .random_faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *faults = (rate > 0.0).then(|| RandomFaults {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            threshold: (rate.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
            state: seed,
        });
    }

    fn random_fault(&self) -> bool {
        let mut faults = self
            .0
            .random_faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        faults.as_mut().is_some_and(|f| f.next() < f.threshold)
    }

    /// Pool blocks allocated and not freed.
    #[must_use]
    pub fn live_blocks(&self) -> usize {
        self.pool().live_blocks()
    }

    /// Whether `address` is a kernel address a user-mode requestor must never see: inside
    /// a live pool block (frames, object state) or one of the driver's routines.
    #[must_use]
    pub fn is_kernel_address(&self, address: usize) -> bool {
        address != 0
            && (self.pool().contains(address) || crate::driver::function_table().contains(&address))
    }

    /// Bytes in live pool blocks.
    #[must_use]
    pub fn live_bytes(&self) -> usize {
        self.pool().live_bytes()
    }

    /// Sets the user process's nonpaged pool quota (`None`: unlimited, the default).
    /// Allocations charged to it ([`PoolCharge::RequestorQuota`]) beyond it fail, as
    /// `ExAllocatePool2` with `POOL_FLAG_USE_QUOTA` does.
    pub fn set_process_quota(&self, bytes: Option<usize>) {
        self.pool().quota_limit = bytes;
    }

    /// Bytes charged to the user process's pool quota now.
    #[must_use]
    pub fn process_quota_used(&self) -> usize {
        self.pool().quota_used
    }

    /// The driver's frame budget (what `FrameBudgetMiB` sets on Windows).
    #[must_use]
    pub fn frame_budget(&self) -> &FrameBudget {
        &self.0.frame_budget
    }

    /// Pool allocations refused by fault injection so far.
    #[must_use]
    pub fn pool_failures(&self) -> u64 {
        self.pool().failures
    }

    /// IRPs created and not completed.
    #[must_use]
    pub fn live_irps(&self) -> i64 {
        self.0.live_irps.load(Ordering::Acquire)
    }

    /// Panics unless every pool block was freed and every IRP completed.
    ///
    /// # Panics
    /// On a leak: that is the point.
    #[track_caller]
    pub fn assert_no_leaks(&self) {
        let (blocks, bytes) = (self.live_blocks(), self.live_bytes());
        assert_eq!(
            blocks, 0,
            "pool leak: {blocks} blocks, {bytes} bytes still allocated"
        );
        assert_eq!(self.live_irps(), 0, "IRP leak: IRPs never completed");
        assert_eq!(self.live_files(), 0, "file objects never closed");
    }

    /// File objects created through the model driver and not yet closed.
    #[must_use]
    pub fn live_files(&self) -> i64 {
        self.0.live_files.load(Ordering::Acquire)
    }

    pub(crate) fn file_opened(&self) {
        self.0.live_files.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn file_closed(&self) {
        self.0.live_files.fetch_sub(1, Ordering::AcqRel);
    }

    /// Creates an event handle for `event` (what `CreateEvent` gives a client).
    #[must_use]
    pub fn event_handle(&self, event: &Arc<ModelEvent>) -> usize {
        #[allow(clippy::cast_possible_truncation)]
        let handle = self.0.next_handle.fetch_add(4, Ordering::Relaxed) as usize;
        lock(&self.0.events).insert(handle, Arc::clone(event));
        handle
    }

    /// Closes an event handle (`CloseHandle`).
    pub fn close_event_handle(&self, handle: usize) {
        lock(&self.0.events).remove(&handle);
    }

    /// A new IRP from a requestor, with its input and an output buffer of `output_len`.
    #[must_use]
    pub fn new_irp(&self, mode: RequestorMode, input: Vec<u8>, output_len: usize) -> Irp {
        self.new_irp_with(mode, input, output_len, Box::new(|| {}))
    }

    /// [`Self::new_irp`] with a hook run at completion (the I/O manager dropping the
    /// IRP's reference on its file object).
    #[must_use]
    pub(crate) fn new_irp_with(
        &self,
        mode: RequestorMode,
        input: Vec<u8>,
        output_len: usize,
        on_complete: Box<dyn Fn() + Send + Sync>,
    ) -> Irp {
        self.0.live_irps.fetch_add(1, Ordering::AcqRel);
        self.0.irps_created.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::clone(&self.0);
        crate::pool::host(|| {
            Irp::new(
                mode,
                input,
                output_len,
                Some(Box::new(move || {
                    on_complete();
                    inner.live_irps.fetch_sub(1, Ordering::AcqRel);
                })),
            )
        })
    }

    /// Holds queued processor calls back (`true`) until [`Self::run_processor_calls`]
    /// or a flush, or lets them run at the automatic delivery points again (`false`,
    /// the default). Windows gives no bound on when a queued DPC runs ("Introduction to
    /// DPC Objects"): the core must be correct at any delay, and this checks it.
    pub fn hold_processor_calls(&self, hold: bool) {
        self.0.processors.calls().set_hold(hold);
    }

    /// Runs every queued processor call now, each on its processor (waiting while a
    /// thread is on it), including calls those calls queue; returns how many ran. Held
    /// or not. `PASSIVE_LEVEL`, outside `with_processor`, no spin lock held.
    ///
    /// # Panics
    /// When called at a higher IRQL, inside `with_processor` or holding a spin lock.
    #[track_caller]
    #[allow(clippy::must_use_candidate)] // Tests run it for its effect as often as its count.
    pub fn run_processor_calls(&self) -> usize {
        assert_irql_at_most(Irql::Passive, "run_processor_calls");
        assert_outside("run_processor_calls");
        assert_eq!(locks_held(), 0, "run_processor_calls with a spin lock held");
        self.0.processors.deliver_calls(true)
    }

    /// What `flush_processor_calls` does with calls still queued: run them now on their
    /// processors (`false`, the default: what `KeFlushQueuedDpcs` waits for), or remove
    /// them unrun (`true`: `KeRemoveQueueDpc` first, which the platform contract also
    /// allows). A core that is right under both is right on either Windows glue.
    pub fn flush_discards_queued_calls(&self, discard: bool) {
        self.0.flush_discards.store(discard, Ordering::Relaxed);
    }

    pub(crate) fn processors(&self) -> &Processors {
        &self.0.processors
    }

    /// Frees a pool block the model itself allocated for the driver (no IRQL checks:
    /// the drop that calls it is checked by its owner).
    pub(crate) fn free_pool_block(&self, memory: &ModelMemory) {
        self.pool().free(memory);
    }

    /// Runs `f` on the bytes `[address, address + len)` of live pool memory: how
    /// clients of the model touch frames. Legal up to `DISPATCH_LEVEL`.
    ///
    /// # Panics
    /// If the range is not inside one live pool block (a wild or stale pointer).
    #[track_caller]
    pub fn with_bytes<R>(&self, address: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        assert_irql_at_most(Irql::Dispatch, "touching nonpaged memory");
        let mut pool = self.pool();
        f(pool.bytes_mut(address, len))
    }
}

impl Platform for ModelKernel {
    type Memory = ModelMemory;
    type Lock<T: Send> = ModelSpinLock<T>;
    type Event = Arc<ModelEvent>;
    type ClientEvent = Arc<ModelEvent>;
    type Request = Irp;
    type Shared<T: Send + Sync> = ModelShared<T>;
    type ProcessorCalls = ModelProcessorCalls;

    fn current_irql(&self) -> Irql {
        current_irql()
    }

    fn alloc_nonpaged(
        &self,
        bytes: usize,
        align: usize,
        charge: PoolCharge,
    ) -> Option<ModelMemory> {
        assert_irql_at_most(Irql::Dispatch, "ExAllocatePool2(NonPaged)");
        assert_outside("ExAllocatePool2");
        assert_eq!(
            locks_held(),
            0,
            "pool allocation with a spin lock held (core rule)"
        );
        if fault_point() || self.random_fault() {
            self.pool().failures += 1;
            return None;
        }
        let mut pool = self.pool();
        if charge == PoolCharge::RequestorQuota && !pool.charge_quota(bytes) {
            pool.failures += 1;
            return None;
        }
        let mut memory = pool.allocate(bytes, align);
        drop(pool);
        memory.quota = charge == PoolCharge::RequestorQuota;
        Some(memory)
    }

    fn share<T: Send + Sync>(&self, value: T) -> Result<ModelShared<T>, T> {
        assert_irql_at_most(Irql::Passive, "share (create path)");
        // One pool block per shared value, as the Windows glue's PoolArc.
        if fault_point() || self.random_fault() {
            self.pool().failures += 1;
            return Err(value);
        }
        let memory = self.pool().allocate(core::mem::size_of::<T>().max(1), 16);
        Ok(crate::pool::host(|| ModelShared {
            inner: Arc::new(SharedBlock {
                value,
                memory: Some(memory),
                kernel: self.clone(),
            }),
        }))
    }

    fn frame_budget(&self) -> &FrameBudget {
        &self.0.frame_budget
    }

    fn free_nonpaged(&self, memory: ModelMemory) {
        assert_irql_at_most(Irql::Dispatch, "ExFreePoolWithTag");
        assert_outside("ExFreePoolWithTag");
        assert_eq!(
            locks_held(),
            0,
            "pool free with a spin lock held (core rule)"
        );
        self.pool().free(&memory);
    }

    fn new_lock<T: Send>(&self, value: T) -> ModelSpinLock<T> {
        ModelSpinLock::of_kernel(value, self.clone())
    }

    fn new_event(&self) -> Option<Arc<ModelEvent>> {
        // Pool-backed on Windows: the same fault points apply.
        if fault_point() || self.random_fault() {
            self.pool().failures += 1;
            return None;
        }
        Some(crate::pool::host(|| Arc::new(ModelEvent::notification())))
    }

    fn set_event(&self, event: &Arc<ModelEvent>) {
        assert_outside("KeSetEvent");
        event.set();
    }

    fn signal_client(&self, event: &Arc<ModelEvent>) {
        assert_outside("KeSetEvent");
        event.set();
    }

    fn client_event_key(&self, event: &Arc<ModelEvent>) -> usize {
        Arc::as_ptr(event) as usize
    }

    fn arm_cancel(&self, request: &Irp) -> bool {
        assert!(locks_held() > 0, "arm_cancel must run under the queue lock");
        request.arm_cancel()
    }

    fn disarm_cancel(&self, request: &Irp) -> bool {
        assert!(
            locks_held() > 0,
            "disarm_cancel must run under the queue lock"
        );
        request.disarm_cancel()
    }

    fn complete_alloc(&self, request: Irp, result: Result<usize, NtStatus>) {
        assert_outside("IoCompleteRequest");
        match result {
            Ok(address) => {
                request.write_output(&address.to_le_bytes());
                request.complete(NtStatus::SUCCESS, 8);
            }
            Err(status) => request.complete(status, 0),
        }
    }

    fn function_table(&self) -> [usize; 2] {
        crate::driver::function_table()
    }

    fn processor_count(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation)] // A handful of model processors.
        let count = self.0.processors.count() as u32;
        count
    }

    fn with_processor<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        self.0.processors.run(f)
    }

    fn new_processor_calls<T: ksalloc_core::ProcessorCall>(
        &self,
        processors: usize,
    ) -> Option<ModelProcessorCalls> {
        // KeInitializeDpc on a nonpaged KDPC array: the array is a pool allocation on
        // the create path, with its fault points.
        assert_irql_at_most(Irql::Passive, "new_processor_calls (create path)");
        assert_outside("new_processor_calls");
        if fault_point() || self.random_fault() {
            self.pool().failures += 1;
            return None;
        }
        let memory = self
            .pool()
            .allocate(ModelProcessorCalls::pool_bytes(processors), 16);
        Some(crate::pool::host(|| {
            ModelProcessorCalls::new::<T>(self.clone(), processors, memory)
        }))
    }

    #[track_caller]
    unsafe fn queue_processor_call<T: ksalloc_core::ProcessorCall>(
        &self,
        calls: &ModelProcessorCalls,
        processor: usize,
        target: &T,
    ) -> bool {
        // KeInsertQueueDpc may be called at any IRQL; the platform contract says
        // DISPATCH_LEVEL at most, with a core lock possibly held.
        assert_irql_at_most(Irql::Dispatch, "queue_processor_call");
        assert_outside("KeInsertQueueDpc");
        assert!(
            calls.is_of(self),
            "queue_processor_call with calls of another kernel"
        );
        let queued = crate::pool::host(|| calls.queue(processor, target));
        // Queued from below DISPATCH_LEVEL: an idle target processor runs it at once.
        self.0.processors.deliver_if_idle();
        queued
    }

    #[track_caller]
    fn flush_processor_calls(&self, calls: &ModelProcessorCalls) {
        // KeFlushQueuedDpcs: PASSIVE_LEVEL ("KeFlushQueuedDpcs function").
        assert_irql_at_most(Irql::Passive, "KeFlushQueuedDpcs");
        assert_outside("KeFlushQueuedDpcs");
        assert_eq!(locks_held(), 0, "KeFlushQueuedDpcs with a spin lock held");
        assert!(
            calls.is_of(self),
            "flush_processor_calls with calls of another kernel"
        );
        calls.flush(self.0.flush_discards.load(Ordering::Relaxed));
    }

    fn reference_client_event(
        &self,
        data: &KsEventData,
        requestor: Requestor,
    ) -> Result<Arc<ModelEvent>, NtStatus> {
        let events = lock(&self.0.events);
        match data.notification_type {
            // ObReferenceObjectByHandle in the requestor's handle table.
            eventf::EVENT_HANDLE => events
                .get(&data.object)
                .cloned()
                .ok_or(NtStatus::INVALID_HANDLE),
            // A kernel client's KEVENT pointer: only kernel requestors may pass one.
            eventf::EVENT_OBJECT if requestor == Requestor::Kernel => events
                .values()
                .find(|e| Arc::as_ptr(e) as usize == data.object)
                .cloned()
                .ok_or(NtStatus::INVALID_PARAMETER),
            _ => Err(NtStatus::INVALID_PARAMETER),
        }
    }

    #[track_caller]
    fn check_irql(&self, max: Irql) {
        assert_irql_at_most(max, "ksalloc-core entry point");
    }
}

/// The model's [`Platform::Shared`]: a value with a pool block standing for its
/// memory, so leaks and fault injection see it like any pool allocation.
pub struct ModelShared<T> {
    inner: Arc<SharedBlock<T>>,
}

struct SharedBlock<T> {
    value: T,
    memory: Option<ModelMemory>,
    kernel: ModelKernel,
}

impl<T> Drop for SharedBlock<T> {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.kernel.free_nonpaged(memory);
        }
    }
}

impl<T> Clone for ModelShared<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::ops::Deref for ModelShared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner.value
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
