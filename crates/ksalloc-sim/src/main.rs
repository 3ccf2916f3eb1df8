//! `ksalloc-sim`: flags in, a run, the summary out. See `ksalloc_sim` for the parts.

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use ksalloc_sim::cli::Args;
use ksalloc_sim::{plot, report, scenario, RunError};

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.to_config() {
        Ok(config) => config,
        // Exit code 2, the rule in the message, clap's usage line after it.
        Err(e) => Args::command().error(ErrorKind::ValueValidation, e).exit(),
    };
    let live = !args.json && std::io::stderr().is_terminal();
    let mut stderr = std::io::stderr();
    let mut show = |p: &scenario::Progress| {
        if live {
            let _ = write!(stderr, "\r\x1b[2K{}", report::progress_line(p));
            let _ = stderr.flush();
        }
    };
    let outcome = match scenario::run(&config, &mut show) {
        Ok(outcome) => outcome,
        Err(RunError::Config(e)) => Args::command().error(ErrorKind::ValueValidation, e).exit(),
        Err(e @ RunError::Graph(_)) => {
            eprintln!("ksalloc-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if live {
        eprint!("\r\x1b[2K");
    }
    let summary = &outcome.summary;
    if args.json {
        print!("{}", report::json(summary));
    } else {
        print!("{}", report::text(summary));
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot::write(path, &outcome) {
            eprintln!("ksalloc-sim: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        if !args.json {
            println!("plot: {}", path.display());
        }
    }
    if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
