//! What a run is asked to do, and the rules its values must meet.
//!
//! Framing values (frames, frame size, alignment) are checked by
//! [`ksalloc_core::framing::Framing::validate`], the very rules the driver applies to a
//! `KsCreateAllocator`; the message names the flag and quotes the rule.

use std::fmt;
use std::time::Duration;

use ks_abi::ks::{allocator_flags, pool_type, KsAllocatorFraming};
use ksalloc_core::allocator::MAX_CLIENT_EVENTS;
use ksalloc_core::framing::{Framing, FramingError};

/// When a run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// After this much wall time.
    After(Duration),
    /// After the sink has freed this many frames.
    Frames(u64),
}

/// A run of the simulator.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Frames the allocator preallocates (`KSALLOCATOR_FRAMING.Frames`).
    pub frames: u32,
    /// Bytes per frame (`FrameSize`).
    pub frame_size: u32,
    /// Frame alignment in bytes (a power of two); the framing carries `alignment - 1`.
    pub alignment: u32,
    /// Source threads allocating through the function table.
    pub producers: usize,
    /// How long the sink (and the ALLOC client) holds each frame.
    pub hold: Duration,
    /// When to stop.
    pub stop: Stop,
    /// Probability that a pool allocation fails (0 = off); see the renegotiation role.
    pub fault_rate: f64,
    /// Seed of the fault injection.
    pub seed: u64,
    /// Cancel every n-th ALLOC request that pends (0 = never).
    pub cancel_every: u64,
    /// Send a FREE with a bad pointer after every n-th ALLOC frame (0 = never).
    pub bad_free_every: u64,
    /// Period of the renegotiation role (a short-lived allocator on the output pin).
    pub renegotiate_every: Duration,
    /// Period of the pool-occupancy samples.
    pub sample_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            frames: 32,
            frame_size: 4096,
            alignment: 64,
            producers: 2,
            hold: Duration::from_micros(500),
            stop: Stop::After(Duration::from_secs(5)),
            fault_rate: 0.05,
            seed: 1,
            cancel_every: 8,
            bad_free_every: 1000,
            renegotiate_every: Duration::from_millis(25),
            sample_every: Duration::from_millis(10),
        }
    }
}

/// Largest hold time accepted (a frame held longer starves the graph for nothing).
pub const MAX_HOLD: Duration = Duration::from_secs(10);
/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A value that breaks a rule: which flag, what was given, which rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError {
    /// The flag, e.g. `--frames`.
    pub flag: &'static str,
    /// The value as the user wrote it (or as the run computed it).
    pub value: String,
    /// The rule it breaks.
    pub rule: String,
}

impl ArgError {
    fn new(flag: &'static str, value: impl fmt::Display, rule: impl Into<String>) -> Self {
        Self {
            flag,
            value: value.to_string(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value '{}' for '{}': {}",
            self.value, self.flag, self.rule
        )
    }
}

impl std::error::Error for ArgError {}

impl Config {
    /// The `KSALLOCATOR_FRAMING` the source pin asks the allocator for.
    #[must_use]
    pub const fn framing(&self) -> KsAllocatorFraming {
        KsAllocatorFraming {
            options_flags: allocator_flags::REQUIREMENTF_SYSTEM_MEMORY,
            pool_type: pool_type::NON_PAGED,
            frames: self.frames,
            frame_size: self.frame_size,
            // FILE_*_ALIGNMENT: 0 wraps to u32::MAX, which the driver's rule refuses.
            file_alignment: self.alignment.wrapping_sub(1),
            reserved: 0,
        }
    }

