//! Per-processor slots: a magazine of free frames cached in front of the shared free
//! list, and the processor's event counters.
//!
//! A magazine is a small array of frame indices and their count, touched only by its
//! own processor: inside `Platform::with_processor` (at `DISPATCH_LEVEL`, so nothing
//! else runs on that processor meanwhile) or in that processor's processor call (a DPC
//! on Windows, which never runs during one of those sections). Every access is
//! therefore a plain load or store (`Relaxed` atomics compile to `mov`): no locked
//! instruction, no shared cache line.
//!
//! Another processor never reads or writes the array or the count. When it needs the
//! frames (an ALLOC is about to wait, the allocator closes) it *blocks* the magazine
//! (`gate`, the one word others write) and queues a processor call on the owner,
//! which moves the frames to the shared list (`allocator`, "Magazines"). That is the
//! price of plain stores: a remote taker racing a local pop needs either a locked
//! instruction on the owner's side or a way to stop the owner (Attiya et al., "Laws of
//! Order", POPL 2011), and a DPC is the kernel's way to stop a processor without
//! waiting for it.
//!
//! Frames in a magazine are *claimed* (their link word `CLAIMED`, see `free_list`): a
//! client's free took them back with the ownership compare-exchange, so a second free
//! of the same frame is refused, whichever processor it comes from.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Frames one magazine holds.
///
/// Chosen by measurement (`benches/PERFORMANCE.md`, "Magazine size"): the cost per
/// pair does not depend on it; a burst of allocations larger than it spills to the
/// shared list; and up to this many free frames per processor sit where only that
/// processor finds them cheaply.
pub const CAPACITY: u32 = 4;
const _: () = assert!(CAPACITY.is_power_of_two());

/// `gate` of a blocked magazine: far above any count, so each fast-path check is one
/// OR (or ADD) and one compare with `CAPACITY`.
const BLOCKED: u32 = 1 << 31;

/// One processor's magazine and its counters.
///
/// 128 bytes apart in an array, so two processors' fields never share a 64-byte line
/// whatever the array's alignment. Padding rather than `#[repr(align(64))]`: the
/// driver's pool allocator guarantees 16-byte alignment only.
///
/// Invariant: `count <= CAPACITY`; `frames[..count]` are claimed frames, each in no
/// other magazine and not on the list. Only the owner (see the module docs) writes
/// `count`, `frames` and the counters.
#[repr(C)]
pub struct Magazine {
    /// Frames cached (owner only).
    count: AtomicU32,
    /// Frames this magazine may hold (the pool's capacity, at most [`CAPACITY`]; 0
    /// in a pool without magazines). Set at creation.
    limit: u32,
    /// [`BLOCKED`] while the magazine must not cache or hand out frames (requests
    /// wait, the allocator closed, or the pool is below the magazine rule), else the
    /// headroom `CAPACITY - limit`. Written by anyone under the allocator's queue lock,
    /// read by the owner. Open, `count + gate < CAPACITY` is "room for one more" and,
    /// since then `top + gate < CAPACITY`, `top | gate < CAPACITY` is "a frame to pop"
    /// (OR never exceeds the sum): the pool's limit costs the fast path nothing.
    gate: AtomicU32,
    /// The cached frames, bottom first (owner only): each frame's index, and above it
    /// the position of its link word (`FreeList::position`), so handing it out again
    /// needs no index arithmetic.
    frames: [AtomicU64; CAPACITY as usize],
    /// Frames handed out on this processor (owner only).
    allocations: AtomicU64,
    /// Frames taken back on this processor (owner only).
    frees: AtomicU64,
}

/// A [`Magazine`] padded to its 128 bytes.
#[repr(C)]
pub struct Slot {
    magazine: Magazine,
    _pad: [u8; 128 - core::mem::size_of::<Magazine>()],
}

const _: () = assert!(core::mem::size_of::<Slot>() == 128);
const _: () = assert!(core::mem::align_of::<Slot>() <= 16);

impl core::ops::Deref for Slot {
    type Target = Magazine;
    fn deref(&self) -> &Magazine {
        &self.magazine
    }
}

