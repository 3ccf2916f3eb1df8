//! A log-linear latency histogram: fixed memory, O(1) record, ~3 % bucket width.
//!
//! Values (nanoseconds) below 64 get a bucket each; above that every power of two is
//! split into 32 equal sub-buckets, so a bucket is at most 1/32 of its value wide. Each
//! thread records into its own histogram; the scenario merges them at the end.

use std::time::Duration;

use serde::Serialize;

/// Sub-buckets per power of two (5 bits of precision).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for every `u64`: the exact ones below `2 * SUB`, then `SUB` per power of two.
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// A histogram of durations in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    samples: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("samples", &self.samples)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// Bucket of a value.
#[allow(clippy::cast_possible_truncation)] // Results are below BUCKETS.
const fn index(value: u64) -> usize {
    if value < (2 * SUB) as u64 {
        return value as usize;
    }
    let exp = value.ilog2();
    let mantissa = (value >> (exp - SUB_BITS)) as usize; // in SUB..2*SUB
    (exp - SUB_BITS) as usize * SUB + mantissa
}

/// Smallest and largest value of a bucket.
#[allow(clippy::cast_possible_truncation)] // `index / SUB` is at most 60.
const fn bounds(index: usize) -> (u64, u64) {
    if index < 2 * SUB {
        return (index as u64, index as u64);
    }
    let shift = (index / SUB - 1) as u32;
    let mantissa = (index % SUB + SUB) as u64;
    let low = mantissa << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// Nanoseconds in a duration, saturating.
#[must_use]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One bar of a histogram: values in `[low, high]` and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// Smallest value of the bucket (ns).
    pub low: u64,
    /// Largest value of the bucket (ns).
    pub high: u64,
    /// Samples in it.
    pub count: u64,
}

/// The percentiles the summary reports, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest sample (exact).
    pub max_ns: u64,
    /// Mean (exact).
    pub mean_ns: u64,
}

impl Histogram {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            samples: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value (ns).
    pub fn record_ns(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.samples += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Records one duration.
    pub fn record(&mut self, value: Duration) {
        self.record_ns(nanos(value));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.samples += other.samples;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Samples recorded.
    #[must_use]
    pub const fn samples(&self) -> u64 {
        self.samples
    }

    /// Smallest sample, if any.
    #[must_use]
    pub const fn min(&self) -> Option<u64> {
        if self.samples == 0 {
            None
        } else {
            Some(self.min)
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the upper bound of the bucket holding
    /// that sample, clamped to the exact extremes. 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bounds(i).1.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// p50 / p90 / p99 / max / mean.
    #[must_use]
    pub fn percentiles(&self) -> Percentiles {
        let mean = if self.samples == 0 {
            0
        } else {
            u64::try_from(self.sum / u128::from(self.samples)).unwrap_or(u64::MAX)
        };
        Percentiles {
            samples: self.samples,
            p50_ns: self.quantile(0.50),
            p90_ns: self.quantile(0.90),
            p99_ns: self.quantile(0.99),
            max_ns: self.max,
            mean_ns: mean,
        }
    }

    /// The non-empty buckets, smallest first.
    #[must_use]
    pub fn bars(&self) -> Vec<Bar> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &count)| count > 0)
            .map(|(i, &count)| {
                let (low, high) = bounds(i);
                Bar { low, high, count }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_whole_range() {
        let mut expected_low = 0;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, expected_low, "bucket {i} starts where {} ended", i - 1);
            assert!(high >= low);
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            expected_low = high.wrapping_add(1);
        }
        assert_eq!(expected_low, 0, "the last bucket ends at u64::MAX");
    }

    #[test]
    fn buckets_are_narrow() {
        for value in [100u64, 1_000, 123_456, 9_999_999, u64::MAX / 3] {
            let (low, high) = bounds(index(value));
            assert!((high - low) * 32 <= low, "{value}: [{low}, {high}]");
        }
    }

    #[test]
    fn percentiles_of_a_known_set() {
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record_ns(v * 1000);
        }
        let p = h.percentiles();
        assert_eq!(p.samples, 1000);
        assert_eq!(p.max_ns, 1_000_000);
        assert_eq!(p.mean_ns, 500_500);
        for (got, want) in [
            (p.p50_ns, 500_000),
            (p.p90_ns, 900_000),
            (p.p99_ns, 990_000),
        ] {
            assert!(got >= want && got <= want + want / 32, "{got} vs {want}");
        }
    }

    #[test]
    fn merge_adds_up() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.record_ns(5);
        b.record_ns(7_000);
        b.record_ns(3);
        a.merge(&b);
        assert_eq!(a.samples(), 3);
        assert_eq!(a.min(), Some(3));
        assert_eq!(a.percentiles().max_ns, 7_000);
        assert_eq!(a.bars().iter().map(|bar| bar.count).sum::<u64>(), 3);
    }

    #[test]
    fn empty_is_all_zero() {
        let h = Histogram::new();
        assert_eq!(h.percentiles(), Percentiles::default());
        assert!(h.bars().is_empty());
        assert_eq!(h.min(), None);
    }
}
