//! The scenarios, their names, their configuration, and how to run them.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use ks_abi::ks::{allocator_flags, file_alignment, pool_type, KsAllocatorFraming};
use ks_abi::NtStatus;

use crate::client::ProbeClient;
use crate::result::{Failure, Outcome, ScenarioResult, Text, Timings};
use crate::rig::Rig;

/// The scenarios, in the order [`run_all`] runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScenarioId {
    /// Open filter -> pin -> allocator; STATUS reports the framing and no frames out.
    OpenChain,
    /// FUNCTIONTABLE as a kernel requestor; one frame out and back through it.
    FunctionTable,
    /// N frames at DISPATCH_LEVEL: distinct, non-overlapping, aligned, writable across
    /// their whole size, and still holding their contents when all are out.
    AllocFreeDispatch,
    /// With every frame out, AllocateFrame fails at once with
    /// STATUS_INSUFFICIENT_RESOURCES; the pool refills when frames return.
    ExhaustFailsFast,
    /// ALLOC requests pend on an empty pool and complete oldest first, each with the
    /// frame just returned (through FreeFrame and the FREE method).
    PendingFifo,
    /// FREEFRAME fires on FreeFrame and on the FREE method, not without a return, and
    /// no longer after it is disabled.
    FreeFrameEvent,
    /// A cancelled pending ALLOC completes STATUS_CANCELLED and takes no frame.
    CancelPending,
    /// Closing the allocator's handle while the table's file-object reference is held
    /// is IRP_MJ_CLEANUP, not IRP_MJ_CLOSE: pending ALLOCs are cancelled and new
    /// IRP-based requests refused, but the function table keeps working (frames out
    /// stay usable, return, and are handed out again) until the reference goes.
    CleanupKeepsTable,
    /// The filter's and the pin's handles close before the allocator's: the allocator
    /// (its table, its STATUS, its close) does not depend on its parents' file objects.
    ParentClosedFirst,
    /// Latency of AllocateFrame + FreeFrame pairs at DISPATCH_LEVEL.
    TimeAllocFree,
    /// The bad-input catalogue's IOCTL cases and the user-mode requests of
    /// [`crate::requests`], each answered with its documented status, none changing the
    /// allocator's STATUS, the driver serving on after bad addresses.
    BadRequests,
    /// Several threads allocate, write, hold, check and free frames through the table
    /// at DISPATCH_LEVEL at once: no frame is handed to two holders, none comes back
    /// changed, every one comes home (STATUS 0) and the pool refills with the same frames.
    ThreadsDispatch,
}

impl ScenarioId {
    /// Every scenario, in run order.
    pub const ALL: [Self; 12] = [
        Self::OpenChain,
        Self::FunctionTable,
        Self::AllocFreeDispatch,
        Self::ExhaustFailsFast,
        Self::PendingFifo,
        Self::FreeFrameEvent,
        Self::CancelPending,
        Self::CleanupKeepsTable,
        Self::ParentClosedFirst,
        Self::TimeAllocFree,
        Self::BadRequests,
        Self::ThreadsDispatch,
    ];

    /// The name used on the command line and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::OpenChain => "open_chain",
            Self::FunctionTable => "function_table",
            Self::AllocFreeDispatch => "alloc_free_dispatch",
            Self::ExhaustFailsFast => "exhaust_fails_fast",
            Self::PendingFifo => "pending_fifo",
            Self::FreeFrameEvent => "free_frame_event",
            Self::CancelPending => "cancel_pending",
            Self::CleanupKeepsTable => "cleanup_keeps_table",
            Self::ParentClosedFirst => "parent_closed_first",
            Self::TimeAllocFree => "time_alloc_free",
            Self::BadRequests => "bad_requests",
            Self::ThreadsDispatch => "threads_dispatch",
        }
    }

    /// One line on what it checks.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::OpenChain => "open filter -> pin -> allocator; STATUS shows the framing",
            Self::FunctionTable => "FUNCTIONTABLE as a kernel requestor; a frame out and back",
            Self::AllocFreeDispatch => {
                "frames at DISPATCH_LEVEL are distinct, aligned and writable throughout"
            }
            Self::ExhaustFailsFast => {
                "empty pool: AllocateFrame fails at once with STATUS_INSUFFICIENT_RESOURCES"
            }
            Self::PendingFifo => "pending ALLOCs complete oldest first as frames return",
            Self::FreeFrameEvent => "FREEFRAME fires on each return, and not once disabled",
            Self::CancelPending => "a cancelled pending ALLOC ends STATUS_CANCELLED",
            Self::CleanupKeepsTable => {
                "handle closed, table referenced: ALLOCs cancelled, the table keeps working"
            }
            Self::ParentClosedFirst => "filter and pin closed first: the allocator still works",
            Self::TimeAllocFree => "AllocateFrame + FreeFrame pair latency at DISPATCH_LEVEL",
            Self::BadRequests => {
                "catalogue IOCTLs and user-mode bad pointers get their documented status"
            }
            Self::ThreadsDispatch => {
                "threads share the table at DISPATCH_LEVEL: no frame twice, all come home"
            }
        }
    }

    /// The scenario called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|id| id.name() == name)
    }

    /// Its position in [`Self::ALL`] (its bit in a selection mask).
    #[must_use]
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// The scenario at `index` of [`Self::ALL`].
    #[must_use]
    pub fn from_index(index: u8) -> Option<Self> {
        Self::ALL.get(usize::from(index)).copied()
    }

    /// The selection mask of `ids` (bit [`Self::index`] set for each).
    #[must_use]
    pub fn mask_of(ids: &[Self]) -> u64 {
        ids.iter().fold(0, |m, id| m | 1 << id.index())
    }

    /// The scenarios a mask selects, in run order; 0 selects all.
    #[must_use]
    pub fn from_mask(mask: u64) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|id| mask == 0 || mask & (1 << id.index()) != 0)
            .collect()
    }
}

