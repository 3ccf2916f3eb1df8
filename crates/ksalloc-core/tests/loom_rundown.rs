//! Loom models of the switch from per-processor counting to one exact count at close
//! (`ksalloc_core::rundown` with `FreeList::close`): frames popped, used and returned
//! while a closer takes its census.
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
//!     cargo test -p ksalloc-core --release --test loom_rundown
//! ```
//!
//! Preemption bound: 3 (`LOOM_MAX_PREEMPTIONS` overrides it).
//!
//! The protocol under test is the allocator's: a holder pops a frame from the list,
//! uses it, claims it back and pushes it; a push that fails on the closed list counts
//! down the shared word instead. The closer closes the list (learning how many frames
//! were listed), then publishes `total - listed` frames out.
//!
//! "Memory" is a loom `UnsafeCell`: every holder reads it while it holds a frame, and
//! whoever observes `Released::Drained` frees it (a write). Loom panics unless every
//! holder's read happens-before the free. A ghost count of frames held (outside loom,
//! in execution order) checks that `Drained` is never observed while a frame is held,
//! and a ghost counter that it is observed exactly once.
#![cfg(loom)]

use std::sync::atomic::AtomicUsize as Ghost;

use ksalloc_core::free_list::{FreeList, Unlisted};
use ksalloc_core::rundown::{Released, Rundown};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

const GHOST: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;
const PREEMPTION_BOUND: usize = 3;
const FRAMES: u32 = 3;

mod loom_support;
use loom_support::model;

struct Pool {
    list: FreeList,
    rundown: Rundown,
    memory: UnsafeCell<()>,
    held: Ghost,
    drained: Ghost,
}

impl Pool {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            list: FreeList::new(FRAMES).expect("small list"),
            rundown: Rundown::new(),
            memory: UnsafeCell::new(()),
            held: Ghost::new(0),
            drained: Ghost::new(0),
        })
    }

    /// Pops a frame and uses the memory, or `None` if the list is empty or closed.
    fn take(&self) -> Option<u32> {
        let (index, _) = self.list.pop().ok()?;
        self.held.fetch_add(1, GHOST);
        self.memory.with(|_| ());
        Some(index)
    }

    /// Uses the memory a last time and returns the frame.
    fn give_back(&self, index: u32) {
        self.memory.with(|_| ());
        self.held.fetch_sub(1, GHOST);
        self.list.claim(index).expect("our frame");
        match self.list.push(index) {
            Ok(()) => {}
            Err(Unlisted::Closed) => {
                let released = self.rundown.release();
                self.observe(released);
            }
            Err(Unlisted::Empty) => unreachable!("a push never finds the list empty"),
        }
    }

    /// Closes the list and publishes the census; `false` if it was closed already.
    fn close(&self) -> bool {
        let Some(listed) = self.list.close() else {
            return false;
        };
        assert_eq!(self.list.pop(), Err(Unlisted::Closed), "pop after close");
        let released = self.rundown.close(FRAMES - listed);
        self.observe(released);
        true
    }

    fn observe(&self, released: Released) {
        if released == Released::Drained {
            assert_eq!(
                self.held.load(GHOST),
                0,
                "Drained observed while a frame is held"
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
        assert!(self.list.is_closed());
        assert!(self.rundown.is_drained());
        assert_eq!(self.rundown.outstanding(), Some(0));
        assert_eq!(self.drained.load(GHOST), 1, "memory released exactly once");
    }
}

/// Two frames out; both come back while a third thread closes.
#[test]
fn returns_race_close() {
    model(PREEMPTION_BOUND, || {
        let p = Pool::new();
        let held = [p.take().unwrap(), p.take().unwrap()];
        let returners: Vec<_> = held
            .into_iter()
            .map(|index| {
                let p = Arc::clone(&p);
                thread::spawn(move || p.give_back(index))
            })
            .collect();
        let closer = {
            let p = Arc::clone(&p);
            thread::spawn(move || assert!(p.close()))
        };
        for r in returners {
            r.join().unwrap();
        }
        closer.join().unwrap();
        p.assert_final();
    });
}

/// One frame out coming back, a new pop (and its return) and close, all at once: the
/// census counts each frame exactly once whichever side of the close it was on.
#[test]
fn pop_and_return_race_close() {
    model(PREEMPTION_BOUND, || {
        let p = Pool::new();
        let out = p.take().unwrap();
        let returner = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.give_back(out))
        };
        let taker = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                let closed_before = p.list.is_closed();
                let got = p.take();
                assert!(!(closed_before && got.is_some()), "pop after close");
                if let Some(index) = got {
                    p.give_back(index);
                }
            })
        };
        let closer = {
            let p = Arc::clone(&p);
            thread::spawn(move || assert!(p.close()))
        };
        returner.join().unwrap();
        taker.join().unwrap();
        closer.join().unwrap();
        p.assert_final();
    });
}

/// Two closes race a return: exactly one close counts, memory goes exactly once.
#[test]
fn double_close_races_return() {
    model(PREEMPTION_BOUND, || {
        let p = Pool::new();
        let out = p.take().unwrap();
        #[allow(clippy::needless_collect)] // Every thread starts before any is joined.
        let closers: Vec<_> = (0..2)
            .map(|_| {
                let p = Arc::clone(&p);
                thread::spawn(move || p.close())
            })
            .collect();
        let returner = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.give_back(out))
        };
        let closed: usize = closers
            .into_iter()
            .map(|c| usize::from(c.join().unwrap()))
            .sum();
        returner.join().unwrap();
        assert_eq!(closed, 1, "exactly one close takes effect");
        p.assert_final();
    });
}
