//! Rundown state of an allocator: how many frames clients hold, and whether it is closed.
//!
//! One word: bit 63 is `CLOSED`, the low bits count frames out with clients (including
//! frames on their way to a pending request). Taking a frame acquires a reference unless
//! the allocator is closed; returning one releases it. Frame memory may be released
//! exactly when the word reaches `CLOSED | 0`: from then on nothing can acquire, so the
//! state is final. This is `EX_RUNDOWN_REF` with the count doubling as the allocator's
//! "allocated frames" figure.

use crate::sync::{AtomicU64, Ordering};

const CLOSED: u64 = 1 << 63;

/// The allocator's rundown word.
pub struct Rundown {
    state: AtomicU64,
}

/// What a release observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// Frames are still out, or the allocator is open.
    Live,
    /// This was the last frame of a closed allocator: the memory may go.
    Drained,
}

impl Default for Rundown {
    fn default() -> Self {
        Self::new()
    }
}

impl Rundown {
    /// Open, no frames out.
    #[must_use]
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
        }
    }

    /// Takes a reference for one frame, unless closed; returns the new count of frames out.
    #[must_use = "a taken reference must be released"]
    pub fn try_acquire(&self) -> Option<u32> {
        // Relaxed load: only a first guess for the CAS.
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            if current & CLOSED != 0 {
                return None;
            }
            // Acquire on success: a frame taken after this must not be seen as taken
            // before a concurrent close's CLOSED (the CAS fails if CLOSED lands first).
            // SeqCst so every write of the word is (see `close`; the same instruction on
            // x86 and AArch64). Relaxed on failure: we just retry.
            match self.state.compare_exchange_weak(
                current,
                current + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                #[allow(clippy::cast_possible_truncation)] // At most MAX_FRAMES.
                Ok(_) => return Some((current + 1) as u32),
                Err(seen) => current = seen,
            }
        }
    }

    /// Drops a reference taken by [`Self::try_acquire`].
    #[must_use = "`Drained` means the memory must go now"]
    pub fn release(&self) -> Released {
        // AcqRel is the need: Release orders this holder's use of the frame before a
        // drain that frees the memory; Acquire lets the drainer see every earlier
        // release. SeqCst so every write of the word is (see `close`).
        let previous = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(previous & !CLOSED != 0, "rundown released below zero");
        if previous == CLOSED | 1 {
            Released::Drained
        } else {
            Released::Live
        }
    }

    /// Drops `count` references at once (frames leaving a magazine).
    #[must_use = "`Drained` means the memory must go now"]
    pub fn release_many(&self, count: u32) -> Released {
        // As `release`.
        let previous = self.state.fetch_sub(u64::from(count), Ordering::SeqCst);
        debug_assert!(
            previous & !CLOSED >= u64::from(count),
            "rundown released below zero"
        );
        if previous == CLOSED | u64::from(count) {
            Released::Drained
        } else {
            Released::Live
        }
    }

    /// Marks closed. Returns `None` if it was closed already, else whether frames were
    /// out at that moment (`Drained` means none: the closer releases the memory).
    #[must_use = "`Drained` means the closer releases the memory"]
    pub fn close(&self) -> Option<Released> {
        // SeqCst: Acquire sees every release so far, Release publishes CLOSED to
        // acquirers, which then fail; and the total order makes it the close side of
        // the allocator's magazine handshake (a free that caches a frame, then checks
        // `is_closed`). Every write of this word is SeqCst, so that order is one chain
        // (and loom, which orders SeqCst loads only against SeqCst stores, models it).
        let previous = self.state.fetch_or(CLOSED, Ordering::SeqCst);
        if previous & CLOSED != 0 {
            None
        } else if previous == 0 {
            Some(Released::Drained)
        } else {
            Some(Released::Live)
        }
    }

    /// Whether [`Self::close`] has run.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        // SeqCst (a plain load on x86): see `close`.
        self.state.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// Frames out with clients now.
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // At most MAX_FRAMES.
    pub fn outstanding(&self) -> u32 {
        (self.state.load(Ordering::Acquire) & !CLOSED) as u32
    }
}
