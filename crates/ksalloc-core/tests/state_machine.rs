//! A proptest state machine: random sequences of allocator operations run on the real
//! engine over `ksalloc-model`, checked step by step against a small reference model.
//!
//! Cases: 256 by default (CI). For the full run set `KSALLOC_PROPTEST_CASES`:
//!
//! ```text
//! KSALLOC_PROPTEST_CASES=10000 cargo test -p ksalloc-core --release --test state_machine
//! ```
//!
//! Operations: create (a valid framing, or one with one or two rules broken), function
//! table allocate, free (a frame a client holds, any frame index, the frame freed last,
//! a misaligned, a foreign or a past-the-end address), the ALLOC method (a model IRP
//! whose cancel routine holds an `Arc` of the allocator), cancel of a pending ALLOC
//! (`IoCancelIrp`), cleanup (IRP_MJ_CLEANUP: pending ALLOCs cancelled, new ones and
//! FUNCTIONTABLE refused, the table and frees keep working), close, FUNCTIONTABLE, and
//! create again once the old allocator is drained.
//!
//! After every step: the status of the operation, the snapshot (free, outstanding,
//! pending, closed, memory released, every counter including the peak), conservation,
//! STATUS's allocated frames, the internal event's set count, the pool blocks and IRPs
//! alive in the model kernel, and how every IRP so far completed (status, and which
//! frame). Frames go to waiters oldest first, so "which IRP got the frame" checks FIFO.
//! At the end: close, return every frame, drop the allocator, `assert_no_leaks`.
//!
//! The reference predicts exact frame indices: the free list is a LIFO stack that starts
//! with frame 0 on top.
//!
//! Magazines: the model kernel has two processors, and every allocate and free runs on
//! one the operation names. Pools of at least `MIN_FRAMES_PER_PROCESSOR` frames per
//! processor (half the generated pools) have a magazine per processor, which the
//! reference models as a LIFO of at most the pool's `magazine_capacity` frames per
//! processor (1, 2 or the full `CAPACITY` for the generated sizes) in front of the
//! list: an allocation pops its processor's magazine first; a free with no waiter and
//! room caches there; an allocation that finds the list empty first moves every
//! magazine onto it (processor order, bottom first); close does the same. Frames leave a
//! magazine only through its processor's call (a DPC); the operations here run at
//! PASSIVE_LEVEL with the other processor idle, where the model runs a queued call at
//! once, so the reference moves them within the step (and counts the free-frame event
//! each call signals). Held-back calls, at any delay, are `tests/engine.rs`'s. The rule the
//! issue asks for is checked after every step: a pending ALLOC never waits while a
//! frame is free, cached ones included, and STATUS counts cached frames as free.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use ks_abi::ks::{pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;
use ksalloc_core::allocator::{magazine_capacity, MIN_FRAMES_PER_PROCESSOR};
use ksalloc_core::magazine::CAPACITY;
use ksalloc_core::pending::MAX_PENDING;
use ksalloc_core::stats::Counters;
use ksalloc_core::{AllocOutcome, Allocator};
use ksalloc_model::{bind_processor, Irp, ModelKernel, RequestorMode};
use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

/// Processors of the model kernel.
const PROCESSORS_U32: u32 = 2;
const PROCESSORS: usize = PROCESSORS_U32 as usize;
/// Smallest pool with magazines on `PROCESSORS` processors.
const MAGAZINE_FRAMES: u32 = PROCESSORS_U32 * MIN_FRAMES_PER_PROCESSOR;
/// Largest valid frame count the generator uses (snapshot is O(frames) per step).
const MAX_TEST_FRAMES: u32 = MAGAZINE_FRAMES + 4;
/// Smallest pool whose magazines hold the full `CAPACITY`.
const FULL_MAGAZINE_FRAMES: u32 = PROCESSORS_U32 * 2 * CAPACITY;

