//! Histogram values: [`HistogramSummary`], buckets merged over a window (with quantiles within
//! one bucket), and `HistogramDelta`, one stored interval's buckets.

use std::sync::Arc;

/// A histogram aggregated over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSummary {
    /// Explicit bucket upper bounds.
    pub bounds: Vec<f64>,
    /// Counts per bucket (`bounds.len() + 1`).
    pub counts: Vec<u64>,
    /// Number of values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value, when known for the window (delta temporality or a single interval).
    pub min: Option<f64>,
    /// Largest value, when known.
    pub max: Option<f64>,
}

impl HistogramSummary {
    /// Quantile by linear interpolation inside the bucket holding the rank.
    ///
    /// Error bound: the true value lies in the same bucket, so the error is at most that bucket's
    /// width (for the open-ended last bucket the estimate is the bucket's lower bound, or `max`).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lower = if i == 0 {
                    self.min
                        .unwrap_or(0.0)
                        .min(self.bounds.first().copied().unwrap_or(0.0))
                } else {
                    match self.bounds.get(i - 1) {
                        Some(&b) => b,
                        // More buckets than bounds: malformed input, nothing to interpolate.
                        None => return self.max.or(self.bounds.last().copied()),
                    }
                };
                let upper = match self.bounds.get(i) {
                    Some(&b) => b,
                    None => return Some(self.max.unwrap_or(lower)),
                };
                let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                let mut v = lower + (upper - lower) * frac;
                if let Some(min) = self.min {
                    v = v.max(min)
                }
                if let Some(max) = self.max {
                    v = v.min(max)
                }
                return Some(v);
            }
            seen += c;
        }
        self.max
    }

    /// Mean of the values.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// [`Self::absorb`] of one stored interval, without copying it first.
    pub(in crate::analyzer) fn absorb_delta(&mut self, other: &HistogramDelta) -> bool {
        self.add(
            &other.bounds,
            &other.counts,
            other.count,
            other.sum,
            other.min,
            other.max,
        )
    }

    /// Adds `other`'s values; a histogram with other bucket bounds is skipped (`false`).
    /// Min and max stay known only while both sides know them.
    pub(in crate::analyzer) fn absorb(&mut self, other: &HistogramSummary) -> bool {
        self.add(
            &other.bounds,
            &other.counts,
            other.count,
            other.sum,
            other.min,
            other.max,
        )
    }

    fn add(
        &mut self,
        bounds: &[f64],
        counts: &[u64],
        count: u64,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
    ) -> bool {
        if self.bounds[..] != *bounds || self.counts.len() != counts.len() {
            return false;
        }
        for (a, c) in self.counts.iter_mut().zip(counts) {
            *a += c;
        }
        self.count += count;
        self.sum += sum;
        self.min = self.min.zip(min).map(|(a, b)| a.min(b));
        self.max = self.max.zip(max).map(|(a, b)| a.max(b));
        true
    }
}

#[derive(Debug, Clone)]
pub(in crate::analyzer) struct HistogramDelta {
    pub(in crate::analyzer) bounds: Arc<[f64]>,
    pub(in crate::analyzer) counts: Vec<u64>,
    pub(in crate::analyzer) count: u64,
    pub(in crate::analyzer) sum: f64,
    pub(in crate::analyzer) min: Option<f64>,
    pub(in crate::analyzer) max: Option<f64>,
}

impl HistogramDelta {
    /// The delta as a summary of its own.
    pub(in crate::analyzer) fn summary(&self) -> HistogramSummary {
        HistogramSummary {
            bounds: self.bounds.to_vec(),
            counts: self.counts.clone(),
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
        }
    }
}
