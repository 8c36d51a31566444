//! Model availability under `genscope.model.*` (no semantic convention covers it): downloads
//! (bytes, duration, throughput), health checks (outcome and latency) and fallback activations.
//!
//! Attributes: `genscope.model.name`, `genscope.model.source` (downloads),
//! `genscope.health_check.status` (`healthy`, `degraded`, `unhealthy`),
//! `genscope.fallback.target` and `genscope.fallback.reason`, and `error.type` on failures.

use std::time::Duration;

use opentelemetry::KeyValue;

use crate::instruments::{
    DefinitionError, InstrumentKind, Metric, MetricDefinition, MetricsCollector,
};

/// Download duration buckets: 100 ms to 1 h.
pub const DOWNLOAD_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Download throughput buckets, bytes per second: 100 kB/s to 10 GB/s.
pub const THROUGHPUT_BUCKETS: &[f64] = &[1e5, 3e5, 1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10];
/// Health-check latency buckets: 1 ms to 30 s.
pub const HEALTH_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The model-availability catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    let dl = ["genscope.model.name", "genscope.model.source", "error.type"];
    vec![
        MetricDefinition::counter("genscope.model.download.io")
            .with_unit("By")
            .with_description("Bytes of model files downloaded")
            .with_attributes(dl),
        MetricDefinition::new(
            "genscope.model.download.duration",
            InstrumentKind::Histogram,
        )
        .with_unit("s")
        .with_buckets(DOWNLOAD_BUCKETS.iter().copied())
        .with_description("Duration of model downloads")
        .with_attributes(dl),
        MetricDefinition::new("genscope.model.download.throughput", InstrumentKind::Rate)
            .with_unit("By/s")
            .with_buckets(THROUGHPUT_BUCKETS.iter().copied())
            .with_description("Throughput of each successful model download")
            .with_attributes(dl),
        MetricDefinition::new(
            "genscope.model.health_check.duration",
            InstrumentKind::Histogram,
        )
        .with_unit("s")
        .with_buckets(HEALTH_BUCKETS.iter().copied())
        .with_description("Latency of model health checks, by status")
        .with_attributes([
            "genscope.model.name",
            "genscope.health_check.status",
            "error.type",
        ]),
        MetricDefinition::counter("genscope.model.fallback.activations")
            .with_unit("{activation}")
            .with_description("Fallback strategy activations, by reason")
            .with_attributes([
                "genscope.model.name",
                "genscope.fallback.target",
                "genscope.fallback.reason",
            ]),
    ]
}

/// Outcome of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Serving normally.
    Healthy,
    /// Serving, but slow or partially failing.
    Degraded,
    /// Not serving.
    Unhealthy,
}

impl HealthStatus {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// Typed recorder for the model-availability catalog.
///
/// ```
/// use std::time::Duration;
/// use genscope::instruments::catalog::model::HealthStatus;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let model = telemetry.metrics().model()?;
/// model.record_download("sdxl-1.0", "hub", 6_900_000_000, Duration::from_secs(69), None);
/// model.record_health_check("sdxl-1.0", HealthStatus::Healthy, Duration::from_millis(12), None);
/// model.record_fallback("sdxl-1.0", "sd-1.5", "out_of_memory");
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// assert_eq!(telemetry.analyzer().sum("genscope.model.download.io", &[], w), Some(6.9e9));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    download_io: Metric,
    download_duration: Metric,
    download_throughput: Metric,
    health: Metric,
    fallback: Metric,
}

impl ModelMetrics {
    pub(crate) fn new(c: &MetricsCollector) -> Result<Self, DefinitionError> {
        let d = definitions();
        let m = |i: usize| c.create_metric(d[i].clone());
        Ok(ModelMetrics {
            download_io: m(0)?,
            download_duration: m(1)?,
            download_throughput: m(2)?,
            health: m(3)?,
            fallback: m(4)?,
        })
    }

    /// One download (finished or failed): bytes transferred, duration, and for successful ones
    /// the throughput.
    pub fn record_download(
        &self,
        model: &str,
        source: &str,
        bytes: u64,
        duration: Duration,
        error_type: Option<&str>,
    ) {
        let mut kv = vec![
            KeyValue::new("genscope.model.name", model.to_string()),
            KeyValue::new("genscope.model.source", source.to_string()),
        ];
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e.to_string()));
        }
        let _ = self.download_io.record(bytes as f64, &kv);
        let _ = self.download_duration.record(duration.as_secs_f64(), &kv);
        let secs = duration.as_secs_f64();
        if error_type.is_none() && secs > 0.0 {
            let _ = self.download_throughput.record(bytes as f64 / secs, &kv);
        }
    }

    /// One health check.
    pub fn record_health_check(
        &self,
        model: &str,
        status: HealthStatus,
        latency: Duration,
        error_type: Option<&str>,
    ) {
        let mut kv = vec![
            KeyValue::new("genscope.model.name", model.to_string()),
            KeyValue::new("genscope.health_check.status", status.as_str()),
        ];
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e.to_string()));
        }
        let _ = self.health.record(latency.as_secs_f64(), &kv);
    }

    /// One fallback activation from `model` to `target`, for `reason` (a short, bounded code such
    /// as `out_of_memory` or `timeout`, not an error message).
    pub fn record_fallback(&self, model: &str, target: &str, reason: &str) {
        let _ = self.fallback.record(
            1.0,
            &[
                KeyValue::new("genscope.model.name", model.to_string()),
                KeyValue::new("genscope.fallback.target", target.to_string()),
                KeyValue::new("genscope.fallback.reason", reason.to_string()),
            ],
        );
    }
}

impl MetricsCollector {
    /// The model-availability catalog's typed recorder.
    pub fn model(&self) -> Result<ModelMetrics, DefinitionError> {
        ModelMetrics::new(self)
    }
}
