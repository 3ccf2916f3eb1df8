//! Conformance of the allocator engine on the model kernel: one named test per
//! behaviour of issue "The allocator engine", each asserting statuses, counters and the
//! conservation law.

#![allow(clippy::needless_for_each, clippy::too_many_lines)] // Table-driven tests read better this way.
use std::sync::{Arc, Weak};
use std::time::Duration;

use ks_abi::ks::{file_alignment, pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::allocator::{magazine_capacity, MAX_CLIENT_EVENTS, MIN_FRAMES_PER_PROCESSOR};
use ksalloc_core::magazine::CAPACITY;
use ksalloc_core::pending::MAX_PENDING;
use ksalloc_core::{AllocOutcome, Allocator, Irql, RequestHandle, Snapshot};
use ksalloc_model::{bind_processor, raise_irql, Irp, ModelEvent, ModelKernel, RequestorMode};

type Alloc = Arc<Allocator<ModelKernel>>;

const fn framing(frames: u32, frame_size: u32, alignment: u32) -> KsAllocatorFraming {
    KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames,
        frame_size,
        file_alignment: alignment,
        reserved: 0,
    }
}

fn create(kernel: &ModelKernel, frames: u32) -> Alloc {
    Arc::new(
        Allocator::create(kernel.clone(), &framing(frames, 256, file_alignment::B64))
            .expect("valid framing"),
    )
}

/// An ALLOC IRP whose cancel routine calls the allocator's, as the dispatcher installs it.
fn alloc_irp(kernel: &ModelKernel, alloc: &Alloc) -> Irp {
    let irp = kernel.new_irp(RequestorMode::Kernel, Vec::new(), 8);
    let weak: Weak<Allocator<ModelKernel>> = Arc::downgrade(alloc);
    irp.set_cancel_routine(Box::new(move |irp| {
        if let Some(alloc) = weak.upgrade() {
            alloc.cancel(irp.key());
        }
    }));
    irp
}

/// Completes an IRP the way a dispatcher does with a synchronous outcome.
fn finish(irp: &Irp, outcome: AllocOutcome) {
    match outcome {
        AllocOutcome::Ready(address) => {
            irp.write_output(&address.to_le_bytes());
            irp.complete(NtStatus::SUCCESS, 8);
        }
        AllocOutcome::Failed(status) => irp.complete(status, 0),
        AllocOutcome::Pended => {}
    }
}

fn at_dispatch<R>(f: impl FnOnce() -> R) -> R {
    let _irql = raise_irql(Irql::Dispatch);
    f()
}

fn take_all(alloc: &Alloc) -> Vec<usize> {
    at_dispatch(|| std::iter::from_fn(|| alloc.table_allocate().ok()).collect())
}

#[track_caller]
fn assert_conserved(alloc: &Alloc) -> Snapshot {
    let snap = alloc.snapshot();
    assert!(snap.conserved(), "conservation broken: {snap:?}");
    snap
}

// ---- framing -------------------------------------------------------------------------

