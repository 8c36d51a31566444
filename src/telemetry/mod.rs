//! [`Genscope`], the handle to a running telemetry pipeline. Its only entry point,
//! [`GenscopeBuilder`], is in `builder.rs` and wires config → pipeline → analyzer store; neither
//! owns logic of its own.

mod builder;
mod directives;
mod event_counts;
mod logs_filter;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::analyzer::AnalyzerStore;
use crate::analyzer::report::{Dashboard, Report};
use crate::config::{self, ResourceUsage, Settings};
use crate::error::ShutdownError;
use crate::export::endpoint::Endpoint;
use crate::export::{ExportError, Format};
use crate::instruments::MetricsCollector;
use crate::observers::Observers;
use crate::operations::{GpuUsageSource, Operations, ResourceUsageLayer, WatchRule};
use crate::pipeline::{Pipeline, TelemetryLoss};

/// A running genscope: tracer and meter providers, exporters, and the analyzer store.
///
/// Shut it down explicitly with [`Genscope::shutdown`] to see errors; dropping it shuts down too.
/// Both flush everything ended before the call and return within the configured bound
/// (`shutdown.timeout`, 10 s by default) even when the collector is down or hangs.
///
/// ```
/// let telemetry = genscope::Genscope::builder()
///     .ignore_environment()
///     .service_name("image-gen")
///     .build()?;
/// let requests = telemetry.meter("image-gen").u64_counter("requests").build();
/// requests.add(1, &[]);
/// telemetry.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Genscope {
    settings: Settings,
    // Declared before the pipeline: stopped before the providers they report through.
    observers: Option<Observers>,
    // Declared before the pipeline: dropped (stopped) before the runtime it runs on.
    endpoint: Mutex<Option<Endpoint>>,
    pipeline: Option<Pipeline>,
    store: Arc<AnalyzerStore>,
    dashboard: Arc<Dashboard>,
    collector: MetricsCollector,
    operations: Operations,
    gpu_usage: GpuSource,
    shut_down: AtomicBool,
}

pub use builder::{GenscopeBuilder, init};

/// The optional GPU usage source, shared by the builder and the layers it makes.
#[derive(Clone, Default)]
struct GpuSource(pub(super) Option<Arc<dyn GpuUsageSource>>);

impl std::fmt::Debug for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl std::fmt::Debug for Genscope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Genscope")
            .field("enabled", &self.pipeline.is_some())
            .field("traces_exporters", &self.settings.traces_exporters)
            .field("metrics_exporters", &self.settings.metrics_exporters)
            .finish()
    }
}

/// The spans stack with the logs bridge over it (its filter's level hint covers both, see
/// `logs_filter.rs`); no `Option::None` layer in the stack, whose OFF hint would silence spans.
fn with_logs<S, L, B>(spans: L, logs: Option<B>) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    L: Layer<S> + Send + Sync + 'static,
    B: Layer<S> + Send + Sync + 'static,
{
    match logs {
        Some(logs) => Box::new(spans.and_then(logs)),
        None => Box::new(spans),
    }
}

