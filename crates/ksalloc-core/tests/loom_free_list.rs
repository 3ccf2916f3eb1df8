//! Loom models of the lock-free free list (`ksalloc_core::free_list`).
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" \
//!     cargo test -p ksalloc-core --release --test loom_free_list
//! ```
//!
//! Preemption bound (`LOOM_MAX_PREEMPTIONS` overrides it for every model): 3, except 2
//! for `three_threads_cycle_three_frames` (four pops and pushes of three threads; 3
//! passes too but takes ~70 s). The ABA window needs one preemption (the popper stopped
//! between its head load and its CAS), a lost push two.
//!
//! What is checked, besides loom's own checks (causality of the frame bytes, deadlock):
//! - a ghost "held" flag per index (outside loom, in execution order): an index is never
//!   handed to two holders at once;
//! - a loom `UnsafeCell` per frame that every holder writes: each holder's accesses
//!   happen-after the previous holder's (the return/pop hand-off synchronises);
//! - at the end every index is free and on the list exactly once.
//!
//! A tag-less Treiber stack ([`NaiveList`]) runs the ABA scenario too and must fail it:
//! proof that the scenario reaches the window the tag closes.
#![cfg(loom)]

use std::sync::atomic::{AtomicBool as GhostBool, AtomicUsize as GhostCount};

use ksalloc_core::free_list::{FreeList, ReturnError, CLAIMED, NIL, OUT};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Ghost state is plain std atomics: loom runs one thread at a time, so they see the
/// execution order, and they add no schedule points of their own.
const GHOST: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;

mod loom_support;
use loom_support::model;

/// The free list's interface, so the same harness can run a deliberately broken list.
trait IndexList: Send + Sync + 'static {
    fn with_len(len: u32) -> Self;
    fn pop(&self) -> Option<u32>;
    fn claim(&self, index: u32) -> Result<(), ReturnError>;
    fn push(&self, index: u32);
    fn is_out(&self, index: u32) -> bool;
}

impl IndexList for FreeList {
    fn with_len(len: u32) -> Self {
        Self::new(len).expect("small list")
    }
    fn pop(&self) -> Option<u32> {
        Self::pop(self).ok().map(|(index, _)| index)
    }
    fn claim(&self, index: u32) -> Result<(), ReturnError> {
        Self::claim(self, index)
    }
    fn push(&self, index: u32) {
        Self::push(self, index).expect("these models never close the list");
    }
    fn is_out(&self, index: u32) -> bool {
        Self::is_out(self, index)
    }
}

/// A Treiber stack of indices without the ABA tag: what the free list would be without
/// it. Only used to show that the ABA scenario catches the bug the tag prevents.
struct NaiveList {
    head: AtomicU32,
    link: Vec<AtomicU32>,
}

impl IndexList for NaiveList {
    fn with_len(len: u32) -> Self {
        Self {
            head: AtomicU32::new(0),
            link: (1..=len)
                .map(|next| AtomicU32::new(if next == len { NIL } else { next }))
                .collect(),
        }
    }
    fn pop(&self) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            if head == NIL {
                return None;
            }
            let next = self.link[head as usize].load(Ordering::Acquire);
            match self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // A stale `next` that won the CAS: the ABA corruption itself.
                    assert!(
                        next == NIL || (next as usize) < self.link.len(),
                        "ABA: the head now names a frame that a second holder has"
                    );
                    self.link[head as usize].store(OUT, Ordering::Relaxed);
                    return Some(head);
                }
                Err(current) => head = current,
            }
        }
    }
    fn claim(&self, index: u32) -> Result<(), ReturnError> {
        self.link
            .get(index as usize)
            .ok_or(ReturnError::OutOfRange)?
            .compare_exchange(OUT, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| ReturnError::NotOut)
    }
    fn push(&self, index: u32) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            self.link[index as usize].store(head, Ordering::Relaxed);
            match self
                .head
                .compare_exchange(head, index, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }
    fn is_out(&self, index: u32) -> bool {
        self.link[index as usize].load(Ordering::Relaxed) == OUT
    }
}

/// A list plus the checks around it.
struct Harness<L> {
    list: L,
    /// The frames' bytes as loom sees them: every holder writes its frame.
    frames: Vec<UnsafeCell<()>>,
    held: Vec<GhostBool>,
}

impl<L: IndexList> Harness<L> {
    fn new(len: u32) -> Arc<Self> {
        Arc::new(Self {
            list: L::with_len(len),
            frames: (0..len).map(|_| UnsafeCell::new(())).collect(),
            held: (0..len).map(|_| GhostBool::new(false)).collect(),
        })
    }

    /// Pops an index and takes ownership of its frame.
    fn take(&self) -> Option<u32> {
        let index = self.list.pop()?;
        assert!(
            !self.held[index as usize].swap(true, GHOST),
            "index {index} handed to a second holder while the first still has it"
        );
        // A holder writes its frame: loom panics unless the previous holder's accesses
        // happen-before this one.
        self.frames[index as usize].with_mut(|_| ());
        Some(index)
    }

