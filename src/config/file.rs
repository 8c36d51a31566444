//! A TOML file as a settings source (`GENSCOPE_CONFIG=path` or [`crate::GenscopeBuilder::config_file`]).
//!
//! The schema mirrors the environment variables; unknown keys are errors (a typo is never ignored).
//!
//! ```toml
//! [service]
//! name = "image-gen"
//! version = "1.4.0"
//!
//! [resource]
//! "deployment.environment.name" = "staging"
//!
//! [exporters]
//! traces = ["otlp"]
//! metrics = ["otlp", "console"]
//! logs = ["otlp"]      # default: otlp when an endpoint is configured
//! file = "telemetry.jsonl"
//!
//! [otlp]
//! endpoint = "http://collector:4317"
//! protocol = "grpc"
//! compression = "gzip"
//! timeout = "5s"
//! headers = { "x-tenant" = "blue" }
//!
//! [otlp.metrics]
//! endpoint = "http://metrics-collector:4317"
//!
//! [otlp.logs]
//! timeout = "5s"
//!
//! [metrics]
//! export_interval = "10s"
//! temporality = "cumulative"
//! exemplar_filter = "trace_based"   # or always_on, always_off
//!
//! [traces]
//! sampler = "parentbased_traceidratio"
//! sampler_arg = 0.25
//! propagators = "tracecontext,baggage"
//! filter = "info,my_server=debug"
//! resource_usage = "info"
//! span_extras = "location"
//! schedule_delay = "1s"
//! max_queue_size = 8192
//! max_export_batch_size = 512
//!
//! [logs]
//! filter = "info"     # which tracing events become OTel log records
//! schedule_delay = "1s"
//! max_queue_size = 2048
//! max_export_batch_size = 512
//! export_timeout = "30s"
//!
//! [observers]
//! host = "1s"        # or "off"
//! gpu = "5s"         # or "off"
//! history = "10m"
//!
//! [analyzer]
//! retention = "1h"
//! max_series_per_metric = 2000
//! max_recent_spans = 10000
//!
//! [shutdown]
//! timeout = "10s"
//!
//! [prometheus]
//! addr = "127.0.0.1:9464"
//! model_server_metrics = "off"
//!
//! [genai]
//! capture_message_content = "NO_CONTENT"
//! semconv_stability_opt_in = "gen_ai_latest_experimental"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::values::parse_exporters;
use super::{
    Compression, ConfigError, Endpoint, PartialOtlp, PartialSettings, Protocol, SamplerSetting,
    TemporalityPreference,
};

/// Reads a TOML settings file.
///
/// ```
/// let err = genscope::config::from_toml_file("/nonexistent/genscope.toml").unwrap_err();
/// assert!(err.to_string().contains("/nonexistent/genscope.toml"));
/// ```
pub fn from_toml_file(path: impl AsRef<Path>) -> Result<PartialSettings, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        setting: "GENSCOPE_CONFIG".into(),
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Reads TOML settings from a string.
///
/// ```
/// let p = genscope::config::from_toml_str("[service]\nname = \"image-gen\"\n").unwrap();
/// assert_eq!(p.service_name.as_deref(), Some("image-gen"));
///
/// let err = genscope::config::from_toml_str("[otlp]\nprotocol = \"udp\"\n").unwrap_err();
/// assert!(err.to_string().starts_with("<string>:2:"), "{err}");
/// ```
pub fn from_toml_str(text: &str) -> Result<PartialSettings, ConfigError> {
    parse(text, Path::new("<string>"))
}

fn parse(text: &str, path: &Path) -> Result<PartialSettings, ConfigError> {
    let file: FileSettings = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Toml {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    file.into_partial()
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|e| {
        serde::de::Error::custom(format!("expected a duration like 500ms, 10s or 1h: {e}"))
    })
}

fn de_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    let n = i64::deserialize(d)?;
    if n <= 0 {
        return Err(serde::de::Error::custom("expected a positive integer"));
    }
    usize::try_from(n)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_exporters<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<super::ExporterKind>>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    parse_exporters("exporters", &items.join(","))
        .map(Some)
        .map_err(|e| match e {
            ConfigError::Invalid { reason, .. } => serde::de::Error::custom(reason),
            other => serde::de::Error::custom(other),
        })
}