fn config() -> Config {
    let cases = std::env::var("KSALLOC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // Failures print their minimal sequence; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

// ----- operations -----

/// What a free names.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The `n`th frame clients hold (ascending index).
    Held(usize),
    /// Frame `i`, whatever its state (a free one makes a double free).
    Frame(u32),
    /// The frame freed last (freeing it again is a double free unless it went to a waiter).
    LastFreed,
    /// `offset` bytes into frame `i` (`0 < offset < stride`).
    Misaligned(u32, usize),
    /// Address 0.
    Null,
    /// An address near the top of the address space.
    High,
    /// One stride below the first frame.
    BeforeBase,
    /// Where frame `frames + k` would start.
    PastEnd(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Create(KsAllocatorFraming),
    /// On processor `.0`.
    TableAllocate(usize),
    Free(Target, usize),
    MethodAlloc(usize),
    /// `IoCancelIrp` on the `n`th oldest pending ALLOC.
    Cancel(usize),
    Cleanup,
    Close,
    AcquireTable,
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Create(Result<(), NtStatus>),
    Table(Result<u32, NtStatus>),
    Free(Result<(), NtStatus>),
    Ready(u32),
    Pended,
    AllocFailed(NtStatus),
    Cancel(bool),
    Cleanup(usize),
    Close(usize),
    Acquire(Result<(), NtStatus>),
}

/// How an IRP stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IrpState {
    Pending,
    /// Completed by the allocator of `generation` with a frame index or a status.
    Done {
        generation: usize,
        result: Result<u32, NtStatus>,
    },
}

// ----- the reference model -----

#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools)] // The reference model's flags, one per engine state bit.
struct RefAlloc {
    frames: u32,
    stride: usize,
    /// The free list; the top is the end.
    free: Vec<u32>,
    /// Each processor's magazine (top at the end), or none for a small pool.
    magazines: Vec<Vec<u32>>,
    /// Frames each magazine holds (`magazine_capacity`).
    capacity: usize,
    out: BTreeSet<u32>,
    queue: VecDeque<usize>,
    /// IRP_MJ_CLEANUP ran (close implies it).
    cleaned: bool,
    closed: bool,
    table_armed: bool,
    counters: Counters,
    event_sets: u64,
    last_freed: Option<u32>,
    /// Whether a frame address has been seen, so the test knows the block's base.
    base_known: bool,
}

impl RefAlloc {
    fn new(frames: u32, stride: usize) -> Self {
        Self {
            frames,
            stride,
            free: (0..frames).rev().collect(),
            capacity: magazine_capacity(frames, PROCESSORS_U32) as usize,
            magazines: if frames >= MAGAZINE_FRAMES {
                vec![Vec::new(); PROCESSORS]
            } else {
                Vec::new()
            },
            out: BTreeSet::new(),
            queue: VecDeque::new(),
            cleaned: false,
            closed: false,
            table_armed: false,
            counters: Counters::default(),
            event_sets: 0,
            last_freed: None,
            base_known: false,
        }
    }

    fn released(&self) -> bool {
        self.closed && self.out.is_empty()
    }

    fn cached(&self) -> usize {
        self.magazines.iter().map(Vec::len).sum()
    }

    /// Every magazine onto the list, processor order, bottom first: each processor's
    /// call that moves frames signals the free-frame notification once, if armed.
    fn drain_magazines(&mut self) {
        for magazine in &mut self.magazines {
            if !magazine.is_empty() && self.table_armed {
                self.event_sets += 1;
            }
            self.free.append(magazine);
        }
    }

    /// An allocation on `processor`: its magazine first, then the list (refilled from
    /// every magazine when empty).
    fn hand_out(&mut self, processor: usize) -> Option<u32> {
        let index = if let Some(index) = self.magazines.get_mut(processor).and_then(Vec::pop) {
            index
        } else {
            if self.free.is_empty() {
                self.drain_magazines();
            }
            let index = self.free.pop()?;
            // The peak counts frames off the shared list: out, and cached.
            let off_list = self.out.len() + 1 + self.cached();
            self.counters.peak_outstanding = self.counters.peak_outstanding.max(off_list as u64);
            index
        };
        self.out.insert(index);
        self.counters.allocations += 1;
        self.base_known = true;
        Some(index)
    }

    /// The frame a free names, if it is the start of one of our frames.
    fn resolve(&self, target: Target) -> Option<u32> {
        match target {
            Target::Held(n) => self.out.iter().nth(n).copied(),
            Target::Frame(i) => Some(i),
            Target::LastFreed => self.last_freed,
            _ => None,
        }
    }

    fn valid(&self, target: Target) -> bool {
        match target {
            Target::Held(n) => n < self.out.len(),
            Target::Frame(i) => self.base_known && i < self.frames,
            Target::LastFreed => self.base_known && self.last_freed.is_some(),
            Target::Misaligned(i, offset) => {
                self.base_known && i < self.frames && 0 < offset && offset < self.stride
            }
            Target::BeforeBase | Target::PastEnd(_) => self.base_known,
            Target::Null | Target::High => true,
        }
    }
}

/// `KsValidateAllocatorCreateRequest` plus the preallocation limits, as the framing
/// module's table documents them, rule by rule in order.
fn reference_validate(f: &KsAllocatorFraming) -> Result<(u32, usize), NtStatus> {
    const INVALID: NtStatus = NtStatus::INVALID_PARAMETER;
    if f.frames == 0 || f.frames > 1 << 20 || f.frame_size == 0 || f.options_flags & !0xF != 0 {
        return Err(INVALID);
    }
    match f.pool_type {
        pool_type::NON_PAGED => {}
        pool_type::PAGED => return Err(NtStatus::NOT_SUPPORTED),
        _ => return Err(INVALID),
    }
    let align = u64::from(f.file_alignment) + 1;
    if !align.is_power_of_two() || align > 4096 || f.reserved != 0 {
        return Err(INVALID);
    }
    let stride = u64::from(f.frame_size).div_ceil(align) * align;
    if stride * u64::from(f.frames) > 256 << 20 {
        return Err(NtStatus::INSUFFICIENT_RESOURCES);
    }
    Ok((f.frames, usize::try_from(stride).expect("64-bit host")))
}

#[derive(Clone, Debug, Default)]
struct Model {
    alloc: Option<RefAlloc>,
    /// Successful creates so far.
    generation: usize,
    irps: Vec<IrpState>,
    last: Option<Outcome>,
}

impl Model {
    fn can_create(&self) -> bool {
        self.alloc.as_ref().is_none_or(RefAlloc::released)
    }
}

fn valid_framing() -> impl Strategy<Value = KsAllocatorFraming> {
    let frames = prop_oneof![
        1..MAGAZINE_FRAMES,
        MAGAZINE_FRAMES..=MAX_TEST_FRAMES,
        FULL_MAGAZINE_FRAMES..=FULL_MAGAZINE_FRAMES + 4
    ];
    (frames, 1u32..=600, 0u32..=12, 0u32..=0xF).prop_map(
        |(frames, frame_size, align_log2, options_flags)| KsAllocatorFraming {
            options_flags,
            pool_type: pool_type::NON_PAGED,
            frames,
            frame_size,
            file_alignment: (1 << align_log2) - 1,
            reserved: 0,
        },
    )
}

/// Breaks one rule of `f`; `x` picks the bad value.
fn break_rule(f: &mut KsAllocatorFraming, rule: u8, x: u32) {
    match rule {
        0 => f.frames = 0,
        1 => f.frames = (1 << 20) + 1 + x % 4096,
        2 => f.frame_size = 0,
        3 => f.options_flags |= 1 << (4 + x % 28),
        4 => f.pool_type = pool_type::PAGED,
        5 => f.pool_type = 2 + x % 1000,
        6 => {
            const BAD: [u32; 7] = [2, 5, 6, 4096, 8191, 0x1_0000 - 1, u32::MAX];
            f.file_alignment = BAD[x as usize % BAD.len()];
        }
        7 => f.reserved = x.max(1),
        // Valid count, but more than 256 MiB of frames.
        _ => {
            f.frames = 1 << 20;
            f.frame_size = 257 + x % 100_000;
        }
    }
}

fn framing() -> BoxedStrategy<KsAllocatorFraming> {
    let broken = (
        valid_framing(),
        prop::collection::vec((0u8..9, any::<u32>()), 1..=2),
    )
        .prop_map(|(mut f, rules)| {
            for (rule, x) in rules {
                break_rule(&mut f, rule, x);
            }
            f
        });
    prop_oneof![3 => valid_framing(), 2 => broken].boxed()
}

fn target(a: &RefAlloc) -> BoxedStrategy<Target> {
    let mut choices: Vec<(u32, BoxedStrategy<Target>)> = vec![
        (1, Just(Target::Null).boxed()),
        (1, Just(Target::High).boxed()),
    ];
    if !a.out.is_empty() {
        choices.push((12, (0..a.out.len()).prop_map(Target::Held).boxed()));
    }
    if a.base_known {
        choices.push((3, (0..a.frames).prop_map(Target::Frame).boxed()));
        choices.push((1, Just(Target::BeforeBase).boxed()));
        choices.push((1, (0u32..3).prop_map(Target::PastEnd).boxed()));
        if a.stride > 1 {
            choices.push((
                2,
                (0..a.frames, 1..a.stride)
                    .prop_map(|(i, offset)| Target::Misaligned(i, offset))
                    .boxed(),
            ));
        }
    }
    if a.last_freed.is_some() {
        choices.push((3, Just(Target::LastFreed).boxed()));
    }
    Union::new_weighted(choices).boxed()
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let Some(a) = &state.alloc else {
            return framing().prop_map(Op::Create).boxed();
        };
        let processor = || 0..PROCESSORS;
        let mut choices: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (6, processor().prop_map(Op::TableAllocate).boxed()),
            (
                8,
                (target(a), processor())
                    .prop_map(|(t, p)| Op::Free(t, p))
                    .boxed(),
            ),
            (5, processor().prop_map(Op::MethodAlloc).boxed()),
            (1, Just(Op::Cleanup).boxed()),
            (1, Just(Op::Close).boxed()),
            (1, Just(Op::AcquireTable).boxed()),
        ];
        if !a.queue.is_empty() {
            choices.push((3, (0..a.queue.len()).prop_map(Op::Cancel).boxed()));
        }
        if state.can_create() {
            choices.push((6, framing().prop_map(Op::Create).boxed()));
        }
        Union::new_weighted(choices).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        match (op, &state.alloc) {
            (Op::Create(_), _) => state.can_create(),
            (_, None) => false,
            (Op::Free(t, _), Some(a)) => a.valid(*t),
            (Op::Cancel(n), Some(a)) => *n < a.queue.len(),
            _ => true,
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        let generation = state.generation;
        let outcome = match *op {
            Op::Create(f) => {
                // A drained allocator is dropped first, whatever becomes of the create.
                let validated = reference_validate(&f);
                state.alloc = validated
                    .ok()
                    .map(|(frames, stride)| RefAlloc::new(frames, stride));
                state.generation += usize::from(validated.is_ok());
                Outcome::Create(validated.map(drop))
            }
            ref op => {
                let a = state.alloc.as_mut().expect("precondition");
                apply_to(a, generation, &mut state.irps, op)
            }
        };
        state.last = Some(outcome);
        state
    }
}

