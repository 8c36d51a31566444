//! The in-process analyzer: it reads exactly what the pipeline exported (through the
//! [`crate::pipeline::ExportObserver`] seam) and answers windowed questions about it.
//!
//! - [`store`]: the bounded history, its current-value snapshot and the basic queries.
//! - [`query`]: aggregations over windows (sum, avg, min, max, count, quantiles, rate), summaries
//!   and histories, with the stated error bounds.
//! - [`operations`]: per-operation statistics (the seeds' `get_metrics_by_type`).
//! - [`sketch`]: the relative-error quantile sketch used for span durations.
//! - [`report`]: reports, findings, health, efficiency and trends, rendered as text, JSON or HTML.
//! - [`fleet`]: the same report over a Prometheus-compatible backend, per instance and fleet-wide.

pub mod fleet;
pub mod operations;
pub mod otlp_file;
pub mod query;
pub mod report;
pub mod sketch;
pub mod store;

pub use operations::{OperationStats, PercentileSource};
pub use query::{Aggregation, HistoryPoint, MetricSummary};
pub use sketch::Sketch;
pub use store::{
    Alias, AliasSource, Aliases, AnalyzerStore, Attributes, GaugeStats, HistogramSummary,
    MetricInfo, MetricKind, MetricSnapshot, SeriesSnapshot, SeriesValue, SpanRecord, SpanStats,
    StoreConfig, UsageStat, UsageStats, Window,
};
