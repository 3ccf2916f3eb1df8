//! The model's processor calls (DPCs targeted at a processor): each rule of
//! `ksalloc_model::processor_call`, and the `Platform` contract the core relies on.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use ksalloc_core::{Irql, Platform, ProcessorCall, SpinLock};
use ksalloc_model::{bind_processor, current_irql, ModelKernel, ModelProcessorCalls};

/// What one run of a call saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    processor: usize,
    irql: Irql,
    /// What `with_processor` from inside `run_on` reported.
    with_processor: usize,
    /// Whether the section the test marked was still open.
    during_section: bool,
    thread: ThreadId,
}

/// A call target that records its runs, can queue a follow-up on another processor and
/// can be told to block until released.
struct Recorder {
    kernel: ModelKernel,
    runs: Mutex<Vec<Run>>,
    in_section: AtomicBool,
    /// Set: the next run queues a call for this processor on `calls`.
    chain_to: Mutex<Option<usize>>,
    calls: OnceLock<ModelProcessorCalls>,
    /// Set: runs report here and wait for the receiver's go.
    gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl Recorder {
    fn new(kernel: &ModelKernel) -> Arc<Self> {
        let recorder = Arc::new(Self {
            kernel: kernel.clone(),
            runs: Mutex::new(Vec::new()),
            in_section: AtomicBool::new(false),
            chain_to: Mutex::new(None),
            calls: OnceLock::new(),
            gate: Mutex::new(None),
        });
        let calls = kernel
            .new_processor_calls::<Self>(kernel.processor_count() as usize)
            .expect("no fault injected");
        assert!(recorder.calls.set(calls).is_ok());
        recorder
    }

    fn calls(&self) -> &ModelProcessorCalls {
        self.calls.get().expect("set at creation")
    }

    /// Queues processor `processor`'s call with this target.
    fn queue(&self, processor: usize) -> bool {
        // SAFETY: the calls were made for `Recorder`, and every test flushes them (or
        // lets them run) before the Arc holding `self` goes.
        unsafe {
            self.kernel
                .queue_processor_call(self.calls(), processor, self)
        }
    }

    fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    fn flush(&self) {
        self.kernel.flush_processor_calls(self.calls());
    }
}

impl ProcessorCall for Recorder {
    fn run_on(&self, processor: usize) {
        let with_processor = self.kernel.with_processor(|p| p);
        // Platform calls are allowed in a call (it is not a with_processor section).
        let lock = self.kernel.new_lock(0_u32);
        lock.with(|n| *n += 1);
        self.runs.lock().unwrap().push(Run {
            processor,
            irql: current_irql(),
            with_processor,
            during_section: self.in_section.load(Ordering::SeqCst),
            thread: std::thread::current().id(),
        });
        let next = self.chain_to.lock().unwrap().take();
        if let Some(next) = next {
            assert!(self.queue(next), "the follow-up was not queued yet");
        }
        let gate = self.gate.lock().unwrap().take();
        if let Some((started, go)) = gate {
            started.send(()).unwrap();
            go.recv().unwrap();
        }
    }
}

/// Queued from PASSIVE_LEVEL for an idle processor: it runs at once, on that processor,
/// at DISPATCH_LEVEL, and `with_processor` inside it is on that processor (no deadlock
/// on the processor's own turn).
#[test]
fn a_call_runs_on_its_processor_at_dispatch() {
    let kernel = ModelKernel::with_processors(2);
    let recorder = Recorder::new(&kernel);
    bind_processor(Some(0));
    for processor in [1, 0] {
        assert!(recorder.queue(processor));
        let run = *recorder
            .runs()
            .last()
            .expect("ran at once: the processor was idle");
        assert_eq!(
            (run.processor, run.irql, run.with_processor),
            (processor, Irql::Dispatch, processor)
        );
        assert!(!recorder.calls().is_queued(processor));
    }
    assert_eq!(current_irql(), Irql::Passive);
    recorder.flush();
}

/// A call for processor 1 queued while a thread is inside processor 1's section does not
/// run until that section ends; the leaving thread runs it before giving the processor up.
#[test]
fn a_call_never_runs_during_its_processors_section() {
    let kernel = ModelKernel::with_processors(2);
    let recorder = Recorder::new(&kernel);
    let (entered_tx, entered) = mpsc::channel();
    let (queued, queued_rx) = mpsc::channel::<()>();
    let owner = {
        let recorder = Arc::clone(&recorder);
        std::thread::spawn(move || {
            bind_processor(Some(1));
            kernel.with_processor(|p| {
                assert_eq!(p, 1);
                recorder.in_section.store(true, Ordering::SeqCst);
                entered_tx.send(()).unwrap();
                queued_rx.recv().unwrap();
                recorder.in_section.store(false, Ordering::SeqCst);
            });
            std::thread::current().id()
        })
    };
    entered.recv().unwrap();
    bind_processor(Some(0));
    assert!(recorder.queue(1));
    assert!(recorder.runs().is_empty(), "ran while processor 1 was busy");
    assert!(recorder.calls().is_queued(1));
    queued.send(()).unwrap();
    let owner_thread = owner.join().unwrap();
    let runs = recorder.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(!runs[0].during_section);
    assert_eq!(runs[0].processor, 1);
    assert_eq!(runs[0].thread, owner_thread, "the leaving thread ran it");
    recorder.flush();
}

/// KeInsertQueueDpc returns FALSE while the DPC is queued and has not started; once it
/// ran it can be queued again.
#[test]
fn queueing_a_queued_call_returns_false() {
    let kernel = ModelKernel::with_processors(2);
    kernel.hold_processor_calls(true);
    let recorder = Recorder::new(&kernel);
    assert!(recorder.queue(0));
    assert!(!recorder.queue(0), "already queued");
    assert!(recorder.queue(1), "processor 1's call is another DPC");
    assert_eq!(
        kernel.run_processor_calls(),
        2,
        "the refused one did not run"
    );
    assert!(recorder.queue(0), "ran: may be queued again");
    assert_eq!(kernel.run_processor_calls(), 1);
    recorder.flush();
}

/// Held calls run at no automatic delivery point (a section left, a lock released, a
/// queue from PASSIVE_LEVEL), only when the test runs them.
#[test]
fn held_calls_wait_for_run_processor_calls() {
    let kernel = ModelKernel::with_processors(2);
    kernel.hold_processor_calls(true);
    let recorder = Recorder::new(&kernel);
    bind_processor(Some(0));
    assert!(recorder.queue(0));
    assert!(recorder.queue(1));
    kernel.with_processor(|_| ());
    kernel.new_lock(()).with(|()| ());
    assert!(recorder.runs().is_empty());
    assert_eq!(kernel.run_processor_calls(), 2);
    let mut processors: Vec<usize> = recorder.runs().iter().map(|r| r.processor).collect();
    processors.sort_unstable();
    assert_eq!(processors, [0, 1]);
    kernel.hold_processor_calls(false);
    assert!(recorder.queue(1));
    assert_eq!(recorder.runs().len(), 3, "delivered again once not held");
    recorder.flush();
}

/// Queueing with a spin lock held is allowed; the call runs when the release drops the
/// thread below DISPATCH_LEVEL, not inside the lock, nor on leaving a section entered
/// inside the lock.
#[test]
fn a_call_queued_under_a_lock_runs_at_the_release() {
    let kernel = ModelKernel::with_processors(2);
    let recorder = Recorder::new(&kernel);
    bind_processor(Some(0));
    let lock = kernel.new_lock(());
    lock.with(|()| {
        assert!(recorder.queue(0));
        assert!(recorder.queue(1));
        kernel.with_processor(|_| ());
        assert!(recorder.runs().is_empty(), "ran with a spin lock held");
    });
    assert_eq!(recorder.runs().len(), 2);
    recorder.flush();
}

/// Calls may queue calls; those run too, without nesting.
#[test]
fn a_call_may_queue_another() {
    let kernel = ModelKernel::with_processors(2);
    let recorder = Recorder::new(&kernel);
    bind_processor(Some(0));
    for (first, then) in [(0, 1), (1, 0)] {
        recorder.runs.lock().unwrap().clear();
        *recorder.chain_to.lock().unwrap() = Some(then);
        assert!(recorder.queue(first));
        let processors: Vec<usize> = recorder.runs().iter().map(|r| r.processor).collect();
        assert_eq!(processors, [first, then]);
    }
    recorder.flush();
}

/// Flush runs queued calls even while calls are held, and waits for a running one.
#[test]
fn flush_runs_queued_calls_and_waits_for_running_ones() {
    let kernel = ModelKernel::with_processors(2);
    kernel.hold_processor_calls(true);
    let recorder = Recorder::new(&kernel);
    assert!(recorder.queue(0));
    assert!(recorder.queue(1));
    recorder.flush();
    assert_eq!(recorder.runs().len(), 2);
    assert!(!recorder.calls().is_queued(0) && !recorder.calls().is_queued(1));

    // A call running on another thread: flush returns only after it.
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    *recorder.gate.lock().unwrap() = Some((started_tx, go_rx));
    assert!(recorder.queue(1));
    let runner = { std::thread::spawn(move || kernel.run_processor_calls()) };
    started.recv().unwrap();
    let flushed = Arc::new(AtomicBool::new(false));
    let flushing = {
        let (recorder, flushed) = (Arc::clone(&recorder), Arc::clone(&flushed));
        std::thread::spawn(move || {
            recorder.flush();
            flushed.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !flushed.load(Ordering::SeqCst),
        "flush returned while a call ran"
    );
    go.send(()).unwrap();
    flushing.join().unwrap();
    assert!(flushed.load(Ordering::SeqCst));
    assert_eq!(runner.join().unwrap(), 1);
    assert_eq!(recorder.runs().len(), 3);
}

/// With `flush_discards_queued_calls`, a flush removes queued calls unrun
/// (KeRemoveQueueDpc), which the platform contract also allows.
#[test]
fn flush_may_discard_queued_calls() {
    let kernel = ModelKernel::with_processors(2);
    kernel.hold_processor_calls(true);
    kernel.flush_discards_queued_calls(true);
    let recorder = Recorder::new(&kernel);
    assert!(recorder.queue(1));
    recorder.flush();
    assert!(recorder.runs().is_empty());
    assert!(!recorder.calls().is_queued(1));
    assert_eq!(kernel.run_processor_calls(), 0);
}

/// The calls' KDPC array is a pool block: create-path fault points fail it, and it is
/// freed with the calls.
#[test]
fn calls_live_in_pool() {
    let kernel = ModelKernel::with_processors(2);
    let calls = kernel.new_processor_calls::<Recorder>(2).expect("created");
    assert_eq!(kernel.live_blocks(), 1);
    drop(calls);
    assert_eq!(kernel.live_blocks(), 0);
    ksalloc_model::pool::fail_nth_allocation(1);
    assert!(kernel.new_processor_calls::<Recorder>(2).is_none());
    assert_eq!(kernel.pool_failures(), 1);
}

/// A target that lives for the whole test binary (what the panicking tests queue, so
/// nothing dangles after their panic).
struct Counter(AtomicUsize);

impl ProcessorCall for Counter {
    fn run_on(&self, _: usize) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

static COUNTER: Counter = Counter(AtomicUsize::new(0));

#[test]
#[should_panic(expected = "processor calls freed while queued")]
fn dropping_queued_calls_panics() {
    let kernel = ModelKernel::with_processors(2);
    kernel.hold_processor_calls(true);
    let calls = kernel.new_processor_calls::<Counter>(2).unwrap();
    // SAFETY: made for `Counter`; the target is a static.
    assert!(unsafe { kernel.queue_processor_call(&calls, 1, &COUNTER) });
    drop(calls);
}

#[test]
#[should_panic(expected = "KeInsertQueueDpc called inside with_processor")]
fn queueing_inside_a_section_panics() {
    let kernel = ModelKernel::with_processors(2);
    let calls = kernel.new_processor_calls::<Counter>(2).unwrap();
    kernel.with_processor(|p| {
        // SAFETY: made for `Counter`; the target is a static.
        unsafe { kernel.queue_processor_call(&calls, p, &COUNTER) }
    });
}

#[test]
#[should_panic(expected = "target type the calls were not made for")]
fn queueing_another_target_type_panics() {
    let kernel = ModelKernel::with_processors(2);
    let recorder = Recorder::new(&kernel);
    // SAFETY: deliberately broken (the model's check is what is tested); the mismatch
    // panics before anything is queued.
    unsafe { kernel.queue_processor_call(recorder.calls(), 0, &COUNTER) };
}

/// Inside a call, a `with_processor` section is still a section: platform calls there
/// panic.
struct CallsThePlatformInASection(ModelKernel);

impl ProcessorCall for CallsThePlatformInASection {
    fn run_on(&self, _: usize) {
        self.0.with_processor(|_| self.0.new_lock(()).with(|()| ()));
    }
}

#[test]
#[should_panic(expected = "KeAcquireSpinLock called inside with_processor")]
fn a_section_inside_a_call_is_still_checked() {
    let kernel = ModelKernel::with_processors(1);
    let target = Box::leak(Box::new(CallsThePlatformInASection(kernel.clone())));
    let calls = Box::leak(Box::new(
        kernel
            .new_processor_calls::<CallsThePlatformInASection>(1)
            .unwrap(),
    ));
    // SAFETY: made for this type; the target is leaked, so it outlives the call.
    unsafe { kernel.queue_processor_call(calls, 0, target) };
}

#[test]
#[should_panic(expected = "IRQL violation: KeFlushQueuedDpcs")]
fn flush_above_passive_panics() {
    let kernel = ModelKernel::with_processors(1);
    let calls = kernel.new_processor_calls::<Counter>(1).unwrap();
    kernel
        .new_lock(())
        .with(|()| kernel.flush_processor_calls(&calls));
}
