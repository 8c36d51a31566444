//! [`StoreConfig`], the store's limits and resolution, and the overflow names used when a limit
//! is reached.

use std::time::Duration;

/// Attribute key marking the series that collects what exceeded a cardinality limit.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";
/// Span names the store aggregates separately before folding the rest into [`OVERFLOW_SPAN_NAME`].
pub const MAX_SPAN_NAMES: usize = 2000;
/// The name new span names are folded into once [`MAX_SPAN_NAMES`] is reached.
pub const OVERFLOW_SPAN_NAME: &str = "otel.span.overflow";

/// Limits and resolution of the store.
///
/// ```
/// let cfg = genscope::analyzer::StoreConfig::default();
/// assert_eq!(cfg.retention, std::time::Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// History older than this is dropped.
    pub retention: Duration,
    /// Width of the span aggregation slots (the metric interval by default).
    pub resolution: Duration,
    /// Series per metric before new ones fold into the overflow series.
    pub max_series_per_metric: usize,
    /// Spans kept individually.
    pub max_recent_spans: usize,
    /// Vendor names read in place of genscope's when those have no data (default: the vendor
    /// table).
    pub aliases: super::aliases::Aliases,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention: Duration::from_secs(3600),
            resolution: Duration::from_secs(10),
            max_series_per_metric: 2000,
            max_recent_spans: 10_000,
            aliases: super::aliases::Aliases::default(),
        }
    }
}
