//! The pools the allocate+free benchmarks compare, shared by the criterion bench
//! (`benches/alloc_free.rs`) and the callgrind harness (`examples/callgrind_pair.rs`), so
//! both measure exactly the same code.
//!
//! Every contender hands out one frame and takes it back per [`Pool::pair`], with the
//! same frame size, alignment and count. Index-based pools never touch frame memory,
//! and neither does ksalloc (it computes addresses); the heap contender allocates a real
//! block of the frame's size and alignment.
//!
//! No `unsafe` here: the baselines are written with atomics only (a spin lock's data
//! are relaxed atomics read and written under the lock, which compile to plain moves).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_queue::ArrayQueue;
use ks_abi::ks::{file_alignment, pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::allocator::MIN_FRAMES_PER_PROCESSOR;
use ksalloc_core::free_list::FreeList;
use ksalloc_core::{AllocOutcome, Allocator, Platform};
use ksalloc_model::{Irp, ModelKernel, RequestorMode};

mod bench_kernel;
pub use bench_kernel::{bind_processor, BenchKernel, BenchRequest};

/// Bytes per frame, for every contender.
pub const FRAME_SIZE: u32 = 4096;
/// `FILE_QUAD_ALIGNMENT`: frames start on 8 bytes, the usual KS framing alignment (and
/// what glibc's plain `malloc` returns, so the heap contender takes malloc's path).
pub const FRAME_ALIGNMENT: u32 = file_alignment::QUAD;

/// The framing every ksalloc instance is created with.
#[must_use]
pub const fn framing(frames: u32) -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames,
        frame_size: FRAME_SIZE,
        file_alignment: FRAME_ALIGNMENT,
        reserved: 0,
    }
}

/// One pool of `frames` frames.
pub trait Pool {
    /// Takes one frame and gives it back. Panics if no frame is free: every case keeps
    /// fewer frames out than the pool holds.
    fn pair(&self);
}

/// What a contender is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// One of the pools the issue compares (run in every case).
    Contender,
    /// A step between the bare FreeList and the whole allocator (run at one frame count):
    /// which of the allocator's extra atomics costs what.
    Breakdown,
}

/// Receives every contender, generically (no dynamic dispatch in the measured loop).
pub trait Visit {
    /// A pool that threads share.
    fn shared<P: Pool + Sync>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P);
    /// A pool each thread owns privately (the per-CPU magazine's best case).
    fn private<P: Pool>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P);
}

/// Calls `v` for every contender, in the order the tables list them.
pub fn visit_all(v: &mut impl Visit) {
    v.shared(
        "ksalloc-magazine",
        Role::Contender,
        Ksalloc::<BenchKernel>::with_magazines,
    );
    v.shared("ksalloc", Role::Contender, |n| {
        Ksalloc::<BenchKernel>::new(n, false)
    });
    v.shared("ksalloc-armed", Role::Contender, |n| {
        Ksalloc::<BenchKernel>::new(n, true)
    });
    v.shared(
        "model-ksalloc-magazine",
        Role::Contender,
        Ksalloc::<ModelKernel>::with_magazines,
    );
    v.shared("model-ksalloc", Role::Contender, |n| {
        Ksalloc::<ModelKernel>::new(n, false)
    });
    v.shared("model-ksalloc-armed", Role::Breakdown, |n| {
        Ksalloc::<ModelKernel>::new(n, true)
    });
    v.shared(
        "ksalloc-magazine-burst4",
        Role::Breakdown,
        KsallocBurst::<BenchKernel, 4>::new,
    );
    v.shared(
        "ksalloc-magazine-burst8",
        Role::Breakdown,
        KsallocBurst::<BenchKernel, 8>::new,
    );
    v.shared("freelist", Role::Contender, FreeListOnly::new);
    v.shared("tagged-stack", Role::Contender, TaggedStack::new);
    v.shared("spinlock-list", Role::Contender, SpinList::new);
    v.shared("mutex-vec", Role::Contender, MutexVec::new);
    v.shared("arrayqueue", Role::Contender, ArrayQueuePool::new);
    v.shared("heap", Role::Contender, Heap::new);
    v.private("local-stack", Role::Contender, LocalStack::new);
    v.shared(
        "model-with-processor-only",
        Role::Breakdown,
        ProcessorOnly::<ModelKernel>::new,
    );
    v.shared(
        "bench-with-processor-only",
        Role::Breakdown,
        ProcessorOnly::<BenchKernel>::new,
    );
}

