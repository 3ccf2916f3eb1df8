//! What the runner prints.

use std::fmt::Write as _;

use ks_abi::NtStatus;
use ksprobe_scenarios::{Outcome, ScenarioId, ScenarioResult};

/// `--list`: every scenario with what it checks.
pub fn list() -> String {
    let mut out = String::new();
    for id in ScenarioId::ALL {
        let _ = writeln!(out, "{:<24} {}", id.name(), id.description());
    }
    out
}

/// Scenario names, comma-separated.
// Only the non-Windows message uses it.
#[cfg_attr(windows, allow(dead_code))]
pub fn names(ids: &[ScenarioId]) -> String {
    ids.iter()
        .map(|id| id.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration for people: ns, us, ms or s with three significant digits.
#[allow(clippy::cast_precision_loss)] // Display only.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

/// `NAME(0x...)` for a status.
#[allow(clippy::cast_sign_loss)] // The bit pattern is the point.
fn status(status: NtStatus) -> String {
    format!("{}(0x{:08X})", status.name(), status.0 as u32)
}

/// The pass/fail table, timings, and a closing count.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<6} {:>10}  details",
        "scenario", "result", "time"
    );
    for r in results {
        let (verdict, details) = match &r.outcome {
            Outcome::Pass => ("PASS", r.note.to_string()),
            Outcome::Fail(f) => {
                let mut d = f.reason.to_string();
                if let Some(s) = f.status {
                    let _ = write!(d, "; status {}", status(s));
                }
                if f.values != [0, 0] {
                    let _ = write!(d, "; values {} / {}", f.values[0], f.values[1]);
                }
                ("FAIL", d)
            }
        };
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:>10}  {}",
            r.name(),
            verdict,
            duration(r.elapsed_ns),
            details
        );
        for (passed, name) in request_cases(r) {
            let _ = writeln!(
                out,
                "  case {} {name}",
                if passed { "PASS" } else { "FAIL" }
            );
        }
    }
    let timed: Vec<&ScenarioResult> = results.iter().filter(|r| r.timings.is_some()).collect();
    if !timed.is_empty() {
        let _ = writeln!(out, "\ntimings at DISPATCH_LEVEL:");
        for r in timed {
            if let Some(t) = r.timings {
                let _ = writeln!(
                    out,
                    "{:<24} {:>8} samples  min {}  median {}  p99 {}  max {}",
                    r.name(),
                    t.samples,
                    duration(t.min_ns),
                    duration(t.median_ns),
                    duration(t.p99_ns),
                    duration(t.max_ns)
                );
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let _ = writeln!(out, "\n{passed} passed, {} failed", results.len() - passed);
    out
}

/// The verdict of each request `bad_requests` sent: on a failure from the mask in its
/// values; on a pass every case, if ksprobe sent them all (its note says so).
fn request_cases(r: &ScenarioResult) -> Vec<(bool, &'static str)> {
    use ksprobe_scenarios::requests::{all_cases, values_mask};
    if r.id != ScenarioId::BadRequests {
        return Vec::new();
    }
    let cases = all_cases();
    match &r.outcome {
        Outcome::Fail(f) if f.reason.as_str().contains(" off; first ") => {
            let mask = values_mask(f.values);
            cases
                .iter()
                .enumerate()
                .map(|(i, c)| (mask >> i & 1 == 0, c.name))
                .collect()
        }
        Outcome::Pass if r.note.as_str().ends_with("; 0 this client cannot send") => {
            cases.iter().map(|c| (true, c.name)).collect()
        }
        _ => Vec::new(),
    }
}

/// What to check when ksprobe could not start at all.
pub const fn setup_hint(status: NtStatus) -> &'static str {
    match status {
        NtStatus::OBJECT_NAME_NOT_FOUND => {
            "no KSCATEGORY_DATATRANSFORM interface served by \\Driver\\ksalloc: is ksalloc \
             installed and its device started? (or pass --filter)"
        }
        NtStatus::INVALID_PARAMETER => {
            "ksprobe refused the request: runner and driver versions differ?"
        }
        NtStatus::INSUFFICIENT_RESOURCES => "ksprobe ran out of memory",
        _ => "see the status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksprobe_scenarios::{Failure, Text, Timings};

    #[test]
    fn bad_requests_lists_each_case_from_its_mask() {
        use ksprobe_scenarios::requests::{all_cases, mask_values};
        let cases = all_cases();
        let failed = ScenarioResult {
            id: ScenarioId::BadRequests,
            outcome: Outcome::Fail(
                Failure::new("2/47 off; first x").with_values(mask_values(0b101)[0], 0),
            ),
            elapsed_ns: 1,
            timings: None,
            note: Text::EMPTY,
        };
        let t = table(&[failed]);
        assert!(
            t.contains(&format!("  case FAIL {}\n", cases[0].name)),
            "{t}"
        );
        assert!(
            t.contains(&format!("  case PASS {}\n", cases[1].name)),
            "{t}"
        );
        assert!(
            t.contains(&format!("  case FAIL {}\n", cases[2].name)),
            "{t}"
        );
        assert_eq!(t.matches("  case ").count(), cases.len());
        let passed = ScenarioResult {
            id: ScenarioId::BadRequests,
            outcome: Outcome::Pass,
            elapsed_ns: 1,
            timings: None,
            note: Text::new("47 requests; 0 this client cannot send"),
        };
        assert_eq!(
            table(&[passed]).matches("  case PASS ").count(),
            cases.len()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(999), "999 ns");
        assert_eq!(duration(1_500), "1.5 us");
        assert_eq!(duration(2_345_678), "2.35 ms");
        assert_eq!(duration(3_000_000_000), "3.00 s");
    }

    #[test]
    fn the_table_shows_failures_timings_and_the_count() {
        let results = [
            ScenarioResult {
                id: ScenarioId::OpenChain,
                outcome: Outcome::Pass,
                elapsed_ns: 1_000,
                timings: None,
                note: Text::EMPTY,
            },
            ScenarioResult {
                id: ScenarioId::CancelPending,
                outcome: Outcome::Fail(
                    Failure::status("went wrong", NtStatus::CANCELLED).with_values(3, 4),
                ),
                elapsed_ns: 2_000_000,
                timings: None,
                note: Text::EMPTY,
            },
            ScenarioResult {
                id: ScenarioId::TimeAllocFree,
                outcome: Outcome::Pass,
                elapsed_ns: 5,
                timings: Some(Timings {
                    samples: 10,
                    min_ns: 1,
                    median_ns: 2,
                    p99_ns: 3,
                    max_ns: 4,
                }),
                note: Text::new("pairs"),
            },
        ];
        let t = table(&results);
        assert!(t.contains("open_chain               PASS"), "{t}");
        assert!(
            t.contains("went wrong; status STATUS_CANCELLED(0xC0000120); values 3 / 4"),
            "{t}"
        );
        assert!(
            t.contains("min 1 ns  median 2 ns  p99 3 ns  max 4 ns"),
            "{t}"
        );
        assert!(t.ends_with("\n2 passed, 1 failed\n"), "{t}");
        assert!(!t.contains("  case "), "{t}");
        assert_eq!(list().lines().count(), ScenarioId::ALL.len());
    }
}
