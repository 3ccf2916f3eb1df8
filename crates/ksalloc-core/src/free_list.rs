//! The lock-free free list: a Treiber stack of frame indices with an ABA tag, plus the
//! per-frame ownership word that makes double and foreign frees harmless.
//!
//! `head` packs a tag, the depth (frames on the list) and the top index, 22 + 21 + 21
//! bits. Every successful pop or push bumps the tag, so a pop that read a stale head
//! fails its compare-exchange even if the same index is back on top at the same depth
//! (the ABA case): a stale reader would have to sleep across 2^22 list operations that
//! leave the depth where it was for that to wrap. NT's 32-bit SLIST header made the same
//! bet with 16 bits of sequence beside 16 of depth.
//!
//! The depth is what the allocator's peak statistic reads (frames off the list), and a
//! depth no list can have marks the list *closed* ([`FreeList::close`]): pops and
//! pushes fail from then on, and the closer learns how many frames were on it, in one
//! swap. That census is how the allocator switches from per-processor counting of frames
//! out to one exact shared count when it closes (`allocator`, "Counting frames out").
//!
//! `link[i]` is the next index while frame `i` is on the list, and [`OUT`] while a client
//! holds it. Returning a frame first compare-exchanges `link[i]` from `OUT` to [`CLAIMED`];
//! only one of two racing frees of the same frame can win, and a frame already on the
//! list never holds `OUT`, so neither a double free nor a forged index can put a frame on
//! the list twice. A frame in a per-processor magazine stays [`CLAIMED`]
//! (`magazine`), which a return refuses the same way.
//!
//! Link words are interleaved across cache lines (`FreeList::slot`): frames `i` and
//! `i + 1`, which two processors popping the list in turn usually get, have their
//! ownership words on different lines, so the processors' claim compare-exchanges do
//! not bounce one line between them.
//!
//! No locks and no allocation after construction; every operation is O(1) apart from
//! compare-exchange retries under contention, so it is callable at `DISPATCH_LEVEL`.

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use alloc::vec::Vec;

use crate::platform::OutOfMemory;

/// End of list.
pub const NIL: u32 = u32::MAX;
/// `link` value of a frame held by a client.
pub const OUT: u32 = u32::MAX - 1;
/// `link` value of a frame between its owner-check and its push.
pub const CLAIMED: u32 = u32::MAX - 2;

/// Why a returned index was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnError {
    /// The index names no frame of this list.
    OutOfRange,
    /// The frame is not held by a client (already free: a double free).
    NotOut,
}

/// Why a pop found no frame, or a push could not list one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlisted {
    /// The list is empty (pop).
    Empty,
    /// The list is closed (pop and push): the frame stays the caller's.
    Closed,
}

/// Bits of the head's index and depth fields.
const FIELD_BITS: u32 = 21;
/// The head's index field; all ones is the empty list's top (any NIL-ish link masks
/// to it).
const TOP_MASK: u64 = (1 << FIELD_BITS) - 1;
/// One frame in the head's depth field.
const DEPTH_ONE: u64 = 1 << FIELD_BITS;
/// One step of the head's tag, in the top 22 bits (it wraps off the top).
const TAG_ONE: u64 = 1 << (2 * FIELD_BITS);
/// The depth field of a closed list (no list is that deep).
const CLOSED_DEPTH: u32 = (1 << FIELD_BITS) - 1;
const DEPTH_MASK: u64 = (CLOSED_DEPTH as u64) << FIELD_BITS;
const _: () = assert!(crate::framing::MAX_FRAMES < CLOSED_DEPTH);

/// A head: `depth` frames, `top` on top (`NIL`: none), tag 0.
const fn head_of(depth: u32, top: u32) -> u64 {
    (depth as u64) << FIELD_BITS | (top as u64 & TOP_MASK)
}

/// The depth field of a head.
#[allow(clippy::cast_possible_truncation)] // A 21-bit field.
const fn depth_of(head: u64) -> u32 {
    ((head & DEPTH_MASK) >> FIELD_BITS) as u32
}

/// A closed list's head.
const CLOSED_HEAD: u64 = head_of(CLOSED_DEPTH, NIL);