fn apply_to(a: &mut RefAlloc, generation: usize, irps: &mut Vec<IrpState>, op: &Op) -> Outcome {
    let done = |result| IrpState::Done { generation, result };
    match *op {
        Op::Create(_) => unreachable!("handled by the caller"),
        Op::TableAllocate(processor) => Outcome::Table(if a.closed {
            Err(NtStatus::INVALID_DEVICE_STATE)
        } else if let Some(index) = a.queue.is_empty().then(|| a.hand_out(processor)).flatten() {
            Ok(index)
        } else {
            a.counters.failed_allocations += 1;
            Err(NtStatus::INSUFFICIENT_RESOURCES)
        }),
        Op::Free(target, processor) => {
            let Some(index) = a.resolve(target).filter(|i| a.out.contains(i)) else {
                a.counters.rejected_frees += 1;
                return Outcome::Free(Err(NtStatus::INVALID_PARAMETER));
            };
            a.counters.frees += 1;
            a.last_freed = Some(index);
            if let Some(id) = (!a.closed).then(|| a.queue.pop_front()).flatten() {
                // Straight to the oldest waiter; the frame stays out.
                irps[id] = done(Ok(index));
                a.counters.allocations += 1;
            } else {
                a.out.remove(&index);
                match a.magazines.get_mut(processor) {
                    Some(magazine) if !a.closed && magazine.len() < a.capacity => {
                        magazine.push(index);
                    }
                    _ => a.free.push(index),
                }
            }
            if a.table_armed {
                a.event_sets += 1;
            }
            Outcome::Free(Ok(()))
        }
        Op::MethodAlloc(processor) => {
            let id = irps.len();
            let outcome = if a.closed || a.cleaned {
                Outcome::AllocFailed(NtStatus::INVALID_DEVICE_STATE)
            } else if let Some(index) = a.queue.is_empty().then(|| a.hand_out(processor)).flatten()
            {
                Outcome::Ready(index)
            } else if a.queue.len() == MAX_PENDING {
                Outcome::AllocFailed(NtStatus::INSUFFICIENT_RESOURCES)
            } else {
                a.queue.push_back(id);
                a.counters.pends += 1;
                Outcome::Pended
            };
            irps.push(match outcome {
                Outcome::Ready(index) => done(Ok(index)),
                Outcome::AllocFailed(status) => done(Err(status)),
                _ => IrpState::Pending,
            });
            outcome
        }
        Op::Cancel(n) => {
            let id = a.queue.remove(n).expect("precondition");
            irps[id] = done(Err(NtStatus::CANCELLED));
            a.counters.cancels += 1;
            Outcome::Cancel(true)
        }
        Op::Cleanup => Outcome::Cleanup(cleanup(a, irps, generation)),
        Op::Close => {
            if a.closed {
                return Outcome::Close(0);
            }
            a.closed = true;
            a.table_armed = false;
            let cancelled = cleanup(a, irps, generation);
            a.drain_magazines();
            Outcome::Close(cancelled)
        }
        Op::AcquireTable => Outcome::Acquire(if a.closed || a.cleaned {
            Err(NtStatus::INVALID_DEVICE_STATE)
        } else {
            a.table_armed = true;
            Ok(())
        }),
    }
}

