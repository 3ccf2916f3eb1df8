//! Per-thread IRQL with checked raise and lower.

use std::cell::Cell;

use ksalloc_core::Irql;

thread_local! {
    static IRQL: Cell<Irql> = const { Cell::new(Irql::Passive) };
    static LOCKS_HELD: Cell<u32> = const { Cell::new(0) };
}

/// `KeGetCurrentIrql` of the calling thread.
#[must_use]
pub fn current_irql() -> Irql {
    IRQL.with(Cell::get)
}

/// Panics unless the thread runs at `max` or below.
///
/// # Panics
/// When the contract is violated: that is the point.
#[track_caller]
pub fn assert_irql_at_most(max: Irql, what: &str) {
    let now = current_irql();
    assert!(
        now <= max,
        "IRQL violation: {what} called at {now:?}, allowed up to {max:?}"
    );
}

/// Restores the previous IRQL when dropped (`KeLowerIrql`).
#[must_use = "the IRQL drops back when the guard goes"]
pub struct IrqlGuard {
    previous: Irql,
    raised_to: Irql,
}

/// `KeRaiseIrql`: panics if `to` is below the current level.
///
/// # Panics
/// On a lowering "raise", which bugchecks on Windows (`IRQL_NOT_GREATER_OR_EQUAL`).
#[track_caller]
pub fn raise_irql(to: Irql) -> IrqlGuard {
    let previous = current_irql();
    assert!(
        to >= previous,
        "KeRaiseIrql to {to:?} from higher {previous:?}"
    );
    IRQL.with(|c| c.set(to));
    IrqlGuard {
        previous,
        raised_to: to,
    }
}

impl IrqlGuard {
    /// The IRQL the guard restores.
    #[must_use]
    pub const fn previous(&self) -> Irql {
        self.previous
    }
}

impl Drop for IrqlGuard {
    fn drop(&mut self) {
        let now = current_irql();
        // Guards must nest: lowering from a level we did not raise to is a bug.
        assert!(
            now == self.raised_to || std::thread::panicking(),
            "KeLowerIrql out of order: at {now:?}, guard raised to {:?}",
            self.raised_to
        );
        IRQL.with(|c| c.set(self.previous));
    }
}

/// Number of model spin locks the calling thread holds.
#[must_use]
pub fn locks_held() -> u32 {
    LOCKS_HELD.with(Cell::get)
}

pub(crate) fn lock_acquired() {
    LOCKS_HELD.with(|c| c.set(c.get() + 1));
}

pub(crate) fn lock_released() {
    LOCKS_HELD.with(|c| c.set(c.get() - 1));
}
