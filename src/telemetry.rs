//! [`Genscope`], the handle to a running telemetry pipeline, and [`GenscopeBuilder`], its only
//! entry point. This module wires config → pipeline → analyzer store; it owns no logic of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt as _};

use crate::analyzer::{AnalyzerStore, StoreConfig};
use crate::config::{
    self, Compression, ConfigError, ContentCapture, Endpoint as OtlpEndpoint, ExporterKind,
    PartialSettings, Protocol, ResourceUsage, SamplerSetting, Sampling, Settings,
    TemporalityPreference,
};
use crate::error::{Error, ShutdownError};
use crate::export::endpoint::{self, Endpoint};
use crate::export::{ExportError, Format};
use crate::instruments::{MetricsCollector, RetiredStreams};
use crate::observers::Observers;
use crate::observers::gpu::GpuBackend;
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
    collector: MetricsCollector,
    operations: Operations,
    gpu_usage: GpuSource,
    shut_down: AtomicBool,
}

/// The GPU backend handed to the builder, taken once at build.
#[derive(Clone, Default)]
struct GpuBackendSlot(Arc<Mutex<Option<Box<dyn GpuBackend>>>>);

impl std::fmt::Debug for GpuBackendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.lock().map(|b| b.is_some()).unwrap_or(false);
        f.write_str(if set { "Some(..)" } else { "None" })
    }
}

/// The optional GPU usage source, shared by the builder and the layers it makes.
#[derive(Clone, Default)]
struct GpuSource(Option<Arc<dyn GpuUsageSource>>);

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

/// Builds the telemetry pipeline and, with [`install`](Self::install), the global subscriber.
///
/// Every setting can also come from the environment or a TOML file; values set here win.
///
/// ```
/// use std::time::Duration;
/// let telemetry = genscope::Genscope::builder()
///     .ignore_environment()
///     .service_name("llm-server")
///     .service_version("2.1.0")
///     .metric_export_interval(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(telemetry.settings().service_name.as_deref(), Some("llm-server"));
/// ```
#[derive(Debug, Clone)]
pub struct GenscopeBuilder {
    overrides: PartialSettings,
    config_file: Option<PathBuf>,
    ignore_environment: bool,
    console_logs: bool,
    gpu_usage: GpuSource,
    gpu_backend: GpuBackendSlot,
}

impl Default for GenscopeBuilder {
    fn default() -> Self {
        GenscopeBuilder {
            overrides: PartialSettings::default(),
            config_file: None,
            ignore_environment: false,
            console_logs: true,
            gpu_usage: GpuSource::default(),
            gpu_backend: GpuBackendSlot::default(),
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident, $field:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.overrides.$field = Some(value.into());
            self
        }
    };
}