impl Slot {
    /// A slot whose magazine holds up to `capacity` frames (at most [`CAPACITY`]); 0:
    /// a pool without magazines, blocked for good.
    ///
    /// # Panics
    /// If `capacity` is past [`CAPACITY`].
    #[must_use]
    pub fn new(capacity: u32) -> Self {
        assert!(capacity <= CAPACITY, "magazine capacity past CAPACITY");
        Self {
            magazine: Magazine {
                count: AtomicU32::new(0),
                limit: capacity,
                gate: AtomicU32::new(if capacity == 0 {
                    BLOCKED
                } else {
                    CAPACITY - capacity
                }),
                frames: core::array::from_fn(|_| AtomicU64::new(0)),
                allocations: AtomicU64::new(0),
                frees: AtomicU64::new(0),
            },
            _pad: [0; 128 - core::mem::size_of::<Magazine>()],
        }
    }
}

/// A cached frame: its index and its link word's position (`FreeList::position`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cached {
    /// The frame's index.
    pub index: u32,
    /// Where its link word lives.
    pub position: u32,
}

impl Cached {
    const fn pack(self) -> u64 {
        (self.position as u64) << 32 | self.index as u64
    }

    #[allow(clippy::cast_possible_truncation)] // Unpacking the halves we packed.
    const fn unpack(word: u64) -> Self {
        Self {
            index: word as u32,
            position: (word >> 32) as u32,
        }
    }
}

/// Frames taken out of a magazine by its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    frames: [u32; CAPACITY as usize],
    count: u32,
}

impl Taken {
    /// The frames, bottom first.
    #[must_use]
    pub fn frames(&self) -> &[u32] {
        &self.frames[..self.count as usize]
    }
}

// Every access below is Relaxed: a plain `mov`. The owner's accesses are ordered by
// running on one processor (program order there, and `with_processor` / the processor
// call never overlapping); what the owner publishes to others goes through the free
// list's compare-exchanges, which carry their own orderings.
impl Magazine {
    /// Owner only: takes the frame cached last, or `None` if the magazine is empty or
    /// blocked. The frame is still `CLAIMED`; the caller marks it out.
    #[inline]
    #[must_use = "a popped frame is the caller's"]
    pub fn pop(&self) -> Option<Cached> {
        // The top's position; an empty magazine wraps to u32::MAX. A blocked one hands
        // nothing out: its frames belong to the waiters (or to close), and the owner's
        // processor call moves them.
        let top = self.count.load(Ordering::Relaxed).wrapping_sub(1);
        if top | self.gate.load(Ordering::Relaxed) >= CAPACITY {
            return None;
        }
        self.count.store(top, Ordering::Relaxed);
        Some(Cached::unpack(
            self.frames[top as usize].load(Ordering::Relaxed),
        ))
    }

    /// Owner only: caches a claimed frame; `false` if the magazine is full or blocked
    /// (the frame is still the caller's).
    #[inline]
    #[must_use = "a frame the magazine refused is still the caller's"]
    pub fn push(&self, frame: Cached) -> bool {
        let count = self.count.load(Ordering::Relaxed);
        // Summed in 64 bits, so the compiler sees that `count < CAPACITY` follows (no
        // wrap) and drops the index's bounds check.
        if u64::from(count) + u64::from(self.gate.load(Ordering::Relaxed)) >= u64::from(CAPACITY) {
            return false;
        }
        self.frames[count as usize].store(frame.pack(), Ordering::Relaxed);
        self.count.store(count + 1, Ordering::Relaxed);
        true
    }

