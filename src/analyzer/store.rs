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
//! per time slot (count, errors, a duration [`Sketch`]), so span queries over an hour cost
//! `names x slots`, not `spans`.
//!
//! Memory is bounded by `retention`, `max_series_per_metric` (new series past it fold into one
//! series with `otel.metric.overflow=true`), a bound on span names (same overflow rule) and
//! `max_recent_spans`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::Status;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::trace::SpanData;

use super::sketch::Sketch;
use crate::instruments::{COLLECTOR_SCOPE, GENERATION_KEY, RetiredStreams};
use crate::pipeline::ExportObserver;

/// Attribute key marking the series that collects what exceeded a cardinality limit.
pub const OVERFLOW_KEY: &str = "otel.metric.overflow";
/// Span names the store aggregates separately before folding the rest into [`OVERFLOW_SPAN_NAME`].
pub const MAX_SPAN_NAMES: usize = 2000;
/// The name new span names are folded into once [`MAX_SPAN_NAMES`] is reached.
pub const OVERFLOW_SPAN_NAME: &str = "otel.span.overflow";

/// A sorted list of attributes, values rendered as text.
pub type Attributes = Vec<(String, String)>;

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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention: Duration::from_secs(3600),
            resolution: Duration::from_secs(10),
            max_series_per_metric: 2000,
            max_recent_spans: 10_000,
        }
    }
}

/// A time range `(start, end]`.
///
/// ```
/// use genscope::analyzer::Window;
/// let w = Window::last(std::time::Duration::from_secs(300));
/// assert!(w.end > w.start);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Exclusive start.
    pub start: SystemTime,
    /// Inclusive end.
    pub end: SystemTime,
}

impl Window {
    /// The last `duration` up to now.
    pub fn last(duration: Duration) -> Window {
        let end = SystemTime::now();
        Window {
            start: end.checked_sub(duration).unwrap_or(SystemTime::UNIX_EPOCH),
            end,
        }
    }

    /// Everything the store holds.
    pub fn all() -> Window {
        Window {
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::now() + Duration::from_secs(86_400),
        }
    }

    fn contains(&self, t: SystemTime) -> bool {
        t > self.start && t <= self.end
    }

    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.end
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// What kind of instrument a metric came from, as far as the exported data tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonic sum.
    Counter,
    /// A non-monotonic sum.
    UpDownCounter,
    /// A gauge.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
    /// An exponential histogram (count, sum, min and max are kept; buckets are not).
    ExponentialHistogram,
}

/// A description of one metric the store holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    /// OTel name.
    pub name: String,
    /// UCUM unit.
    pub unit: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub kind: MetricKind,
    /// Number of series (attribute sets).
    pub series: usize,
}

/// A histogram aggregated over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSummary {
    /// Explicit bucket upper bounds.
    pub bounds: Vec<f64>,
    /// Counts per bucket (`bounds.len() + 1`).
    pub counts: Vec<u64>,
    /// Number of values.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Smallest value, when known for the window (delta temporality or a single interval).
    pub min: Option<f64>,
    /// Largest value, when known.
    pub max: Option<f64>,
}

impl HistogramSummary {
    /// Quantile by linear interpolation inside the bucket holding the rank.
    ///
    /// Error bound: the true value lies in the same bucket, so the error is at most that bucket's
    /// width (for the open-ended last bucket the estimate is the bucket's lower bound, or `max`).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            if (seen + c) as f64 >= rank {
                let lower = if i == 0 {
                    self.min
                        .unwrap_or(0.0)
                        .min(self.bounds.first().copied().unwrap_or(0.0))
                } else {
                    match self.bounds.get(i - 1) {
                        Some(&b) => b,
                        // More buckets than bounds: malformed input, nothing to interpolate.
                        None => return self.max.or(self.bounds.last().copied()),
                    }
                };
                let upper = match self.bounds.get(i) {
                    Some(&b) => b,
                    None => return Some(self.max.unwrap_or(lower)),
                };
                let frac = ((rank - seen as f64) / c as f64).clamp(0.0, 1.0);
                let mut v = lower + (upper - lower) * frac;
                if let Some(min) = self.min {
                    v = v.max(min)
                }
                if let Some(max) = self.max {
                    v = v.min(max)
                }
                return Some(v);
            }
            seen += c;
        }
        self.max
    }

    /// Mean of the values.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// [`Self::absorb`] of one stored interval, without copying it first.
    pub(super) fn absorb_delta(&mut self, other: &HistogramDelta) -> bool {
        self.add(
            &other.bounds,
            &other.counts,
            other.count,
            other.sum,
            other.min,
            other.max,
        )
    }

    /// Adds `other`'s values; a histogram with other bucket bounds is skipped (`false`).
    /// Min and max stay known only while both sides know them.
    pub(super) fn absorb(&mut self, other: &HistogramSummary) -> bool {
        self.add(
            &other.bounds,
            &other.counts,
            other.count,
            other.sum,
            other.min,
            other.max,
        )
    }

    fn add(
        &mut self,
        bounds: &[f64],
        counts: &[u64],
        count: u64,
        sum: f64,
        min: Option<f64>,
        max: Option<f64>,
    ) -> bool {
        if self.bounds[..] != *bounds || self.counts.len() != counts.len() {
            return false;
        }
        for (a, c) in self.counts.iter_mut().zip(counts) {
            *a += c;
        }
        self.count += count;
        self.sum += sum;
        self.min = self.min.zip(min).map(|(a, b)| a.min(b));
        self.max = self.max.zip(max).map(|(a, b)| a.max(b));
        true
    }
}