#[test]
fn framing_rejections_have_documented_statuses_and_allocate_nothing() {
    let ok = framing(4, 256, file_alignment::QUAD);
    let cases: &[(&str, KsAllocatorFraming, NtStatus)] = &[
        (
            "zero frames",
            KsAllocatorFraming { frames: 0, ..ok },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "too many frames",
            KsAllocatorFraming {
                frames: (1 << 20) + 1,
                frame_size: 1,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "zero frame size",
            KsAllocatorFraming {
                frame_size: 0,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "unknown option bit",
            KsAllocatorFraming {
                options_flags: 0x10,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "preferences only",
            KsAllocatorFraming {
                options_flags: 0x8000_0000,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "paged pool",
            KsAllocatorFraming {
                pool_type: pool_type::PAGED,
                ..ok
            },
            NtStatus::NOT_SUPPORTED,
        ),
        (
            "unknown pool",
            KsAllocatorFraming { pool_type: 7, ..ok },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "alignment not 2^n-1",
            KsAllocatorFraming {
                file_alignment: 5,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "alignment above a page",
            KsAllocatorFraming {
                file_alignment: 0x1FFF,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "alignment wraps",
            KsAllocatorFraming {
                file_alignment: u32::MAX,
                ..ok
            },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "reserved set",
            KsAllocatorFraming { reserved: 1, ..ok },
            NtStatus::INVALID_PARAMETER,
        ),
        (
            "over 256 MiB",
            KsAllocatorFraming {
                frames: 1 << 20,
                frame_size: 4096,
                ..ok
            },
            NtStatus::INSUFFICIENT_RESOURCES,
        ),
        (
            "u32 frame size rounds past 4 GiB",
            KsAllocatorFraming {
                frames: 2,
                frame_size: u32::MAX,
                file_alignment: 0xFFF,
                ..ok
            },
            NtStatus::INSUFFICIENT_RESOURCES,
        ),
    ];
    let kernel = ModelKernel::new();
    for (name, raw, status) in cases {
        let got = Allocator::create(kernel.clone(), raw).err();
        assert_eq!(got, Some(*status), "{name}");
        assert_eq!(
            kernel.live_blocks(),
            0,
            "{name}: a rejected framing allocated pool"
        );
    }
}

#[test]
fn framing_boundaries_are_accepted() {
    let kernel = ModelKernel::new();
    for raw in [
        framing(1, 1, file_alignment::BYTE),
        framing(3, 1, 0xFFF),
        KsAllocatorFraming {
            options_flags: 0x0F,
            ..framing(2, 100, file_alignment::LONG)
        },
        framing(1 << 16, 4096, file_alignment::B512),
    ] {
        let alloc = Allocator::create(kernel.clone(), &raw).expect("accepted");
        let f = alloc.framing();
        assert_eq!(f.stride() % f.align(), 0);
        assert!(f.stride() >= f.frame_size());
        alloc.close();
        drop(alloc);
    }
    kernel.assert_no_leaks();
}

// ---- frame pool ----------------------------------------------------------------------

#[test]
fn create_preallocates_one_aligned_block_of_distinct_writable_frames() {
    // Eight processors: below the magazine rule, so the frames are the only pool block
    // (a magazine pool also allocates its processor calls).
    let kernel = ModelKernel::with_processors(8);
    let alloc = Arc::new(
        Allocator::create(kernel.clone(), &framing(8, 100, file_alignment::B128)).unwrap(),
    );
    assert_eq!(kernel.live_blocks(), 1, "one block for all frames");
    assert_eq!(
        kernel.live_bytes(),
        8 * 128,
        "frames padded to the alignment"
    );
    let frames = take_all(&alloc);
    assert_eq!(frames.len(), 8);
    let mut sorted = frames.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 8, "every frame distinct");
    for (n, &frame) in frames.iter().enumerate() {
        assert_eq!(frame % 128, 0, "frame {frame:#x} misaligned");
        #[allow(clippy::cast_possible_truncation)]
        kernel.with_bytes(frame, 100, |bytes| bytes.fill(n as u8));
    }
    for (n, &frame) in frames.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation)]
        kernel.with_bytes(frame, 100, |bytes| {
            assert!(bytes.iter().all(|&b| b == n as u8), "frames overlap");
        });
    }
    assert_eq!(kernel.live_blocks(), 1, "the hot path made no pool call");
    at_dispatch(|| frames.iter().for_each(|&f| alloc.free(f).unwrap()));
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn table_allocate_hands_out_every_frame_once_then_fails_fast() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 4);
    let frames = take_all(&alloc);
    assert_eq!(frames.len(), 4);
    assert_eq!(
        at_dispatch(|| alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.free, snap.outstanding), (0, 4));
    assert_eq!(snap.counters.allocations, 4);
    assert_eq!(
        snap.counters.failed_allocations, 2,
        "the take_all probe and the explicit call"
    );
    assert_eq!(snap.counters.peak_outstanding, 4);
    at_dispatch(|| frames.iter().for_each(|&f| alloc.free(f).unwrap()));
    let snap = assert_conserved(&alloc);
    assert_eq!(
        (snap.free, snap.outstanding, snap.counters.frees),
        (4, 0, 4)
    );
    alloc.close();
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn free_rejects_foreign_misaligned_and_double_frees_without_changing_state() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 4);
    let other = create(&kernel, 4);
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    let foreign = at_dispatch(|| other.table_allocate()).unwrap();
    let before = alloc.snapshot();
    let bad = [
        ("other allocator's frame", foreign),
        ("inside a frame", frame + 8),
        ("before the block", frame.wrapping_sub(4096)),
        ("past the block", frame + 4 * 256),
        ("null", 0),
        ("never handed out", frame + 256),
    ];
    for (name, address) in bad {
        assert_eq!(
            at_dispatch(|| alloc.free(address)),
            Err(NtStatus::INVALID_PARAMETER),
            "{name}"
        );
    }
    let after = alloc.snapshot();
    assert_eq!(
        (after.free, after.outstanding),
        (before.free, before.outstanding)
    );
    assert_eq!(after.counters.rejected_frees, 6);
    assert_eq!(after.counters.frees, 0);
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(
        at_dispatch(|| alloc.free(frame)),
        Err(NtStatus::INVALID_PARAMETER),
        "double free"
    );
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.free, snap.counters.rejected_frees), (4, 7));
    // The list is intact: exactly four distinct frames come out again.
    let mut again = take_all(&alloc);
    again.sort_unstable();
    again.dedup();
    assert_eq!(again.len(), 4);
    at_dispatch(|| {
        again.iter().for_each(|&f| alloc.free(f).unwrap());
        other.free(foreign).unwrap();
    });
    alloc.close();
    other.close();
    drop((alloc, other));
    kernel.assert_no_leaks();
}

