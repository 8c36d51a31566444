//! [`ExportObserver`], the seam between the pipeline and whoever reads what it exported (the
//! analyzer store).

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::trace::SpanData;

/// Receives every batch the pipeline exports, on the export threads, before the destinations do.
///
/// This is the seam between the pipeline and the analyzer: the analyzer store implements it, and so
/// can anything else that wants exactly the exported data without a second aggregation.
/// Implementations must be quick and must not block: they run between collection and export.
///
/// ```
/// use genscope::pipeline::ExportObserver;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Default)]
/// struct CountSpans(AtomicUsize);
/// impl ExportObserver for CountSpans {
///     fn observe_metrics(&self, _: &opentelemetry_sdk::metrics::data::ResourceMetrics) {}
///     fn observe_spans(&self, spans: &[opentelemetry_sdk::trace::SpanData]) {
///         self.0.fetch_add(spans.len(), Ordering::Relaxed);
///     }
/// }
/// let _observer: std::sync::Arc<dyn ExportObserver> = std::sync::Arc::new(CountSpans::default());
/// ```
pub trait ExportObserver: Send + Sync + 'static {
    /// One metric collection, as exported.
    fn observe_metrics(&self, metrics: &ResourceMetrics);
    /// One batch of ended spans, as exported.
    fn observe_spans(&self, spans: &[SpanData]);
    /// The resource every batch is exported with; called once at startup.
    fn observe_resource(&self, _resource: &Resource) {}
}