/// Link words per 64-byte cache line.
const PER_LINE: u32 = 16;

/// Fewest cache lines a list of that many frames or more spreads its link words over.
/// With 16 words per line a 64-frame pool would have 4 lines, and two processors each
/// holding a burst of 4 frames would share all of them (callgrind counted nothing, the
/// clock 4x: 30 -> 121 ns per burst of 4 with two threads, `ksalloc-magazine-burst4`).
const MIN_LINES: u32 = 64;

/// A lock-free stack of frame indices `0..len`.
///
/// Invariant: `link` has `PER_LINE << line_bits` words, at least `len`; index `i` lives
/// at `slot(i)`, one word per index.
pub struct FreeList {
    head: AtomicU64,
    link: Vec<AtomicU32>,
    len: u32,
    /// log2 of the number of cache lines the link words spread over.
    line_bits: u32,
    /// That number less one.
    lines_mask: u32,
}

impl FreeList {
    /// A list holding every index `0..len`, lowest on top.
    ///
    /// # Errors
    /// [`OutOfMemory`] if the link array cannot be allocated.
    ///
    /// # Panics
    /// If `len >= 2^21 - 1` (the caller validates frame counts far below that).
    pub fn new(len: u32) -> Result<Self, OutOfMemory> {
        assert!(len < CLOSED_DEPTH, "frame count past the head's fields");
        // Lines rounded up to a power of two, so `slot` is two shifts and a mask: at
        // most twice the words `len` needs (8 bytes per frame at worst), and for a pool
        // of up to MIN_LINES frames a line per frame (4 KiB at most), so frames two
        // processors hold at once do not share a line even when there are few of them.
        let line_bits = len
            .div_ceil(PER_LINE)
            .max(len.min(MIN_LINES))
            .next_power_of_two()
            .trailing_zeros();
        let words = PER_LINE << line_bits;
        let mut link = Vec::new();
        link.try_reserve_exact(words as usize)
            .map_err(|_| OutOfMemory)?;
        // Word `s` holds index `(s mod 16) * lines + s div 16` (the inverse of `slot`):
        // its successor on the list, or NIL past the last index and in the padding.
        // Built with `AtomicU32::new`, not stores: plain initialisation, one pass.
        link.extend((0..words).map(|s| {
            let index = ((s % PER_LINE) << line_bits) | (s / PER_LINE);
            AtomicU32::new(if index + 1 < len { index + 1 } else { NIL })
        }));
        Ok(Self {
            head: AtomicU64::new(head_of(len, if len == 0 { NIL } else { 0 })),
            link,
            len,
            line_bits,
            lines_mask: (1 << line_bits) - 1,
        })
    }

    /// Where index `i`'s link word lives: consecutive indices on consecutive cache
    /// lines (`i mod lines` picks the line, `i div lines` the word in it).
    const fn slot(&self, index: u32) -> usize {
        (((index & self.lines_mask) * PER_LINE) | (index >> self.line_bits)) as usize
    }

    /// Index `i`'s link word (`i < len`).
    #[inline]
    fn word(&self, index: u32) -> &AtomicU32 {
        &self.link[self.slot(index)]
    }

