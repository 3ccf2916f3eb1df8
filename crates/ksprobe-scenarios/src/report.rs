//! Text lines of a run: one per scenario and a closing tally.
//!
//! Where no runner reads the wire answer, ksprobe's boot mode prints these with DbgPrint
//! (`cargo xtask reactos` reads them from COM1). One format for every place that prints.

use alloc::string::String;
use core::fmt::Write as _;

use crate::result::{Outcome, ScenarioResult};

/// `PASS name` or `FAIL name: reason [status 0x...] [values a b]`.
#[must_use]
pub fn line(result: &ScenarioResult) -> String {
    let mut s = String::new();
    match &result.outcome {
        Outcome::Pass => {
            let _ = write!(s, "PASS {}", result.name());
            if !result.note.is_empty() {
                let _ = write!(s, " ({})", result.note);
            }
        }
        Outcome::Fail(failure) => {
            let _ = write!(s, "FAIL {}: {}", result.name(), failure.reason);
            if let Some(status) = failure.status {
                let _ = write!(s, " [status {:#010x}]", status.0);
            }
            if failure.values != [0, 0] {
                let _ = write!(s, " [values {} {}]", failure.values[0], failure.values[1]);
            }
        }
    }
    s
}

/// `N passed, M failed`: the closing line test runners read.
#[must_use]
pub fn summary(results: &[ScenarioResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    let mut s = String::new();
    let _ = write!(s, "{passed} passed, {} failed", results.len() - passed);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Failure, Text};
    use crate::scenario::ScenarioId;
    use ks_abi::NtStatus;

    fn result(outcome: Outcome) -> ScenarioResult {
        ScenarioResult {
            id: ScenarioId::OpenChain,
            outcome,
            elapsed_ns: 1,
            timings: None,
            note: Text::EMPTY,
        }
    }

    #[test]
    fn lines_name_the_scenario_and_why_it_failed() {
        let pass = result(Outcome::Pass);
        assert_eq!(
            line(&pass),
            alloc::format!("PASS {}", ScenarioId::OpenChain.name())
        );
        let fail = result(Outcome::Fail(
            Failure::status("create pin", NtStatus::INSUFFICIENT_RESOURCES).with_values(3, 4),
        ));
        assert_eq!(
            line(&fail),
            alloc::format!(
                "FAIL {}: create pin [status 0xc000009a] [values 3 4]",
                ScenarioId::OpenChain.name()
            )
        );
        assert_eq!(summary(&[pass, fail]), "1 passed, 1 failed");
        assert_eq!(summary(&[]), "0 passed, 0 failed");
    }
}
