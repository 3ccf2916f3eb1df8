#![no_main]
//! See `ksalloc_fuzz::sequence` for the input format and invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ksalloc_fuzz::sequence::run(data);
});