/// Statistics of a gauge or up-down counter over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeStats {
    /// Last value.
    pub last: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean of the sampled values.
    pub mean: f64,
    /// Number of samples (collections x series).
    pub samples: u64,
}

impl GaugeStats {
    pub(super) fn of(values: &[f64]) -> Option<GaugeStats> {
        Some(GaugeStats {
            last: *values.last()?,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean: values.iter().sum::<f64>() / values.len() as f64,
            samples: values.len() as u64,
        })
    }
}

/// One ended span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Start time.
    pub start: SystemTime,
    /// End time.
    pub end: SystemTime,
    /// Whether the span ended with an error status.
    pub error: bool,
    /// The `error.type` attribute or the status description, when the span failed.
    pub error_type: Option<String>,
    /// Attributes, values as text.
    pub attributes: Attributes,
}

impl SpanRecord {
    /// Duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.end
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// Span statistics over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanStats {
    /// Spans ended in the window.
    pub count: u64,
    /// Of which with an error status.
    pub errors: u64,
    /// Durations in seconds.
    pub durations: Sketch,
    /// Resource usage the spans carried (`genscope.usage.*` attributes).
    pub usage: UsageStats,
}

/// One `genscope.usage.*` attribute over the spans that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStat {
    /// Spans that carried the attribute (absent = not measured, never counted as zero).
    pub samples: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Largest value.
    pub max: f64,
}

impl UsageStat {
    fn add(&mut self, v: f64) {
        self.max = if self.samples == 0 {
            v
        } else {
            self.max.max(v)
        };
        self.samples += 1;
        self.sum += v;
    }
    /// Adds another statistic of the same attribute.
    pub fn merge(&mut self, o: &UsageStat) {
        if o.samples == 0 {
            return;
        }
        self.max = if self.samples == 0 {
            o.max
        } else {
            self.max.max(o.max)
        };
        self.samples += o.samples;
        self.sum += o.sum;
    }
    /// Mean over the spans that carried it.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum / self.samples as f64)
    }
}

/// Resource usage of spans, per `genscope.usage.*` attribute (units as on the span: seconds,
/// ratios, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStats {
    /// `genscope.usage.cpu.time`, s.
    pub cpu_time: UsageStat,
    /// `genscope.usage.process.cpu.utilization`, 0..1.
    pub process_cpu_utilization: UsageStat,
    /// `genscope.usage.memory.rss.delta`, By.
    pub rss_delta: UsageStat,
    /// `genscope.usage.memory.rss.peak`, By.
    pub rss_peak: UsageStat,
    /// `genscope.usage.gpu.utilization`, 0..1.
    pub gpu_utilization: UsageStat,
    /// `genscope.usage.gpu.memory.peak`, By.
    pub gpu_memory_peak: UsageStat,
}

impl UsageStats {
    /// Adds another set of usage statistics (e.g. several span names into one).
    pub fn merge(&mut self, o: &UsageStats) {
        self.cpu_time.merge(&o.cpu_time);
        self.process_cpu_utilization
            .merge(&o.process_cpu_utilization);
        self.rss_delta.merge(&o.rss_delta);
        self.rss_peak.merge(&o.rss_peak);
        self.gpu_utilization.merge(&o.gpu_utilization);
        self.gpu_memory_peak.merge(&o.gpu_memory_peak);
    }

    fn add_attribute(&mut self, key: &str, value: &opentelemetry::Value) {
        use crate::operations as ops;
        let stat = match key {
            ops::CPU_TIME => &mut self.cpu_time,
            ops::PROCESS_CPU_UTILIZATION => &mut self.process_cpu_utilization,
            ops::RSS_DELTA => &mut self.rss_delta,
            ops::RSS_PEAK => &mut self.rss_peak,
            ops::GPU_UTILIZATION => &mut self.gpu_utilization,
            ops::GPU_MEMORY_PEAK => &mut self.gpu_memory_peak,
            _ => return,
        };
        let v = match value {
            opentelemetry::Value::F64(v) => *v,
            opentelemetry::Value::I64(v) => *v as f64,
            _ => return,
        };
        if v.is_finite() {
            stat.add(v);
        }
    }
}