fn de_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    super::values::validate_endpoint(&s).map_err(|e| match e {
        ConfigError::Invalid { reason, .. } => serde::de::Error::custom(reason),
        other => serde::de::Error::custom(other),
    })?;
    Ok(Some(s))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    #[serde(default)]
    service: ServiceSection,
    #[serde(default)]
    resource: BTreeMap<String, String>,
    #[serde(default)]
    sdk: SdkSection,
    #[serde(default)]
    exporters: ExportersSection,
    #[serde(default)]
    otlp: OtlpSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    traces: TracesSection,
    #[serde(default)]
    logs: LogsSection,
    #[serde(default)]
    analyzer: AnalyzerSection,
    #[serde(default)]
    shutdown: ShutdownSection,
    #[serde(default)]
    prometheus: PrometheusSection,
    #[serde(default)]
    genai: GenAiSection,
    #[serde(default)]
    observers: ObserversSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ObserversSection {
    host: Option<super::Sampling>,
    gpu: Option<super::Sampling>,
    #[serde(default, deserialize_with = "de_duration")]
    history: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PrometheusSection {
    #[serde(default, deserialize_with = "de_listen_addr")]
    addr: Option<std::net::SocketAddr>,
    model_server_metrics: Option<super::ModelServerMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GenAiSection {
    capture_message_content: Option<super::ContentCapture>,
    semconv_stability_opt_in: Option<super::GenAiConventions>,
}

fn de_listen_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    super::values::parse_listen_addr("prometheus.addr", &s)
        .map(Some)
        .map_err(|e| match e {
            ConfigError::Invalid { reason, .. } => serde::de::Error::custom(reason),
            other => serde::de::Error::custom(other),
        })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServiceSection {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SdkSection {
    disabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExportersSection {
    #[serde(default, deserialize_with = "de_exporters")]
    traces: Option<Vec<super::ExporterKind>>,
    #[serde(default, deserialize_with = "de_exporters")]
    metrics: Option<Vec<super::ExporterKind>>,
    #[serde(default, deserialize_with = "de_exporters")]
    logs: Option<Vec<super::ExporterKind>>,
    file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OtlpFields {
    #[serde(default, deserialize_with = "de_endpoint")]
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    compression: Option<Compression>,
    certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    insecure: Option<bool>,
}

/// `[otlp]`: the general fields spelled out rather than `#[serde(flatten)]`ed, because flattening
/// loses the position of errors (every error would point at the table header).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OtlpSection {
    #[serde(default, deserialize_with = "de_endpoint")]
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
    compression: Option<Compression>,
    certificate: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    insecure: Option<bool>,
    traces: Option<OtlpFields>,
    metrics: Option<OtlpFields>,
    logs: Option<OtlpFields>,
}

impl OtlpSection {
    fn general(&mut self) -> OtlpFields {
        OtlpFields {
            endpoint: self.endpoint.take(),
            protocol: self.protocol.take(),
            headers: self.headers.take(),
            timeout: self.timeout.take(),
            compression: self.compression.take(),
            certificate: self.certificate.take(),
            client_certificate: self.client_certificate.take(),
            client_key: self.client_key.take(),
            insecure: self.insecure.take(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    #[serde(default, deserialize_with = "de_duration")]
    export_interval: Option<Duration>,
    temporality: Option<TemporalityPreference>,
    exemplar_filter: Option<super::ExemplarFilter>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TracesSection {
    sampler: Option<String>,
    sampler_arg: Option<f64>,
    propagators: Option<super::Propagators>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    schedule_delay: Option<Duration>,
    #[serde(default, deserialize_with = "de_positive")]
    max_queue_size: Option<usize>,
    #[serde(default, deserialize_with = "de_positive")]
    max_export_batch_size: Option<usize>,
    resource_usage: Option<super::ResourceUsage>,
    span_extras: Option<super::SpanExtras>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogsSection {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_duration")]
    schedule_delay: Option<Duration>,
    #[serde(default, deserialize_with = "de_positive")]
    max_queue_size: Option<usize>,
    #[serde(default, deserialize_with = "de_positive")]
    max_export_batch_size: Option<usize>,
    #[serde(default, deserialize_with = "de_duration")]
    export_timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AnalyzerSection {
    #[serde(default, deserialize_with = "de_duration")]
    retention: Option<Duration>,
    #[serde(default, deserialize_with = "de_positive")]
    max_series_per_metric: Option<usize>,
    #[serde(default, deserialize_with = "de_positive")]
    max_recent_spans: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ShutdownSection {
    #[serde(default, deserialize_with = "de_duration")]
    timeout: Option<Duration>,
}

impl OtlpFields {
    fn into_partial(self, per_signal: bool) -> PartialOtlp {
        PartialOtlp {
            endpoint: self.endpoint.map(|e| {
                if per_signal {
                    Endpoint::Signal(e)
                } else {
                    Endpoint::Base(e)
                }
            }),
            protocol: self.protocol,
            headers: self.headers.map(|h| h.into_iter().collect()),
            timeout: self.timeout,
            compression: self.compression,
            certificate: self.certificate,
            client_certificate: self.client_certificate,
            client_key: self.client_key,
            insecure: self.insecure,
        }
    }
}

impl FileSettings {
    fn into_partial(mut self) -> Result<PartialSettings, ConfigError> {
        let general = self.otlp.general();
        let sampler = match self.traces.sampler {
            Some(name) => Some(
                SamplerSetting::parse(
                    &name,
                    self.traces.sampler_arg.map(|a| a.to_string()).as_deref(),
                )
                .map_err(|r| ConfigError::invalid("traces.sampler", name, r))?,
            ),
            None => None,
        };
        Ok(PartialSettings {
            service_name: self.service.name,
            service_version: self.service.version,
            resource_attributes: (!self.resource.is_empty())
                .then(|| self.resource.into_iter().collect()),
            sdk_disabled: self.sdk.disabled,
            traces_exporters: self.exporters.traces,
            metrics_exporters: self.exporters.metrics,
            otlp: general.into_partial(false),
            otlp_traces: self
                .otlp
                .traces
                .map(|o| o.into_partial(true))
                .unwrap_or_default(),
            otlp_metrics: self
                .otlp
                .metrics
                .map(|o| o.into_partial(true))
                .unwrap_or_default(),
            otlp_logs: self
                .otlp
                .logs
                .map(|o| o.into_partial(true))
                .unwrap_or_default(),
            logs: super::PartialLogs {
                exporters: self.exporters.logs,
                filter: self.logs.filter,
                schedule_delay: self.logs.schedule_delay,
                max_queue_size: self.logs.max_queue_size,
                max_export_batch_size: self.logs.max_export_batch_size,
                export_timeout: self.logs.export_timeout,
            },
            metric_export_interval: self.metrics.export_interval,
            temporality: self.metrics.temporality,
            exemplar_filter: self.metrics.exemplar_filter,
            sampler,
            traces_filter: self.traces.filter,
            span_schedule_delay: self.traces.schedule_delay,
            span_max_queue_size: self.traces.max_queue_size,
            span_max_export_batch_size: self.traces.max_export_batch_size,
            file_export: self.exporters.file,
            analyzer_retention: self.analyzer.retention,
            analyzer_max_series_per_metric: self.analyzer.max_series_per_metric,
            analyzer_max_recent_spans: self.analyzer.max_recent_spans,
            shutdown_timeout: self.shutdown.timeout,
            prometheus_addr: self.prometheus.addr,
            propagators: self.traces.propagators,
            model_server_metrics: self.prometheus.model_server_metrics,
            genai_content_capture: self.genai.capture_message_content,
            genai_conventions: self.genai.semconv_stability_opt_in,
            resource_usage: self.traces.resource_usage,
            span_extras: self.traces.span_extras,
            host_metrics: self.observers.host,
            gpu_metrics: self.observers.gpu,
            resource_history: self.observers.history,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_err(text: &str) -> (usize, String) {
        match from_toml_str(text).unwrap_err() {
            ConfigError::Toml { line, message, .. } => (line, message),
            other => panic!("expected a TOML error, got {other}"),
        }
    }

    #[test]
    fn full_file_parses() {
        let text = include_str!("../../examples/genscope.toml");
        let p = from_toml_str(text).unwrap();
        assert_eq!(p.service_name.as_deref(), Some("image-gen"));
        let s = p.resolve().unwrap();
        assert_eq!(s.metrics_otlp.endpoint, "http://localhost:4317");
        assert_eq!(s.traces_otlp.protocol, Protocol::Grpc);
    }

    #[test]
    fn errors_carry_the_line() {
        assert_eq!(toml_err("[otlp]\n\nprotocol = \"udp\"\n").0, 3);
        assert_eq!(toml_err("[metrics]\nexport_interval = \"-5s\"\n").0, 2);
        assert_eq!(toml_err("[traces]\nmax_queue_size = -1\n").0, 2);
        let (line, msg) = toml_err("[servce]\nname = \"x\"\n");
        assert_eq!(line, 1);
        assert!(msg.contains("servce"), "{msg}");
        assert_eq!(toml_err("[otlp]\nendpoint = \"localhost\"\n").0, 2);
        assert_eq!(toml_err("[exporters]\ntraces = [\"zipkin\"]\n").0, 2);
        assert_eq!(toml_err("[otlp\n").0, 1);
        let (line, msg) = toml_err("[observers]\nhost = \"1s\"\ngpu = \"fast\"\n");
        assert_eq!(line, 3);
        assert!(msg.contains("interval"), "{msg}");
        assert_eq!(toml_err("[observers]\nhistory = \"-1s\"\n").0, 2);
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = from_toml_file("/definitely/not/here.toml").unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }));
    }
}