/// End of an index list.
const NIL: u32 = u32::MAX;

/// Links `0 -> 1 -> ... -> frames-1 -> NIL`.
fn chain(frames: u32) -> Vec<AtomicU32> {
    (1..=frames)
        .map(|next| AtomicU32::new(if next == frames { NIL } else { next }))
        .collect()
}

// ---------------------------------------------------------------------------------------
// ksalloc and the steps from its FreeList up to it.

/// A platform a ksalloc contender runs on: the bench platform (the kernel's costs) or the
/// model (the tests' and simulator's strict kernel).
pub trait Kernel: Platform + Clone {
    /// A kernel with `processors` processors.
    fn with_processors(processors: u32) -> Self;
    /// A kernel-mode ALLOC request with a cancel routine, as the dispatcher builds it.
    fn request(&self) -> Self::Request;
    /// The frame a request was completed with.
    fn allocated_frame(request: &Self::Request) -> Option<usize>;
}

impl Kernel for BenchKernel {
    fn with_processors(processors: u32) -> Self {
        Self::with_processors(processors)
    }
    fn request(&self) -> BenchRequest {
        BenchRequest::new()
    }
    fn allocated_frame(request: &BenchRequest) -> Option<usize> {
        request.allocated_frame()
    }
}

impl Kernel for ModelKernel {
    fn with_processors(processors: u32) -> Self {
        Self::with_processors(processors as usize)
    }
    fn request(&self) -> Irp {
        let irp = self.new_irp(RequestorMode::Kernel, Vec::new(), 8);
        irp.set_cancel_routine(Box::new(|_| {}));
        irp
    }
    fn allocated_frame(request: &Irp) -> Option<usize> {
        request.allocated_frame()
    }
}

/// A kernel on which an allocator of `frames` frames has no magazines: the fewest
/// processors that put the pool below the magazine rule (fewer than
/// `MIN_FRAMES_PER_PROCESSOR` frames each). The shared-list path.
fn shared_list_kernel<K: Kernel>(frames: u32) -> K {
    K::with_processors(frames / MIN_FRAMES_PER_PROCESSOR + 1)
}

/// ksalloc's function-table path: [`Engine::table_allocate`] + [`Engine::free`].
pub struct Ksalloc<K: Kernel> {
    alloc: Allocator<K>,
}

impl<K: Kernel> Ksalloc<K> {
    /// On the shared list alone (no magazines). `armed`: FUNCTIONTABLE has been handed
    /// out, so every free also sets the internal free-frame event (what a real client
    /// of the table gets).
    ///
    /// # Panics
    /// If the framing is refused or the table cannot be armed.
    #[must_use]
    pub fn new(frames: u32, armed: bool) -> Self {
        let alloc =
            Allocator::create(shared_list_kernel::<K>(frames), &framing(frames)).expect("framing");
        assert!(!alloc.has_magazines());
        if armed {
            alloc.acquire_function_table().expect("open allocator");
        }
        Self { alloc }
    }

    /// With per-processor magazines: on a two-processor kernel (the two-thread bench
    /// pins thread *k* to CPU *k* and processor *k*), pools of
    /// `2 * MIN_FRAMES_PER_PROCESSOR` frames or more have them (the bench pools of 64
    /// frames and more have full magazines of `CAPACITY`); the 2-frame pool is
    /// below the rule and takes the shared list.
    ///
    /// # Panics
    /// If the framing is refused, or magazines are not on exactly when the rule says.
    #[must_use]
    pub fn with_magazines(frames: u32) -> Self {
        let alloc = Allocator::create(K::with_processors(2), &framing(frames)).expect("framing");
        assert_eq!(
            alloc.has_magazines(),
            frames >= 2 * MIN_FRAMES_PER_PROCESSOR
        );
        Self { alloc }
    }
}