/// What the scenarios use: the allocator's framing and the limits of their checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The framing each scenario creates its allocator with.
    pub framing: KsAllocatorFraming,
    /// Pin factory the allocator hangs off.
    pub pin_id: u32,
    /// Frames [`ScenarioId::AllocFreeDispatch`] takes (at most `framing.frames`).
    pub frames_to_touch: u32,
    /// Pairs [`ScenarioId::TimeAllocFree`] times.
    pub timing_pairs: u32,
    /// How long to wait for a request or event that should complete, in ms.
    pub wait_ms: u32,
    /// Slowest acceptable failing AllocateFrame on an empty pool, in ns.
    pub fast_fail_ns: u64,
}

/// Limits [`Config::check`] enforces (the driver runs what the runner sends).
pub mod limits {
    /// Most frames per allocator.
    pub const MAX_FRAMES: u32 = 4096;
    /// Most bytes of frame memory per allocator.
    pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
    /// Most timed pairs.
    pub const MAX_TIMING_PAIRS: u32 = 1_000_000;
    /// Longest wait.
    pub const MAX_WAIT_MS: u32 = 60_000;
}

impl Config {
    /// 8 frames of 4 KiB, 64-byte aligned, nonpaged, on pin 0: what ksalloc's pins
    /// ask for. 10,000 timed pairs, 1 s waits, 10 ms for a failing allocation.
    pub const DEFAULT: Self = Self {
        framing: KsAllocatorFraming {
            options_flags: allocator_flags::REQUIREMENTF_SYSTEM_MEMORY,
            pool_type: pool_type::NON_PAGED,
            frames: 8,
            frame_size: 4096,
            file_alignment: file_alignment::B64,
            reserved: 0,
        },
        pin_id: 0,
        frames_to_touch: 8,
        timing_pairs: 10_000,
        wait_ms: 1000,
        fast_fail_ns: 10_000_000,
    };

