//! The stable fallback: the seeds, the saved corpus and a deterministic stream of
//! random and mutated inputs through every target, under plain `cargo test`.
//!
//! `KSALLOC_FUZZ_ITERS` sets the random/mutated inputs per target (default 2000);
//! `KSALLOC_FUZZ_SEED` the PRNG seed (default 1). A failing input is written to
//! `target/ksalloc-fuzz-failures/<target>-<hash>` and printed as hex.

use std::path::{Path, PathBuf};

use crate::seeds::{self, run_target, TARGETS};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).expect("usize")
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn interesting(rng: &mut Rng) -> Vec<u8> {
    let values: [u64; 8] = [
        0,
        1,
        0xFF,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        1 << 20,
        4095,
        u64::MAX,
    ];
    let v = values[rng.below(values.len())];
    v.to_le_bytes()[..[1, 2, 4, 8][rng.below(4)]].to_vec()
}

/// One mutation of `input`, libFuzzer-style.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    match rng.below(6) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] = rng.byte();
        }
        2 => {
            let i = rng.below(input.len() + 1);
            input.insert(i, rng.byte());
        }
        3 if !input.is_empty() => {
            let i = rng.below(input.len());
            input.remove(i);
        }
        4 => {
            let bytes = interesting(rng);
            if input.len() >= bytes.len() {
                let i = rng.below(input.len() - bytes.len() + 1);
                input[i..i + bytes.len()].copy_from_slice(&bytes);
            }
        }
        _ => {
            let n = rng.below(input.len() + 1);
            input.truncate(n);
        }
    }
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ksalloc-fuzz-failures")
}

/// Runs `bytes`; on a panic saves and prints the input, then fails the test.
fn check(target: &str, what: &str, bytes: &[u8]) {
    let result = std::panic::catch_unwind(|| run_target(target, bytes));
    if let Err(panic) = result {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let dir = failures_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{target}-{hash:016x}"));
        let _ = std::fs::write(&file, bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        eprintln!(
            "{target}: {what} failed; input saved to {} ({hex})",
            file.display()
        );
        std::panic::resume_unwind(panic);
    }
}

fn seeds_of(target: &str) -> Vec<seeds::Seed> {
    seeds::all()
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, s)| s)
        .expect("target")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Seeds, then the saved corpus, then random and mutated inputs.