impl<K: Kernel> Pool for Ksalloc<K> {
    #[inline]
    fn pair(&self) {
        let address = self.alloc.table_allocate().expect("a frame is free");
        self.alloc.free(black_box(address)).expect("our own frame");
    }
}

/// A burst on the magazine path: `BURST` allocations, then their frees, per
/// [`Pool::pair`] call (so one "pair" here is `BURST` pairs). What the magazine size
/// decides: with `BURST` above the capacity, the rest go to the shared list.
pub struct KsallocBurst<K: Kernel, const BURST: usize> {
    alloc: Allocator<K>,
}

impl<K: Kernel, const BURST: usize> KsallocBurst<K, BURST> {
    /// As [`Ksalloc::with_magazines`], with at least 64 frames (a burst needs
    /// magazines and more frames than it takes).
    ///
    /// # Panics
    /// If the framing is refused.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            alloc: Ksalloc::<K>::with_magazines(frames.max(64)).alloc,
        }
    }
}

impl<K: Kernel, const BURST: usize> Pool for KsallocBurst<K, BURST> {
    #[inline]
    fn pair(&self) {
        let mut out = [0usize; BURST];
        for slot in &mut out {
            *slot = self.alloc.table_allocate().expect("a frame is free");
        }
        for &address in black_box(&out).iter().rev() {
            self.alloc.free(address).expect("our own frame");
        }
    }
}

/// The core's free list alone (pop, claim, push): the floor of what the allocator adds
/// to a shared list. Three locked RMWs per pair.
pub struct FreeListOnly {
    list: FreeList,
}

impl FreeListOnly {
    /// A list of `frames` indices.
    ///
    /// # Panics
    /// If the link array cannot be allocated.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            list: FreeList::new(frames).expect("memory"),
        }
    }
}

impl Pool for FreeListOnly {
    #[inline]
    fn pair(&self) {
        let (index, _) = self.list.pop().expect("a frame is free");
        self.list.claim(black_box(index)).expect("held");
        self.list.push(index).expect("open");
    }
}

// ---------------------------------------------------------------------------------------
// Baselines.

/// A bare index+tag lock-free stack (Treiber with an ABA tag, no ownership word): the
/// floor for any shared free list. Two locked RMWs per pair.
pub struct TaggedStack {
    /// `(tag << 32) | top index`.
    head: AtomicU64,
    next: Vec<AtomicU32>,
}

const fn pack(tag: u32, index: u32) -> u64 {
    ((tag as u64) << 32) | index as u64
}

#[allow(clippy::cast_possible_truncation)] // The two halves we packed.
const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl TaggedStack {
    /// A stack holding `0..frames`.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            head: AtomicU64::new(pack(0, 0)),
            next: chain(frames),
        }
    }

    fn pop(&self) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let (tag, index) = unpack(head);
            if index == NIL {
                return None;
            }
            let next = self.next[index as usize].load(Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), next),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(index),
                Err(seen) => head = seen,
            }
        }
    }

    fn push(&self, index: u32) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let (tag, top) = unpack(head);
            self.next[index as usize].store(top, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(tag.wrapping_add(1), index),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => head = seen,
            }
        }
    }
}

impl Pool for TaggedStack {
    #[inline]
    fn pair(&self) {
        let index = self.pop().expect("a frame is free");
        self.push(black_box(index));
    }
}

/// The ReactOS ks design: a spin lock around a singly linked free list. The lock is a
/// test-and-test-and-set spin lock like `KeAcquireSpinLockAtDpcLevel` (without the
/// IRQL raise `KeAcquireSpinLock` adds); the list is intrusive, by index.
pub struct SpinList {
    locked: AtomicBool,
    /// Guarded by `locked` (relaxed atomics only so that no `unsafe` is needed).
    head: AtomicU32,
    next: Vec<AtomicU32>,
}

impl SpinList {
    /// A list holding `0..frames`.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            locked: AtomicBool::new(false),
            head: AtomicU32::new(0),
            next: chain(frames),
        }
    }

    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        let result = f();
        self.locked.store(false, Ordering::Release);
        result
    }
}

