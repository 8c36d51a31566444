//! [`MetricsCollector`]: define metrics (validated, reserved names checked against the catalogs),
//! observe them through callbacks, reset and delete them, and count what was refused.
//!
//! Hot paths take no lock and, once warm, allocate nothing: by-name recording
//! (`recording.rs`) reads an immutable registry snapshot (`arc-swap`), hashes the name once
//! (`foldhash`) and records through this thread's cached SDK bound handle
//! ([`super::handle_cache`]); bound handles skip both lookups ([`super::bound`]). Definitions,
//! resets and deletes swap in a new snapshot under a mutex; they are rare.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use opentelemetry::metrics::{
    AsyncInstrument, Meter, MeterProvider as _, ObservableCounter, ObservableGauge,
    ObservableUpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::definition::{DefinitionError, InstrumentKind, MetricDefinition};
use super::entry::{Callback, Entry, Instrument, Registry};
use super::exemplars::{ExemplarRegistry, HistogramExemplars};
use super::folds::Folds;
use super::histogram_cells::SDK_DEFAULT_BOUNDARIES;
use super::metric::Metric;
use super::observations::Observations;
use super::record_error::{Counts, REJECTION_TYPES, RecordError};
use super::streams::{COLLECTOR_SCOPE, GENERATION_KEY, RetiredStreams};
use crate::config::{ContentCapture, ExemplarFilter, GenAiConventions};

/// How the collector finds the catalog definition of a reserved name.
pub(crate) type SemconvLookup = fn(&str) -> Option<MetricDefinition>;

pub(super) struct Shared {
    /// Process-unique id, keys the per-thread registry cache.
    pub(super) id: usize,
    /// Bumped after every registry swap; a thread's cached snapshot is valid while it matches.
    pub(super) version: AtomicU64,
    pub(super) provider: Option<SdkMeterProvider>,
    pub(super) registry: ArcSwap<Registry>,
    pub(super) define_lock: Mutex<()>,
    pub(super) next_generation: AtomicU64,
    pub(super) retired: Arc<RetiredStreams>,
    pub(super) counts: Arc<Counts>,
    pub(super) content_capture: ContentCapture,
    pub(super) conventions: GenAiConventions,
    /// Per-thread sums of bound counters, folded into the SDK at every collection.
    pub(super) folds: Arc<Folds>,
    /// The catalogs' definition of a reserved (semantic-convention) name, given at construction
    /// so that the collector does not depend on the catalogs built on it.
    pub(super) semconv: SemconvLookup,
    /// State the catalogs keep per collector (e.g. the database pools observed), by type.
    pub(super) extensions: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    /// Which histogram measurements keep an exemplar, and how many series per metric may.
    pub(super) exemplar_filter: ExemplarFilter,
    pub(super) exemplar_series: usize,
    /// Every histogram's exemplars, by name (what `/metrics` shows in OpenMetrics).
    pub(super) exemplars: Arc<ExemplarRegistry>,
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
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("metrics", &self.shared.registry.load().len())
            .field("enabled", &self.shared.provider.is_some())
            .finish()
    }
}

impl MetricsCollector {
    pub(crate) fn new(
        provider: Option<SdkMeterProvider>,
        retired: Arc<RetiredStreams>,
        content_capture: ContentCapture,
        conventions: GenAiConventions,
        semconv: SemconvLookup,
        (exemplar_filter, exemplar_series): (ExemplarFilter, usize),
    ) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            content_capture,
            conventions,
            semconv,
            extensions: Mutex::default(),
            provider,
            registry: ArcSwap::from_pointee(Registry::default()),
            define_lock: Mutex::new(()),
            next_generation: AtomicU64::new(1),
            retired,
            counts: Arc::new(Counts::default()),
            folds: Arc::default(),
            exemplar_filter,
            exemplar_series,
            exemplars: Arc::default(),
        });
        let collector = MetricsCollector { shared };
        collector.register_self_metrics();
        collector
    }

    /// Whether the SDK is disabled (`OTEL_SDK_DISABLED=true`): no pipeline, every instrument a
    /// no-op, and the catalogs' typed recorders return at once.
    ///
    /// ```
    /// let t = genscope::Genscope::builder().ignore_environment().sdk_disabled(true).build().unwrap();
    /// assert!(t.metrics().is_disabled());
    /// ```
    pub fn is_disabled(&self) -> bool {
        self.shared.provider.is_none()
    }

    /// Every histogram's exemplars (what `/metrics` shows in OpenMetrics).
    pub fn exemplars(&self) -> &Arc<ExemplarRegistry> {
        &self.shared.exemplars
    }

    pub(super) fn meter(&self, generation: u64) -> Meter {
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

    pub(super) fn define(
        &self,
        definition: MetricDefinition,
        callback: Option<Callback>,
    ) -> Result<Metric, DefinitionError> {
        definition.validate()?;
        if let Some(namespace) = definition.reserved_namespace() {
            match (self.shared.semconv)(&definition.name) {
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
        let exemplars = match &instrument {
            Instrument::Histogram(_)
                if self.shared.exemplar_filter != ExemplarFilter::AlwaysOff =>
            {
                let bounds = d.buckets().unwrap_or(&SDK_DEFAULT_BOUNDARIES);
                let e = Arc::new(HistogramExemplars::new(
                    self.shared.exemplar_filter,
                    bounds,
                    self.shared.exemplar_series,
                ));
                self.shared.exemplars.register(&d.name, &e);
                Some(e)
            }
            _ => None,
        };
        Entry {
            definition: d,
            generation,
            instrument,
            callback: stored_callback,
            counts: Arc::clone(&self.shared.counts),
            exemplars,
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

    /// Replaces `definition.name`'s definition (another unit or description, say) as a new
    /// stream, like [`reset_metric`](Self::reset_metric): the earlier stream is retired (its
    /// history kept), handles bound before keep recording into it, so rebind them. Defines the
    /// metric when it does not exist.
    #[cfg_attr(not(feature = "metrics-facade"), allow(dead_code))]
    pub(crate) fn redefine(&self, definition: MetricDefinition) -> Result<Metric, DefinitionError> {
        if let Ok(old) = self.remove(&definition.name) {
            self.shared
                .retired
                .retire(&definition.name, old.generation, false);
            self.shared.exemplars.remove(&definition.name);
        }
        self.define(definition, None)
    }

    /// Removes the metric: recording by name no longer finds it (a new recording defines it
    /// anew, and the name can be defined again with any kind), an observed metric's callback stops
    /// being called, and genscope's own views forget its history at the next collection. Returns
    /// the removed definition. See [`reset_metric`](Self::reset_metric) for what OTLP backends see.
    pub fn delete_metric(&self, name: &str) -> Result<MetricDefinition, RecordError> {
        let old = self.remove(name)?;
        self.shared.exemplars.remove(name);
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

    /// The content-capture setting the GenAI catalog applies.
    pub(crate) fn content_capture(&self) -> ContentCapture {
        self.shared.content_capture
    }

    pub(crate) fn genai_conventions(&self) -> GenAiConventions {
        self.shared.conventions
    }

    /// This collector's instance of `T`, created on first use: per-collector state of the
    /// catalogs (the database pools every copy of a recorder observes).
    pub(crate) fn extension<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut all = self
            .shared
            .extensions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(found) = all.iter().find_map(|e| Arc::clone(e).downcast::<T>().ok()) {
            return found;
        }
        let made = Arc::new(T::default());
        all.push(Arc::clone(&made) as Arc<dyn Any + Send + Sync>);
        made
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
}
