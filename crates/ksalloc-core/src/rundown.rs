//! The shared count of frames out after close: when it reaches zero the frame memory may
//! go, exactly once.
//!
//! While the allocator is open nothing counts frames out in a shared word: each
//! processor counts its own allocations and frees (`magazine`'s counters, summed on
//! read), like Linux's `percpu_ref` in per-CPU mode. Close switches to this one exact
//! count, and needs no grace period for it: closing the free list is a census
//! (`FreeList::close` says how many frames were on it), so the closer knows how many
//! were not listed at that instant, `total - listed`: out with clients, or cached in
//! magazines. Every one of them then comes back through a push that fails on the closed
//! list (a client's free, or a processor's DPC moving its magazine), and that return
//! counts down here instead.
//!
//! Returns may count down before the closer has published its census. So the word
//! starts at [`BIAS`], far above any count; returns subtract one each; the closer adds
//! `out - BIAS` ([`Rundown::close`]). The word reaches zero exactly once, after the
//! census is in and the last frame out is back, and whoever takes it there (the closer
//! or the last return) releases the memory.

use crate::sync::{AtomicU64, Ordering};

/// The count before the census is published: more than any pool has frames, so returns
/// before it cannot take the word to zero.
const BIAS: u64 = 1 << 62;

/// The allocator's frames-out count after close.
pub struct Rundown {
    state: AtomicU64,
}

/// What a count-down observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// Frames are still out, or the census is not in yet.
    Live,
    /// This took the count to zero: the memory may go.
    Drained,
}

impl Default for Rundown {
    fn default() -> Self {
        Self::new()
    }
}

impl Rundown {
    /// Before close: the biased count.
    #[must_use]
    #[allow(clippy::missing_const_for_fn)] // loom's atomics have no const constructor.
    pub fn new() -> Self {
        Self {
            state: AtomicU64::new(BIAS),
        }
    }

    /// Counts down `count` frames that came back after the list closed.
    #[must_use = "`Drained` means the memory must go now"]
    pub fn release_many(&self, count: u32) -> Released {
        // AcqRel. Release: this returner's use of the frames happens-before whoever
        // takes the count to zero and frees the memory. Acquire: if that is us, every
        // earlier count-down and the census (all RMWs of this word, one release
        // sequence) happen-before our free.
        let previous = self.state.fetch_sub(u64::from(count), Ordering::AcqRel);
        debug_assert!(previous >= u64::from(count), "rundown below zero");
        if previous == u64::from(count) {
            Released::Drained
        } else {
            Released::Live
        }
    }

    /// Counts down one frame that came back after the list closed.
    #[must_use = "`Drained` means the memory must go now"]
    pub fn release(&self) -> Released {
        self.release_many(1)
    }

    /// Publishes the census: `out` frames were out when the list closed. Call once.
    #[must_use = "`Drained` means the closer releases the memory"]
    pub fn close(&self, out: u32) -> Released {
        let add = u64::from(out).wrapping_sub(BIAS);
        // AcqRel, as `release_many`: the closer may be the one to reach zero (no frame
        // out, or all back before the census).
        let previous = self.state.fetch_add(add, Ordering::AcqRel);
        if previous.wrapping_add(add) == 0 {
            Released::Drained
        } else {
            Released::Live
        }
    }

    /// Whether the census is in and every frame out has come back.
    #[must_use]
    pub fn is_drained(&self) -> bool {
        // Acquire: a caller that sees zero may drop what the frames lived in.
        self.state.load(Ordering::Acquire) == 0
    }

    /// Frames out, once the census is in (`None` before).
    #[must_use]
    #[allow(clippy::cast_possible_truncation)] // Below BIAS / 2, at most MAX_FRAMES.
    pub fn outstanding(&self) -> Option<u32> {
        let state = self.state.load(Ordering::Acquire);
        (state < BIAS / 2).then_some(state as u32)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn census_then_returns_drain_once() {
        let r = Rundown::new();
        assert_eq!(r.outstanding(), None);
        assert_eq!(r.release(), Released::Live, "a return before the census");
        assert_eq!(r.close(3), Released::Live);
        assert_eq!(r.outstanding(), Some(2));
        assert_eq!(r.release_many(1), Released::Live);
        assert!(!r.is_drained());
        assert_eq!(r.release(), Released::Drained);
        assert!(r.is_drained());
    }

    #[test]
    fn census_of_nothing_out_drains_at_close() {
        assert_eq!(Rundown::new().close(0), Released::Drained);
        let r = Rundown::new();
        assert_eq!(r.release_many(2), Released::Live);
        assert_eq!(
            r.close(2),
            Released::Drained,
            "both came back before the census"
        );
    }
}
