//! ksprobe's scenarios on the model kernel and the real ksalloc-core: every scenario
//! passes against the correct driver, each leaves no pool block, IRP or file object
//! behind, and deliberately broken clients make the scenario that guards against their
//! fault fail (so the scenarios can fail at all).

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ks_abi::ks::{eventf, KsAllocatorFraming, KsStreamAllocatorStatus};
use ks_abi::NtStatus;
use ksalloc_model::{
    FunctionTable, Handle, Irp, KsClient, ModelDriver, ModelEvent, ModelKernel, RequestorMode,
};
use ksprobe_scenarios::client::Work;
use ksprobe_scenarios::requests::{event_data, Buffer, IoctlCase, Mode};
use ksprobe_scenarios::wire::{Request, Response};
use ksprobe_scenarios::{
    frame, run, Config, Failure, Outcome, ProbeClient, ScenarioId, ScenarioResult,
};

/// [`ProbeClient`] over the model's kernel-mode `KsClient`.
struct ModelProbe {
    client: KsClient,
    kernel: ModelKernel,
    epoch: Instant,
}

impl ModelProbe {
    fn new() -> Self {
        let kernel = ModelKernel::new();
        Self {
            client: KsClient::kernel(ModelDriver::new(kernel.clone())),
            kernel,
            epoch: Instant::now(),
        }
    }
}

/// The function table (it keeps the allocator's file object referenced).
struct ModelTable {
    table: FunctionTable,
}

/// A notification event and the handle a `KSEVENTDATA` names it by.
struct ModelProbeEvent {
    event: Arc<ModelEvent>,
    handle: usize,
}

const fn result(status: NtStatus) -> Result<(), NtStatus> {
    if status.is_success() {
        Ok(())
    } else {
        Err(status)
    }
}

impl ProbeClient for ModelProbe {
    type Handle = Handle;
    type Table = ModelTable;
    type Pending = Irp;
    type Event = ModelProbeEvent;

    fn open_filter(&self) -> Result<Handle, NtStatus> {
        self.client.open_filter()
    }

    fn create_pin(&self, filter: &Handle, pin_id: u32) -> Result<Handle, NtStatus> {
        self.client.create_pin(filter, pin_id)
    }

    fn create_allocator(
        &self,
        pin: &Handle,
        framing: &KsAllocatorFraming,
    ) -> Result<Handle, NtStatus> {
        self.client.create_allocator(pin, framing)
    }

    fn close(&self, handle: Handle) {
        self.client.close(handle);
    }

    fn function_table(&self, allocator: &Handle) -> Result<ModelTable, NtStatus> {
        Ok(ModelTable {
            table: self.client.function_table(allocator)?,
        })
    }

    fn table_allocate(&self, table: &ModelTable) -> Result<usize, NtStatus> {
        table.table.allocate_at_dispatch()
    }

    fn table_free(&self, table: &ModelTable, frame: usize) {
        table.table.free_at_dispatch(frame);
    }

    fn release_table(&self, table: ModelTable) {
        drop(table);
    }

    fn memory_released(&self, table: &ModelTable) -> Option<bool> {
        let object = table.table.file().object();
        Some(object.as_allocator()?.snapshot().memory_released)
    }

    fn at_dispatch<R>(&self, f: impl FnOnce() -> R) -> R {
        ksalloc_model::driver::at_dispatch(f)
    }

    fn yield_now(&self) {
        // While this thread gives way, idle processors run their queued DPCs (the
        // model's processor calls), as Windows' would meanwhile.
        if ksalloc_model::current_irql() == ksalloc_core::Irql::Passive {
            self.kernel.run_processor_calls();
        }
        std::thread::yield_now();
    }

    fn run_workers(&self, workers: u32, work: &Work<'_>) -> Result<(), Failure> {
        // std threads: the model's IRQL is per thread, like a processor's.
        std::thread::scope(|scope| {
            // Every thread is started before the first join: collected on purpose.
            #[allow(clippy::needless_collect)]
            let threads: Vec<_> = (0..workers)
                .map(|me| scope.spawn(move || work(me)))
                .collect();
            let mut outcome = Ok(());
            for thread in threads {
                let result = thread.join().expect("a worker panicked");
                if outcome.is_ok() {
                    outcome = result;
                }
            }
            outcome
        })
    }

