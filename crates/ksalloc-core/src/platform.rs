//! The kernel services the core needs, as a small typed trait.
//!
//! Nothing here is a raw pointer: an IRP is an opaque [`RequestHandle`], frame memory is
//! an opaque block whose base address the core does arithmetic on, and locks and events
//! are types the platform provides.

use ks_abi::ks::KsEventData;
use ks_abi::NtStatus;

/// `Irp->RequestorMode`: who sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requestor {
    /// `KernelMode`: another driver; its buffers are kernel addresses.
    Kernel,
    /// `UserMode`: an application; its buffers were probed and captured by the glue.
    User,
}

/// Whose quota a pool allocation is charged to.
///
/// `ExAllocatePool2` with `POOL_FLAG_USE_QUOTA` charges the current process ("
/// ExAllocatePool2 function" page, `POOL_FLAG_USE_QUOTA`): the driver asks for it on
/// IRP_MJ_CREATE of a user-mode requestor, which runs in that requestor's process, so
/// a user-mode caller pays for the frame memory it makes the driver hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolCharge {
    /// The driver's own memory (no quota).
    Driver,
    /// Charged to the requesting process's pool quota (`POOL_FLAG_USE_QUOTA`).
    RequestorQuota,
}

impl PoolCharge {
    /// The charge for memory allocated on behalf of `requestor`.
    #[must_use]
    pub const fn for_requestor(requestor: Requestor) -> Self {
        match requestor {
            Requestor::Kernel => Self::Driver,
            Requestor::User => Self::RequestorQuota,
        }
    }
}

/// A failed allocation (pool or heap); the driver reports it as
/// `STATUS_INSUFFICIENT_RESOURCES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

impl From<OutOfMemory> for NtStatus {
    fn from(_: OutOfMemory) -> Self {
        Self::INSUFFICIENT_RESOURCES
    }
}

/// Interrupt request level, ordered like the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Irql {
    /// `PASSIVE_LEVEL` (0): may wait, may touch paged memory.
    Passive = 0,
    /// `APC_LEVEL` (1).
    Apc = 1,
    /// `DISPATCH_LEVEL` (2): no waits, no paged memory.
    Dispatch = 2,
}

/// A pended request (an IRP on Windows). Cheap to clone: it is a handle, not the IRP.
pub trait RequestHandle: Clone + Send {
    /// A value unique among live requests, used by the cancel routine to find it.
    fn key(&self) -> usize;
}

/// A spin lock guarding `T`. Acquiring raises to `DISPATCH_LEVEL`; the closure must not
/// wait, allocate or call out to code that could take the lock again.
pub trait SpinLock<T> {
    /// Runs `f` with the lock held.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// Block of nonpaged memory the frames live in.
pub trait FrameMemory: Send + Sync {
    /// Address of the first byte (aligned as requested).
    fn base(&self) -> usize;
}

/// Work a platform runs later on one given processor, at `DISPATCH_LEVEL`.
///
/// It is what a DPC targeted at that processor is on Windows ("Introduction to DPC
/// Objects": a DPC runs
/// at DISPATCH_LEVEL on the processor whose queue it is in, once that processor's IRQL
/// drops below DISPATCH_LEVEL).
///
/// That last part is what the core relies on: a call for processor *p* never runs
/// during one of *p*'s [`Platform::with_processor`] sections (those run at
/// `DISPATCH_LEVEL` on *p*), so it may touch the state only *p* touches there with
/// plain loads and stores, and whatever *p* does after the call sees what it did.
pub trait ProcessorCall: Sync + 'static {
    /// Runs on processor `processor` at `DISPATCH_LEVEL`, outside any of its
    /// `with_processor` sections. May use every platform service allowed at
    /// `DISPATCH_LEVEL` (locks, events, completing requests) and may enter
    /// `with_processor`, which then runs on `processor`.
    fn run_on(&self, processor: usize);
}

