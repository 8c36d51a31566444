//! Operations under `genscope.operation.*`: one histogram of durations for every tracked
//! operation (downloads, health checks, fallbacks, analytics collection, model operations,
//! generations and the user's own kinds), so counts, success rates, error categories and
//! percentiles per kind survive any trace sampling.
//!
//! Attributes: `genscope.operation.type`, `genscope.operation.name`,
//! `genscope.operation.outcome` (`success` or `failure`) and `error.type` on failures.

use std::time::Duration;

use opentelemetry::KeyValue;

use crate::instruments::{DefinitionError, Metric, MetricDefinition, MetricsCollector};

/// Operation duration buckets: 5 ms to 1 h, dense in the seconds-to-minutes range where
/// downloads, model loads and generations live.
pub const OPERATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
];

/// Attribute key of the operation kind.
pub const OPERATION_TYPE: &str = "genscope.operation.type";
/// Attribute key of the operation name.
pub const OPERATION_NAME: &str = "genscope.operation.name";
/// Attribute key of the outcome (`success` | `failure`).
pub const OPERATION_OUTCOME: &str = "genscope.operation.outcome";
/// Name of the duration histogram.
pub const OPERATION_DURATION: &str = "genscope.operation.duration";

/// The operations catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    vec![
        MetricDefinition::histogram(OPERATION_DURATION)
            .with_unit("s")
            .with_buckets(OPERATION_BUCKETS.iter().copied())
            .with_description("Duration of tracked operations, by type, name and outcome")
            .with_attributes([
                OPERATION_TYPE,
                OPERATION_NAME,
                OPERATION_OUTCOME,
                "error.type",
            ]),
    ]
}

/// Typed recorder for `genscope.operation.duration`; the [`crate::operations`] guards call it,
/// and it is public for code that measures operations itself.
///
/// ```
/// use std::time::Duration;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let ops = telemetry.metrics().operation()?;
/// ops.record("download", "sdxl-1.0", Duration::from_secs(42), None);
/// ops.record("download", "sdxl-1.0", Duration::from_secs(3), Some("timeout"));
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// let failed = telemetry.analyzer().histogram(
///     "genscope.operation.duration", &[("genscope.operation.outcome", "failure")], w).unwrap();
/// assert_eq!(failed.count, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct OperationMetrics {
    duration: Metric,
}

impl OperationMetrics {
    pub(crate) fn new(c: &MetricsCollector) -> Result<Self, DefinitionError> {
        Ok(OperationMetrics {
            duration: c.create_metric(definitions().remove(0))?,
        })
    }

    /// One finished operation: `error_type` is `None` for a success, the bounded error category
    /// (`timeout`, `dropped`, a class name) for a failure.
    pub fn record(&self, kind: &str, name: &str, duration: Duration, error_type: Option<&str>) {
        let mut kv = Vec::with_capacity(4);
        kv.push(KeyValue::new(OPERATION_TYPE, kind.to_string()));
        kv.push(KeyValue::new(OPERATION_NAME, name.to_string()));
        match error_type {
            None => kv.push(KeyValue::new(OPERATION_OUTCOME, "success")),
            Some(e) => {
                kv.push(KeyValue::new(OPERATION_OUTCOME, "failure"));
                kv.push(KeyValue::new("error.type", e.to_string()));
            }
        }
        let _ = self.duration.record(duration.as_secs_f64(), &kv);
    }
}

impl MetricsCollector {
    /// The operations catalog's typed recorder (`genscope.operation.duration`).
    pub fn operation(&self) -> Result<OperationMetrics, DefinitionError> {
        OperationMetrics::new(self)
    }
}
