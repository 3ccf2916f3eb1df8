//! What a person (or a script) reads: the progress line, the summary table, the JSON.

use std::fmt::Write as _;

use crate::config::Stop;
use crate::histogram::Percentiles;
use crate::scenario::Progress;
use crate::summary::Summary;

/// `1234567` as `1,234,567`.
#[must_use]
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds with a unit that keeps three significant digits.
#[must_use]
#[allow(clippy::cast_precision_loss)] // For people.
pub fn duration_ns(ns: u64) -> String {
    let v = ns as f64;
    let (scaled, unit) = match ns {
        0..1_000 => return format!("{ns} ns"),
        1_000..1_000_000 => (v / 1e3, "us"),
        1_000_000..1_000_000_000 => (v / 1e6, "ms"),
        _ => (v / 1e9, "s"),
    };
    let digits = if scaled < 10.0 {
        2
    } else {
        usize::from(scaled < 100.0)
    };
    format!("{scaled:.digits$} {unit}")
}

/// Frames per second, compact (`24.7k`).
#[must_use]
pub fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2}M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1}k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

/// The one-line progress report (no newline, no terminal codes; under 80 columns for
/// a timed run of a few thousand frames a second).
#[must_use]
#[allow(clippy::cast_precision_loss)] // For people.
pub fn progress_line(p: &Progress) -> String {
    let secs = p.elapsed.as_secs_f64();
    let target = match p.stop {
        Stop::After(d) => format!("{secs:.1}/{:.1} s", d.as_secs_f64()),
        Stop::Frames(n) => format!("{secs:.1} s, {}/{}", count(p.streamed), count(n)),
    };
    let s = &p.snapshot;
    let per_s = if secs > 0.0 {
        p.streamed as f64 / secs
    } else {
        0.0
    };
    format!(
        "{target}  frames {} ({}/s)  ALLOC {}  out {}/{}  pends {}  cancels {}",
        count(p.streamed),
        rate(per_s),
        count(p.alloc_frames),
        s.total - s.free,
        s.total,
        count(s.counters.pends),
        count(s.counters.cancels),
    )
}

fn latency_row(out: &mut String, name: &str, p: &Percentiles) {
    if p.samples == 0 {
        let _ = writeln!(out, "  {name:<24}{:>10}", "(no samples)");
        return;
    }
    let _ = writeln!(
        out,
        "  {name:<24}{:>10}{:>10}{:>10}{:>10}{:>12}",
        duration_ns(p.p50_ns),
        duration_ns(p.p90_ns),
        duration_ns(p.p99_ns),
        duration_ns(p.max_ns),
        count(p.samples)
    );
}

/// The human summary (ends with a newline).
#[must_use]
pub fn text(summary: &Summary) -> String {
    let mut out = String::new();
    header(&mut out, summary);
    stream(&mut out, summary);
    latencies(&mut out, summary);
    counters(&mut out, summary);
    verdict(&mut out, summary);
    out
}

fn header(out: &mut String, summary: &Summary) {
    let setup = &summary.setup;
    let run = match (setup.duration_s, setup.count) {
        (_, Some(frames)) => format!("{} frames", count(frames)),
        (Some(seconds), None) => format!("{seconds} s"),
        (None, None) => "?".to_owned(),
    };
    let _ = writeln!(
        out,
        "ksalloc-sim: a KS graph on the model kernel, streaming through the real ksalloc core"
    );
    let _ = writeln!(
        out,
        "  allocator   {} frames x {} B, alignment {} (stride {}), on the filter's input pin",
        setup.frames, setup.frame_size, setup.alignment, setup.stride
    );
    let _ = writeln!(
        out,
        "  clients     {} producer(s) -> FUNCTIONTABLE at DISPATCH_LEVEL -> sink (hold {} us); \
         1 ALLOC-method client",
        setup.producers, setup.hold_us
    );
    let _ = writeln!(
        out,
        "  run         {run}, took {:.2} s; pool fault rate {} (seed {}); output pin \
         renegotiated every {} ms",
        summary.elapsed_s, setup.fault_rate, setup.seed, setup.renegotiate_ms
    );
}

