//! Nonpaged pool: blocks with leak accounting and bounds-checked access, and fault
//! injection shared with an optional global allocator.
//!
//! Fault injection is per thread: [`fail_nth_allocation`] arms a countdown that every
//! pool allocation on the calling thread consumes — the model's frame blocks, and, in a
//! test binary that installs [`FaultyGlobal`] as its `#[global_allocator]`, every heap
//! allocation the core makes (on Windows those come from nonpaged pool through
//! wdm-nt's pool allocator). So "fail each allocation of a create path in turn" is a loop over `n`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

thread_local! {
    /// Allocations left before the armed failure (0: disarmed).
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    static FIRED: Cell<bool> = const { Cell::new(false) };
    /// Count only allocations made inside [`in_driver`] (the client's own are not pool).
    static DRIVER_ONLY: Cell<bool> = const { Cell::new(false) };
    /// Depth of [`in_driver`] regions on this thread.
    static IN_DRIVER: Cell<u32> = const { Cell::new(0) };
    /// Depth of [`host`] regions: the model's own bookkeeping, never a fault point.
    static HOST: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` as the model's own bookkeeping (the Vec behind a pool block, an `Arc`
/// standing in for a kernel object): its heap allocations are host memory and never
/// consume the fault countdown, which belongs to the driver's allocations.
pub(crate) fn host<R>(f: impl FnOnce() -> R) -> R {
    HOST.with(|d| d.set(d.get() + 1));
    let result = f();
    HOST.with(|d| d.set(d.get() - 1));
    result
}

/// Arms a failure of the `n`th pool allocation (1-based) on this thread from now on.
pub fn fail_nth_allocation(n: u64) {
    COUNTDOWN.with(|c| c.set(n));
    FIRED.with(|f| f.set(false));
    DRIVER_ONLY.with(|d| d.set(false));
}

/// Like [`fail_nth_allocation`], counting only the driver's allocations.
///
/// Only allocations inside [`in_driver`] count, so a test can drive creates through the
/// client, whose own allocations are host memory, not the kernel's pool.
pub fn fail_nth_driver_allocation(n: u64) {
    fail_nth_allocation(n);
    DRIVER_ONLY.with(|d| d.set(true));
}

/// Runs `f` as driver code: its allocations are pool allocations for
/// [`fail_nth_driver_allocation`].
pub fn in_driver<R>(f: impl FnOnce() -> R) -> R {
    IN_DRIVER.with(|d| d.set(d.get() + 1));
    let result = f();
    IN_DRIVER.with(|d| d.set(d.get() - 1));
    result
}

/// Disarms the countdown; returns whether the armed failure fired.
pub fn disarm() -> bool {
    COUNTDOWN.with(|c| c.set(0));
    FIRED.with(Cell::get)
}

/// Consumes one step of the countdown; `true` means "fail this allocation".
pub(crate) fn fault_point() -> bool {
    // try_with: the global allocator may run while thread-locals are being torn down.
    if HOST.try_with(Cell::get).unwrap_or(1) > 0 {
        return false;
    }
    let driver_only = DRIVER_ONLY.try_with(Cell::get).unwrap_or(false);
    if driver_only && IN_DRIVER.try_with(Cell::get).unwrap_or(0) == 0 {
        return false;
    }
    COUNTDOWN
        .try_with(|c| match c.get() {
            0 => false,
            1 => {
                c.set(0);
                let _ = FIRED.try_with(|f| f.set(true));
                true
            }
            n => {
                c.set(n - 1);
                false
            }
        })
        .unwrap_or(false)
}

/// A global allocator that honours the thread's fault countdown, for test binaries
/// that fault-inject the core's own heap allocations.
pub struct FaultyGlobal;

// SAFETY: delegates to `System`, which upholds GlobalAlloc's contract; returning null
// for an injected failure is allowed by that contract.
unsafe impl GlobalAlloc for FaultyGlobal {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if fault_point() {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (we never hand out
        // anything else).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// A block handed out by the model pool: only its address and size (the pool owns the
/// bytes, so a block returned twice or touched after free is caught, not undefined).
#[derive(Debug)]
pub struct ModelMemory {
    pub(crate) base: usize,
    pub(crate) bytes: usize,
    /// Charged to the user process's quota (`POOL_FLAG_USE_QUOTA`).
    pub(crate) quota: bool,
}

impl ksalloc_core::platform::FrameMemory for ModelMemory {
    fn base(&self) -> usize {
        self.base
    }
}

struct Block {
    storage: Box<[u8]>,
    base: usize,
    bytes: usize,
}

/// The pool's books.
#[derive(Default)]
pub(crate) struct Pool {
    live: BTreeMap<usize, Block>,
    pub(crate) allocations: u64,
    pub(crate) frees: u64,
    pub(crate) failures: u64,
    /// The user process's pool quota (`None`: unlimited) and what is charged to it.
    pub(crate) quota_limit: Option<usize>,
    pub(crate) quota_used: usize,
}

impl Pool {
    pub(crate) fn allocate(&mut self, bytes: usize, align: usize) -> ModelMemory {
        assert!(
            align.is_power_of_two(),
            "pool alignment must be a power of two"
        );
        host(|| {
            let mut storage = vec![0u8; bytes + align].into_boxed_slice();
            let start = storage.as_mut_ptr() as usize;
            let base = start.next_multiple_of(align);
            self.allocations += 1;
            self.live.insert(
                base,
                Block {
                    storage,
                    base,
                    bytes,
                },
            );
            ModelMemory {
                base,
                bytes,
                quota: false,
            }
        })
    }

    /// Charges `bytes` to the process quota if they fit ("ExAllocatePool2": with
    /// `POOL_FLAG_USE_QUOTA` the allocation fails when the quota is exceeded).
    pub(crate) fn charge_quota(&mut self, bytes: usize) -> bool {
        let total = self.quota_used.saturating_add(bytes);
        if self.quota_limit.is_some_and(|limit| total > limit) {
            return false;
        }
        self.quota_used = total;
        true
    }

    pub(crate) fn free(&mut self, memory: &ModelMemory) {
        let block = self
            .live
            .remove(&memory.base)
            .unwrap_or_else(|| panic!("BAD_POOL_CALLER: free of unknown block {:#x}", memory.base));
        assert_eq!(
            block.bytes, memory.bytes,
            "pool block freed with a different size"
        );
        if memory.quota {
            // Freeing returns the quota to the process it was charged to.
            self.quota_used -= memory.bytes;
        }
        self.frees += 1;
    }

    /// Whether `address` lies inside a live block (a kernel address, for leak checks).
    pub(crate) fn contains(&self, address: usize) -> bool {
        self.live
            .range(..=address)
            .next_back()
            .is_some_and(|(_, block)| address < block.base + block.bytes.max(1))
    }

    pub(crate) fn live_blocks(&self) -> usize {
        self.live.len()
    }

    pub(crate) fn live_bytes(&self) -> usize {
        self.live.values().map(|b| b.bytes).sum()
    }

    /// The bytes `[address, address + len)` of a live block.
    ///
    /// # Panics
    /// If the range is not inside one live block: a wild or use-after-free access,
    /// which on Windows is a bugcheck.
    pub(crate) fn bytes_mut(&mut self, address: usize, len: usize) -> &mut [u8] {
        let (_, block) = self
            .live
            .range_mut(..=address)
            .next_back()
            .unwrap_or_else(|| {
                panic!("PAGE_FAULT_IN_NONPAGED_AREA: {address:#x} is in no pool block")
            });
        let end = address.checked_add(len).expect("address range overflows");
        assert!(
            end <= block.base + block.bytes,
            "PAGE_FAULT_IN_NONPAGED_AREA: {address:#x}+{len} runs past its block"
        );
        let offset = address - block.storage.as_ptr() as usize;
        &mut block.storage[offset..offset + len]
    }
}