// ---- ALLOC / FREE methods and pending requests ---------------------------------------

#[test]
fn alloc_method_completes_at_once_when_a_frame_is_free() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 2);
    let irp = alloc_irp(&kernel, &alloc);
    let outcome = alloc.method_alloc(&irp);
    let AllocOutcome::Ready(frame) = outcome else {
        panic!("expected a frame, got {outcome:?}")
    };
    finish(&irp, outcome);
    assert_eq!(irp.allocated_frame(), Some(frame));
    assert_eq!(alloc.snapshot().counters.pends, 0);
    at_dispatch(|| alloc.free(frame)).unwrap();
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn alloc_method_pends_when_empty_and_frees_complete_oldest_first() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 2);
    let frames = take_all(&alloc);
    let irps: Vec<Irp> = (0..3).map(|_| alloc_irp(&kernel, &alloc)).collect();
    for irp in &irps {
        assert_eq!(alloc.method_alloc(irp), AllocOutcome::Pended);
        assert!(irp.completion().is_none());
    }
    let snap = alloc.snapshot();
    assert_eq!((snap.pending, snap.counters.pends), (3, 3));
    at_dispatch(|| alloc.free(frames[1])).unwrap();
    assert_eq!(
        irps[0].allocated_frame(),
        Some(frames[1]),
        "the oldest gets the returned frame"
    );
    assert!(irps[1].completion().is_none() && irps[2].completion().is_none());
    at_dispatch(|| alloc.free(frames[0])).unwrap();
    assert_eq!(irps[1].allocated_frame(), Some(frames[0]));
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.pending, snap.outstanding, snap.free), (1, 2, 0));
    // The last waiter is served by the next free, even one of a frame a waiter got.
    at_dispatch(|| alloc.free(frames[1])).unwrap();
    assert_eq!(irps[2].allocated_frame(), Some(frames[1]));
    at_dispatch(|| {
        alloc.free(frames[0]).unwrap();
        alloc.free(frames[1]).unwrap();
    });
    let snap = assert_conserved(&alloc);
    assert_eq!(
        (snap.pending, snap.free, snap.counters.allocations),
        (0, 2, 5)
    );
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn table_allocate_fails_fast_while_alloc_requests_wait() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let frame = take_all(&alloc)[0];
    let irp = alloc_irp(&kernel, &alloc);
    assert_eq!(alloc.method_alloc(&irp), AllocOutcome::Pended);
    assert_eq!(
        at_dispatch(|| alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(
        irp.allocated_frame(),
        Some(frame),
        "the waiter, not the table, got it"
    );
    at_dispatch(|| alloc.free(frame)).unwrap();
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn cancel_completes_a_pending_alloc_with_cancelled_exactly_once() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let frame = take_all(&alloc)[0];
    let first = alloc_irp(&kernel, &alloc);
    let second = alloc_irp(&kernel, &alloc);
    assert_eq!(alloc.method_alloc(&first), AllocOutcome::Pended);
    assert_eq!(alloc.method_alloc(&second), AllocOutcome::Pended);
    assert!(first.cancel(), "the cancel routine ran");
    assert_eq!(
        first.completion().map(|c| c.status),
        Some(NtStatus::CANCELLED)
    );
    assert!(!first.cancel(), "a second cancel finds nothing armed");
    let snap = alloc.snapshot();
    assert_eq!((snap.pending, snap.counters.cancels), (1, 1));
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(
        second.allocated_frame(),
        Some(frame),
        "the survivor moved up"
    );
    assert!(!second.cancel(), "cancel after completion does nothing");
    at_dispatch(|| alloc.free(frame)).unwrap();
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn alloc_cancelled_before_it_is_queued_fails_with_cancelled() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let frame = take_all(&alloc)[0];
    let irp = alloc_irp(&kernel, &alloc);
    assert!(!irp.cancel(), "nothing armed yet");
    let outcome = alloc.method_alloc(&irp);
    assert_eq!(outcome, AllocOutcome::Failed(NtStatus::CANCELLED));
    finish(&irp, outcome);
    assert_eq!(alloc.snapshot().pending, 0);
    at_dispatch(|| alloc.free(frame)).unwrap();
    alloc.close();
    kernel.assert_no_leaks();
}

#[test]
fn pending_queue_is_bounded() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let frame = take_all(&alloc)[0];
    let irps: Vec<Irp> = (0..MAX_PENDING)
        .map(|_| alloc_irp(&kernel, &alloc))
        .collect();
    for irp in &irps {
        assert_eq!(alloc.method_alloc(irp), AllocOutcome::Pended);
    }
    let extra = alloc_irp(&kernel, &alloc);
    let outcome = alloc.method_alloc(&extra);
    assert_eq!(
        outcome,
        AllocOutcome::Failed(NtStatus::INSUFFICIENT_RESOURCES)
    );
    finish(&extra, outcome);
    #[allow(clippy::cast_possible_truncation)]
    let max = MAX_PENDING as u32;
    assert_eq!(alloc.snapshot().pending, max);
    assert_eq!(alloc.close(), MAX_PENDING, "close cancels every waiter");
    assert!(irps
        .iter()
        .all(|i| i.completion().map(|c| c.status) == Some(NtStatus::CANCELLED)));
    at_dispatch(|| alloc.free(frame)).unwrap();
    kernel.assert_no_leaks();
}

