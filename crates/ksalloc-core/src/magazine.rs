//! Per-processor magazines: a few free frames cached in front of the shared free list,
//! so a processor that frees and allocates again touches only its own cache line.
//!
//! A magazine is one word holding up to [`CAPACITY`] frame indices in [`FIELD_BITS`]-bit
//! fields, filled from field 0 up, and their count in the top two bits: a LIFO stack
//! whose top is field `count - 1`. One word means every change is
//! a single compare-exchange, and any processor can empty any magazine with one swap
//! ([`Magazine::take_all`]): that is how a pending ALLOC, a miss on the shared list and
//! close reach frames cached on other processors, with no IPI and no lock.
//!
//! Only the owning processor pushes and pops (at `DISPATCH_LEVEL`, inside
//! `Platform::with_processor`), so its compare-exchanges fail only when a `take_all`
//! raced them; the word's cache line stays on the owner otherwise. The two owner-only
//! counters beside it are plain load + store: no other processor writes them.
//!
//! When magazines are used at all, and how they stay out of a waiter's way, is the
//! allocator's rule (see `allocator`, "Magazines").

use crate::sync::{AtomicU64, Ordering};

/// Frames one magazine holds.
pub const CAPACITY: u32 = 3;
/// Bits per slot: every index below `framing::MAX_FRAMES` (2^20) fits.
pub const FIELD_BITS: u32 = 20;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
/// The count lives in the top two bits.
const COUNT_SHIFT: u32 = 62;
const ONE: u64 = 1 << COUNT_SHIFT;
const _: () = assert!(CAPACITY * FIELD_BITS <= COUNT_SHIFT && CAPACITY < 4);
const _: () = assert!(crate::framing::MAX_FRAMES as u64 - 1 <= FIELD_MASK);

/// Number of frames in a magazine word.
#[allow(clippy::cast_possible_truncation)] // Two bits.
const fn count(word: u64) -> u32 {
    (word >> COUNT_SHIFT) as u32
}

/// The frames a [`Magazine::take_all`] took, bottom first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken(u64);

impl Taken {
    /// Nothing taken.
    pub const EMPTY: Self = Self(0);
}

impl Iterator for Taken {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let n = count(self.0);
        if n == 0 {
            return None;
        }
        // Bottom first: take field 0, shift the rest down, one fewer in the count.
        #[allow(clippy::cast_possible_truncation)] // A 20-bit field.
        let index = (self.0 & FIELD_MASK) as u32;
        let fields = (self.0 & (ONE - 1)) >> FIELD_BITS;
        self.0 = u64::from(n - 1) << COUNT_SHIFT | fields;
        Some(index)
    }
}

/// One processor's magazine and its owner-only counters.
///
/// 128 bytes apart in an array, so two processors' fields (24 bytes) never share a
/// 64-byte line whatever the array's alignment. Padding rather than
/// `#[repr(align(64))]`: the driver's pool allocator guarantees 16-byte alignment only
/// (larger alignments are refused or, with wdk-alloc, not honoured).
#[repr(C)]
pub struct Magazine {
    word: AtomicU64,
    allocations: AtomicU64,
    frees: AtomicU64,
    _pad: [u64; 13],
}

const _: () = assert!(core::mem::size_of::<Magazine>() == 128);
const _: () = assert!(core::mem::align_of::<Magazine>() <= 16);

impl Default for Magazine {
    fn default() -> Self {
        Self::new()
    }
}

