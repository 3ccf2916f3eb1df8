//! Processors: which one a thread runs on, and one thread at a time at `DISPATCH_LEVEL`
//! on each, as `Platform::with_processor` promises.
//!
//! A model kernel has a fixed number of processors ([`crate::ModelKernel::with_processors`]).
//! A thread runs on the processor [`bind_processor`] named, else on one picked by
//! thread order (thread *k* on processor *k mod n*). Entering a processor raises to
//! `DISPATCH_LEVEL` and waits while another thread is on it (on Windows that thread
//! would have the processor until it dropped below `DISPATCH_LEVEL`); entering again
//! from inside, or calling a platform service from inside, panics. Each processor also
//! has a DPC queue ([`crate::processor_call`]): leaving a section is one of the points
//! where it runs, and a call runs holding its processor as a section does.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ksalloc_core::Irql;

use crate::irql::{assert_irql_at_most, locks_held, raise_irql};
use crate::processor_call::{running_call_on, CallQueues};

thread_local! {
    static BOUND: Cell<Option<usize>> = const { Cell::new(None) };
    static ORDINAL: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
    /// [`OUTSIDE`], [`IN_SECTION`] or [`IN_CALL`]: one thread-local read on entry.
    static STATE: Cell<u8> = const { Cell::new(OUTSIDE) };
}

/// Runs the calling thread on processor `processor` from now on (`None`: by thread
/// order again). An index past a kernel's count wraps.
pub fn bind_processor(processor: Option<usize>) {
    BOUND.with(|b| b.set(processor));
}

/// The thread is in no `with_processor` section and runs no processor call.
const OUTSIDE: u8 = 0;
/// The thread is inside a `with_processor` section.
const IN_SECTION: u8 = 1;
/// The thread runs a processor call (outside any section of it).
pub(crate) const IN_CALL: u8 = 2;

/// Sets the thread's state, returning the old one (processor calls mark their run).
pub(crate) fn swap_state(state: u8) -> u8 {
    STATE.with(|s| s.replace(state))
}

/// Checks that the calling thread is not inside `with_processor`: the core must not
/// call the platform from there.
///
/// # Panics
/// When it is: that is the point.
#[track_caller]
pub fn assert_outside(what: &str) {
    assert!(
        STATE.with(Cell::get) != IN_SECTION,
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
        let state = STATE.with(Cell::get);
        assert!(
            state != IN_SECTION,
            "with_processor called inside with_processor (core rule: no platform calls there)"
        );
        if state == IN_CALL {
            if let Some(processor) = running_call_on(self) {
                // Inside a processor call for `processor`: already on it at
                // DISPATCH_LEVEL (raising to DISPATCH_LEVEL there is a no-op), so no
                // turn to wait for.
                STATE.with(|s| s.set(IN_SECTION));
                let result = f(processor);
                STATE.with(|s| s.set(IN_CALL));
                return result;
            }
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
        STATE.with(|s| s.set(IN_SECTION));
        let result = f(processor);
        STATE.with(|s| s.set(state));
        // Leaving the section is where the processor's IRQL would drop below
        // DISPATCH_LEVEL on Windows, and its DPC queue would run. SeqCst release, then
        // the SeqCst count: a call queued meanwhile for this processor is seen here, or
        // its queuer took the processor (see `try_enter`). The delivery is out of line:
        // the hot path pays one load.
        busy.store(false, Ordering::SeqCst);
        drop(irql);
        if self.calls.any_queued() {
            self.left_with_calls(processor);
        }
        result
    }

    /// Left `processor`'s section with calls queued somewhere: unless the thread holds a
    /// spin lock (a DPC never runs inside a lock's section) or runs a call, or calls are
    /// held, it takes the processor back if no other thread took it and runs its queue
    /// (a thread that took it runs them when it leaves), then, below DISPATCH_LEVEL,
    /// the queues of idle processors.
    #[cold]
    #[inline(never)]
    fn left_with_calls(&self, processor: usize) {
        if locks_held() == 0
            && self.calls.delivering()
            && !crate::processor_call::in_call()
            && self.try_enter(processor)
        {
            self.run_own_calls(processor);
            self.leave(processor);
        }
        self.deliver_if_idle();
    }
}
