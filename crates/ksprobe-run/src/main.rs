//! ksprobe-run: asks the ksprobe kernel driver to run its scenarios against the
//! installed ksalloc filter, prints a pass/fail table with timings, and exits non-zero
//! on any failure.
//!
//! Exit codes: 0 every scenario passed; 1 at least one failed; 2 nothing ran (bad
//! arguments, ksprobe not installed or not reachable, not on Windows).
//!
//! Windows only at run time: ksprobe is a kernel driver. Elsewhere the binary builds so
//! the workspace does, lists the scenarios (`--list`), and otherwise says where the same
//! scenarios run on Linux: `cargo test -p ksprobe-scenarios`, against the model kernel.

mod cli;
#[cfg(windows)]
mod device;
mod report;

use std::process::ExitCode;

use clap::Parser;
use ksprobe_scenarios::wire::Request;

/// Every scenario passed.
const PASSED: u8 = 0;
/// A scenario failed.
const FAILED: u8 = 1;
/// Nothing ran.
const NOT_RUN: u8 = 2;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if args.list {
        print!("{}", report::list());
        return ExitCode::from(PASSED);
    }
    let request = match args.request() {
        Ok(request) => request,
        Err(message) => {
            eprintln!("ksprobe-run: {message}");
            return ExitCode::from(NOT_RUN);
        }
    };
    ExitCode::from(run(&request))
}

#[cfg(windows)]
fn run(request: &Request) -> u8 {
    use ksprobe_scenarios::wire::{response_len, Response};

    let device = match device::Device::open() {
        Ok(device) => device,
        Err(error) => {
            eprintln!("ksprobe-run: {}", device::explain_open_error(&error));
            return NOT_RUN;
        }
    };
    let mut out = vec![0u8; response_len(request.scenarios().len())];
    let returned = match device.run(&request.encode(), &mut out) {
        Ok(n) => n,
        Err(error) => {
            eprintln!("ksprobe-run: the run IOCTL failed: {error}");
            return NOT_RUN;
        }
    };
    let response = match Response::decode(&out[..returned.min(out.len())]) {
        Ok(response) => response,
        Err(error) => {
            eprintln!("ksprobe-run: ksprobe answered with a malformed response: {error:?}");
            return NOT_RUN;
        }
    };
    finish(&response)
}

/// Prints the results of a response; the exit code they make.
// Called by the Windows run only; the unit tests below exercise it everywhere.
#[cfg_attr(not(windows), allow(dead_code))]
fn finish(response: &ksprobe_scenarios::wire::Response) -> u8 {
    if !response.status.is_success() {
        eprintln!(
            "ksprobe-run: ksprobe could not start the scenarios: {:?} ({})",
            response.status,
            report::setup_hint(response.status)
        );
        return NOT_RUN;
    }
    print!("{}", report::table(&response.results));
    if response
        .results
        .iter()
        .all(ksprobe_scenarios::ScenarioResult::passed)
    {
        PASSED
    } else {
        FAILED
    }
}

#[cfg(not(windows))]
fn run(request: &Request) -> u8 {
    eprintln!(
        "ksprobe-run: this runner talks to the ksprobe kernel driver and only runs on Windows \
         (with ksalloc and ksprobe installed). It would have run: {}.\n\
         On Linux the same scenarios run against the model kernel and the real ksalloc-core \
         with `cargo test -p ksprobe-scenarios`.",
        report::names(&request.scenarios())
    );
    NOT_RUN
}

#[cfg(test)]
mod tests {
    use super::*;
    use ks_abi::NtStatus;
    use ksprobe_scenarios::wire::Response;
    use ksprobe_scenarios::{Failure, Outcome, ScenarioId, ScenarioResult, Text};

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
    fn exit_codes() {
        let pass = Response {
            status: NtStatus::SUCCESS,
            results: vec![result(Outcome::Pass)],
        };
        assert_eq!(finish(&pass), PASSED);
        let fail = Response {
            status: NtStatus::SUCCESS,
            results: vec![
                result(Outcome::Pass),
                result(Outcome::Fail(Failure::new("x"))),
            ],
        };
        assert_eq!(finish(&fail), FAILED);
        let none = Response {
            status: NtStatus::OBJECT_NAME_NOT_FOUND,
            results: Vec::new(),
        };
        assert_eq!(finish(&none), NOT_RUN);
    }
}
