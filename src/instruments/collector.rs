//! [`MetricsCollector`]: define metrics, record them by name or through bound handles.
//!
//! Hot paths (marked below) take no lock and, once warm, allocate nothing: by-name recording
//! reads an immutable registry snapshot (`arc-swap`), hashes the name once (`foldhash`) and
//! records through this thread's cached SDK bound handle for the attribute set
//! ([`super::handle_cache`]); bound handles skip both lookups ([`super::bound`]). Definitions,
//! resets and deletes swap in a new snapshot under a mutex; they are rare.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use opentelemetry::metrics::{
    AsyncInstrument, Counter, Gauge, Histogram, Meter, MeterProvider as _, ObservableCounter,
    ObservableGauge, ObservableUpDownCounter, UpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::bound::{BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter, Folds};
use super::catalog;
use super::definition::{DefinitionError, InstrumentKind, MetricDefinition};
use super::handle_cache::{Cache, Handle, Lookup};
use super::streams::{COLLECTOR_SCOPE, GENERATION_KEY, RetiredStreams};
use crate::config::ContentCapture;

/// Why a recording was refused. It was counted in `genscope.metric.rejected` (by `error.type`)
/// and nothing was recorded.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let err = telemetry.metrics().increment_counter("app.requests", -1.0, &[]).unwrap_err();
/// assert!(err.to_string().contains("negative"), "{err}");
/// assert_eq!(telemetry.metrics().rejected(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A value the instrument cannot take (NaN, infinite, or negative for a counter or timer).
    #[error("metric {metric:?} refused value {value}: {reason}")]
    InvalidValue {
        /// The metric.
        metric: String,
        /// The value.
        value: f64,
        /// Why.
        reason: &'static str,
    },
    /// The metric exists with another kind.
    #[error("metric {metric:?} is a {defined}; it cannot be recorded as a {used}")]
    KindMismatch {
        /// The metric.
        metric: String,
        /// Its defined kind.
        defined: InstrumentKind,
        /// The kind the call implies.
        used: InstrumentKind,
    },
    /// An attribute key outside the definition's expected keys.
    #[error("metric {metric:?} does not take attribute {key:?}; its definition allows {expected}")]
    UnexpectedAttribute {
        /// The metric.
        metric: String,
        /// The key.
        key: String,
        /// The allowed keys.
        expected: String,
    },
    /// An empty attribute key.
    #[error("metric {metric:?} got an attribute with an empty key")]
    EmptyAttributeKey {
        /// The metric.
        metric: String,
    },
    /// No metric of that name is defined (reset, delete, get).
    #[error("no metric named {metric:?} is defined")]
    UnknownMetric {
        /// The name.
        metric: String,
    },
    /// The metric is observed by an `add_collector` callback and takes no direct recordings.
    #[error(
        "metric {metric:?} is observed by a collector callback; it cannot be recorded directly"
    )]
    Observed {
        /// The metric.
        metric: String,
    },
    /// Recording by name would have defined the metric, and the definition is invalid.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
}

impl RecordError {
    fn error_type(&self) -> usize {
        match self {
            RecordError::InvalidValue { reason, .. } if reason.starts_with("negative") => 0,
            RecordError::InvalidValue { .. } => 1,
            RecordError::KindMismatch { .. } | RecordError::Observed { .. } => 2,
            RecordError::UnexpectedAttribute { .. } | RecordError::EmptyAttributeKey { .. } => 3,
            RecordError::UnknownMetric { .. } => 4,
            RecordError::Definition(_) => 5,
        }
    }
}

const REJECTION_TYPES: [&str; 6] = [
    "negative_value",
    "not_finite",
    "kind_mismatch",
    "invalid_attribute",
    "unknown_metric",
    "invalid_definition",
];

#[derive(Debug, Default)]
struct Counts {
    rejected: [AtomicU64; 6],
    collector_panics: AtomicU64,
    collector_panic_logged: AtomicBool,
    time_error_logged: AtomicBool,
}

impl Counts {
    #[cold]
    fn reject(&self, e: RecordError) -> RecordError {
        self.rejected[e.error_type()].fetch_add(1, Ordering::Relaxed);
        e
    }
}

#[derive(Clone)]
enum Instrument {
    Counter(Counter<f64>),
    UpDownCounter(UpDownCounter<f64>),
    Gauge(Gauge<f64>),
    Histogram(Histogram<f64>),
    Observed(Arc<AtomicBool>),
}

