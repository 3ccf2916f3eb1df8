//! The FIFO of pended ALLOC requests: a ring of fixed capacity, allocated at create so
//! that queueing never calls the pool with a spin lock held.
//!
//! Lives inside the allocator's spin lock; nothing here is concurrent by itself.

use alloc::vec::Vec;

use crate::platform::{OutOfMemory, RequestHandle};

/// Most ALLOC requests one allocator keeps pending; one more gets
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const MAX_PENDING: usize = 256;

/// A bounded FIFO of requests.
pub struct PendingQueue<R> {
    slots: Vec<Option<R>>,
    head: usize,
    len: usize,
}

impl<R: RequestHandle> PendingQueue<R> {
    /// An empty queue holding up to `capacity` requests.
    ///
    /// # Errors
    /// [`OutOfMemory`] if the ring cannot be allocated.
    pub fn new(capacity: usize) -> Result<Self, OutOfMemory> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| OutOfMemory)?;
        slots.resize_with(capacity, || None);
        Ok(Self {
            slots,
            head: 0,
            len: 0,
        })
    }

    /// Requests queued.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether none is queued.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slot(&self, nth: usize) -> usize {
        // `head < capacity` and `nth <= len <= capacity`: one conditional subtraction
        // instead of a division (a division costs more than the rest of a hand-off's
        // queue work).
        let at = self.head + nth;
        if at >= self.slots.len() {
            at - self.slots.len()
        } else {
            at
        }
    }

    /// Appends `request`; gives it back if the queue is full.
    ///
    /// # Errors
    /// The request itself, when the queue is full.
    pub fn push_back(&mut self, request: R) -> Result<(), R> {
        if self.len == self.slots.len() {
            return Err(request);
        }
        let at = self.slot(self.len);
        self.slots[at] = Some(request);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the oldest request for which `take` says yes. Requests it
    /// says no to stay queued in order (their cancel routine is about to remove them).
    pub fn take_first(&mut self, mut take: impl FnMut(&R) -> bool) -> Option<R> {
        let nth =
            (0..self.len).find(|&n| self.slots[self.slot(n)].as_ref().is_some_and(&mut take))?;
        Some(self.remove_nth(nth))
    }

    /// Removes the request with `key`, if queued.
    pub fn remove_key(&mut self, key: usize) -> Option<R> {
        self.take_first(|r| r.key() == key)
    }

    fn remove_nth(&mut self, nth: usize) -> R {
        let at = self.slot(nth);
        let request = self.slots[at].take().expect("queued slot holds a request");
        self.len -= 1;
        if nth == 0 {
            // The common case, serving the oldest: O(1).
            self.head = self.slot(1);
            return request;
        }
        // Close the gap, keeping FIFO order (O(n) in the queue, which is bounded and
        // short; only cancels remove from the middle).
        for n in nth..self.len {
            let (to, from) = (self.slot(n), self.slot(n + 1));
            self.slots[to] = self.slots[from].take();
        }
        request
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Req(usize);
    impl RequestHandle for Req {
        fn key(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn fifo_with_wraparound_and_middle_removal() {
        let mut q = PendingQueue::new(3).unwrap();
        q.push_back(Req(1)).unwrap();
        q.push_back(Req(2)).unwrap();
        q.push_back(Req(3)).unwrap();
        assert_eq!(
            q.push_back(Req(4)),
            Err(Req(4)),
            "full queue gives the request back"
        );
        assert_eq!(q.take_first(|_| true), Some(Req(1)));
        q.push_back(Req(4)).unwrap();
        assert_eq!(q.remove_key(3), Some(Req(3)));
        assert_eq!(q.remove_key(3), None);
        assert_eq!(
            q.take_first(|r| r.0 != 2),
            Some(Req(4)),
            "skips a request being cancelled"
        );
        assert_eq!(q.take_first(|_| true), Some(Req(2)));
        assert!(q.is_empty());
    }
}
