//! Processors: which one a thread runs on, and one thread at a time at `DISPATCH_LEVEL`
//! on each, as `Platform::with_processor` promises.
//!
//! A model kernel has a fixed number of processors ([`crate::ModelKernel::with_processors`]).
//! A thread runs on the processor [`bind_processor`] named, else on one picked by
//! thread order (thread *k* on processor *k mod n*). Entering a processor raises to
//! `DISPATCH_LEVEL` and waits while another thread is on it (on Windows that thread
//! would have the processor until it dropped below `DISPATCH_LEVEL`); entering again
//! from inside, or calling a platform service from inside, panics.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ksalloc_core::Irql;

use crate::irql::{assert_irql_at_most, locks_held, raise_irql, IrqlGuard};
use crate::processor_call::{running_call_on, CallQueues};

thread_local! {
    static BOUND: Cell<Option<usize>> = const { Cell::new(None) };
    static ORDINAL: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Runs the calling thread on processor `processor` from now on (`None`: by thread
/// order again). An index past a kernel's count wraps.
pub fn bind_processor(processor: Option<usize>) {
    BOUND.with(|b| b.set(processor));
}

/// Checks that the calling thread is not inside `with_processor`: the core must not
/// call the platform from there.
///
/// # Panics
/// When it is: that is the point.
#[track_caller]
pub fn assert_outside(what: &str) {
    assert!(
        !INSIDE.with(Cell::get),
        "{what} called inside with_processor (core rule: no platform calls there)"
    );
}

/// One processor's "a thread is on me" flag, alone on its cache lines: two threads on
/// two processors must not contend in the model where they would not on hardware.
#[repr(align(128))]
struct Busy(AtomicBool);

/// A model kernel's processors.
pub(crate) struct Processors {
    busy: Box<[Busy]>,
    /// Each processor's DPC queue ([`crate::processor_call`]).
    calls: CallQueues,
}

impl Processors {
    pub(crate) fn new(count: usize) -> Self {
        assert!(count > 0, "a kernel has at least one processor");
        Self {
            busy: (0..count).map(|_| Busy(AtomicBool::new(false))).collect(),
            calls: CallQueues::new(count),
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.busy.len()
    }

    pub(crate) const fn calls(&self) -> &CallQueues {
        &self.calls
    }

    /// Takes `processor` if no thread is on it. SeqCst: pairs with the SeqCst release in
    /// [`Self::run`] and the SeqCst count of queued calls (a Dekker handshake: a call
    /// queued while its processor is busy is seen by the leaving thread or by the
    /// queuer's own attempt here).
    pub(crate) fn try_enter(&self, processor: usize) -> bool {
        self.busy[processor]
            .0
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes `processor`, waiting while another thread is on it.
    pub(crate) fn enter_waiting(&self, processor: usize) {
        while !self.try_enter(processor) {
            std::thread::yield_now();
        }
    }

    /// Gives `processor` up. SeqCst: see [`Self::try_enter`].
    pub(crate) fn leave(&self, processor: usize) {
        self.busy[processor].0.store(false, Ordering::SeqCst);
    }

    /// `Platform::with_processor`.
    #[track_caller]
    pub(crate) fn run<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        assert_irql_at_most(Irql::Dispatch, "with_processor");
        assert_outside("with_processor");
        if let Some(processor) = running_call_on(self) {
            // Inside a processor call for `processor`: already on it at DISPATCH_LEVEL
            // (raising to DISPATCH_LEVEL there is a no-op), so no turn to wait for.
            INSIDE.with(|i| i.set(true));
            let result = f(processor);
            INSIDE.with(|i| i.set(false));
            return result;
        }
        let preferred = BOUND
            .with(Cell::get)
            .unwrap_or_else(|| ORDINAL.with(|o| *o));
        let count = self.busy.len();
        // The division only for an index past the count (a division costs more than
        // the rest of this function on the benchmarks' instruction counts).
        let processor = if preferred < count {
            preferred
        } else {
            preferred % count
        };
        let irql = raise_irql(Irql::Dispatch);
        let busy = &self.busy[processor].0;
        // Acquire/Release: what one thread did on the processor happens-before the next
        // thread's turn there, as on a real processor.
        while busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        INSIDE.with(|i| i.set(true));
        let result = f(processor);
        INSIDE.with(|i| i.set(false));
        // Leaving the section is where the processor's IRQL would drop below
        // DISPATCH_LEVEL on Windows: its DPC queue runs first, on this thread (never
        // with a spin lock held: a DPC cannot run inside a lock's section).
        let delivering = locks_held() == 0 && self.calls.delivering();
        if delivering && self.calls.any_queued() {
            self.run_own_calls(processor);
        }
        if delivering && current_irql_below_dispatch_after(&irql) {
            // SeqCst release, then the SeqCst count: a call queued meanwhile for a
            // processor this thread gave up is seen here, or its queuer took the
            // processor (see `try_enter`).
            busy.store(false, Ordering::SeqCst);
            drop(irql);
            self.deliver_if_idle();
        } else {
            busy.store(false, Ordering::Release);
            drop(irql);
        }
        result
    }
}

/// Whether dropping `guard` takes the thread below `DISPATCH_LEVEL`.
fn current_irql_below_dispatch_after(guard: &IrqlGuard) -> bool {
    guard.previous() < Irql::Dispatch
}