fn stream(out: &mut String, summary: &Summary) {
    let (stream, client) = (&summary.stream, &summary.alloc_client);
    let _ = writeln!(out, "\nstream");
    let _ = writeln!(
        out,
        "  frames streamed         {:>12}   {} frames/s, {:.1} MB/s",
        count(stream.frames),
        rate(stream.frames_per_s),
        stream.mb_per_s
    );
    let _ = writeln!(
        out,
        "  empty-pool failures     {:>12}   AllocateFrame found no frame; FREEFRAME waits timed \
         out {} times",
        count(stream.empty_pool_failures),
        count(stream.freeframe_wait_timeouts)
    );
    let _ = writeln!(
        out,
        "  ALLOC client frames     {:>12}   {} at once, {} after pending; {} of {} cancels \
         took effect",
        count(client.frames),
        count(client.immediate),
        count(client.completed_after_pend),
        count(client.cancelled),
        count(client.cancels_requested)
    );
}

fn latencies(out: &mut String, summary: &Summary) {
    let latency = &summary.latency;
    let _ = writeln!(
        out,
        "\nlatency                        p50       p90       p99       max     samples"
    );
    latency_row(out, "table AllocateFrame", &latency.table_allocate);
    latency_row(out, "producer wait for frame", &latency.frame_wait);
    latency_row(out, "ALLOC pend -> complete", &latency.pend_to_completion);
}

fn counters(out: &mut String, summary: &Summary) {
    let (engine, renegotiation) = (&summary.allocator, &summary.renegotiation);
    let _ = writeln!(out, "\nallocator counters (engine)");
    let rows = [
        ("allocations", engine.allocations),
        ("frees", engine.frees),
        ("pends", engine.pends),
        ("cancels", engine.cancels),
        ("rejected frees", engine.rejected_frees),
        ("failed allocations", engine.failed_allocations),
        ("peak outstanding", engine.peak_outstanding),
    ];
    for pair in rows.chunks(2) {
        let mut line = String::from(" ");
        for (name, value) in pair {
            let _ = write!(line, " {name:<22}{:>12}", count(*value));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = writeln!(
        out,
        "\nframe budget (driver-wide): {} of {} bytes in use while streaming",
        count(engine.budget_in_use as u64),
        count(engine.budget_limit as u64)
    );
    let _ = writeln!(
        out,
        "\nrenegotiation (output pin): {} tried, {} created, {} refused by injected pool \
         faults, {} pending ALLOCs cancelled by close",
        count(renegotiation.attempts),
        count(renegotiation.created),
        count(renegotiation.refused),
        count(renegotiation.cancelled_at_close)
    );
}

fn verdict(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nchecks");
    for check in &summary.checks {
        let _ = writeln!(
            out,
            "  [{}] {:<17}{}",
            if check.ok { " ok " } else { "FAIL" },
            check.name,
            check.detail
        );
    }
    let _ = writeln!(out, "\n{}", if summary.passed { "PASS" } else { "FAIL" });
}

/// The summary as pretty JSON (ends with a newline).
///
/// # Panics
/// Never: the summary is plain data.
#[must_use]
pub fn json(s: &Summary) -> String {
    let mut text = serde_json::to_string_pretty(s).expect("the summary serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn durations_keep_three_digits() {
        assert_eq!(duration_ns(850), "850 ns");
        assert_eq!(duration_ns(1_234), "1.23 us");
        assert_eq!(duration_ns(12_345), "12.3 us");
        assert_eq!(duration_ns(123_456), "123 us");
        assert_eq!(duration_ns(1_500_000), "1.50 ms");
        assert_eq!(duration_ns(2_000_000_000), "2.00 s");
    }
}