type Callback = Arc<dyn Fn(&mut Observations<'_>) + Send + Sync>;

pub(super) struct Entry {
    pub(super) definition: MetricDefinition,
    generation: u64,
    instrument: Instrument,
    callback: Option<Callback>,
    counts: Arc<Counts>,
}

type Registry = HashMap<Arc<str>, Arc<Entry>, foldhash::fast::RandomState>;

/// Per-thread state of the by-name hot path (one thread-local borrow per call).
struct ThreadState {
    /// `(collector id, registry version, snapshot)`: valid while the version matches (`arc-swap`'s
    /// own `load` costs an atomic read-modify-write per call; this costs a plain load).
    snapshot: Option<(usize, u64, Arc<Registry>)>,
    /// SDK bound handles per attribute set ([`super::handle_cache`]).
    cache: Cache,
}

thread_local! {
    static THREAD: std::cell::RefCell<ThreadState> = const {
        std::cell::RefCell::new(ThreadState { snapshot: None, cache: Cache::new() })
    };
}

struct Shared {
    /// Process-unique id, keys the per-thread registry cache.
    id: usize,
    /// Bumped after every registry swap; a thread's cached snapshot is valid while it matches.
    version: AtomicU64,
    provider: Option<SdkMeterProvider>,
    registry: ArcSwap<Registry>,
    define_lock: Mutex<()>,
    next_generation: AtomicU64,
    retired: Arc<RetiredStreams>,
    counts: Arc<Counts>,
    content_capture: ContentCapture,
    db_pools: catalog::db::Pools,
    /// Per-thread sums of bound counters, folded into the SDK at every collection.
    folds: Arc<Folds>,
}

/// The seeds' `MetricsCollector`, on OpenTelemetry instruments.
///
/// Every metric is an OTel instrument on genscope's meter provider, so it is exported over OTLP,
/// seen by the analyzer and served on `/metrics` like any other. Get it from
/// [`crate::Genscope::metrics`]; it is cheap to clone and share across threads.
///
/// * **Define** with [`create_metric`](Self::create_metric), or let the first recording by name
///   define it with its kind's defaults.
/// * **Record by name** (`increment_counter`, `add_up_down`, `set_gauge`, `record_histogram`,
///   `record_timer`, `record_rate`): one registry lookup, then this thread's cached SDK bound
///   handle for the attribute set (or the unbound SDK call for a set not seen twice in a row).
/// * **Bind** hot paths once ([`bind_counter`](Self::bind_counter), ...) and record with no lookup.
/// * **Reset / delete**: see [`reset_metric`](Self::reset_metric) and
///   [`delete_metric`](Self::delete_metric) for what they mean in OTel terms.
///
/// ```
/// use opentelemetry::KeyValue;
/// use genscope::instruments::MetricDefinition;
///
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let metrics = telemetry.metrics();
/// metrics.create_metric(MetricDefinition::timer("app.render.duration").with_attributes(["model"]))?;
/// let model = [KeyValue::new("model", "sdxl")];
/// metrics.time("app.render.duration", &model, || std::thread::sleep(std::time::Duration::from_millis(2)));
/// metrics.increment_counter("app.renders", 1.0, &model)?;
/// let renders = metrics.bind_counter("app.renders", &model)?;
/// renders.add(1.0)?; // hot path: no lookup
///
/// telemetry.force_flush()?;
/// let window = genscope::analyzer::Window::all();
/// assert_eq!(telemetry.analyzer().sum("app.renders", &[("model", "sdxl")], window), Some(2.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsCollector {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("metrics", &self.shared.registry.load().len())
            .field("enabled", &self.shared.provider.is_some())
            .finish()
    }
}

/// The hot path's result: the error boxed, so that `Ok` is one word and moving it through the
/// registry closures costs nothing (the 80-byte `Result<_, RecordError>` cost ~9 ns per call in
/// stack copies). Unboxed at the public boundary.
type Checked<T> = Result<T, Box<RecordError>>;

fn check_value(entry: &Entry, value: f64, non_negative: bool) -> Checked<()> {
    if !value.is_finite() {
        return Err(Box::new(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "not a finite number",
        }));
    }
    if non_negative && value < 0.0 {
        return Err(Box::new(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "negative; counters only go up and durations are never negative",
        }));
    }
    Ok(())
}

#[inline]
fn check_attributes(entry: &Entry, attributes: &[KeyValue]) -> Checked<()> {
    for kv in attributes {
        let key = kv.key.as_str();
        if key.is_empty() {
            return Err(Box::new(RecordError::EmptyAttributeKey {
                metric: entry.definition.name.to_string(),
            }));
        }
        if let Some(expected) = &entry.definition.attributes
            && !expected.iter().any(|k| k == key)
        {
            return Err(Box::new(RecordError::UnexpectedAttribute {
                metric: entry.definition.name.to_string(),
                key: key.to_string(),
                expected: format!("{expected:?}"),
            }));
        }
    }
    Ok(())
}

/// How a by-name call records: which kinds it accepts and which it defines.
#[derive(Clone, Copy, PartialEq)]
enum Op {
    Add,
    AddUpDown,
    Set,
    Record,
    Timer,
    Rate,
}

impl Op {
    fn defines(self) -> InstrumentKind {
        match self {
            Op::Add => InstrumentKind::Counter,
            Op::AddUpDown => InstrumentKind::UpDownCounter,
            Op::Set => InstrumentKind::Gauge,
            Op::Record => InstrumentKind::Histogram,
            Op::Timer => InstrumentKind::Timer,
            Op::Rate => InstrumentKind::Rate,
        }
    }

