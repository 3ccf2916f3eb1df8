//! Pool and heap fault injection into `Allocator::create`, and proof that nothing after
//! create allocates.
//!
//! This binary installs ksalloc-model's `FaultyGlobal`, so `fail_nth_allocation(n)` fails
//! the `n`th allocation of the calling thread, whether it is one of the core's heap
//! allocations (the free list's links, the pending ring, the event table) or one of the
//! model kernel's pool allocations (the internal event, the frame block). The model's
//! own bookkeeping never counts.

use ks_abi::ks::{pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::allocator::MIN_FRAMES_PER_PROCESSOR;
use ksalloc_core::{AllocOutcome, Allocator};
use ksalloc_model::pool::{disarm, fail_nth_allocation, FaultyGlobal};
use ksalloc_model::{ModelKernel, RequestorMode};

#[global_allocator]
static GLOBAL: FaultyGlobal = FaultyGlobal;

/// Framings of different shapes: frame counts, sizes, alignments, option bits.
const FRAMINGS: [KsAllocatorFraming; 4] = [
    framing(1, 1, 0, 0),
    framing(4, 600, 63, 0x1),
    framing(16, 4096, 4095, 0xF),
    framing(300, 100, 7, 0x2),
];

const fn framing(
    frames: u32,
    frame_size: u32,
    file_alignment: u32,
    options_flags: u32,
) -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags,
        pool_type: pool_type::NON_PAGED,
        frames,
        frame_size,
        file_alignment,
        reserved: 0,
    }
}

/// How a create with the `n`th allocation failing went.
#[derive(Debug, PartialEq, Eq)]
struct Attempt {
    fired: bool,
    result: Result<(), NtStatus>,
    live_blocks: usize,
    /// Whether the failure that fired was the model pool's (the frame block).
    pool_failed: bool,
}

fn attempt(raw: &KsAllocatorFraming, n: u64) -> Attempt {
    let kernel = ModelKernel::new();
    let failures_before = kernel.pool_failures();
    fail_nth_allocation(n);
    let created = Allocator::create(kernel.clone(), raw);
    let fired = disarm();
    let result = created.as_ref().map(drop).map_err(|&s| s);
    drop(created);
    Attempt {
        fired,
        result,
        live_blocks: kernel.live_blocks(),
        pool_failed: kernel.pool_failures() > failures_before,
    }
}

/// Fails allocation 1, 2, ... of create in turn until create succeeds with the armed
/// failure not fired: each failed create returns `STATUS_INSUFFICIENT_RESOURCES` and
/// leaves nothing allocated. Returns the allocation points as (heap, pool).
fn fail_each_allocation_point(raw: &KsAllocatorFraming) -> (u64, u64) {
    let (mut heap, mut pool) = (0, 0);
    for n in 1.. {
        let a = attempt(raw, n);
        if !a.fired {
            assert_eq!(a.result, Ok(()), "nothing failed, {raw:?}");
            assert_eq!(a.live_blocks, 0, "a dropped idle allocator keeps no pool");
            break;
        }
        assert_eq!(
            a.result,
            Err(NtStatus::INSUFFICIENT_RESOURCES),
            "create with allocation {n} failing, {raw:?}"
        );
        assert_eq!(a.live_blocks, 0, "allocation {n} failing leaked pool");
        if a.pool_failed {
            pool += 1;
        } else {
            heap += 1;
        }
    }
    (heap, pool)
}

#[test]
fn create_fails_cleanly_at_each_allocation_point() {
    // Pools big enough for magazines (16 and 300 frames on the model's two
    // processors) also allocate their processor calls (one KDPC per processor) in pool.
    let magazines = |raw: &KsAllocatorFraming| {
        let processors = u32::try_from(ModelKernel::DEFAULT_PROCESSORS).unwrap();
        u64::from(raw.frames >= MIN_FRAMES_PER_PROCESSOR * processors)
    };
    let mut points = Vec::new();
    for raw in &FRAMINGS {
        let (heap, pool) = fail_each_allocation_point(raw);
        points.push((heap, pool - magazines(raw)));
        // And with nothing failing, the same create succeeds and cleans up after itself.
        let kernel = ModelKernel::new();
        let alloc = Allocator::create(kernel.clone(), raw).expect("no fault armed");
        let calls = usize::try_from(magazines(raw)).unwrap();
        assert_eq!(kernel.live_blocks(), 1 + calls);
        assert_eq!(alloc.close(), 0);
        assert_eq!(
            kernel.live_blocks(),
            calls,
            "close of an idle allocator frees its frames (its calls go with it)"
        );
        drop(alloc);
        kernel.assert_no_leaks();
    }
    println!("allocation points of Allocator::create (heap, pool), per framing: {points:?}");
    // The same points for every framing apart from the calls: every pool has its
    // per-processor slots (the counters, and the magazines when the pool is big enough).
    assert_eq!(
        FRAMINGS.iter().map(magazines).collect::<Vec<_>>(),
        [0, 1, 1, 1],
        "the framings cover both kinds of pool"
    );
    let base = points[0];
    assert!(base.0 > 0 && base.1 > 0, "{points:?}");
    for &p in &points {
        assert_eq!(p, base, "every framing allocates the same way: {points:?}");
    }
}

