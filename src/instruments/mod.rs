//! Metric definitions turned into OTel instruments: validation, the [`MetricsCollector`] (record
//! by name, timers, bound handles, observed collectors, reset and delete) and the semantic-
//! convention [`catalog`]s with typed recorders.
//!
//! This module knows the OTel metrics API and nothing about exporters: what it records reaches
//! OTLP, the analyzer and `/metrics` through the pipeline.

mod bound;
mod by_name;
pub mod catalog;
mod collector;
mod counter_cells;
mod definition;
mod entry;
mod exemplars;
mod folds;
mod handle_cache;
mod histogram_cells;
#[cfg(feature = "tower")]
mod http_layer;
mod metric;
mod observations;
mod propagation;
mod record_error;
mod recording;
mod streams;
mod ucum;

pub use bound::{BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter};
pub use collector::MetricsCollector;
pub use definition::{
    DURATION_BUCKETS, DefinitionError, InstrumentKind, MAX_BUCKETS, MetricDefinition, RATE_BUCKETS,
    RESERVED_NAMESPACES, validate_name,
};
pub use exemplars::{Exemplar, ExemplarRegistry, MetricExemplars, SeriesKey};
#[cfg(feature = "tower")]
pub use http_layer::{HttpMetricsLayer, HttpMetricsService};
pub use metric::{Metric, TimerGuard};
pub use observations::Observations;
pub use propagation::{extract_context, inject_trace_context, propagator};
pub use record_error::RecordError;
pub use streams::{COLLECTOR_SCOPE, GENERATION_KEY, RetiredStreams};

/// Validates a unit against the UCUM grammar genscope accepts.
///
/// ```
/// assert!(genscope::instruments::validate_unit("{token}/s").is_ok());
/// assert!(genscope::instruments::validate_unit("tokens").is_err());
/// ```
pub fn validate_unit(unit: &str) -> Result<(), String> {
    ucum::validate(unit)
}
