//! Allocate+free pair: ksalloc's function-table path against the baselines of issue 9,
//! in one run, at the same frame size (4 KiB, `FILE_QUAD_ALIGNMENT`) and frame counts.
//!
//! Groups (criterion ids are `<group>/<contender>/<frames>`):
//! - `pair_1thread`: one thread, allocate then free, at 2, 64, 4096 and 65536 frames.
//! - `pair_2threads`: two threads (this machine has two cores) doing pairs on one shared
//!   pool, started together at a barrier; the time is the slower thread's wall time per
//!   pair, so it is the latency each thread sees. Throughput counts both threads' pairs.
//! - `handoff`: ALLOC pends on an empty pool, a free hands the frame to it and completes
//!   the IRP; beside it the non-pending ALLOC method and the model IRP completion alone.
//!
//! `benches/PERFORMANCE.md` has the commands, the machine and the tables.

mod contenders;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use contenders::{BenchKernel, Handoff, Kernel, MethodReady, Pool, Role, Visit};
use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use ksalloc_model::ModelKernel;

/// Frame counts every case runs at.
const FRAME_COUNTS: [u32; 4] = [2, 64, 4096, 65_536];
/// The frame count the breakdown steps run at.
const BREAKDOWN_FRAMES: u32 = 64;

const fn counts(role: Role) -> &'static [u32] {
    match role {
        Role::Contender => &FRAME_COUNTS,
        Role::Breakdown => core::slice::from_ref(&BREAKDOWN_FRAMES),
    }
}

/// One thread, one pool.
struct SingleThread<'a, 'c> {
    group: &'a mut BenchmarkGroup<'c, WallTime>,
}

impl SingleThread<'_, '_> {
    fn run<P: Pool>(&mut self, name: &str, role: Role, make: fn(u32) -> P) {
        for &frames in counts(role) {
            let pool = make(frames);
            self.group
                .bench_function(BenchmarkId::new(name, frames), |b| b.iter(|| pool.pair()));
        }
    }
}

impl Visit for SingleThread<'_, '_> {
    fn shared<P: Pool + Sync>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P) {
        self.run(name, role, make);
    }
    fn private<P: Pool>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P) {
        self.run(name, role, make);
    }
}

/// One two-thread sample: the slower thread's wall time, and what both threads spent
/// timed and preempted (runnable, waiting for a CPU).
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    timed_ns: u64,
    waited_ns: u64,
}

/// Runs `work` on two threads, pinned to two different CPUs and started together at a
/// barrier.
///
/// Pinning matters: unpinned, the scheduler of a busy two-core machine often runs both
/// threads on one CPU by turns, and the pairs never actually contend (the time is then
/// just twice the single-thread time).
fn two_threads(work: impl Fn(&Barrier) -> (Duration, u64) + Sync) -> Sample {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let threads = [0, 1].map(|k| {
            let (cpus, barrier, work) = (&cpus, &barrier, &work);
            s.spawn(move || {
                if cpus.len() >= 2 {
                    core_affinity::set_for_current(cpus[k]);
                }
                // And processor k of the model and bench kernels (the magazine
                // contenders' kernels have two).
                ksalloc_model::bind_processor(Some(k));
                contenders::bind_processor(k);
                work(barrier)
            })
        });
        threads
            .into_iter()
            .map(|t| t.join().expect("bench thread"))
            .fold(Sample::default(), |sample, (elapsed, waited)| Sample {
                wall: sample.wall.max(elapsed),
                timed_ns: sample.timed_ns + u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
                waited_ns: sample.waited_ns + waited,
            })
    })
}

/// Nanoseconds this thread has spent runnable but not running (the second field of
/// /proc/thread-self/schedstat; 0 where that file does not exist).
fn run_queue_wait_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Waits at the barrier, runs `iters` pairs; returns their time and how long this thread
/// sat preempted meanwhile.
fn timed_pairs(pool: &impl Pool, iters: u64, barrier: &Barrier) -> (Duration, u64) {
    barrier.wait();
    let waited = run_queue_wait_ns();
    let start = Instant::now();
    for _ in 0..iters {
        pool.pair();
    }
    let elapsed = start.elapsed();
    (elapsed, run_queue_wait_ns().saturating_sub(waited))
}

/// A sample counts as contended only if its threads were preempted for less than this
/// share of their timed time.
const CLEAN_WAIT: f64 = 0.01;