/// `directives` with the exporters' own crates turned off (no feedback loop). The directives were
/// validated when the settings were resolved; the added ones are fixed and valid.
fn without_exporters(directives: &str) -> directives::Directives {
    let mut directives = directives.to_string();
    for target in config::EXPORTER_TARGETS {
        directives.push_str(&format!(",{target}=off"));
    }
    directives::Directives::parse_lossy(&directives)
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("genscope")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Genscope {
    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `false` when `OTEL_SDK_DISABLED=true` (or the builder) turned everything off.
    pub fn is_enabled(&self) -> bool {
        self.pipeline.is_some()
    }

    /// A meter on genscope's provider (a no-op meter when disabled).
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().sdk_disabled(true).build().unwrap();
    /// telemetry.meter("app").u64_counter("requests").build().add(1, &[]); // costs nothing
    /// ```
    pub fn meter(&self, name: &'static str) -> Meter {
        match &self.pipeline {
            Some(p) => p.meter_provider.meter(name),
            None => opentelemetry::metrics::noop::NoopMeterProvider::new().meter(name),
        }
    }

    /// The SDK meter provider, for views or libraries that take one (`None` when disabled).
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.pipeline.as_ref().map(|p| &p.meter_provider)
    }

    /// The SDK tracer provider (`None` when disabled).
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.pipeline.as_ref().map(|p| &p.tracer_provider)
    }

    /// The SDK logger provider of the logs signal (`None` when disabled or when logs go nowhere:
    /// no OTLP endpoint, `OTEL_LOGS_EXPORTER=none` and no file export).
    pub fn logger_provider(&self) -> Option<&opentelemetry_sdk::logs::SdkLoggerProvider> {
        self.pipeline
            .as_ref()
            .and_then(|p| p.logger_provider.as_ref())
    }

    /// The `tracing` layer that turns spans into OTel spans, filtered by the traces filter and
    /// with the exporters' own crates (hyper, h2, tonic, reqwest, ...) always off, so exporting
    /// never produces spans to export. Unless `resource_usage` is off, it includes the
    /// [`ResourceUsageLayer`] in front of the OpenTelemetry layer, so watched spans carry
    /// `genscope.usage.*` attributes. When logs go somewhere, it also turns `tracing` events that
    /// pass the logs filter (`GENSCOPE_LOGS_FILTER`, default `info`) into OTel log records
    /// carrying their span's trace and span id. A no-op layer when disabled.
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build().unwrap();
    /// let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::info_span!("generate", model = "sdxl").in_scope(|| {});
    /// });
    /// telemetry.force_flush().unwrap();
    /// assert_eq!(telemetry.analyzer().span_stats(Some("generate"), genscope::analyzer::Window::all()).count, 1);
    /// ```
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let Some(p) = &self.pipeline else {
            return Box::new(tracing_subscriber::layer::Identity::new());
        };
        let filter = without_exporters(&self.settings.traces_filter);
        // Events as log records, through the bounded log queue; the exporters' crates stay off.
        let logs = p.logger_provider.as_ref().map(|lp| {
            let filter = logs_filter::LogsFilter::new::<S>(
                without_exporters(&self.settings.logs.filter),
                &filter,
            );
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(lp)
                .with_filter(filter)
        });
        let tracer = p.tracer_provider.tracer_with_scope(scope());
        // busy_ns/idle_ns and target are no convention's: off unless asked for (`span_extras`);
        // code.module.name becomes code.function.name on the export thread
        // (pipeline/span_attributes.rs), which also drops what `span_extras` does not keep.
        let extras = self.settings.span_extras;
        let otel = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(extras.location || extras.module)
            .with_tracked_inactivity(extras.timings)
            .with_threads(extras.threads)
            .with_target(extras.target);
        // Warning and error events counted by level and target (`genscope.events`).
        let counts = event_counts::EventCountLayer::new(self.collector.clone());
        let rule = match self.settings.resource_usage {
            ResourceUsage::Off => None,
            ResourceUsage::Operations => Some(WatchRule::operations_only()),
            ResourceUsage::Level(level) => Some(WatchRule {
                min_level: Some(level),
                ..WatchRule::default()
            }),
        };
        match rule {
            // The usage layer goes first (inside): its `on_close` must run while the OTel span
            // is still open. One filter in front of both, so filtered-out spans cost neither.
            Some(rule) => {
                let mut usage = ResourceUsageLayer::builder().watch(rule);
                let gpu = self.gpu_usage.0.clone().or_else(|| {
                    self.observers
                        .as_ref()
                        .and_then(Observers::gpu_usage_source)
                });
                if let Some(gpu) = gpu {
                    usage = usage.gpu_source_shared(gpu);
                }
                with_logs(
                    usage
                        .build()
                        .and_then(otel)
                        .and_then(counts)
                        .with_filter(filter),
                    logs,
                )
            }
            None => with_logs(otel.and_then(counts).with_filter(filter), logs),
        }
    }

    /// The host, process and GPU observers (`None` when both are off or the SDK is disabled):
    /// [`current_usage`](Observers::current_usage), [`history`](Observers::history),
    /// [`gpu_status`](Observers::gpu_status).
    pub fn observers(&self) -> Option<&Observers> {
        self.observers.as_ref()
    }

    /// Explicit operations (downloads, health checks, fallbacks, analytics collection, model
    /// operations, generations): each one span and one `genscope.operation.duration` point.
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.operations().model_operation("load", "llama-3-8b").succeed();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn operations(&self) -> &Operations {
        &self.operations
    }

    /// The analyzer store: what was exported, queryable by window.
    pub fn analyzer(&self) -> &AnalyzerStore {
        &self.store
    }

    /// A shared handle to the analyzer store, for threads or servers that outlive a borrow.
    pub fn analyzer_handle(&self) -> Arc<AnalyzerStore> {
        Arc::clone(&self.store)
    }

    /// The report a dashboard reads over the last `window` (the seeds' `get_dashboard_data`),
    /// the one `/report` serves: cached for one store resolution (the metric interval),
    /// recomputed now with `force_refresh`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// let a = telemetry.dashboard(Duration::from_secs(900), false);
    /// let b = telemetry.dashboard(Duration::from_secs(900), false);
    /// assert!(std::sync::Arc::ptr_eq(&a, &b), "cached");
    /// let c = telemetry.dashboard(Duration::from_secs(900), true);
    /// assert!(!std::sync::Arc::ptr_eq(&a, &c), "refreshed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dashboard(&self, window: Duration, force_refresh: bool) -> Arc<Report> {
        self.dashboard.report(window, force_refresh)
    }

    /// The metrics collector: definitions, recording by name, bound handles, catalogs.
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.metrics().increment_counter("app.requests", 1.0, &[])?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics(&self) -> &MetricsCollector {
        &self.collector
    }

    /// Where `/metrics` is served (the bound address, also for port 0), if enabled.
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder()
    ///     .ignore_environment()
    ///     .prometheus_addr("127.0.0.1:0".parse()?)
    ///     .build()?;
    /// assert!(telemetry.prometheus_addr().unwrap().ip().is_loopback());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.endpoint
            .lock()
            .ok()
            .and_then(|e| e.as_ref().map(|e| e.addr))
    }

    /// Writes the current value of every metric the analyzer holds (as of the last collection)
    /// to `path` in `format`, atomically: a failed write leaves no partial file and returns the
    /// error. Call [`Self::force_flush`] first for values up to this instant.
    ///
    /// ```
    /// use genscope::export::Format;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.metrics().increment_counter("app.requests", 3.0, &[])?;
    /// telemetry.force_flush()?;
    /// let dir = std::env::temp_dir().join(format!("genscope-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("metrics.prom");
    /// telemetry.export_metrics(&path, Format::Prometheus)?;
    /// assert!(std::fs::read_to_string(&path)?.contains("app_requests_total 3"));
    /// assert!(telemetry.export_metrics(dir.join("missing/dir/m.prom"), Format::Prometheus).is_err());
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn export_metrics(
        &self,
        path: impl AsRef<std::path::Path>,
        format: Format,
    ) -> Result<(), ExportError> {
        let text = crate::export::render(&self.metrics_snapshot(), &self.store.resource(), format);
        crate::export::write_atomically(path.as_ref(), text.as_bytes())
    }

    /// What `/metrics` shows, rendered in `format`: for an application that serves `/metrics`
    /// on its own port (its router, its middleware) instead of `GENSCOPE_PROMETHEUS_ADDR`'s. With
    /// `GENSCOPE_MODEL_SERVER_METRICS` set, the model-server protocol's series are included.
    ///
    /// ```
    /// use genscope::export::ExpositionFormat;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().service_name("gen").build()?;
    /// let text = telemetry.metrics_exposition(ExpositionFormat::Text);
    /// assert!(text.contains("target_info{"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics_exposition(&self, format: crate::export::ExpositionFormat) -> String {
        crate::export::render_prometheus_with_exemplars(
            &self.metrics_snapshot(),
            &self.store.resource(),
            format,
            self.collector.exemplars(),
        )
    }

    /// Every histogram's exemplars: per series and bucket, the latest measurement taken inside a
    /// sampled span, with its trace and span id (`OTEL_METRICS_EXEMPLAR_FILTER`); `/metrics` and
    /// [`metrics_exposition`](Self::metrics_exposition) show them in OpenMetrics.
    pub fn exemplars(&self) -> &crate::instruments::ExemplarRegistry {
        self.collector.exemplars()
    }

    fn metrics_snapshot(&self) -> Vec<crate::analyzer::MetricSnapshot> {
        crate::export::with_model_server_metrics(
            self.store.snapshot(),
            self.settings.model_server_metrics,
        )
    }

    /// What was delivered and dropped so far.
    pub fn telemetry_loss(&self) -> TelemetryLoss {
        self.pipeline
            .as_ref()
            .map(|p| p.accounting.snapshot())
            .unwrap_or_default()
    }

    /// Exports every ended span and a metric collection now, within the shutdown bound.
    pub fn force_flush(&self) -> Result<(), ShutdownError> {
        match &self.pipeline {
            Some(p) if !self.shut_down.load(Ordering::Acquire) => {
                p.force_flush(self.settings.shutdown_timeout)
            }
            _ => Ok(()),
        }
    }

    /// Flushes everything ended before the call and stops exporting, within the shutdown bound.
    /// Idempotent: later calls (and the drop) return `Ok`.
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Ok(mut endpoint) = self.endpoint.lock() {
            endpoint.take();
        }
        if let Some(observers) = &self.observers {
            observers.stop();
        }
        match &self.pipeline {
            Some(p) => p.shutdown(self.settings.shutdown_timeout),
            None => Ok(()),
        }
    }
}

impl Drop for Genscope {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(target: "genscope", error = %e, "telemetry shutdown on drop was incomplete");
        }
    }
}
