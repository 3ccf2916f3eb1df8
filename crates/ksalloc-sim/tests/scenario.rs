//! Short runs of the simulator through its library API, checking the summary's
//! invariants: frames flowed, every frame came home, every pended ALLOC ended, the
//! counters agree with each other, nothing leaked.

use std::time::Duration;

use ksalloc_sim::{run, Config, Stop, Summary};

fn brief(config: &Config) -> Summary {
    let mut progress_calls = 0;
    let outcome = run(config, &mut |_| progress_calls += 1).expect("the graph builds");
    assert!(progress_calls >= 1, "progress is reported at least once");
    assert!(!outcome.timeline.is_empty(), "the pool was sampled");
    outcome.summary
}

fn seconds(s: f64) -> Stop {
    Stop::After(Duration::from_secs_f64(s))
}

/// The invariants every run must meet, spelled out one by one (the summary's own
/// checks are asserted too, but a failure here names the figure).
fn assert_invariants(s: &Summary) {
    let report = ksalloc_sim::report::text(s);
    let (a, c) = (&s.allocator, &s.alloc_client);
    assert!(s.stream.frames > 0, "frames streamed\n{report}");
    assert!(a.conserved, "conservation\n{report}");
    assert_eq!(
        (a.free, a.outstanding, a.pending),
        (a.total, 0, 0),
        "{report}"
    );
    assert!(a.released_at_close, "{report}");
    assert_eq!(a.allocations, a.frees, "allocations == frees\n{report}");
    assert_eq!(a.allocations, s.stream.frames + c.frames, "{report}");
    assert_eq!(
        a.failed_allocations, s.stream.empty_pool_failures,
        "{report}"
    );
    assert_eq!(a.rejected_frees, c.bad_frees_sent, "{report}");
    assert_eq!(c.bad_frees_refused, c.bad_frees_sent, "{report}");
    assert_eq!(
        c.pended,
        c.completed_after_pend + c.cancelled,
        "every pended ALLOC completed or was cancelled\n{report}"
    );
    assert_eq!(c.stuck, 0, "{report}");
    assert_eq!(a.cancels, c.cancelled, "{report}");
    assert!(a.pends >= c.pended, "{report}");
    assert_eq!(c.frames, c.immediate + c.completed_after_pend, "{report}");
    assert_eq!(s.stream.corrupt + c.corrupt + s.renegotiation.corrupt, 0);
    let leaks = s.leaks;
    assert_eq!(
        (leaks.pool_blocks, leaks.irps, leaks.file_objects),
        (0, 0, 0),
        "leaks\n{report}"
    );
    assert!(s.problems.is_empty(), "{report}");
    assert!(s.passed, "{report}");
    assert!(s.checks.iter().all(|check| check.ok), "{report}");
}

#[test]
fn the_default_scenario_briefly() {
    let summary = brief(&Config {
        stop: seconds(0.3),
        ..Config::default()
    });
    assert_invariants(&summary);
    assert!(
        summary.alloc_client.frames > 0,
        "the ALLOC client got frames"
    );
    assert!(summary.latency.table_allocate.samples > 0);
    assert_eq!(
        summary.latency.table_allocate.samples,
        summary.stream.frames
    );
}

#[test]
fn a_counted_run_streams_exactly_that_many_frames() {
    let summary = brief(&Config {
        stop: Stop::Frames(500),
        ..Config::default()
    });
    assert_invariants(&summary);
    assert_eq!(summary.stream.frames, 500);
}

#[test]
fn a_starved_pool_pends_and_cancels() {
    // Two frames, four producers, a long hold: the pool is dry nearly all the time.
    let summary = brief(&Config {
        frames: 2,
        producers: 4,
        hold: Duration::from_millis(2),
        cancel_every: 2,
        bad_free_every: 5,
        stop: seconds(0.4),
        ..Config::default()
    });
    assert_invariants(&summary);
    assert!(
        summary.stream.empty_pool_failures > 0,
        "producers met an empty pool"
    );
    assert!(summary.alloc_client.pended > 0, "ALLOCs pended");
    assert!(
        summary.alloc_client.cancels_requested > 0,
        "cancels were tried"
    );
    assert!(
        summary.alloc_client.bad_frees_sent > 0,
        "bad frees were sent"
    );
}

#[test]
fn every_pool_allocation_failing_refuses_every_renegotiation() {
    let summary = brief(&Config {
        fault_rate: 1.0,
        renegotiate_every: Duration::from_millis(5),
        stop: seconds(0.3),
        ..Config::default()
    });
    assert_invariants(&summary);
    let r = &summary.renegotiation;
    assert!(r.attempts > 0);
    assert_eq!(r.created, 0);
    assert_eq!(r.refused, r.attempts);
    assert_eq!(r.injected_pool_faults, r.refused);
}

#[test]
fn no_faults_creates_every_renegotiation_allocator() {
    let summary = brief(&Config {
        fault_rate: 0.0,
        renegotiate_every: Duration::from_millis(5),
        stop: seconds(0.3),
        ..Config::default()
    });
    assert_invariants(&summary);
    let r = &summary.renegotiation;
    assert!(r.created > 0);
    assert_eq!(r.refused, 0);
    assert_eq!(
        r.cancelled_at_close, r.created,
        "close cancels the pending ALLOC"
    );
}

#[test]
fn one_byte_frames_without_alignment_or_hold() {
    // Stride 1: the bad FREE must not be "the middle of a frame" (that is the next
    // frame); hold 0 frees as fast as frames come.
    let summary = brief(&Config {
        frames: 4,
        frame_size: 1,
        alignment: 1,
        hold: Duration::ZERO,
        bad_free_every: 3,
        stop: seconds(0.3),
        ..Config::default()
    });
    assert_invariants(&summary);
    assert_eq!(summary.setup.stride, 1);
}

#[test]
fn a_bad_config_is_refused_before_anything_runs() {
    let error = run(
        &Config {
            frames: 0,
            ..Config::default()
        },
        &mut |_| {},
    )
    .expect_err("zero frames is refused");
    assert!(error.to_string().contains("--frames"), "{error}");
}
