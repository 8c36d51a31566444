//! Windowed queries over the store, answered from what was exported: no second aggregation runs
//! beside the SDK's. The seeds' collector queries map to:
//!
//! | seed | genscope |
//! |---|---|
//! | `get_aggregated_value(aggregation, window)` | [`AnalyzerStore::aggregate`] |
//! | `get_rate(window)` | [`AnalyzerStore::aggregate`] with [`Aggregation::Rate`] (or [`AnalyzerStore::rate`]) |
//! | `get_histogram_buckets()` | [`AnalyzerStore::histogram`] |
//! | `get_metrics_summary()` | [`AnalyzerStore::summary`] |
//! | `get_latest_metrics()` | [`AnalyzerStore::snapshot`] |
//! | `get_metrics_history(minutes)` | [`AnalyzerStore::history`] with `Window::last(minutes)` |
//!
//! # How percentiles are estimated, and how far off they can be
//! * **Histograms** keep only their explicit buckets, so a quantile is found by linear
//!   interpolation inside the bucket holding its rank ([`HistogramSummary::quantile`]). The true
//!   value lies in the same bucket, so the error is at most **that bucket's width** (for the
//!   open-ended last bucket the estimate is its lower bound, or the exact max when known). With
//!   the catalogs' exponential-ish buckets that is under a factor of 2 of the value; choose finer
//!   buckets where you need more.
//! * **Gauges and up-down counters** are sampled once per collection; their quantiles are exact
//!   nearest-rank quantiles **of those samples** (values between collections are not seen).
//! * **Spans** keep a DDSketch per time slot: relative error at most 1%
//!   ([`crate::analyzer::Sketch`]).

use std::time::SystemTime;

use super::store::{AnalyzerStore, GaugeStats, HistogramSummary, MetricKind, PointValue, Window};

/// What to compute over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Counters: increase. Histograms: sum of values. Gauges: sum of samples.
    Sum,
    /// Histograms: mean value. Gauges and up-down counters: mean of samples.
    Avg,
    /// Smallest value (histograms: exact when known, else the lower bound of the lowest non-empty bucket).
    Min,
    /// Largest value (histograms: exact when known, else the upper bound of the highest non-empty bucket).
    Max,
    /// Histograms: number of values. Others: number of samples.
    Count,
    /// The latest value (counters: running total; gauges: last sample).
    Last,
    /// Per second over the window: counter increase, or histogram values recorded.
    Rate,
    /// A quantile in `0..=1` (`Quantile(0.95)` is p95); see the module docs for the error bound.
    Quantile(f64),
}

/// Summary of one metric over a window (the seeds' `get_metrics_summary`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    /// Name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Kind.
    pub kind: MetricKind,
    /// Series held.
    pub series: usize,
    /// Count (values or samples).
    pub count: Option<f64>,
    /// Sum or increase.
    pub sum: Option<f64>,
    /// Mean.
    pub avg: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Per second.
    pub rate: Option<f64>,
    /// Latest value.
    pub last: Option<f64>,
}

/// One point of a metric's history: per collection, summed over the matching series.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// Collection time.
    pub time: SystemTime,
    /// Counters: increase in the interval. Gauges and up-down counters: value. Histograms: mean
    /// of the interval's values.
    pub value: f64,
    /// Histograms: the interval's buckets.
    pub histogram: Option<HistogramSummary>,
}

fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

