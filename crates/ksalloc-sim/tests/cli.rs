//! The binary's command line: each bad argument exits 2 with a message naming the flag
//! and the rule; a good one runs and prints a summary (text or JSON) and the plot.

use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksalloc-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs with a bad argument: exit code 2, and stderr names `flag` and says `rule`.
fn refused(args: &[&str], flag: &str, rule: &str) {
    let out = sim(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
    assert!(stderr.contains(rule), "{args:?} says '{rule}': {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} ran anyway");
}

#[test]
fn zero_frames() {
    refused(&["--frames", "0"], "--frames", "frames must be at least 1");
}

#[test]
fn too_many_frames() {
    refused(
        &["--frames", "2000000"],
        "--frames",
        "frames must be at most 1048576",
    );
}

#[test]
fn zero_frame_size() {
    refused(
        &["--frame-size", "0"],
        "--frame-size",
        "frame size must be at least 1 byte",
    );
}

#[test]
fn frame_size_beyond_a_ulong() {
    refused(&["--frame-size", "8G"], "--frame-size", "ULONG");
}

#[test]
fn frame_size_not_a_number() {
    refused(&["--frame-size", "big"], "--frame-size", "not a size");
}

#[test]
fn frames_times_size_beyond_the_pool_limit() {
    refused(
        &["--frames", "100000", "--frame-size", "1M"],
        "--frames x --frame-size",
        "frames x frame size must be at most 256 MiB",
    );
}

#[test]
fn alignment_not_a_power_of_two() {
    refused(
        &["--alignment", "48"],
        "--alignment",
        "must be a power of two of at most 4096",
    );
}

#[test]
fn alignment_zero() {
    refused(
        &["--alignment", "0"],
        "--alignment",
        "must be a power of two of at most 4096",
    );
}

#[test]
fn alignment_above_a_page() {
    refused(
        &["--alignment", "8192"],
        "--alignment",
        "must be a power of two of at most 4096",
    );
}

#[test]
fn zero_producers() {
    refused(
        &["--producers", "0"],
        "--producers",
        "producers must be between 1 and 16",
    );
}

#[test]
fn more_producers_than_freeframe_events() {
    refused(
        &["--producers", "17"],
        "--producers",
        "producers must be between 1 and 16",
    );
}

#[test]
fn zero_duration() {
    refused(
        &["--duration", "0"],
        "--duration",
        "duration must be more than 0",
    );
}

#[test]
fn negative_duration() {
    refused(
        &["--duration=-1"],
        "--duration",
        "positive number of seconds",
    );
}

#[test]
fn negative_duration_as_a_separate_word() {
    refused(
        &["--duration", "-0.5"],
        "--duration",
        "positive number of seconds",
    );
}

#[test]
fn negative_fault_rate() {
    refused(&["--fault-rate", "-0.1"], "--fault-rate", "between 0 and 1");
}

#[test]
fn zero_count() {
    refused(
        &["--count", "0"],
        "--count",
        "count must be at least 1 frame",
    );
}

#[test]
fn count_and_duration_together() {
    refused(
        &["--count", "10", "--duration", "1"],
        "--duration",
        "cannot be used with",
    );
}

#[test]
fn fault_rate_beyond_one() {
    refused(&["--fault-rate", "1.5"], "--fault-rate", "between 0 and 1");
}

#[test]
fn hold_too_long() {
    refused(
        &["--hold-us", "60000000"],
        "--hold-us",
        "hold time must be at most",
    );
}

#[test]
fn a_short_run_prints_the_summary_and_passes() {
    let out = sim(&["--duration", "0.2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for needle in ["frames streamed", "p50", "conservation", "leaks", "PASS"] {
        assert!(stdout.contains(needle), "'{needle}' in:\n{stdout}");
    }
    // Not a terminal: no progress line.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_is_machine_readable() {
    let out = sim(&["--count", "300", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["passed"], true);
    assert_eq!(json["stream"]["frames"], 300);
    assert_eq!(json["leaks"]["pool_blocks"], 0);
    assert_eq!(json["leaks"]["irps"], 0);
    assert_eq!(json["leaks"]["file_objects"], 0);
    assert!(json["latency"]["table_allocate"]["p99_ns"]
        .as_u64()
        .is_some());
    assert!(json["checks"].as_array().is_some_and(|c| !c.is_empty()));
}

#[test]
fn plot_writes_an_svg() {
    let path = std::env::temp_dir().join(format!("ksalloc-sim-{}.svg", std::process::id()));
    let out = sim(&["--duration", "0.2", "--plot", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&path).expect("the plot was written");
    std::fs::remove_file(&path).ok();
    assert!(svg.starts_with("<svg"), "an SVG document");
    for title in [
        "Pool occupancy",
        "table AllocateFrame call",
        "producer wait for a frame",
        "ALLOC IRP pend -&gt; completion",
    ] {
        assert!(svg.contains(title), "the plot has '{title}'");
    }
}

#[test]
fn an_unwritable_plot_path_fails_cleanly() {
    let out = sim(&[
        "--duration",
        "0.1",
        "--plot",
        "/nonexistent-dir/ksalloc-sim.svg",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/ksalloc-sim.svg"));
}
