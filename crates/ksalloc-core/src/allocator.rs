//! The allocator engine: one KS allocator object's frames, free list, pending ALLOC
//! requests, free-frame notification and the frames-out count.
//!
//! Entry points and their IRQL:
//!
//! | entry point | what it serves | IRQL |
//! |---|---|---|
//! | [`Allocator::create`] | IRP_MJ_CREATE with a framing | PASSIVE |
//! | [`Engine::table_allocate`] | `AllocateFrame` of the function table | <= DISPATCH |
//! | [`Engine::free`] | `FreeFrame` of the table, and the FREE method | <= DISPATCH |
//! | [`Engine::method_alloc`] | the ALLOC method | <= DISPATCH |
//! | [`Engine::cancel`] | the cancel routine of a pended ALLOC | <= DISPATCH |
//! | [`Engine::acquire_function_table`] | FUNCTIONTABLE Get | PASSIVE |
//! | [`Engine::enable_free_frame_event`] and disable | FREEFRAME events | PASSIVE |
//! | [`Engine::cleanup`] | IRP_MJ_CLEANUP | PASSIVE |
//! | [`Engine::close`] | IRP_MJ_CLOSE | PASSIVE |
//!
//! ## Pending requests get the first claim on returned frames
//! A returned frame goes to the oldest pending ALLOC if there is one, else onto the free
//! list; the function table fails fast while requests are pending. The race between
//! "ALLOC found the list empty and queues" and "free pushes a frame" is closed with a
//! store-then-load handshake on both sides, all `SeqCst`:
//! ALLOC stores `pending_len` then pops; free pushes then loads `pending_len`. In the
//! single total order of SeqCst operations one of the two sees the other, so either the
//! ALLOC pops the frame or the free services the queue: a request never waits while a
//! frame sits on the list.
//!
//! ## Magazines
//! With at least [`MIN_FRAMES_PER_PROCESSOR`] frames per processor the allocator keeps a
//! magazine per processor ([`magazine`]): a free on processor *p* caches the frame in
//! *p*'s magazine (up to [`magazine_capacity`]: half a processor's share of the pool, at
//! most [`magazine::CAPACITY`]), and an allocation on *p* takes from it
//! first. Only *p* touches its magazine, inside `with_processor` or in *p*'s processor
//! call ([`crate::platform::ProcessorCall`], a DPC targeted at *p* on Windows), so every
//! access is a plain load or store, and the pair's one locked instruction is the free's
//! ownership claim. Smaller pools (fewer than 2 frames per processor: a KS pool of 8
//! frames on 8 processors) keep every magazine blocked and use the shared list alone.
//!
//! Frames in a magazine are free (STATUS and the snapshot count them so) but only *p*
//! can reach them. Whoever needs them asks *p* with its processor call, which moves them
//! onto the shared list the way a free does (push, then the `pending_len` check below),
//! so a waiting ALLOC gets them:
//! - an ALLOC about to pend *blocks* every magazine (under the queue lock, after
//!   publishing `pending_len`, when the queue goes from empty to one) and queues every
//!   processor's call. A processor that has not seen the block yet may still cache a
//!   frame or hand one out: its call runs after that (it never runs during a
//!   `with_processor` section) and moves whatever is cached; after the call, the owner
//!   sees the block. The magazines stay blocked until the queue empties (unblocked
//!   under the same lock), so neither fast path loads `pending_len`.
//! - an allocation that finds the shared list empty queues the call of every processor
//!   whose magazine looks non-empty, then tries the list once more. On Windows the
//!   calls usually run after that retry: the table allocation fails now, and the
//!   free-frame notification fires when the frames reach the list.
//! - close blocks every magazine for good and queues every processor's call.
//!
//! So a pending ALLOC never waits while a frame sits in a magazine, once the processor
//! calls queued for it have run (loom: `tests/loom_allocator.rs`; the state machine
//! checks it after every step; `tests/engine.rs` holds the calls back to check the
//! core at any delay). The calls need the allocator's state at a fixed address until
//! they have run: [`Allocator`] keeps it in a box and flushes the calls before the box
//! goes.
//!
//! ## Counting frames out
//! While open, no shared word counts frames out: each processor counts its own
//! allocations and frees (plain stores on its own slot, inside `with_processor`), and
//! STATUS sums them (exact at rest). Close switches to one exact shared count without a
//! grace period, like Linux's `percpu_ref` switching to atomic mode: closing the free
//! list returns how many frames were on it, in the same swap that makes every later
//! push fail. Every other frame was out, cached in a magazine, or on its way back at
//! that instant, `total - listed`, and each comes back through a push that fails on the
//! closed list (a client's free, or a processor call moving a magazine) and counts down
//! [`Rundown`] instead; the memory goes when that count reaches zero (see `rundown`).
//!
//! ## Cleanup is not close
//! IRP_MJ_CLEANUP means the last handle is gone while kernel references may remain
//! ("IRP_MJ_CLEANUP" page); IRP_MJ_CLOSE means the last reference is gone ("IRP_MJ_CLOSE"
//! page). An AVStream pin given this allocator references its file object and keeps
//! calling the function table after user mode closes the handle. So [`Engine::cleanup`]
//! cancels the pending ALLOCs, refuses new IRP-based requests and disables the events,
//! and the table keeps working; [`Engine::close`] ends the table. The cleanup flag is
//! set under the `shared` lock every pend and enable takes, so a request racing with
//! cleanup is either cancelled by it or refused.
//!
//! ## Locks
//! `shared` (queue and client events) may be held while taking `memory`; never the
//! reverse. No pool call, wait or IRP completion happens with either held, nor inside
//! `Platform::with_processor`.

use alloc::vec::Vec;

use ks_abi::ks::{KsAllocatorFraming, KsStreamAllocatorStatus};
use ks_abi::NtStatus;