// ---- notification ----------------------------------------------------------------------

#[test]
fn function_table_acquisition_arms_the_internal_free_frame_event() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 2);
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert!(
        !alloc.internal_event().is_set(),
        "not armed before FUNCTIONTABLE"
    );
    alloc.acquire_function_table().unwrap();
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert!(alloc.internal_event().is_set(), "a free signals once armed");
    assert!(alloc.internal_event().wait(Duration::from_millis(1)));
    alloc.close();
    assert_eq!(
        alloc.acquire_function_table(),
        Err(NtStatus::INVALID_DEVICE_STATE)
    );
    kernel.assert_no_leaks();
}

#[test]
fn free_frame_events_are_signalled_on_free_and_disabled_by_close() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 2);
    let event = Arc::new(ModelEvent::notification());
    let key = Arc::as_ptr(&event) as usize;
    alloc.enable_free_frame_event(Arc::clone(&event)).unwrap();
    assert_eq!(
        alloc.enable_free_frame_event(Arc::clone(&event)),
        Err(NtStatus::INVALID_PARAMETER),
        "twice"
    );
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(event.set_count(), 1);
    alloc.disable_free_frame_event(key).unwrap();
    assert_eq!(
        alloc.disable_free_frame_event(key),
        Err(NtStatus::NOT_FOUND)
    );
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(event.set_count(), 1, "disabled events stay quiet");
    // Bounded, and close disables.
    let events: Vec<_> = (0..MAX_CLIENT_EVENTS)
        .map(|_| Arc::new(ModelEvent::notification()))
        .collect();
    events
        .iter()
        .for_each(|e| alloc.enable_free_frame_event(Arc::clone(e)).unwrap());
    let one_more = Arc::new(ModelEvent::notification());
    assert_eq!(
        alloc.enable_free_frame_event(one_more),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    alloc.close();
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert!(
        events.iter().all(|e| e.set_count() == 0),
        "close disabled them before the free"
    );
    assert_eq!(
        alloc.enable_free_frame_event(event),
        Err(NtStatus::INVALID_DEVICE_STATE)
    );
    kernel.assert_no_leaks();
}

// ---- STATUS ------------------------------------------------------------------------------

#[test]
fn status_reports_the_framing_and_frames_out() {
    let kernel = ModelKernel::new();
    let raw = framing(3, 300, file_alignment::OCTA);
    let alloc = Arc::new(Allocator::create(kernel.clone(), &raw).unwrap());
    let frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    let status = alloc.status();
    assert_eq!(status.framing, raw);
    assert_eq!((status.allocated_frames, status.reserved), (1, 0));
    at_dispatch(|| alloc.free(frame)).unwrap();
    assert_eq!(alloc.status().allocated_frames, 0);
    alloc.close();
    kernel.assert_no_leaks();
}

// ---- close and rundown --------------------------------------------------------------------

#[test]
fn close_cancels_pending_and_refuses_new_work() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let frame = take_all(&alloc)[0];
    let waiting = alloc_irp(&kernel, &alloc);
    assert_eq!(alloc.method_alloc(&waiting), AllocOutcome::Pended);
    assert_eq!(alloc.close(), 1);
    assert_eq!(
        waiting.completion().map(|c| c.status),
        Some(NtStatus::CANCELLED)
    );
    assert_eq!(
        at_dispatch(|| alloc.table_allocate()),
        Err(NtStatus::INVALID_DEVICE_STATE)
    );
    let late = alloc_irp(&kernel, &alloc);
    let outcome = alloc.method_alloc(&late);
    assert_eq!(
        outcome,
        AllocOutcome::Failed(NtStatus::INVALID_DEVICE_STATE)
    );
    finish(&late, outcome);
    assert_eq!(alloc.close(), 0, "a second close does nothing");
    at_dispatch(|| alloc.free(frame)).unwrap();
    kernel.assert_no_leaks();
}