    fn status(&self, allocator: &Handle) -> Result<KsStreamAllocatorStatus, NtStatus> {
        self.client.allocator_status(allocator)
    }

    fn alloc_pending(&self, allocator: &Handle) -> Result<Irp, NtStatus> {
        Ok(self.client.alloc(allocator))
    }

    fn wait(&self, pending: &Irp, timeout_ms: u32) -> Option<Result<usize, NtStatus>> {
        let done = pending.wait(Duration::from_millis(timeout_ms.into()))?;
        Some(if done.status == NtStatus::SUCCESS {
            pending.allocated_frame().ok_or(NtStatus::INVALID_PARAMETER)
        } else {
            Err(done.status)
        })
    }

    fn cancel(&self, pending: &Irp) {
        pending.cancel();
    }

    fn release_pending(&self, pending: Irp) {
        drop(pending);
    }

    fn free_method(&self, allocator: &Handle, frame: usize) -> Result<(), NtStatus> {
        result(self.client.free(allocator, frame))
    }

    fn create_event(&self) -> Result<ModelProbeEvent, NtStatus> {
        let event = Arc::new(ModelEvent::notification());
        let handle = self.kernel.event_handle(&event);
        Ok(ModelProbeEvent { event, handle })
    }

    fn enable_free_frame(
        &self,
        allocator: &Handle,
        event: &ModelProbeEvent,
    ) -> Result<(), NtStatus> {
        result(self.client.enable_free_frame(allocator, event.handle))
    }

    fn disable_free_frame(
        &self,
        allocator: &Handle,
        event: &ModelProbeEvent,
    ) -> Result<(), NtStatus> {
        result(self.client.disable_free_frame(allocator, event.handle))
    }

    fn clear_event(&self, event: &ModelProbeEvent) {
        event.event.clear();
    }

    fn wait_event(&self, event: &ModelProbeEvent, timeout_ms: u32) -> bool {
        event.event.wait(Duration::from_millis(timeout_ms.into()))
    }

    fn destroy_event(&self, event: ModelProbeEvent) {
        self.kernel.close_event_handle(event.handle);
    }

    fn touch_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        self.kernel
            .with_bytes(frame, len, |b| frame::fill(b, pattern))
    }

    fn verify_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        self.kernel
            .with_bytes(frame, len, |b| frame::verify(b, pattern))
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The model passes buffers as bytes: it sends every case but those with a bad
    /// address (the real driver's SEH capture is what those test).
    fn raw_ioctl(
        &self,
        object: &Handle,
        case: &IoctlCase,
        spare: &ModelProbeEvent,
    ) -> Option<(NtStatus, usize)> {
        let bytes = |b: &Buffer| match b {
            Buffer::Bytes(bytes) => Some(bytes.clone()),
            Buffer::SpareEvent => Some(event_data(eventf::EVENT_HANDLE, spare.handle)),
            Buffer::Bad { .. } => None,
        };
        let (input, data) = (bytes(&case.input)?, bytes(&case.data)?);
        let mode = match case.mode {
            Mode::Kernel => RequestorMode::Kernel,
            Mode::User => RequestorMode::User,
        };
        let irp = self
            .client
            .driver()
            .device_control(object, case.code, &input, &data, mode);
        let done = irp.completion()?;
        Some((done.status, done.information))
    }
}

/// Runs one scenario on a fresh model kernel and checks it leaked nothing.
fn run_on_model(id: ScenarioId, config: &Config) -> ScenarioResult {
    let probe = ModelProbe::new();
    let result = run(&probe, id, config);
    probe.kernel.assert_no_leaks();
    result
}

fn assert_passes(id: ScenarioId) {
    let result = run_on_model(id, &Config::DEFAULT);
    assert_eq!(result.outcome, Outcome::Pass, "{}: {result:?}", id.name());
    assert_eq!(result.id, id);
}

macro_rules! passes {
    ($($test:ident => $id:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                assert_passes(ScenarioId::$id);
            }
        )*
    };
}

passes! {
    open_chain_passes => OpenChain,
    function_table_passes => FunctionTable,
    alloc_free_dispatch_passes => AllocFreeDispatch,
    exhaust_fails_fast_passes => ExhaustFailsFast,
    pending_fifo_passes => PendingFifo,
    free_frame_event_passes => FreeFrameEvent,
    cancel_pending_passes => CancelPending,
    cleanup_keeps_table_passes => CleanupKeepsTable,
    parent_closed_first_passes => ParentClosedFirst,
    time_alloc_free_passes => TimeAllocFree,
    bad_requests_passes => BadRequests,
    threads_dispatch_passes => ThreadsDispatch,
}