impl SpanStats {
    /// Errors / count.
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum PointValue {
    /// `total` is the series value at `time`; `delta` the change since the previous point.
    Sum {
        total: f64,
        delta: f64,
    },
    Gauge(f64),
    /// Boxed: most points are sums and gauges, and a point's size is its largest variant's.
    Histogram(Box<HistogramDelta>),
}

#[derive(Debug, Clone)]
pub(super) struct HistogramDelta {
    pub(super) bounds: Arc<[f64]>,
    pub(super) counts: Vec<u64>,
    pub(super) count: u64,
    pub(super) sum: f64,
    pub(super) min: Option<f64>,
    pub(super) max: Option<f64>,
}

impl HistogramDelta {
    /// The delta as a summary of its own.
    pub(super) fn summary(&self) -> HistogramSummary {
        HistogramSummary {
            bounds: self.bounds.to_vec(),
            counts: self.counts.clone(),
            count: self.count,
            sum: self.sum,
            min: self.min,
            max: self.max,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Point {
    /// Nanoseconds since the Unix epoch: 8 bytes instead of `SystemTime`'s 16, on the type the
    /// store holds most of.
    time_ns: u64,
    pub(super) value: PointValue,
}

impl Point {
    fn new(time: SystemTime, value: PointValue) -> Point {
        let ns = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Point {
            time_ns: u64::try_from(ns).unwrap_or(u64::MAX),
            value,
        }
    }

    pub(super) fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.time_ns)
    }
}

#[derive(Debug, Clone)]
enum Previous {
    Sum {
        start: SystemTime,
        total: f64,
    },
    Histogram {
        start: SystemTime,
        counts: Vec<u64>,
        count: u64,
        sum: f64,
    },
}

#[derive(Debug, Default)]
struct Series {
    points: VecDeque<Point>,
    previous: Option<Previous>,
    /// Bucket bounds shared by this series' histogram points (one allocation, not one per point).
    bounds: Option<Arc<[f64]>>,
    /// The series' current value as a cumulative view (what `/metrics` and file export show).
    state: Option<SeriesSnapshot>,
}

/// The current value of one series, as a cumulative view whatever the wire temporality.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter's or up-down counter's running total.
    Sum(f64),
    /// A gauge's last value.
    Gauge(f64),
    /// A histogram's cumulative buckets since `start`.
    Histogram {
        /// Explicit bucket upper bounds (empty for an exponential histogram).
        bounds: Vec<f64>,
        /// Counts per bucket (`bounds.len() + 1`).
        counts: Vec<u64>,
        /// Number of values.
        count: u64,
        /// Sum of values.
        sum: f64,
        /// Smallest value, when known.
        min: Option<f64>,
        /// Largest value, when known.
        max: Option<f64>,
    },
}

/// One series in a [`MetricSnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// Attributes.
    pub attributes: Attributes,
    /// Start of the cumulative series (a reset moves it).
    pub start: SystemTime,
    /// Time of the latest collection that reported it.
    pub time: SystemTime,
    /// Value.
    pub value: SeriesValue,
}

/// One metric's current state, from [`AnalyzerStore::snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSnapshot {
    /// OTel name.
    pub name: String,
    /// UCUM unit.
    pub unit: String,
    /// Description.
    pub description: String,
    /// Kind.
    pub kind: MetricKind,
    /// Series, sorted by attributes.
    pub series: Vec<SeriesSnapshot>,
}

#[derive(Debug)]
struct MetricHistory {
    unit: String,
    description: String,
    kind: MetricKind,
    series: HashMap<Attributes, Series>,
}

#[derive(Debug, Clone)]
pub(super) struct SpanSlot {
    pub(super) start: SystemTime,
    pub(super) count: u64,
    pub(super) errors: u64,
    pub(super) durations: Sketch,
    pub(super) usage: UsageStats,
}

impl SpanSlot {
    fn new(start: SystemTime) -> Self {
        SpanSlot {
            start,
            count: 0,
            errors: 0,
            durations: Sketch::default(),
            usage: UsageStats::default(),
        }
    }

    /// The slot starting at `slot_start`, inserted in order when missing. Spans arrive nearly
    /// in end-time order, so the search runs from the back.
    fn find_or_insert(slots: &mut VecDeque<SpanSlot>, slot_start: SystemTime) -> &mut SpanSlot {
        let pos = slots.iter().rposition(|s| s.start <= slot_start);
        match pos {
            Some(i) if slots[i].start == slot_start => &mut slots[i],
            Some(i) => {
                slots.insert(i + 1, SpanSlot::new(slot_start));
                &mut slots[i + 1]
            }
            None => {
                slots.push_front(SpanSlot::new(slot_start));
                &mut slots[0]
            }
        }
    }

    fn add(&mut self, failed: bool, duration: f64, usage: &UsageStats) {
        self.count += 1;
        self.errors += u64::from(failed);
        self.durations.insert(duration);
        self.usage.merge(usage);
    }
}

#[derive(Debug, Default)]
pub(super) struct Inner {
    metrics: HashMap<String, MetricHistory>,
    span_slots: HashMap<String, VecDeque<SpanSlot>>,
    /// Spans of genscope operations, by (`genscope.operation.type`, `genscope.operation.name`).
    pub(super) operation_slots: HashMap<(String, String), VecDeque<SpanSlot>>,
    recent_spans: VecDeque<SpanRecord>,
    pub(super) resource: Attributes,
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
    pub(super) dashboard: super::report::DashboardCache,
}

