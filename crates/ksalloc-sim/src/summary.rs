//! What a run found: the figures, and the checks that hold them against each other.
//!
//! Every check is computed from the figures in the summary itself, so a reader (or a
//! script reading `--json`) can redo it.

use serde::Serialize;

use crate::histogram::Percentiles;

/// The run's parameters, as run.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// Frames of the allocator.
    pub frames: u32,
    /// Bytes per frame.
    pub frame_size: u32,
    /// Frame alignment (bytes).
    pub alignment: u32,
    /// Distance between frame starts (frame size rounded up to the alignment).
    pub stride: usize,
    /// Producer threads.
    pub producers: usize,
    /// Hold time (us).
    pub hold_us: u64,
    /// Requested duration (s), if the run was timed.
    pub duration_s: Option<f64>,
    /// Requested frame count, if the run was counted.
    pub count: Option<u64>,
    /// Pool fault probability.
    pub fault_rate: f64,
    /// Fault injection seed.
    pub seed: u64,
    /// Every n-th pended ALLOC is cancelled (0: never).
    pub cancel_every: u64,
    /// A bad FREE every n-th ALLOC frame (0: never).
    pub bad_free_every: u64,
    /// Renegotiation period (ms; 0: off).
    pub renegotiate_ms: u64,
}

/// The stream from the producers through the sink.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stream {
    /// Frames allocated through the table, filled, checked and freed.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames per second of wall time.
    pub frames_per_s: f64,
    /// Megabytes (10^6) per second.
    pub mb_per_s: f64,
    /// AllocateFrame calls that found the pool empty.
    pub empty_pool_failures: u64,
    /// FREEFRAME waits that timed out.
    pub freeframe_wait_timeouts: u64,
    /// Most frames the sink held at once.
    pub sink_peak_held: usize,
    /// Frames whose content was wrong at the sink.
    pub corrupt: u64,
}

/// The ALLOC-method client.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AllocClientSummary {
    /// ALLOC requests sent.
    pub requests: u64,
    /// Completed within the call.
    pub immediate: u64,
    /// Pending when the call returned.
    pub pended: u64,
    /// Pended, then completed with a frame.
    pub completed_after_pend: u64,
    /// Cancels requested.
    pub cancels_requested: u64,
    /// Completed with STATUS_CANCELLED.
    pub cancelled: u64,
    /// Cancels that lost the race to a frame.
    pub cancel_lost: u64,
    /// Pended requests that never completed.
    pub stuck: u64,
    /// Frames used and freed.
    pub frames: u64,
    /// Frames whose content changed while held.
    pub corrupt: u64,
    /// Bad-pointer FREEs sent.
    pub bad_frees_sent: u64,
    /// ... refused with STATUS_INVALID_PARAMETER.
    pub bad_frees_refused: u64,
}

/// Latency percentiles.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    /// Duration of a successful AllocateFrame call at DISPATCH_LEVEL.
    pub table_allocate: Percentiles,
    /// A producer's first try to having a frame (empty-pool retries included).
    pub frame_wait: Percentiles,
    /// A pended ALLOC IRP, from pending to completion with a frame.
    pub pend_to_completion: Percentiles,
}

/// The engine's own view, at the end.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AllocatorSummary {
    /// Frames owned.
    pub total: u32,
    /// Frames free before close.
    pub free: u32,
    /// Frames out before close.
    pub outstanding: u32,
    /// ALLOCs pending before close.
    pub pending: u32,
    /// `Snapshot::conserved()` before close.
    pub conserved: bool,
    /// After the handle's close (CLEANUP) the allocator was still open with every
    /// frame home, and the table's release (CLOSE) gave the memory and its budget back.
    pub released_at_close: bool,
    /// Bytes of the driver's frame budget in use while streaming.
    pub budget_in_use: usize,
    /// The frame budget's limit.
    pub budget_limit: usize,
    /// Frames handed out (table, ALLOC at once, ALLOC after pending).
    pub allocations: u64,
    /// Frames accepted back.
    pub frees: u64,
    /// ALLOCs that pended.
    pub pends: u64,
    /// Pending ALLOCs cancelled.
    pub cancels: u64,
    /// Frees refused.
    pub rejected_frees: u64,
    /// Table allocations refused for an empty pool.
    pub failed_allocations: u64,
    /// Most frames out at once.
    pub peak_outstanding: u64,
}

/// The renegotiation role (short-lived allocators on the output pin).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RenegotiationSummary {
    /// Creations tried.
    pub attempts: u64,
    /// Created and cycled.
    pub created: u64,
    /// Refused with STATUS_INSUFFICIENT_RESOURCES.
    pub refused: u64,
    /// Pool allocations the kernel failed on purpose.
    pub injected_pool_faults: u64,
    /// Frames allocated from them.
    pub frames: u64,
    /// ALLOCs pending at close that completed with STATUS_CANCELLED.
    pub cancelled_at_close: u64,
    /// Cycles after which the pool had other blocks than the graph's own.
    pub pool_mismatches: u64,
    /// Frames whose content changed.
    pub corrupt: u64,
}