    /// Checks the configuration is one the scenarios can run within bounded time and
    /// memory.
    ///
    /// # Errors
    /// The first rule broken.
    pub const fn check(&self) -> Result<(), &'static str> {
        let f = &self.framing;
        if f.frames == 0 || f.frames > limits::MAX_FRAMES {
            return Err("framing: frames must be 1..=4096");
        }
        if f.frame_size == 0 {
            return Err("framing: frame size must be at least 1");
        }
        if f.frames as u64 * f.frame_size as u64 > limits::MAX_TOTAL_BYTES {
            return Err("framing: frames x frame size must be at most 64 MiB");
        }
        if f.file_alignment >= 4096 || (f.file_alignment + 1).count_ones() != 1 {
            return Err("framing: alignment must be a FILE_*_ALIGNMENT below a page");
        }
        if self.timing_pairs == 0 || self.timing_pairs > limits::MAX_TIMING_PAIRS {
            return Err("timing pairs must be 1..=1000000");
        }
        if self.wait_ms > limits::MAX_WAIT_MS {
            return Err("wait must be at most 60000 ms");
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a passing scenario adds to its result.
#[derive(Default)]
struct Extra {
    timings: Option<Timings>,
    note: Text,
}

type Checked = Result<Extra, Failure>;

/// `Ok` if `holds`, else a failure with `reason` and two values.
fn ensure(holds: bool, reason: &str, a: u64, b: u64) -> Result<(), Failure> {
    if holds {
        Ok(())
    } else {
        Err(Failure::new(reason).with_values(a, b))
    }
}

/// Runs one scenario.
pub fn run<C: ProbeClient>(client: &C, id: ScenarioId, config: &Config) -> ScenarioResult {
    let start = client.now_ns();
    let checked = match config.check() {
        Err(rule) => Err(Failure::new(rule)),
        Ok(()) => match id {
            ScenarioId::OpenChain => open_chain(client, config),
            ScenarioId::FunctionTable => function_table(client, config),
            ScenarioId::AllocFreeDispatch => alloc_free_dispatch(client, config),
            ScenarioId::ExhaustFailsFast => exhaust_fails_fast(client, config),
            ScenarioId::PendingFifo => pending_fifo(client, config),
            ScenarioId::FreeFrameEvent => free_frame_event(client, config),
            ScenarioId::CancelPending => cancel_pending(client, config),
            ScenarioId::CleanupKeepsTable => cleanup_keeps_table(client, config),
            ScenarioId::ParentClosedFirst => parent_closed_first(client, config),
            ScenarioId::TimeAllocFree => time_alloc_free(client, config),
            ScenarioId::BadRequests => bad_requests(client, config),
            ScenarioId::ThreadsDispatch => threads_dispatch(client, config),
        },
    };
    let elapsed_ns = client.now_ns().saturating_sub(start);
    let (outcome, extra) = match checked {
        Ok(extra) => (Outcome::Pass, extra),
        Err(failure) => (Outcome::Fail(failure), Extra::default()),
    };
    ScenarioResult {
        id,
        outcome,
        elapsed_ns,
        timings: extra.timings,
        note: extra.note,
    }
}

/// Runs `ids` in the order given.
pub fn run_selected<C: ProbeClient>(
    client: &C,
    ids: &[ScenarioId],
    config: &Config,
) -> Vec<ScenarioResult> {
    ids.iter().map(|&id| run(client, id, config)).collect()
}

/// Runs every scenario.
pub fn run_all<C: ProbeClient>(client: &C, config: &Config) -> Vec<ScenarioResult> {
    run_selected(client, &ScenarioId::ALL, config)
}

fn open_chain<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let rig = Rig::open(client, config)?;
    let status = rig.status()?;
    let (want, got) = (&config.framing, &status.framing);
    ensure(
        got.frames == want.frames,
        "STATUS framing: Frames differs from the request (got, asked)",
        got.frames.into(),
        want.frames.into(),
    )?;
    ensure(
        got.frame_size >= want.frame_size,
        "STATUS framing: FrameSize below the request (got, asked)",
        got.frame_size.into(),
        want.frame_size.into(),
    )?;
    ensure(
        status.allocated_frames == 0,
        "a new allocator reports frames allocated (got, expected)",
        status.allocated_frames.into(),
        0,
    )?;
    Ok(Extra::default())
}

fn function_table<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let frame = client
        .at_dispatch(|| rig.table_alloc())
        .map_err(|s| Failure::status("AllocateFrame through the table failed", s))?;
    rig.expect_allocated(1, "STATUS after one AllocateFrame (got, expected)")?;
    client.at_dispatch(|| rig.table_free(frame));
    rig.expect_allocated(0, "STATUS after FreeFrame (got, expected)")?;
    Ok(Extra::default())
}

/// Frames `a` and `b` of `len` bytes share a byte.
const fn overlap(a: usize, b: usize, len: usize) -> bool {
    a < b.saturating_add(len) && b < a.saturating_add(len)
}

#[allow(clippy::cast_possible_truncation)] // Patterns are frame indices mod 256.
fn alloc_free_dispatch<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let framing = *rig.framing();
    let n = config.frames_to_touch.min(framing.frames) as usize;
    let len = framing.frame_size as usize;
    let mask = framing.file_alignment as usize;
    let mut frames: Vec<usize> = Vec::with_capacity(n);
    client.at_dispatch(|| -> Result<(), Failure> {
        for i in 0..n {
            let frame = rig.table_alloc().map_err(|s| {
                Failure::status("AllocateFrame failed at DISPATCH_LEVEL (frame index)", s)
                    .with_values(i as u64, 0)
            })?;
            ensure(
                frame != 0,
                "AllocateFrame returned NULL (frame index)",
                i as u64,
                0,
            )?;
            ensure(
                frame & mask == 0,
                "frame not aligned to FileAlignment + 1 (frame, alignment)",
                frame as u64,
                mask as u64 + 1,
            )?;
            if let Some(j) = frames.iter().position(|&f| f == frame) {
                return Err(Failure::new("frame handed out twice (frame indices)")
                    .with_values(j as u64, i as u64));
            }
            if let Some(&other) = frames.iter().find(|&&f| overlap(f, frame, len)) {
                return Err(Failure::new("frames overlap (frame, other frame)")
                    .with_values(frame as u64, other as u64));
            }
            ensure(
                client.touch_frame(frame, len, i as u8),
                "frame not writable across its whole size (frame, size)",
                frame as u64,
                len as u64,
            )?;
            frames.push(frame);
        }
        // All written: each still holds its own pattern, so no two share memory.
        for (i, &frame) in frames.iter().enumerate() {
            ensure(
                client.verify_frame(frame, len, i as u8),
                "frame contents changed while others were written (frame index, frame)",
                i as u64,
                frame as u64,
            )?;
        }
        for &frame in &frames {
            rig.table_free(frame);
        }
        Ok(())
    })?;
    rig.expect_allocated(0, "STATUS after every frame returned (got, expected)")?;
    Ok(Extra::default())
}

