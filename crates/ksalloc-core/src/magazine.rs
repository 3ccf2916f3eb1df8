//! Per-processor slots: a magazine of free frames cached in front of the shared free
//! list, and the processor's event counters.
//!
//! A magazine is a LIFO stack of frames threaded through the frames' own link words
//! (the free list's, see `free_list`), headed by one word: `count << 32 | top`. Only
//! the owning processor pushes and pops (at `DISPATCH_LEVEL`, inside
//! `Platform::with_processor`); any processor can take the whole stack with one
//! read-modify-write of the head word ([`Magazine::take_all`], [`Magazine::block`]).
//! That is how a pending ALLOC, a miss on the shared list and close reach frames cached
//! on other processors, with no IPI and no lock.
//!
//! Why the owner's push and pop are each a locked compare-exchange although only the
//! owner writes a frame into the stack: a taker on another processor may empty the word
//! at any moment. A plain store by the owner could then write back frames the taker
//! already took (a lost update), and a plain pop could hand out the frame the taker is
//! moving to the list. Avoiding that without a read-modify-write needs a store-load
//! fence on the owner's side (Attiya et al., "Laws of Order", POPL 2011), which costs
//! the same. What the compare-exchange does not need is a tag: only the owner pushes,
//! so while it pops nobody can put the same `(count, top)` back (no ABA).
//!
//! A magazine is *blocked* ([`BLOCKED`]) while ALLOC requests wait and after close:
//! pushes and pops fail on it, so the owner's fast paths need no separate check of the
//! queue or of CLOSED. Blocking swaps the word, so a push either lands before it (and
//! the blocker takes the frame) or fails on it (and the free takes the shared path,
//! which serves the waiter): one read-modify-write order on one word decides.
//!
//! The counters beside the word are written only by the owning processor: a plain load
//! and store each, summed on read.

use crate::free_list::FreeList;
use crate::sync::{AtomicU64, Ordering};

/// Frames one magazine holds.
///
/// Chosen by measurement (`benches/PERFORMANCE.md`, "Magazine size"): the cost per
/// pair does not depend on it; a burst of allocations larger than it spills to the
/// shared list; and up to this many free frames per processor sit where only that
/// processor finds them cheaply.
pub const CAPACITY: u32 = 4;

/// The stack's top index when it is empty.
const NIL: u32 = u32::MAX;
/// An empty magazine.
const EMPTY: u64 = NIL as u64;
/// A blocked magazine: count `u32::MAX`, so both "empty?" and "full?" fail on it.
pub const BLOCKED: u64 = u64::MAX;

const fn pack(count: u32, top: u32) -> u64 {
    (count as u64) << 32 | top as u64
}

#[allow(clippy::cast_possible_truncation)] // Unpacking the halves we packed.
const fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// Frames taken off a magazine: `count` frames from `top` down the link words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    /// The top frame.
    pub top: u32,
    /// How many frames.
    pub count: u32,
}

impl Stack {
    /// The stack a taken word held, if any.
    const fn of(word: u64) -> Option<Self> {
        let (count, top) = unpack(word);
        if count == 0 || word == BLOCKED {
            None
        } else {
            Some(Self { top, count })
        }
    }
}

/// One processor's magazine and its owner-only counters.
///
/// 128 bytes apart in an array, so two processors' fields (24 bytes) never share a
/// 64-byte line whatever the array's alignment. Padding rather than
/// `#[repr(align(64))]`: the driver's pool allocator guarantees 16-byte alignment only.
#[repr(C)]
pub struct Magazine {
    word: AtomicU64,
    allocations: AtomicU64,
    frees: AtomicU64,
    _pad: [u64; 13],
}

const _: () = assert!(core::mem::size_of::<Magazine>() == 128);
const _: () = assert!(core::mem::align_of::<Magazine>() <= 16);

impl Magazine {
    /// A magazine, blocked (`true`) or empty. Small pools keep theirs blocked for good:
    /// the slot then only holds counters.
    #[must_use]
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub fn new(blocked: bool) -> Self {
        Self {
            word: AtomicU64::new(if blocked { BLOCKED } else { EMPTY }),
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            _pad: [0; 13],
        }
    }