    fn accepts(self, kind: InstrumentKind) -> bool {
        match self {
            Op::Record => kind.is_histogram(),
            _ => kind == self.defines(),
        }
    }
}

impl Entry {
    /// Counts and returns the error for a value a bound handle refused.
    #[cold]
    pub(super) fn refuse(&self, value: f64, non_negative: bool) -> RecordError {
        self.counts.reject(
            check_value(self, value, non_negative)
                .err()
                .map(|e| *e)
                .unwrap_or(RecordError::InvalidValue {
                    metric: self.definition.name.to_string(),
                    value,
                    reason: "not a finite number",
                }),
        )
    }

    /// Whether recordings must not be negative (counters only go up; durations are never
    /// negative).
    #[inline]
    pub(super) fn non_negative(&self) -> bool {
        matches!(
            self.definition.kind,
            InstrumentKind::Counter | InstrumentKind::Timer
        )
    }

    /// Whether `op` with `attributes` may record into this entry (kind, observed, keys).
    #[inline]
    fn check(&self, op: Op, attributes: &[KeyValue]) -> Checked<()> {
        let kind = self.definition.kind;
        if let Instrument::Observed(_) = self.instrument {
            return Err(Box::new(RecordError::Observed {
                metric: self.definition.name.to_string(),
            }));
        }
        if !op.accepts(kind) {
            return Err(Box::new(RecordError::KindMismatch {
                metric: self.definition.name.to_string(),
                defined: kind,
                used: op.defines(),
            }));
        }
        check_attributes(self, attributes)
    }

    /// An SDK bound handle for `attributes` (already checked), for the by-name cache.
    fn bind_handle(&self, attributes: &[KeyValue]) -> Option<Handle> {
        Some(match &self.instrument {
            Instrument::Counter(c) => Handle::Counter(c.bind(attributes)),
            Instrument::UpDownCounter(c) => Handle::UpDownCounter(c.bind(attributes)),
            Instrument::Gauge(g) => Handle::Gauge(g.bind(attributes)),
            Instrument::Histogram(h) => Handle::Histogram(h.bind(attributes)),
            Instrument::Observed(_) => return None,
        })
    }

    /// Validation and one unbound SDK call.
    #[inline]
    fn record(&self, op: Op, value: f64, attributes: &[KeyValue]) -> Checked<()> {
        self.check(op, attributes)?;
        check_value(self, value, self.non_negative())?;
        match &self.instrument {
            Instrument::Counter(c) => c.add(value, attributes),
            Instrument::UpDownCounter(c) => c.add(value, attributes),
            Instrument::Gauge(g) => g.record(value, attributes),
            Instrument::Histogram(h) => h.record(value, attributes),
            Instrument::Observed(_) => {}
        }
        Ok(())
    }
}

/// By-name hot path: a valid value goes through this thread's handle cache
/// ([`super::handle_cache`]); anything else, and a miss, takes the validated unbound SDK call.
#[inline]
fn record_by_name(
    entry: &Arc<Entry>,
    op: Op,
    value: f64,
    attributes: &[KeyValue],
    cache: Option<&mut Cache>,
) -> Checked<()> {
    if let Some(cache) = cache
        && value.is_finite()
        && !(entry.non_negative() && value < 0.0)
    {
        match cache.record(entry, op as u8, attributes, value) {
            Lookup::Recorded => return Ok(()),
            Lookup::Admit(hash) => {
                entry.check(op, attributes)?;
                if let Some(handle) = entry.bind_handle(attributes) {
                    cache.install(hash, entry, op as u8, attributes, handle, value);
                    return Ok(());
                }
            }
            Lookup::Miss => {}
        }
    }
    entry.record(op, value, attributes)
}