fn fuzz_stable(target: &str) {
    let seeds = seeds_of(target);
    for (name, bytes) in &seeds {
        check(target, name, bytes);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pool: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    // The generated seeds and anything else in corpus/<target>/, then the kept
    // reproducers (artifacts-kept/<target>/; those of open bugs that fail natively go
    // one level down, in open/, which this skips).
    let saved = [
        root.join("corpus").join(target),
        root.join("artifacts-kept").join(target),
    ];
    for file in saved.iter().flat_map(|dir| files_in(dir)) {
        let bytes = std::fs::read(&file).expect("corpus file");
        check(target, &file.display().to_string(), &bytes);
        pool.push(bytes);
    }
    let iters = env_u64("KSALLOC_FUZZ_ITERS", 2000);
    let mut rng = Rng(env_u64("KSALLOC_FUZZ_SEED", 1) | 1);
    for i in 0..iters {
        let input = if i % 4 == 0 {
            let len = rng.below(512);
            (0..len).map(|_| rng.byte()).collect()
        } else {
            let mut input = pool[rng.below(pool.len())].clone();
            for _ in 0..=rng.below(4) {
                mutate(&mut rng, &mut input);
            }
            input
        };
        check(target, &format!("iteration {i}"), &input);
    }
}

#[test]
fn ks_ioctl() {
    fuzz_stable("ks_ioctl");
}

#[test]
fn framing() {
    fuzz_stable("framing");
}

#[test]
fn create_allocator() {
    fuzz_stable("create_allocator");
}

#[test]
fn create_pin() {
    fuzz_stable("create_pin");
}

#[test]
fn request_sequence() {
    fuzz_stable("request_sequence");
}

#[test]
fn ksprobe_wire() {
    fuzz_stable("ksprobe_wire");
}

#[test]
fn every_target_has_seeds() {
    let all = seeds::all();
    assert_eq!(all.len(), TARGETS.len());
    for (target, seeds) in all {
        assert!(!seeds.is_empty(), "{target} has no seeds");
    }
}

#[test]
fn sequence_seeds_round_trip_through_arbitrary() {
    for (name, ops) in seeds::stories() {
        assert_eq!(
            crate::sequence::decode(&crate::sequence::encode(&ops)),
            ops,
            "{name}"
        );
    }
    for (name, bytes) in seeds::request_sequence() {
        let ops = crate::sequence::decode(&bytes);
        assert_eq!(crate::sequence::encode(&ops), bytes, "{name}");
    }
    let prefix = seeds::harness_prefix();
    assert_eq!(
        crate::sequence::decode(&crate::sequence::encode(&prefix)),
        prefix
    );
}

#[test]
fn ioctl_inputs_round_trip() {
    for (name, bytes) in seeds::ks_ioctl() {
        let parsed = crate::ioctl::Input::parse(&bytes);
        assert_eq!(parsed.encode(), bytes, "{name}");
    }
}

/// `KSALLOC_FUZZ_TRACE=1 KSALLOC_FUZZ_REPLAY=<target>:<file> cargo test replay -- --nocapture`
/// runs one input (a libFuzzer artifact, say) with the sequence trace.
#[test]
fn replay() {
    let Ok(spec) = std::env::var("KSALLOC_FUZZ_REPLAY") else {
        return;
    };
    let (target, file) = spec.split_once(':').expect("<target>:<file>");
    let bytes = std::fs::read(file).expect("input file");
    run_target(target, &bytes);
}

/// Regression test for a bug Miri found (not libFuzzer): `KsClient::function_table`
/// turned the FUNCTIONTABLE answer into function pointers with a bare
/// `transmute::<usize, _>`, so calling them had no provenance (undefined behaviour:
/// "pointer not dereferenceable ... it has no provenance"). Fixed by exposing the
/// provenance on the driver side and recovering it with `with_exposed_provenance`.
/// Natively it always passed; the check that matters is
/// `cargo +nightly miri test --manifest-path crates/ksalloc-fuzz/Cargo.toml --lib function_table_call`.
#[test]
fn function_table_call_has_provenance() {
    let graph = crate::common::Graph::new();
    let table = graph
        .client
        .function_table(&graph.allocator)
        .expect("function table");
    let frame = table.allocate_at_dispatch().expect("a frame");
    table.free_at_dispatch(frame);
    drop(table);
    graph.teardown();
}

mod kernel_address_check {
    //! `assert_no_kernel_address` judges what the driver wrote, not what the caller sent.

    use ks_abi::guid::KSPROPSETID_STREAM_ALLOCATOR;
    use ks_abi::ioctl::IOCTL_KS_PROPERTY;
    use ks_abi::ks::{property_type, stream_allocator};
    use ks_abi::NtStatus;
    use ksalloc_core::Platform;
    use ksalloc_model::client::request;
    use ksalloc_model::RequestorMode;

    use crate::common::{assert_no_kernel_address, Graph};

    #[test]
    fn addresses_the_caller_planted_and_the_driver_left_alone_are_not_a_leak() {
        let graph = Graph::new();
        let [allocate, free] = graph.kernel.function_table();
        // What libFuzzer learnt from the old whole-buffer scan: the table's addresses,
        // planted in the data buffer of a request the driver refuses.
        let sent = [allocate.to_le_bytes(), free.to_le_bytes()].concat();
        let irp = graph.client.driver().device_control(
            &graph.allocator,
            IOCTL_KS_PROPERTY,
            &request(
                &KSPROPSETID_STREAM_ALLOCATOR,
                stream_allocator::PROPERTY_FUNCTIONTABLE,
                property_type::GET,
                &[],
            ),
            &sent,
            RequestorMode::User,
        );
        assert_eq!(
            irp.completion().map(|c| c.status),
            Some(NtStatus::INVALID_DEVICE_REQUEST)
        );
        let received = irp.output();
        assert!(
            received.windows(8).any(|w| w == allocate.to_le_bytes()),
            "the old check scanned these echoed bytes and reported a leak"
        );
        assert_no_kernel_address(&graph.kernel, &sent, &received, "echo");
        graph.teardown();
    }

    #[test]
    fn a_frame_address_the_driver_wrote_is_caught() {
        let graph = Graph::new();
        let frame = ksalloc_model::driver::at_dispatch(|| graph.engine().table_allocate())
            .expect("a free frame");
        let sent = [0u8; 16];
        let mut received = sent;
        received[3..11].copy_from_slice(&frame.to_le_bytes());
        let caught = std::panic::catch_unwind(|| {
            assert_no_kernel_address(&graph.kernel, &sent, &received, "leak");
        });
        assert!(caught.is_err(), "a frame address in driver-written bytes");
        ksalloc_model::driver::at_dispatch(|| graph.engine().free(frame)).expect("held");
        graph.teardown();
    }
}

/// libFuzzer's find in CI (create_allocator, 2026-12-04): 4 frames of 64 MiB is a valid
/// framing of exactly the budget, refused because the graph's own allocator already
/// holds part of it. The oracle must expect STATUS_INSUFFICIENT_RESOURCES.
#[test]
fn a_create_past_the_remaining_budget_is_refused() {
    crate::create::run_allocator(&[
        32, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
}