impl Pool for SpinList {
    #[inline]
    fn pair(&self) {
        let index = self.with(|| {
            let top = self.head.load(Ordering::Relaxed);
            if top != NIL {
                let next = self.next[top as usize].load(Ordering::Relaxed);
                self.head.store(next, Ordering::Relaxed);
            }
            top
        });
        assert_ne!(index, NIL, "a frame is free");
        let index = black_box(index);
        self.with(|| {
            let top = self.head.load(Ordering::Relaxed);
            self.next[index as usize].store(top, Ordering::Relaxed);
            self.head.store(index, Ordering::Relaxed);
        });
    }
}

/// `std::sync::Mutex<Vec<u32>>` (futex lock; the reference figure).
pub struct MutexVec {
    free: Mutex<Vec<u32>>,
}

impl MutexVec {
    /// A stack holding `0..frames`.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            free: Mutex::new((0..frames).rev().collect()),
        }
    }
}

impl Pool for MutexVec {
    #[inline]
    fn pair(&self) {
        let index = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .expect("a frame is free");
        let index = black_box(index);
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(index);
    }
}

/// crossbeam's bounded MPMC `ArrayQueue` used as a pool (FIFO: it cycles through every
/// slot, so its working set grows with the frame count).
pub struct ArrayQueuePool {
    queue: ArrayQueue<u32>,
}

impl ArrayQueuePool {
    /// A queue holding `0..frames`.
    ///
    /// # Panics
    /// Never: the queue has room for every index.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        let queue = ArrayQueue::new(frames as usize);
        for index in 0..frames {
            queue.push(index).expect("capacity");
        }
        Self { queue }
    }
}

impl Pool for ArrayQueuePool {
    #[inline]
    fn pair(&self) {
        let index = self.queue.pop().expect("a frame is free");
        self.queue.push(black_box(index)).expect("room");
    }
}

/// One frame of heap memory, with the frame's size and alignment.
#[repr(C, align(8))]
pub struct HeapFrame([u8; FRAME_SIZE as usize]);

const _: () = assert!(core::mem::align_of::<HeapFrame>() == FRAME_ALIGNMENT as usize + 1);
const _: () = assert!(core::mem::size_of::<HeapFrame>() == FRAME_SIZE as usize);

/// Per-frame heap allocation and free (the global allocator, glibc malloc here): what
/// pool-per-frame would cost. The frame count does not apply; it runs at each count as
/// a noise reference.
pub struct Heap;

impl Heap {
    /// The heap, whatever `frames` says.
    #[must_use]
    pub const fn new(_frames: u32) -> Self {
        Self
    }
}

impl Pool for Heap {
    #[inline]
    fn pair(&self) {
        // `black_box` makes the pointer escape, so the allocation cannot be elided.
        drop(black_box(Box::<HeapFrame>::new_uninit()));
    }
}

/// A private, non-atomic index stack: what a per-CPU magazine touched only by its own
/// processor at DISPATCH_LEVEL costs at best. Never shared: each thread has its own.
pub struct LocalStack {
    head: Cell<u32>,
    next: Vec<Cell<u32>>,
}

impl LocalStack {
    /// A stack holding `0..frames`.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        Self {
            head: Cell::new(0),
            next: (1..=frames)
                .map(|next| Cell::new(if next == frames { NIL } else { next }))
                .collect(),
        }
    }
}

impl Pool for LocalStack {
    #[inline]
    fn pair(&self) {
        let index = self.head.get();
        assert_ne!(index, NIL, "a frame is free");
        self.head.set(self.next[index as usize].get());
        let index = black_box(index);
        self.next[index as usize].set(self.head.get());
        self.head.set(index);
    }
}

// ---------------------------------------------------------------------------------------
// ALLOC-pend -> free -> completion hand-off.

/// An allocator with every frame out but one address kept for the hand-off: each ALLOC
/// finds the list empty and pends; the free of `held` hands the frame straight to it and
/// completes the IRP, leaving the pool empty again.
pub struct Handoff<K: Kernel> {
    kernel: K,
    alloc: Allocator<K>,
    out: Vec<usize>,
}

