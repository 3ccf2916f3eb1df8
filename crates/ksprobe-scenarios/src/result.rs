//! What a scenario reports: pass or fail with a reason, a status and two values, and
//! its timings. Fixed-size, so the driver can return it through a buffered IOCTL.

use core::fmt;

use ks_abi::NtStatus;

use crate::scenario::ScenarioId;

/// Bytes a [`Text`] holds.
pub const TEXT_CAPACITY: usize = 91;

/// A short UTF-8 text of at most [`TEXT_CAPACITY`] bytes (longer input is cut at a
/// character boundary).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text {
    len: u8,
    bytes: [u8; TEXT_CAPACITY],
}

impl Text {
    /// The empty text.
    pub const EMPTY: Self = Self {
        len: 0,
        bytes: [0; TEXT_CAPACITY],
    };

    /// `s`, cut to [`TEXT_CAPACITY`] bytes at a character boundary.
    #[must_use]
    pub fn new(s: &str) -> Self {
        let mut end = s.len().min(TEXT_CAPACITY);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Self::from_utf8(&s.as_bytes()[..end])
    }

    /// Text from bytes that must be UTF-8 (the wire decoder's entry); invalid UTF-8 is
    /// cut at the first bad byte.
    #[must_use]
    pub fn from_utf8(bytes: &[u8]) -> Self {
        let bytes = &bytes[..bytes.len().min(TEXT_CAPACITY)];
        let valid = match core::str::from_utf8(bytes) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        let mut out = Self::EMPTY;
        out.bytes[..valid].copy_from_slice(&bytes[..valid]);
        #[allow(clippy::cast_possible_truncation)] // valid <= TEXT_CAPACITY < 256.
        {
            out.len = valid as u8;
        }
        out
    }

    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Constructed only from valid UTF-8 prefixes.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether it is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw bytes (for the wire encoder).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scenario failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, in a few words.
    pub reason: Text,
    /// The status involved, if any (what a call returned).
    pub status: Option<NtStatus>,
    /// Two values that locate the failure (which frame, which index, expected vs got);
    /// their meaning is in the reason.
    pub values: [u64; 2],
}

impl Failure {
    /// A failure with a reason only.
    #[must_use]
    pub fn new(reason: &str) -> Self {
        Self {
            reason: Text::new(reason),
            status: None,
            values: [0; 2],
        }
    }

    /// A failure caused by a call returning `status`.
    #[must_use]
    pub fn status(reason: &str, status: NtStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::new(reason)
        }
    }

    /// With two locating values.
    #[must_use]
    pub const fn with_values(mut self, a: u64, b: u64) -> Self {
        self.values = [a, b];
        self
    }
}

/// Pass or fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Pass,
    /// A check did not hold.
    Fail(Failure),
}

impl Outcome {
    /// Whether it passed.
    #[must_use]
    pub const fn passed(&self) -> bool {
        matches!(self, Self::Pass)
    }
}

/// Latencies of repeated operations, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// How many samples.
    pub samples: u32,
    /// Fastest.
    pub min_ns: u64,
    /// Median.
    pub median_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Slowest.
    pub max_ns: u64,
}

impl Timings {
    /// Summarises `samples` (sorted in place). `None` when there are none.
    #[must_use]
    pub fn from_samples(samples: &mut [u64]) -> Option<Self> {
        samples.sort_unstable();
        let n = samples.len();
        let (&min_ns, &max_ns) = (samples.first()?, samples.last()?);
        Some(Self {
            samples: u32::try_from(n).unwrap_or(u32::MAX),
            min_ns,
            median_ns: samples[n / 2],
            p99_ns: samples[(n * 99 / 100).min(n - 1)],
            max_ns,
        })
    }
}

/// One scenario's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    /// Which scenario.
    pub id: ScenarioId,
    /// Pass or fail.
    pub outcome: Outcome,
    /// Wall time of the whole scenario, set-up and tear-down included.
    pub elapsed_ns: u64,
    /// Latencies the scenario measured, if it measures any.
    pub timings: Option<Timings>,
    /// Something worth knowing even on a pass (e.g. a check this client cannot make).
    pub note: Text,
}

impl ScenarioResult {
    /// The scenario's name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        self.id.name()
    }

    /// Whether it passed.
    #[must_use]
    pub const fn passed(&self) -> bool {
        self.outcome.passed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cuts_at_a_char_boundary() {
        let long = "é".repeat(60); // 120 bytes
        let t = Text::new(&long);
        assert_eq!(
            t.as_str().len(),
            90,
            "45 two-byte characters fit in 91 bytes"
        );
        assert_eq!(Text::new("short").as_str(), "short");
        assert_eq!(Text::from_utf8(&[b'a', 0xff, b'b']).as_str(), "a");
    }

    #[test]
    fn timings_summarise() {
        let mut s = [5, 1, 3, 2, 4];
        let t = Timings::from_samples(&mut s).unwrap();
        assert_eq!(
            (t.samples, t.min_ns, t.median_ns, t.p99_ns, t.max_ns),
            (5, 1, 3, 5, 5)
        );
        assert_eq!(Timings::from_samples(&mut []), None);
    }
}