    /// Number of indices the list manages.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // `new` takes a u32 length.
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Whether the list manages no index at all.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes the top index and marks it held; returns it with the frames left on the
    /// list.
    ///
    /// # Errors
    /// [`Unlisted::Empty`] or [`Unlisted::Closed`].
    #[inline]
    pub fn pop(&self) -> Result<(u32, u32), Unlisted> {
        // SeqCst (Acquire would do for the list itself: it pairs with the push that
        // published this head, so the link read below is the one that push wrote):
        // an empty list returns without a CAS, and the allocator's handshake needs this
        // load in the same total order as the free side's push and `pending_len` load.
        let mut head = self.head.load(Ordering::SeqCst);
        loop {
            #[allow(clippy::cast_possible_truncation)] // A 21-bit field.
            let index = (head & TOP_MASK) as u32;
            // A closed list's top is NIL too: one test for both, told apart after.
            if u64::from(index) == TOP_MASK {
                return Err(if head & DEPTH_MASK == DEPTH_MASK {
                    Unlisted::Closed
                } else {
                    Unlisted::Empty
                });
            }
            let link = self.word(index);
            // Relaxed: if `index` is still on top when the CAS succeeds, nobody has
            // written its link since the push we synchronised with; if it is not, the
            // tag has moved and the CAS fails, whatever we read here.
            let next = link.load(Ordering::Relaxed);
            // SeqCst on success: the pop takes part in the allocator's
            // "free pushes then checks pending / ALLOC queues then pops" handshake,
            // which needs one total order (see `allocator`). Acquire on failure: the
            // new head's link must be visible to the retry.
            // Tag up, depth down (neither field carries into the next), new top.
            let popped = head.wrapping_add(TAG_ONE).wrapping_sub(DEPTH_ONE);
            match self.head.compare_exchange_weak(
                head,
                popped & !TOP_MASK | u64::from(next) & TOP_MASK,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Relaxed: only the holder touches `link[index]` until it returns
                    // the frame; the return's CAS is what other threads contend on.
                    link.store(OUT, Ordering::Relaxed);
                    return Ok((index, depth_of(popped)));
                }
                Err(current) => head = current,
            }
        }
    }

    /// Closes the list: every later pop and push fails with [`Unlisted::Closed`].
    /// Returns how many frames were on it (they stay the closer's: none can be popped
    /// again), or `None` if it was closed already.
    pub fn close(&self) -> Option<u32> {
        // SeqCst: one total order with the pops and pushes (all SeqCst RMWs of `head`),
        // so each of them lands wholly before the close (its frame counted as listed or
        // not) or fails on CLOSED; and with the allocator's `is_closed` loads.
        let depth = depth_of(self.head.swap(CLOSED_HEAD, Ordering::SeqCst));
        (depth != CLOSED_DEPTH).then_some(depth)
    }

    /// Whether [`Self::close`] has run.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        // SeqCst (a plain load on x86): in the total order of `close`.
        self.head.load(Ordering::SeqCst) & DEPTH_MASK == DEPTH_MASK
    }

    /// Checks that `index` is a frame a client holds and claims it for [`Self::push`].
    ///
    /// # Errors
    /// [`ReturnError::OutOfRange`] for an index past the end, [`ReturnError::NotOut`]
    /// when the frame is not held (free already, or being returned by someone else).
    pub fn claim(&self, index: u32) -> Result<(), ReturnError> {
        if index >= self.len {
            return Err(ReturnError::OutOfRange);
        }
        self.claim_at(self.position(index))
    }

    /// Marks a claimed index as held again without pushing it (the frame went straight
    /// to a pending request).
    pub fn unclaim(&self, index: u32) {
        // Relaxed: the index stays private to its new holder.
        self.word(index).store(OUT, Ordering::Relaxed);
    }

    /// Where index `i`'s link word lives (`i < len`), for a caller that keeps it
    /// beside the index to skip the arithmetic next time (a magazine).
    #[inline]
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // Below the word count, a u32.
    pub const fn position(&self, index: u32) -> u32 {
        self.slot(index) as u32
    }

    /// [`Self::claim`] for a frame whose link word is at `position` ([`Self::position`]
    /// of an index the caller has range-checked: the allocator's `index_of`): the
    /// free's hot path, without the check.
    ///
    /// # Errors
    /// [`ReturnError::NotOut`] when the frame is not held (a double free).
    ///
    /// # Panics
    /// If `position` lies past the link words (a position of an index below `len`
    /// never does).
    #[inline]
    pub fn claim_at(&self, position: u32) -> Result<(), ReturnError> {
        // Acquire on success: orders the holder's writes to the frame before whatever
        // the next owner does after popping it. Relaxed on failure: nothing is read.
        self.link[position as usize]
            .compare_exchange(OUT, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| ReturnError::NotOut)
    }

    /// Marks the claimed frame whose link word is at `position` as held by a client
    /// (the caller owns it: just taken from a magazine).
    ///
    /// # Panics
    /// As [`Self::claim_at`].
    #[inline]
    pub fn set_out_at(&self, position: u32) {
        // Relaxed: only the holder touches the word until it returns the frame, and the
        // return's compare-exchange is what other processors contend on.
        self.link[position as usize].store(OUT, Ordering::Relaxed);
    }

    /// The link word of a frame the caller owns (chained to be listed).
    #[inline]
    #[must_use]
    pub fn next(&self, index: u32) -> u32 {
        // Relaxed: the caller owns the frame; whoever handed it over (a list push's
        // Release, `with_processor`'s exclusivity) ordered the write before us.
        self.word(index).load(Ordering::Relaxed)
    }

    /// Sets the link word of a frame the caller owns (off the list, not out).
    #[inline]
    pub fn set_next(&self, index: u32, next: u32) {
        // Relaxed: the frame is private to the caller; handing it on (a list push) is
        // the Release that publishes this store.
        self.word(index).store(next, Ordering::Relaxed);
    }

    /// Pushes an index claimed with [`Self::claim`].
    ///
    /// # Errors
    /// [`Unlisted::Closed`]: the list is closed; the frame stays the caller's.
    #[inline]
    pub fn push(&self, index: u32) -> Result<(), Unlisted> {
        self.push_at(self.position(index), index)
    }

    /// [`Self::push`] of a claimed frame whose link word is at `position`
    /// ([`Self::position`]), skipping the index arithmetic.
    ///
    /// # Errors
    /// [`Unlisted::Closed`]: the list is closed; the frame stays the caller's.
    #[inline]
    pub fn push_at(&self, position: u32, index: u32) -> Result<(), Unlisted> {
        let slot = &self.link[position as usize];
        debug_assert_eq!(
            slot.load(Ordering::Relaxed),
            CLAIMED,
            "push of an unclaimed frame"
        );
        self.push_linked(slot, index, 1)
    }

    /// Pushes `count` frames the caller owns, chained from `top` through their link
    /// words (frames taken from a magazine), in one compare-exchange: the list then
    /// holds them in the same order above its old top.
    ///
    /// # Errors
    /// [`Unlisted::Closed`]: the list is closed; the frames stay the caller's.
    pub fn push_chain(&self, top: u32, count: u32) -> Result<(), Unlisted> {
        let mut bottom = top;
        for _ in 1..count {
            bottom = self.next(bottom);
        }
        self.push_linked(self.word(bottom), top, count)
    }

    /// Links `bottom_link` (the link word of the bottom of `count` chained frames from
    /// `top`) to the head, and swings the head to `top`.
    #[inline]
    fn push_linked(&self, bottom_link: &AtomicU32, top: u32, count: u32) -> Result<(), Unlisted> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head & DEPTH_MASK == DEPTH_MASK {
                return Err(Unlisted::Closed);
            }
            // Relaxed: published by the Release half of the CAS below. The empty
            // list's top field (all ones) is a NIL link: `pop` masks links the same way.
            #[allow(clippy::cast_possible_truncation)] // A 21-bit field.
            bottom_link.store((head & TOP_MASK) as u32, Ordering::Relaxed);
            // SeqCst on success (Release is the part pop's Acquire needs; SeqCst for the
            // allocator handshake and `close`). Relaxed on failure: we only retry with
            // the value.
            // Tag up, depth up by `count` (below CLOSED_DEPTH: at most MAX_FRAMES
            // frames), new top.
            let pushed = head.wrapping_add(TAG_ONE) + u64::from(count) * DEPTH_ONE;
            match self.head.compare_exchange_weak(
                head,
                pushed & !TOP_MASK | u64::from(top),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => head = current,
            }
        }
    }

    /// Whether a frame is held by a client (for status and tests; racy by nature).
    #[must_use]
    pub fn is_out(&self, index: u32) -> bool {
        index < self.len && self.word(index).load(Ordering::Relaxed) == OUT
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pops_every_index_once_then_runs_dry() {
        let list = FreeList::new(4).unwrap();
        let mut got: Vec<u32> = core::iter::from_fn(|| list.pop().ok().map(|(i, _)| i)).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
        assert_eq!(list.pop(), Err(Unlisted::Empty));
    }

    #[test]
    fn returned_index_comes_back_lifo() {
        let list = FreeList::new(3).unwrap();
        let (a, _) = list.pop().unwrap();
        let (b, depth) = list.pop().unwrap();
        assert_eq!(depth, 1);
        list.claim(a).unwrap();
        list.push(a).unwrap();
        list.claim(b).unwrap();
        list.push(b).unwrap();
        assert_eq!(list.pop(), Ok((b, 2)));
        assert_eq!(list.pop(), Ok((a, 1)));
    }

    #[test]
    fn link_words_of_neighbouring_frames_sit_on_different_lines() {
        // Miri interprets every atomic: the big pools only natively.
        let lens: &[u32] = if cfg!(miri) {
            &[1, 2, 15, 16, 17, 100]
        } else {
            &[1, 2, 15, 16, 17, 100, 4096, 65_536]
        };
        for &len in lens {
            let list = FreeList::new(len).unwrap();
            let mut slots: Vec<usize> = (0..len).map(|i| list.slot(i)).collect();
            assert!(slots.iter().all(|&s| s < list.link.len()));
            if len > PER_LINE {
                assert!((1..len).all(|i| list.slot(i) / 16 != list.slot(i - 1) / 16));
            }
            slots.sort_unstable();
            slots.dedup();
            assert_eq!(slots.len(), len as usize, "one word per index");
            let spread = (len.min(MIN_LINES).next_power_of_two() * PER_LINE) as usize;
            assert!(list.link.len() <= (2 * (len as usize).next_multiple_of(16)).max(spread));
            if len <= MIN_LINES {
                assert!((0..len).all(|i| list.slot(i) % 16 == 0), "a line per frame");
            }
            let mut got: Vec<u32> =
                core::iter::from_fn(|| list.pop().ok().map(|(i, _)| i)).collect();
            got.sort_unstable();
            assert_eq!(got, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn double_and_foreign_returns_are_refused() {
        let list = FreeList::new(2).unwrap();
        let (a, _) = list.pop().unwrap();
        assert_eq!(list.claim(a), Ok(()));
        list.push(a).unwrap();
        assert_eq!(list.claim(a), Err(ReturnError::NotOut));
        assert_eq!(list.claim(7), Err(ReturnError::OutOfRange));
        assert_eq!(list.claim(1), Err(ReturnError::NotOut), "never handed out");
        let mut got: Vec<u32> = core::iter::from_fn(|| list.pop().ok().map(|(i, _)| i)).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1], "the list was not corrupted");
    }

    #[test]
    fn close_counts_the_listed_frames_and_refuses_everything_after() {
        let list = FreeList::new(3).unwrap();
        let (a, _) = list.pop().unwrap();
        assert!(!list.is_closed());
        assert_eq!(list.close(), Some(2));
        assert!(list.is_closed());
        assert_eq!(list.close(), None, "closes once");
        assert_eq!(list.pop(), Err(Unlisted::Closed));
        list.claim(a).unwrap();
        assert_eq!(list.push(a), Err(Unlisted::Closed));
        assert_eq!(list.push_chain(a, 1), Err(Unlisted::Closed));
        assert_eq!(FreeList::new(0).unwrap().pop(), Err(Unlisted::Empty));
    }

    #[test]
    fn a_chain_lands_in_order_above_the_old_top() {
        let list = FreeList::new(4).unwrap();
        let taken: Vec<u32> = core::iter::from_fn(|| list.pop().ok().map(|(i, _)| i)).collect();
        let [a, b, c, d] = taken[..] else {
            panic!("four frames")
        };
        list.claim(d).unwrap();
        list.push(d).unwrap();
        // c -> b -> a, as a magazine's frames are chained to be listed.
        for (frame, next) in [(a, NIL), (b, a), (c, b)] {
            list.claim_at(list.position(frame)).unwrap();
            list.set_next(frame, next);
        }
        list.push_chain(c, 3).unwrap();
        let order: Vec<(u32, u32)> = core::iter::from_fn(|| list.pop().ok()).collect();
        assert_eq!(order, [(c, 3), (b, 2), (a, 1), (d, 0)]);
    }
}
