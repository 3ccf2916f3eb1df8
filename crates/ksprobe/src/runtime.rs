//! The global allocator over nonpaged pool in both builds (wdk-alloc would import
//! ExAllocatePool2, which kernels before Windows 10 2004, Wine and ReactOS lack), and for
//! the Linux cross-build a panic handler that bugchecks, plus the `_fltused` marker
//! MSVC-style links expect.

use core::alloc::{GlobalAlloc, Layout};

use crate::nt;

/// Pool tag `KspR` (read backwards in pool dumps).
const TAG: u32 = u32::from_le_bytes(*b"KspR");
/// `NonPagedPoolNx`: every kernel has ExAllocatePoolWithTag; not all have ExAllocatePool2.
const NON_PAGED_POOL_NX: nt::POOL_TYPE = 512;

/// Heap allocations come from nonpaged pool, as with wdk-alloc.
struct PoolAllocator;

// SAFETY: returns null or a fresh pool block of at least `size` bytes aligned to 16 (pool
// blocks of x64 are 16-byte aligned); larger alignments are refused with null, which
// GlobalAlloc permits.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > 16 {
            return core::ptr::null_mut();
        }
        // SAFETY: any IRQL <= DISPATCH_LEVEL for nonpaged pool; the size is non-zero.
        unsafe { nt::ExAllocatePoolWithTag(NON_PAGED_POOL_NX, layout.size().max(1) as _, TAG) }
            .cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` above, with this tag.
        unsafe { nt::ExFreePoolWithTag(ptr.cast(), TAG) };
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;

#[cfg(nt_source = "mingw")]
/// A Rust panic in the kernel stops the machine, as wdk-panic does: bugcheck 0x4B535052
/// ("KSPR").
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: KeBugCheckEx never returns; callable at any IRQL.
    unsafe { nt::KeBugCheckEx(0x4B53_5052, 0, 0, 0, 0) }
}

#[cfg(nt_source = "mingw")]
/// Tells an MSVC-style link that floating point is in use (no CRT provides it here).
#[unsafe(no_mangle)]
#[used]
static _fltused: i32 = 0;
