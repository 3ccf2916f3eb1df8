//! Counters an allocator keeps for STATUS and diagnostics.
//!
//! The two counted on every pair, allocations and frees, are per processor: each
//! processor's slot (`magazine::Magazine`) counts them with a plain load and store inside
//! `with_processor`, and `Engine::counters` sums them with the cells here. These
//! shared cells count the rest: the cold events (pends, cancels, refused frees, failed
//! allocations), the frames handed straight to a pending request, and the peak (written
//! only when it rises).
//!
//! Relaxed atomics: each counter is a statistic, not a synchronisation point; readers
//! get a value that was true at some moment during the read.

use crate::sync::{AtomicU64, Ordering};

/// Event counters, on cache lines of their own.
///
/// They must not share a line with the flags every pair reads (the peak's load is on
/// the shared path). Padding on both sides rather than `#[repr(align(64))]`, which
/// the driver's 16-byte-aligned pool blocks could not hold.
#[derive(Default)]
#[repr(C)]
pub struct Stats {
    _before: [u64; 8],
    allocations: AtomicU64,
    frees: AtomicU64,
    pends: AtomicU64,
    cancels: AtomicU64,
    rejected_frees: AtomicU64,
    failed_allocations: AtomicU64,
    peak_outstanding: AtomicU64,
    _after: [u64; 8],
}

const _: () = assert!(core::mem::align_of::<Stats>() <= 16);

/// A copy of the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed out (table, ALLOC at once, or to a pending ALLOC).
    pub allocations: u64,
    /// Frames accepted back.
    pub frees: u64,
    /// ALLOC requests that pended.
    pub pends: u64,
    /// Pending ALLOC requests cancelled (by the requestor, or by close).
    pub cancels: u64,
    /// Frees refused: foreign pointer, misaligned, or already free.
    pub rejected_frees: u64,
    /// Table allocations that failed because no frame was free.
    pub failed_allocations: u64,
    /// Most frames out at once.
    pub peak_outstanding: u64,
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// See [`Counters::allocations`].
    Allocation,
    /// See [`Counters::frees`].
    Free,
    /// See [`Counters::pends`].
    Pend,
    /// See [`Counters::cancels`].
    Cancel,
    /// See [`Counters::rejected_frees`].
    RejectedFree,
    /// See [`Counters::failed_allocations`].
    FailedAllocation,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Allocation => &self.allocations,
            Counter::Free => &self.frees,
            Counter::Pend => &self.pends,
            Counter::Cancel => &self.cancels,
            Counter::RejectedFree => &self.rejected_frees,
            Counter::FailedAllocation => &self.failed_allocations,
        };
        cell.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `outstanding` frames are out now.
    pub fn saw_outstanding(&self, outstanding: u32) {
        let outstanding = u64::from(outstanding);
        // Load first: once the peak is reached, a plain load (no locked instruction, no
        // stolen cache line) is all most allocations pay.
        if outstanding > self.peak_outstanding.load(Ordering::Relaxed) {
            self.peak_outstanding
                .fetch_max(outstanding, Ordering::Relaxed);
        }
    }

    /// Reads every counter.
    #[must_use]
    pub fn read(&self) -> Counters {
        Counters {
            allocations: self.allocations.load(Ordering::Relaxed),
            frees: self.frees.load(Ordering::Relaxed),
            pends: self.pends.load(Ordering::Relaxed),
            cancels: self.cancels.load(Ordering::Relaxed),
            rejected_frees: self.rejected_frees.load(Ordering::Relaxed),
            failed_allocations: self.failed_allocations.load(Ordering::Relaxed),
            peak_outstanding: self.peak_outstanding.load(Ordering::Relaxed),
        }
    }
}
