//! What a caller may make the driver hold: the limits that keep a user-mode caller from
//! exhausting nonpaged pool.
//!
//! The INF lets Users open the filter, so every limit here is a refusal a user-mode
//! caller can reach. Each refuses with `STATUS_INSUFFICIENT_RESOURCES` and changes no
//! state:
//!
//! | limit | value | where |
//! |---|---|---|
//! | frame memory of all live allocators, driver-wide | [`DEFAULT_FRAME_BUDGET`] (256 MiB), overridable by the REG_DWORD `FrameBudgetMiB` under the service's `Parameters` key, read at DriverEntry | [`FrameBudget`], charged at allocator create, given back when the frame memory goes back to the pool |
//! | live allocators on one pin | [`MAX_ALLOCATORS_PER_PIN`] (4) | create of an allocator on a pin that has them |
//! | frame memory of a user-mode requestor's create | its process's pool quota | `ExAllocatePool2` with `POOL_FLAG_USE_QUOTA` ([`crate::PoolCharge`]) |
//!
//! A KS pin normally has one allocator; a graph renegotiating its framing creates the
//! next before it closes the last, so 4 leaves room for that with margin.

use ks_abi::NtStatus;

use crate::sync::{AtomicUsize, Ordering};

/// Default driver-wide frame budget: 256 MiB, the largest single allocator
/// ([`crate::framing::MAX_TOTAL_BYTES`]), 1/32 of an 8 GiB machine.
pub const DEFAULT_FRAME_BUDGET: usize = 256 << 20;

/// Live allocators one pin may have at once.
pub const MAX_ALLOCATORS_PER_PIN: u32 = 4;

/// Name of the REG_DWORD (in MiB) under `HKLM\...\Services\ksalloc\Parameters` that
/// overrides [`DEFAULT_FRAME_BUDGET`].
pub const BUDGET_VALUE_NAME: &str = "FrameBudgetMiB";

/// The budget a registry value of `mib` MiB sets: at least one byte, at most what a
/// `usize` holds.
#[must_use]
pub const fn budget_from_mib(mib: u32) -> usize {
    (mib as usize).saturating_mul(1 << 20)
}

/// Bytes of frame memory the driver may hold at once, and how many it holds.
///
/// Invariant: `in_use <= limit` after every successful [`Self::try_charge`] (a later
/// lower [`Self::set_limit`] refuses new charges until enough is given back); every
/// charge is given back exactly once with [`Self::release`].
pub struct FrameBudget {
    limit: AtomicUsize,
    in_use: AtomicUsize,
}

impl FrameBudget {
    /// A budget of `limit` bytes, none in use.
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            in_use: AtomicUsize::new(0),
        }
    }

    /// A budget of `limit` bytes, none in use.
    #[cfg(loom)]
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            in_use: AtomicUsize::new(0),
        }
    }

    /// Sets the limit (DriverEntry, from the registry).
    pub fn set_limit(&self, limit: usize) {
        // Relaxed: the budget guards only its own counts.
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes charged now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// Charges `bytes` if they fit under the limit.
    ///
    /// # Errors
    /// `STATUS_INSUFFICIENT_RESOURCES` when they do not; nothing is charged then.
    pub fn try_charge(&self, bytes: usize) -> Result<(), NtStatus> {
        let limit = self.limit();
        // Relaxed: a counter with no data behind it; the CAS keeps it exact.
        self.in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map(drop)
            .map_err(|_| NtStatus::INSUFFICIENT_RESOURCES)
    }

    /// Gives back a charge of `bytes`.
    pub fn release(&self, bytes: usize) {
        let previous = self.in_use.fetch_sub(bytes, Ordering::Relaxed);
        debug_assert!(previous >= bytes, "frame budget released more than charged");
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_under_the_limit_and_refusals_change_nothing() {
        let budget = FrameBudget::new(100);
        assert_eq!(budget.try_charge(60), Ok(()));
        assert_eq!(budget.try_charge(41), Err(NtStatus::INSUFFICIENT_RESOURCES));
        assert_eq!(budget.in_use(), 60);
        assert_eq!(budget.try_charge(40), Ok(()));
        budget.release(100);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(
            budget.try_charge(usize::MAX),
            Err(NtStatus::INSUFFICIENT_RESOURCES)
        );
        assert_eq!(budget_from_mib(2), 2 << 20);
    }
}
