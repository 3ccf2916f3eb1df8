//! Fuzz harnesses for every ksalloc decoder that takes bytes from a caller.
//!
//! Each module is one target: a `run(&[u8])` that never returns an error, only panics
//! when an invariant breaks (the model kernel panics too, on any kernel-rule violation:
//! an IRP completed twice, a write past a caller's buffer, a wrong IRQL, a pool block
//! freed twice). The same functions are driven three ways:
//!
//! - by libFuzzer, through `fuzz_targets/*.rs` (`cargo +nightly fuzz run <target>`);
//! - by the stable fallback, `cargo test --manifest-path crates/ksalloc-fuzz/Cargo.toml`: the seed corpus,
//!   every kept artifact, and a deterministic stream of random inputs per target
//!   (`KSALLOC_FUZZ_ITERS`, default 2000 each);
//! - by `examples/seeds.rs`, which writes the seed corpora from the bad-input catalogue.
//!
//! | target | input | decoder under test |
//! |---|---|---|
//! | [`ioctl`] | header + KS request + data buffer | `ks::dispatch::device_control` via the model driver |
//! | [`framing`] | `KSALLOCATOR_FRAMING` bytes (+ an _EX item count) | `wire::framing`, `Framing::validate`, `KsAllocatorFramingEx::blob_size` |
//! | [`create`] (`create_allocator`) | allocator create name / framing, relative to a pin | `ks::create` |
//! | [`create`] (`create_pin`) | pin create name / `KSPIN_CONNECT` + `KSDATAFORMAT`, relative to the filter | `ks::create` |
//! | [`sequence`] | `arbitrary` sequence of ops | the whole object model, against a reference model |
//! | [`probe_wire`] | ksprobe's request / response bytes | `ksprobe_scenarios::wire` |

pub mod common;
pub mod create;
pub mod framing;
pub mod ioctl;
pub mod probe_wire;
pub mod seeds;
pub mod sequence;

#[cfg(test)]
mod tests;
