//! Nonpaged pool: the one place the driver allocates kernel memory.
//!
//! `nt::allocate_nonpaged` is `ExAllocatePool2` where the kernel exports it and
//! `ExAllocatePoolWithTag(NonPagedPoolNx)` plus zeroing elsewhere (Windows before 10
//! 2004, Wine, ReactOS), resolved at DriverEntry in both builds. Nothing else in the
//! driver allocates.

use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicUsize, Ordering};

use ksalloc_core::PoolCharge;

use crate::nt;

/// Pool tag `'lAsK'` (shows as "KsAl" in pool tools).
pub const TAG: u32 = u32::from_le_bytes(*b"KsAl");

/// Allocates `bytes` of nonpaged pool. IRQL <= DISPATCH_LEVEL.
pub fn allocate(bytes: usize) -> Option<NonNull<u8>> {
    // SAFETY: nonpaged pool may be allocated at <= DISPATCH_LEVEL; the result is null
    // or a block of at least `bytes` bytes, 16-byte aligned (page aligned for a page
    // or more).
    let raw = unsafe { nt::allocate_nonpaged(bytes, TAG) };
    NonNull::new(raw.cast::<u8>())
}

/// Allocates `bytes` of nonpaged pool charged as `charge` says. A user-mode requestor's
/// frame memory is charged to its process (`nt::allocate_nonpaged_quota`, called at
/// IRP_MJ_CREATE in the requestor's context; the block keeps the process referenced until
/// it is freed). Freed with [`free`] either way. IRQL <= DISPATCH_LEVEL.
pub fn allocate_charged(bytes: usize, charge: PoolCharge) -> Option<NonNull<u8>> {
    match charge {
        PoolCharge::Driver => allocate(bytes),
        PoolCharge::RequestorQuota => {
            // SAFETY: as in `allocate`; null when the pool or the quota is spent.
            let raw = unsafe { nt::allocate_nonpaged_quota(bytes, TAG) };
            NonNull::new(raw.cast::<u8>())
        }
    }
}

/// Frees a block from [`allocate`]. IRQL <= DISPATCH_LEVEL.
///
/// # Safety
/// `block` came from [`allocate`] and is not used again.
pub unsafe fn free(block: NonNull<u8>) {
    // SAFETY: the caller's contract; the tag matches the allocation's.
    unsafe { nt::ExFreePoolWithTag(block.as_ptr().cast(), TAG) };
}

/// A `T` in nonpaged pool: what the driver keeps in file-object contexts and event
/// storage, where the value must not move.
///
/// Invariant: `ptr` points at an initialised `T` in a block from [`allocate`], owned by
/// this box.
pub struct PoolBox<T> {
    ptr: NonNull<T>,
}

// SAFETY: a PoolBox owns its T like Box does; sending or sharing it is as safe as
// sending or sharing the T.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Moves `value` into pool, or gives it back if the pool is exhausted.
    ///
    /// # Errors
    /// The value itself, when no memory is left.
    pub fn try_new(value: T) -> Result<Self, T> {
        const {
            assert!(
                core::mem::align_of::<T>() <= 16,
                "pool blocks are 16-byte aligned"
            )
        };
        let Some(block) = allocate(core::mem::size_of::<T>().max(1)) else {
            return Err(value);
        };
        let ptr = block.cast::<T>();
        // SAFETY: the block is fresh, large enough and aligned for T (assert above).
        unsafe { ptr.write(value) };
        Ok(Self { ptr })
    }

    /// Gives up ownership: the caller stores the pointer (e.g. in `FsContext`) and
    /// rebuilds the box with [`Self::from_raw`] exactly once.
    #[must_use]
    pub fn into_raw(self) -> NonNull<T> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    /// Takes back ownership of a pointer from [`Self::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` and is not used afterwards.
    #[must_use]
    pub const unsafe fn from_raw(ptr: NonNull<T>) -> Self {
        Self { ptr }
    }
}

impl<T> core::ops::Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the invariant: an initialised T we own.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: we own an initialised T; drop it, then free its block, once.
        unsafe {
            self.ptr.drop_in_place();
            free(self.ptr.cast());
        }
    }
}

/// A `T` in nonpaged pool shared by reference count: the core's `Platform::Shared`,
/// what a child KS object holds of its parent.
///
/// Invariant: `ptr` points at an initialised [`Counted`] in a block from [`allocate`];
/// `count` is the number of `PoolArc`s pointing at it; the last drop frees it.
pub struct PoolArc<T> {
    ptr: NonNull<Counted<T>>,
}

/// The block behind a [`PoolArc`].
struct Counted<T> {
    count: AtomicUsize,
    value: T,
}

// SAFETY: like `Arc`: shared `&T` across threads needs `T: Sync`, and the last drop may
// run on any thread, which needs `T: Send`.
unsafe impl<T: Send + Sync> Send for PoolArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PoolArc<T> {}

impl<T> PoolArc<T> {
    /// Moves `value` into pool with a count of one, or gives it back.
    ///
    /// # Errors
    /// The value itself, when no memory is left.
    pub fn try_new(value: T) -> Result<Self, T> {
        PoolBox::try_new(Counted {
            count: AtomicUsize::new(1),
            value,
        })
        .map(|boxed| Self {
            ptr: boxed.into_raw(),
        })
        .map_err(|counted| counted.value)
    }

    fn counted(&self) -> &Counted<T> {
        // SAFETY: the invariant: live while this PoolArc exists.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Clone for PoolArc<T> {
    fn clone(&self) -> Self {
        // Relaxed: taking a new reference needs no ordering; the one cloned from keeps
        // the block alive meanwhile (as in `Arc`).
        self.counted().count.fetch_add(1, Ordering::Relaxed);
        Self { ptr: self.ptr }
    }
}

impl<T> core::ops::Deref for PoolArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.counted().value
    }
}

impl<T> Drop for PoolArc<T> {
    fn drop(&mut self) {
        // Release: every use of the value through this reference happens before the
        // count drops; the Acquire fence makes all of them visible to the last dropper
        // before it frees (as in `Arc`).
        if self.counted().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero: this was the last reference; the block came
        // from PoolBox::into_raw in try_new and is taken back once, here.
        drop(unsafe { PoolBox::from_raw(self.ptr) });
    }
}