impl GenscopeBuilder {
    setter!(
        /// `service.name` (beats `OTEL_SERVICE_NAME`).
        service_name, service_name, impl Into<String>);
    setter!(
        /// `service.version`.
        service_version, service_version, impl Into<String>);
    setter!(
        /// `true` turns everything into a no-op (like `OTEL_SDK_DISABLED=true`).
        sdk_disabled, sdk_disabled, bool);
    setter!(
        /// How often metrics are collected, exported and handed to the analyzer (default 10 s).
        metric_export_interval, metric_export_interval, Duration);
    setter!(
        /// Wire temporality of metrics.
        temporality, temporality, TemporalityPreference);
    setter!(
        /// Trace sampler. Metrics are never sampled.
        sampler, sampler, SamplerSetting);
    setter!(
        /// `tracing` filter directives for spans that become OTel spans (default `info`).
        traces_filter, traces_filter, impl Into<String>);
    setter!(
        /// Maximum delay before a queued span is exported (default 1 s).
        span_schedule_delay, span_schedule_delay, Duration);
    setter!(
        /// Span export queue capacity (default 2048); spans past it are dropped and counted.
        span_max_queue_size, span_max_queue_size, usize);
    setter!(
        /// Largest span batch (default 512).
        span_max_export_batch_size, span_max_export_batch_size, usize);
    setter!(
        /// Also write every exported batch to this OTLP JSON-lines file.
        file_export, file_export, impl Into<PathBuf>);
    setter!(
        /// How much history the analyzer store keeps (default 1 h).
        analyzer_retention, analyzer_retention, Duration);
    setter!(
        /// Series per metric the analyzer store keeps (default 2000).
        analyzer_max_series_per_metric, analyzer_max_series_per_metric, usize);
    setter!(
        /// Upper bound on `shutdown` and `force_flush` (default 10 s).
        shutdown_timeout, shutdown_timeout, Duration);
    setter!(
        /// Serve `/metrics` (Prometheus text and OpenMetrics) on this address, like
        /// `GENSCOPE_PROMETHEUS_ADDR`. Use a loopback address unless scrapers are remote; port 0
        /// picks a free port ([`Genscope::prometheus_addr`] tells which).
        prometheus_addr, prometheus_addr, std::net::SocketAddr);
    setter!(
        /// GenAI prompt/completion content capture (default `NoContent`).
        genai_content_capture, genai_content_capture, ContentCapture);
    setter!(
        /// Which spans get `genscope.usage.*` attributes (default: INFO and more severe, and
        /// operations), like `GENSCOPE_RESOURCE_USAGE`.
        resource_usage, resource_usage, ResourceUsage);

    /// Where the resource-usage layer reads GPU utilization and memory for a span's lifetime;
    /// without one, spans carry no GPU attributes.
    pub fn gpu_usage_source(mut self, source: Arc<dyn GpuUsageSource>) -> Self {
        self.gpu_usage = GpuSource(Some(source));
        self
    }