/// The kernel services the core is written against.
///
/// Every method states the IRQL it may be called at; the model asserts those contracts.
pub trait Platform: Clone + Send + Sync + 'static {
    /// Frame memory (`ExAllocatePool2(POOL_FLAG_NON_PAGED, ...)` on Windows).
    type Memory: FrameMemory;
    /// A spin lock (`KSPIN_LOCK`).
    type Lock<T: Send>: SpinLock<T> + Send + Sync;
    /// A notification event (`KEVENT`, `NotificationEvent`).
    type Event: Send + Sync;
    /// A client's FREEFRAME notification target (a referenced event object).
    type ClientEvent: Clone + Send + Sync;
    /// A pended ALLOC request.
    type Request: RequestHandle;
    /// One deferred call per processor, for one [`ProcessorCall`] target (on Windows, a
    /// nonpaged array of `KDPC`s, each targeted at its processor).
    type ProcessorCalls: Send + Sync;
    /// A reference-counted value in nonpaged pool: clones share it, the last drop frees
    /// it (an interlocked count on Windows). What a child KS object holds of its
    /// parent, so the parent's state outlives the parent's file object (see
    /// [`crate::ks`]).
    type Shared<T: Send + Sync>: Clone + core::ops::Deref<Target = T> + Send + Sync;

    /// `KeGetCurrentIrql`.
    fn current_irql(&self) -> Irql;

    /// Allocates `bytes` of nonpaged memory aligned to `align` (a power of two), charged
    /// as `charge` says, or `None`. IRQL <= `DISPATCH_LEVEL` (the core only calls it at
    /// `PASSIVE_LEVEL`, at create, in the requestor's context).
    fn alloc_nonpaged(
        &self,
        bytes: usize,
        align: usize,
        charge: PoolCharge,
    ) -> Option<Self::Memory>;
    /// Returns a block from [`Self::alloc_nonpaged`]. IRQL <= `DISPATCH_LEVEL`.
    fn free_nonpaged(&self, memory: Self::Memory);

    /// Moves `value` into a [`Self::Shared`], or gives it back when no memory is left.
    /// `PASSIVE_LEVEL` (create paths only).
    ///
    /// # Errors
    /// The value itself, when the pool is exhausted.
    fn share<T: Send + Sync>(&self, value: T) -> Result<Self::Shared<T>, T>;

    /// The driver-wide budget of frame memory (one per driver, for its whole life).
    fn frame_budget(&self) -> &crate::limits::FrameBudget;

    /// A new spin lock around `value`.
    fn new_lock<T: Send>(&self, value: T) -> Self::Lock<T>;
    /// A new notification event, not signalled, or `None` if its storage cannot be
    /// allocated (a `KEVENT` must not move once initialised, so the Windows platform
    /// puts it in pool; the core treats that like any create-path allocation).
    fn new_event(&self) -> Option<Self::Event>;
    /// `KeSetEvent(event, 0, FALSE)`. IRQL <= `DISPATCH_LEVEL`.
    fn set_event(&self, event: &Self::Event);
    /// Signals a client's FREEFRAME target. IRQL <= `DISPATCH_LEVEL`.
    fn signal_client(&self, event: &Self::ClientEvent);
    /// A key identifying a client event, for disable.
    fn client_event_key(&self, event: &Self::ClientEvent) -> usize;

    /// Makes a request cancelable (`IoSetCancelRoutine` with the driver's routine, then
    /// the `Irp->Cancel` re-check). Returns `false` if the request was cancelled already;
    /// the caller then completes it with `STATUS_CANCELLED` itself. Called with the
    /// pending-queue lock held.
    fn arm_cancel(&self, request: &Self::Request) -> bool;
    /// Takes the cancel routine back (`IoSetCancelRoutine(irp, NULL)`). `true`: the
    /// caller owns the request and must complete it; `false`: the cancel routine is
    /// running and will remove and complete it. Called with the queue lock held.
    fn disarm_cancel(&self, request: &Self::Request) -> bool;
    /// Completes a pended ALLOC: writes the frame address into its output buffer and
    /// completes it with `STATUS_SUCCESS`, or completes it with the error.
    /// IRQL <= `DISPATCH_LEVEL`; never called with a core lock held.
    fn complete_alloc(&self, request: Self::Request, result: Result<usize, NtStatus>);

    /// Addresses of the two `extern "C"` routines the FUNCTIONTABLE property hands out
    /// (`AllocateFrame`, `FreeFrame`): they live in the glue, which maps the file object
    /// they get back to the allocator.
    fn function_table(&self) -> [usize; 2];

    /// References the notification target a client named in a `KSEVENTDATA`
    /// (`ObReferenceObjectByHandle` on an event handle, or a kernel `KEVENT` pointer).
    ///
    /// # Errors
    /// `STATUS_INVALID_HANDLE` when the handle names no event; `STATUS_INVALID_PARAMETER`
    /// for a notification type the platform cannot signal.
    fn reference_client_event(
        &self,
        data: &KsEventData,
        requestor: Requestor,
    ) -> Result<Self::ClientEvent, NtStatus>;

    /// The most processor indices [`Self::with_processor`] can pass
    /// (`KeQueryMaximumProcessorCountEx(ALL_PROCESSOR_GROUPS)`, which counts processors
    /// that may be added later). Called at create.
    fn processor_count(&self) -> u32;

    /// Creates one call per processor `0..processors`, each running `T::run_on` when
    /// queued (`KeInitializeDpc`, `KeSetTargetProcessorDpcEx`). `PASSIVE_LEVEL`
    /// (create). `None` when out of memory.
    fn new_processor_calls<T: ProcessorCall>(
        &self,
        processors: usize,
    ) -> Option<Self::ProcessorCalls>;

    /// Queues processor `processor`'s call to run `target.run_on(processor)` there
    /// (`KeInsertQueueDpc`, with `target` as an argument). Returns `false` if that call
    /// was queued already and has not started: it runs once, with the target it was
    /// queued with. IRQL <= `DISPATCH_LEVEL`; may be called with a core lock held;
    /// never inside `with_processor`.
    ///
    /// # Safety
    /// `calls` was created by [`Self::new_processor_calls`] for `T`, and `target`
    /// stays alive at its address until the call has run or
    /// [`Self::flush_processor_calls`] has returned.
    // The crate denies unsafe code; this declaration is the one place it states a
    // contract callers must keep (lib.rs's module docs).
    #[allow(unsafe_code)]
    unsafe fn queue_processor_call<T: ProcessorCall>(
        &self,
        calls: &Self::ProcessorCalls,
        processor: usize,
        target: &T,
    ) -> bool;

    /// Returns once no call of `calls` is queued or running (`KeRemoveQueueDpc` on
    /// each, then `KeFlushQueuedDpcs`). `PASSIVE_LEVEL`.
    fn flush_processor_calls(&self, calls: &Self::ProcessorCalls);

    /// Runs `f` at `DISPATCH_LEVEL` on the current processor with that processor's index
    /// (`KeGetCurrentProcessorNumberEx`), then restores the caller's IRQL. Until `f`
    /// returns, no other core code runs on that processor, so state only that index
    /// touches needs no lock. `f` must not call back into the platform. IRQL <=
    /// `DISPATCH_LEVEL`.
    fn with_processor<R>(&self, f: impl FnOnce(usize) -> R) -> R;

    /// Checks the IRQL contract of a core entry point; the model panics on a violation.
    fn check_irql(&self, max: Irql) {
        debug_assert!(self.current_irql() <= max, "IRQL contract violated");
    }
}
