//! [`MetricsRecorder`]: a `metrics::Recorder` over genscope's [`MetricsCollector`].

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::registry::{Registry, Storage};
use opentelemetry::KeyValue;

use super::handles::{CounterHandle, GaugeHandle, HistogramHandle};
use super::matcher::{BucketRules, Matcher};
use crate::instruments::{
    DefinitionError, InstrumentKind, MetricDefinition, MetricsCollector, RecordError,
};

/// The UCUM unit for a `metrics` unit.
///
/// ```
/// use genscope::facade::ucum_unit;
/// assert_eq!(ucum_unit(metrics::Unit::Seconds), "s");
/// assert_eq!(ucum_unit(metrics::Unit::Mebibytes), "MiBy");
/// assert_eq!(ucum_unit(metrics::Unit::Count), "{count}");
/// ```
pub fn ucum_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "{count}",
        Unit::Percent => "%",
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Tebibytes => "TiBy",
        Unit::Gibibytes => "GiBy",
        Unit::Mebibytes => "MiBy",
        Unit::Kibibytes => "KiBy",
        Unit::Bytes => "By",
        Unit::TerabitsPerSecond => "Tbit/s",
        Unit::GigabitsPerSecond => "Gbit/s",
        Unit::MegabitsPerSecond => "Mbit/s",
        Unit::KilobitsPerSecond => "kbit/s",
        Unit::BitsPerSecond => "bit/s",
        Unit::CountPerSecond => "{count}/s",
    }
}

/// What `describe_*!` said of a name.
#[derive(Debug, Clone, Default, PartialEq)]
struct Description {
    unit: Option<Unit>,
    text: String,
}

#[derive(Debug)]
struct Shared {
    collector: MetricsCollector,
    rules: BucketRules,
    descriptions: RwLock<HashMap<String, Description>>,
    /// Names already defined in the collector by this recorder.
    defined: RwLock<HashMap<String, InstrumentKind>>,
}

impl Shared {
    /// The definition of `name` as `kind` from what `describe_*!` said and the bucket rules.
    fn definition(&self, name: &str, kind: InstrumentKind) -> MetricDefinition {
        let description = self
            .descriptions
            .read()
            .ok()
            .and_then(|d| d.get(name).cloned())
            .unwrap_or_default();
        let mut def = MetricDefinition::new(name.to_string(), kind)
            .with_description(description.text)
            .with_unit(description.unit.map_or("", ucum_unit));
        if kind == InstrumentKind::Histogram {
            def = def.with_buckets(self.rules.for_name(name).iter().copied());
        }
        def
    }

    /// Defines `name` (once) with [`definition`](Self::definition); the error, if any, is also
    /// counted by the collector.
    fn define(&self, name: &str, kind: InstrumentKind) -> Result<(), DefinitionError> {
        if self
            .defined
            .read()
            .is_ok_and(|d| d.get(name) == Some(&kind))
        {
            return Ok(());
        }
        self.collector.create_metric(self.definition(name, kind))?;
        if let Ok(mut d) = self.defined.write() {
            d.insert(name.to_string(), kind);
        }
        Ok(())
    }

    fn attributes(key: &Key) -> Vec<KeyValue> {
        key.labels()
            .map(|l| KeyValue::new(l.key().to_string(), l.value().to_string()))
            .collect()
    }

    /// Defines the key's name as `kind` and binds a handle to its labels; `None` (a handle that
    /// records nothing) when either is refused, which the collector counts.
    fn bind<T>(
        &self,
        key: &Key,
        kind: InstrumentKind,
        bind: fn(&MetricsCollector, &str, &[KeyValue]) -> Result<T, RecordError>,
    ) -> Option<T> {
        let name = key.name();
        self.define(name, kind).ok()?;
        bind(&self.collector, name, &Self::attributes(key)).ok()
    }

    /// Keeps what `describe_*!` said; returns the kind `name` is already defined as when this
    /// changes its unit or description (a describe after first use).
    fn describe(
        &self,
        key: KeyName,
        unit: Option<Unit>,
        text: SharedString,
    ) -> Option<InstrumentKind> {
        let name = key.as_str().to_string();
        let new = Description {
            unit,
            text: text.to_string(),
        };
        let before = self
            .descriptions
            .write()
            .ok()
            .and_then(|mut d| d.insert(name.clone(), new.clone()));
        if before.as_ref() == Some(&new) {
            return None;
        }
        self.defined.read().ok().and_then(|d| d.get(&name).copied())
    }
}

/// The handle storage of the `metrics_util` registry: each handle built once per key.
#[derive(Debug)]
struct FacadeStorage(Arc<Shared>);

/// A registration that panicked gives a handle that records nothing, never a panic to the caller.
fn guarded<T>(f: impl FnOnce() -> Option<T>) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok().flatten()
}

impl Storage<Key> for FacadeStorage {
    type Counter = Arc<CounterHandle>;
    type Gauge = Arc<GaugeHandle>;
    type Histogram = Arc<HistogramHandle>;

    fn counter(&self, key: &Key) -> Self::Counter {
        let bound = guarded(|| {
            self.0
                .bind(key, InstrumentKind::Counter, MetricsCollector::bind_counter)
        });
        Arc::new(CounterHandle::new(bound))
    }