/// IRP_MJ_CLEANUP in the reference: every waiter cancelled, no new one; the table, the
/// magazines and frees untouched.
fn cleanup(a: &mut RefAlloc, irps: &mut [IrpState], generation: usize) -> usize {
    a.cleaned = true;
    let cancelled = a.queue.len();
    for id in a.queue.drain(..) {
        irps[id] = IrpState::Done {
            generation,
            result: Err(NtStatus::CANCELLED),
        };
    }
    a.counters.cancels += cancelled as u64;
    cancelled
}

// ----- the system under test -----

struct Sut {
    kernel: ModelKernel,
    alloc: Option<Arc<Allocator<ModelKernel>>>,
    /// Each generation's frame block: its base address once a frame showed it, and the
    /// stride.
    gens: Vec<(Option<usize>, usize)>,
    irps: Vec<Irp>,
}

impl Sut {
    const fn alloc(&self) -> &Arc<Allocator<ModelKernel>> {
        self.alloc
            .as_ref()
            .expect("precondition: an allocator exists")
    }

    fn stride(&self) -> usize {
        self.alloc().framing().stride()
    }

    fn base(&self) -> usize {
        self.gens
            .last()
            .and_then(|g| g.0)
            .expect("precondition: a frame address was seen")
    }

    /// Address of frame `index` of allocator `generation` (1-based).
    fn frame_address(&self, generation: usize, index: u32) -> usize {
        let (base, stride) = self.gens[generation - 1];
        base.expect("a frame of this generation was seen") + index as usize * stride
    }

