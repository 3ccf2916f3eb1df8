//! One run: build the graph, start the roles, watch the pool, stop, tear down, judge.

use std::fmt;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ksalloc_core::allocator::Snapshot;
use ksalloc_model::ModelKernel;

use crate::config::{ArgError, Config, Stop};
use crate::graph::{Graph, GraphError, Teardown};
use crate::histogram::Histogram;
use crate::roles::alloc_client::{AllocClient, AllocReport};
use crate::roles::renegotiate::{Renegotiate, RenegotiateReport};
use crate::roles::sink::{Sink, SinkReport};
use crate::roles::source::{Source, SourceReport};
use crate::roles::Live;
use crate::summary::{
    AllocatorSummary, LatencySummary, Leaks, RenegotiationSummary, Setup, Stream, Summary,
};

/// How often the progress callback runs.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// Samples kept; past this the timeline is thinned to every other sample.
const MAX_SAMPLES: usize = 4096;
/// Problems kept in the summary (the rest are counted).
const MAX_PROBLEMS: usize = 20;

/// The pool at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Frames not on the free list: with a client, or being handed to one. (Counted
    /// from the frames' ownership words; the engine's rundown count, `outstanding`,
    /// also counts allocation attempts in flight and can pass the total for a moment.)
    pub out: u32,
    /// Frames on the free list.
    pub free: u32,
    /// ALLOC requests pending.
    pub pending: u32,
    /// Frames the sink has freed so far.
    pub streamed: u64,
}

/// What the progress line shows.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Time since the start.
    pub elapsed: Duration,
    /// When the run stops.
    pub stop: Stop,
    /// Frames through the sink.
    pub streamed: u64,
    /// Frames through the ALLOC client.
    pub alloc_frames: u64,
    /// The allocator now.
    pub snapshot: Snapshot,
}

/// The latency histograms of a run.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    /// Successful AllocateFrame calls.
    pub table_allocate: Histogram,
    /// A producer's first try to having a frame.
    pub frame_wait: Histogram,
    /// Pended ALLOCs, pending to completion.
    pub pend_to_completion: Histogram,
}

/// A finished run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Figures and checks.
    pub summary: Summary,
    /// Pool occupancy over time.
    pub timeline: Vec<Sample>,
    /// Full histograms (the summary has their percentiles).
    pub latency: Latencies,
}