#[test]
fn bad_requests_sends_every_case_the_model_can_express() {
    use ksprobe_scenarios::requests::{catalogue_cases, user_cases};
    let result = run_on_model(ScenarioId::BadRequests, &Config::DEFAULT);
    let all: Vec<IoctlCase> = catalogue_cases().into_iter().chain(user_cases()).collect();
    let bad = all
        .iter()
        .filter(|c| matches!(c.input, Buffer::Bad { .. }) || matches!(c.data, Buffer::Bad { .. }))
        .count();
    assert_eq!(
        result.note.as_str(),
        format!(
            "{} requests; {bad} this client cannot send",
            all.len() - bad
        )
    );
}

#[test]
fn cleanup_keeps_the_table_until_close_and_timings_are_reported() {
    // run_on_model's leak check sees the memory released at the table's release.
    let cleanup = run_on_model(ScenarioId::CleanupKeepsTable, &Config::DEFAULT);
    assert!(cleanup.passed(), "{cleanup:?}");
    let timed = run_on_model(ScenarioId::TimeAllocFree, &Config::DEFAULT);
    let t = timed.timings.expect("timings");
    assert_eq!(t.samples, Config::DEFAULT.timing_pairs);
    assert!(t.min_ns <= t.median_ns && t.median_ns <= t.p99_ns && t.p99_ns <= t.max_ns);
    let exhaust = run_on_model(ScenarioId::ExhaustFailsFast, &Config::DEFAULT);
    assert_eq!(exhaust.timings.map(|t| t.samples), Some(100));
}

#[test]
fn every_scenario_passes_on_one_kernel_one_after_another() {
    // As ksprobe runs them: in order, on one driver; each cleans up after itself.
    let probe = ModelProbe::new();
    let results = ksprobe_scenarios::run_all(&probe, &Config::DEFAULT);
    assert_eq!(results.len(), ScenarioId::ALL.len());
    for r in &results {
        assert!(r.passed(), "{}: {r:?}", r.name());
    }
    probe.kernel.assert_no_leaks();
}

#[test]
fn other_framings_pass_too() {
    let mut config = Config::DEFAULT;
    config.framing.frames = 32;
    config.framing.frame_size = 1000; // not a multiple of the alignment
    config.framing.file_alignment = ks_abi::ks::file_alignment::B512;
    config.frames_to_touch = 32;
    config.timing_pairs = 2000;
    let probe = ModelProbe::new();
    for r in ksprobe_scenarios::run_all(&probe, &config) {
        assert!(r.passed(), "{}: {r:?}", r.name());
    }
    config.framing.frames = 1; // the smallest pool: FIFO with one request
    for r in ksprobe_scenarios::run_all(&probe, &config) {
        assert!(r.passed(), "{} with one frame: {r:?}", r.name());
    }
    probe.kernel.assert_no_leaks();
}

#[test]
fn the_driver_path_over_the_wire() {
    // What ksprobe does with the runner's IOCTL: decode the request, run the selected
    // scenarios, encode the response; what the runner does: decode it.
    let mut request = Request::all();
    request.selection = ScenarioId::mask_of(&[ScenarioId::PendingFifo, ScenarioId::OpenChain]);
    request.config.timing_pairs = 10;
    let decoded = Request::decode(&request.encode()).unwrap();
    let probe = ModelProbe::new();
    let results = ksprobe_scenarios::run_selected(&probe, &decoded.scenarios(), &decoded.config);
    let response = Response {
        status: NtStatus::SUCCESS,
        results,
    };
    let back = Response::decode(&response.encode()).unwrap();
    assert_eq!(back, response);
    let names: Vec<&str> = back.results.iter().map(ScenarioResult::name).collect();
    assert_eq!(names, ["open_chain", "pending_fifo"]);
    assert!(back.results.iter().all(ScenarioResult::passed));
    probe.kernel.assert_no_leaks();
}

