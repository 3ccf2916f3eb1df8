//! The client a scenario drives: the few KS calls a kernel-mode allocator client makes.

use ks_abi::ks::{KsAllocatorFraming, KsStreamAllocatorStatus};
use ks_abi::NtStatus;

use crate::requests::IoctlCase;
use crate::result::Failure;

/// The work [`ProbeClient::run_workers`] runs on each thread, given the worker's index.
pub type Work<'a> = dyn Fn(u32) -> Result<(), Failure> + Sync + 'a;

/// A kernel-mode KS client of the ksalloc filter.
///
/// Every method is called at PASSIVE_LEVEL unless it says otherwise. Implementations
/// own their handles' lifetimes: the scenarios hand every handle, table, pending
/// request and event back exactly once (`close`, `release_table`, `release_pending`,
/// `destroy_event`), also on failure paths.
///
/// A client is `Sync` and so is its table: [`Self::run_workers`] calls the table
/// routines, [`Self::at_dispatch`], [`Self::touch_frame`], [`Self::verify_frame`] and
/// [`Self::now_ns`] from several threads at once.
pub trait ProbeClient: Sync {
    /// An open file handle: the filter, a pin or an allocator.
    type Handle;
    /// The allocator's function table (`KSSTREAMALLOCATOR_FUNCTIONTABLE`) together with
    /// the allocator's file object, referenced, which the routines take as argument.
    /// It stays usable after the allocator handle is closed, until released, and its
    /// routines may be called from any number of threads at once.
    type Table: Sync;
    /// An `IOCTL_KS_METHOD` ALLOC request that was sent and may still be pending.
    type Pending;
    /// A notification event a FREEFRAME registration can signal.
    type Event;

    /// Opens the ksalloc filter (its KSCATEGORY_DATATRANSFORM interface, reference
    /// string `KSNAME_Filter`).
    ///
    /// # Errors
    /// The create status.
    fn open_filter(&self) -> Result<Self::Handle, NtStatus>;

    /// `KsCreatePin` on pin factory `pin_id`, with a standard streaming connection and
    /// the filter's byte-stream data format.
    ///
    /// # Errors
    /// The create status.
    fn create_pin(&self, filter: &Self::Handle, pin_id: u32) -> Result<Self::Handle, NtStatus>;

    /// `KsCreateAllocator` on a pin with `framing`.
    ///
    /// # Errors
    /// The create status.
    fn create_allocator(
        &self,
        pin: &Self::Handle,
        framing: &KsAllocatorFraming,
    ) -> Result<Self::Handle, NtStatus>;

    /// Closes a handle (`ZwClose`: IRP_MJ_CLEANUP, and IRP_MJ_CLOSE once no reference
    /// is left).
    fn close(&self, handle: Self::Handle);

    /// `KSPROPERTY_STREAMALLOCATOR_FUNCTIONTABLE` (Get) as a kernel requestor, and a
    /// reference on the allocator's file object for the routines.
    ///
    /// # Errors
    /// The property's status.
    fn function_table(&self, allocator: &Self::Handle) -> Result<Self::Table, NtStatus>;

    /// `AllocateFrame(FileObject, &Frame)` at DISPATCH_LEVEL: the implementation raises
    /// to DISPATCH_LEVEL around the call (a no-op inside [`Self::at_dispatch`]).
    ///
    /// # Errors
    /// The routine's status.
    fn table_allocate(&self, table: &Self::Table) -> Result<usize, NtStatus>;

    /// `FreeFrame(FileObject, Frame)` at DISPATCH_LEVEL, like [`Self::table_allocate`].
    fn table_free(&self, table: &Self::Table, frame: usize);

    /// Drops the table and its file-object reference (the allocator's IRP_MJ_CLOSE
    /// follows if the handle is closed too).
    fn release_table(&self, table: Self::Table);

    /// Whether the allocator behind `table` has released its frame memory, if this
    /// client can see it (the model can; a kernel client cannot).
    fn memory_released(&self, table: &Self::Table) -> Option<bool> {
        let _ = table;
        None
    }

    /// Runs `f` at DISPATCH_LEVEL (`KeRaiseIrql` / `KeLowerIrql`). Inside, only the
    /// table routines, [`Self::touch_frame`], [`Self::verify_frame`] and
    /// [`Self::now_ns`] may be called.
    fn at_dispatch<R>(&self, f: impl FnOnce() -> R) -> R;