/// Why a run could not start.
#[derive(Debug)]
pub enum RunError {
    /// A value breaks a rule.
    Config(ArgError),
    /// The driver refused to build the graph.
    Graph(GraphError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Graph(e) => write!(f, "building the graph: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// What the roles handed back.
struct Reports {
    sources: Vec<SourceReport>,
    sink: SinkReport,
    alloc: AllocReport,
    renegotiate: RenegotiateReport,
    timeline: Vec<Sample>,
    elapsed: Duration,
}

/// Runs `config`, calling `progress` about every [`PROGRESS_EVERY`].
///
/// # Errors
/// A bad configuration, or a graph the driver refused to build.
///
/// # Panics
/// If a role thread panics: the model turns a broken kernel rule into a panic (a
/// bugcheck, on Windows).
pub fn run(config: &Config, progress: &mut dyn FnMut(&Progress)) -> Result<Outcome, RunError> {
    let framing = config.validate().map_err(RunError::Config)?;
    let kernel = ModelKernel::new();
    let graph = Graph::build(&kernel, &config.framing()).map_err(RunError::Graph)?;
    // Faults from here on: the graph stands; only renegotiations allocate pool now.
    let baseline_blocks = kernel.live_blocks();
    kernel.set_random_faults(config.fault_rate, config.seed);
    let live = Live::new(
        match config.stop {
            Stop::Frames(n) => Some(n),
            Stop::After(_) => None,
        },
        config.producers,
    );
    let reports = run_roles(
        config,
        &graph,
        framing.stride(),
        baseline_blocks,
        &live,
        progress,
    );
    kernel.set_random_faults(0.0, 0);
    let injected = kernel.pool_failures();
    let teardown = graph.teardown().map_err(RunError::Graph)?;
    let leaks = Leaks {
        pool_blocks: kernel.live_blocks(),
        pool_bytes: kernel.live_bytes(),
        irps: kernel.live_irps(),
        file_objects: kernel.live_files(),
    };
    Ok(assemble(
        config,
        framing.stride(),
        reports,
        &teardown,
        injected,
        leaks,
    ))
}

fn spawn<'scope, T: Send + 'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    name: String,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    thread::Builder::new()
        .name(name)
        .spawn_scoped(scope, f)
        .expect("spawning a role thread")
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn run_roles(
    config: &Config,
    graph: &Graph,
    stride: usize,
    baseline_blocks: usize,
    live: &Live,
    progress: &mut dyn FnMut(&Progress),
) -> Reports {
    let frame_size = config.frame_size as usize;
    let start = Instant::now();
    thread::scope(|scope| {
        let (to_sink, from_sources) = mpsc::channel();
        let sources: Vec<_> = (0..config.producers)
            .map(|i| {
                let to_sink = to_sink.clone();
                let source = Source {
                    kernel: &graph.kernel,
                    client: &graph.client,
                    allocator: &graph.allocator,
                    table: &graph.table,
                    frame_size,
                    live,
                };
                spawn(scope, format!("source-{i}"), move || source.run(&to_sink))
            })
            .collect();
        drop(to_sink);
        let sink = Sink {
            kernel: &graph.kernel,
            table: &graph.table,
            frame_size,
            hold: config.hold,
            live,
        };
        let sink = spawn(scope, "sink".to_owned(), move || sink.run(&from_sources));
        let alloc = AllocClient {
            kernel: &graph.kernel,
            client: &graph.client,
            allocator: &graph.allocator,
            frame_size,
            stride,
            hold: config.hold,
            cancel_every: config.cancel_every,
            bad_free_every: config.bad_free_every,
            live,
        };
        let alloc = spawn(scope, "alloc-client".to_owned(), move || alloc.run());
        let renegotiate = (!config.renegotiate_every.is_zero()).then(|| {
            let role = Renegotiate {
                kernel: &graph.kernel,
                client: &graph.client,
                pin: &graph.output,
                framing: config.framing(),
                stride,
                baseline_blocks,
                period: config.renegotiate_every,
                live,
            };
            spawn(scope, "renegotiate".to_owned(), move || role.run())
        });
        let timeline = watch(config, graph, live, start, progress);
        live.request_stop();
        Reports {
            sources: sources.into_iter().map(join).collect(),
            sink: join(sink),
            alloc: join(alloc),
            renegotiate: renegotiate.map(join).unwrap_or_default(),
            timeline,
            elapsed: start.elapsed(),
        }
    })
}

/// Samples the pool until the run is over; reports progress.
fn watch(
    config: &Config,
    graph: &Graph,
    live: &Live,
    start: Instant,
    progress: &mut dyn FnMut(&Progress),
) -> Vec<Sample> {
    // A snapshot walks every frame: sample big pools less often.
    let mut every = config
        .sample_every
        .max(Duration::from_micros(u64::from(config.frames) / 8));
    let mut timeline = Vec::new();
    let mut next_progress = start;
    loop {
        let now = Instant::now();
        let elapsed = now - start;
        let snapshot = graph.snapshot();
        let streamed = live.streamed();
        timeline.push(Sample {
            t: elapsed.as_secs_f64(),
            out: snapshot.total - snapshot.free,
            free: snapshot.free,
            pending: snapshot.pending,
            streamed,
        });
        if timeline.len() >= MAX_SAMPLES {
            let mut keep = false;
            timeline.retain(|_| {
                keep = !keep;
                keep
            });
            every *= 2;
        }
        if now >= next_progress {
            progress(&Progress {
                elapsed,
                stop: config.stop,
                streamed,
                alloc_frames: live.alloc_frames(),
                snapshot,
            });
            next_progress += PROGRESS_EVERY;
        }
        let sleep = match config.stop {
            Stop::After(duration) if elapsed >= duration => break,
            // Every producer gone early means one met an answer it could not go on
            // from (it is in the summary's problems): stop rather than wait forever.
            Stop::Frames(count) if streamed >= count || live.sources_running() == 0 => break,
            Stop::After(duration) => every.min(duration.saturating_sub(elapsed)),
            Stop::Frames(_) => every,
        };
        thread::sleep(sleep);
    }
    timeline
}

fn setup_of(config: &Config, stride: usize) -> Setup {
    Setup {
        frames: config.frames,
        frame_size: config.frame_size,
        alignment: config.alignment,
        stride,
        producers: config.producers,
        hold_us: u64::try_from(config.hold.as_micros()).unwrap_or(u64::MAX),
        duration_s: match config.stop {
            Stop::After(d) => Some(d.as_secs_f64()),
            Stop::Frames(_) => None,
        },
        count: match config.stop {
            Stop::Frames(n) => Some(n),
            Stop::After(_) => None,
        },
        fault_rate: config.fault_rate,
        seed: config.seed,
        cancel_every: config.cancel_every,
        bad_free_every: config.bad_free_every,
        renegotiate_ms: u64::try_from(config.renegotiate_every.as_millis()).unwrap_or(u64::MAX),
    }
}

const fn allocator_of(teardown: &Teardown) -> AllocatorSummary {
    let (before, after) = (&teardown.before_close, &teardown.after_cleanup);
    let counters = before.counters;
    AllocatorSummary {
        total: before.total,
        free: before.free,
        outstanding: before.outstanding,
        pending: before.pending,
        conserved: before.conserved(),
        released_at_close: !after.closed
            && after.outstanding == 0
            && after.pending == 0
            && teardown.released_at_close,
        budget_in_use: teardown.budget.0,
        budget_limit: teardown.budget.1,
        allocations: counters.allocations,
        frees: counters.frees,
        pends: counters.pends,
        cancels: counters.cancels,
        rejected_frees: counters.rejected_frees,
        failed_allocations: counters.failed_allocations,
        peak_outstanding: counters.peak_outstanding,
    }
}

const fn renegotiation_of(
    report: &RenegotiateReport,
    injected_pool_faults: u64,
) -> RenegotiationSummary {
    RenegotiationSummary {
        attempts: report.attempts,
        created: report.created,
        refused: report.refused,
        injected_pool_faults,
        frames: report.frames,
        cancelled_at_close: report.cancelled_at_close,
        pool_mismatches: report.pool_mismatches,
        corrupt: report.corrupt,
    }
}

/// Merges the producers' histograms and counts; collects every role's problems.
fn merge_sources(
    sources: &[SourceReport],
    alloc: &AllocReport,
    renegotiate: &RenegotiateReport,
) -> (Latencies, u64, u64, Vec<String>) {
    let mut latency = Latencies {
        pend_to_completion: alloc.pend_to_completion.clone(),
        ..Latencies::default()
    };
    let mut problems = Vec::new();
    let (mut empty, mut timeouts) = (0, 0);
    for source in sources {
        latency.table_allocate.merge(&source.allocate);
        latency.frame_wait.merge(&source.frame_wait);
        empty += source.empty;
        timeouts += source.wait_timeouts;
        problems.extend(source.problems.iter().cloned());
    }
    problems.extend(alloc.problems.iter().cloned());
    problems.extend(renegotiate.problems.iter().cloned());
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("... and {more} more"));
    }
    (latency, empty, timeouts, problems)
}

#[allow(clippy::cast_precision_loss)] // Rates for people.
fn assemble(
    config: &Config,
    stride: usize,
    reports: Reports,
    teardown: &Teardown,
    injected_pool_faults: u64,
    leaks: Leaks,
) -> Outcome {
    let Reports {
        sources,
        sink,
        alloc,
        renegotiate,
        timeline,
        elapsed,
    } = reports;
    let (latency, empty, timeouts, problems) = merge_sources(&sources, &alloc, &renegotiate);
    let seconds = elapsed.as_secs_f64();
    let bytes = sink.frames * u64::from(config.frame_size);
    let mut summary = Summary {
        setup: setup_of(config, stride),
        elapsed_s: seconds,
        stream: Stream {
            frames: sink.frames,
            bytes,
            frames_per_s: sink.frames as f64 / seconds,
            mb_per_s: bytes as f64 / seconds / 1e6,
            empty_pool_failures: empty,
            freeframe_wait_timeouts: timeouts,
            sink_peak_held: sink.peak_held,
            corrupt: sink.corrupt,
        },
        alloc_client: alloc.counts,
        latency: LatencySummary {
            table_allocate: latency.table_allocate.percentiles(),
            frame_wait: latency.frame_wait.percentiles(),
            pend_to_completion: latency.pend_to_completion.percentiles(),
        },
        allocator: allocator_of(teardown),
        renegotiation: renegotiation_of(&renegotiate, injected_pool_faults),
        leaks,
        problems,
        checks: Vec::new(),
        passed: false,
    };
    summary.judge();
    Outcome {
        summary,
        timeline,
        latency,
    }
}