fn attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attributes {
    let mut out: Attributes = kvs
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    out.sort();
    out
}

fn overflow_attributes() -> Attributes {
    vec![(OVERFLOW_KEY.to_string(), "true".to_string())]
}

fn matches(attrs: &Attributes, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| attrs.iter().any(|(ak, av)| ak == k && av == v))
}

impl AnalyzerStore {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        AnalyzerStore {
            config,
            inner: Mutex::new(Inner::default()),
            retired: None,
            dashboard: Default::default(),
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

    /// Every metric's current value per series (cumulative view), sorted by name: what
    /// `/metrics` and [`crate::Genscope::export_metrics`] render. Series not reported within the
    /// retention are gone.
    ///
    /// ```
    /// # use genscope::analyzer::{AnalyzerStore, StoreConfig};
    /// let store = AnalyzerStore::new(StoreConfig::default());
    /// assert!(store.snapshot().is_empty());
    /// ```
    pub fn snapshot(&self) -> Vec<MetricSnapshot> {
        let inner = self.lock();
        let mut out: Vec<MetricSnapshot> = inner
            .metrics
            .iter()
            .map(|(name, m)| {
                let mut series: Vec<SeriesSnapshot> =
                    m.series.values().filter_map(|s| s.state.clone()).collect();
                series.sort_by(|a, b| a.attributes.cmp(&b.attributes));
                MetricSnapshot {
                    name: name.clone(),
                    unit: m.unit.clone(),
                    description: m.description.clone(),
                    kind: m.kind,
                    series,
                }
            })
            .filter(|m| !m.series.is_empty())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The store's limits.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
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

    /// Every metric held, sorted by name.
    pub fn metrics(&self) -> Vec<MetricInfo> {
        let inner = self.lock();
        let mut out: Vec<MetricInfo> = inner
            .metrics
            .iter()
            .map(|(name, m)| MetricInfo {
                name: name.clone(),
                unit: m.unit.clone(),
                description: m.description.clone(),
                kind: m.kind,
                series: m.series.len(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Attribute sets of a metric's series.
    pub fn series(&self, name: &str) -> Vec<Attributes> {
        let inner = self.lock();
        let mut out: Vec<Attributes> = inner
            .metrics
            .get(name)
            .map(|m| m.series.keys().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    pub(super) fn each_point(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
        mut f: impl FnMut(&Attributes, &Point),
    ) -> bool {
        let inner = self.lock();
        let Some(m) = inner.metrics.get(name) else {
            return false;
        };
        for (attrs, series) in &m.series {
            if !matches(attrs, filter) {
                continue;
            }
            for p in series.points.iter().filter(|p| window.contains(p.time())) {
                f(attrs, p);
            }
        }
        true
    }

    /// Increase of a counter (or net change of an up-down counter) over the window, summed over the
    /// series whose attributes include `filter`. `None` if the metric is unknown.
    ///
    /// ```
    /// # use genscope::analyzer::{AnalyzerStore, StoreConfig, Window};
    /// let store = AnalyzerStore::new(StoreConfig::default());
    /// assert_eq!(store.sum("requests", &[("route", "/generate")], Window::all()), None);
    /// ```
    pub fn sum(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<f64> {
        let mut total = 0.0;
        let mut any = false;
        let known = self.each_point(name, filter, window, |_, p| {
            if let PointValue::Sum { delta, .. } = p.value {
                total += delta;
                any = true;
            }
        });
        (known && any).then_some(total)
    }

    /// [`Self::sum`] divided by the window length, per second.
    pub fn rate(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<f64> {
        let secs = window.seconds();
        self.sum(name, filter, window)
            .filter(|_| secs > 0.0)
            .map(|s| s / secs)
    }

    /// The kind of a metric, if held.
    pub(super) fn kind(&self, name: &str) -> Option<MetricKind> {
        self.lock().metrics.get(name).map(|m| m.kind)
    }

    /// Per-collection samples of a gauge or a sum's running total over the window, oldest first;
    /// with several matching series, each collection's values are summed across series.
    pub(super) fn samples(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Vec<f64> {
        let mut by_time: Vec<(SystemTime, f64)> = Vec::new();
        self.each_point(name, filter, window, |_, p| {
            let v = match p.value {
                PointValue::Gauge(v) => v,
                PointValue::Sum { total, .. } => total,
                PointValue::Histogram(_) => return,
            };
            by_time.push((p.time(), v));
        });
        by_time.sort_by_key(|(t, _)| *t);
        let mut merged: Vec<(SystemTime, f64)> = Vec::new();
        for (t, v) in by_time {
            match merged.last_mut() {
                Some((lt, lv)) if *lt == t => *lv += v,
                _ => merged.push((t, v)),
            }
        }
        merged.into_iter().map(|(_, v)| v).collect()
    }

    /// Sampled values of a gauge, or of an up-down counter's running value, over the window.
    /// With several matching series, each collection's values are summed across series first.
    pub fn gauge(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<GaugeStats> {
        GaugeStats::of(&self.samples(name, filter, window))
    }

    /// A histogram's buckets merged over the window and the matching series.
    /// Series with different bucket boundaries than the first are skipped.
    ///
    /// Min and max are exact with delta temporality; with cumulative temporality the wire
    /// carries only lifetime extremes, so they are `None` past the first interval and
    /// [`HistogramSummary::quantile`] falls back to bucket bounds.
    pub fn histogram(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
    ) -> Option<HistogramSummary> {
        let mut out: Option<HistogramSummary> = None;
        self.each_point(name, filter, window, |_, p| {
            let PointValue::Histogram(h) = &p.value else {
                return;
            };
            match &mut out {
                None => out = Some(h.summary()),
                Some(acc) => {
                    acc.absorb(&h.summary());
                }
            }
        });
        out
    }

    /// Span statistics over the window for one span name, or all spans with `None`.
    /// Resolution is the slot width: slots overlapping the window count whole.
    pub fn span_stats(&self, name: Option<&str>, window: Window) -> SpanStats {
        let inner = self.lock();
        let mut stats = SpanStats::default();
        for (n, slots) in &inner.span_slots {
            if name.is_some_and(|want| want != n) {
                continue;
            }
            for slot in slots {
                let start = slot.start;
                let end = start + self.config.resolution;
                if end > window.start && start <= window.end {
                    stats.count += slot.count;
                    stats.errors += slot.errors;
                    stats.durations.merge(&slot.durations);
                    stats.usage.merge(&slot.usage);
                }
            }
        }
        stats
    }

    /// Span names seen, sorted.
    pub fn span_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().span_slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// The most recent ended spans, newest last, at most `limit`.
    pub fn recent_spans(&self, limit: usize) -> Vec<SpanRecord> {
        let inner = self.lock();
        let skip = inner.recent_spans.len().saturating_sub(limit);
        inner.recent_spans.iter().skip(skip).cloned().collect()
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

    fn ingest_metric(&self, inner: &mut Inner, metric: &Metric) {
        let (kind, points) = match metric.data() {
            AggregatedMetrics::F64(d) => convert(d, |v| v),
            AggregatedMetrics::U64(d) => convert(d, |v| v as f64),
            AggregatedMetrics::I64(d) => convert(d, |v| v as f64),
        };
        self.ingest_points(
            inner,
            MetricMeta {
                name: metric.name(),
                unit: metric.unit(),
                description: metric.description(),
                kind,
            },
            points,
        );
    }

    /// Ingests one metric's points of one collection (from the SDK or from an OTLP file).
    pub(super) fn ingest_points(
        &self,
        inner: &mut Inner,
        meta: MetricMeta<'_>,
        points: Vec<RawPoint>,
    ) {
        let kind = meta.kind;
        let max_series = self.config.max_series_per_metric;
        // One point per collection for the whole retention, allocated once (no doubling).
        let expected_points = (self.config.retention.as_secs_f64()
            / self.config.resolution.as_secs_f64().max(0.001))
        .ceil()
        .clamp(1.0, 4096.0) as usize
            + 2;
        let history = inner
            .metrics
            .entry(meta.name.to_string())
            .or_insert_with(|| MetricHistory {
                unit: meta.unit.to_string(),
                description: meta.description.to_string(),
                kind,
                series: HashMap::new(),
            });
        history.kind = kind;
        // Series past the limit are summed into one overflow point per collection *before*
        // normalizing, so the overflow series is itself a consistent cumulative (or delta) series.
        let mut overflow: Option<RawPoint> = None;
        let overflow_attrs = overflow_attributes();
        for raw in points {
            // The SDK's own overflow series joins ours, so the series gets one point per collection.
            if raw.attributes != overflow_attrs
                && (history.series.contains_key(&raw.attributes)
                    || history.series.len() < max_series)
            {
                let series = history.series.entry(raw.attributes.clone()).or_default();
                if let Some(point) = series.normalize(&raw.attributes, raw.time, raw.value) {
                    series.push(point, expected_points);
                }
            } else {
                match &mut overflow {
                    None => {
                        overflow = Some(RawPoint {
                            attributes: overflow_attributes(),
                            ..raw
                        })
                    }
                    Some(acc) => acc.value.absorb(raw.value),
                }
            }
        }
        if let Some(raw) = overflow {
            let series = history.series.entry(raw.attributes.clone()).or_default();
            if let Some(point) = series.normalize(&raw.attributes, raw.time, raw.value) {
                series.points.push_back(point);
            }
        }
    }

    fn ingest_span(&self, inner: &mut Inner, span: &SpanData) {
        let parent = span.parent_span_id;
        self.ingest_span_input(
            inner,
            SpanInput {
                name: span.name.as_ref(),
                start_time: span.start_time,
                end_time: span.end_time,
                status_error: match &span.status {
                    Status::Error { description } => Some(description.as_ref()),
                    _ => None,
                },
                attributes: &span.attributes,
                trace_id: span.span_context.trace_id().to_string(),
                span_id: span.span_context.span_id().to_string(),
                parent_span_id: (parent != opentelemetry::trace::SpanId::INVALID)
                    .then(|| parent.to_string()),
            },
        );
    }

    /// Ingests one ended span (from the SDK or from an OTLP file).
    pub(super) fn ingest_span_input(&self, inner: &mut Inner, span: SpanInput<'_>) {
        let error_type = span.status_error.map(|description| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| kv.value.to_string())
                .unwrap_or_else(|| {
                    if description.is_empty() {
                        "error".into()
                    } else {
                        description.to_string()
                    }
                })
        });
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default()
            .as_secs_f64();
        let slot_start = align(span.end_time, self.config.resolution);
        let name = if inner.span_slots.contains_key(span.name)
            || inner.span_slots.len() < MAX_SPAN_NAMES
        {
            span.name.to_string()
        } else {
            OVERFLOW_SPAN_NAME.to_string()
        };
        let mut usage = UsageStats::default();
        let (mut op_type, mut op_name) = (None, None);
        for kv in span.attributes {
            let key = kv.key.as_str();
            if key.starts_with("genscope.usage.") {
                usage.add_attribute(key, &kv.value);
            } else if key == crate::instruments::catalog::operation::OPERATION_TYPE {
                op_type = Some(kv.value.as_str());
            } else if key == crate::instruments::catalog::operation::OPERATION_NAME {
                op_name = Some(kv.value.as_str());
            }
        }
        let failed = error_type.is_some();
        let slots = inner.span_slots.entry(name).or_default();
        SpanSlot::find_or_insert(slots, slot_start).add(failed, duration, &usage);
        if let (Some(t), Some(n)) = (op_type, op_name) {
            let key = (t.into_owned(), n.into_owned());
            if inner.operation_slots.contains_key(&key)
                || inner.operation_slots.len() < MAX_SPAN_NAMES
            {
                let slots = inner.operation_slots.entry(key).or_default();
                SpanSlot::find_or_insert(slots, slot_start).add(failed, duration, &usage);
            }
        }

        inner.recent_spans.push_back(SpanRecord {
            name: span.name.to_string(),
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            start: span.start_time,
            end: span.end_time,
            error: error_type.is_some(),
            error_type,
            attributes: attributes(span.attributes.iter()),
        });
        while inner.recent_spans.len() > self.config.max_recent_spans {
            inner.recent_spans.pop_front();
        }
        inner.spans_seen += 1;
    }
}

/// What the store needs of one metric, whatever its source.
pub(super) struct MetricMeta<'a> {
    pub(super) name: &'a str,
    pub(super) unit: &'a str,
    pub(super) description: &'a str,
    pub(super) kind: MetricKind,
}

/// What the store needs of one ended span, whatever its source.
pub(super) struct SpanInput<'a> {
    pub(super) name: &'a str,
    pub(super) start_time: SystemTime,
    pub(super) end_time: SystemTime,
    /// `Some(description)` when the status is an error.
    pub(super) status_error: Option<&'a str>,
    pub(super) attributes: &'a [opentelemetry::KeyValue],
    pub(super) trace_id: String,
    pub(super) span_id: String,
    pub(super) parent_span_id: Option<String>,
}

fn align(t: SystemTime, resolution: Duration) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let res = resolution.as_nanos().max(1);
    let aligned = since.as_nanos() / res * res;
    SystemTime::UNIX_EPOCH + Duration::from_nanos(aligned as u64)
}

pub(super) struct RawPoint {
    pub(super) attributes: Attributes,
    pub(super) time: SystemTime,
    pub(super) value: RawValue,
}

pub(super) enum RawValue {
    Sum {
        start: SystemTime,
        value: f64,
        cumulative: bool,
    },
    Gauge(f64),
    Histogram {
        start: SystemTime,
        cumulative: bool,
        delta: HistogramDelta,
    },
}

impl RawValue {
    /// Adds another series' point of the same collection (for the overflow series).
    fn absorb(&mut self, other: RawValue) {
        match (self, other) {
            (RawValue::Sum { value, .. }, RawValue::Sum { value: v, .. }) => *value += v,
            (RawValue::Gauge(value), RawValue::Gauge(v)) => *value += v,
            (RawValue::Histogram { delta: acc, .. }, RawValue::Histogram { delta: h, .. })
                if acc.counts.len() == h.counts.len() =>
            {
                for (a, c) in acc.counts.iter_mut().zip(&h.counts) {
                    *a += c;
                }
                acc.count += h.count;
                acc.sum += h.sum;
                acc.min = match (acc.min, h.min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                acc.max = match (acc.max, h.max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => {}
        }
    }
}

fn convert<T: Copy>(
    data: &MetricData<T>,
    to_f64: impl Fn(T) -> f64,
) -> (MetricKind, Vec<RawPoint>) {
    match data {
        MetricData::Gauge(g) => (
            MetricKind::Gauge,
            g.data_points()
                .map(|p| RawPoint {
                    attributes: attributes(p.attributes()),
                    time: g.time(),
                    value: RawValue::Gauge(to_f64(p.value())),
                })
                .collect(),
        ),
        MetricData::Sum(s) => (
            if s.is_monotonic() {
                MetricKind::Counter
            } else {
                MetricKind::UpDownCounter
            },
            sum_points(s, &to_f64),
        ),
        MetricData::Histogram(h) => (MetricKind::Histogram, histogram_points(h, &to_f64)),
        MetricData::ExponentialHistogram(h) => (
            MetricKind::ExponentialHistogram,
            h.data_points()
                .map(|p| RawPoint {
                    attributes: attributes(p.attributes()),
                    time: h.time(),
                    value: RawValue::Histogram {
                        start: h.start_time(),
                        cumulative: h.temporality() == Temporality::Cumulative,
                        delta: HistogramDelta {
                            bounds: Arc::from(Vec::new()),
                            counts: vec![p.count() as u64],
                            count: p.count() as u64,
                            sum: to_f64(p.sum()),
                            min: p.min().map(&to_f64),
                            max: p.max().map(&to_f64),
                        },
                    },
                })
                .collect(),
        ),
    }
}

fn sum_points<T: Copy>(s: &Sum<T>, to_f64: &impl Fn(T) -> f64) -> Vec<RawPoint> {
    let cumulative = s.temporality() == Temporality::Cumulative;
    s.data_points()
        .map(|p| RawPoint {
            attributes: attributes(p.attributes()),
            time: s.time(),
            value: RawValue::Sum {
                start: s.start_time(),
                value: to_f64(p.value()),
                cumulative,
            },
        })
        .collect()
}

fn histogram_points<T: Copy>(h: &Histogram<T>, to_f64: &impl Fn(T) -> f64) -> Vec<RawPoint> {
    let cumulative = h.temporality() == Temporality::Cumulative;
    h.data_points()
        .map(|p| RawPoint {
            attributes: attributes(p.attributes()),
            time: h.time(),
            value: RawValue::Histogram {
                start: h.start_time(),
                cumulative,
                delta: HistogramDelta {
                    bounds: Arc::from(p.bounds().collect::<Vec<f64>>()),
                    counts: p.bucket_counts().collect(),
                    count: p.count(),
                    sum: to_f64(p.sum()),
                    min: p.min().map(to_f64),
                    max: p.max().map(to_f64),
                },
            },
        })
        .collect()
}

impl Series {
    /// Appends a point. Capacity grows by doubling up to 64 points, then straight to one
    /// retention's worth (`expected`), so a long-lived series holds no doubling slack and a
    /// short-lived one does not reserve a whole retention.
    fn push(&mut self, point: Point, expected: usize) {
        let len = self.points.len();
        if len == self.points.capacity() && len >= 64 && len < expected {
            self.points.reserve_exact(expected - len);
        }
        self.points.push_back(point);
    }

    /// The series' shared copy of `bounds` (replacing it when the bounds changed).
    fn share_bounds(&mut self, bounds: &Arc<[f64]>) -> Arc<[f64]> {
        match &self.bounds {
            Some(b) if b[..] == bounds[..] => Arc::clone(b),
            _ => {
                self.bounds = Some(Arc::clone(bounds));
                Arc::clone(bounds)
            }
        }
    }

    /// Turns an exported point into a stored delta point, remembering cumulative state and the
    /// series' current value.
    fn normalize(
        &mut self,
        attributes: &Attributes,
        time: SystemTime,
        value: RawValue,
    ) -> Option<Point> {
        let (value, start, current) = match value {
            RawValue::Gauge(v) => {
                let start = self.state.as_ref().map_or(time, |s| s.start);
                (PointValue::Gauge(v), start, SeriesValue::Gauge(v))
            }
            RawValue::Sum {
                start,
                value,
                cumulative: true,
            } => {
                let delta = match &self.previous {
                    // Same start time: the same cumulative series (an up-down counter may go down).
                    Some(Previous::Sum { start: s, total }) if *s == start => value - total,
                    // First point, or a new start time (a reset): everything since the start.
                    _ => value,
                };
                self.previous = Some(Previous::Sum {
                    start,
                    total: value,
                });
                (
                    PointValue::Sum {
                        total: value,
                        delta,
                    },
                    start,
                    SeriesValue::Sum(value),
                )
            }
            RawValue::Sum {
                start,
                value,
                cumulative: false,
            } => {
                let total = match &self.previous {
                    Some(Previous::Sum { total, .. }) => total + value,
                    _ => value,
                };
                self.previous = Some(Previous::Sum { start: time, total });
                let first = self.state.as_ref().map_or(start, |s| s.start);
                (
                    PointValue::Sum {
                        total,
                        delta: value,
                    },
                    first,
                    SeriesValue::Sum(total),
                )
            }
            RawValue::Histogram {
                start,
                cumulative: true,
                delta: mut current,
            } => {
                current.bounds = self.share_bounds(&current.bounds);
                let out = match &self.previous {
                    Some(Previous::Histogram {
                        start: s,
                        counts,
                        count,
                        sum,
                    }) if *s == start
                        && current.count >= *count
                        && counts.len() == current.counts.len() =>
                    {
                        HistogramDelta {
                            bounds: current.bounds.clone(),
                            counts: current
                                .counts
                                .iter()
                                .zip(counts)
                                .map(|(c, p)| c.saturating_sub(*p))
                                .collect(),
                            count: current.count - count,
                            sum: current.sum - sum,
                            // Cumulative min/max cover the whole series life, not this interval.
                            min: None,
                            max: None,
                        }
                    }
                    _ => current.clone(),
                };
                self.previous = Some(Previous::Histogram {
                    start,
                    counts: current.counts.clone(),
                    count: current.count,
                    sum: current.sum,
                });
                let snapshot = SeriesValue::Histogram {
                    bounds: current.bounds.to_vec(),
                    counts: current.counts,
                    count: current.count,
                    sum: current.sum,
                    min: current.min,
                    max: current.max,
                };
                self.set_state(attributes, start, time, snapshot);
                if out.count == 0 && !self.points.is_empty() {
                    // Nothing recorded this interval: keep the store small.
                    return None;
                }
                return Some(Point::new(time, PointValue::Histogram(Box::new(out))));
            }
            RawValue::Histogram {
                start,
                cumulative: false,
                mut delta,
            } => {
                delta.bounds = self.share_bounds(&delta.bounds);
                let (first, merged) = match self.state.take() {
                    Some(SeriesSnapshot {
                        start: first,
                        value:
                            SeriesValue::Histogram {
                                bounds,
                                mut counts,
                                count,
                                sum,
                                min,
                                max,
                            },
                        ..
                    }) if counts.len() == delta.counts.len() => {
                        for (a, c) in counts.iter_mut().zip(&delta.counts) {
                            *a += c;
                        }
                        (
                            first,
                            SeriesValue::Histogram {
                                bounds,
                                counts,
                                count: count + delta.count,
                                sum: sum + delta.sum,
                                min: min_opt(min, delta.min),
                                max: max_opt(max, delta.max),
                            },
                        )
                    }
                    _ => (
                        start,
                        SeriesValue::Histogram {
                            bounds: delta.bounds.to_vec(),
                            counts: delta.counts.clone(),
                            count: delta.count,
                            sum: delta.sum,
                            min: delta.min,
                            max: delta.max,
                        },
                    ),
                };
                self.set_state(attributes, first, time, merged);
                if delta.count == 0 {
                    return None;
                }
                return Some(Point::new(time, PointValue::Histogram(Box::new(delta))));
            }
        };
        self.set_state(attributes, start, time, current);
        Some(Point::new(time, value))
    }

    fn set_state(
        &mut self,
        attributes: &Attributes,
        start: SystemTime,
        time: SystemTime,
        value: SeriesValue,
    ) {
        self.state = Some(SeriesSnapshot {
            attributes: attributes.clone(),
            start,
            time,
            value,
        });
    }
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl ExportObserver for AnalyzerStore {
    fn observe_metrics(&self, metrics: &ResourceMetrics) {
        let now = SystemTime::now();
        {
            let mut inner = self.lock();
            if inner.resource.is_empty() {
                inner.resource = resource_attributes(metrics.resource());
            }
            let retired = self.retired.as_deref().filter(|r| !r.is_empty());
            if let Some(r) = retired {
                for name in r.take_purged() {
                    inner.metrics.remove(&name);
                }
            }
            for scope in metrics.scope_metrics() {
                let generation = retired.and_then(|_| {
                    (scope.scope().name() == COLLECTOR_SCOPE).then(|| {
                        scope
                            .scope()
                            .attributes()
                            .find(|kv| kv.key.as_str() == GENERATION_KEY)
                            .and_then(|kv| match kv.value {
                                opentelemetry::Value::I64(g) => Some(g as u64),
                                _ => None,
                            })
                            .unwrap_or(0)
                    })
                });
                for metric in scope.metrics() {
                    if let (Some(r), Some(g)) = (retired, generation)
                        && r.is_retired(metric.name(), g)
                    {
                        continue;
                    }
                    self.ingest_metric(&mut inner, metric);
                }
            }
            inner.metric_batches += 1;
            inner.last_collection = Some(now);
        }
        self.prune(now);
    }

    fn observe_spans(&self, spans: &[SpanData]) {
        {
            let mut inner = self.lock();
            for span in spans {
                self.ingest_span(&mut inner, span);
            }
            inner.span_batches += 1;
        }
        self.prune(SystemTime::now());
    }

    fn observe_resource(&self, resource: &Resource) {
        self.lock().resource = resource_attributes(resource);
    }
}

fn resource_attributes(resource: &Resource) -> Attributes {
    let mut out: Attributes = resource
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}