    /// Owner only (its processor call, or close's census with nothing running):
    /// empties the magazine, blocked or not.
    #[must_use = "the taken frames are the caller's"]
    pub fn take_all(&self) -> Option<Taken> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        self.count.store(0, Ordering::Relaxed);
        let mut taken = Taken {
            frames: [0; CAPACITY as usize],
            count,
        };
        for (to, from) in taken.frames.iter_mut().zip(&self.frames[..count as usize]) {
            *to = Cached::unpack(from.load(Ordering::Relaxed)).index;
        }
        Some(taken)
    }

    /// Any processor, under the allocator's queue lock: the owner caches and hands out
    /// nothing more until [`Self::unblock`]. The owner may not see it until its
    /// processor call has run (the caller queues one).
    pub fn block(&self) {
        // Relaxed: the processor call the caller queues next is what makes the owner
        // see it (queueing and running a DPC are ordered by the kernel's DPC queue
        // lock); before that, the owner acting on the old value is a frame cached or
        // handed out just before the block, which that call then moves.
        self.gate.store(BLOCKED, Ordering::Relaxed);
    }

    /// Any processor, under the allocator's queue lock: lets the owner cache again.
    pub fn unblock(&self) {
        // Relaxed: nothing is published; the owner caching a little later is harmless.
        self.gate.store(CAPACITY - self.limit, Ordering::Relaxed);
    }

    /// Frames it may hold.
    #[must_use]
    pub const fn capacity(&self) -> u32 {
        self.limit
    }

    /// Whether the magazine is blocked (racy by nature).
    #[must_use]
    pub fn is_blocked(&self) -> bool {
        self.gate.load(Ordering::Relaxed) == BLOCKED
    }

    /// Frames cached now (racy from another processor; exact for the owner).
    #[must_use]
    pub fn len(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the magazine holds no frame now (racy by nature).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Owner only: counts a frame handed out on this processor.
    #[inline]
    pub fn count_allocation(&self) {
        bump_owned(&self.allocations);
    }

    /// Owner only: counts a frame returned on this processor.
    #[inline]
    pub fn count_free(&self) {
        bump_owned(&self.frees);
    }

    /// `(allocations, frees)` counted here.
    #[must_use]
    pub fn counts(&self) -> (u64, u64) {
        (
            self.allocations.load(Ordering::Relaxed),
            self.frees.load(Ordering::Relaxed),
        )
    }
}

/// Adds one to a counter only its owning processor writes: a plain load and store (no
/// locked instruction); readers on other processors see some recent value.
#[inline]
fn bump_owned(counter: &AtomicU64) {
    // Relaxed both: single writer, and the counter orders nothing.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A frame whose link word sits at ten times its index (any position will do).
    const fn frame(index: u32) -> Cached {
        Cached {
            index,
            position: index * 10,
        }
    }

    #[test]
    fn lifo_up_to_capacity_then_refuses() {
        let m = Slot::new(CAPACITY);
        assert_eq!(m.pop(), None);
        for index in 0..CAPACITY {
            assert!(m.push(frame(index)));
        }
        assert_eq!(m.len(), CAPACITY);
        assert!(!m.push(frame(99)), "full");
        for index in (0..CAPACITY).rev() {
            assert_eq!(m.pop(), Some(frame(index)));
        }
        assert_eq!(m.pop(), None);
        assert!(m.is_empty());
    }

    #[test]
    fn take_all_empties_bottom_first() {
        let m = Slot::new(CAPACITY);
        assert_eq!(m.take_all(), None);
        for index in [4, 0, 2] {
            assert!(m.push(frame(index)));
        }
        assert_eq!(m.take_all().unwrap().frames(), [4, 0, 2]);
        assert!(m.is_empty());
        assert_eq!(m.pop(), None);
    }

    #[test]
    fn blocked_caches_and_hands_out_nothing_but_can_be_emptied() {
        let m = Slot::new(CAPACITY);
        assert!(m.push(frame(3)));
        m.block();
        assert!(m.is_blocked());
        assert!(!m.push(frame(5)));
        assert_eq!(m.pop(), None, "its frame is for the waiters");
        assert_eq!(m.take_all().unwrap().frames(), [3]);
        m.unblock();
        assert!(m.push(frame(5)));
        assert_eq!(m.pop(), Some(frame(5)));
        assert!(!Slot::new(0).push(frame(1)));
    }

    #[test]
    fn a_smaller_capacity_holds_only_that_many_also_after_a_block() {
        for capacity in 1..CAPACITY {
            let m = Slot::new(capacity);
            assert_eq!(m.capacity(), capacity);
            for round in 0..2 {
                for index in 0..capacity {
                    assert!(m.push(frame(index)), "round {round}");
                }
                assert!(!m.push(frame(99)), "full at {capacity}");
                for index in (0..capacity).rev() {
                    assert_eq!(m.pop(), Some(frame(index)));
                }
                assert_eq!(m.pop(), None);
                m.block();
                assert!(!m.push(frame(1)) && m.pop().is_none());
                m.unblock();
            }
        }
    }

    #[test]
    fn owner_counters_add_up() {
        let m = Slot::new(CAPACITY);
        m.count_allocation();
        m.count_allocation();
        m.count_free();
        assert_eq!(m.counts(), (2, 1));
    }
}