#[test]
fn close_with_frames_out_keeps_memory_until_the_last_one_returns() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 3);
    let frames = take_all(&alloc);
    alloc.close();
    assert_eq!(kernel.live_blocks(), 1, "frames still out: memory stays");
    assert!(!alloc.is_drained());
    // Clients may still write their frames until they return them.
    kernel.with_bytes(frames[2], 256, |b| b.fill(0xAB));
    at_dispatch(|| alloc.free(frames[0])).unwrap();
    at_dispatch(|| alloc.free(frames[1])).unwrap();
    assert_eq!(kernel.live_blocks(), 1);
    assert_eq!(
        at_dispatch(|| alloc.free(frames[1])),
        Err(NtStatus::INVALID_PARAMETER),
        "double free after close"
    );
    at_dispatch(|| alloc.free(frames[2])).unwrap();
    assert!(alloc.is_drained());
    assert!(alloc.snapshot().memory_released);
    kernel.assert_no_leaks();
    assert_eq!(
        at_dispatch(|| alloc.free(frames[2])),
        Err(NtStatus::INVALID_PARAMETER),
        "free after drain"
    );
}

#[test]
fn close_with_nothing_out_releases_memory_at_once() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 3);
    alloc.close();
    assert!(alloc.is_drained());
    kernel.assert_no_leaks();
}

#[test]
fn dropping_an_undrained_allocator_leaks_rather_than_frees() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 2);
    let _frame = at_dispatch(|| alloc.table_allocate()).unwrap();
    drop(alloc);
    assert_eq!(
        kernel.live_blocks(),
        1,
        "owner broke the contract: the block is leaked, not freed under a client"
    );
}

// ---- IRQL contracts (the model's strictness) -----------------------------------------------

#[test]
#[should_panic(expected = "IRQL violation")]
fn create_at_dispatch_level_violates_its_irql_contract() {
    let kernel = ModelKernel::new();
    let _irql = raise_irql(Irql::Dispatch);
    let _ = Allocator::create(kernel, &framing(1, 1, 0));
}

#[test]
#[should_panic(expected = "IRQL violation")]
fn close_at_dispatch_level_violates_its_irql_contract() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 1);
    let _irql = raise_irql(Irql::Dispatch);
    alloc.close();
}

// ---- real threads --------------------------------------------------------------------------

#[test]
fn table_alloc_free_pend_and_cancel_race_on_real_threads() {
    // Below the magazine rule on the model's two processors: the shared list.
    race_on_real_threads(2 * MIN_FRAMES_PER_PROCESSOR - 1, false);
}

/// The same race with magazines: the smallest pool with them on the model's two processors, four
/// threads taking turns on them.
#[test]
fn table_alloc_free_pend_and_cancel_race_with_magazines() {
    race_on_real_threads(MAGAZINE_FRAMES, true);
}

fn race_on_real_threads(frames: u32, magazines: bool) {
    // Miri interprets every step: fewer rounds there, the same interleaving machinery.
    const ROUNDS: usize = if cfg!(miri) { 200 } else { 2_000 };
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, frames);
    assert_eq!(alloc.has_magazines(), magazines);
    alloc.acquire_function_table().unwrap();
    let completed_irps = std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let got = at_dispatch(|| alloc.table_allocate());
                    if let Ok(frame) = got {
                        kernel.with_bytes(frame, 8, |b| b.fill(1));
                        at_dispatch(|| alloc.free(frame)).unwrap();
                    }
                }
            });
        }
        let waiter = s.spawn(|| {
            let mut irps = Vec::new();
            for round in 0..ROUNDS / 4 {
                let irp = alloc_irp(&kernel, &alloc);
                let outcome = alloc.method_alloc(&irp);
                finish(&irp, outcome);
                if round % 3 == 0 {
                    irp.cancel();
                }
                let done = irp
                    .wait(Duration::from_secs(10))
                    .expect("no request waits forever");
                if done.status == NtStatus::SUCCESS {
                    at_dispatch(|| alloc.free(irp.allocated_frame().unwrap())).unwrap();
                } else {
                    assert_eq!(done.status, NtStatus::CANCELLED);
                }
                irps.push(irp);
            }
            irps
        });
        waiter.join().unwrap()
    });
    assert!(completed_irps.iter().all(|i| i.completion().is_some()));
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.free, snap.outstanding, snap.pending), (frames, 0, 0));
    assert_eq!(
        snap.counters.allocations, snap.counters.frees,
        "every frame handed out came back"
    );
    assert_eq!(snap.counters.rejected_frees, 0);
    assert!(
        snap.counters.peak_outstanding <= u64::from(frames),
        "failed attempts must not count as frames out: {}",
        snap.counters.peak_outstanding
    );
    alloc.close();
    drop(alloc);
    kernel.assert_no_leaks();
}

// ---- magazines -----------------------------------------------------------------------

/// A pool on the model's two processors just big enough for full magazines (`CAPACITY`
/// frames each).
const MAGAZINE_FRAMES: u32 = 2 * 2 * CAPACITY;

/// Runs `f` with the thread on `processor`, then unbinds it.
fn on<R>(processor: usize, f: impl FnOnce() -> R) -> R {
    bind_processor(Some(processor));
    let result = at_dispatch(f);
    bind_processor(None);
    result
}