use crate::framing::Framing;
use crate::free_list::{FreeList, Unlisted};
use crate::magazine::{self, Slot};
use crate::pending::{PendingQueue, MAX_PENDING};
use crate::platform::{Irql, Platform, PoolCharge, ProcessorCall, Requestor, SpinLock};
use crate::rundown::{Released, Rundown};
use crate::stats::{Counter, Counters, Stats};
use crate::sync::{AtomicBool, AtomicU32, Ordering};

/// `listeners`' bit for an armed function table; the bits below count client events.
const TABLE_ARMED: u32 = 1 << 31;

/// Most FREEFRAME events enabled at once on one allocator.
pub const MAX_CLIENT_EVENTS: usize = 16;

/// Frames per processor below which an allocator has no magazines.
///
/// A magazine holds half a processor's share of the pool (so at most half the pool can
/// sit in magazines), and that must be at least one frame.
pub const MIN_FRAMES_PER_PROCESSOR: u32 = 2;

/// How many frames each magazine of a pool of `frames` frames on `processors`
/// processors holds.
///
/// Half a processor's share, at most [`magazine::CAPACITY`]; 0 (no magazines) below
/// [`MIN_FRAMES_PER_PROCESSOR`] frames per processor. A pool of 8
/// frames gets 2 per processor on 2 processors and 1 on 4; pools of `2 * CAPACITY`
/// frames per processor or more get the full `CAPACITY`.
#[must_use]
pub const fn magazine_capacity(frames: u32, processors: u32) -> u32 {
    if processors == 0 {
        return 0;
    }
    let share = frames / processors / 2;
    if share < magazine::CAPACITY {
        share
    } else {
        magazine::CAPACITY
    }
}

/// The most per-processor slots an allocator keeps.
///
/// A larger [`Platform::processor_count`] means the platform has no processor index at all (the
/// driver reports `u32::MAX` on kernels that export no processor-number routine, e.g.
/// ReactOS amd64): then the allocator keeps no per-processor state, and every count goes
/// to the shared counters, as for an index past the slots.
pub const MAX_PROCESSOR_SLOTS: u32 = 4096;

/// Per-processor slots for a platform reporting `reported` processors (see
/// [`MAX_PROCESSOR_SLOTS`]).
const fn processor_slots(reported: u32) -> u32 {
    if reported > MAX_PROCESSOR_SLOTS {
        0
    } else if reported == 0 {
        1
    } else {
        reported
    }
}

/// What an ALLOC request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocOutcome {
    /// A frame was free: complete the request now with this address.
    Ready(usize),
    /// Queued. It will be completed through [`Platform::complete_alloc`] (perhaps
    /// before this call returns): the caller must have marked it pending and must not
    /// touch it again.
    Pended,
    /// Refused: complete the request now with this status.
    Failed(NtStatus),
}

/// A consistent-at-rest picture of an allocator, for STATUS, tests and the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Frames the allocator owns.
    pub total: u32,
    /// Frames on the free list (counted from the per-frame ownership words).
    pub free: u32,
    /// Frames out with clients (the per-processor counts, or the count after close).
    pub outstanding: u32,
    /// Free frames cached in processors' magazines (included in `free`).
    pub cached: u32,
    /// ALLOC requests queued.
    pub pending: u32,
    /// Whether close has run.
    pub closed: bool,
    /// Whether the frame memory has gone back to the pool.
    pub memory_released: bool,
    /// Event counters.
    pub counters: Counters,
}

impl Snapshot {
    /// The conservation law: every frame is free or out, none twice. Only meaningful
    /// when no operation is in flight.
    #[must_use]
    pub const fn conserved(&self) -> bool {
        self.memory_released || self.free as u64 + self.outstanding as u64 == self.total as u64
    }
}

/// Why [`Engine::take_frame`] found no frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taken {
    /// The free list is empty.
    Empty,
    /// The allocator is closed.
    Closed,
}

/// What [`Engine::free`] did with a frame on its processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Returned {
    /// Cached in the processor's magazine: done.
    Cached,
    /// Taken back from its client (its link word, at this position, `CLAIMED`); the
    /// shared path goes on.
    Claimed(u32),
    /// Not a frame a client holds: a double or foreign free.
    Refused,
}

struct Shared<P: Platform> {
    queue: PendingQueue<P::Request>,
    events: Vec<P::ClientEvent>,
}

/// One KS allocator object: its [`Engine`] in a box of its own, so the engine's address
/// stays fixed while processor calls queued for it may run ("Magazines"), however the
/// `Allocator` itself moves.
///
/// The owner (the file object's context on Windows) must keep the allocator alive until
/// [`Engine::is_drained`]: clients may still return frames after close. Dropping it
/// waits for its processor calls (`PASSIVE_LEVEL`).
pub struct Allocator<P: Platform> {
    /// One element: a boxed array rather than `Box<Engine>`, because `Box::new` cannot
    /// report an allocation failure and `Vec::try_reserve_exact` can.
    engine: alloc::boxed::Box<[Engine<P>; 1]>,
}

impl<P: Platform> core::ops::Deref for Allocator<P> {
    type Target = Engine<P>;

    #[inline]
    fn deref(&self) -> &Engine<P> {
        &self.engine[0]
    }
}

impl<P: Platform> Drop for Allocator<P> {
    fn drop(&mut self) {
        // Before the box goes: no processor call may still be queued for the engine or
        // running on it (the promise `call_processor` makes the platform).
        if let Some(calls) = &self.engine[0].calls {
            self.engine[0].platform.flush_processor_calls(calls);
        }
    }
}