/// Failing AllocateFrame calls timed on an empty pool.
const FAST_FAIL_TRIES: usize = 100;

fn exhaust_fails_fast<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let frames = rig.fill_pool()?;
    let total = u64::from(rig.framing().frames);
    let mut samples = [0u64; FAST_FAIL_TRIES];
    let mut unexpected = None;
    client.at_dispatch(|| {
        for sample in &mut samples {
            let start = client.now_ns();
            let got = rig.table_alloc();
            *sample = client.now_ns().saturating_sub(start);
            if got != Err(NtStatus::INSUFFICIENT_RESOURCES) {
                unexpected = Some(got);
                break;
            }
        }
    });
    match unexpected {
        None => {}
        Some(Ok(frame)) => {
            return Err(Failure::new(
                "AllocateFrame succeeded with every frame out (frame, Frames)",
            )
            .with_values(frame as u64, total))
        }
        Some(Err(status)) => {
            return Err(Failure::status(
                "empty pool: AllocateFrame failed with the wrong status",
                status,
            ))
        }
    }
    let timings = Timings::from_samples(&mut samples);
    let slowest = timings.map_or(0, |t| t.max_ns);
    ensure(
        slowest <= config.fast_fail_ns,
        "empty pool: AllocateFrame did not fail fast (slowest ns, limit ns)",
        slowest,
        config.fast_fail_ns,
    )?;
    rig.expect_allocated(
        rig.framing().frames,
        "STATUS with every frame out (got, expected)",
    )?;
    // A returned frame is available again at once.
    client.at_dispatch(|| rig.table_free(frames[0]));
    let again = client.at_dispatch(|| rig.table_alloc());
    ensure(
        again.is_ok(),
        "AllocateFrame failed after a frame was returned (frames out, Frames)",
        total - 1,
        total,
    )?;
    Ok(Extra {
        timings,
        note: Text::new("timings: failing AllocateFrame on an empty pool"),
    })
}

/// ALLOC requests [`ScenarioId::PendingFifo`] queues.
const FIFO_DEPTH: usize = 3;

fn pending_fifo<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let frames = rig.fill_pool()?;
    let depth = FIFO_DEPTH.min(frames.len());
    let mut requests = [0usize; FIFO_DEPTH];
    for (i, slot) in requests.iter_mut().enumerate().take(depth) {
        *slot = rig.pend()?;
        if let Some(result) = rig.poll(*slot) {
            return Err(match result {
                Ok(_) => Failure::new("ALLOC completed with no frame free (request)"),
                Err(s) => Failure::status("ALLOC on an empty pool failed instead of pending", s),
            }
            .with_values(i as u64, 0));
        }
    }
    for (j, &frame) in frames.iter().enumerate().take(depth) {
        // Alternate the two ways back: FreeFrame through the table, the FREE method.
        if j % 2 == 0 {
            client.at_dispatch(|| rig.table_free(frame));
        } else {
            rig.free_method(frame)
                .map_err(|s| Failure::status("FREE method failed", s))?;
        }
        match rig.wait(requests[j], config.wait_ms) {
            None => {
                return Err(Failure::new(
                    "oldest pending ALLOC not completed by a returned frame (request)",
                )
                .with_values(j as u64, 0))
            }
            Some(Err(s)) => {
                return Err(Failure::status("pending ALLOC completed with an error", s)
                    .with_values(j as u64, 0))
            }
            Some(Ok(got)) => ensure(
                got == frame,
                "pending ALLOC did not get the frame just returned (got, returned)",
                got as u64,
                frame as u64,
            )?,
        }
        for (later, &request) in requests.iter().enumerate().take(depth).skip(j + 1) {
            ensure(
                rig.poll(request).is_none(),
                "a younger ALLOC completed before an older one (younger, older)",
                later as u64,
                j as u64,
            )?;
        }
    }
    rig.expect_allocated(
        rig.framing().frames,
        "STATUS with every frame out or handed to a request (got, expected)",
    )?;
    Ok(Extra::default())
}

fn free_frame_event<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    rig.enable_event()?;
    let alloc = |rig: &mut Rig<'_, C>| {
        client
            .at_dispatch(|| rig.table_alloc())
            .map_err(|s| Failure::status("AllocateFrame failed", s))
    };

    let frame = alloc(&mut rig)?;
    client.clear_event(rig.event()?);
    ensure(
        !client.wait_event(rig.event()?, 0),
        "FREEFRAME signalled with no frame returned",
        0,
        0,
    )?;
    client.at_dispatch(|| rig.table_free(frame));
    ensure(
        client.wait_event(rig.event()?, config.wait_ms),
        "FREEFRAME not signalled after FreeFrame (wait ms)",
        config.wait_ms.into(),
        0,
    )?;

    client.clear_event(rig.event()?);
    let frame = alloc(&mut rig)?;
    rig.free_method(frame)
        .map_err(|s| Failure::status("FREE method failed", s))?;
    ensure(
        client.wait_event(rig.event()?, config.wait_ms),
        "FREEFRAME not signalled after the FREE method (wait ms)",
        config.wait_ms.into(),
        0,
    )?;

    rig.disable_event()?;
    client.clear_event(rig.event()?);
    let frame = alloc(&mut rig)?;
    client.at_dispatch(|| rig.table_free(frame));
    ensure(
        !client.wait_event(rig.event()?, 0),
        "FREEFRAME still signalled after it was disabled",
        0,
        0,
    )?;
    Ok(Extra::default())
}