    /// Returns an index this thread holds.
    fn give_back(&self, index: u32) {
        self.frames[index as usize].with_mut(|_| ());
        self.list
            .claim(index)
            .expect("the holder's own return is accepted");
        // Between claim and push nobody can pop it; clear the ghost before the push.
        assert!(self.held[index as usize].swap(false, GHOST));
        self.list.push(index);
    }

    /// At rest: every index free, on the list exactly once.
    fn assert_all_on_list(&self) {
        let len = u32::try_from(self.frames.len()).expect("small list");
        for index in 0..len {
            assert!(!self.list.is_out(index), "index {index} still out at rest");
            assert!(!self.held[index as usize].load(GHOST));
        }
        let mut seen: Vec<u32> = std::iter::from_fn(|| self.list.pop()).take(64).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..len).collect::<Vec<_>>(),
            "list holds every index exactly once"
        );
    }
}

/// Three threads pop, hold and return concurrently on a two-frame list; one of them takes
/// both frames at once when it can.
#[test]
fn three_threads_pop_claim_push_two_frames() {
    model(3, || {
        let h = Harness::<FreeList>::new(2);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let h = Arc::clone(&h);
                thread::spawn(move || {
                    if let Some(i) = h.take() {
                        h.give_back(i);
                    }
                })
            })
            .collect();
        let greedy = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let a = h.take();
                let b = h.take();
                assert!(a.is_none() || a != b, "one thread got the same index twice");
                for i in [b, a].into_iter().flatten() {
                    h.give_back(i);
                }
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        greedy.join().unwrap();
        h.assert_all_on_list();
    });
}

/// Three threads each take and return one frame of a three-frame list twice over, so
/// pushes race pops of the same indices.
#[test]
fn three_threads_cycle_three_frames() {
    model(2, || {
        let h = Harness::<FreeList>::new(3);
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let h = Arc::clone(&h);
                thread::spawn(move || {
                    // The first thread goes round twice: its second pop meets the others'
                    // pushes.
                    for _ in 0..if t == 0 { 2 } else { 1 } {
                        let i = h.take().expect("never more holders than frames");
                        h.give_back(i);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        h.assert_all_on_list();
    });
}

/// The ABA case: A reads head = x (next = y) and is preempted; B pops x and y and pushes
/// x back (head is x again, its next is now z). A's CAS must fail (the tag moved) or A
/// must get a consistent result; with the tag it can never install y, which B holds, as
/// the head. A pops a second time, which would hand it y if it had.
fn aba_scenario<L: IndexList>() {
    model(3, || {
        let h = Harness::<L>::new(3);
        let a = {
            let h = Arc::clone(&h);
            thread::spawn(move || (h.take(), h.take()))
        };
        let b = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                let x = h.take();
                let y = h.take();
                if let Some(x) = x {
                    h.give_back(x);
                }
                y
            })
        };
        let (a_first, a_second) = a.join().unwrap();
        let b_holds = b.join().unwrap();
        for i in [a_first, a_second, b_holds].into_iter().flatten() {
            h.give_back(i);
        }
        h.assert_all_on_list();
    });
}

#[test]
fn aba_stale_head_cas_fails() {
    aba_scenario::<FreeList>();
}

/// The same scenario catches a list without the ABA tag.
#[test]
#[should_panic = "second holder"]
fn aba_scenario_catches_a_tagless_list() {
    aba_scenario::<NaiveList>();
}

/// Two threads return the same popped index at once (a double free racing itself):
/// exactly one claim wins, and the list ends up with the index once. A third thread
/// meanwhile returns an index that is on the list (never handed out): always refused.
#[test]
fn double_return_race_exactly_one_claim_wins() {
    model(3, || {
        let h = Harness::<FreeList>::new(2);
        let index = h.take().expect("fresh list");
        let wins = std::sync::Arc::new(GhostCount::new(0));
        let returners: Vec<_> = (0..2)
            .map(|_| {
                let (h, wins) = (Arc::clone(&h), std::sync::Arc::clone(&wins));
                thread::spawn(move || match h.list.claim(index) {
                    Ok(()) => {
                        wins.fetch_add(1, GHOST);
                        assert!(h.held[index as usize].swap(false, GHOST));
                        h.list.push(index).expect("the list is open");
                    }
                    Err(e) => assert_eq!(e, ReturnError::NotOut),
                })
            })
            .collect();
        let foreign = {
            let h = Arc::clone(&h);
            thread::spawn(move || {
                assert_eq!(h.list.claim(1 - index), Err(ReturnError::NotOut));
                assert_eq!(h.list.claim(2), Err(ReturnError::OutOfRange));
            })
        };
        for r in returners {
            r.join().unwrap();
        }
        foreign.join().unwrap();
        assert_eq!(wins.load(GHOST), 1, "exactly one of two returns wins");
        h.assert_all_on_list();
    });
}