/// Runs `f` with the thread on `processor` at PASSIVE_LEVEL, then unbinds it.
fn on_passive<R>(processor: usize, f: impl FnOnce() -> R) -> R {
    bind_processor(Some(processor));
    let result = f();
    bind_processor(None);
    result
}

#[test]
fn magazines_hold_half_a_processors_share_from_the_minimum_frames_per_processor() {
    for (processors, frames, capacity) in [
        (2, 2 * MIN_FRAMES_PER_PROCESSOR - 1, 0),
        (2, 2 * MIN_FRAMES_PER_PROCESSOR, 1),
        (2, 8, 2),
        (2, 15, 3),
        (2, MAGAZINE_FRAMES, CAPACITY),
        (2, 1000, CAPACITY),
        (1, 2, 1),
        (4, 7, 0),
        (4, 8, 1),
        (4, 4 * 2 * CAPACITY, CAPACITY),
    ] {
        assert_eq!(magazine_capacity(frames, processors), capacity);
        let kernel = ModelKernel::with_processors(processors as usize);
        let alloc = create(&kernel, frames);
        assert_eq!(
            (alloc.has_magazines(), alloc.magazine_capacity()),
            (capacity != 0, capacity),
            "{frames} frames, {processors} CPUs"
        );
    }
}

#[test]
fn a_small_magazine_caches_only_its_share() {
    // 8 frames on 2 processors: 2 per magazine, so at most half the pool is cached.
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, 8);
    let held: Vec<usize> = std::iter::from_fn(|| on(0, || alloc.table_allocate()).ok()).collect();
    assert_eq!(held.len(), 8);
    for &frame in &held[..3] {
        on(0, || alloc.free(frame)).unwrap();
    }
    let snap = assert_conserved(&alloc);
    assert_eq!(
        (snap.cached, snap.free),
        (2, 3),
        "the third went to the list"
    );
    give_back_and_close(&kernel, alloc, held[3..].to_vec(), 1);
}

#[test]
fn a_freed_frame_is_cached_on_its_processor_and_counted_free() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let a = on(0, || alloc.table_allocate()).unwrap();
    on(0, || alloc.free(a)).unwrap();
    let snap = assert_conserved(&alloc);
    assert_eq!(
        (snap.cached, snap.free, snap.outstanding),
        (1, MAGAZINE_FRAMES, 0)
    );
    assert_eq!(
        alloc.status().allocated_frames,
        0,
        "STATUS counts cached frames free"
    );
    // Processor 1 does not see processor 0's magazine while the shared list has frames...
    let b = on(1, || alloc.table_allocate()).unwrap();
    assert_ne!(a, b);
    // ...and processor 0 gets its cached frame back first.
    assert_eq!(on(0, || alloc.table_allocate()), Ok(a));
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.outstanding), (0, 2));
    assert_eq!((snap.counters.allocations, snap.counters.frees), (3, 1));
    // A double free of a cached frame is refused like any other.
    on(1, || alloc.free(b)).unwrap();
    assert_eq!(on(0, || alloc.free(b)), Err(NtStatus::INVALID_PARAMETER));
    assert_eq!(on(1, || alloc.free(b)), Err(NtStatus::INVALID_PARAMETER));
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.counters.rejected_frees), (1, 2));
    on(0, || alloc.free(a)).unwrap();
    alloc.close();
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn a_full_magazine_sends_the_next_free_to_the_shared_list() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let held: Vec<usize> = (0..=CAPACITY)
        .map(|_| on(0, || alloc.table_allocate()).unwrap())
        .collect();
    for &frame in &held {
        on(0, || alloc.free(frame)).unwrap();
    }
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.free), (CAPACITY, MAGAZINE_FRAMES));
    // The one that did not fit went to the shared list, where processor 1 finds it on top.
    assert_eq!(
        on(1, || alloc.table_allocate()),
        Ok(held[usize::try_from(CAPACITY).unwrap()])
    );
}