#[test]
fn a_bad_configuration_fails_every_scenario_without_touching_the_driver() {
    let mut config = Config::DEFAULT;
    config.framing.file_alignment = 6;
    let probe = ModelProbe::new();
    for r in ksprobe_scenarios::run_all(&probe, &config) {
        let Outcome::Fail(f) = r.outcome else {
            panic!("{} passed with a bad config", r.name())
        };
        assert!(f.reason.as_str().contains("alignment"), "{f:?}");
    }
    assert_eq!(probe.kernel.live_files(), 0);
}

#[test]
fn a_failed_open_is_reported_with_its_status() {
    // Pin factory 7 does not exist: the rig fails at the pin and closes the filter.
    let mut config = Config::DEFAULT;
    config.pin_id = 7;
    let result = run_on_model(ScenarioId::OpenChain, &config);
    let Outcome::Fail(f) = result.outcome else {
        panic!("passed on a missing pin factory")
    };
    assert_eq!(f.reason.as_str(), "create pin failed");
    assert!(f.status.is_some_and(NtStatus::is_error), "{f:?}");
}

// ---- deliberately broken clients ------------------------------------------------------

/// What a [`Broken`] client gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Every second AllocateFrame hands out the previous frame again.
    DuplicateFrame,
    /// Like `DuplicateFrame`, but only while `run_workers` runs: one thread gets the
    /// frame another holds.
    DuplicateInWorkers,
    /// AllocateFrame returns the frame address plus one.
    MisalignedFrame,
    /// FreeFrame keeps the frame (returned for real only when the table is released,
    /// so the model kernel ends clean).
    FreeDoesNothing,
    /// IoCancelIrp is never sent.
    CancelDoesNothing,
    /// Enabling FREEFRAME reports success without sending the IOCTL.
    EventNeverEnabled,
    /// A failing AllocateFrame first spins for 20 ms.
    SlowFailure,
    /// Raw IOCTLs go out without their data buffer.
    DataBufferDropped,
}

/// The model client with one [`Fault`].
struct Broken {
    inner: ModelProbe,
    fault: Fault,
    /// (last frame handed out, whether to hand it out again): a Mutex, as the
    /// client is shared by `run_workers`' threads.
    duplicate: Mutex<(Option<usize>, bool)>,
    swallowed: Mutex<Vec<usize>>,
    /// Whether `run_workers` is running.
    in_workers: std::sync::atomic::AtomicBool,
}

