//! [`GenscopeBuilder`], the only way to start genscope: settings from builder > environment >
//! file, then the pipeline, the analyzer store, the collector, the endpoint and the observers,
//! handed over in one [`Genscope`].

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::MeterProvider as _;
use tracing_subscriber::{Layer, layer::SubscriberExt as _};

use super::{Genscope, GpuSource};
use crate::analyzer::report::Dashboard;
use crate::analyzer::{AnalyzerStore, StoreConfig};
use crate::config::{
    self, Compression, ConfigError, ContentCapture, Endpoint as OtlpEndpoint, ExporterKind,
    PartialSettings, Protocol, ResourceUsage, SamplerSetting, Sampling, Settings,
    TemporalityPreference,
};
use crate::error::Error;
use crate::export::endpoint::{self};
use crate::instruments::{MetricsCollector, RetiredStreams};
use crate::observers::Observers;
use crate::observers::gpu::GpuBackend;
use crate::operations::{GpuUsageSource, Operations};
use crate::pipeline::Pipeline;

/// The GPU backend handed to the builder, taken once at build.
#[derive(Clone, Default)]
struct GpuBackendSlot(Arc<Mutex<Option<Box<dyn GpuBackend>>>>);

impl std::fmt::Debug for GpuBackendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.0.lock().map(|b| b.is_some()).unwrap_or(false);
        f.write_str(if set { "Some(..)" } else { "None" })
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
    /// Values below the environment and the file (an application's own defaults).
    defaults: PartialSettings,
    config_file: Option<PathBuf>,
    ignore_environment: bool,
    console_logs: bool,
    gpu_usage: GpuSource,
    gpu_backend: GpuBackendSlot,
    analyzer_aliases: crate::analyzer::Aliases,
}

impl Default for GenscopeBuilder {
    fn default() -> Self {
        GenscopeBuilder {
            overrides: PartialSettings::default(),
            defaults: PartialSettings::default(),
            config_file: None,
            ignore_environment: false,
            console_logs: true,
            gpu_usage: GpuSource::default(),
            gpu_backend: GpuBackendSlot::default(),
            analyzer_aliases: crate::analyzer::Aliases::default(),
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
        /// Which histogram measurements keep an exemplar, like `OTEL_METRICS_EXEMPLAR_FILTER`
        /// (default `TraceBased`: those taken inside a sampled span).
        exemplar_filter, exemplar_filter, crate::config::ExemplarFilter);
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
        /// Span export queue capacity (default 8192, [`crate::config::DEFAULT_SPAN_QUEUE`]); spans past
        /// it are dropped and counted.
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
        /// Also speak a model-server metrics protocol on `/metrics`, like
        /// `GENSCOPE_MODEL_SERVER_METRICS` (default off; see [`crate::config::ModelServerMetrics`]).
        model_server_metrics, model_server_metrics, crate::config::ModelServerMetrics);
    setter!(
        /// GenAI prompt/completion content capture (default `NoContent`).
        genai_content_capture, genai_content_capture, ContentCapture);
    setter!(
        /// Which GenAI convention names are emitted, like `OTEL_SEMCONV_STABILITY_OPT_IN`
        /// (default: those of the semantic conventions v1.41.1).
        genai_conventions, genai_conventions, crate::config::GenAiConventions);
    setter!(
        /// Which spans get `genscope.usage.*` attributes (default: INFO and more severe, and
        /// operations), like `GENSCOPE_RESOURCE_USAGE`.
        resource_usage, resource_usage, ResourceUsage);
    setter!(
        /// The tracing bridge's span attributes to send, like `GENSCOPE_SPAN_EXTRAS`: the code
        /// location (on by default) and the non-convention `busy_ns`/`idle_ns`, `target`,
        /// `code.module.name` (off by default).
        span_extras, span_extras, crate::config::SpanExtras);

    /// The vendor names the analyzer reads in place of genscope's when those have no data
    /// (default [`Aliases::vendors`](crate::analyzer::Aliases::vendors): TGI, TEI, mistral.rs;
    /// [`Aliases::none`](crate::analyzer::Aliases::none) turns them off).
    pub fn analyzer_aliases(mut self, aliases: crate::analyzer::Aliases) -> Self {
        self.analyzer_aliases = aliases;
        self
    }

    /// Where the resource-usage layer reads GPU utilization and memory for a span's lifetime;
    /// without one, spans carry no GPU attributes.
    pub fn gpu_usage_source(mut self, source: Arc<dyn GpuUsageSource>) -> Self {
        self.gpu_usage = GpuSource(Some(source));
        self
    }

