//! Loom models of the rundown word (`ksalloc_core::rundown`): frame references racing
//! close.
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
//!     cargo test -p ksalloc-core --release --test loom_rundown
//! ```
//!
//! Preemption bound: 3 (`LOOM_MAX_PREEMPTIONS` overrides it).
//!
//! "Memory" is a loom `UnsafeCell`: every reference holder reads it while it holds the
//! reference, and whoever observes `Released::Drained` frees it (a write). Loom panics
//! unless every holder's read happens-before the free. A ghost count of references held
//! (outside loom, in execution order) checks that `Drained` is never observed while a
//! reference is held, and a ghost counter that it is observed exactly once.
#![cfg(loom)]

use std::sync::atomic::AtomicUsize as Ghost;

use ksalloc_core::rundown::{Released, Rundown};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

const GHOST: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;
const PREEMPTION_BOUND: usize = 3;

mod loom_support;
use loom_support::model;

struct Object {
    rundown: Rundown,
    memory: UnsafeCell<()>,
    held: Ghost,
    drained: Ghost,
}

impl Object {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            rundown: Rundown::new(),
            memory: UnsafeCell::new(()),
            held: Ghost::new(0),
            drained: Ghost::new(0),
        })
    }

    /// Takes a reference and uses the memory, or `false` if closed.
    fn acquire(&self) -> bool {
        if self.rundown.try_acquire().is_none() {
            return false;
        }
        self.held.fetch_add(1, GHOST);
        self.memory.with(|_| ());
        true
    }

    /// Uses the memory a last time and drops a reference.
    fn release(&self) {
        self.memory.with(|_| ());
        self.held.fetch_sub(1, GHOST);
        let released = self.rundown.release();
        self.observe(released);
    }

    fn close(&self) -> bool {
        let Some(at_close) = self.rundown.close() else {
            return false;
        };
        self.observe(at_close);
        assert!(
            self.rundown.try_acquire().is_none(),
            "acquire after close succeeded"
        );
        true
    }

    fn observe(&self, released: Released) {
        if released == Released::Drained {
            assert_eq!(
                self.held.load(GHOST),
                0,
                "Drained observed while a reference is held"
            );
            assert_eq!(
                self.drained.fetch_add(1, GHOST),
                0,
                "Drained observed twice"
            );
            // The free: loom checks every holder's use happens-before it.
            self.memory.with_mut(|_| ());
        }
    }

    fn assert_final(&self) {
        assert!(self.rundown.is_closed());
        assert_eq!(self.rundown.outstanding(), 0);
        assert_eq!(self.drained.load(GHOST), 1, "memory released exactly once");
        assert!(self.rundown.try_acquire().is_none());
    }
}

/// Two frames out; both come back while a third thread closes.
#[test]
fn releases_race_close() {
    model(PREEMPTION_BOUND, || {
        let o = Object::new();
        assert!(o.acquire() && o.acquire());
        let releasers: Vec<_> = (0..2)
            .map(|_| {
                let o = Arc::clone(&o);
                thread::spawn(move || o.release())
            })
            .collect();
        let closer = {
            let o = Arc::clone(&o);
            thread::spawn(move || assert!(o.close()))
        };
        for r in releasers {
            r.join().unwrap();
        }
        closer.join().unwrap();
        o.assert_final();
    });
}

/// One frame out coming back, a new acquire (and its release) and close, all at once;
/// an acquire that starts after the closer saw close complete fails.
#[test]
fn acquire_release_race_close() {
    model(PREEMPTION_BOUND, || {
        let o = Object::new();
        assert!(o.acquire());
        let releaser = {
            let o = Arc::clone(&o);
            thread::spawn(move || o.release())
        };
        let acquirer = {
            let o = Arc::clone(&o);
            thread::spawn(move || {
                let closed_before = o.rundown.is_closed();
                let got = o.acquire();
                assert!(!(closed_before && got), "acquire after close succeeded");
                if got {
                    o.release();
                }
            })
        };
        let closer = {
            let o = Arc::clone(&o);
            thread::spawn(move || assert!(o.close()))
        };
        releaser.join().unwrap();
        acquirer.join().unwrap();
        closer.join().unwrap();
        o.assert_final();
    });
}

/// Two closes race a release: exactly one close counts, memory goes exactly once.
#[test]
fn double_close_races_release() {
    model(PREEMPTION_BOUND, || {
        let o = Object::new();
        assert!(o.acquire());
        #[allow(clippy::needless_collect)] // Every thread starts before any is joined.
        let closers: Vec<_> = (0..2)
            .map(|_| {
                let o = Arc::clone(&o);
                thread::spawn(move || o.close())
            })
            .collect();
        let releaser = {
            let o = Arc::clone(&o);
            thread::spawn(move || o.release())
        };
        let closed: usize = closers
            .into_iter()
            .map(|c| usize::from(c.join().unwrap()))
            .sum();
        releaser.join().unwrap();
        assert_eq!(closed, 1, "exactly one close takes effect");
        o.assert_final();
    });
}
