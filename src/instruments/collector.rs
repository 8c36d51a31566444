//! [`MetricsCollector`]: define metrics, record them by name or through bound handles.
//!
//! Hot paths (marked below) take no lock and allocate nothing: by-name recording reads an
//! immutable registry snapshot (`arc-swap`) and hashes the name once (`foldhash`); bound handles
//! go straight to the SDK's pre-resolved aggregator. Definitions, resets and deletes swap in a new
//! snapshot under a mutex; they are rare.

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

use super::catalog;
use super::definition::{DefinitionError, InstrumentKind, MetricDefinition};
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

struct Entry {
    definition: MetricDefinition,
    generation: u64,
    instrument: Instrument,
    callback: Option<Callback>,
    counts: Arc<Counts>,
}

type Registry = HashMap<Arc<str>, Arc<Entry>, foldhash::fast::RandomState>;

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
///   `record_timer`, `record_rate`): one registry lookup plus the SDK call.
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

fn check_value(entry: &Entry, value: f64, non_negative: bool) -> Result<(), RecordError> {
    if !value.is_finite() {
        return Err(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "not a finite number",
        });
    }
    if non_negative && value < 0.0 {
        return Err(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "negative; counters only go up and durations are never negative",
        });
    }
    Ok(())
}

#[inline]
fn check_attributes(entry: &Entry, attributes: &[KeyValue]) -> Result<(), RecordError> {
    for kv in attributes {
        let key = kv.key.as_str();
        if key.is_empty() {
            return Err(RecordError::EmptyAttributeKey {
                metric: entry.definition.name.to_string(),
            });
        }
        if let Some(expected) = &entry.definition.attributes
            && !expected.iter().any(|k| k == key)
        {
            return Err(RecordError::UnexpectedAttribute {
                metric: entry.definition.name.to_string(),
                key: key.to_string(),
                expected: format!("{expected:?}"),
            });
        }
    }
    Ok(())
}