    /// A resource attribute (beats `OTEL_RESOURCE_ATTRIBUTES` for the same key).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides
            .resource_attributes
            .get_or_insert_with(Vec::new)
            .push((key.into(), value.into()));
        self
    }

    /// OTLP endpoint for both signals, as a base URL (HTTP gets `/v1/traces` and `/v1/metrics`).
    /// Setting an endpoint turns OTLP export on unless exporters are chosen explicitly.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.overrides.otlp.endpoint = Some(OtlpEndpoint::Base(url.into()));
        self
    }

    /// OTLP endpoint for traces, used as is.
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.overrides.otlp_traces.endpoint = Some(OtlpEndpoint::Signal(url.into()));
        self
    }

    /// OTLP endpoint for metrics, used as is.
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.overrides.otlp_metrics.endpoint = Some(OtlpEndpoint::Signal(url.into()));
        self
    }

    /// OTLP protocol for both signals.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.overrides.otlp.protocol = Some(protocol);
        self
    }

    /// A request header for both signals (authentication, tenancy). Never logged.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.overrides
            .otlp
            .headers
            .get_or_insert_with(Vec::new)
            .push((key.into(), value.into()));
        self
    }

    /// OTLP export timeout for both signals (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.overrides.otlp.timeout = Some(timeout);
        self
    }

    /// OTLP compression for both signals.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.overrides.otlp.compression = Some(compression);
        self
    }

    /// Span destinations; empty exports nothing (the analyzer still sees every span).
    pub fn traces_exporters(mut self, kinds: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.overrides.traces_exporters = Some(kinds.into_iter().collect());
        self
    }

    /// Metric destinations; empty exports nothing (the analyzer still sees every collection).
    pub fn metrics_exporters(mut self, kinds: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.overrides.metrics_exporters = Some(kinds.into_iter().collect());
        self
    }

    /// Read this TOML file (instead of `GENSCOPE_CONFIG`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Do not read environment variables (tests, embedding).
    pub fn ignore_environment(mut self) -> Self {
        self.ignore_environment = true;
        self
    }

    /// Whether [`install`](Self::install) also logs `tracing` events to standard error, filtered
    /// by `RUST_LOG` (default `info`). On by default.
    pub fn console_logs(mut self, on: bool) -> Self {
        self.console_logs = on;
        self
    }

    /// Host and process observers: `Sampling::Off` or an interval (beats
    /// `GENSCOPE_HOST_METRICS`; default every second).
    pub fn host_metrics(mut self, sampling: Sampling) -> Self {
        self.overrides.host_metrics = Some(sampling);
        self
    }

    /// GPU observers: `Sampling::Off` or an interval (beats `GENSCOPE_GPU_METRICS`; default
    /// every 5 s).
    pub fn gpu_metrics(mut self, sampling: Sampling) -> Self {
        self.overrides.gpu_metrics = Some(sampling);
        self
    }

    /// How long the observers' history keeps samples (beats `GENSCOPE_RESOURCE_HISTORY`).
    pub fn resource_history(mut self, retention: Duration) -> Self {
        self.overrides.resource_history = Some(retention);
        self
    }

    /// The GPU backend the observers drive (default: NVML). Tests and machines with another
    /// vendor's GPUs plug in here.
    ///
    /// ```
    /// use genscope::gpu::{FakeDevice, FakeGpu, GpuStatus};
    /// let telemetry = genscope::Genscope::builder()
    ///     .ignore_environment()
    ///     .gpu_metrics(genscope::config::Sampling::Every(std::time::Duration::from_millis(50)))
    ///     .gpu_backend(FakeGpu::new(vec![FakeDevice::typical(0)]))
    ///     .build()?;
    /// std::thread::sleep(std::time::Duration::from_millis(150));
    /// let status = telemetry.observers().unwrap().gpu_status();
    /// assert!(matches!(status, GpuStatus::Available { devices: 1, .. }), "{status}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn gpu_backend(self, backend: impl GpuBackend) -> Self {
        *self
            .gpu_backend
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(backend));
        self
    }

    /// The settings this builder would run with: builder > environment > file.
    pub fn settings(&self) -> Result<Settings, Error> {
        let env = if self.ignore_environment {
            PartialSettings::default()
        } else {
            config::from_env()?
        };
        let file_path = self.config_file.clone().or_else(|| {
            (!self.ignore_environment)
                .then(|| {
                    std::env::var_os("GENSCOPE_CONFIG")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                })
                .flatten()
        });
        let file = match file_path {
            Some(path) => config::from_toml_file(path)?,
            None => PartialSettings::default(),
        };
        Ok(self.overrides.clone().or(env.or(file)).resolve()?)
    }

    /// Starts the pipeline without touching any global state. Add [`Genscope::layer`] to your own
    /// `tracing` subscriber to turn spans into OTel spans.
    pub fn build(self) -> Result<Genscope, Error> {
        let settings = self.settings()?;
        let gpu_usage = self.gpu_usage.clone();
        let retired = Arc::new(RetiredStreams::default());
        let store = Arc::new(AnalyzerStore::with_retired(
            StoreConfig {
                retention: settings.analyzer_retention,
                resolution: settings.metric_export_interval,
                max_series_per_metric: settings.analyzer_max_series_per_metric,
                max_recent_spans: settings.analyzer_max_recent_spans,
            },
            Arc::clone(&retired),
        ));
        let pipeline = if settings.sdk_disabled {
            None
        } else {
            Some(Pipeline::start(&settings, Arc::clone(&store) as _)?)
        };
        let collector = MetricsCollector::new(
            pipeline.as_ref().map(|p| p.meter_provider.clone()),
            retired,
            settings.genai_content_capture,
        );
        let endpoint = match (
            settings.prometheus_addr,
            pipeline.as_ref().and_then(|p| p.runtime_handle()),
        ) {
            (Some(addr), Some(runtime)) => Some(
                endpoint::start(addr, Arc::clone(&store), &runtime).map_err(|e| {
                    ConfigError::invalid(
                        "GENSCOPE_PROMETHEUS_ADDR",
                        addr.to_string(),
                        format!("cannot listen there: {e}"),
                    )
                })?,
            ),
            _ => None,
        };
        let operations = Operations::new(&collector);
        let observers = pipeline.as_ref().and_then(|p| {
            let (host, gpu) = (
                settings.host_metrics.interval(),
                settings.gpu_metrics.interval(),
            );
            if host.is_none() && gpu.is_none() {
                return None;
            }
            let mut builder = Observers::builder()
                .host_interval(host)
                .gpu_interval(gpu)
                .history(settings.resource_history);
            let backend = self
                .gpu_backend
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(backend) = backend {
                builder = builder.gpu_backend(backend);
            }
            let scope = InstrumentationScope::builder(crate::observers::METER_NAME)
                .with_version(env!("CARGO_PKG_VERSION"))
                .build();
            Some(builder.start(&p.meter_provider.meter_with_scope(scope)))
        });
        Ok(Genscope {
            settings,
            observers,
            endpoint: Mutex::new(endpoint),
            pipeline,
            store,
            collector,
            operations,
            gpu_usage,
            shut_down: AtomicBool::new(false),
        })
    }

    /// Starts the pipeline and installs the global `tracing` subscriber (the OpenTelemetry layer,
    /// plus console logs unless turned off) and the global OTel tracer/meter providers and W3C
    /// trace-context propagator.
    ///
    /// Fails with [`Error::SubscriberAlreadySet`] if the application already set a subscriber.
    pub fn install(self) -> Result<Genscope, Error> {
        let console_logs = self.console_logs;
        let telemetry = self.build()?;
        let fmt = if console_logs {
            let filter = match std::env::var("RUST_LOG") {
                Ok(v) if !v.trim().is_empty() => EnvFilter::builder()
                    .parse(&v)
                    .map_err(|e| ConfigError::invalid("RUST_LOG", &v, e.to_string()))?,
                _ => EnvFilter::new("info"),
            };
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
        } else {
            None
        };
        let subscriber = tracing_subscriber::registry()
            .with(telemetry.layer())
            .with(fmt);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| Error::SubscriberAlreadySet)?;
        if let Some(p) = &telemetry.pipeline {
            opentelemetry::global::set_tracer_provider(p.tracer_provider.clone());
            opentelemetry::global::set_meter_provider(p.meter_provider.clone());
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
        }
        Ok(telemetry)
    }
}