    /// Runs `work(0)` .. `work(workers - 1)` each on its own thread (system threads in
    /// the kernel), all at once, at PASSIVE_LEVEL, and returns when every one has ended:
    /// `Ok` if all returned `Ok`, else the failure of the lowest-numbered worker that
    /// failed. Only the calls [`Self::at_dispatch`] allows, and `at_dispatch` itself,
    /// may be made from `work`.
    ///
    /// # Errors
    /// A worker's failure, or a thread that could not be started.
    fn run_workers(&self, workers: u32, work: &Work<'_>) -> Result<(), Failure>;

    /// Offers the processor to another ready thread (PASSIVE_LEVEL, inside
    /// [`Self::run_workers`]' work): on one processor, where a thread would otherwise
    /// run all its rounds in one quantum, this is what makes the workers interleave.
    fn yield_now(&self);

    /// `KSPROPERTY_STREAMALLOCATOR_STATUS`.
    ///
    /// # Errors
    /// The property's status.
    fn status(&self, allocator: &Self::Handle) -> Result<KsStreamAllocatorStatus, NtStatus>;

    /// Sends `KSMETHOD_STREAMALLOCATOR_ALLOC`; the request may complete at once or pend.
    ///
    /// # Errors
    /// When the request could not be sent at all (e.g. no memory for the IRP).
    fn alloc_pending(&self, allocator: &Self::Handle) -> Result<Self::Pending, NtStatus>;

    /// Waits up to `timeout_ms` for the request: `None` while it is still pending,
    /// else the frame it returned or its failure status.
    fn wait(&self, pending: &Self::Pending, timeout_ms: u32) -> Option<Result<usize, NtStatus>>;

    /// [`Self::wait`] without waiting.
    fn poll(&self, pending: &Self::Pending) -> Option<Result<usize, NtStatus>> {
        self.wait(pending, 0)
    }

    /// `IoCancelIrp` on the request (a no-op if it completed).
    fn cancel(&self, pending: &Self::Pending);

    /// Gives the request's resources back. Scenarios call it only after the request
    /// completed, or after cancelling it and closing its allocator; an implementation
    /// must still never free memory an uncompleted request can write to.
    fn release_pending(&self, pending: Self::Pending);

    /// `KSMETHOD_STREAMALLOCATOR_FREE` with `frame`.
    ///
    /// # Errors
    /// The method's status.
    fn free_method(&self, allocator: &Self::Handle, frame: usize) -> Result<(), NtStatus>;

    /// A new, non-signalled notification event.
    ///
    /// # Errors
    /// When it cannot be created.
    fn create_event(&self) -> Result<Self::Event, NtStatus>;

    /// `IOCTL_KS_ENABLE_EVENT` KSEVENT_STREAMALLOCATOR_FREEFRAME on `event`.
    ///
    /// # Errors
    /// The enable status.
    fn enable_free_frame(
        &self,
        allocator: &Self::Handle,
        event: &Self::Event,
    ) -> Result<(), NtStatus>;

    /// `IOCTL_KS_DISABLE_EVENT` for the registration [`Self::enable_free_frame`] made.
    ///
    /// # Errors
    /// The disable status.
    fn disable_free_frame(
        &self,
        allocator: &Self::Handle,
        event: &Self::Event,
    ) -> Result<(), NtStatus>;

    /// `KeClearEvent`.
    fn clear_event(&self, event: &Self::Event);

    /// Waits up to `timeout_ms` for the event; whether it is signalled.
    fn wait_event(&self, event: &Self::Event, timeout_ms: u32) -> bool;

    /// Destroys the event (after it was disabled or its allocator closed).
    fn destroy_event(&self, event: Self::Event);

    /// Writes the pattern of [`crate::frame::fill`] over `[frame, frame + len)` and reads
    /// it back; whether every byte held. Callable at DISPATCH_LEVEL. An implementation
    /// that can tell a non-resident address returns `false` instead of touching it.
    fn touch_frame(&self, frame: usize, len: usize, pattern: u8) -> bool;

    /// Checks that `[frame, frame + len)` still holds the pattern written by
    /// [`Self::touch_frame`]. Callable at DISPATCH_LEVEL.
    fn verify_frame(&self, frame: usize, len: usize, pattern: u8) -> bool;

    /// A monotonic clock in nanoseconds. Callable at any IRQL.
    fn now_ns(&self) -> u64;

    /// Sends `case`'s IOCTL to `object` exactly as it says (requestor mode, buffers,
    /// bad addresses passed untouched; `spare` is the event a
    /// [`crate::requests::Buffer::SpareEvent`] names) and returns its status and
    /// `IoStatus.Information`. `None` when this client cannot send it as asked; the
    /// default sends nothing.
    fn raw_ioctl(
        &self,
        object: &Self::Handle,
        case: &IoctlCase,
        spare: &Self::Event,
    ) -> Option<(NtStatus, usize)> {
        let _ = (object, case, spare);
        None
    }
}