impl Magazine {
    /// An empty magazine.
    #[must_use]
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            _pad: [0; 13],
        }
    }

    /// Owner only: takes the top frame, or `None` if the magazine is empty.
    #[must_use = "a popped frame is the caller's"]
    pub fn pop(&self) -> Option<u32> {
        // Relaxed: a first guess for the CAS, which re-reads.
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let n = count(word);
            if n == 0 {
                return None;
            }
            let shift = (n - 1) * FIELD_BITS;
            // Acquire on success is what the pop needs: it pairs with the push that
            // published this frame, so the link word the caller writes next is ordered
            // after the pusher's. SeqCst because every write of the word is, which keeps
            // the handshakes' total order over one chain of SeqCst writes (and lets loom,
            // which orders SeqCst loads only against SeqCst stores, model them); on x86
            // and AArch64 the instruction is the same. Relaxed on failure: a take_all
            // emptied the word; retry.
            match self.word.compare_exchange_weak(
                word,
                (word & !(FIELD_MASK << shift)) - ONE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                #[allow(clippy::cast_possible_truncation)] // A 20-bit field.
                Ok(_) => return Some(((word >> shift) & FIELD_MASK) as u32),
                Err(seen) => word = seen,
            }
        }
    }

    /// Owner only: caches `index`; `false` if the magazine is full.
    #[must_use = "a frame the magazine refused is still the caller's"]
    pub fn push(&self, index: u32) -> bool {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            let n = count(word);
            if n == CAPACITY {
                return false;
            }
            let field = u64::from(index);
            debug_assert!(field <= FIELD_MASK, "index past MAX_FRAMES");
            // SeqCst on success: this store is the free side of two store-then-load
            // handshakes (with a pending ALLOC, and with close), which need one total
            // order with their `take_all`s (see `allocator`, "Magazines"). It is also
            // the Release that publishes the caller's write of the frame's link word.
            // Relaxed on failure: retry with the value.
            match self.word.compare_exchange_weak(
                word,
                (word | field << (n * FIELD_BITS)) + ONE,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Any processor: empties the magazine and returns what it held.
    #[must_use = "the taken frames are the caller's"]
    pub fn take_all(&self) -> Taken {
        // Check before swapping: most magazines are empty when a drain passes, and a
        // load keeps their cache lines shared. SeqCst (a plain load on x86), so the
        // check is in the handshakes' total order like the swap: a push it misses comes
        // later in that order and its own load sees our caller's store.
        if self.word.load(Ordering::SeqCst) == 0 {
            return Taken::EMPTY;
        }
        // SeqCst: the other half of the handshakes `push` describes; Acquire is what
        // makes the pushers' link-word writes visible to us.
        Taken(self.word.swap(0, Ordering::SeqCst))
    }

    /// Frames cached now (racy by nature; for STATUS and diagnostics).
    #[must_use]
    pub fn len(&self) -> u32 {
        count(self.word.load(Ordering::Relaxed))
    }

    /// Whether the magazine is empty now (racy by nature).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.word.load(Ordering::Relaxed) == 0
    }

    /// Owner only: counts a frame handed out on this processor.
    pub fn count_allocation(&self) {
        bump_owned(&self.allocations);
    }

    /// Owner only: counts a frame returned on this processor.
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
fn bump_owned(counter: &AtomicU64) {
    // Relaxed both: single writer, and the counter orders nothing.
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn lifo_up_to_capacity_then_refuses() {
        let m = Magazine::new();
        assert_eq!(m.pop(), None);
        let top = crate::framing::MAX_FRAMES - 1;
        for index in [0, 7, top] {
            assert!(m.push(index));
        }
        assert_eq!(m.len(), CAPACITY);
        assert!(!m.push(5), "full");
        assert_eq!(m.pop(), Some(top));
        assert_eq!(m.pop(), Some(7));
        assert!(m.push(9));
        assert_eq!(m.pop(), Some(9));
        assert_eq!(m.pop(), Some(0));
        assert_eq!(m.pop(), None);
        assert!(m.is_empty());
    }

    #[test]
    fn take_all_empties_and_yields_bottom_first() {
        let m = Magazine::new();
        assert_eq!(m.take_all().count(), 0);
        for index in [4, 0, 2] {
            assert!(m.push(index));
        }
        assert_eq!(m.take_all().collect::<Vec<_>>(), [4, 0, 2]);
        assert!(m.is_empty());
        assert_eq!(m.pop(), None);
    }

    #[test]
    fn owner_counters_add_up() {
        let m = Magazine::new();
        m.count_allocation();
        m.count_allocation();
        m.count_free();
        assert_eq!(m.counts(), (2, 1));
    }
}