fn cancel_pending<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let frames = rig.fill_pool()?;
    let request = rig.pend()?;
    ensure(
        rig.poll(request).is_none(),
        "ALLOC did not pend on an empty pool",
        0,
        0,
    )?;
    rig.cancel(request);
    match rig.wait(request, config.wait_ms) {
        None => {
            return Err(Failure::new("cancelled ALLOC did not complete (wait ms)")
                .with_values(config.wait_ms.into(), 0))
        }
        Some(Ok(frame)) => {
            return Err(
                Failure::new("cancelled ALLOC completed with a frame (frame)")
                    .with_values(frame as u64, 0),
            )
        }
        Some(Err(NtStatus::CANCELLED)) => {}
        Some(Err(s)) => {
            return Err(Failure::status(
                "cancelled ALLOC completed with a status other than STATUS_CANCELLED",
                s,
            ))
        }
    }
    // The cancelled request must not swallow the next returned frame.
    client.at_dispatch(|| rig.table_free(frames[0]));
    let out = rig.framing().frames - 1;
    rig.expect_allocated(
        out,
        "a returned frame went to the cancelled request (got, expected)",
    )?;
    client
        .at_dispatch(|| rig.table_alloc())
        .map_err(|s| Failure::status("AllocateFrame failed after the cancel", s))?;
    Ok(Extra::default())
}

/// Sends every case of [`crate::requests::all_cases`] on one filter/pin/allocator chain
/// and checks each gets its documented status and Information and leaves the
/// allocator's STATUS as it was. All cases run (the driver must serve on after each); a
/// failure names the first case that did not hold, with its status, and carries the
/// verdicts of all as a mask in its values ([`crate::requests::values_mask`]).
fn bad_requests<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    use crate::requests::{all_cases, mask_values, Target, MAX_CASES};
    let cases = all_cases();
    if cases.len() > MAX_CASES {
        return Err(Failure::new("more cases than a verdict mask holds"));
    }
    let rig = Rig::open(client, config)?;
    let (filter, pin) = rig.filter_and_pin()?;
    let allocator = rig.allocator()?;
    let spare = client
        .create_event()
        .map_err(|s| Failure::status("create an event", s))?;
    let mut last = rig.status();
    let (mut sent, mut unsent, mut off) = (0u32, 0u32, 0u128);
    let mut first: Option<(&str, Option<NtStatus>)> = None;
    for (i, case) in cases.iter().enumerate() {
        let object = match case.target {
            Target::Filter => filter,
            Target::Pin => pin,
            Target::Allocator => allocator,
        };
        let Some((status, information)) = client.raw_ioctl(object, case, &spare) else {
            unsent += 1;
            continue;
        };
        sent += 1;
        let now = rig.status();
        let holds = status == case.status
            && case.information.is_none_or(|i| i == information)
            && now == last;
        last = now;
        if !holds {
            off |= 1 << i;
            first.get_or_insert_with(|| (case.name, (status != case.status).then_some(status)));
        }
    }
    client.destroy_event(spare);
    if let Some((name, status)) = first {
        let reason = alloc::format!("{}/{sent} off; first {name}", off.count_ones());
        let failure = match status {
            Some(status) => Failure::status(&reason, status),
            None => Failure::new(&reason),
        };
        let [low, high] = mask_values(off);
        return Err(failure.with_values(low, high));
    }
    let mut note = alloc::string::String::new();
    let _ = core::fmt::write(
        &mut note,
        format_args!("{sent} requests; {unsent} this client cannot send"),
    );
    Ok(Extra {
        timings: None,
        note: Text::new(&note),
    })
}