/// What was left after the graph was closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leaks {
    /// Nonpaged pool blocks not freed.
    pub pool_blocks: usize,
    /// Their bytes.
    pub pool_bytes: usize,
    /// IRPs never completed.
    pub irps: i64,
    /// File objects never closed.
    pub file_objects: i64,
}

/// One check.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The figures it rests on.
    pub detail: String,
}

/// Everything a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Parameters.
    pub setup: Setup,
    /// Wall time from the first frame to the last role finishing (s).
    pub elapsed_s: f64,
    /// The table stream.
    pub stream: Stream,
    /// The ALLOC client.
    pub alloc_client: AllocClientSummary,
    /// Latencies.
    pub latency: LatencySummary,
    /// The engine.
    pub allocator: AllocatorSummary,
    /// Renegotiation and fault injection.
    pub renegotiation: RenegotiationSummary,
    /// Leaks after teardown.
    pub leaks: Leaks,
    /// Driver answers the contract does not allow, as the roles saw them.
    pub problems: Vec<String>,
    /// The checks.
    pub checks: Vec<Check>,
    /// Whether every check held.
    pub passed: bool,
}

impl Summary {
    /// Fills in `checks` and `passed` from the figures.
    pub fn judge(&mut self) {
        self.checks = checks(self);
        self.passed = self.checks.iter().all(|c| c.ok);
    }

    /// The check called `name`, if there is one.
    #[must_use]
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

const fn check(name: &'static str, ok: bool, detail: String) -> Check {
    Check { name, ok, detail }
}

fn checks(s: &Summary) -> Vec<Check> {
    let (a, c, r) = (&s.allocator, &s.alloc_client, &s.renegotiation);
    let used = s.stream.frames + c.frames;
    let corrupt = s.stream.corrupt + c.corrupt + r.corrupt;
    vec![
        check(
            "frames streamed",
            s.stream.frames > 0 && s.setup.count.is_none_or(|n| s.stream.frames == n),
            format!("{} frames through the sink", s.stream.frames),
        ),
        check(
            "frame contents",
            corrupt == 0,
            format!("{corrupt} frames changed while owned"),
        ),
        check(
            "conservation",
            a.conserved && a.free == a.total && a.outstanding == 0 && a.pending == 0,
            format!(
                "free {} + out {} = total {}, {} pending",
                a.free, a.outstanding, a.total, a.pending
            ),
        ),
        check(
            "counters",
            a.allocations == a.frees
                && a.allocations == used
                && a.failed_allocations == s.stream.empty_pool_failures
                && a.rejected_frees == c.bad_frees_sent
                && c.bad_frees_refused == c.bad_frees_sent,
            format!(
                "allocations {} = frees {} = table {} + ALLOC {}; failed allocations {} = \
                 empty-pool answers {}; rejected frees {} = bad frees sent {}",
                a.allocations,
                a.frees,
                s.stream.frames,
                c.frames,
                a.failed_allocations,
                s.stream.empty_pool_failures,
                a.rejected_frees,
                c.bad_frees_sent
            ),
        ),
        check(
            "pended ALLOCs",
            c.pended == c.completed_after_pend + c.cancelled
                && c.stuck == 0
                && a.pends >= c.pended
                && a.cancels == c.cancelled,
            format!(
                "{} pended: {} completed with a frame, {} cancelled, {} stuck (engine: {} \
                 pends, {} cancels)",
                c.pended, c.completed_after_pend, c.cancelled, c.stuck, a.pends, a.cancels
            ),
        ),
        check(
            "close",
            a.released_at_close,
            "handle closed (CLEANUP): table still served, every frame home; reference \
             released (CLOSE): memory and budget back"
                .to_owned(),
        ),
        check(
            "fault injection",
            r.refused == r.injected_pool_faults
                && r.attempts == r.created + r.refused
                && r.pool_mismatches == 0
                && r.cancelled_at_close == r.created,
            format!(
                "{} creations: {} refused = {} injected faults; pool back to the graph's \
                 own after each; {} ALLOCs cancelled by close",
                r.attempts, r.refused, r.injected_pool_faults, r.cancelled_at_close
            ),
        ),
        check(
            "leaks",
            s.leaks == Leaks::default(),
            format!(
                "pool blocks {} ({} bytes), IRPs {}, file objects {}",
                s.leaks.pool_blocks, s.leaks.pool_bytes, s.leaks.irps, s.leaks.file_objects
            ),
        ),
        check(
            "driver answers",
            s.problems.is_empty(),
            if s.problems.is_empty() {
                "every status as documented".to_owned()
            } else {
                s.problems.join("; ")
            },
        ),
    ]
}