    /// `service.name` unless the operator sets one: `OTEL_SERVICE_NAME`, `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES` or the config file win over it (unlike
    /// [`service_name`](Self::service_name), which wins over them). What an application that
    /// ships with a name but runs under an operator's name should use.
    ///
    /// ```
    /// let settings = genscope::Genscope::builder()
    ///     .ignore_environment()
    ///     .default_service_name("image-gen")
    ///     .settings()?;
    /// assert_eq!(settings.service_name.as_deref(), Some("image-gen"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.defaults.service_name = Some(name.into());
        self
    }

    /// A resource attribute unless the operator sets the same key (`OTEL_RESOURCE_ATTRIBUTES`
    /// or the config file win over it; [`resource_attribute`](Self::resource_attribute) wins
    /// over them).
    pub fn default_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.defaults
            .resource_attributes
            .get_or_insert_with(Vec::new)
            .push((key.into(), value.into()));
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

    /// OTLP endpoint for every signal, as a base URL (HTTP gets `/v1/traces`, `/v1/metrics` and
    /// `/v1/logs`).
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

    /// OTLP endpoint for logs, used as is.
    pub fn logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.overrides.otlp_logs.endpoint = Some(OtlpEndpoint::Signal(url.into()));
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

    /// Log record destinations, like `OTEL_LOGS_EXPORTER` (default: OTLP when an endpoint is
    /// configured); empty exports no logs.
    pub fn logs_exporters(mut self, kinds: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.overrides.logs.exporters = Some(kinds.into_iter().collect());
        self
    }

    /// `tracing` filter directives for events that become log records, like
    /// `GENSCOPE_LOGS_FILTER` (default `info`).
    pub fn logs_filter(mut self, directives: impl Into<String>) -> Self {
        self.overrides.logs.filter = Some(directives.into());
        self
    }

    /// Log export queue capacity (default 2048), like `OTEL_BLRP_MAX_QUEUE_SIZE`; records past
    /// it are dropped and counted.
    pub fn log_max_queue_size(mut self, records: usize) -> Self {
        self.overrides.logs.max_queue_size = Some(records);
        self
    }

    /// Maximum delay before a queued log record is exported (default 1 s), like
    /// `OTEL_BLRP_SCHEDULE_DELAY`.
    pub fn log_schedule_delay(mut self, delay: Duration) -> Self {
        self.overrides.logs.schedule_delay = Some(delay);
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

    /// The settings this builder would run with: builder > environment > file > the builder's
    /// defaults (`default_service_name`, `default_resource_attribute`).
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
        let operator = self.overrides.clone().or(env.or(file));
        let mut defaults = self.defaults.clone();
        // `service.name` in OTEL_RESOURCE_ATTRIBUTES (or the file) is the operator's name too.
        if operator
            .resource_attributes
            .as_ref()
            .is_some_and(|a| a.iter().any(|(k, _)| k == "service.name"))
        {
            defaults.service_name = None;
        }
        Ok(operator.or(defaults).resolve()?)
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
                aliases: self.analyzer_aliases.clone(),
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
            settings.genai_conventions,
            crate::instruments::catalog::semconv_definition,
            (
                settings.exemplar_filter,
                settings.analyzer_max_series_per_metric,
            ),
        );
        let dashboard = Arc::new(Dashboard::new(Arc::clone(&store)));
        let endpoint = match (
            settings.prometheus_addr,
            pipeline.as_ref().and_then(|p| p.runtime_handle()),
        ) {
            (Some(addr), Some(runtime)) => Some(
                endpoint::start(
                    addr,
                    Arc::clone(&dashboard),
                    settings.model_server_metrics,
                    Arc::clone(collector.exemplars()),
                    &runtime,
                )
                .map_err(|e| {
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
            dashboard,
            collector,
            operations,
            gpu_usage,
            shut_down: AtomicBool::new(false),
        })
    }

    /// Starts the pipeline and installs the global `tracing` subscriber (the OpenTelemetry layer,
    /// plus console logs unless turned off) and the global OTel tracer/meter providers and
    /// text-map propagator (`OTEL_PROPAGATORS`, default W3C `tracecontext,baggage`).
    ///
    /// Fails with [`Error::SubscriberAlreadySet`] if the application already set a subscriber.
    pub fn install(self) -> Result<Genscope, Error> {
        let console_logs = self.console_logs;
        let telemetry = self.build()?;
        let fmt = if console_logs {
            let filter = match std::env::var("RUST_LOG") {
                Ok(v) if !v.trim().is_empty() => super::directives::Directives::parse(&v)
                    .map_err(|e| ConfigError::invalid("RUST_LOG", &v, e.to_string()))?,
                _ => super::directives::Directives::parse_lossy("info"),
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
            opentelemetry::global::set_text_map_propagator(crate::instruments::propagator(
                telemetry.settings.propagators,
            ));
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

impl Genscope {
    /// The builder: the only way to start genscope.
    pub fn builder() -> GenscopeBuilder {
        GenscopeBuilder::default()
    }
}
