//! Spin lock: raises to `DISPATCH_LEVEL` while held; recursive acquisition panics
//! (on Windows it deadlocks the processor).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ksalloc_core::{Irql, SpinLock};

use crate::irql::{assert_irql_at_most, lock_acquired, lock_released, raise_irql};
use crate::ModelKernel;

/// A `KSPIN_LOCK` around a value.
pub struct ModelSpinLock<T> {
    value: Mutex<T>,
    /// Id of the thread holding the lock, 0 if none (for recursion detection).
    holder: AtomicU64,
    /// The kernel whose queued processor calls may run once the release drops the
    /// thread below `DISPATCH_LEVEL` (`Platform::new_lock`'s locks; `None` for
    /// [`ModelSpinLock::new`]).
    kernel: Option<ModelKernel>,
}

fn thread_tag() -> u64 {
    thread_local! {
        static TAG: u64 = {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            NEXT.fetch_add(1, Ordering::Relaxed)
        };
    }
    TAG.with(|t| *t)
}

impl<T> ModelSpinLock<T> {
    /// A new lock.
    pub const fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            holder: AtomicU64::new(0),
            kernel: None,
        }
    }

    /// A lock of `kernel`: releasing it to below `DISPATCH_LEVEL` delivers the kernel's
    /// queued processor calls, as the processor's IRQL dropping does on Windows.
    pub(crate) const fn of_kernel(value: T, kernel: ModelKernel) -> Self {
        Self {
            value: Mutex::new(value),
            holder: AtomicU64::new(0),
            kernel: Some(kernel),
        }
    }
}

impl<T> SpinLock<T> for ModelSpinLock<T> {
    #[track_caller]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        assert_irql_at_most(Irql::Dispatch, "KeAcquireSpinLock");
        crate::processor::assert_outside("KeAcquireSpinLock");
        let me = thread_tag();
        assert_ne!(
            self.holder.load(Ordering::Relaxed),
            me,
            "spin lock acquired recursively (deadlock on Windows)"
        );
        let irql = raise_irql(Irql::Dispatch);
        // A poisoned lock means another test thread panicked while holding it; the
        // value is still consistent for our purposes (that panic fails the test).
        let mut guard = self
            .value
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.holder.store(me, Ordering::Relaxed);
        lock_acquired();
        let result = f(&mut guard);
        lock_released();
        self.holder.store(0, Ordering::Relaxed);
        drop(guard);
        drop(irql);
        if let Some(kernel) = &self.kernel {
            if kernel.processors().calls().any_queued() {
                kernel.processors().deliver_if_idle();
            }
        }
        result
    }
}
