#![no_main]
//! See `ksalloc_fuzz::framing` for the input format and invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ksalloc_fuzz::framing::run(data);
});