#[allow(clippy::cast_possible_truncation)] // Patterns are frame indices mod 256.
fn cleanup_keeps_table<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    rig.fill_pool()?;
    let request = rig.pend()?;
    ensure(
        rig.poll(request).is_none(),
        "ALLOC did not pend on an empty pool",
        0,
        0,
    )?;
    // IRP_MJ_CLEANUP only: the table holds a reference on the file object.
    rig.close_allocator();
    match rig.wait(request, config.wait_ms) {
        Some(Err(NtStatus::CANCELLED)) => {}
        None => return Err(Failure::new("cleanup left the pending ALLOC pending")),
        Some(Ok(frame)) => {
            return Err(
                Failure::new("pending ALLOC got a frame after cleanup (frame)")
                    .with_values(frame as u64, 0),
            )
        }
        Some(Err(s)) => {
            return Err(Failure::status(
                "cleanup completed the pending ALLOC with a status other than STATUS_CANCELLED",
                s,
            ))
        }
    }
    match client.at_dispatch(|| rig.table_alloc()) {
        Err(NtStatus::INSUFFICIENT_RESOURCES) => {}
        Ok(frame) => {
            return Err(
                Failure::new("AllocateFrame found a frame in an empty pool (frame)")
                    .with_values(frame as u64, 0),
            )
        }
        Err(s) => {
            return Err(Failure::status(
                "AllocateFrame after cleanup on an empty pool: not STATUS_INSUFFICIENT_RESOURCES",
                s,
            ))
        }
    }
    ensure(
        rig.memory_released() != Some(true),
        "frame memory released while the table is referenced",
        rig.held().len() as u64,
        0,
    )?;
    let len = rig.framing().frame_size as usize;
    let held: Vec<usize> = rig.held().to_vec();
    client.at_dispatch(|| -> Result<(), Failure> {
        for (i, &frame) in held.iter().enumerate() {
            ensure(
                client.touch_frame(frame, len, i as u8),
                "frame unusable after cleanup (frame index, frame)",
                i as u64,
                frame as u64,
            )?;
        }
        for &frame in &held {
            rig.table_free(frame);
        }
        Ok(())
    })?;
    // The table still hands frames out after cleanup, as an AVStream pin given this
    // allocator needs.
    let again = client
        .at_dispatch(|| rig.table_alloc())
        .map_err(|s| Failure::status("AllocateFrame failed after cleanup with frames home", s))?;
    client.at_dispatch(|| rig.table_free(again));
    ensure(
        rig.memory_released() != Some(true),
        "frame memory released before IRP_MJ_CLOSE",
        0,
        0,
    )?;
    rig.release_table();
    Ok(Extra {
        timings: None,
        note: Text::new(
            "IRP_MJ_CLOSE came with the table reference; memory checked by the leak check",
        ),
    })
}

fn parent_closed_first<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    rig.close_parents();
    let frame = client
        .at_dispatch(|| rig.table_alloc())
        .map_err(|s| Failure::status("AllocateFrame failed after the parents closed", s))?;
    rig.expect_allocated(1, "STATUS after the parents closed (allocated, expected)")?;
    client.at_dispatch(|| rig.table_free(frame));
    rig.expect_allocated(0, "STATUS after the frame returned (allocated, expected)")?;
    rig.close_allocator();
    rig.release_table();
    Ok(Extra::default())
}

/// Pairs timed per stretch at DISPATCH_LEVEL (bounded so the CPU drops back to
/// PASSIVE_LEVEL regularly).
const PAIRS_PER_RAISE: usize = 1000;

fn time_alloc_free<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    let pairs = config.timing_pairs as usize;
    // Allocated here, at PASSIVE_LEVEL: nothing allocates inside the timed stretches.
    let mut samples: Vec<u64> = Vec::with_capacity(pairs);
    let table = rig.table()?;
    while samples.len() < pairs {
        let stretch = PAIRS_PER_RAISE.min(pairs - samples.len());
        client.at_dispatch(|| -> Result<(), Failure> {
            for _ in 0..stretch {
                let start = client.now_ns();
                let frame = client.table_allocate(table).map_err(|s| {
                    Failure::status("AllocateFrame failed while timing (pair)", s)
                        .with_values(samples.len() as u64, 0)
                })?;
                client.table_free(table, frame);
                samples.push(client.now_ns().saturating_sub(start));
            }
            Ok(())
        })?;
    }
    rig.expect_allocated(0, "STATUS after the timed pairs (got, expected)")?;
    Ok(Extra {
        timings: Timings::from_samples(&mut samples),
        note: Text::new("timings: one AllocateFrame + FreeFrame pair"),
    })
}

/// Threads [`ScenarioId::ThreadsDispatch`] starts.
pub const THREAD_WORKERS: u32 = 4;
/// AllocateFrame calls each of them makes.
pub const THREAD_ROUNDS: u32 = 2000;
/// Frames a worker holds at most: together the workers want more than a small pool
/// has, so they contend and some AllocateFrame calls are refused.
const THREAD_HOLD: usize = 3;
/// Bytes of each frame a worker writes its tag over and checks.
const THREAD_TOUCH: usize = 256;
/// How long a worker waits at the start gate for the others, in ns: the gate makes
/// them start their rounds together (a thread can finish all its rounds before the next
/// one is even created); the bound keeps a thread that never started from blocking
/// the others.
const THREAD_GATE_NS: u64 = 2_000_000_000;
/// Owner slot value of a frame nobody holds.
const NO_OWNER: u32 = 0;

