//! ksalloc-sim: a KS graph on the model kernel, streaming frames through the real
//! ksalloc core and its KS dispatcher, with real threads.
//!
//! The library is the whole simulator; `main.rs` only parses flags and prints.
//!
//! | module | one idea |
//! |---|---|
//! | [`cli`] | the flags and their parsing |
//! | [`config`] | a run's parameters and the rules they must meet |
//! | [`graph`] | the KS graph: filter, pins, allocator, function table |
//! | [`roles`] | the threads: producers, sink, ALLOC client, renegotiation |
//! | [`frame`] | what a frame carries, and its check |
//! | [`scenario`] | one run: start, watch, stop, tear down |
//! | [`histogram`] | latency histograms and percentiles |
//! | [`summary`] | the figures of a run and the checks between them |
//! | [`report`] | progress line, summary table, JSON |
//! | [`plot`] | the SVG picture |

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod frame;
pub mod graph;
pub mod histogram;
pub mod plot;
pub mod report;
pub mod roles;
pub mod scenario;
pub mod summary;

pub use config::{ArgError, Config, Stop};
pub use scenario::{run, Outcome, Progress, RunError};
pub use summary::Summary;