impl MetricsCollector {
    pub(crate) fn new(
        provider: Option<SdkMeterProvider>,
        retired: Arc<RetiredStreams>,
        content_capture: ContentCapture,
    ) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            content_capture,
            db_pools: Arc::default(),
            provider,
            registry: ArcSwap::from_pointee(Registry::default()),
            define_lock: Mutex::new(()),
            next_generation: AtomicU64::new(1),
            retired,
            counts: Arc::new(Counts::default()),
            folds: Arc::default(),
        });
        let collector = MetricsCollector { shared };
        collector.register_self_metrics();
        collector
    }

    fn meter(&self, generation: u64) -> Meter {
        let mut scope =
            InstrumentationScope::builder(COLLECTOR_SCOPE).with_version(env!("CARGO_PKG_VERSION"));
        if generation > 0 {
            scope = scope.with_attributes([KeyValue::new(GENERATION_KEY, generation as i64)]);
        }
        let scope = scope.build();
        match &self.shared.provider {
            Some(p) => p.meter_with_scope(scope),
            None => opentelemetry::metrics::noop::NoopMeterProvider::new().meter_with_scope(scope),
        }
    }

    fn register_self_metrics(&self) {
        let meter = self.meter(0);
        let counts = Arc::clone(&self.shared.counts);
        let folds = Arc::clone(&self.shared.folds);
        let _rejected: ObservableCounter<u64> = meter
            .u64_observable_counter("genscope.metric.rejected")
            .with_unit("{measurement}")
            .with_description(
                "Recordings refused by genscope's collector (invalid value, kind or attribute), by error.type",
            )
            .with_callback(move |obs| {
                // The SDK runs every collection callback before it reads any aggregator: bound
                // counters' per-thread sums reach their SDK aggregators here, in time for this
                // collection.
                folds.fold_all();
                for (i, t) in REJECTION_TYPES.iter().enumerate() {
                    obs.observe(
                        counts.rejected[i].load(Ordering::Relaxed),
                        &[KeyValue::new("error.type", *t)],
                    );
                }
            })
            .build();
        let counts = Arc::clone(&self.shared.counts);
        let _panics: ObservableCounter<u64> = meter
            .u64_observable_counter("genscope.metric.collector.panics")
            .with_unit("{panic}")
            .with_description("Panics caught in add_collector callbacks")
            .with_callback(move |obs| {
                obs.observe(counts.collector_panics.load(Ordering::Relaxed), &[])
            })
            .build();
    }

    /// Defines a metric (or returns the existing one when the definition is the same stream).
    ///
    /// Names in the semantic-convention namespaces (`gen_ai.`, `http.`, `db.`, `system.`,
    /// `process.`, `hw.`) are accepted only as the genscope catalogs define them.
    ///
    /// ```
    /// use genscope::instruments::{DefinitionError, MetricDefinition};
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// let metrics = telemetry.metrics();
    /// metrics.create_metric(MetricDefinition::counter("app.jobs").with_unit("{job}"))?;
    /// let err = metrics.create_metric(MetricDefinition::gauge("app.jobs")).unwrap_err();
    /// assert!(matches!(err, DefinitionError::Conflict { .. }));
    /// let err = metrics.create_metric(MetricDefinition::counter("http.requests")).unwrap_err();
    /// assert!(matches!(err, DefinitionError::ReservedNamespace { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_metric(&self, definition: MetricDefinition) -> Result<Metric, DefinitionError> {
        self.define(definition, None).inspect_err(|_e| {
            self.shared.counts.rejected[5].fetch_add(1, Ordering::Relaxed);
        })
    }

    fn define(
        &self,
        definition: MetricDefinition,
        callback: Option<Callback>,
    ) -> Result<Metric, DefinitionError> {
        definition.validate()?;
        if let Some(namespace) = definition.reserved_namespace() {
            match catalog::semconv_definition(&definition.name) {
                Some(semconv) if semconv.same_stream(&definition) => {}
                _ => {
                    return Err(DefinitionError::ReservedNamespace {
                        name: definition.name.to_string(),
                        namespace,
                    });
                }
            }
        }
        let _guard = self
            .shared
            .define_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.shared.registry.load_full();
        if let Some(existing) = current.get(definition.name.as_ref()) {
            if existing.definition.same_stream(&definition) && callback.is_none() {
                return Ok(Metric {
                    entry: Arc::clone(existing),
                });
            }
            return Err(DefinitionError::Conflict {
                name: definition.name.to_string(),
                existing: existing.definition.summary(),
                requested: definition.summary(),
            });
        }
        let generation = if self.shared.retired.ever_retired(&definition.name) {
            self.shared.next_generation.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let entry = Arc::new(self.build_entry(definition, generation, callback));
        let mut next = (*current).clone();
        next.insert(
            Arc::from(entry.definition.name.as_ref()),
            Arc::clone(&entry),
        );
        self.shared.registry.store(Arc::new(next));
        self.shared.version.fetch_add(1, Ordering::Release);
        Ok(Metric { entry })
    }

    fn build_entry(
        &self,
        d: MetricDefinition,
        generation: u64,
        callback: Option<Callback>,
    ) -> Entry {
        let meter = self.meter(generation);
        let name = d.name.clone();
        let stored_callback = callback.clone();
        let instrument = if let Some(callback) = callback {
            let active = Arc::new(AtomicBool::new(true));
            let counts = Arc::clone(&self.shared.counts);
            let flag = Arc::clone(&active);
            let kind = d.kind;
            let metric = name.clone();
            let observe = move |obs: &dyn AsyncInstrument<f64>| {
                if !flag.load(Ordering::Acquire) {
                    return;
                }
                let mut observations = Observations {
                    inner: obs,
                    metric: &metric,
                    non_negative: kind == InstrumentKind::Counter,
                    counts: &counts,
                };
                if catch_unwind(AssertUnwindSafe(|| callback(&mut observations))).is_err() {
                    counts.collector_panics.fetch_add(1, Ordering::Relaxed);
                    if !counts.collector_panic_logged.swap(true, Ordering::Relaxed) {
                        tracing::warn!(target: "genscope", metric = %metric,
                            "a metric collector callback panicked; its observations for this collection are lost (counted in genscope.metric.collector.panics)");
                    }
                }
            };
            match d.kind {
                InstrumentKind::Counter => {
                    let _: ObservableCounter<f64> = meter
                        .f64_observable_counter(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .with_callback(observe)
                        .build();
                }
                InstrumentKind::UpDownCounter => {
                    let _: ObservableUpDownCounter<f64> = meter
                        .f64_observable_up_down_counter(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .with_callback(observe)
                        .build();
                }
                _ => {
                    let _: ObservableGauge<f64> = meter
                        .f64_observable_gauge(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .with_callback(observe)
                        .build();
                }
            }
            Instrument::Observed(active)
        } else {
            match d.kind {
                InstrumentKind::Counter => Instrument::Counter(
                    meter
                        .f64_counter(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .build(),
                ),
                InstrumentKind::UpDownCounter => Instrument::UpDownCounter(
                    meter
                        .f64_up_down_counter(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .build(),
                ),
                InstrumentKind::Gauge => Instrument::Gauge(
                    meter
                        .f64_gauge(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone())
                        .build(),
                ),
                _ => {
                    let mut b = meter
                        .f64_histogram(name)
                        .with_unit(d.unit.clone())
                        .with_description(d.description.clone());
                    if let Some(buckets) = &d.buckets {
                        b = b.with_boundaries(buckets.clone());
                    }
                    Instrument::Histogram(b.build())
                }
            }
        };
        Entry {
            definition: d,
            generation,
            instrument,
            callback: stored_callback,
            counts: Arc::clone(&self.shared.counts),
        }
    }

    /// Registers a callback that observes a counter, up-down counter or gauge at every
    /// collection (the seeds' `add_collector`). The callback runs on the export thread; a panic in
    /// it is caught, counted in `genscope.metric.collector.panics` and logged once, and every other
    /// metric is still exported. Invalid observations are refused and counted like recordings.
    ///
    /// ```
    /// use genscope::instruments::MetricDefinition;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.metrics().add_collector(
    ///     MetricDefinition::gauge("app.cache.entries").with_unit("{entry}"),
    ///     |obs| obs.observe(42.0, &[]),
    /// )?;
    /// telemetry.force_flush()?;
    /// let g = telemetry.analyzer().gauge("app.cache.entries", &[], genscope::analyzer::Window::all());
    /// assert_eq!(g.map(|g| g.last), Some(42.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn add_collector(
        &self,
        definition: MetricDefinition,
        callback: impl Fn(&mut Observations<'_>) + Send + Sync + 'static,
    ) -> Result<Metric, DefinitionError> {
        if definition.kind.is_histogram() {
            return Err(DefinitionError::Conflict {
                name: definition.name.to_string(),
                existing: "an observed metric (counter, up-down counter or gauge)".into(),
                requested: definition.summary(),
            });
        }
        self.define(definition, Some(Arc::new(callback)))
    }

    /// The metric of that name, if defined.
    pub fn get_metric(&self, name: &str) -> Option<Metric> {
        self.shared.registry.load().get(name).map(|entry| Metric {
            entry: Arc::clone(entry),
        })
    }

    /// Every defined metric's definition, sorted by name.
    pub fn get_all_metrics(&self) -> Vec<MetricDefinition> {
        let mut out: Vec<MetricDefinition> = self
            .shared
            .registry
            .load()
            .values()
            .map(|e| e.definition.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Starts the metric over: the current OTel stream is retired and a new instrument (a new
    /// cumulative series with a new start time, in a new `genscope.metric.generation` scope)
    /// takes its place. Existing bound handles keep recording into the retired stream; bind again.
    ///
    /// OTel cannot remove an instrument from a running SDK: with cumulative temporality the OTLP
    /// exporters keep sending the retired stream's last values (in its own scope, so backends
    /// keep them apart); with delta temporality it stops at the next collection. genscope's own
    /// views (analyzer, `/metrics`, `export_metrics`) switch to the new stream at once.
    pub fn reset_metric(&self, name: &str) -> Result<Metric, RecordError> {
        let old = self.remove(name)?;
        self.shared.retired.retire(name, old.generation, false);
        let callback = old.callback.clone();
        let definition = old.definition.clone();
        if let Instrument::Observed(active) = &old.instrument {
            active.store(false, Ordering::Release);
        }
        self.define(definition, callback).map_err(RecordError::from)
    }

    /// Removes the metric: recording by name no longer finds it (a new recording defines it
    /// anew, and the name can be defined again with any kind), an observed metric's callback stops
    /// being called, and genscope's own views forget its history at the next collection. Returns
    /// the removed definition. See [`reset_metric`](Self::reset_metric) for what OTLP backends see.
    pub fn delete_metric(&self, name: &str) -> Result<MetricDefinition, RecordError> {
        let old = self.remove(name)?;
        if let Instrument::Observed(active) = &old.instrument {
            active.store(false, Ordering::Release);
        }
        self.shared.retired.retire(name, old.generation, true);
        Ok(old.definition.clone())
    }

    fn remove(&self, name: &str) -> Result<Arc<Entry>, RecordError> {
        let _guard = self
            .shared
            .define_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let current = self.shared.registry.load_full();
        let Some(old) = current.get(name).cloned() else {
            return Err(self.shared.counts.reject(RecordError::UnknownMetric {
                metric: name.to_string(),
            }));
        };
        let mut next = (*current).clone();
        next.remove(name);
        self.shared.registry.store(Arc::new(next));
        self.shared.version.fetch_add(1, Ordering::Release);
        Ok(old)
    }

    /// The GenAI catalog's typed recorder (defines its metrics on first use).
    pub fn genai(&self) -> Result<catalog::genai::GenAiMetrics, DefinitionError> {
        catalog::genai::GenAiMetrics::new(self, self.shared.content_capture)
    }

    /// The generation-server catalog's typed recorder.
    pub fn generation(&self) -> Result<catalog::generation::GenerationMetrics, DefinitionError> {
        catalog::generation::GenerationMetrics::new(self)
    }

    /// The concurrent-users catalog's typed recorder.
    pub fn users(&self) -> Result<catalog::users::UserMetrics, DefinitionError> {
        catalog::users::UserMetrics::new(self)
    }

    /// The HTTP server catalog's typed recorder.
    pub fn http_server(&self) -> Result<catalog::http::HttpServerMetrics, DefinitionError> {
        catalog::http::HttpServerMetrics::new(self)
    }

    /// The database client catalog's typed recorder (pools registered on any copy are observed).
    pub fn db_client(&self) -> Result<catalog::db::DbClientMetrics, DefinitionError> {
        catalog::db::DbClientMetrics::new(self, Arc::clone(&self.shared.db_pools))
    }

    /// The model-availability catalog's typed recorder.
    pub fn model(&self) -> Result<catalog::model::ModelMetrics, DefinitionError> {
        catalog::model::ModelMetrics::new(self)
    }

    /// The operations catalog's typed recorder (`genscope.operation.duration`).
    pub fn operation(&self) -> Result<catalog::operation::OperationMetrics, DefinitionError> {
        catalog::operation::OperationMetrics::new(self)
    }

    /// Recordings refused so far (all reasons).
    pub fn rejected(&self) -> u64 {
        self.shared
            .counts
            .rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Panics caught in collector callbacks so far.
    pub fn collector_panics(&self) -> u64 {
        self.shared.counts.collector_panics.load(Ordering::Relaxed)
    }

    /// Resolves `name`, defining it with the op's kind defaults (or the catalog's definition for
    /// a semantic-convention name) when unknown. `f` also gets this thread's handle cache when
    /// it is free (not on a re-entered call).
    #[inline]
    fn with_entry<R>(
        &self,
        name: &str,
        op: Op,
        f: impl Fn(&Arc<Entry>, Option<&mut Cache>) -> Checked<R>,
    ) -> Result<R, RecordError> {
        let f_ref = &f;
        // Hot path: one thread-local borrow, a plain atomic load (the snapshot's version) and one
        // hash lookup; no reference count is touched.
        let version = self.shared.version.load(Ordering::Acquire);
        let id = self.shared.id;
        let found = THREAD
            .try_with(|cell| {
                let mut guard = cell.try_borrow_mut().ok()?;
                let state = &mut *guard;
                if !matches!(&state.snapshot, Some((i, v, _)) if *i == id && *v == version) {
                    state.snapshot = Some((id, version, self.shared.registry.load_full()));
                }
                let (_, _, registry) = state.snapshot.as_ref()?;
                let entry = registry.get(name)?;
                Some(f_ref(entry, Some(&mut state.cache)))
            })
            .ok()
            .flatten();
        let result = match found {
            Some(result) => result,
            None => match self.shared.registry.load().get(name) {
                Some(entry) => f_ref(entry, None),
                None => self
                    .define_on_first_use(name, op)
                    .map_err(Box::new)
                    .and_then(|m| f_ref(&m.entry, None)),
            },
        };
        match result {
            Ok(r) => Ok(r),
            Err(e) => Err(self.shared.counts.reject(*e)),
        }
    }

    #[cold]
    fn define_on_first_use(&self, name: &str, op: Op) -> Result<Metric, RecordError> {
        let definition = catalog::semconv_definition(name)
            .unwrap_or_else(|| MetricDefinition::new(name.to_string(), op.defines()));
        Ok(self.define(definition, None)?)
    }

    /// Adds to a counter (defined on first use). Negative, NaN and infinite values are refused.
    ///
    /// Hot path: a repeated attribute set records through this thread's cached SDK bound handle,
    /// about half the raw SDK `Counter::add` with the same attributes; ever-new sets cost about
    /// the raw call (BENCHMARKS.md).
    pub fn increment_counter(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Add, |e, cache| {
            record_by_name(e, Op::Add, value, attributes, cache)
        })
    }

    /// Adds a (possibly negative) delta to an up-down counter (queue sizes, in-flight work).
    pub fn add_up_down(
        &self,
        name: &str,
        delta: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::AddUpDown, |e, cache| {
            record_by_name(e, Op::AddUpDown, delta, attributes, cache)
        })
    }

    /// Sets a gauge.
    pub fn set_gauge(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Set, |e, cache| {
            record_by_name(e, Op::Set, value, attributes, cache)
        })
    }

    /// Records into a histogram (or a timer or rate).
    pub fn record_histogram(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Record, |e, cache| {
            record_by_name(e, Op::Record, value, attributes, cache)
        })
    }

    /// Records a duration into a timer (seconds).
    pub fn record_timer(
        &self,
        name: &str,
        duration: Duration,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Timer, |e, cache| {
            record_by_name(e, Op::Timer, duration.as_secs_f64(), attributes, cache)
        })
    }

    /// Records an observed per-second rate (tokens/s, steps/s) into a rate metric.
    pub fn record_rate(
        &self,
        name: &str,
        rate: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Rate, |e, cache| {
            record_by_name(e, Op::Rate, rate, attributes, cache)
        })
    }

    /// A guard that records the time until it is dropped (or [`TimerGuard::stop`]ped) into the
    /// timer `name` (the seeds' `TimerContext`). Works across `.await`.
    pub fn timer(&self, name: &str, attributes: &[KeyValue]) -> Result<TimerGuard, RecordError> {
        Ok(TimerGuard {
            metric: Some(self.bind_entry(name, Op::Timer, attributes)?),
            attributes: attributes.to_vec(),
            start: Instant::now(),
        })
    }

    /// Runs `f` and records its duration into the timer `name` (the seeds' `timed_function`).
    /// `f` always runs: if the timer cannot be used (invalid name, another kind), the error is
    /// counted in `genscope.metric.rejected` and logged once, and the result is still returned.
    pub fn time<R>(&self, name: &str, attributes: &[KeyValue], f: impl FnOnce() -> R) -> R {
        match self.timer(name, attributes) {
            Ok(_guard) => f(),
            Err(e) => {
                if !self
                    .shared
                    .counts
                    .time_error_logged
                    .swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(target: "genscope", error = %e, "MetricsCollector::time could not record");
                }
                f()
            }
        }
    }

    /// Resolves (or defines) `name` for `op` and checks `attributes` once, for handles and timers.
    fn bind_entry(
        &self,
        name: &str,
        op: Op,
        attributes: &[KeyValue],
    ) -> Result<Metric, RecordError> {
        self.with_entry(name, op, |entry, _| {
            entry.check(op, attributes)?;
            Ok(Metric {
                entry: Arc::clone(entry),
            })
        })
    }

    /// A counter bound to `attributes`: [`BoundCounter::add`] does no lookup at all.
    pub fn bind_counter(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundCounter, RecordError> {
        let m = self.bind_entry(name, Op::Add, attributes)?;
        match &m.entry.instrument {
            Instrument::Counter(c) => Ok(BoundCounter::new(
                c.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// An up-down counter bound to `attributes`.
    pub fn bind_up_down_counter(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundUpDownCounter, RecordError> {
        let m = self.bind_entry(name, Op::AddUpDown, attributes)?;
        match &m.entry.instrument {
            Instrument::UpDownCounter(c) => Ok(BoundUpDownCounter::new(
                c.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// A histogram (or timer or rate) bound to `attributes`: [`BoundHistogram::record`] does no
    /// lookup at all.
    pub fn bind_histogram(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundHistogram, RecordError> {
        let m = self.bind_entry(name, Op::Record, attributes)?;
        match &m.entry.instrument {
            Instrument::Histogram(h) => Ok(BoundHistogram::new(
                h.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// A gauge bound to `attributes`.
    pub fn bind_gauge(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundGauge, RecordError> {
        let m = self.bind_entry(name, Op::Set, attributes)?;
        match &m.entry.instrument {
            Instrument::Gauge(g) => Ok(BoundGauge::new(g.bind(attributes), Arc::clone(&m.entry))),
            _ => unreachable_kind(&m),
        }
    }
}

#[cold]
fn unreachable_kind<T>(m: &Metric) -> Result<T, RecordError> {
    // `bind_entry` checked the kind; an observed metric is the only other shape.
    Err(RecordError::Observed {
        metric: m.entry.definition.name.to_string(),
    })
}

/// A defined metric: its definition, and recording without a name lookup.
///
/// ```
/// use genscope::instruments::MetricDefinition;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let jobs = telemetry.metrics().create_metric(MetricDefinition::counter("app.jobs"))?;
/// jobs.record(1.0, &[])?;
/// assert_eq!(jobs.definition().name(), "app.jobs");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Metric {
    entry: Arc<Entry>,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metric")
            .field("definition", &self.entry.definition)
            .field("generation", &self.entry.generation)
            .finish()
    }
}

impl Metric {
    /// The definition.
    pub fn definition(&self) -> &MetricDefinition {
        &self.entry.definition
    }

    /// The stream generation (0 until the name is reset or deleted and defined again).
    pub fn generation(&self) -> u64 {
        self.entry.generation
    }

    /// Records with the metric's own kind: add for counters and up-down counters, set for
    /// gauges, record for histogram kinds.
    pub fn record(&self, value: f64, attributes: &[KeyValue]) -> Result<(), RecordError> {
        let op = match self.entry.definition.kind {
            InstrumentKind::Counter => Op::Add,
            InstrumentKind::UpDownCounter => Op::AddUpDown,
            InstrumentKind::Gauge => Op::Set,
            _ => Op::Record,
        };
        let entry = &self.entry;
        let cached = THREAD
            .try_with(|cell| {
                let mut state = cell.try_borrow_mut().ok()?;
                Some(record_by_name(
                    entry,
                    op,
                    value,
                    attributes,
                    Some(&mut state.cache),
                ))
            })
            .ok()
            .flatten();
        cached
            .unwrap_or_else(|| record_by_name(entry, op, value, attributes, None))
            .map_err(|e| entry.counts.reject(*e))
    }
}

/// What an `add_collector` callback reports through.
pub struct Observations<'a> {
    inner: &'a dyn AsyncInstrument<f64>,
    metric: &'a str,
    non_negative: bool,
    counts: &'a Counts,
}

impl Observations<'_> {
    /// Reports one value. NaN, infinities and (for counters) negative totals are refused and
    /// counted in `genscope.metric.rejected`.
    pub fn observe(&mut self, value: f64, attributes: &[KeyValue]) {
        if !value.is_finite() || (self.non_negative && value < 0.0) {
            let _ = self.counts.reject(RecordError::InvalidValue {
                metric: self.metric.to_string(),
                value,
                reason: if value.is_finite() {
                    "negative; counters only go up"
                } else {
                    "not a finite number"
                },
            });
            return;
        }
        self.inner.observe(value, attributes);
    }
}

/// Records the time from its creation into a timer when dropped (the seeds' `TimerContext`).
#[must_use = "the timer records when dropped; dropping it at once records ~0 s"]
pub struct TimerGuard {
    metric: Option<Metric>,
    attributes: Vec<KeyValue>,
    start: Instant,
}

impl std::fmt::Debug for TimerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerGuard")
            .field("elapsed", &self.start.elapsed())
            .finish()
    }
}

impl TimerGuard {
    /// Time since the guard was created.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records now and returns the duration recorded.
    pub fn stop(mut self) -> Duration {
        let elapsed = self.start.elapsed();
        if let Some(m) = self.metric.take() {
            let _ = m.record(elapsed.as_secs_f64(), &self.attributes);
        }
        elapsed
    }

    /// Drops the guard without recording.
    pub fn cancel(mut self) {
        self.metric = None;
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if let Some(m) = self.metric.take() {
            let _ = m.record(self.start.elapsed().as_secs_f64(), &self.attributes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached_here() -> usize {
        THREAD.with(|t| t.borrow().cache.cached())
    }

    #[test]
    fn repeated_sets_are_cached_and_one_offs_are_not() {
        // A thread of its own: the cache is per thread.
        std::thread::spawn(|| {
            let telemetry = crate::Genscope::builder()
                .ignore_environment()
                .console_logs(false)
                .build()
                .unwrap();
            let m = telemetry.metrics();
            m.create_metric(MetricDefinition::counter("app.hits"))
                .unwrap();
            let attrs = [KeyValue::new("model", "a")];
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(cached_here(), 0, "the first call only marks the slot");
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(
                cached_here(),
                1,
                "the second call in a row binds and caches"
            );
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(cached_here(), 1);
            for i in 0..200 {
                let one_off = [KeyValue::new("model", format!("x{i}"))];
                m.increment_counter("app.misses", 1.0, &one_off).unwrap();
            }
            assert_eq!(cached_here(), 1, "one-off sets never bind");
            assert!(
                THREAD.with(|t| t.borrow().cache.bypassing()),
                "after a run of misses the cache steps aside"
            );
            telemetry.force_flush().unwrap();
            let window = crate::analyzer::Window::all();
            assert_eq!(
                telemetry
                    .analyzer()
                    .sum("app.hits", &[("model", "a")], window),
                Some(3.0)
            );
            let misses: f64 = (0..200)
                .filter_map(|i| {
                    let v = format!("x{i}");
                    telemetry
                        .analyzer()
                        .sum("app.misses", &[("model", v.as_str())], window)
                })
                .sum();
            assert_eq!(misses, 200.0);
        })
        .join()
        .unwrap();
    }
}
