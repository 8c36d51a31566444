//! What the store answers about metrics: kinds, descriptions, gauge statistics and the current
//! value of every series.

use std::time::SystemTime;

/// A sorted list of attributes, values rendered as text.
pub type Attributes = Vec<(String, String)>;

/// What kind of instrument a metric came from, as far as the exported data tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic sum.
    Counter,
    /// A non-monotonic sum.
    UpDownCounter,
    /// A gauge.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram (count, sum, min and max are kept; buckets are not).
    ExponentialHistogram,
}

/// A description of one metric the store holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    /// OTel name.
    pub name: String,
    /// UCUM unit.
    pub unit: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub kind: MetricKind,
    /// Number of series (attribute sets).
    pub series: usize,
}

/// Statistics of a gauge or up-down counter over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStats {
    /// Last value.
    pub last: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean of the sampled values.
    pub mean: f64,
    /// Number of samples (collections x series).
    pub samples: u64,
}

impl GaugeStats {
    pub(in crate::analyzer) fn of(values: &[f64]) -> Option<GaugeStats> {
        Some(GaugeStats {
            last: *values.last()?,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            samples: values.len() as u64,
        })
    }
}

/// The current value of one series, as a cumulative view whatever the wire temporality.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter's or up-down counter's running total.
    Sum(f64),
    /// A gauge's last value.
    Gauge(f64),
    /// A histogram's cumulative buckets since `start`.
    Histogram {
        /// Explicit bucket upper bounds (empty for an exponential histogram).
        bounds: Vec<f64>,
        /// Counts per bucket (`bounds.len() + 1`).
        counts: Vec<u64>,
        /// Number of values.
        count: u64,
        /// Sum of values.
        sum: f64,
        /// Smallest value, when known.
        min: Option<f64>,
        /// Largest value, when known.
        max: Option<f64>,
    },
}

/// One series in a [`MetricSnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Attributes.
    pub attributes: Attributes,
    /// Start of the cumulative series (a reset moves it).
    pub start: SystemTime,
    /// Time of the latest collection that reported it.
    pub time: SystemTime,
    /// Value.
    pub value: SeriesValue,
}

/// One metric's current state, from [`AnalyzerStore::snapshot`](crate::analyzer::AnalyzerStore::snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSnapshot {
    /// OTel name.
    pub name: String,
    /// UCUM unit.
    pub unit: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub kind: MetricKind,
    /// Series, sorted by attributes.
    pub series: Vec<SeriesSnapshot>,
}
