//! Exemplars: for each histogram series, the latest measurement per bucket with the trace and span
//! id of the sampled span it was taken in.
//!
//! The OTel Rust SDK 0.33 keeps no exemplars, so genscope keeps them on its own recording paths
//! (by name, bound histograms, and so the catalogs and the `metrics` facade) and `/metrics` shows
//! them in OpenMetrics. Cost: with the filter `trace_based` (default), every histogram record
//! reads the current OTel context (one thread-local borrow); only a record inside a sampled span
//! then finds its bucket and replaces that bucket's exemplar under a per-series lock, which only
//! other recordings of the same series inside sampled spans contend for (`BENCHMARKS.md`
//! measures both). `always_off` skips even the context read.
//!
//! Bounded like the series themselves: at most the per-metric series limit of series keep
//! exemplars; measurements of further series keep none.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId};
use opentelemetry::{Context, KeyValue};

use crate::config::ExemplarFilter;

/// One kept measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The measured value.
    pub value: f64,
    /// When it was measured.
    pub time: SystemTime,
    /// The trace and span of the sampled span it was measured in (none with `always_on` outside
    /// a span).
    pub trace: Option<(TraceId, SpanId)>,
}

/// Sorted `(key, value)` pairs, values as the analyzer stores them (`Value`'s `Display`).
pub type SeriesKey = Vec<(String, String)>;

/// Every series' exemplars of one metric, read at once: one entry per bucket (the last one is
/// `+Inf`), `None` where the bucket has none.
pub type MetricExemplars = Vec<(SeriesKey, Vec<Option<Exemplar>>)>;

/// The latest exemplar per bucket of one series.
#[derive(Debug)]
pub(super) struct SeriesExemplars {
    bounds: Arc<[f64]>,
    buckets: Mutex<Vec<Option<Exemplar>>>,
}

impl SeriesExemplars {
    fn new(bounds: Arc<[f64]>) -> Self {
        let n = bounds.len() + 1;
        SeriesExemplars {
            bounds,
            buckets: Mutex::new(vec![None; n]),
        }
    }

    /// Keeps `value` as its bucket's exemplar if the filter lets it.
    #[inline]
    pub(super) fn offer(&self, filter: ExemplarFilter, value: f64) {
        if let Some(trace) = take(filter) {
            self.keep(value, trace);
        }
    }

    /// `value` becomes its bucket's exemplar (the SDK's bucket rule: `lo < v <= hi`).
    fn keep(&self, value: f64, trace: Option<(TraceId, SpanId)>) {
        let i = self.bounds.partition_point(|b| *b < value);
        let e = Exemplar {
            value,
            time: SystemTime::now(),
            trace,
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = buckets.get_mut(i) {
            *slot = Some(e);
        }
    }

    fn read(&self) -> Vec<Option<Exemplar>> {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// `Some(trace)` when a measurement is to be kept now: with `trace_based`, only inside a sampled
/// span (`Some(Some(ids))`); with `always_on`, always.
#[inline]
fn take(filter: ExemplarFilter) -> Option<Option<(TraceId, SpanId)>> {
    if filter == ExemplarFilter::AlwaysOff {
        return None;
    }
    let ids = Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        (sc.is_valid() && sc.is_sampled()).then(|| (sc.trace_id(), sc.span_id()))
    });
    match (filter, ids) {
        (ExemplarFilter::AlwaysOn, ids) => Some(ids),
        (_, Some(ids)) => Some(Some(ids)),
        _ => None,
    }
}

/// Series by an order-independent hash of their attributes (collisions share the bucket).
type SeriesMap = HashMap<u64, Vec<(SeriesKey, Arc<SeriesExemplars>)>>;

/// The exemplars of one histogram metric (one definition generation), by series.
#[derive(Debug)]
pub(super) struct HistogramExemplars {
    filter: ExemplarFilter,
    bounds: Arc<[f64]>,
    max_series: usize,
    /// By an order-independent hash of the attributes; a hit compares in full without
    /// allocating.
    series: RwLock<SeriesMap>,
}

impl HistogramExemplars {
    pub(super) fn new(filter: ExemplarFilter, bounds: &[f64], max_series: usize) -> Self {
        HistogramExemplars {
            filter,
            bounds: bounds.into(),
            max_series,
            series: RwLock::default(),
        }
    }