/// How a by-name call records: which kinds it accepts and which it defines.
#[derive(Clone, Copy)]
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
    /// Whether `op` with `attributes` may record into this entry (kind, observed, keys).
    #[inline]
    fn check(&self, op: Op, attributes: &[KeyValue]) -> Result<(), RecordError> {
        let kind = self.definition.kind;
        if let Instrument::Observed(_) = self.instrument {
            return Err(RecordError::Observed {
                metric: self.definition.name.to_string(),
            });
        }
        if !op.accepts(kind) {
            return Err(RecordError::KindMismatch {
                metric: self.definition.name.to_string(),
                defined: kind,
                used: op.defines(),
            });
        }
        check_attributes(self, attributes)
    }

    /// Hot path: validation and one SDK call.
    #[inline]
    fn record(&self, op: Op, value: f64, attributes: &[KeyValue]) -> Result<(), RecordError> {
        self.check(op, attributes)?;
        let kind = self.definition.kind;
        let non_negative = matches!(kind, InstrumentKind::Counter | InstrumentKind::Timer);
        check_value(self, value, non_negative)?;
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
        let _rejected: ObservableCounter<u64> = meter
            .u64_observable_counter("genscope.metric.rejected")
            .with_unit("{measurement}")
            .with_description(
                "Recordings refused by genscope's collector (invalid value, kind or attribute), by error.type",
            )
            .with_callback(move |obs| {
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
    /// a semantic-convention name) when unknown.
    #[inline]
    fn with_entry<R>(
        &self,
        name: &str,
        op: Op,
        f: impl Fn(&Arc<Entry>) -> Result<R, RecordError>,
    ) -> Result<R, RecordError> {
        let f_ref = &f;
        // Hot path: a thread-local snapshot check (one plain atomic load) and one hash lookup.
        let found = self.with_registry(|registry| registry.get(name).map(f_ref));
        let result = match found {
            Some(result) => result,
            None => self
                .define_on_first_use(name, op)
                .and_then(|m| f_ref(&m.entry)),
        };
        result.map_err(|e| self.shared.counts.reject(e))
    }

    /// Runs `f` on this thread's cached registry snapshot, refreshing it when a definition,
    /// reset or delete happened since (the `version` check). `arc-swap`'s own `load` costs an
    /// atomic read-modify-write per call; this costs a thread-local access and a plain load.
    #[inline]
    fn with_registry<R>(&self, f: impl Fn(&Registry) -> R) -> R {
        thread_local! {
            static SNAPSHOT: std::cell::RefCell<Option<(usize, u64, Arc<Registry>)>> =
                const { std::cell::RefCell::new(None) };
        }
        let version = self.shared.version.load(Ordering::Acquire);
        let id = self.shared.id;
        let cached = SNAPSHOT
            .try_with(|cell| {
                // Re-entered from inside `f` (a borrow is held): use the shared snapshot below.
                let mut slot = cell.try_borrow_mut().ok()?;
                if !matches!(&*slot, Some((i, v, _)) if *i == id && *v == version) {
                    *slot = Some((id, version, self.shared.registry.load_full()));
                }
                let (_, _, registry) = slot.as_ref()?;
                Some(f(registry))
            })
            .ok()
            .flatten();
        match cached {
            Some(r) => r,
            None => f(&self.shared.registry.load()),
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
    /// Hot path: costs about the raw SDK `Counter::add` with the same attributes (BENCHMARKS.md).
    pub fn increment_counter(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Add, |e| e.record(Op::Add, value, attributes))
    }

    /// Adds a (possibly negative) delta to an up-down counter (queue sizes, in-flight work).
    pub fn add_up_down(
        &self,
        name: &str,
        delta: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::AddUpDown, |e| {
            e.record(Op::AddUpDown, delta, attributes)
        })
    }

    /// Sets a gauge.
    pub fn set_gauge(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Set, |e| e.record(Op::Set, value, attributes))
    }

    /// Records into a histogram (or a timer or rate).
    pub fn record_histogram(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Record, |e| {
            e.record(Op::Record, value, attributes)
        })
    }

    /// Records a duration into a timer (seconds).
    pub fn record_timer(
        &self,
        name: &str,
        duration: Duration,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Timer, |e| {
            e.record(Op::Timer, duration.as_secs_f64(), attributes)
        })
    }

    /// Records an observed per-second rate (tokens/s, steps/s) into a rate metric.
    pub fn record_rate(
        &self,
        name: &str,
        rate: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Rate, |e| e.record(Op::Rate, rate, attributes))
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
        self.with_entry(name, op, |entry| {
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
            Instrument::Counter(c) => Ok(BoundCounter {
                inner: c.bind(attributes),
                entry: Arc::clone(&m.entry),
            }),
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
            Instrument::UpDownCounter(c) => Ok(BoundUpDownCounter {
                inner: c.bind(attributes),
                entry: Arc::clone(&m.entry),
            }),
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
            Instrument::Histogram(h) => Ok(BoundHistogram {
                inner: h.bind(attributes),
                non_negative: m.entry.definition.kind == InstrumentKind::Timer,
                entry: Arc::clone(&m.entry),
            }),
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
            Instrument::Gauge(g) => Ok(BoundGauge {
                inner: g.bind(attributes),
                entry: Arc::clone(&m.entry),
            }),
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
        self.entry
            .record(op, value, attributes)
            .map_err(|e| self.entry.counts.reject(e))
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

macro_rules! bound {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $method:ident, $non_negative:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            inner: $inner,
            entry: Arc<Entry>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("metric", &self.entry.definition.name)
                    .finish()
            }
        }

        impl $name {
            /// Hot path: a finiteness check and the SDK's bound call; no lookup, no lock.
            #[inline]
            pub fn $method(&self, value: f64) -> Result<(), RecordError> {
                if value.is_finite() && !($non_negative && value < 0.0) {
                    self.inner.$method(value);
                    Ok(())
                } else {
                    Err(self.refuse(value))
                }
            }

            #[cold]
            fn refuse(&self, value: f64) -> RecordError {
                let non_negative: bool = $non_negative;
                self.entry
                    .counts
                    .reject(check_value(&self.entry, value, non_negative).err().unwrap_or(
                        RecordError::InvalidValue {
                            metric: self.entry.definition.name.to_string(),
                            value,
                            reason: "not a finite number",
                        },
                    ))
            }
        }
    };
}

bound!(
    /// A counter with its attributes resolved once ([`MetricsCollector::bind_counter`]).
    BoundCounter, opentelemetry::metrics::BoundCounter<f64>, add, true);
bound!(
    /// An up-down counter with its attributes resolved once.
    BoundUpDownCounter, opentelemetry::metrics::BoundUpDownCounter<f64>, add, false);
bound!(
    /// A gauge with its attributes resolved once.
    BoundGauge, opentelemetry::metrics::BoundGauge<f64>, record, false);

/// A histogram, timer or rate with its attributes resolved once
/// ([`MetricsCollector::bind_histogram`]).
#[derive(Clone)]
pub struct BoundHistogram {
    inner: opentelemetry::metrics::BoundHistogram<f64>,
    non_negative: bool,
    entry: Arc<Entry>,
}

impl std::fmt::Debug for BoundHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundHistogram")
            .field("metric", &self.entry.definition.name)
            .finish()
    }
}

impl BoundHistogram {
    /// Hot path: a finiteness check and the SDK's bound record; no lookup, no lock.
    #[inline]
    pub fn record(&self, value: f64) -> Result<(), RecordError> {
        if value.is_finite() && !(self.non_negative && value < 0.0) {
            self.inner.record(value);
            Ok(())
        } else {
            Err(self.refuse(value))
        }
    }

    #[cold]
    fn refuse(&self, value: f64) -> RecordError {
        self.entry.counts.reject(
            check_value(&self.entry, value, self.non_negative)
                .err()
                .unwrap_or(RecordError::InvalidValue {
                    metric: self.entry.definition.name.to_string(),
                    value,
                    reason: "not a finite number",
                }),
        )
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