/// What the workers share: the pool's frames (sorted) and who holds each.
struct Owners {
    frames: Vec<usize>,
    owner: Vec<AtomicU32>,
}

impl Owners {
    /// Marks `frame` held by worker `me`; fails if it is no frame of the pool or
    /// someone else holds it.
    fn claim(&self, frame: usize, me: u32) -> Result<usize, Failure> {
        let slot = self.frames.binary_search(&frame).map_err(|_| {
            Failure::new("AllocateFrame returned a frame outside the pool (frame, worker)")
                .with_values(frame as u64, u64::from(me))
        })?;
        // AcqRel on success: this holder's writes to the frame come after the previous
        // holder's release below (Release there, Acquire here); Acquire on failure to
        // read the other holder's mark.
        self.owner[slot]
            .compare_exchange(NO_OWNER, me + 1, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| slot)
            .map_err(|other| {
                Failure::new("frame handed out twice at once (holding worker + 1, worker)")
                    .with_values(u64::from(other), u64::from(me))
            })
    }

    /// Gives slot `slot` up before the frame goes back to the allocator.
    fn release(&self, slot: usize, me: u32) -> Result<(), Failure> {
        // Release: this holder's writes happen before the next holder's claim.
        self.owner[slot]
            .compare_exchange(me + 1, NO_OWNER, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|other| {
                Failure::new("frame taken over while held (other worker + 1, worker)")
                    .with_values(u64::from(other), u64::from(me))
            })
    }
}

/// A frame a worker holds: its address, its owner slot, the tag written into it.
#[derive(Clone, Copy)]
struct Held {
    frame: usize,
    slot: usize,
    tag: u8,
}

/// One worker of [`threads_dispatch`]: `THREAD_ROUNDS` times, at DISPATCH_LEVEL,
/// AllocateFrame, claim, write its tag; between rounds (PASSIVE_LEVEL, where it also
/// yields the processor) it holds up to `THREAD_HOLD` frames; when full or refused,
/// checks and frees its oldest.
/// Returns its count of refused calls; gives back every frame it holds, also on failure.
fn thread_worker<C: ProbeClient>(
    client: &C,
    table: &C::Table,
    owners: &Owners,
    me: u32,
    refusals: &AtomicU32,
    gate: &AtomicU32,
) -> Result<(), Failure> {
    // Relaxed: the gate only times the start; the frames are ordered by `Owners`.
    gate.fetch_add(1, Ordering::Relaxed);
    let opened = client.now_ns();
    while gate.load(Ordering::Relaxed) < THREAD_WORKERS
        && client.now_ns().saturating_sub(opened) < THREAD_GATE_NS
    {
        client.yield_now();
    }
    let touch = THREAD_TOUCH;
    let mut held: [Option<Held>; THREAD_HOLD] = [None; THREAD_HOLD];
    let mut outcome = Ok(());
    for round in 0..THREAD_ROUNDS {
        #[allow(clippy::cast_possible_truncation)] // a tag byte: wraps on purpose.
        let tag = (me.wrapping_mul(61).wrapping_add(round.wrapping_mul(7))) as u8;
        let got = client.at_dispatch(|| -> Result<Option<Held>, Failure> {
            match client.table_allocate(table) {
                Ok(frame) => {
                    let slot = owners.claim(frame, me)?;
                    let held = Held { frame, slot, tag };
                    if client.touch_frame(frame, touch, tag) {
                        Ok(Some(held))
                    } else {
                        give_back(client, table, owners, held, me)?;
                        Err(Failure::new("frame not writable (frame, worker)")
                            .with_values(frame as u64, u64::from(me)))
                    }
                }
                Err(NtStatus::INSUFFICIENT_RESOURCES) => Ok(None),
                Err(s) => Err(Failure::status("AllocateFrame failed in a worker", s)),
            }
        });
        let got = match got {
            Ok(got) => got,
            Err(f) => {
                outcome = Err(f);
                break;
            }
        };
        let free_slot = held.iter().position(Option::is_none);
        match (got, free_slot) {
            (Some(h), Some(i)) => held[i] = Some(h),
            (Some(h), None) => {
                // Cannot happen (a full hand frees first), but never lose a frame.
                outcome = client.at_dispatch(|| give_back(client, table, owners, h, me));
                break;
            }
            (None, _) => {
                refusals.fetch_add(1, Ordering::Relaxed); // A count; nothing to order.
            }
        }
        // Holding frames at PASSIVE_LEVEL: let the others run into them.
        client.yield_now();
        if got.is_none() || held.iter().all(Option::is_some) {
            // The oldest is at index 0: shift the rest down after it leaves.
            if let Some(oldest) = held[0].take() {
                held.rotate_left(1);
                let checked = client.at_dispatch(|| {
                    let kept = client.verify_frame(oldest.frame, touch, oldest.tag);
                    give_back(client, table, owners, oldest, me)?;
                    ensure(
                        kept,
                        "frame changed while its worker held it (frame, worker)",
                        oldest.frame as u64,
                        u64::from(me),
                    )
                });
                if let Err(f) = checked {
                    outcome = Err(f);
                    break;
                }
            }
        }
    }
    for h in held.into_iter().flatten() {
        let back = client.at_dispatch(|| give_back(client, table, owners, h, me));
        if outcome.is_ok() {
            outcome = back;
        }
    }
    outcome
}

