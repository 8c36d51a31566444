//! The metric tee: the one push exporter the SDK's `PeriodicReader` drives.
//!
//! Each collection is handed first to the [`ExportObserver`] (the analyzer store copies what it
//! keeps; the reader reuses its buffer) and then to every destination. One reader means one
//! aggregation: the analyzer costs nothing on the application's `add`/`record` path, unlike a second
//! `MetricReader`, which would aggregate every measurement twice.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tokio::runtime::Handle;

use super::accounting::Accounting;
use super::observer::ExportObserver;
use super::sinks::MetricDestination;

pub(crate) struct TeeMetricExporter {
    pub destinations: Vec<MetricDestination>,
    pub observer: Arc<dyn ExportObserver>,
    pub accounting: Arc<Accounting>,
    pub temporality: Temporality,
    pub runtime: Handle,
}

fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn count<T>(d: &MetricData<T>) -> usize {
        match d {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => count(d),
            AggregatedMetrics::U64(d) => count(d),
            AggregatedMetrics::I64(d) => count(d),
        } as u64)
        .sum()
}

impl PushMetricExporter for TeeMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.observer.observe_metrics(metrics);
        self.accounting.metric_collections.fetch_add(1, Relaxed);
        let points = data_points(metrics);
        let mut result = Ok(());
        for d in &self.destinations {
            if let Err(e) = d.export(metrics, points, &self.runtime) {
                result = Err(e);
            }
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        for d in &self.destinations {
            d.shutdown(timeout);
        }
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        self.temporality
    }
}
