//! Settings from three sources: the builder, the environment and an optional TOML file.
//!
//! This module owns *what* genscope is configured to do; it never builds an exporter or touches the
//! network. Every source is parsed into the same [`PartialSettings`] shape, the shapes are merged with
//! builder > environment > file precedence, and the result is validated into [`Settings`].
//! Within one source, a per-signal value (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) beats the general one
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`). Any value that cannot be used is a [`ConfigError`] naming the
//! setting (and, for files, the line): nothing is silently ignored.

mod env;
mod error;
mod exemplar_filter;
mod file;
mod logs;
mod model_server;
mod otlp;
mod propagators;
mod semconv_opt_in;
mod span_extras;
mod values;

use std::path::PathBuf;
use std::time::Duration;

pub use env::from_env;
pub use env::from_lookup;
pub use error::ConfigError;
pub use exemplar_filter::ExemplarFilter;
pub use file::from_toml_file;
pub use file::from_toml_str;
pub use logs::{DEFAULT_LOGS_FILTER, LogsSettings, PartialLogs};
pub use model_server::ModelServerMetrics;
pub use otlp::{Endpoint, OtlpSettings, PartialOtlp};
use otlp::{Signal, resolve_otlp};
pub use propagators::Propagators;
pub use semconv_opt_in::{ConventionRename, GenAiConventions};
pub use span_extras::SpanExtras;
pub use values::{
    Compression, ContentCapture, ExporterKind, Protocol, ResourceUsage, SamplerSetting, Sampling,
    TemporalityPreference,
};

/// Every setting as one source states it; `None` means the source is silent.
///
/// [`from_env`], [`from_lookup`], [`from_toml_file`] and the builder each produce one of these.
#[derive(Debug, Clone, Default)]
pub struct PartialSettings {
    /// `service.name` on the resource.
    pub service_name: Option<String>,
    /// `service.version` on the resource.
    pub service_version: Option<String>,
    /// Extra resource attributes.
    pub resource_attributes: Option<Vec<(String, String)>>,
    /// Turn everything into a no-op.
    pub sdk_disabled: Option<bool>,
    /// Where spans go (besides the analyzer, which always sees them).
    pub traces_exporters: Option<Vec<ExporterKind>>,
    /// Where metrics go (besides the analyzer).
    pub metrics_exporters: Option<Vec<ExporterKind>>,
    /// OTLP settings for both signals.
    pub otlp: PartialOtlp,
    /// OTLP settings for traces only (beat `otlp` within the same source).
    pub otlp_traces: PartialOtlp,
    /// OTLP settings for metrics only (beat `otlp` within the same source).
    pub otlp_metrics: PartialOtlp,
    /// OTLP settings for logs only (beat `otlp` within the same source).
    pub otlp_logs: PartialOtlp,
    /// The logs signal: destinations, filter, queue.
    pub logs: PartialLogs,
    /// How often metrics are collected, exported and handed to the analyzer.
    pub metric_export_interval: Option<Duration>,
    /// Cumulative or delta metrics on the wire.
    pub temporality: Option<TemporalityPreference>,
    /// `OTEL_METRICS_EXEMPLAR_FILTER`: which histogram measurements keep an exemplar.
    pub exemplar_filter: Option<ExemplarFilter>,
    /// Trace sampler.
    pub sampler: Option<SamplerSetting>,
    /// `tracing` filter directives deciding which spans become OTel spans.
    pub traces_filter: Option<String>,
    /// Longest time a span waits in the export queue.
    pub span_schedule_delay: Option<Duration>,
    /// Spans the export queue holds before it drops (and counts) new ones.
    pub span_max_queue_size: Option<usize>,
    /// Largest batch handed to the span exporters.
    pub span_max_export_batch_size: Option<usize>,
    /// OTLP JSON-lines file that receives every exported batch.
    pub file_export: Option<PathBuf>,
    /// How much history the analyzer store keeps.
    pub analyzer_retention: Option<Duration>,
    /// Series per metric the analyzer store keeps before folding new ones into an overflow series.
    pub analyzer_max_series_per_metric: Option<usize>,
    /// Ended spans the analyzer store keeps individually (aggregates are kept for the whole retention).
    pub analyzer_max_recent_spans: Option<usize>,
    /// Upper bound on the time `shutdown` may take.
    pub shutdown_timeout: Option<Duration>,
    /// `GENSCOPE_PROMETHEUS_ADDR`: serve `/metrics` there.
    pub prometheus_addr: Option<std::net::SocketAddr>,
    /// `GENSCOPE_MODEL_SERVER_METRICS`: model-server protocol spellings on `/metrics`.
    pub model_server_metrics: Option<ModelServerMetrics>,
    /// `OTEL_PROPAGATORS`.
    pub propagators: Option<Propagators>,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`.
    pub genai_content_capture: Option<ContentCapture>,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`: which GenAI convention names are emitted.
    pub genai_conventions: Option<GenAiConventions>,
    /// `GENSCOPE_RESOURCE_USAGE`: which spans get `genscope.usage.*` attributes.
    pub resource_usage: Option<ResourceUsage>,
    /// `GENSCOPE_SPAN_EXTRAS`: the tracing bridge's non-convention span attributes to keep.
    pub span_extras: Option<SpanExtras>,
    /// `GENSCOPE_HOST_METRICS`: host and process observers.
    pub host_metrics: Option<Sampling>,
    /// `GENSCOPE_GPU_METRICS`: GPU observers.
    pub gpu_metrics: Option<Sampling>,
    /// `GENSCOPE_RESOURCE_HISTORY`: how long the observers' history keeps samples.
    pub resource_history: Option<Duration>,
}

macro_rules! merge_fields {
    ($hi:expr, $lo:expr; $($field:ident),* $(,)?) => {
        PartialSettings { $($field: $hi.$field.or($lo.$field),)* otlp: $hi.otlp.or($lo.otlp),
            otlp_traces: $hi.otlp_traces.or($lo.otlp_traces), otlp_metrics: $hi.otlp_metrics.or($lo.otlp_metrics),
            otlp_logs: $hi.otlp_logs.or($lo.otlp_logs), logs: $hi.logs.or($lo.logs) }
    };
}

impl PartialSettings {
    /// Field by field, `self` where it says something, else `lower`.
    ///
    /// Per-signal OTLP settings of a lower source never beat a general OTLP setting of a higher
    /// source: each signal's OTLP block is resolved within its source first (see [`Settings`]).
    pub fn or(self, lower: PartialSettings) -> PartialSettings {
        // Resolve per-signal blocks within each source before merging across sources.
        let hi = self.with_signals_resolved();
        let lo = lower.with_signals_resolved();
        let resource_attributes = merge_key_values(
            hi.resource_attributes.clone(),
            lo.resource_attributes.clone(),
        );
        let mut merged = merge_fields!(hi, lo;
            service_name, service_version, resource_attributes, sdk_disabled, traces_exporters,
            metrics_exporters, metric_export_interval, temporality, exemplar_filter, sampler, traces_filter,
            span_schedule_delay, span_max_queue_size, span_max_export_batch_size, file_export,
            analyzer_retention, analyzer_max_series_per_metric, analyzer_max_recent_spans,
            shutdown_timeout, prometheus_addr, model_server_metrics, propagators, genai_content_capture, genai_conventions, resource_usage, span_extras,
            host_metrics, gpu_metrics, resource_history,
        );
        merged.resource_attributes = resource_attributes;
        merged
    }

    /// Folds the general OTLP block into each per-signal block of the same source, so that the
    /// per-signal blocks carry everything this source says about that signal.
    fn with_signals_resolved(mut self) -> PartialSettings {
        if !self.otlp.is_empty() {
            self.otlp_traces = std::mem::take(&mut self.otlp_traces).or(self.otlp.clone());
            self.otlp_metrics = std::mem::take(&mut self.otlp_metrics).or(self.otlp.clone());
            self.otlp_logs = std::mem::take(&mut self.otlp_logs).or(self.otlp.clone());
        }
        self
    }

    /// Validates and fills defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let s = self.with_signals_resolved();
        let sdk_disabled = s.sdk_disabled.unwrap_or(false);
        let traces = resolve_otlp(s.otlp_traces, Signal::Traces)?;
        let metrics = resolve_otlp(s.otlp_metrics, Signal::Metrics)?;
        let logs = s.logs.resolve(resolve_otlp(s.otlp_logs, Signal::Logs)?)?;
        // Embedded default: with no exporter selected and no endpoint configured, nothing is sent.
        let traces_exporters = s.traces_exporters.unwrap_or_else(|| {
            if traces.endpoint_configured {
                vec![ExporterKind::Otlp]
            } else {
                vec![]
            }
        });
        let metrics_exporters = s.metrics_exporters.unwrap_or_else(|| {
            if metrics.endpoint_configured {
                vec![ExporterKind::Otlp]
            } else {
                vec![]
            }
        });
        let interval = s.metric_export_interval.unwrap_or(DEFAULT_METRIC_INTERVAL);
        if interval.is_zero() {
            return Err(ConfigError::invalid(
                "metric export interval",
                "0",
                "must be greater than zero",
            ));
        }
        let max_queue = s.span_max_queue_size.unwrap_or(DEFAULT_SPAN_QUEUE);
        let max_batch = s.span_max_export_batch_size.unwrap_or(512);
        if max_queue == 0 || max_batch == 0 {
            return Err(ConfigError::invalid(
                "span queue / batch size",
                format!("{max_queue}/{max_batch}"),
                "must be greater than zero",
            ));
        }
        let retention = s.analyzer_retention.unwrap_or(Duration::from_secs(3600));
        if retention < interval {
            return Err(ConfigError::invalid(
                "analyzer retention",
                humantime::format_duration(retention).to_string(),
                format!(
                    "must be at least the metric export interval ({})",
                    humantime::format_duration(interval)
                ),
            ));
        }
        let resource_history = s.resource_history.unwrap_or(DEFAULT_HISTORY);
        if resource_history.is_zero() {
            return Err(ConfigError::invalid(
                "resource history",
                "0",
                "must be greater than zero",
            ));
        }
        let filter = s
            .traces_filter
            .unwrap_or_else(|| DEFAULT_TRACES_FILTER.to_string());
        tracing_subscriber::EnvFilter::builder()
            .parse(&filter)
            .map_err(|e| ConfigError::invalid("traces filter", &filter, e.to_string()))?;
        Ok(Settings {
            service_name: s.service_name,
            service_version: s.service_version,
            resource_attributes: s.resource_attributes.unwrap_or_default(),
            sdk_disabled,
            traces_exporters,
            metrics_exporters,
            traces_otlp: traces,
            metrics_otlp: metrics,
            logs,
            metric_export_interval: interval,
            temporality: s.temporality.unwrap_or_default(),
            exemplar_filter: s.exemplar_filter.unwrap_or_default(),
            sampler: s.sampler.unwrap_or_default(),
            traces_filter: filter,
            span_schedule_delay: s.span_schedule_delay.unwrap_or(Duration::from_secs(1)),
            span_max_queue_size: max_queue,
            span_max_export_batch_size: max_batch.min(max_queue),
            file_export: s.file_export,
            analyzer_retention: retention,
            analyzer_max_series_per_metric: s.analyzer_max_series_per_metric.unwrap_or(2000),
            analyzer_max_recent_spans: s.analyzer_max_recent_spans.unwrap_or(10_000),
            shutdown_timeout: s.shutdown_timeout.unwrap_or(Duration::from_secs(10)),
            prometheus_addr: s.prometheus_addr,
            model_server_metrics: s.model_server_metrics.unwrap_or_default(),
            propagators: s.propagators.unwrap_or_default(),
            genai_content_capture: s.genai_content_capture.unwrap_or_default(),
            genai_conventions: s.genai_conventions.unwrap_or_default(),
            resource_usage: s.resource_usage.unwrap_or_default(),
            span_extras: s.span_extras.unwrap_or_default(),
            host_metrics: s
                .host_metrics
                .unwrap_or(Sampling::Every(DEFAULT_HOST_INTERVAL)),
            gpu_metrics: s
                .gpu_metrics
                .unwrap_or(Sampling::Every(DEFAULT_GPU_INTERVAL)),
            resource_history,
        })
    }
}

/// Key-wise union; `hi` wins for a key both state.
fn merge_key_values(
    hi: Option<Vec<(String, String)>>,
    lo: Option<Vec<(String, String)>>,
) -> Option<Vec<(String, String)>> {
    match (hi, lo) {
        (Some(hi), Some(lo)) => {
            let mut out: Vec<(String, String)> = lo
                .into_iter()
                .filter(|(k, _)| !hi.iter().any(|(hk, _)| hk == k))
                .collect();
            out.extend(hi);
            Some(out)
        }
        (hi, lo) => hi.or(lo),
    }
}

/// The span queue's default capacity: 8192, not the specification's 2048. At 200k spans/s 2048
/// spans are 10 ms, shorter than a scheduling stall on a busy machine; 8192 hold 40 ms (about
/// 4 MiB of spans) and let the pipeline ship 200k spans/s without a drop (BENCHMARKS.md, the
/// export ceiling). `OTEL_BSP_MAX_QUEUE_SIZE` still sets it.
pub const DEFAULT_SPAN_QUEUE: usize = 8192;

/// Default metric collection interval: short enough for local insight, unlike the SDK's 60 s.
pub const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(10);

/// Default host and process sampling interval (also `genscope::observers::DEFAULT_HOST_INTERVAL`).
pub const DEFAULT_HOST_INTERVAL: Duration = Duration::from_secs(1);
/// Default GPU sampling interval (NVML calls cost milliseconds; DCGM's default is 30 s).
pub const DEFAULT_GPU_INTERVAL: Duration = Duration::from_secs(5);
/// Default resource-history retention (also `genscope::observers::DEFAULT_HISTORY`).
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(600);

/// Default `tracing` filter for spans that become OTel spans.
pub const DEFAULT_TRACES_FILTER: &str = "info";

/// Targets that are never exported as spans: the exporters' own stacks (feedback loop) and the SDK.
pub const EXPORTER_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
];

/// The validated configuration genscope runs with.
///
/// Built by [`crate::GenscopeBuilder`]; exposed so applications can log or test what will happen.
///
/// ```
/// let settings = genscope::config::PartialSettings::default().resolve().unwrap();
/// assert!(settings.traces_exporters.is_empty(), "embedded default sends nothing");
/// assert_eq!(settings.metric_export_interval, std::time::Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    /// `service.name`, if any source set it (else the SDK default `unknown_service:<exe>`).
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// Extra resource attributes.
    pub resource_attributes: Vec<(String, String)>,
    /// Everything is a no-op.
    pub sdk_disabled: bool,
    /// Span destinations.
    pub traces_exporters: Vec<ExporterKind>,
    /// Metric destinations.
    pub metrics_exporters: Vec<ExporterKind>,
    /// OTLP settings for spans.
    pub traces_otlp: OtlpSettings,
    /// OTLP settings for metrics.
    pub metrics_otlp: OtlpSettings,
    /// The logs signal (`tracing` events as OTel log records).
    pub logs: LogsSettings,
    /// Metric collection interval.
    pub metric_export_interval: Duration,
    /// Temporality on the wire.
    pub temporality: TemporalityPreference,
    /// Which histogram measurements keep an exemplar (default `trace_based`).
    pub exemplar_filter: ExemplarFilter,
    /// Sampler.
    pub sampler: SamplerSetting,
    /// `tracing` filter directives for the OpenTelemetry layer.
    pub traces_filter: String,
    /// Span export queue delay.
    pub span_schedule_delay: Duration,
    /// Span export queue capacity.
    pub span_max_queue_size: usize,
    /// Span export batch size.
    pub span_max_export_batch_size: usize,
    /// OTLP JSON-lines file.
    pub file_export: Option<PathBuf>,
    /// Analyzer history.
    pub analyzer_retention: Duration,
    /// Analyzer series limit per metric.
    pub analyzer_max_series_per_metric: usize,
    /// Analyzer raw span ring size.
    pub analyzer_max_recent_spans: usize,
    /// Bound on `shutdown`.
    pub shutdown_timeout: Duration,
    /// Where `/metrics` is served, if anywhere.
    pub prometheus_addr: Option<std::net::SocketAddr>,
    /// Model-server protocol spellings on `/metrics` (default off).
    pub model_server_metrics: ModelServerMetrics,
    /// Context propagators (default `tracecontext,baggage`).
    pub propagators: Propagators,
    /// GenAI content capture.
    pub genai_content_capture: ContentCapture,
    /// The GenAI convention names emitted (default: those of v1.41.1).
    pub genai_conventions: GenAiConventions,
    /// Which spans the resource-usage layer measures.
    pub resource_usage: ResourceUsage,
    /// The tracing bridge's non-convention span attributes that are kept (default none).
    pub span_extras: SpanExtras,
    /// Host and process observers (default every 1 s).
    pub host_metrics: Sampling,
    /// GPU observers (default every 5 s).
    pub gpu_metrics: Sampling,
    /// How long the observers' history keeps samples (default 10 min).
    pub resource_history: Duration,
}