impl Broken {
    fn new(fault: Fault) -> Self {
        Self {
            inner: ModelProbe::new(),
            fault,
            duplicate: Mutex::new((None, false)),
            swallowed: Mutex::new(Vec::new()),
            in_workers: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl ProbeClient for Broken {
    type Handle = Handle;
    type Table = ModelTable;
    type Pending = Irp;
    type Event = ModelProbeEvent;

    fn open_filter(&self) -> Result<Handle, NtStatus> {
        self.inner.open_filter()
    }

    fn create_pin(&self, filter: &Handle, pin_id: u32) -> Result<Handle, NtStatus> {
        self.inner.create_pin(filter, pin_id)
    }

    fn create_allocator(
        &self,
        pin: &Handle,
        framing: &KsAllocatorFraming,
    ) -> Result<Handle, NtStatus> {
        self.inner.create_allocator(pin, framing)
    }

    fn close(&self, handle: Handle) {
        self.inner.close(handle);
    }

    fn function_table(&self, allocator: &Handle) -> Result<ModelTable, NtStatus> {
        self.inner.function_table(allocator)
    }

    fn table_allocate(&self, table: &ModelTable) -> Result<usize, NtStatus> {
        let duplicating = match self.fault {
            Fault::DuplicateFrame => true,
            Fault::DuplicateInWorkers => self.in_workers.load(SeqCst),
            _ => false,
        };
        match self.fault {
            _ if duplicating => {
                let again = {
                    let mut duplicate = self.duplicate.lock().unwrap();
                    let again = if duplicate.1 { duplicate.0 } else { None };
                    duplicate.1 = false;
                    again
                };
                if let Some(last) = again {
                    return Ok(last);
                }
                let frame = self.inner.table_allocate(table)?;
                *self.duplicate.lock().unwrap() = (Some(frame), true);
                Ok(frame)
            }
            Fault::MisalignedFrame => self.inner.table_allocate(table).map(|f| f + 1),
            Fault::SlowFailure => self.inner.table_allocate(table).inspect_err(|_| {
                std::thread::sleep(Duration::from_millis(20));
            }),
            _ => self.inner.table_allocate(table),
        }
    }

    fn table_free(&self, table: &ModelTable, frame: usize) {
        match self.fault {
            Fault::FreeDoesNothing => self.swallowed.lock().unwrap().push(frame),
            Fault::MisalignedFrame => self.inner.table_free(table, frame - 1),
            _ => self.inner.table_free(table, frame),
        }
    }

    fn release_table(&self, table: ModelTable) {
        // A duplicated frame belongs to this table's allocator only: forget it, so a
        // later scenario never touches a frame of an allocator that is gone.
        *self.duplicate.lock().unwrap() = (None, false);
        // Scaffolding, not the fault: give the kept frames back for real so the
        // model kernel can be checked for leaks afterwards.
        let swallowed = std::mem::take(&mut *self.swallowed.lock().unwrap());
        for frame in swallowed {
            self.inner.table_free(&table, frame);
        }
        self.inner.release_table(table);
    }

    fn memory_released(&self, table: &ModelTable) -> Option<bool> {
        self.inner.memory_released(table)
    }

    fn at_dispatch<R>(&self, f: impl FnOnce() -> R) -> R {
        self.inner.at_dispatch(f)
    }

    fn yield_now(&self) {
        self.inner.yield_now();
    }

    fn run_workers(&self, workers: u32, work: &Work<'_>) -> Result<(), Failure> {
        self.in_workers.store(true, SeqCst);
        let result = self.inner.run_workers(workers, work);
        self.in_workers.store(false, SeqCst);
        result
    }

    fn status(&self, allocator: &Handle) -> Result<KsStreamAllocatorStatus, NtStatus> {
        self.inner.status(allocator)
    }

    fn alloc_pending(&self, allocator: &Handle) -> Result<Irp, NtStatus> {
        self.inner.alloc_pending(allocator)
    }

    fn wait(&self, pending: &Irp, timeout_ms: u32) -> Option<Result<usize, NtStatus>> {
        self.inner.wait(pending, timeout_ms)
    }

    fn cancel(&self, pending: &Irp) {
        if self.fault != Fault::CancelDoesNothing {
            self.inner.cancel(pending);
        }
    }

    fn release_pending(&self, pending: Irp) {
        self.inner.release_pending(pending);
    }

    fn free_method(&self, allocator: &Handle, frame: usize) -> Result<(), NtStatus> {
        self.inner.free_method(allocator, frame)
    }

    fn create_event(&self) -> Result<ModelProbeEvent, NtStatus> {
        self.inner.create_event()
    }

    fn enable_free_frame(
        &self,
        allocator: &Handle,
        event: &ModelProbeEvent,
    ) -> Result<(), NtStatus> {
        if self.fault == Fault::EventNeverEnabled {
            return Ok(());
        }
        self.inner.enable_free_frame(allocator, event)
    }

    fn disable_free_frame(
        &self,
        allocator: &Handle,
        event: &ModelProbeEvent,
    ) -> Result<(), NtStatus> {
        if self.fault == Fault::EventNeverEnabled {
            return Ok(());
        }
        self.inner.disable_free_frame(allocator, event)
    }

    fn clear_event(&self, event: &ModelProbeEvent) {
        self.inner.clear_event(event);
    }

    fn wait_event(&self, event: &ModelProbeEvent, timeout_ms: u32) -> bool {
        self.inner.wait_event(event, timeout_ms)
    }

    fn destroy_event(&self, event: ModelProbeEvent) {
        self.inner.destroy_event(event);
    }

    fn touch_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        self.inner.touch_frame(frame, len, pattern)
    }

    fn verify_frame(&self, frame: usize, len: usize, pattern: u8) -> bool {
        self.inner.verify_frame(frame, len, pattern)
    }

    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }

    fn raw_ioctl(
        &self,
        object: &Handle,
        case: &IoctlCase,
        spare: &ModelProbeEvent,
    ) -> Option<(NtStatus, usize)> {
        if self.fault != Fault::DataBufferDropped {
            return self.inner.raw_ioctl(object, case, spare);
        }
        let dropped = IoctlCase {
            data: Buffer::Bytes(Vec::new()),
            ..case.clone()
        };
        self.inner.raw_ioctl(object, &dropped, spare)
    }
}

/// Short waits: the broken cases wait for things that never happen.
const fn quick_config() -> Config {
    Config {
        wait_ms: 100,
        fast_fail_ns: 5_000_000,
        ..Config::DEFAULT
    }
}

/// Runs `id` with a client that has `fault`; returns the failure's reason and values,
/// after checking the tear-down still left the model kernel clean.
fn fails_with(fault: Fault, id: ScenarioId) -> (String, [u64; 2], Option<NtStatus>) {
    let broken = Broken::new(fault);
    let result = run(&broken, id, &quick_config());
    broken.inner.kernel.assert_no_leaks();
    match result.outcome {
        Outcome::Pass => panic!("{} passed with {fault:?}", id.name()),
        Outcome::Fail(f) => (f.reason.to_string(), f.values, f.status),
    }
}

#[test]
fn a_client_that_drops_data_buffers_fails_bad_requests_and_the_mask_names_the_cases() {
    use ksprobe_scenarios::requests::{all_cases, values_mask};
    let (reason, values, _) = fails_with(Fault::DataBufferDropped, ScenarioId::BadRequests);
    let mask = values_mask(values);
    let cases = all_cases();
    let first = cases[mask.trailing_zeros() as usize].name;
    assert!(
        reason.starts_with(&format!("{}/", mask.count_ones())) && reason.ends_with(first),
        "{reason} (mask {mask:#x})"
    );
    // Cases without a data buffer are unaffected.
    for (i, case) in cases.iter().enumerate() {
        if case.data.is_empty() {
            assert_eq!(mask >> i & 1, 0, "{}", case.name);
        }
    }
    assert!(mask.count_ones() >= 5, "{mask:#x}");
}

#[test]
fn a_frame_handed_out_twice_fails_alloc_free_dispatch() {
    let (reason, values, _) = fails_with(Fault::DuplicateFrame, ScenarioId::AllocFreeDispatch);
    assert_eq!(reason, "frame handed out twice (frame indices)");
    assert_eq!(values, [0, 1], "the second frame repeats the first");
}

#[test]
fn a_frame_handed_to_two_threads_fails_threads_dispatch() {
    let (reason, values, _) = fails_with(Fault::DuplicateInWorkers, ScenarioId::ThreadsDispatch);
    assert!(
        reason.starts_with("frame handed out twice at once"),
        "{reason}"
    );
    assert!(
        values[0] >= 1 && values[0] <= 4 && values[1] < 4,
        "{values:?}"
    );
    let (reason, _, _) = fails_with(Fault::DuplicateFrame, ScenarioId::ThreadsDispatch);
    assert!(
        reason.starts_with("filling the pool handed a frame out twice"),
        "{reason}"
    );
    let (reason, values, _) = fails_with(Fault::FreeDoesNothing, ScenarioId::ThreadsDispatch);
    assert_eq!(reason, "STATUS before the workers (got, expected)");
    assert_eq!(values, [8, 0]);
}

#[test]
fn the_threads_contend_and_are_refused_sometimes() {
    let result = run_on_model(ScenarioId::ThreadsDispatch, &Config::DEFAULT);
    assert!(result.passed(), "{result:?}");
    let note = result.note.as_str();
    let refused: u32 = note
        .strip_prefix("4 threads x 2000 AllocateFrame, ")
        .and_then(|n| n.strip_suffix(" refused"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{note}"));
    assert!(refused > 0 && refused < 8000, "{note}");
}

#[test]
fn a_misaligned_frame_fails_alloc_free_dispatch() {
    let (reason, values, _) = fails_with(Fault::MisalignedFrame, ScenarioId::AllocFreeDispatch);
    assert!(reason.starts_with("frame not aligned"), "{reason}");
    assert_eq!(values[1], 64);
}

#[test]
fn a_free_that_does_nothing_fails_the_scenarios_that_return_frames() {
    let (reason, values, _) = fails_with(Fault::FreeDoesNothing, ScenarioId::FunctionTable);
    assert_eq!(reason, "STATUS after FreeFrame (got, expected)");
    assert_eq!(values, [1, 0]);
    let (reason, _, _) = fails_with(Fault::FreeDoesNothing, ScenarioId::PendingFifo);
    assert!(
        reason.starts_with("oldest pending ALLOC not completed"),
        "{reason}"
    );
    let (reason, _, _) = fails_with(Fault::FreeDoesNothing, ScenarioId::CleanupKeepsTable);
    assert_eq!(
        reason,
        "AllocateFrame failed after cleanup with frames home"
    );
    let (reason, values, _) = fails_with(Fault::FreeDoesNothing, ScenarioId::ParentClosedFirst);
    assert_eq!(
        reason,
        "STATUS after the frame returned (allocated, expected)"
    );
    assert_eq!(values, [1, 0]);
}

#[test]
fn a_cancel_that_is_never_sent_fails_cancel_pending() {
    let (reason, values, _) = fails_with(Fault::CancelDoesNothing, ScenarioId::CancelPending);
    assert_eq!(reason, "cancelled ALLOC did not complete (wait ms)");
    assert_eq!(values[0], 100);
}

#[test]
fn an_event_never_enabled_fails_free_frame_event() {
    let (reason, _, _) = fails_with(Fault::EventNeverEnabled, ScenarioId::FreeFrameEvent);
    assert_eq!(reason, "FREEFRAME not signalled after FreeFrame (wait ms)");
}

#[test]
fn a_slow_failure_fails_exhaust_fails_fast() {
    let (reason, values, _) = fails_with(Fault::SlowFailure, ScenarioId::ExhaustFailsFast);
    assert!(
        reason.starts_with("empty pool: AllocateFrame did not fail fast"),
        "{reason}"
    );
    assert!(
        values[0] >= 20_000_000 && values[1] == 5_000_000,
        "{values:?}"
    );
}

#[test]
fn broken_clients_leave_the_other_scenarios_clean() {
    // Whatever fails, every scenario's tear-down still returns everything.
    for fault in [
        Fault::DuplicateFrame,
        Fault::FreeDoesNothing,
        Fault::CancelDoesNothing,
        Fault::EventNeverEnabled,
    ] {
        let broken = Broken::new(fault);
        let results = ksprobe_scenarios::run_all(&broken, &quick_config());
        assert!(
            results.iter().any(|r| !r.passed()),
            "{fault:?}: nothing failed"
        );
        broken.inner.kernel.assert_no_leaks();
    }
}

// ---- the driver's IOCTL handler, on the model ------------------------------------------

/// A METHOD_BUFFERED system buffer holding `request`, `output_len` long at least.
fn system_buffer(request: &[u8], output_len: usize) -> Vec<u8> {
    let mut buffer = request.to_vec();
    buffer.resize(request.len().max(output_len), 0);
    buffer
}

#[test]
fn serve_runs_the_selection_in_one_buffer() {
    use ksprobe_scenarios::wire::{response_len, serve};
    let mut request = Request::all();
    request.selection = ScenarioId::mask_of(&[ScenarioId::CancelPending]);
    let bytes = request.encode();
    // A response shorter than the request: METHOD_BUFFERED's buffer is the longer one.
    let out_len = response_len(1);
    let mut buffer = system_buffer(&bytes, out_len);
    let probe = ModelProbe::new();
    let kernel = probe.kernel.clone();
    let (status, information) = serve(&mut buffer, bytes.len(), out_len, |r| {
        assert_eq!(r, &request);
        Ok(probe)
    });
    assert_eq!((status, information), (NtStatus::SUCCESS, out_len));
    let response = Response::decode(&buffer[..information]).unwrap();
    assert_eq!(response.status, NtStatus::SUCCESS);
    assert_eq!(response.results.len(), 1);
    assert!(response.results[0].passed(), "{:?}", response.results[0]);
    kernel.assert_no_leaks();
}

#[test]
fn serve_refuses_bad_requests_and_short_buffers_before_running() {
    use ksprobe_scenarios::wire::{response_len, serve};
    let bytes = Request::all().encode();
    let never = |_: &Request| -> Result<ModelProbe, NtStatus> { panic!("must not run") };
    let mut garbage = vec![0u8; 4096];
    assert_eq!(
        serve(&mut garbage, 64, 4096, never),
        (NtStatus::INVALID_PARAMETER, 0),
        "wrong magic"
    );
    let mut short = system_buffer(&bytes, 0);
    assert_eq!(
        serve(&mut short, bytes.len() - 1, 4096, never),
        (NtStatus::BUFFER_TOO_SMALL, 0),
        "truncated request"
    );
    let needed = response_len(ScenarioId::ALL.len());
    let mut buffer = system_buffer(&bytes, needed);
    assert_eq!(
        serve(&mut buffer, bytes.len(), needed - 1, never),
        (NtStatus::BUFFER_TOO_SMALL, 0),
        "output too short for every scenario"
    );
    // No client: a response that says why, with no results.
    let mut buffer = system_buffer(&bytes, needed);
    let (status, information) = serve(&mut buffer, bytes.len(), needed, |_| {
        Err::<ModelProbe, _>(NtStatus::OBJECT_NAME_NOT_FOUND)
    });
    assert_eq!(status, NtStatus::SUCCESS);
    let response = Response::decode(&buffer[..information]).unwrap();
    assert_eq!(response.status, NtStatus::OBJECT_NAME_NOT_FOUND);
    assert!(response.results.is_empty());
}

// ---- the kernel client's bytes, on the model driver ------------------------------------

#[test]
fn the_kernel_clients_bytes_create_and_drive_ksalloc_objects() {
    use ks_abi::guid::{
        KSEVENTSETID_STREAM_ALLOCATOR, KSNAME_ALLOCATOR, KSNAME_PIN, KSPROPSETID_STREAM_ALLOCATOR,
    };
    use ks_abi::ioctl::{IOCTL_KS_ENABLE_EVENT, IOCTL_KS_PROPERTY};
    use ks_abi::ks::{event_type, property_type, stream_allocator};
    use ksprobe_scenarios::ks;

    let kernel = ModelKernel::new();
    let driver = ModelDriver::new(kernel.clone());
    let client = KsClient::kernel(driver.clone());
    let filter = client.open_filter().unwrap();
    // Exactly the create names ksprobe's ZwCreateFile sends (relative, no leading `\`).
    let pin_name = ks::child_create_name(&KSNAME_PIN, &ks::connect_bytes(0));
    assert_eq!(pin_name.len(), 38 + 1 + ks::CONNECT_SIZE / 2);
    let pin = driver
        .create(Some(&filter), &ks::utf16_bytes(&pin_name))
        .expect("ksalloc accepts ksprobe's pin create name");
    let framing = Config::DEFAULT.framing;
    let allocator_name = ks::child_create_name(&KSNAME_ALLOCATOR, &ks::framing_bytes(&framing));
    let allocator = driver
        .create(Some(&pin), &ks::utf16_bytes(&allocator_name))
        .expect("ksalloc accepts ksprobe's allocator create name");
    // The request identifier and the STATUS parser.
    let status_request = ks::identifier(
        &KSPROPSETID_STREAM_ALLOCATOR,
        stream_allocator::PROPERTY_STATUS,
        property_type::GET,
    );
    assert_eq!(
        status_request.to_vec(),
        ksalloc_model::client::request(
            &KSPROPSETID_STREAM_ALLOCATOR,
            stream_allocator::PROPERTY_STATUS,
            property_type::GET,
            &[]
        )
    );
    let irp = client.ioctl(&allocator, IOCTL_KS_PROPERTY, &status_request, &[0; 32]);
    let raw: [u8; 32] = irp.output().try_into().unwrap();
    let status = ks::parse_status(&raw);
    assert_eq!(status, client.allocator_status(&allocator).unwrap());
    assert_eq!(status.framing, framing);
    // The KSEVENTDATA ksprobe enables FREEFRAME with.
    let event = Arc::new(ModelEvent::notification());
    let handle = kernel.event_handle(&event);
    let enable = ks::identifier(
        &KSEVENTSETID_STREAM_ALLOCATOR,
        stream_allocator::EVENT_FREEFRAME,
        event_type::ENABLE,
    );
    let enabled = client.ioctl(
        &allocator,
        IOCTL_KS_ENABLE_EVENT,
        &enable,
        &ks::event_handle_data(handle),
    );
    assert_eq!(
        enabled.completion().map(|c| c.status),
        Some(NtStatus::SUCCESS)
    );
    assert_eq!(
        client.disable_free_frame(&allocator, handle),
        NtStatus::SUCCESS
    );
    kernel.close_event_handle(handle);
    client.close(allocator);
    client.close(pin);
    client.close(filter);
    kernel.assert_no_leaks();
}