impl<K: Kernel> Handoff<K> {
    /// An allocator of `frames` frames, all taken.
    ///
    /// # Panics
    /// If the framing is refused.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        let kernel = shared_list_kernel::<K>(frames);
        let alloc = Allocator::create(kernel.clone(), &framing(frames)).expect("framing");
        let out = std::iter::from_fn(|| alloc.table_allocate().ok()).collect::<Vec<_>>();
        assert_eq!(out.len(), frames as usize);
        Self { kernel, alloc, out }
    }

    /// The frame that goes round.
    #[must_use]
    pub fn held(&self) -> usize {
        self.out[0]
    }

    /// A kernel-mode ALLOC request with a cancel routine, as the dispatcher builds it.
    #[must_use]
    pub fn irp(&self) -> K::Request {
        self.kernel.request()
    }

    /// ALLOC pends on the empty pool, then the free of [`Self::held`] completes it.
    ///
    /// # Panics
    /// If the ALLOC does not pend or the free is refused.
    #[inline]
    pub fn pend_then_free(&self, irp: &K::Request) {
        assert_eq!(self.alloc.method_alloc(irp), AllocOutcome::Pended);
        self.alloc.free(black_box(self.held())).expect("held frame");
    }

    /// Checks one hand-off end to end (outside any timing).
    ///
    /// # Panics
    /// If the IRP did not complete with the held frame.
    pub fn verify(&self) {
        let irp = self.irp();
        self.pend_then_free(&irp);
        assert_eq!(K::allocated_frame(&irp), Some(self.held()));
    }
}

impl Handoff<ModelKernel> {
    /// The model platform's share of the hand-off: what `complete_alloc` does to the IRP
    /// (write the address, complete), without the allocator.
    pub fn complete_only(&self, irp: &Irp) {
        irp.write_output(&black_box(self.held()).to_le_bytes());
        irp.complete(NtStatus::SUCCESS, 8);
    }
}

impl<K: Kernel> Drop for Handoff<K> {
    fn drop(&mut self) {
        for &address in &self.out {
            let _ = self.alloc.free(address);
        }
    }
}

/// The ALLOC method when a frame is free (`AllocOutcome::Ready`) + free: the
/// non-pending method path, for scale beside the hand-off.
pub struct MethodReady<K: Kernel> {
    alloc: Allocator<K>,
    irp: K::Request,
}

impl<K: Kernel> MethodReady<K> {
    /// An allocator of `frames` frames, all free.
    ///
    /// # Panics
    /// If the framing is refused.
    #[must_use]
    pub fn new(frames: u32) -> Self {
        let kernel = shared_list_kernel::<K>(frames);
        let alloc = Allocator::create(kernel.clone(), &framing(frames)).expect("framing");
        let irp = kernel.request();
        Self { alloc, irp }
    }
}

impl<K: Kernel> Pool for MethodReady<K> {
    #[inline]
    fn pair(&self) {
        let AllocOutcome::Ready(address) = self.alloc.method_alloc(&self.irp) else {
            panic!("a frame is free");
        };
        self.alloc.free(black_box(address)).expect("our own frame");
    }
}

/// A platform's share of the magazine path: entering `with_processor` twice (the
/// allocate and the free each do once), with nothing inside. On Windows the same step
/// is `KfRaiseIrql` + `KeGetCurrentProcessorNumberEx` + `KeLowerIrql`.
pub struct ProcessorOnly<K: Kernel> {
    kernel: K,
}

impl<K: Kernel> ProcessorOnly<K> {
    /// A two-processor kernel.
    #[must_use]
    pub fn new(_frames: u32) -> Self {
        Self {
            kernel: K::with_processors(2),
        }
    }
}

impl<K: Kernel> Pool for ProcessorOnly<K> {
    #[inline]
    fn pair(&self) {
        black_box(self.kernel.with_processor(black_box));
        black_box(self.kernel.with_processor(black_box));
    }
}
