//! The analyzer store: a bounded, windowed history of exactly what the pipeline exported.
//!
//! It is fed off the hot path: the metric tee hands it each exported `ResourceMetrics` on the
//! reader's thread, the span export worker hands it each exported batch on its own thread. Nothing
//! here runs when the application calls `Counter::add` or ends a span.
//!
//! Metric points are normalized to per-interval deltas whatever the wire temporality: a cumulative
//! series is differenced against its previous point (a lower value or a new start time is a reset),
//! so windowed sums and histogram quantiles are the same for both temporalities.
//! Spans are kept twice: individually in a ring of the most recent ones, and as per-name aggregates
//! per time slot (count, errors, a duration [`Sketch`](crate::analyzer::Sketch)), so span queries over an hour cost
//! `names x slots`, not `spans`.
//!
//! Memory is bounded by `retention`, `max_series_per_metric` (new series past it fold into one
//! series with `otel.metric.overflow=true`), a bound on span names (same overflow rule) and
//! `max_recent_spans`.
//!
//! Files: [`config`](StoreConfig) and [`Window`]; the values it answers with (`metric_values.rs`,
//! `span_values.rs`, `histogram.rs`); one series' normalization (`series.rs`); ingestion from the
//! SDK's export data and from files (`ingest.rs`); reads (`read.rs`). This file holds the store.

mod aliases;
mod config;
mod histogram;
mod ingest;
mod metric_values;
mod read;
mod series;
mod span_values;
mod window;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

pub use aliases::{Alias, AliasSource, Aliases};
pub use config::{MAX_SPAN_NAMES, OVERFLOW_KEY, OVERFLOW_SPAN_NAME, StoreConfig};
pub(in crate::analyzer) use histogram::HistogramDelta;
pub use histogram::HistogramSummary;
pub(in crate::analyzer) use ingest::{MetricMeta, SpanInput};
pub use metric_values::{
    Attributes, GaugeStats, MetricInfo, MetricKind, MetricSnapshot, SeriesSnapshot, SeriesValue,
};
pub(in crate::analyzer) use series::{PointValue, RawPoint, RawValue};
pub use span_values::{SpanRecord, SpanStats, UsageStat, UsageStats};
pub use window::Window;

use crate::instruments::RetiredStreams;
use series::Series;
use span_values::SpanSlot;

#[derive(Debug)]
struct MetricHistory {
    unit: String,
    description: String,
    kind: MetricKind,
    series: HashMap<Attributes, Series>,
}

#[derive(Debug, Default)]
pub(in crate::analyzer) struct Inner {
    metrics: HashMap<String, MetricHistory>,
    span_slots: HashMap<String, VecDeque<SpanSlot>>,
    /// Spans of genscope operations, by (`genscope.operation.type`, `genscope.operation.name`).
    pub(in crate::analyzer) operation_slots: HashMap<(String, String), VecDeque<SpanSlot>>,
    recent_spans: VecDeque<span_values::RecentSpan>,
    pub(in crate::analyzer) resource: Attributes,
    metric_batches: u64,
    span_batches: u64,
    spans_seen: u64,
    last_collection: Option<SystemTime>,
}

/// The in-process store the analyzer reads: what was exported, nothing else.
///
/// ```
/// use genscope::analyzer::{AnalyzerStore, StoreConfig, Window};
/// let store = AnalyzerStore::new(StoreConfig::default());
/// assert!(store.metrics().is_empty());
/// assert_eq!(store.span_stats(None, Window::all()).count, 0);
/// ```
#[derive(Debug)]
pub struct AnalyzerStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
    retired: Option<Arc<RetiredStreams>>,
}

impl AnalyzerStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        AnalyzerStore {
            config,
            inner: Mutex::new(Inner::default()),
            retired: None,
        }
    }

    /// A store that skips the metric streams the collector retired (reset or deleted) and
    /// forgets deleted names.
    pub(crate) fn with_retired(config: StoreConfig, retired: Arc<RetiredStreams>) -> Self {
        AnalyzerStore {
            retired: Some(retired),
            ..AnalyzerStore::new(config)
        }
    }

    /// The store's limits.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(in crate::analyzer) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store inconsistent in a way queries
        // would mind (each ingest step is self-contained), so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resource attributes of the exported data.
    pub fn resource(&self) -> Attributes {
        self.lock().resource.clone()
    }

    /// Number of metric collections received (one per export interval).
    pub fn metric_batches(&self) -> u64 {
        self.lock().metric_batches
    }

    /// Number of span batches and spans received.
    pub fn span_totals(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.span_batches, inner.spans_seen)
    }

    /// Time of the latest metric collection.
    pub fn last_collection(&self) -> Option<SystemTime> {
        self.lock().last_collection
    }

    /// Drops history older than the retention. Called on every ingest; public for tests.
    pub fn prune(&self, now: SystemTime) {
        let cutoff = now
            .checked_sub(self.config.retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut inner = self.lock();
        for m in inner.metrics.values_mut() {
            for s in m.series.values_mut() {
                while s.points.front().is_some_and(|p| p.time() <= cutoff) {
                    s.points.pop_front();
                }
            }
            // A series nobody reported for a whole retention is gone (bounded memory).
            m.series.retain(|_, s| {
                !s.points.is_empty() || s.state.as_ref().is_some_and(|st| st.time > cutoff)
            });
        }
        inner.metrics.retain(|_, m| !m.series.is_empty());
        let resolution = self.config.resolution;
        let old = |s: &SpanSlot| s.start + resolution <= cutoff;
        for slots in inner.span_slots.values_mut() {
            while slots.front().is_some_and(old) {
                slots.pop_front();
            }
        }
        for slots in inner.operation_slots.values_mut() {
            while slots.front().is_some_and(old) {
                slots.pop_front();
            }
        }
        inner.operation_slots.retain(|_, slots| !slots.is_empty());
    }
}