    /// Checks a frame address handed out as frame `index`: learns the base from the
    /// first, checks alignment and that the frame's bytes are inside live pool memory.
    fn saw_frame(&mut self, address: usize, index: u32) {
        let stride = self.stride();
        let offset = index as usize * stride;
        let base = *self
            .gens
            .last_mut()
            .expect("an allocator exists")
            .0
            .get_or_insert(address - offset);
        assert_eq!(address, base + offset, "frame {index} at the wrong address");
        let framing = *self.alloc().framing();
        assert_eq!(address % framing.align(), 0, "misaligned frame");
        self.kernel
            .with_bytes(address, framing.frame_size(), |bytes| bytes.fill(0xA5));
    }

    fn address(&self, target: Target, reference: &RefAlloc) -> usize {
        let frame = |i: u32| self.base() + i as usize * self.stride();
        match target {
            Target::Held(_) | Target::Frame(_) | Target::LastFreed => {
                frame(reference_target(target, reference))
            }
            Target::Misaligned(i, offset) => frame(i) + offset,
            Target::Null => 0,
            Target::High => usize::MAX - 15,
            Target::BeforeBase => self.base() - self.stride(),
            Target::PastEnd(k) => frame(reference.frames + k),
        }
    }

    fn new_alloc_irp(&self) -> Irp {
        let irp = self.kernel.new_irp(RequestorMode::Kernel, vec![], 8);
        let alloc = Arc::clone(self.alloc());
        irp.set_cancel_routine(Box::new(move |irp| {
            alloc.cancel(ksalloc_core::RequestHandle::key(irp));
        }));
        irp
    }
}