/// Prints, for the benchmark that just ran, how long its threads sat preempted over all
/// samples, and the median time per pair over the samples where they hardly were. On a
/// shared machine that second figure is the contention; criterion's median mixes in
/// samples where one thread ran alone while the other waited for a CPU.
#[allow(clippy::cast_precision_loss)] // Ratios and nanoseconds for display.
fn report_samples(id: &str, samples: &[(u64, Sample)]) {
    if samples.is_empty() {
        return; // Filtered out on the command line.
    }
    let timed: u64 = samples.iter().map(|(_, s)| s.timed_ns).sum();
    let waited: u64 = samples.iter().map(|(_, s)| s.waited_ns).sum();
    let mut clean: Vec<f64> = samples
        .iter()
        .filter(|(_, s)| (s.waited_ns as f64) < CLEAN_WAIT * s.timed_ns as f64)
        .map(|&(iters, s)| s.wall.as_nanos() as f64 / iters as f64)
        .collect();
    clean.sort_by(f64::total_cmp);
    let median = clean.get(clean.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "contended pair_2threads/{id} wait {:.1}% clean {}/{} clean-median-ns {median:.1}",
        waited as f64 * 100.0 / timed.max(1) as f64,
        clean.len(),
        samples.len(),
    );
}

/// Two threads on one shared pool (each private pool: one per thread).
struct TwoThreads<'a, 'c> {
    group: &'a mut BenchmarkGroup<'c, WallTime>,
}

impl TwoThreads<'_, '_> {
    fn run(
        &mut self,
        name: &str,
        frames: u32,
        work: impl Fn(&Barrier, u64) -> (Duration, u64) + Sync,
    ) {
        let mut samples = Vec::new();
        self.group
            .bench_function(BenchmarkId::new(name, frames), |b| {
                b.iter_custom(|iters| {
                    let sample = two_threads(|barrier| work(barrier, iters));
                    samples.push((iters, sample));
                    sample.wall
                });
            });
        report_samples(&format!("{name}/{frames}"), &samples);
    }
}

impl Visit for TwoThreads<'_, '_> {
    fn shared<P: Pool + Sync>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P) {
        for &frames in counts(role) {
            let pool = make(frames);
            self.run(name, frames, |barrier, iters| {
                timed_pairs(&pool, iters, barrier)
            });
        }
    }

    fn private<P: Pool>(&mut self, name: &'static str, role: Role, make: fn(u32) -> P) {
        for &frames in counts(role) {
            self.run(name, frames, |barrier, iters| {
                timed_pairs(&make(frames), iters, barrier)
            });
        }
    }
}

fn pair_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("pair_1thread");
    group.throughput(Throughput::Elements(1));
    contenders::visit_all(&mut SingleThread { group: &mut group });
    group.finish();
}

fn pair_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("pair_2threads");
    group.throughput(Throughput::Elements(2));
    contenders::visit_all(&mut TwoThreads { group: &mut group });
    group.finish();
}

/// The hand-off cases on kernel `K`, ids prefixed with `prefix`.
fn handoff_on<K: Kernel>(group: &mut BenchmarkGroup<'_, WallTime>, prefix: &str) {
    for frames in [2, 65_536] {
        let h = Handoff::<K>::new(frames);
        h.verify();
        // The IRP is built outside the timing and dropped after it (criterion drops the
        // returned values after the batch): the pair is method_alloc + free.
        group.bench_function(
            BenchmarkId::new(format!("{prefix}ksalloc-pend-handoff"), frames),
            |b| {
                b.iter_batched(
                    || h.irp(),
                    |irp| {
                        h.pend_then_free(&irp);
                        irp
                    },
                    BatchSize::SmallInput,
                );
            },
        );
        drop(h);
        let ready = MethodReady::<K>::new(frames);
        group.bench_function(
            BenchmarkId::new(format!("{prefix}ksalloc-method-ready"), frames),
            |b| b.iter(|| ready.pair()),
        );
    }
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(1));
    handoff_on::<BenchKernel>(&mut group, "");
    handoff_on::<ModelKernel>(&mut group, "model-");
    let h = Handoff::<ModelKernel>::new(2);
    group.bench_function(BenchmarkId::new("model-irp-complete-only", 2), |b| {
        b.iter_batched(
            || h.irp(),
            |irp| {
                h.complete_only(&irp);
                irp
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    // Short by default so the whole suite takes a few minutes; the command line
    // (--warm-up-time, --measurement-time, --sample-size) overrides these.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

// What criterion_group!/criterion_main! expand to, written out (the macro's generated
// function would need a doc comment the workspace lints ask for).
fn main() {
    let mut criterion = config().configure_from_args();
    pair_1thread(&mut criterion);
    pair_2threads(&mut criterion);
    handoff(&mut criterion);
    criterion.final_summary();
}
