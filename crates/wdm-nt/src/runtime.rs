//! The drivers' global allocator over nonpaged pool, in both builds, and for the Linux
//! cross-build the panic handler and `_fltused` marker the WDK build gets elsewhere.
//!
//! wdk-alloc is not used even in the WDK build: it calls ExAllocatePool2 directly, so
//! the image would import it, and a kernel without it (Windows before 10 2004, Wine,
//! ReactOS) would refuse to load the driver. [`allocate_nonpaged`] resolves it at run
//! time instead. wdk-panic needs wdk-sys, which needs the WDK, so the cross-build
//! bugchecks here with wdk-panic's code.

use core::alloc::{GlobalAlloc, Layout};

use crate::bindings::ExFreePoolWithTag;
use crate::optional::allocate_nonpaged;

/// Heap allocations (create-time metadata) from nonpaged pool under the driver's pool
/// tag `TAG`, as with wdk-alloc. Blocks are 16-byte aligned (x64 pool); a larger
/// alignment is refused with null, which `GlobalAlloc` permits.
pub struct PoolAllocator<const TAG: u32>;

// SAFETY: returns null or a fresh pool block of at least `size` bytes aligned to 16, and
// frees only blocks it returned, with the same tag.
unsafe impl<const TAG: u32> GlobalAlloc for PoolAllocator<TAG> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: GlobalAlloc callers in these drivers run at <= DISPATCH_LEVEL.
        unsafe { allocate_nonpaged(layout.size().max(1), TAG) }.cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` above, with this tag.
        unsafe { ExFreePoolWithTag(ptr.cast(), TAG) };
    }
}

/// A Rust panic in the kernel stops the machine, as wdk-panic does: bugcheck 0x52504E43
/// ("RPNC").
#[cfg(nt_source = "mingw")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; any IRQL.
    unsafe { crate::bindings::KeBugCheckEx(0x5250_4E43, 0, 0, 0, 0) }
}

/// Tells an MSVC-style link that floating point is in use (no CRT provides it here).
#[cfg(nt_source = "mingw")]
#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;
