//! Notification and synchronization events (`KEVENT`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ksalloc_core::Irql;

use crate::irql::assert_irql_at_most;

/// A `KEVENT`.
pub struct ModelEvent {
    signalled: Mutex<bool>,
    cond: Condvar,
    /// `false`: notification (stays signalled); `true`: synchronization (auto-reset).
    auto_reset: bool,
    sets: AtomicU64,
}

impl ModelEvent {
    /// `KeInitializeEvent(NotificationEvent, FALSE)`.
    #[must_use]
    pub const fn notification() -> Self {
        Self::new(false)
    }

    /// `KeInitializeEvent(SynchronizationEvent, FALSE)`.
    #[must_use]
    pub const fn synchronization() -> Self {
        Self::new(true)
    }

    const fn new(auto_reset: bool) -> Self {
        Self {
            signalled: Mutex::new(false),
            cond: Condvar::new(),
            auto_reset,
            sets: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, bool> {
        self.signalled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `KeSetEvent(event, 0, FALSE)`: legal up to `DISPATCH_LEVEL`.
    #[track_caller]
    pub fn set(&self) {
        assert_irql_at_most(Irql::Dispatch, "KeSetEvent");
        self.sets.fetch_add(1, Ordering::Relaxed);
        *self.state() = true;
        if self.auto_reset {
            self.cond.notify_one();
        } else {
            self.cond.notify_all();
        }
    }

    /// `KeClearEvent`.
    pub fn clear(&self) {
        *self.state() = false;
    }

    /// `KeReadStateEvent`.
    #[must_use]
    pub fn is_set(&self) -> bool {
        *self.state()
    }

    /// How many times the event has been set.
    #[must_use]
    pub fn set_count(&self) -> u64 {
        self.sets.load(Ordering::Relaxed)
    }

    /// `KeWaitForSingleObject` with a timeout: only below `DISPATCH_LEVEL` (a nonzero
    /// wait at DISPATCH bugchecks). Returns whether the event was signalled.
    #[track_caller]
    #[allow(clippy::significant_drop_tightening)] // The guard is the condvar's.
    pub fn wait(&self, timeout: Duration) -> bool {
        assert_irql_at_most(Irql::Apc, "KeWaitForSingleObject");
        let guard = self.state();
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |s| !*s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let was = *guard;
        if was && self.auto_reset {
            *guard = false;
        }
        was
    }
}
