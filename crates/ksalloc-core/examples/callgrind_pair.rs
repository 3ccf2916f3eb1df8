//! Runs N allocate+free pairs of one contender, for counting instructions with
//! valgrind's callgrind (wall times on shared machines are noisy; instruction counts
//! are not).
//!
//! ```text
//! callgrind_pair <contender> <pairs> [frames]
//! callgrind_pair --list
//! ```
//!
//! Contenders are those of `benches/alloc_free.rs` plus the hand-off cases
//! (`ksalloc-pend-handoff`, `ksalloc-method-ready`, their `model-` twins, and
//! `model-irp-complete-only`). Setup is the same whatever
//! `pairs` is, so `(Ir(2N) - Ir(N)) / N` is the cost of one pair;
//! `crates/ksalloc-core/benches/callgrind.sh` runs that for every contender.

#[path = "../benches/contenders/mod.rs"]
mod contenders;

use std::process::ExitCode;

use contenders::{BenchKernel, Handoff, Kernel, MethodReady, Pool, Role, Visit};
use ksalloc_model::ModelKernel;

/// Finds the contender by name and runs it.
struct Run<'a> {
    name: &'a str,
    pairs: u64,
    frames: u32,
    found: bool,
    names: Vec<&'static str>,
}

impl Run<'_> {
    fn run<P: Pool>(&mut self, name: &'static str, make: fn(u32) -> P) {
        self.names.push(name);
        if name != self.name {
            return;
        }
        self.found = true;
        let pool = make(self.frames);
        for _ in 0..self.pairs {
            pool.pair();
        }
    }
}

impl Visit for Run<'_> {
    fn shared<P: Pool + Sync>(&mut self, name: &'static str, _: Role, make: fn(u32) -> P) {
        self.run(name, make);
    }
    fn private<P: Pool>(&mut self, name: &'static str, _: Role, make: fn(u32) -> P) {
        self.run(name, make);
    }
}

/// The contenders that are not a plain [`Pool`].
const SPECIAL: [&str; 5] = [
    "ksalloc-pend-handoff",
    "ksalloc-method-ready",
    "model-ksalloc-pend-handoff",
    "model-irp-complete-only",
    "model-ksalloc-method-ready",
];

/// `pairs` ALLOC-pend + free hand-offs on `K`.
fn handoffs<K: Kernel>(frames: u32, pairs: u64) {
    let h = Handoff::<K>::new(frames);
    h.verify();
    for _ in 0..pairs {
        h.pend_then_free(&h.irp());
    }
}

/// `pairs` ready ALLOC-method + free pairs on `K`.
fn method_ready<K: Kernel>(frames: u32, pairs: u64) {
    let pool = MethodReady::<K>::new(frames);
    for _ in 0..pairs {
        pool.pair();
    }
}

fn main() -> ExitCode {
    // Processor 0 of the bench kernel, set at run time as the two-thread bench does
    // (else the compiler would know the thread-local is always 0).
    contenders::bind_processor(std::hint::black_box(0));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        let mut run = Run {
            name: "",
            pairs: 0,
            frames: 0,
            found: false,
            names: Vec::new(),
        };
        contenders::visit_all(&mut run);
        for name in run.names.iter().chain(&SPECIAL) {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let (Some(name), Some(Ok(pairs))) = (args.first(), args.get(1).map(|n| n.parse::<u64>()))
    else {
        eprintln!("usage: callgrind_pair <contender> <pairs> [frames (default 64)]");
        return ExitCode::from(2);
    };
    let frames = match args.get(2).map(|f| f.parse::<u32>()) {
        None => 64,
        Some(Ok(frames)) => frames,
        Some(Err(_)) => {
            eprintln!("frames must be a number");
            return ExitCode::from(2);
        }
    };
    match name.as_str() {
        "ksalloc-pend-handoff" => handoffs::<BenchKernel>(frames, pairs),
        "model-ksalloc-pend-handoff" => handoffs::<ModelKernel>(frames, pairs),
        "model-irp-complete-only" => {
            let h = Handoff::<ModelKernel>::new(frames);
            for _ in 0..pairs {
                h.complete_only(&h.irp());
            }
        }
        "ksalloc-method-ready" => method_ready::<BenchKernel>(frames, pairs),
        "model-ksalloc-method-ready" => method_ready::<ModelKernel>(frames, pairs),
        _ => {
            let mut run = Run {
                name,
                pairs,
                frames,
                found: false,
                names: Vec::new(),
            };
            contenders::visit_all(&mut run);
            if !run.found {
                eprintln!(
                    "unknown contender {name:?}; one of: {}, {}",
                    run.names.join(", "),
                    SPECIAL.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