/// The frame index a held/frame/last-freed target names, read from the reference state
/// *before* the step (the post-step state may have moved the frame).
fn reference_target(target: Target, before: &RefAlloc) -> u32 {
    before.resolve(target).expect("precondition")
}

struct AllocatorMachine;

impl StateMachineTest for AllocatorMachine {
    type SystemUnderTest = (Sut, Model);
    type Reference = Reference;

    fn init_test(reference: &Model) -> (Sut, Model) {
        (
            Sut {
                kernel: ModelKernel::with_processors(PROCESSORS),
                alloc: None,
                gens: Vec::new(),
                irps: Vec::new(),
            },
            reference.clone(),
        )
    }

    fn apply((mut sut, before): (Sut, Model), after: &Model, op: Op) -> (Sut, Model) {
        let expected = after.last.expect("every step has an outcome");
        let outcome = match op {
            Op::Create(framing) => {
                if let Some(old) = sut.alloc.take() {
                    assert!(old.is_drained());
                    assert_eq!(
                        Arc::strong_count(&old),
                        1,
                        "an IRP still holds the old allocator"
                    );
                }
                assert_eq!(sut.kernel.live_blocks(), 0);
                let created = Allocator::create(sut.kernel.clone(), &framing);
                if created.is_err() {
                    assert_eq!(sut.kernel.live_blocks(), 0, "a failed create leaked");
                }
                Outcome::Create(created.map(|a| {
                    sut.gens.push((None, a.framing().stride()));
                    sut.alloc = Some(Arc::new(a));
                }))
            }
            Op::TableAllocate(processor) => {
                bind_processor(Some(processor));
                let result = sut.alloc().table_allocate();
                Outcome::Table(result.map(|address| {
                    let Outcome::Table(Ok(index)) = expected else {
                        panic!("table allocate gave {address:#x}, expected {expected:?}")
                    };
                    sut.saw_frame(address, index);
                    index
                }))
            }
            Op::Free(target, processor) => {
                let reference = before.alloc.as_ref().expect("precondition");
                let address = sut.address(target, reference);
                bind_processor(Some(processor));
                Outcome::Free(sut.alloc().free(address))
            }
            Op::MethodAlloc(processor) => {
                let irp = sut.new_alloc_irp();
                bind_processor(Some(processor));
                let outcome = match sut.alloc().method_alloc(&irp) {
                    AllocOutcome::Ready(address) => {
                        let Outcome::Ready(index) = expected else {
                            panic!("ALLOC ready with {address:#x}, expected {expected:?}")
                        };
                        sut.saw_frame(address, index);
                        // The dispatcher completes it.
                        irp.write_output(&address.to_le_bytes());
                        irp.complete(NtStatus::SUCCESS, 8);
                        Outcome::Ready(index)
                    }
                    AllocOutcome::Pended => Outcome::Pended,
                    AllocOutcome::Failed(status) => {
                        irp.complete(status, 0);
                        Outcome::AllocFailed(status)
                    }
                };
                sut.irps.push(irp);
                outcome
            }
            Op::Cancel(n) => {
                let a = before.alloc.as_ref().expect("precondition");
                let id = a.queue[n];
                Outcome::Cancel(sut.irps[id].cancel())
            }
            Op::Cleanup => Outcome::Cleanup(sut.alloc().cleanup()),
            Op::Close => Outcome::Close(sut.alloc().close()),
            Op::AcquireTable => Outcome::Acquire(sut.alloc().acquire_function_table()),
        };
        bind_processor(None);
        assert_eq!(outcome, expected, "{op:?}");
        (sut, after.clone())
    }