impl AnalyzerStore {
    /// One aggregation over the window and the series whose attributes include `filter`.
    /// `None` when the metric is unknown, has no data in the window, or the aggregation does not
    /// apply to its kind (a rate of a gauge).
    ///
    /// ```
    /// use genscope::analyzer::{Aggregation, Window};
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// for ms in [10.0, 20.0, 30.0, 40.0] {
    ///     telemetry.metrics().record_histogram("app.latency", ms / 1000.0, &[])?;
    /// }
    /// telemetry.force_flush()?;
    /// let store = telemetry.analyzer();
    /// assert_eq!(store.aggregate("app.latency", &[], Aggregation::Count, Window::all()), Some(4.0));
    /// let avg = store.aggregate("app.latency", &[], Aggregation::Avg, Window::all()).unwrap();
    /// assert!((avg - 0.025).abs() < 1e-12);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        aggregation: Aggregation,
        window: Window,
    ) -> Option<f64> {
        match self.kind(name)? {
            MetricKind::Histogram | MetricKind::ExponentialHistogram => {
                let h = self
                    .histogram(name, filter, window)
                    .filter(|h| h.count > 0)?;
                match aggregation {
                    Aggregation::Sum => Some(h.sum),
                    Aggregation::Avg => h.mean(),
                    Aggregation::Count => Some(h.count as f64),
                    Aggregation::Rate => {
                        let secs = window.seconds();
                        (secs > 0.0).then(|| h.count as f64 / secs)
                    }
                    Aggregation::Min => h.min.or_else(|| h.quantile(0.0)),
                    Aggregation::Max => h.max.or_else(|| {
                        let last = h.counts.iter().rposition(|&c| c > 0)?;
                        Some(h.bounds.get(last).copied().unwrap_or(f64::INFINITY))
                    }),
                    Aggregation::Quantile(q) => h.quantile(q),
                    Aggregation::Last => None,
                }
            }
            MetricKind::Counter => match aggregation {
                Aggregation::Sum => self.sum(name, filter, window),
                Aggregation::Rate => self.rate(name, filter, window),
                _ => self.sample_aggregate(name, filter, aggregation, window),
            },
            MetricKind::UpDownCounter | MetricKind::Gauge => match aggregation {
                Aggregation::Rate => None,
                _ => self.sample_aggregate(name, filter, aggregation, window),
            },
        }
    }

    fn sample_aggregate(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        aggregation: Aggregation,
        window: Window,
    ) -> Option<f64> {
        let samples = self.samples(name, filter, window);
        let GaugeStats {
            last,
            min,
            max,
            mean,
            samples: n,
        } = GaugeStats::of(&samples)?;
        match aggregation {
            Aggregation::Sum => Some(samples.iter().sum()),
            Aggregation::Avg => Some(mean),
            Aggregation::Min => Some(min),
            Aggregation::Max => Some(max),
            Aggregation::Count => Some(n as f64),
            Aggregation::Last => Some(last),
            Aggregation::Rate => None,
            Aggregation::Quantile(q) => {
                let mut sorted = samples;
                sorted.sort_by(f64::total_cmp);
                nearest_rank(&sorted, q)
            }
        }
    }

    /// Every metric summarized over the window.
    pub fn summary(&self, window: Window) -> Vec<super::query::MetricSummary> {
        self.metrics()
            .into_iter()
            .map(|m| {
                let a = |agg| self.aggregate(&m.name, &[], agg, window);
                MetricSummary {
                    count: a(Aggregation::Count),
                    sum: a(Aggregation::Sum),
                    avg: a(Aggregation::Avg),
                    min: a(Aggregation::Min),
                    max: a(Aggregation::Max),
                    p50: a(Aggregation::Quantile(0.5)),
                    p90: a(Aggregation::Quantile(0.9)),
                    p95: a(Aggregation::Quantile(0.95)),
                    p99: a(Aggregation::Quantile(0.99)),
                    rate: a(Aggregation::Rate),
                    last: a(Aggregation::Last),
                    name: m.name,
                    unit: m.unit,
                    kind: m.kind,
                    series: m.series,
                }
            })
            .collect()
    }

    /// Per-collection history of a metric over the window, oldest first.
    pub fn history(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
    ) -> Vec<HistoryPoint> {
        let counter = self.kind(name) == Some(MetricKind::Counter);
        let mut points: Vec<HistoryPoint> = Vec::new();
        self.each_point(name, filter, window, |_, p| {
            let (value, histogram) = match &p.value {
                PointValue::Sum { delta, total } => (if counter { *delta } else { *total }, None),
                PointValue::Gauge(v) => (*v, None),
                PointValue::Histogram(h) => (0.0, Some(h.summary())),
            };
            points.push(HistoryPoint {
                time: p.time(),
                value,
                histogram,
            });
        });
        points.sort_by_key(|p| p.time);
        let mut merged: Vec<HistoryPoint> = Vec::new();
        for p in points {
            match merged.last_mut() {
                Some(last) if last.time == p.time => {
                    last.value += p.value;
                    if let (Some(a), Some(b)) = (&mut last.histogram, &p.histogram)
                        && a.bounds == b.bounds
                    {
                        for (x, y) in a.counts.iter_mut().zip(&b.counts) {
                            *x += y;
                        }
                        a.count += b.count;
                        a.sum += b.sum;
                        a.min = min_opt(a.min, b.min);
                        a.max = max_opt(a.max, b.max);
                    }
                }
                _ => merged.push(p),
            }
        }
        for p in &mut merged {
            if let Some(h) = &p.histogram {
                p.value = h.mean().unwrap_or(0.0);
            }
        }
        merged
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_matches_definition() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.95), Some(95.0));
        assert_eq!(nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&v, 1.0), Some(100.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}
