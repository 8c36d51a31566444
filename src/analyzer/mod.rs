//! The in-process analyzer: it reads exactly what the pipeline exported (through the
//! [`crate::pipeline::ExportObserver`] seam) and answers windowed questions about it.
//!
//! - [`store`]: the bounded history and its query API.
//! - [`sketch`]: the relative-error quantile sketch used for span durations.

pub mod sketch;
pub mod store;

pub use sketch::Sketch;
pub use store::{
    AnalyzerStore, Attributes, GaugeStats, HistogramSummary, MetricInfo, MetricKind, SpanRecord,
    SpanStats, StoreConfig, Window,
};
