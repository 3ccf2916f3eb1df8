#![no_main]
//! See `ksalloc_fuzz::create` for the input format and invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ksalloc_fuzz::create::run_pin(data);
});