    pub(super) fn filter(&self) -> ExemplarFilter {
        self.filter
    }

    /// The series of `attributes` (created if the limit allows), for a bound handle to keep.
    pub(super) fn series(&self, attributes: &[KeyValue]) -> Option<Arc<SeriesExemplars>> {
        if self.filter == ExemplarFilter::AlwaysOff {
            return None;
        }
        let hash = attributes_hash(attributes);
        let found = |map: &SeriesMap| {
            map.get(&hash).and_then(|v| {
                v.iter()
                    .find(|(k, _)| same_series(k, attributes))
                    .map(|(_, s)| Arc::clone(s))
            })
        };
        if let Some(s) = found(&self.series.read().unwrap_or_else(|p| p.into_inner())) {
            return Some(s);
        }
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = found(&map) {
            return Some(s);
        }
        if map.values().map(Vec::len).sum::<usize>() >= self.max_series {
            return None;
        }
        let s = Arc::new(SeriesExemplars::new(Arc::clone(&self.bounds)));
        map.entry(hash)
            .or_default()
            .push((series_key(attributes), Arc::clone(&s)));
        Some(s)
    }

    /// By-name path: finds the series only when the measurement is kept.
    #[inline]
    pub(super) fn offer(&self, attributes: &[KeyValue], value: f64) {
        // The context read first: outside a sampled span (the common case) nothing else runs.
        let Some(trace) = take(self.filter) else {
            return;
        };
        if let Some(s) = self.series(attributes) {
            s.keep(value, trace);
        }
    }

    fn read(&self) -> MetricExemplars {
        self.series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .map(|(k, s)| (k.clone(), s.read()))
            .collect()
    }
}

/// A hash of the attribute set that does not depend on the order of the attributes.
fn attributes_hash(attributes: &[KeyValue]) -> u64 {
    use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
    let state = foldhash::fast::FixedState::with_seed(0x5eed);
    attributes.iter().fold(attributes.len() as u64, |acc, kv| {
        let mut h = state.build_hasher();
        kv.key.as_str().hash(&mut h);
        kv.value.as_str().hash(&mut h);
        acc.wrapping_add(h.finish())
    })
}

/// Whether `attributes` are the series `key` (sorted), without allocating for string values.
fn same_series(key: &SeriesKey, attributes: &[KeyValue]) -> bool {
    key.len() == attributes.len()
        && attributes.iter().all(|kv| {
            key.binary_search_by(|(k, _)| k.as_str().cmp(kv.key.as_str()))
                .is_ok_and(|i| key[i].1 == kv.value.as_str())
        })
}

fn series_key(attributes: &[KeyValue]) -> SeriesKey {
    let mut key: SeriesKey = attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    key.sort();
    key
}

/// Every histogram's exemplars, by metric name (the current definition of each).
#[derive(Debug, Default)]
pub struct ExemplarRegistry {
    metrics: RwLock<HashMap<String, Arc<HistogramExemplars>>>,
}

impl ExemplarRegistry {
    pub(super) fn register(&self, name: &str, exemplars: &Arc<HistogramExemplars>) {
        self.metrics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::clone(exemplars));
    }

    pub(super) fn remove(&self, name: &str) {
        self.metrics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The exemplars of `metric`'s series whose sorted attributes are `series` (empty when none).
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.metrics().create_metric(genscope::instruments::MetricDefinition::timer("app.step.duration"))?;
    /// tracing::subscriber::with_default(
    ///     tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), telemetry.layer()),
    ///     || tracing::info_span!("step").in_scope(|| telemetry.metrics().record_histogram("app.step.duration", 0.2, &[])),
    /// )?;
    /// let kept = telemetry.exemplars().series("app.step.duration", &[]);
    /// assert_eq!(kept.iter().flatten().count(), 1, "one bucket has the exemplar");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn series(&self, metric: &str, series: &[(String, String)]) -> Vec<Option<Exemplar>> {
        self.metric(metric)
            .into_iter()
            .find(|(k, _)| k == series)
            .map(|(_, e)| e)
            .unwrap_or_default()
    }

    /// Every series' exemplars of `metric` (empty when it keeps none).
    pub fn metric(&self, metric: &str) -> MetricExemplars {
        let m = self
            .metrics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(metric)
            .cloned();
        m.map(|m| m.read()).unwrap_or_default()
    }
}