/// `set_random_faults`: every create either succeeds or fails with
/// `STATUS_INSUFFICIENT_RESOURCES` and nothing allocated; a created allocator works and
/// cleans up.
#[test]
fn random_pool_faults_never_leak() {
    let mut outcomes = [0_u32; 2];
    for seed in 0..200 {
        let kernel = ModelKernel::new();
        kernel.set_random_faults(0.5, seed);
        let raw = &FRAMINGS[usize::try_from(seed).unwrap() % FRAMINGS.len()];
        match Allocator::create(kernel.clone(), raw) {
            Err(status) => {
                assert_eq!(status, NtStatus::INSUFFICIENT_RESOURCES);
                assert_eq!(kernel.live_blocks(), 0);
                outcomes[0] += 1;
            }
            Ok(alloc) => {
                let frames: Vec<usize> =
                    std::iter::from_fn(|| alloc.table_allocate().ok()).collect();
                assert_eq!(frames.len(), raw.frames as usize);
                for f in frames {
                    alloc.free(f).unwrap();
                }
                alloc.close();
                drop(alloc);
                outcomes[1] += 1;
            }
        }
        kernel.assert_no_leaks();
    }
    assert!(
        outcomes.iter().all(|&n| n > 0),
        "both outcomes happen: {outcomes:?}"
    );
}

/// The DISPATCH_LEVEL rule: after create, nothing the allocator does allocates, so no
/// allocation can fail. The first allocation is armed to fail; a workload of every entry
/// point (table allocate and free, ALLOC that pends, is served, is cancelled, double and
/// foreign frees, close with a request pending, the last free after close) must not fire
/// it.
#[test]
fn nothing_after_create_allocates() {
    let kernel = ModelKernel::new();
    let alloc = std::sync::Arc::new(Allocator::create(kernel.clone(), &FRAMINGS[1]).unwrap());
    let irps: Vec<_> = (0..4)
        .map(|_| {
            let irp = kernel.new_irp(RequestorMode::Kernel, vec![], 8);
            let a = std::sync::Arc::clone(&alloc);
            irp.set_cancel_routine(Box::new(move |irp| {
                a.cancel(ksalloc_core::RequestHandle::key(irp));
            }));
            irp
        })
        .collect();
    let mut held = Vec::with_capacity(8);

    fail_nth_allocation(1);
    alloc.acquire_function_table().unwrap();
    while let Ok(f) = alloc.table_allocate() {
        held.push(f);
    }
    for irp in &irps {
        assert_eq!(alloc.method_alloc(irp), AllocOutcome::Pended);
    }
    assert!(irps[1].cancel());
    let last = *held.last().unwrap();
    alloc.free(last).unwrap(); // straight to irps[0]
    alloc.free(last).unwrap(); // irps[0]'s client returns it: straight to irps[2]
    assert_eq!(alloc.free(last + 1), Err(NtStatus::INVALID_PARAMETER));
    assert_eq!(alloc.free(0x10), Err(NtStatus::INVALID_PARAMETER));
    assert_eq!(alloc.close(), 1, "irps[3] was still pending");
    alloc.free(last).unwrap(); // irps[2]'s client, after close
    assert_eq!(alloc.free(last), Err(NtStatus::INVALID_PARAMETER));
    held.pop();
    for f in held {
        alloc.free(f).unwrap();
    }
    let _ = alloc.snapshot();
    let fired = disarm();

    assert!(!fired, "an operation after create allocated");
    assert!(alloc.is_drained());
    drop(irps);
    drop(alloc);
    kernel.assert_no_leaks();
}
