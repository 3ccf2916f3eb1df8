#!/usr/bin/env bash
# The short fuzz pass for .ci/run: the stable harness always, then every cargo-fuzz
# target for KSALLOC_FUZZ_SECONDS (default 30) when a nightly toolchain is installed.
# A crash fails the run; its input is in crates/ksalloc-fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${KSALLOC_FUZZ_SECONDS:-30}"

echo "== fuzz: stable harness (seeds, corpus, ${KSALLOC_FUZZ_ITERS:-2000} random/mutated inputs per target)"
cargo test --manifest-path crates/ksalloc-fuzz/Cargo.toml --lib

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "== fuzz: no nightly toolchain, libFuzzer pass skipped"
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export CARGO_TARGET_DIR="$PWD/target/fuzz"
cargo +nightly fuzz build --fuzz-dir crates/ksalloc-fuzz
mkdir -p target/fuzz-logs
for t in $(cargo +nightly fuzz list --fuzz-dir crates/ksalloc-fuzz); do
    mkdir -p "target/fuzz-corpus/$t"
    log="target/fuzz-logs/$t.log"
    # Scratch corpus first (new units go there), the committed seeds second.
    if cargo +nightly fuzz run --fuzz-dir crates/ksalloc-fuzz "$t" "target/fuzz-corpus/$t" "crates/ksalloc-fuzz/corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
        echo "fuzz $t: ${execs} execs in ${secs} s (${rate} exec/s), no crash"
    else
        tail -n 60 "$log"
        echo "fuzz $t: FAILED (input in crates/ksalloc-fuzz/artifacts/$t/)"
        exit 1
    fi
done