/// The state and entry points of an [`Allocator`].
///
/// Invariants: frame `i` starts at `base + i * stride`; a frame is on the free list, or
/// out with exactly one owner (a client, or a pending request being completed), or
/// cached in one magazine; frame memory is released once, when the allocator is closed
/// and no frame is out ("Counting frames out"). Only [`Allocator`] creates one, in its
/// box.
pub struct Engine<P: Platform> {
    platform: P,
    framing: Framing,
    base: usize,
    /// log2 of the stride if it is a power of two, else `u32::MAX` (for `index_of`).
    stride_shift: u32,
    list: FreeList,
    rundown: Rundown,
    /// Mirror of `shared.queue.len()`, stored under the lock, read without it.
    pending_len: AtomicU32,
    /// Who a free must notify, read without the lock on every free, written under
    /// `shared`: [`TABLE_ARMED`] once FUNCTIONTABLE has been handed out (frees then
    /// signal `internal_event`), plus the number of enabled FREEFRAME events.
    listeners: AtomicU32,
    /// Set by IRP_MJ_CLEANUP, under `shared` (see "Cleanup is not close").
    cleaned_up: AtomicBool,
    internal_event: P::Event,
    shared: P::Lock<Shared<P>>,
    memory: P::Lock<Option<P::Memory>>,
    stats: Stats,
    /// One slot per processor: its magazine (blocked for good in a small pool, see
    /// "Magazines") and its counters.
    magazines: Vec<Slot>,
    /// One processor call per slot, to move a magazine's frames: present exactly when
    /// the pool is above the magazine rule ([`Self::has_magazines`]).
    calls: Option<P::ProcessorCalls>,
}

impl<P: Platform> Allocator<P> {
    /// Creates an allocator for `raw` for a kernel-mode requestor: see
    /// [`Self::create_for`].
    ///
    /// # Errors
    /// As [`Self::create_for`].
    pub fn create(platform: P, raw: &KsAllocatorFraming) -> Result<Self, NtStatus> {
        Self::create_for(platform, raw, Requestor::Kernel)
    }

    /// Creates an allocator for `raw`: validates it, charges its frame memory to the
    /// driver's [`crate::limits::FrameBudget`], then preallocates every frame, charged to
    /// a user-mode `requestor`'s pool quota ([`PoolCharge`]).
    ///
    /// # Errors
    /// The framing's documented status (see [`crate::framing`]), or
    /// `STATUS_INSUFFICIENT_RESOURCES` if the budget is spent or any allocation fails;
    /// nothing is left allocated or charged then.
    pub fn create_for(
        platform: P,
        raw: &KsAllocatorFraming,
        requestor: Requestor,
    ) -> Result<Self, NtStatus> {
        platform.check_irql(Irql::Passive);
        let framing = Framing::validate(raw).map_err(crate::framing::FramingError::status)?;
        platform.frame_budget().try_charge(framing.total_bytes())?;
        let charged = platform.clone();
        match Engine::preallocate(platform, framing, requestor) {
            // If boxing fails, the engine's drop gives back its memory and the charge.
            Ok(engine) => Self::boxed(engine),
            Err(status) => {
                charged.frame_budget().release(framing.total_bytes());
                Err(status)
            }
        }
    }

    /// Moves `engine` into its box; on failure the engine drops, giving back its frame
    /// memory (no call can be queued yet).
    fn boxed(engine: Engine<P>) -> Result<Self, NtStatus> {
        let mut one = Vec::new();
        one.try_reserve_exact(1)
            .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
        one.push(engine);
        let engine = one
            .into_boxed_slice()
            .try_into()
            .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
        Ok(Self { engine })
    }
}

