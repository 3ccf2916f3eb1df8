//! The driver's global allocator over nonpaged pool, in both builds: wdk-alloc would
//! call ExAllocatePool2 directly and so import it, and a kernel without it (Windows
//! before 10 2004, Wine, ReactOS) would refuse to load the driver; `pool` resolves it at
//! run time instead. For the Linux cross-build (wdk-panic needs wdk-sys, which needs the
//! WDK) also a panic handler that bugchecks as wdk-panic's does, and the `_fltused`
//! marker MSVC-style links expect.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

use crate::pool;

/// Heap allocations (the core's create-time metadata) come from nonpaged pool, as
/// with wdk-alloc.
struct PoolAllocator;

// SAFETY: returns null or a fresh pool block of at least `size` bytes aligned to 16;
// larger alignments are refused with null, which GlobalAlloc permits.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        pool::allocate(layout.size().max(1)).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        if let Some(block) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` above.
            unsafe { pool::free(block) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

#[cfg(nt_source = "mingw")]
/// A Rust panic in the kernel stops the machine, as wdk-panic does: bugcheck 0x52504E43
/// ("RPNC").
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; any IRQL.
    unsafe { crate::nt::KeBugCheckEx(0x5250_4E43, 0, 0, 0, 0) }
}

#[cfg(nt_source = "mingw")]
/// Tells an MSVC-style link that floating point is in use (no CRT provides it here).
#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;
