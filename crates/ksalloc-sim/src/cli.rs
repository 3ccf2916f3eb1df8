//! The command line: flags, their parsing, and the step to a checked [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{ArgError, Config, Stop};

const AFTER_HELP: &str = "\
The graph: a filter with an input pin (the source's connection, which gets the one \
allocator) and an output pin (renegotiated every --renegotiate-ms with a short-lived \
allocator). Producers allocate through the FUNCTIONTABLE routines at DISPATCH_LEVEL, fill \
each frame with a pattern and its sequence number, and pass it to the sink, which holds it \
for --hold-us, checks the pattern and frees it at DISPATCH_LEVEL. When the pool is empty a \
producer counts the failure and waits on its FREEFRAME event. A second client allocates \
with the ALLOC method; its IRPs pend while the pool is dry.

--fault-rate fails that share of nonpaged pool allocations. Only allocator creation \
allocates pool, so the faults hit the renegotiation allocators (the graph itself is built \
before faults are on): each refused creation must return STATUS_INSUFFICIENT_RESOURCES and \
leave the pool as it was.

Exit status: 0 when every check passes, 1 when a check fails or the graph cannot be \
built, 2 for bad arguments.";

/// ksalloc-sim: stream frames through the real ksalloc core on the model kernel.
#[derive(Debug, Parser)]
#[command(name = "ksalloc-sim", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// Frames the allocator preallocates (KSALLOCATOR_FRAMING.Frames).
    #[arg(long, default_value_t = Config::default().frames)]
    pub frames: u32,

    /// Bytes per frame; K, M suffixes are binary (4K = 4096).
    #[arg(long, value_name = "BYTES", default_value = "4096", value_parser = parse_size)]
    pub frame_size: u32,

    /// Frame alignment in bytes, a power of two up to 4096 (sent as FILE_*_ALIGNMENT,
    /// that is alignment - 1).
    #[arg(long, value_name = "BYTES", default_value_t = Config::default().alignment)]
    pub alignment: u32,

    /// Source threads allocating through the function table.
    #[arg(long, default_value_t = Config::default().producers)]
    pub producers: usize,

    /// How long the sink (and the ALLOC client) holds each frame, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 500)]
    pub hold_us: u64,

    /// Run time in seconds (fractions allowed).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 5.0,
        conflicts_with = "count",
        allow_negative_numbers = true
    )]
    pub duration: f64,

    /// Stop after the sink has freed this many frames, instead of after --duration.
    #[arg(long, value_name = "FRAMES")]
    pub count: Option<u64>,

    /// Probability (0..1) that a nonpaged pool allocation fails.
    #[arg(
        long,
        value_name = "P",
        default_value_t = Config::default().fault_rate,
        allow_negative_numbers = true
    )]
    pub fault_rate: f64,

    /// Seed of the fault injection.
    #[arg(long, default_value_t = Config::default().seed)]
    pub seed: u64,

    /// Cancel every N-th ALLOC request that pends (0: never).
    #[arg(long, value_name = "N", default_value_t = Config::default().cancel_every)]
    pub cancel_every: u64,

    /// Send a FREE with a bad pointer (into the middle of a held frame, or into no
    /// frame) after every N-th ALLOC frame (0: never); the driver must refuse each.
    #[arg(long, value_name = "N", default_value_t = Config::default().bad_free_every)]
    pub bad_free_every: u64,

    /// Period of the output pin's allocator renegotiation, in milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = 25)]
    pub renegotiate_ms: u64,

    /// Print the summary as JSON on stdout (no progress line).
    #[arg(long)]
    pub json: bool,

    /// Write an SVG: pool occupancy over time and the latency histograms.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// `4096`, `4K`, `4KiB`, `1M`, `1MiB` (binary multiples), fitting a `ULONG`.
fn parse_size(text: &str) -> Result<u32, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let (digits, multiplier) = [("KIB", 1u64 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30)]
        .iter()
        .chain(&[("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)])
        .find_map(|&(suffix, m)| upper.strip_suffix(suffix).map(|d| (d.trim(), m)))
        .unwrap_or((upper.as_str(), 1));
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size in bytes (e.g. 4096, 4K, 1M)"))?;
    number
        .checked_mul(multiplier)
        .and_then(|bytes| u32::try_from(bytes).ok())
        .ok_or_else(|| {
            "frame size must fit KSALLOCATOR_FRAMING.FrameSize, a ULONG (at most 4294967295 \
             bytes)"
                .to_owned()
        })
}

impl Args {
    /// The run these flags ask for, checked.
    ///
    /// # Errors
    /// The first flag whose value breaks a rule.
    pub fn to_config(&self) -> Result<Config, ArgError> {
        let stop =
            match self.count {
                Some(frames) => Stop::Frames(frames),
                None => Stop::After(Duration::try_from_secs_f64(self.duration).map_err(|_| {
                    ArgError {
                        flag: "--duration",
                        value: self.duration.to_string(),
                        rule: "duration must be a positive number of seconds".to_owned(),
                    }
                })?),
            };
        let config = Config {
            frames: self.frames,
            frame_size: self.frame_size,
            alignment: self.alignment,
            producers: self.producers,
            hold: Duration::from_micros(self.hold_us),
            stop,
            fault_rate: self.fault_rate,
            seed: self.seed,
            cancel_every: self.cancel_every,
            bad_free_every: self.bad_free_every,
            renegotiate_every: Duration::from_millis(self.renegotiate_ms),
            ..Config::default()
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4kib"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64B"), Ok(64));
        assert!(parse_size("4G").unwrap_err().contains("ULONG"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }

    #[test]
    fn no_flags_is_the_default_config() {
        let args = Args::parse_from(["ksalloc-sim"]);
        assert_eq!(args.to_config().unwrap(), Config::default());
    }

    #[test]
    fn count_replaces_duration() {
        let args = Args::parse_from(["ksalloc-sim", "--count", "100"]);
        assert_eq!(args.to_config().unwrap().stop, Stop::Frames(100));
        assert!(Args::try_parse_from(["ksalloc-sim", "--count", "1", "--duration", "2"]).is_err());
    }

    #[test]
    fn clap_metadata_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