    fn check_invariants((sut, reference): &(Sut, Model), _: &Model) {
        let pending_irps = reference
            .irps
            .iter()
            .filter(|s| **s == IrpState::Pending)
            .count();
        assert_eq!(
            sut.kernel.live_irps(),
            i64::try_from(pending_irps).unwrap(),
            "IRPs alive"
        );
        for (id, (irp, state)) in sut.irps.iter().zip(&reference.irps).enumerate() {
            let completion = irp.completion();
            match *state {
                IrpState::Pending => assert_eq!(completion, None, "IRP {id} should pend"),
                IrpState::Done { generation, result } => {
                    let c =
                        completion.unwrap_or_else(|| panic!("IRP {id} should be done: {result:?}"));
                    match result {
                        Ok(index) => {
                            assert_eq!((c.status, c.information), (NtStatus::SUCCESS, 8));
                            assert_eq!(
                                irp.allocated_frame(),
                                Some(sut.frame_address(generation, index)),
                                "IRP {id} should have frame {index} (FIFO)"
                            );
                        }
                        Err(status) => {
                            assert_eq!((c.status, c.information), (status, 0), "IRP {id}");
                        }
                    }
                }
            }
        }
        let Some(a) = &reference.alloc else {
            assert!(sut.alloc.is_none());
            assert_eq!(sut.kernel.live_blocks(), 0);
            return;
        };
        let alloc = sut.alloc();
        let s = alloc.snapshot();
        assert!(s.conserved(), "{s:?}");
        if !s.memory_released {
            assert_eq!(s.free + s.outstanding, s.total, "{s:?}");
        }
        assert_eq!(s.total, a.frames);
        assert_eq!(alloc.has_magazines(), !a.magazines.is_empty());
        assert_eq!(s.cached as usize, a.cached(), "cached frames");
        assert_eq!(s.free as usize, a.free.len() + a.cached(), "free frames");
        // The magazine rule: nobody waits while a frame is free, cached or not.
        assert!(
            s.pending == 0 || s.free == 0,
            "a request waits beside a free frame: {s:?}"
        );
        assert!(s.cached <= CAPACITY * PROCESSORS_U32, "{s:?}");
        assert_eq!(s.outstanding as usize, a.out.len(), "frames out");
        assert_eq!(s.pending as usize, a.queue.len(), "pending ALLOCs");
        assert_eq!(s.closed, a.closed);
        assert_eq!(alloc.is_cleaned_up(), a.cleaned || a.closed, "cleaned up");
        assert_eq!(s.memory_released, a.released());
        assert_eq!(s.counters, a.counters, "counters");
        assert_eq!(alloc.framing().stride(), a.stride);
        assert_eq!(alloc.status().allocated_frames as usize, a.out.len());
        assert_eq!(alloc.is_drained(), a.released());
        assert_eq!(
            alloc.internal_event().set_count(),
            a.event_sets,
            "event sets"
        );
        // The frame memory until released, and a magazine pool's processor calls (one
        // KDPC per processor) while the allocator lives.
        assert_eq!(
            sut.kernel.live_blocks(),
            usize::from(!a.released()) + usize::from(!a.magazines.is_empty())
        );
    }