#[test]
fn an_empty_shared_list_takes_frames_cached_on_other_processors() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let mut held: Vec<usize> =
        std::iter::from_fn(|| on(0, || alloc.table_allocate()).ok()).collect();
    assert_eq!(held.len(), MAGAZINE_FRAMES as usize);
    let cached: Vec<usize> = held.drain(..2).collect();
    for &frame in &cached {
        on(1, || alloc.free(frame)).unwrap();
    }
    assert_eq!(alloc.snapshot().cached, 2);
    // Table allocate on processor 0 at PASSIVE_LEVEL: own magazine empty, shared list
    // empty, so it queues processor 1's call, which (processor 1 idle, the caller
    // below DISPATCH_LEVEL) runs at once and lists the frames for the second look.
    // At DISPATCH_LEVEL the call could not run before the second look: see
    // `a_table_miss_asks_the_caching_processor_and_its_call_lists_the_frames`.
    let got = on_passive(0, || alloc.table_allocate()).unwrap();
    assert!(cached.contains(&got));
    held.push(got);
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.free), (0, 1));
    // The ALLOC method does the same before it would pend.
    let irp = alloc_irp(&kernel, &alloc);
    let outcome = on_passive(0, || alloc.method_alloc(&irp));
    let AllocOutcome::Ready(last) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(cached.contains(&last) && last != got);
    finish(&irp, outcome);
    held.push(last);
    assert_eq!(
        on(1, || alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    give_back_and_close(&kernel, alloc, held, 1);
}

#[test]
fn frees_skip_magazines_while_an_alloc_waits() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let held = take_all(&alloc);
    let irp = alloc_irp(&kernel, &alloc);
    assert_eq!(on(0, || alloc.method_alloc(&irp)), AllocOutcome::Pended);
    on(1, || alloc.free(held[3])).unwrap();
    assert_eq!(
        irp.allocated_frame(),
        Some(held[3]),
        "the waiter got the frame"
    );
    on(1, || alloc.free(held[4])).unwrap();
    let snap = assert_conserved(&alloc);
    assert_eq!(
        (snap.cached, snap.pending),
        (1, 0),
        "no waiter: cached again"
    );
    on(0, || alloc.free(held[3])).unwrap();
    for (i, &frame) in held.iter().enumerate() {
        if i != 3 && i != 4 {
            on(i % 2, || alloc.free(frame)).unwrap();
        }
    }
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.free, snap.outstanding), (MAGAZINE_FRAMES, 0));
    assert_eq!(snap.counters.allocations, snap.counters.frees);
    alloc.close();
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn close_returns_cached_frames_and_releases_the_memory() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let a = on(0, || alloc.table_allocate()).unwrap();
    let b = on(1, || alloc.table_allocate()).unwrap();
    on(0, || alloc.free(a)).unwrap();
    on(1, || alloc.free(b)).unwrap();
    assert_eq!(alloc.snapshot().cached, 2);
    assert_eq!(
        kernel.live_blocks(),
        2,
        "the frames and the processor calls"
    );
    alloc.close();
    assert!(alloc.is_drained());
    let snap = alloc.snapshot();
    assert!(snap.memory_released && snap.cached == 0, "{snap:?}");
    // After close a free never caches: the frame would be stranded.
    assert_eq!(
        on(0, || alloc.table_allocate()),
        Err(NtStatus::INVALID_DEVICE_STATE)
    );
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn close_with_frames_out_and_cached_waits_for_the_last_one() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let a = on(0, || alloc.table_allocate()).unwrap();
    let b = on(0, || alloc.table_allocate()).unwrap();
    on(0, || alloc.free(a)).unwrap();
    alloc.close();
    assert!(!alloc.is_drained());
    assert_eq!(
        kernel.live_blocks(),
        2,
        "b is still out (and the calls are live)"
    );
    on(0, || alloc.free(b)).unwrap();
    let snap = alloc.snapshot();
    assert!(snap.memory_released && snap.cached == 0, "{snap:?}");
    assert!(alloc.is_drained());
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn dropping_an_open_allocator_with_cached_frames_frees_its_memory() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let a = on(0, || alloc.table_allocate()).unwrap();
    on(0, || alloc.free(a)).unwrap();
    drop(alloc);
    kernel.assert_no_leaks();
}

// ---- magazines, with processor calls held back ---------------------------------------
//
// Windows gives no bound on when a DPC runs. With the model holding every processor
// call until `run_processor_calls`, these check that nothing depends on its timing:
// frames cached elsewhere are free, never lost, never handed out twice, and reach the
// shared path (and any waiter) once the calls run.

/// A magazine pool with every frame out on processor 0 except `cached`, freed (cached)
/// on processor 1. Returns the frames still held and the cached ones.
fn cached_on_one(kernel: &ModelKernel, alloc: &Alloc, cached: usize) -> (Vec<usize>, Vec<usize>) {
    let mut held: Vec<usize> =
        std::iter::from_fn(|| on(0, || alloc.table_allocate()).ok()).collect();
    assert_eq!(held.len(), MAGAZINE_FRAMES as usize);
    let freed: Vec<usize> = held.drain(..cached).collect();
    for &frame in &freed {
        on(1, || alloc.free(frame)).unwrap();
    }
    assert_eq!(alloc.snapshot().cached as usize, cached);
    kernel.hold_processor_calls(true);
    (held, freed)
}

