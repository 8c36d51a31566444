//! A relative-error quantile sketch (the DDSketch construction) for durations and other positive values.
//!
//! Why not a crate: the maintained sketch crates either allocate per insert, lack merge of sparse
//! stores, or pull in a dependency tree larger than the sketch. This one is ~100 lines, sparse,
//! mergeable, and its error bound is proved by construction and tested against exact values.
//!
//! Guarantee: for any quantile `q`, the returned value `v̂` satisfies `|v̂ - v| <= ALPHA * v` where
//! `v` is an element of the data whose rank is the nearest rank for `q` (values at or below
//! [`MIN_VALUE`] are counted in a zero bucket and reported as 0).

/// Relative accuracy of every quantile estimate.
pub const ALPHA: f64 = 0.01;
/// Values at or below this are counted as zero.
pub const MIN_VALUE: f64 = 1e-9;

const GAMMA: f64 = (1.0 + ALPHA) / (1.0 - ALPHA);

/// A mergeable quantile sketch with relative error [`ALPHA`].
///
/// ```
/// use genscope::analyzer::Sketch;
/// let mut s = Sketch::default();
/// for ms in 1..=1000 { s.insert(ms as f64 / 1000.0); }
/// let p99 = s.quantile(0.99).unwrap();
/// assert!((p99 - 0.990).abs() <= 0.01 * 0.990 + 1e-12);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// Sorted by bucket index; sparse.
    buckets: Vec<(i32, u64)>,
    zero_count: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

fn ln_gamma() -> f64 {
    GAMMA.ln()
}

impl Sketch {
    /// Adds one value. Negative and non-finite values are ignored (durations are never negative).
    pub fn insert(&mut self, value: f64) {
        self.insert_n(value, 1);
    }

    /// Adds `n` copies of `value`.
    pub fn insert_n(&mut self, value: f64, n: u64) {
        if !value.is_finite() || value < 0.0 || n == 0 {
            return;
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += n;
        self.sum += value * n as f64;
        if value <= MIN_VALUE {
            self.zero_count += n;
            return;
        }
        let index = (value.ln() / ln_gamma()).ceil() as i32;
        match self.buckets.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(pos) => self.buckets[pos].1 += n,
            Err(pos) => self.buckets.insert(pos, (index, n)),
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
        self.zero_count += other.zero_count;
        for &(index, n) in &other.buckets {
            match self.buckets.binary_search_by_key(&index, |(i, _)| *i) {
                Ok(pos) => self.buckets[pos].1 += n,
                Err(pos) => self.buckets.insert(pos, (index, n)),
            }
        }
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of values.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Smallest value, exact.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, exact.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Mean, exact.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The `q` quantile (0..=1) within relative error [`ALPHA`], clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // Nearest rank, 0-based.
        let rank = ((q * (self.count - 1) as f64).round()) as u64;
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for &(index, n) in &self.buckets {
            seen += n;
            if seen > rank {
                // Bucket i holds (gamma^(i-1), gamma^i]; this estimate is within ALPHA of both ends.
                let estimate = 2.0 * GAMMA.powi(index) / (GAMMA + 1.0);
                return Some(estimate.clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Approximate memory held, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(i32, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[((q * (sorted.len() - 1) as f64).round()) as usize]
    }

    #[test]
    fn error_bound_holds_against_exact_quantiles() {
        // A skewed, multi-decade distribution (log-normal-ish via a deterministic generator).
        let mut x: u64 = 0x2545F4914F6CDD1D;
        let mut values = Vec::new();
        let mut s = Sketch::default();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = 0.001 * (8.0 * u).exp(); // 1 ms .. ~3 s
            values.push(v);
            s.insert(v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let truth = exact(&values, q);
            let est = s.quantile(q).unwrap();
            assert!(
                (est - truth).abs() <= ALPHA * truth + 1e-12,
                "q={q} est={est} truth={truth}"
            );
        }
        assert_eq!(s.count(), 20_000);
        assert_eq!(s.min(), Some(values[0]));
        assert_eq!(s.max(), Some(values[values.len() - 1]));
    }

    #[test]
    fn merge_equals_inserting_everything() {
        let mut a = Sketch::default();
        let mut b = Sketch::default();
        let mut all = Sketch::default();
        for i in 0..500 {
            let v = (i as f64 + 1.0) * 0.37;
            if i % 3 == 0 {
                a.insert(v)
            } else {
                b.insert(v)
            }
            all.insert(v);
        }
        a.merge(&b);
        for q in [0.1, 0.5, 0.99] {
            assert_eq!(a.quantile(q), all.quantile(q));
        }
        assert_eq!(a.count(), all.count());
    }

    #[test]
    fn zeros_negative_and_nan() {
        let mut s = Sketch::default();
        s.insert(0.0);
        s.insert(-1.0);
        s.insert(f64::NAN);
        s.insert(2.0);
        assert_eq!(s.count(), 2);
        assert_eq!(s.quantile(0.0), Some(0.0));
        assert!(Sketch::default().quantile(0.5).is_none());
    }
}