impl<P: Platform> Engine<P> {
    fn preallocate(platform: P, framing: Framing, requestor: Requestor) -> Result<Self, NtStatus> {
        let list = FreeList::new(framing.frames())?;
        let queue = PendingQueue::new(MAX_PENDING)?;
        let mut events = Vec::new();
        events
            .try_reserve_exact(MAX_CLIENT_EVENTS)
            .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
        let processors = processor_slots(platform.processor_count());
        let capacity = magazine_capacity(framing.frames(), processors);
        let mut magazines = Vec::new();
        magazines
            .try_reserve_exact(processors as usize)
            .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)?;
        magazines.extend((0..processors).map(|_| Slot::new(capacity)));
        let calls = if capacity != 0 {
            Some(
                platform
                    .new_processor_calls::<Self>(processors as usize)
                    .ok_or(NtStatus::INSUFFICIENT_RESOURCES)?,
            )
        } else {
            None
        };
        let internal_event = platform
            .new_event()
            .ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        // Last, so no failure after it has anything to give back.
        let memory = platform
            .alloc_nonpaged(
                framing.total_bytes(),
                framing.align(),
                PoolCharge::for_requestor(requestor),
            )
            .ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        let base = crate::platform::FrameMemory::base(&memory);
        debug_assert_eq!(
            base % framing.align(),
            0,
            "platform returned misaligned memory"
        );
        Ok(Self {
            internal_event,
            shared: platform.new_lock(Shared { queue, events }),
            memory: platform.new_lock(Some(memory)),
            platform,
            stride_shift: if framing.stride().is_power_of_two() {
                framing.stride().trailing_zeros()
            } else {
                u32::MAX
            },
            framing,
            base,
            list,
            rundown: Rundown::new(),
            pending_len: AtomicU32::new(0),
            listeners: AtomicU32::new(0),
            cleaned_up: AtomicBool::new(false),
            stats: Stats::default(),
            magazines,
            calls,
        })
    }

    /// Whether this allocator has per-processor magazines.
    #[must_use]
    pub const fn has_magazines(&self) -> bool {
        self.calls.is_some()
    }

    /// Frames each of its magazines holds ([`magazine_capacity`]; 0 without magazines).
    #[must_use]
    pub fn magazine_capacity(&self) -> u32 {
        self.magazines.first().map_or(0, |slot| slot.capacity())
    }

    /// The validated framing.
    #[must_use]
    pub const fn framing(&self) -> &Framing {
        &self.framing
    }

    /// The platform this allocator runs on.
    #[must_use]
    pub const fn platform(&self) -> &P {
        &self.platform
    }

    /// Address of frame `index`.
    const fn address(&self, index: u32) -> usize {
        self.base + index as usize * self.framing.stride()
    }

    /// Index of the frame starting at `address`, if it is one of ours.
    #[inline]
    fn index_of(&self, address: usize) -> Option<u32> {
        if self.stride_shift < usize::BITS {
            // A power-of-two stride: rotating the offset right by its log puts any
            // misaligned low bits on top, so one compare checks range and alignment.
            // Wrapping: an address below `base` wraps to an offset no frame has (the
            // block cannot wrap the address space).
            let index = address
                .wrapping_sub(self.base)
                .rotate_right(self.stride_shift);
            #[allow(clippy::cast_possible_truncation)] // Below `frames`, a u32.
            return (index < self.framing.frames() as usize).then_some(index as u32);
        }
        let offset = address.checked_sub(self.base)?;
        let stride = self.framing.stride();
        // Strides are usually powers of two (frame sizes rounded to an alignment): a
        // mask and a shift instead of two divisions on every free.
        let index = if stride.is_power_of_two() {
            if offset & (stride - 1) != 0 {
                return None;
            }
            offset >> stride.trailing_zeros()
        } else {
            if offset % stride != 0 {
                return None;
            }
            offset / stride
        };
        u32::try_from(index)
            .ok()
            .filter(|&i| i < self.framing.frames())
    }

    /// `AllocateFrame` of the function table: a free frame now, or an error now.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when no frame is free (or ALLOC requests are
    /// waiting for the next one); `STATUS_INVALID_DEVICE_STATE` after close.
    #[inline]
    pub fn table_allocate(&self) -> Result<usize, NtStatus> {
        self.platform.check_irql(Irql::Dispatch);
        // No `pending_len` check first: while requests wait, every magazine is blocked
        // and the pop fails ("Magazines").
        if let Some(index) = self.pop_cached() {
            return Ok(self.address(index));
        }
        self.table_allocate_shared()
    }

    /// [`Self::table_allocate`] past the magazine: the shared list, unless requests wait.
    #[inline(never)]
    fn table_allocate_shared(&self) -> Result<usize, NtStatus> {
        // SeqCst: part of the pending handshake (module docs).
        let taken = if self.pending_len.load(Ordering::SeqCst) == 0 {
            self.take_shared()
        } else {
            Err(Taken::Empty)
        };
        match taken {
            Ok((index, out)) => {
                self.count_allocation();
                self.stats.saw_outstanding(out);
                Ok(self.address(index))
            }
            Err(Taken::Closed) => Err(NtStatus::INVALID_DEVICE_STATE),
            Err(Taken::Empty) => {
                self.stats.bump(Counter::FailedAllocation);
                Err(NtStatus::INSUFFICIENT_RESOURCES)
            }
        }
    }

    /// Counts a frame handed out from the shared list on this processor's counters.
    fn count_allocation(&self) {
        self.platform
            .with_processor(|cpu| match self.magazines.get(cpu) {
                Some(slot) => slot.count_allocation(),
                None => self.stats.bump(Counter::Allocation),
            });
    }

    /// Pops a frame off the shared list; returns it with the frames now off the list
    /// (out, cached or on their way: what the peak statistic records).
    #[inline]
    fn take_frame(&self) -> Result<(u32, u32), Taken> {
        match self.list.pop() {
            Ok((index, listed)) => Ok((index, self.framing.frames() - listed)),
            Err(Unlisted::Empty) => Err(Taken::Empty),
            Err(Unlisted::Closed) => Err(Taken::Closed),
        }
    }

    /// [`Self::take_frame`], but when the list is empty, asks the processors caching
    /// frames for them and looks once more: frames cached on other processors are as
    /// free as any, though only their processors can move them ("Magazines").
    #[inline]
    fn take_shared(&self) -> Result<(u32, u32), Taken> {
        match self.take_frame() {
            Err(Taken::Empty) if self.has_magazines() => self.recall_and_retake(),
            taken => taken,
        }
    }

    /// [`Self::take_shared`] after a miss: out of line, so the hit path stays short.
    #[cold]
    #[inline(never)]
    fn recall_and_retake(&self) -> Result<(u32, u32), Taken> {
        if self.recall_cached() {
            self.take_frame()
        } else {
            Err(Taken::Empty)
        }
    }

    /// A frame from this processor's magazine, counted as handed out.
    #[inline]
    fn pop_cached(&self) -> Option<u32> {
        if !self.has_magazines() {
            return None;
        }
        self.platform.with_processor(|cpu| {
            let slot = self.magazines.get(cpu)?;
            let frame = slot.pop()?;
            slot.count_allocation();
            self.list.set_out_at(frame.position);
            Some(frame.index)
        })
    }

    /// On processor `cpu`: takes frame `index` back from its client (the pair's one
    /// locked instruction), into `cpu`'s magazine if it has room and is not blocked
    /// (module docs, "Magazines"), and counts the free there.
    #[inline]
    fn claim_on(&self, cpu: usize, index: u32) -> Returned {
        let position = self.list.position(index);
        if self.list.claim_at(position).is_err() {
            return Returned::Refused;
        }
        let Some(slot) = self.magazines.get(cpu) else {
            self.stats.bump(Counter::Free);
            return Returned::Claimed(position);
        };
        slot.count_free();
        if slot.push(magazine::Cached { index, position }) {
            Returned::Cached
        } else {
            Returned::Claimed(position)
        }
    }

    /// Queues processor `cpu`'s call, which moves its magazine's frames to the shared
    /// path ([`Self::run_on`]).
    fn call_processor(&self, cpu: usize) {
        if let Some(calls) = &self.calls {
            // The result needs nothing: `false` (queued already and not started) runs
            // after us and sees what we did.
            #[allow(unsafe_code)]
            // SAFETY: `calls` was created for `Engine<P>` (`preallocate`). `self` lives
            // in the box of the `Allocator` that created it (the only way to get an
            // engine past `preallocate`, whose failure paths queue nothing): the box's
            // contents never move, and `Allocator`'s drop flushes `calls` before the
            // box is freed, so `self` stays at this address until the call has run or
            // the flush has returned.
            let _ = unsafe { self.platform.queue_processor_call(calls, cpu, self) };
        }
    }

    /// Asks every processor whose magazine holds frames to move them to the shared
    /// path. Returns whether it asked any. The counts are read racily: a magazine
    /// filling meanwhile is one a later miss asks.
    #[cold]
    #[inline(never)]
    fn recall_cached(&self) -> bool {
        let mut asked = false;
        for (cpu, slot) in self.magazines.iter().enumerate() {
            if !slot.is_empty() {
                self.call_processor(cpu);
                asked = true;
            }
        }
        asked
    }

    /// Blocks every magazine and asks every processor to move what its magazine holds.
    /// Under the queue lock (see "Magazines"), when the queue goes from empty to one
    /// request, or at close.
    fn block_magazines(&self) {
        if !self.has_magazines() {
            // Blocked since create, and empty.
            return;
        }
        for slot in &self.magazines {
            slot.block();
        }
        // After every block: a call that runs sees all of them.
        for cpu in 0..self.magazines.len() {
            self.call_processor(cpu);
        }
    }

    /// Unblocks the magazines when the queue has just emptied, unless closed or the
    /// pool is below the rule. Under the queue lock.
    fn unblock_magazines(&self, shared: &Shared<P>) {
        if self.has_magazines() && shared.queue.is_empty() && !self.list.is_closed() {
            for slot in &self.magazines {
                slot.unblock();
            }
        }
    }

    /// Processor `cpu`'s call ([`ProcessorCall`]): moves its magazine's frames onto the
    /// shared list as a free would (then serves waiting ALLOCs and signals the
    /// free-frame notification); on a closed list they count down instead ("Counting
    /// frames out").
    fn move_magazine(&self, cpu: usize) {
        let Some(taken) = self.magazines.get(cpu).and_then(|slot| slot.take_all()) else {
            return;
        };
        let frames = taken.frames();
        // Chain them through their link words, bottom first, for one push.
        for pair in frames.windows(2) {
            self.list.set_next(pair[1], pair[0]);
        }
        #[allow(clippy::cast_possible_truncation)] // At most magazine::CAPACITY.
        let count = frames.len() as u32;
        let top = frames[frames.len() - 1];
        if self.list.push_chain(top, count).is_err() {
            if self.rundown.release_many(count) == Released::Drained {
                self.release_memory();
            }
            return;
        }
        // SeqCst: after our push, the load that closes the pending handshake (as in
        // `free_shared`).
        if self.pending_len.load(Ordering::SeqCst) != 0 {
            self.service_pending();
        }
        self.notify();
    }

    /// Returns a frame popped by [`Self::take_frame`] that was never handed out.
    fn put_back(&self, index: u32) -> Released {
        let claimed = self.list.claim(index);
        debug_assert!(claimed.is_ok(), "a frame we popped is ours to return");
        self.list_claimed(index)
    }

    /// Pushes a claimed frame; on a closed list it counts down instead.
    #[inline]
    fn list_claimed(&self, index: u32) -> Released {
        match self.list.push(index) {
            Ok(()) => Released::Live,
            Err(_) => self.rundown.release(),
        }
    }

    /// Returns a frame (`FreeFrame` of the table, or the FREE method): to the oldest
    /// pending ALLOC if any, else to the free list; then signals the free-frame
    /// notification. Valid after close: frames still out come home that way.
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` when `address` is not the start of a frame of this
    /// allocator, or that frame is not out (a double free). Nothing changes then, apart
    /// from the rejected-free counter.
    #[inline]
    pub fn free(&self, address: usize) -> Result<(), NtStatus> {
        self.platform.check_irql(Irql::Dispatch);
        let Some(index) = self.index_of(address) else {
            return Err(self.refuse_free());
        };
        match self
            .platform
            .with_processor(|cpu| self.claim_on(cpu, index))
        {
            Returned::Cached => {
                self.notify();
                Ok(())
            }
            Returned::Claimed(position) => {
                self.free_shared(index, position, address);
                Ok(())
            }
            Returned::Refused => Err(self.refuse_free()),
        }
    }

    /// Counts a refused free; its status.
    #[cold]
    fn refuse_free(&self) -> NtStatus {
        self.stats.bump(Counter::RejectedFree);
        NtStatus::INVALID_PARAMETER
    }

    /// [`Self::free`] of a claimed frame past the magazine: to the oldest pending ALLOC
    /// if any, else to the shared list.
    #[inline(never)]
    fn free_shared(&self, index: u32, position: u32, address: usize) {
        // SeqCst: the free side of the pending handshake.
        if self.pending_len.load(Ordering::SeqCst) != 0 && self.hand_off(index, address) {
            return;
        }
        let listed = match self.list.push_at(position, index) {
            Ok(()) => Released::Live,
            Err(_) => self.rundown.release(),
        };
        if listed == Released::Drained {
            self.release_memory();
        }
        // SeqCst: after our push, the load that closes the handshake.
        if self.pending_len.load(Ordering::SeqCst) != 0 {
            self.service_pending();
        }
        self.notify();
    }

    /// Gives a claimed frame straight to the oldest pending ALLOC, if one is still
    /// queued (`true`). Out of line: the shared path's free pays for it only when
    /// requests wait.
    #[inline(never)]
    fn hand_off(&self, index: u32, address: usize) -> bool {
        let Some(request) = self.shared.with(|shared| self.take_oldest(shared)) else {
            return false;
        };
        // Straight to the waiter: the frame stays out, the count unchanged.
        self.list.unclaim(index);
        self.stats.bump(Counter::Allocation);
        self.platform.complete_alloc(request, Ok(address));
        self.notify();
        true
    }

    /// The ALLOC method. The caller has marked `request` pending (see
    /// [`AllocOutcome::Pended`]).
    pub fn method_alloc(&self, request: &P::Request) -> AllocOutcome {
        self.platform.check_irql(Irql::Dispatch);
        // After cleanup the method is refused. One racing with cleanup may still take a
        // free frame at once; only a pend needs the check under the lock (below).
        if self.is_cleaned_up() {
            return AllocOutcome::Failed(NtStatus::INVALID_DEVICE_STATE);
        }
        // Blocked while requests wait: no `pending_len` check needed first.
        if let Some(index) = self.pop_cached() {
            return AllocOutcome::Ready(self.address(index));
        }
        if self.pending_len.load(Ordering::SeqCst) == 0 {
            match self.take_shared() {
                Ok((index, out)) => {
                    self.count_allocation();
                    self.stats.saw_outstanding(out);
                    return AllocOutcome::Ready(self.address(index));
                }
                Err(Taken::Closed) => return AllocOutcome::Failed(NtStatus::INVALID_DEVICE_STATE),
                Err(Taken::Empty) => {}
            }
        }
        let queued = self.shared.with(|shared| {
            // Relaxed: `cleaned_up` is stored under this lock.
            if self.list.is_closed() || self.cleaned_up.load(Ordering::Relaxed) {
                return Err(NtStatus::INVALID_DEVICE_STATE);
            }
            if shared.queue.len() == MAX_PENDING {
                return Err(NtStatus::INSUFFICIENT_RESOURCES);
            }
            if !self.platform.arm_cancel(request) {
                return Err(NtStatus::CANCELLED);
            }
            let pushed = shared.queue.push_back(request.clone());
            debug_assert!(pushed.is_ok(), "capacity was checked above");
            // SeqCst: the ALLOC side of the handshake; the pop in service_pending follows.
            self.pending_len
                .store(Self::queue_len(shared), Ordering::SeqCst);
            // After the store, when the queue was empty (else they are blocked
            // already): the processors' calls move every cached frame to the shared
            // path, which sees the waiter ("Magazines").
            if shared.queue.len() == 1 {
                self.block_magazines();
            }
            // The pop that closes the handshake, under the lock we hold anyway: a
            // frame pushed before our store goes to the oldest request now.
            Ok(self.service_step(shared))
        });
        let step = match queued {
            Ok(step) => step,
            Err(status) => return AllocOutcome::Failed(status),
        };
        self.stats.bump(Counter::Pend);
        if self.finish_step(step) {
            // A frame was there: there may be more, and more requests.
            self.service_pending();
        }
        AllocOutcome::Pended
    }

    /// The cancel routine of a pended ALLOC: removes the request with `key` and
    /// completes it with `STATUS_CANCELLED`. Returns whether it was still queued.
    pub fn cancel(&self, key: usize) -> bool {
        self.platform.check_irql(Irql::Dispatch);
        let removed = self.shared.with(|shared| {
            let removed = shared.queue.remove_key(key);
            self.pending_len
                .store(Self::queue_len(shared), Ordering::SeqCst);
            self.unblock_magazines(shared);
            removed
        });
        removed.is_some_and(|request| {
            self.stats.bump(Counter::Cancel);
            self.platform
                .complete_alloc(request, Err(NtStatus::CANCELLED));
            true
        })
    }

    /// FUNCTIONTABLE Get: arms the internal free-frame event (the KS docs: acquiring
    /// the table creates the notification that services waiters).
    ///
    /// # Errors
    /// `STATUS_INVALID_DEVICE_STATE` after close.
    pub fn acquire_function_table(&self) -> Result<(), NtStatus> {
        self.platform.check_irql(Irql::Passive);
        // Check and arm under the lock close disarms under: a close that set CLOSED
        // before we look is refused here; one that comes after disarms after us.
        self.shared.with(|_| {
            // Relaxed: `cleaned_up` is stored under this lock.
            if self.list.is_closed() || self.cleaned_up.load(Ordering::Relaxed) {
                return Err(NtStatus::INVALID_DEVICE_STATE);
            }
            self.set_listeners(TABLE_ARMED, TABLE_ARMED);
            Ok(())
        })
    }

    /// The internal free-frame event, signalled on every free once the table is armed.
    #[must_use]
    pub const fn internal_event(&self) -> &P::Event {
        &self.internal_event
    }

    /// Enables KSEVENT_STREAMALLOCATOR_FREEFRAME for `event`.
    ///
    /// # Errors
    /// `STATUS_INVALID_DEVICE_STATE` after close, `STATUS_INVALID_PARAMETER` if this
    /// event is enabled already, `STATUS_INSUFFICIENT_RESOURCES` past
    /// [`MAX_CLIENT_EVENTS`].
    pub fn enable_free_frame_event(&self, event: P::ClientEvent) -> Result<(), NtStatus> {
        self.platform.check_irql(Irql::Passive);
        let key = self.platform.client_event_key(&event);
        self.shared.with(|shared| {
            // Relaxed: `cleaned_up` is stored under this lock.
            if self.list.is_closed() || self.cleaned_up.load(Ordering::Relaxed) {
                return Err(NtStatus::INVALID_DEVICE_STATE);
            }
            if shared
                .events
                .iter()
                .any(|e| self.platform.client_event_key(e) == key)
            {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            if shared.events.len() == MAX_CLIENT_EVENTS {
                return Err(NtStatus::INSUFFICIENT_RESOURCES);
            }
            shared.events.push(event);
            self.store_event_count(shared);
            Ok(())
        })
    }

    /// Disables a FREEFRAME event enabled with this key.
    ///
    /// # Errors
    /// `STATUS_NOT_FOUND` if no such event is enabled.
    pub fn disable_free_frame_event(&self, key: usize) -> Result<(), NtStatus> {
        self.platform.check_irql(Irql::Passive);
        let removed = self.shared.with(|shared| {
            let at = shared
                .events
                .iter()
                .position(|e| self.platform.client_event_key(e) == key)?;
            let event = shared.events.swap_remove(at);
            self.store_event_count(shared);
            Some(event)
        });
        removed.map(drop).ok_or(NtStatus::NOT_FOUND)
    }

    /// IRP_MJ_CLEANUP: pending ALLOCs complete with `STATUS_CANCELLED`, new ones are
    /// refused, FREEFRAME events are disabled; the function table keeps working until
    /// [`Self::close`] (module docs, "Cleanup is not close"). Returns the number of
    /// requests cancelled. A second cleanup cancels nothing.
    pub fn cleanup(&self) -> usize {
        self.platform.check_irql(Irql::Passive);
        let events = self.shared.with(|shared| {
            // Under the lock every pend and enable checks it under (those loads are
            // Relaxed: the lock orders them); Release pairs with `is_cleaned_up`.
            self.cleaned_up.store(true, Ordering::Release);
            let events = core::mem::take(&mut shared.events);
            self.store_event_count(shared);
            events
        });
        // Dropping the client events releases their references outside the lock.
        drop(events);
        let mut cancelled = 0;
        while let Some(request) = self.shared.with(|shared| self.take_oldest_any(shared)) {
            self.stats.bump(Counter::Cancel);
            self.platform
                .complete_alloc(request, Err(NtStatus::CANCELLED));
            cancelled += 1;
        }
        cancelled
    }

    /// Whether IRP_MJ_CLEANUP has run: IRP-based requests are refused from then on.
    #[must_use]
    pub fn is_cleaned_up(&self) -> bool {
        // Acquire: pairs with the Release store in `cleanup`.
        self.cleaned_up.load(Ordering::Acquire)
    }

    /// IRP_MJ_CLOSE: everything [`Self::cleanup`] does, if it has not run, and the
    /// function table stops: later allocations fail; the frame memory goes back to the
    /// pool now if no frame is out, else when the last one returns. Returns the number
    /// of requests cancelled. A second close does nothing.
    pub fn close(&self) -> usize {
        self.platform.check_irql(Irql::Passive);
        let Some(listed) = self.list.close() else {
            return 0;
        };
        self.shared.with(|_| {
            // Under the lock acquire_function_table arms under (see there).
            self.set_listeners(TABLE_ARMED, 0);
            // After the list closed, under the lock unblocks take (they do nothing on a
            // closed list): blocked for good, and every processor's call moves what
            // its magazine holds onto the closed list, counting it down ("Magazines").
            self.block_magazines();
        });
        // Cancels what still waits (pending requests hold no frame).
        let cancelled = self.cleanup();
        // The census ("Counting frames out"): every frame not listed at the close was
        // out or cached, and comes back through a failing push.
        if self.rundown.close(self.framing.frames() - listed) == Released::Drained {
            self.release_memory();
        }
        cancelled
    }

    /// Frames cached in every magazine: racy while processors run (STATUS, the
    /// snapshot), exact with nothing running on them (drop, after the calls are flushed).
    fn cached_now(&self) -> u32 {
        self.magazines.iter().map(|slot| slot.len()).sum()
    }

    /// Whether the allocator is closed and every frame has come back (the owner may
    /// then drop it).
    #[must_use]
    pub fn is_drained(&self) -> bool {
        self.rundown.is_drained()
    }

    /// KSPROPERTY_STREAMALLOCATOR_STATUS.
    #[must_use]
    pub fn status(&self) -> KsStreamAllocatorStatus {
        KsStreamAllocatorStatus {
            framing: *self.framing.raw(),
            allocated_frames: self.outstanding(),
            reserved: 0,
        }
    }

    /// Event counters.
    #[must_use]
    pub fn counters(&self) -> Counters {
        let mut counters = self.stats.read();
        for magazine in &self.magazines {
            let (allocations, frees) = magazine.counts();
            counters.allocations += allocations;
            counters.frees += frees;
        }
        counters
    }

    /// Frames out with clients: the per-processor counts summed while open, the exact
    /// count once close has taken its census ("Counting frames out"). Racy while frames
    /// move, exact at rest.
    fn outstanding(&self) -> u32 {
        if let Some(out) = self.rundown.outstanding() {
            return out;
        }
        let counters = self.counters();
        let out = counters.allocations.saturating_sub(counters.frees);
        let total = self.framing.frames();
        u32::try_from(out).map_or(total, |out| out.min(total))
    }

    /// A picture of the allocator (O(frames); for tests and diagnostics).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let total = self.framing.frames();
        #[allow(clippy::cast_possible_truncation)] // At most `total`.
        let free = (0..total).filter(|&i| !self.list.is_out(i)).count() as u32;
        let cached = self.cached_now();
        Snapshot {
            total,
            free,
            outstanding: self.outstanding(),
            cached,
            pending: self.pending_len.load(Ordering::SeqCst),
            closed: self.list.is_closed(),
            memory_released: self.memory.with(|m| m.is_none()),
            counters: self.counters(),
        }
    }

    #[allow(clippy::cast_possible_truncation)] // At most MAX_PENDING.
    const fn queue_len(shared: &Shared<P>) -> u32 {
        shared.queue.len() as u32
    }

    fn store_event_count(&self, shared: &Shared<P>) {
        #[allow(clippy::cast_possible_truncation)] // At most MAX_CLIENT_EVENTS.
        let count = shared.events.len() as u32;
        self.set_listeners(!TABLE_ARMED, count);
    }

    /// Sets the `mask` bits of `listeners` to `value`. Under the `shared` lock, which
    /// every writer holds: a load and a store, no read-modify-write needed.
    fn set_listeners(&self, mask: u32, value: u32) {
        // Relaxed: the lock orders the writers.
        let old = self.listeners.load(Ordering::Relaxed);
        // Release: pairs with the Acquire in `notify_armed`, which then sees a ready
        // event and the events vector.
        self.listeners
            .store(old & !mask | value & mask, Ordering::Release);
    }

    /// Takes the oldest request whose cancel routine we could take back, if open.
    fn take_oldest(&self, shared: &mut Shared<P>) -> Option<P::Request> {
        if self.list.is_closed() {
            return None;
        }
        self.take_oldest_any(shared)
    }

    fn take_oldest_any(&self, shared: &mut Shared<P>) -> Option<P::Request> {
        let request = shared.queue.take_first(|r| self.platform.disarm_cancel(r));
        self.pending_len
            .store(Self::queue_len(shared), Ordering::SeqCst);
        self.unblock_magazines(shared);
        request
    }

    /// Hands free frames to pending requests, oldest first, until one side runs out.
    fn service_pending(&self) {
        while self.finish_step(self.shared.with(|shared| self.service_step(shared))) {}
    }

    /// Under the queue lock: a free frame and the oldest request it goes to, or what
    /// putting the frame back released (`Live` when there was no frame or no request).
    fn service_step(&self, shared: &mut Shared<P>) -> Result<(P::Request, u32, u32), Released> {
        if shared.queue.is_empty() {
            return Err(Released::Live);
        }
        let (index, out) = self.take_frame().map_err(|_| Released::Live)?;
        if let Some(request) = self.take_oldest_any(shared) {
            return Ok((request, index, out));
        }
        // Every queued request is being cancelled: put the frame back. If that drains a
        // closed allocator, the memory goes after the lock is dropped (no pool call
        // under it).
        Err(self.put_back(index))
    }

    /// After the lock: completes the request a [`Self::service_step`] found a frame for
    /// (`true`), or releases the memory if putting the frame back drained it.
    fn finish_step(&self, step: Result<(P::Request, u32, u32), Released>) -> bool {
        match step {
            Ok((request, index, out)) => {
                self.stats.bump(Counter::Allocation);
                self.stats.saw_outstanding(out);
                self.platform
                    .complete_alloc(request, Ok(self.address(index)));
                true
            }
            Err(released) => {
                if released == Released::Drained {
                    self.release_memory();
                }
                false
            }
        }
    }

    fn release_memory(&self) {
        if let Some(memory) = self.memory.with(Option::take) {
            self.platform.free_nonpaged(memory);
            // The memory is back: so is its charge on the driver's budget.
            self.platform
                .frame_budget()
                .release(self.framing.total_bytes());
        }
    }

    /// Signals the free-frame notification to whoever asked for it. The check is
    /// inlined into every free; the signalling is not.
    #[inline]
    fn notify(&self) {
        // Relaxed: only a filter; `notify_armed` re-reads with Acquire.
        if self.listeners.load(Ordering::Relaxed) != 0 {
            self.notify_armed();
        }
    }

    #[inline(never)]
    fn notify_armed(&self) {
        // Acquire: pairs with the Release store that armed it.
        let listeners = self.listeners.load(Ordering::Acquire);
        if listeners & TABLE_ARMED != 0 {
            self.platform.set_event(&self.internal_event);
        }
        if listeners & !TABLE_ARMED != 0 {
            self.shared.with(|shared| {
                for event in &shared.events {
                    self.platform.signal_client(event);
                }
            });
        }
    }
}

impl<P: Platform> ProcessorCall for Engine<P> {
    fn run_on(&self, processor: usize) {
        self.move_magazine(processor);
    }
}

impl<P: Platform> Drop for Engine<P> {
    fn drop(&mut self) {
        // Nothing runs concurrently now: the Allocator flushed the processor calls,
        // which may have removed queued ones (`KeRemoveQueueDpc`) rather than run them,
        // so magazines may still hold frames. They are free frames: count them here.
        let cached = self.cached_now();
        let drained = match self.list.close() {
            // Not closed: the census close would take.
            Some(listed) => listed + cached == self.framing.frames(),
            // Closed: the census counted cached frames out; they come back here.
            None => {
                cached != 0 && self.rundown.release_many(cached) == Released::Drained
                    || self.rundown.is_drained()
            }
        };
        if drained {
            self.release_memory();
        } else if let Some(memory) = self.memory.with(Option::take) {
            // Frames are still out: the owner broke the rundown contract. Leaking the
            // block is the only choice that cannot turn into a use-after-free; its
            // budget charge stays, as the memory really is gone.
            core::mem::forget(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{processor_slots, MAX_PROCESSOR_SLOTS};

    #[test]
    fn no_processor_index_means_no_per_processor_slots() {
        assert_eq!(processor_slots(u32::MAX), 0, "wdm-nt's 'no index' sentinel");
        assert_eq!(processor_slots(MAX_PROCESSOR_SLOTS + 1), 0);
        assert_eq!(processor_slots(MAX_PROCESSOR_SLOTS), MAX_PROCESSOR_SLOTS);
        assert_eq!(processor_slots(2), 2);
        assert_eq!(processor_slots(0), 1);
    }
}