    /// Owner only: takes the top frame and marks it held by a client, or `None` if the
    /// magazine is empty or blocked.
    #[inline]
    #[must_use = "a popped frame is the caller's"]
    pub fn pop(&self, list: &FreeList) -> Option<u32> {
        // Relaxed: a first guess for the compare-exchange, which re-reads.
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let (count, top) = unpack(word);
            // Empty (0) and blocked (u32::MAX) both land above CAPACITY - 1.
            if count.wrapping_sub(1) >= CAPACITY {
                return None;
            }
            let link = list.link(top);
            // Relaxed: the owner wrote this link (pushing `top`), on this processor,
            // which `with_processor` orders before us.
            let next = link.load(Ordering::Relaxed);
            // Acquire on success: pairs with the Release of the push that published
            // `top` (on this processor already ordered; free on x86 and AArch64, where
            // the locked instruction is the same). Relaxed on failure: a taker emptied
            // or blocked the word; look again.
            match self.word.compare_exchange_weak(
                word,
                pack(count - 1, next),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // Relaxed: the frame is ours now; only its holder touches the word
                    // until the return's compare-exchange.
                    link.store(crate::free_list::OUT, Ordering::Relaxed);
                    return Some(top);
                }
                Err(seen) => word = seen,
            }
        }
    }

    /// Owner only: caches frame `index`, which the caller has just taken from a client
    /// with `claim`, and whose link word `claim` set to the top this push read (`top`
    /// from [`Self::peek`]). `false`: the magazine is full or blocked, or changed since
    /// the peek; the frame is still the caller's, its link word holding a stale top.
    #[inline]
    #[must_use = "a frame the magazine refused is still the caller's"]
    pub fn push(&self, peeked: u64, index: u32) -> bool {
        let (count, _) = unpack(peeked);
        // Release on success: publishes the frame's link word (the chain a taker walks)
        // to the Acquire of `take_all` / `block`. Acquire on failure: if a blocker's
        // swap is what we see, its caller's `pending_len` store is then visible to the
        // slow path we take next.
        self.word
            .compare_exchange(
                peeked,
                pack(count + 1, index),
                Ordering::Release,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Owner only: the word a push would replace, and the top the pushed frame must
    /// link to; `None` if the magazine is full or blocked.
    #[inline]
    #[must_use]
    pub fn peek(&self) -> Option<(u64, u32)> {
        // Relaxed: the guess `push` confirms with its compare-exchange.
        let word = self.word.load(Ordering::Relaxed);
        let (count, top) = unpack(word);
        (count < CAPACITY).then_some((word, top))
    }

    /// Any processor: empties the magazine, unless it is blocked, and returns what it
    /// held.
    #[must_use = "the taken frames are the caller's"]
    pub fn take_all(&self) -> Option<Stack> {
        // Relaxed: a first guess (most magazines are empty when a drain passes, and a
        // load keeps their lines shared).
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            Stack::of(word)?;
            // Acquire on success: pairs with the pushes' Release, so the links we walk
            // are the ones the owner wrote. Relaxed on failure: retry with the value.
            match self
                .word
                .compare_exchange_weak(word, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Stack::of(word),
                Err(seen) => word = seen,
            }
        }
    }

    /// Any processor: blocks the magazine and returns what it held. Called under the
    /// allocator's queue lock (see `allocator`, "Magazines").
    #[must_use = "the taken frames are the caller's"]
    pub fn block(&self) -> Option<Stack> {
        // AcqRel: Acquire as in `take_all`; Release so a push failing on BLOCKED (its
        // Acquire failure load) sees what the blocker wrote before (`pending_len`,
        // CLOSED).
        Stack::of(self.word.swap(BLOCKED, Ordering::AcqRel))
    }

    /// Any processor: unblocks the magazine (empty). Under the queue lock, which every
    /// block also holds, so a block and an unblock never interleave.
    pub fn unblock(&self) {
        // Relaxed: publishes nothing (an empty magazine); a CAS so a magazine that was
        // never blocked (raced by nothing, under the lock) stays as it is.
        let _ = self
            .word
            .compare_exchange(BLOCKED, EMPTY, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Frames cached now (racy by nature; for STATUS and diagnostics).
    #[must_use]
    pub fn len(&self) -> u32 {
        Stack::of(self.word.load(Ordering::Relaxed)).map_or(0, |s| s.count)
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

    /// Pushes `index` the way the allocator does: peek, link, push.
    fn cache(m: &Magazine, list: &FreeList, index: u32) -> bool {
        let Some((word, top)) = m.peek() else {
            return false;
        };
        list.set_next(index, top);
        m.push(word, index)
    }

    #[test]
    fn lifo_up_to_capacity_then_refuses() {
        let list = FreeList::new(16).unwrap();
        let m = Magazine::new(false);
        assert_eq!(m.pop(&list), None);
        for index in 0..CAPACITY {
            assert!(cache(&m, &list, index));
        }
        assert_eq!(m.len(), CAPACITY);
        assert!(!cache(&m, &list, 9), "full");
        for index in (0..CAPACITY).rev() {
            assert_eq!(m.pop(&list), Some(index));
        }
        assert_eq!(m.pop(&list), None);
        assert!(m.is_empty());
    }

    #[test]
    fn take_all_empties_and_yields_the_stack() {
        let list = FreeList::new(16).unwrap();
        let m = Magazine::new(false);
        assert_eq!(m.take_all(), None);
        for index in [4, 0, 2] {
            assert!(cache(&m, &list, index));
        }
        assert_eq!(m.take_all(), Some(Stack { top: 2, count: 3 }));
        assert_eq!((list.next(2), list.next(0)), (0, 4));
        assert!(m.is_empty());
        assert_eq!(m.pop(&list), None);
    }

    #[test]
    fn blocked_refuses_everything_until_unblocked() {
        let list = FreeList::new(16).unwrap();
        let m = Magazine::new(false);
        assert!(cache(&m, &list, 3));
        assert_eq!(m.block(), Some(Stack { top: 3, count: 1 }));
        assert!(!cache(&m, &list, 5));
        assert_eq!(m.pop(&list), None);
        assert_eq!(m.take_all(), None);
        assert_eq!(m.len(), 0);
        m.unblock();
        assert!(cache(&m, &list, 5));
        assert_eq!(m.pop(&list), Some(5));
        assert!(Magazine::new(true).peek().is_none());
    }

    #[test]
    fn owner_counters_add_up() {
        let m = Magazine::new(false);
        m.count_allocation();
        m.count_allocation();
        m.count_free();
        assert_eq!(m.counts(), (2, 1));
    }
}