/// `Genscope::builder().install()`: environment and `GENSCOPE_CONFIG` only.
///
/// ```no_run
/// let telemetry = genscope::init()?;
/// // ... #[tracing::instrument] code ...
/// telemetry.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn init() -> Result<Genscope, Error> {
    Genscope::builder().install()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("genscope")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Genscope {
    /// The builder: the only way to start genscope.
    pub fn builder() -> GenscopeBuilder {
        GenscopeBuilder::default()
    }

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

    /// The `tracing` layer that turns spans into OTel spans, filtered by the traces filter and
    /// with the exporters' own crates (hyper, h2, tonic, reqwest, ...) always off, so exporting
    /// never produces spans to export. Unless `resource_usage` is off, it includes the
    /// [`ResourceUsageLayer`] in front of the OpenTelemetry layer, so watched spans carry
    /// `genscope.usage.*` attributes. A no-op layer when disabled.
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
        let mut directives = self.settings.traces_filter.clone();
        for target in config::EXPORTER_TARGETS {
            directives.push_str(&format!(",{target}=off"));
        }
        // Validated when the settings were resolved; the exporter directives are fixed and valid.
        let filter = EnvFilter::builder().parse_lossy(directives);
        let tracer = p.tracer_provider.tracer_with_scope(scope());
        let otel = tracing_opentelemetry::layer().with_tracer(tracer);
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
                Box::new(usage.build().and_then(otel).with_filter(filter))
            }
            None => Box::new(otel.with_filter(filter)),
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
        let text = crate::export::render(&self.store.snapshot(), &self.store.resource(), format);
        crate::export::write_atomically(path.as_ref(), text.as_bytes())
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