/// Ends a magazine test: lets processor calls run again, gives every frame in `held`
/// back on `processor`, closes, and checks that nothing leaked once the allocator goes.
fn give_back_and_close(kernel: &ModelKernel, alloc: Alloc, held: Vec<usize>, processor: usize) {
    kernel.hold_processor_calls(false);
    for frame in held {
        on(processor, || alloc.free(frame)).unwrap();
    }
    alloc.close();
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn a_table_miss_asks_the_caching_processor_and_its_call_lists_the_frames() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let (mut held, cached) = cached_on_one(&kernel, &alloc, 2);
    alloc.acquire_function_table().unwrap();
    alloc.internal_event().clear();
    // Processor 0: own magazine and the list empty; processor 1's call is queued but
    // has not run, so the table allocation fails now, changing nothing.
    assert_eq!(
        on(0, || alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.free), (2, 2));
    kernel.run_processor_calls();
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.free), (0, 2), "the call listed them");
    assert!(
        alloc.internal_event().is_set(),
        "and told the table's client, which failed meanwhile"
    );
    for _ in 0..2 {
        let got = on(0, || alloc.table_allocate()).unwrap();
        assert!(cached.contains(&got));
        held.push(got);
    }
    held.sort_unstable();
    held.dedup();
    assert_eq!(
        held.len(),
        MAGAZINE_FRAMES as usize,
        "no frame handed out twice"
    );
    give_back_and_close(&kernel, alloc, held, 1);
}

#[test]
fn a_pend_asks_every_processor_and_the_waiter_gets_a_cached_frame_when_they_run() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let (held, cached) = cached_on_one(&kernel, &alloc, 1);
    let irp = alloc_irp(&kernel, &alloc);
    assert_eq!(on(0, || alloc.method_alloc(&irp)), AllocOutcome::Pended);
    assert_eq!(irp.allocated_frame(), None, "the call has not run");
    // Blocked: processor 1 neither hands its cached frame to the table nor caches more.
    assert_eq!(
        on(1, || alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES)
    );
    kernel.run_processor_calls();
    assert_eq!(
        irp.allocated_frame(),
        Some(cached[0]),
        "FIFO: the waiter got it"
    );
    let snap = assert_conserved(&alloc);
    assert_eq!((snap.cached, snap.pending, snap.free), (0, 0, 0));
    // The queue emptied: magazines cache again.
    on(1, || alloc.free(cached[0])).unwrap();
    assert_eq!(alloc.snapshot().cached, 1);
    give_back_and_close(&kernel, alloc, held, 0);
}

#[test]
fn close_counts_cached_frames_out_until_their_processor_lists_them() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let (held, _) = cached_on_one(&kernel, &alloc, 2);
    for frame in held {
        on(0, || alloc.free(frame)).unwrap();
    }
    // Processor 0 cached CAPACITY of those; the rest are listed.
    assert_eq!(alloc.snapshot().cached, 2 + CAPACITY);
    alloc.close();
    assert!(
        !alloc.is_drained(),
        "cached frames still on their processors"
    );
    assert_eq!(
        kernel.live_blocks(),
        2,
        "the frames and the processor calls"
    );
    assert_eq!(alloc.status().allocated_frames, 2 + CAPACITY);
    kernel.run_processor_calls();
    assert!(alloc.is_drained());
    assert!(alloc.snapshot().memory_released);
    kernel.hold_processor_calls(false);
    drop(alloc);
    kernel.assert_no_leaks();
}

#[test]
fn dropping_an_allocator_waits_for_its_queued_calls() {
    let kernel = ModelKernel::new();
    let alloc = create(&kernel, MAGAZINE_FRAMES);
    let (held, _) = cached_on_one(&kernel, &alloc, 1);
    assert_eq!(
        on(0, || alloc.table_allocate()),
        Err(NtStatus::INSUFFICIENT_RESOURCES),
        "queues processor 1's call"
    );
    for frame in held {
        on(0, || alloc.free(frame)).unwrap();
    }
    alloc.close();
    // Dropping flushes the queued call (the model panics if a queued call's object
    // goes), which lists the cached frame on the closed list: the memory goes.
    drop(alloc);
    kernel.hold_processor_calls(false);
    kernel.assert_no_leaks();
}

#[test]
fn dropping_an_allocator_whose_calls_are_removed_unrun_still_frees_its_memory() {
    // The Windows glue's flush removes queued DPCs (`KeRemoveQueueDpc`) before it waits
    // for running ones: the calls close queued never run, and the frames they would have
    // moved are still in their magazines when the engine drops.
    for closed in [true, false] {
        let kernel = ModelKernel::new();
        kernel.flush_discards_queued_calls(true);
        let alloc = create(&kernel, MAGAZINE_FRAMES);
        let (held, _) = cached_on_one(&kernel, &alloc, 2);
        for frame in held {
            on(0, || alloc.free(frame)).unwrap();
        }
        assert_eq!(alloc.snapshot().cached, 2 + CAPACITY);
        if closed {
            alloc.close();
            assert!(!alloc.is_drained(), "cached frames counted out");
        }
        drop(alloc);
        kernel.hold_processor_calls(false);
        kernel.assert_no_leaks();
    }
}
