#![no_main]
//! See `ksalloc_fuzz::probe_wire` for the input format and invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ksalloc_fuzz::probe_wire::run(data);
});