/// Releases `held`'s owner slot, then FreeFrame. DISPATCH_LEVEL.
fn give_back<C: ProbeClient>(
    client: &C,
    table: &C::Table,
    owners: &Owners,
    held: Held,
    me: u32,
) -> Result<(), Failure> {
    let released = owners.release(held.slot, me);
    client.table_free(table, held.frame);
    released
}

fn threads_dispatch<C: ProbeClient>(client: &C, config: &Config) -> Checked {
    let mut rig = Rig::open(client, config)?;
    rig.take_table()?;
    // The pool's frames, learnt by taking them all once.
    let mut frames = rig.fill_pool()?;
    for &frame in &frames {
        client.at_dispatch(|| rig.table_free(frame));
    }
    rig.expect_allocated(0, "STATUS before the workers (got, expected)")?;
    frames.sort_unstable();
    let taken = frames.len();
    frames.dedup();
    ensure(
        frames.len() == taken,
        "filling the pool handed a frame out twice (distinct, taken)",
        frames.len() as u64,
        taken as u64,
    )?;
    let owners = Owners {
        owner: frames.iter().map(|_| AtomicU32::new(NO_OWNER)).collect(),
        frames,
    };
    let (refusals, gate) = (AtomicU32::new(0), AtomicU32::new(0));
    let table = rig.table()?;
    let work = |me: u32| thread_worker(client, table, &owners, me, &refusals, &gate);
    client.run_workers(THREAD_WORKERS, &work)?;
    for (slot, owner) in owners.owner.iter().enumerate() {
        // Relaxed: run_workers returned after every worker ended (a join).
        let owner = owner.load(Ordering::Relaxed);
        ensure(
            owner == NO_OWNER,
            "a frame still marked held after the workers (slot, worker + 1)",
            slot as u64,
            owner.into(),
        )?;
    }
    rig.expect_allocated(0, "STATUS after the workers ended (got, expected)")?;
    let refused = refusals.load(Ordering::Relaxed); // After the join, as above.
                                                    // Only a pool smaller than what the workers together hold must run dry.
    let wanted = THREAD_WORKERS as usize * THREAD_HOLD;
    ensure(
        refused > 0 || wanted <= owners.frames.len(),
        "the workers never overlapped: no AllocateFrame refused (refused, calls)",
        refused.into(),
        u64::from(THREAD_WORKERS * THREAD_ROUNDS),
    )?;
    // The pool refills: every frame can be taken again, the same frames as before.
    let mut again = rig.fill_pool()?;
    again.sort_unstable();
    ensure(
        again == owners.frames,
        "the pool refilled with other frames (frames, expected)",
        again.len() as u64,
        owners.frames.len() as u64,
    )?;
    let mut note = alloc::string::String::new();
    let _ = core::fmt::write(
        &mut note,
        format_args!("{THREAD_WORKERS} threads x {THREAD_ROUNDS} AllocateFrame, {refused} refused"),
    );
    Ok(Extra {
        timings: None,
        note: Text::new(&note),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indices_round_trip() {
        for (i, id) in ScenarioId::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(id.index()), i);
            assert_eq!(ScenarioId::from_index(id.index()), Some(id));
            assert_eq!(ScenarioId::from_name(id.name()), Some(id));
        }
        assert_eq!(ScenarioId::from_name("nope"), None);
        let some = [ScenarioId::PendingFifo, ScenarioId::OpenChain];
        assert_eq!(
            ScenarioId::from_mask(ScenarioId::mask_of(&some)),
            [ScenarioId::OpenChain, ScenarioId::PendingFifo]
        );
        assert_eq!(ScenarioId::from_mask(0).len(), ScenarioId::ALL.len());
    }

    #[test]
    fn config_limits() {
        assert_eq!(Config::DEFAULT.check(), Ok(()));
        let mut c = Config::DEFAULT;
        c.framing.file_alignment = 5;
        assert!(c.check().is_err());
        c = Config::DEFAULT;
        c.framing.frames = 4097;
        assert!(c.check().is_err());
        c = Config::DEFAULT;
        c.framing.frame_size = 1 << 20;
        c.framing.frames = 65;
        assert!(c.check().is_err(), "65 MiB");
        c = Config::DEFAULT;
        c.timing_pairs = 0;
        assert!(c.check().is_err());
    }

    #[test]
    fn overlap_is_symmetric_and_exact() {
        assert!(overlap(100, 100, 1));
        assert!(overlap(100, 163, 64));
        assert!(!overlap(100, 164, 64));
        assert!(!overlap(164, 100, 64));
    }
}