    fn teardown((mut sut, reference): (Sut, Model), _: Model) {
        if let Some(a) = &reference.alloc {
            let alloc = Arc::clone(sut.alloc());
            alloc.close();
            let stride = sut.stride();
            for &index in &a.out {
                let address = sut.base() + index as usize * stride;
                alloc.free(address).expect("a held frame goes back");
            }
            assert!(alloc.is_drained());
            drop(alloc);
            let alloc = sut.alloc.take().expect("exists");
            assert_eq!(
                Arc::strong_count(&alloc),
                1,
                "an IRP still holds the allocator"
            );
        }
        sut.irps.clear();
        sut.kernel.assert_no_leaks();
    }
}

prop_state_machine! {
    #![proptest_config(config())]

    #[test]
    fn allocator_matches_reference(sequential 1..48 => AllocatorMachine);
}

/// The one path the random sequences do not reach: a full pending queue. ALLOC number
/// `MAX_PENDING + 1` is refused at once, nothing else changes, and close cancels every
/// queued request in FIFO order.
#[test]
fn full_pending_queue_refuses_the_next_alloc() {
    let kernel = ModelKernel::new();
    let raw = KsAllocatorFraming {
        options_flags: 0,
        pool_type: pool_type::NON_PAGED,
        frames: 1,
        frame_size: 64,
        file_alignment: 7,
        reserved: 0,
    };
    let alloc = Allocator::create(kernel.clone(), &raw).unwrap();
    let frame = alloc.table_allocate().unwrap();
    let irps: Vec<Irp> = (0..=MAX_PENDING)
        .map(|_| kernel.new_irp(RequestorMode::Kernel, vec![], 8))
        .collect();
    for irp in &irps[..MAX_PENDING] {
        irp.set_cancel_routine(Box::new(|_| unreachable!("nobody cancels")));
        assert_eq!(alloc.method_alloc(irp), AllocOutcome::Pended);
    }
    let before = alloc.snapshot();
    assert_eq!(
        alloc.method_alloc(&irps[MAX_PENDING]),
        AllocOutcome::Failed(NtStatus::INSUFFICIENT_RESOURCES)
    );
    irps[MAX_PENDING].complete(NtStatus::INSUFFICIENT_RESOURCES, 0);
    assert_eq!(alloc.snapshot(), before, "a refused ALLOC changes nothing");
    // The frame goes to the oldest request.
    alloc.free(frame).unwrap();
    assert_eq!(irps[0].allocated_frame(), Some(frame));
    assert!(irps[1..MAX_PENDING]
        .iter()
        .all(|i| i.completion().is_none()));
    assert_eq!(alloc.close(), MAX_PENDING - 1);
    for irp in &irps[1..MAX_PENDING] {
        assert_eq!(irp.completion().unwrap().status, NtStatus::CANCELLED);
    }
    alloc.free(frame).unwrap();
    assert!(alloc.is_drained());
    drop(irps);
    drop(alloc);
    kernel.assert_no_leaks();
}