    fn gauge(&self, key: &Key) -> Self::Gauge {
        let bound = guarded(|| {
            self.0
                .bind(key, InstrumentKind::Gauge, MetricsCollector::bind_gauge)
        });
        Arc::new(GaugeHandle::new(bound))
    }

    fn histogram(&self, key: &Key) -> Self::Histogram {
        let bound = guarded(|| {
            self.0.bind(
                key,
                InstrumentKind::Histogram,
                MetricsCollector::bind_histogram,
            )
        });
        Arc::new(HistogramHandle::new(bound))
    }
}

/// A `metrics` facade recorder that records into genscope: every `metrics::counter!`,
/// `gauge!`, `histogram!` and `describe_*!` of the program (and of its dependencies) reaches
/// genscope's meter provider, so OTLP, `/metrics` and the analyzer see it with no call-site
/// change. Labels become attributes; the series limit applies as to every genscope metric.
///
/// Install it with `metrics::set_global_recorder` (or `metrics::with_local_recorder` for one
/// scope); genscope never installs it on its own.
///
/// A name the conventions reserve (`gen_ai.*`, `http.*`, ...) or one that is not a valid
/// instrument name, labels that are not valid attributes, or a name used as two kinds are
/// refused at registration: counted in `genscope.metric.rejected`, and that handle records
/// nothing. Nothing a facade call does reaches the caller as an error or a panic.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let recorder = genscope::facade::MetricsRecorder::builder(telemetry.metrics())
///     .buckets(genscope::facade::Matcher::Suffix("duration".into()), &[0.1, 1.0, 10.0])?
///     .build();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::describe_histogram!("tgi_request_duration", metrics::Unit::Seconds, "Request duration");
///     metrics::histogram!("tgi_request_duration").record(0.4);
///     metrics::counter!("tgi_request_count", "method" => "POST").increment(1);
/// });
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// let h = telemetry.analyzer().histogram("tgi_request_duration", &[], w).unwrap();
/// assert_eq!(h.count, 1);
/// assert_eq!(telemetry.analyzer().sum("tgi_request_count", &[("method", "POST")], w), Some(1.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MetricsRecorder {
    registry: Registry<Key, FacadeStorage>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MetricsRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsRecorder")
            .field("rules", &self.shared.rules)
            .finish_non_exhaustive()
    }
}

/// Builds a [`MetricsRecorder`].
#[derive(Debug)]
pub struct MetricsRecorderBuilder {
    collector: MetricsCollector,
    rules: BucketRules,
}

impl MetricsRecorder {
    /// A builder recording into `collector` (usually `telemetry.metrics()`).
    pub fn builder(collector: &MetricsCollector) -> MetricsRecorderBuilder {
        MetricsRecorderBuilder {
            collector: collector.clone(),
            rules: BucketRules::default(),
        }
    }
}

impl MetricsRecorderBuilder {
    /// Bucket boundaries for the histograms `matcher` matches, like
    /// `PrometheusBuilder::set_buckets_for_metric`; the first matching rule wins, histograms no
    /// rule matches get [`DEFAULT_BUCKETS`](super::DEFAULT_BUCKETS). Boundaries must be finite and
    /// strictly increasing.
    pub fn buckets(mut self, matcher: Matcher, buckets: &[f64]) -> Result<Self, DefinitionError> {
        self.rules.add(matcher, buckets)?;
        Ok(self)
    }

    /// The recorder.
    pub fn build(self) -> MetricsRecorder {
        let shared = Arc::new(Shared {
            collector: self.collector,
            rules: self.rules,
            descriptions: RwLock::default(),
            defined: RwLock::default(),
        });
        MetricsRecorder {
            registry: Registry::new(FacadeStorage(Arc::clone(&shared))),
            shared,
        }
    }
}

impl MetricsRecorder {
    /// `describe_*!`: before first use it gives the definition its unit and description; after
    /// first use it redefines the metric with them (a new stream, like `reset_metric`: the earlier
    /// one keeps what was collected before) and moves every existing handle to it, gauges at the
    /// level they are at.
    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        let name = key.as_str().to_string();
        let Some(kind) = guarded(|| self.shared.describe(key, unit, description)) else {
            return;
        };
        let _ = guarded(|| {
            let shared = &self.shared;
            shared
                .collector
                .redefine(shared.definition(&name, kind))
                .ok()?;
            let c = &shared.collector;
            match kind {
                InstrumentKind::Counter => self.registry.visit_counters(|k, h| {
                    if k.name() == name {
                        h.rebind(c.bind_counter(&name, &Shared::attributes(k)).ok());
                    }
                }),
                InstrumentKind::Gauge => self.registry.visit_gauges(|k, h| {
                    if k.name() == name {
                        h.rebind(c.bind_gauge(&name, &Shared::attributes(k)).ok());
                    }
                }),
                _ => self.registry.visit_histograms(|k, h| {
                    if k.name() == name {
                        h.rebind(c.bind_histogram(&name, &Shared::attributes(k)).ok());
                    }
                }),
            }
            Some(())
        });
    }
}

impl Recorder for MetricsRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.registry.get_or_create_counter(key, Arc::clone))
    }

    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.registry.get_or_create_gauge(key, Arc::clone))
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.registry.get_or_create_histogram(key, Arc::clone))
    }
}