    /// Checks every value; returns the framing as the driver will see it.
    ///
    /// # Errors
    /// The first value that breaks a rule, naming its flag.
    pub fn validate(&self) -> Result<Framing, ArgError> {
        let framing = Framing::validate(&self.framing()).map_err(|e| self.framing_error(e))?;
        if self.producers == 0 || self.producers > MAX_CLIENT_EVENTS {
            return Err(ArgError::new(
                "--producers",
                self.producers,
                format!(
                    "producers must be between 1 and {MAX_CLIENT_EVENTS} (each enables its \
                     own FREEFRAME event; an allocator accepts {MAX_CLIENT_EVENTS})"
                ),
            ));
        }
        if self.hold > MAX_HOLD {
            return Err(ArgError::new(
                "--hold-us",
                self.hold.as_micros(),
                format!("hold time must be at most {} us", MAX_HOLD.as_micros()),
            ));
        }
        match self.stop {
            Stop::After(d) if d.is_zero() || d > MAX_DURATION => {
                return Err(ArgError::new(
                    "--duration",
                    d.as_secs_f64(),
                    format!(
                        "duration must be more than 0 and at most {} seconds",
                        MAX_DURATION.as_secs()
                    ),
                ));
            }
            Stop::Frames(0) => {
                return Err(ArgError::new(
                    "--count",
                    0,
                    "count must be at least 1 frame",
                ));
            }
            _ => {}
        }
        if !(0.0..=1.0).contains(&self.fault_rate) {
            return Err(ArgError::new(
                "--fault-rate",
                self.fault_rate,
                "fault rate is a probability: between 0 and 1",
            ));
        }
        Ok(framing)
    }

    /// Which flag a framing rule is about.
    fn framing_error(&self, error: FramingError) -> ArgError {
        let rule = error.rule();
        match error {
            FramingError::ZeroFrames | FramingError::TooManyFrames => {
                ArgError::new("--frames", self.frames, rule)
            }
            FramingError::ZeroFrameSize => ArgError::new("--frame-size", self.frame_size, rule),
            FramingError::BadAlignment => ArgError::new(
                "--alignment",
                self.alignment,
                format!("{rule} (give the alignment in bytes: 1, 2, 4, ... 4096)"),
            ),
            FramingError::Overflow | FramingError::TooLarge => ArgError::new(
                "--frames x --frame-size",
                format!("{} x {}", self.frames, self.frame_size),
                format!("{rule} (frame size rounded up to the alignment)"),
            ),
            // The sim always asks for nonpaged system memory with valid options.
            FramingError::UnknownOptions
            | FramingError::UnknownPoolType
            | FramingError::PagedPool
            | FramingError::ReservedNotZero => ArgError::new("framing", "", rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        let framing = Config::default().validate().unwrap();
        assert_eq!(framing.frames(), 32);
        assert_eq!(framing.align(), 64);
    }

    #[test]
    fn framing_errors_name_their_flag_and_the_drivers_rule() {
        let cases = [
            (
                Config {
                    frames: 0,
                    ..Config::default()
                },
                "--frames",
                FramingError::ZeroFrames,
            ),
            (
                Config {
                    frame_size: 0,
                    ..Config::default()
                },
                "--frame-size",
                FramingError::ZeroFrameSize,
            ),
            (
                Config {
                    alignment: 48,
                    ..Config::default()
                },
                "--alignment",
                FramingError::BadAlignment,
            ),
            (
                Config {
                    alignment: 0,
                    ..Config::default()
                },
                "--alignment",
                FramingError::BadAlignment,
            ),
            (
                Config {
                    frames: 1 << 20,
                    frame_size: 1 << 20,
                    ..Config::default()
                },
                "--frames x --frame-size",
                FramingError::TooLarge,
            ),
        ];
        for (config, flag, error) in cases {
            let got = config.validate().unwrap_err();
            assert_eq!(got.flag, flag);
            assert!(got.rule.starts_with(error.rule()), "{got}");
        }
    }

    #[test]
    fn other_rules_name_their_flag() {
        let producers = Config {
            producers: 0,
            ..Config::default()
        };
        assert_eq!(producers.validate().unwrap_err().flag, "--producers");
        let count = Config {
            stop: Stop::Frames(0),
            ..Config::default()
        };
        assert_eq!(count.validate().unwrap_err().flag, "--count");
        let rate = Config {
            fault_rate: 1.5,
            ..Config::default()
        };
        assert_eq!(rate.validate().unwrap_err().flag, "--fault-rate");
    }
}
