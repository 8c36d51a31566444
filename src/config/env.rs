//! The environment as a settings source: the standard `OTEL_*` variables and genscope's `GENSCOPE_*`.

use std::path::PathBuf;

use super::values::{
    parse_bool, parse_count, parse_duration, parse_exporters, parse_key_values, parse_millis,
};
use super::{ConfigError, Endpoint, PartialLogs, PartialOtlp, PartialSettings, SamplerSetting};

/// Reads the settings the process environment states.
///
/// A variable that is set but empty counts as unset (the OTel specification's rule).
///
/// ```
/// let partial = genscope::config::from_env().expect("the environment is valid");
/// let _ = partial.resolve();
/// ```
pub fn from_env() -> Result<PartialSettings, ConfigError> {
    let mut not_unicode = None;
    let partial = from_lookup(|key| match std::env::var(key) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            not_unicode.get_or_insert_with(|| key.to_string());
            None
        }
    });
    match not_unicode {
        Some(variable) => Err(ConfigError::NotUnicode { variable }),
        None => partial,
    }
}

/// Reads settings through `lookup` instead of the process environment (tests, embedding).
///
/// ```
/// let partial = genscope::config::from_lookup(|key| match key {
///     "OTEL_SERVICE_NAME" => Some("image-gen".to_string()),
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".to_string()),
///     _ => None,
/// })
/// .unwrap();
/// let settings = partial.resolve().unwrap();
/// assert_eq!(settings.traces_otlp.endpoint, "http://collector:4318/v1/traces");
/// ```
pub fn from_lookup(
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<PartialSettings, ConfigError> {
    let mut get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
    let mut p = PartialSettings {
        service_name: get("OTEL_SERVICE_NAME"),
        ..PartialSettings::default()
    };
    if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
        p.resource_attributes = Some(parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &v, false)?);
    }
    if let Some(v) = get("OTEL_SDK_DISABLED") {
        p.sdk_disabled = Some(parse_bool("OTEL_SDK_DISABLED", &v)?);
    }
    if let Some(v) = get("OTEL_TRACES_EXPORTER") {
        p.traces_exporters = Some(parse_exporters("OTEL_TRACES_EXPORTER", &v)?);
    }
    if let Some(v) = get("OTEL_METRICS_EXPORTER") {
        p.metrics_exporters = Some(parse_exporters("OTEL_METRICS_EXPORTER", &v)?);
    }
    p.otlp = read_otlp(&mut get, "OTEL_EXPORTER_OTLP_", false)?;
    p.otlp_traces = read_otlp(&mut get, "OTEL_EXPORTER_OTLP_TRACES_", true)?;
    p.otlp_metrics = read_otlp(&mut get, "OTEL_EXPORTER_OTLP_METRICS_", true)?;
    p.otlp_logs = read_otlp(&mut get, "OTEL_EXPORTER_OTLP_LOGS_", true)?;
    p.logs = read_logs(&mut get)?;
    if let Some(v) = get("OTEL_METRIC_EXPORT_INTERVAL") {
        let d = parse_millis("OTEL_METRIC_EXPORT_INTERVAL", &v)?;
        if d.is_zero() {
            return Err(ConfigError::invalid(
                "OTEL_METRIC_EXPORT_INTERVAL",
                v,
                "must be greater than zero",
            ));
        }
        p.metric_export_interval = Some(d);
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
        p.temporality = Some(v.parse().map_err(|r: String| {
            ConfigError::invalid("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", &v, r)
        })?);
    }
    if let Some(v) = get("OTEL_METRICS_EXEMPLAR_FILTER") {
        p.exemplar_filter =
            Some(v.parse().map_err(|r: String| {
                ConfigError::invalid("OTEL_METRICS_EXEMPLAR_FILTER", &v, r)
            })?);
    }
    let sampler_arg = get("OTEL_TRACES_SAMPLER_ARG");
    if let Some(v) = get("OTEL_TRACES_SAMPLER") {
        p.sampler = Some(
            SamplerSetting::parse(&v, sampler_arg.as_deref())
                .map_err(|r| ConfigError::invalid("OTEL_TRACES_SAMPLER", &v, r))?,
        );
    }
    if let Some(v) = get("OTEL_BSP_SCHEDULE_DELAY") {
        p.span_schedule_delay = Some(parse_millis("OTEL_BSP_SCHEDULE_DELAY", &v)?);
    }
    if let Some(v) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
        p.span_max_queue_size = Some(parse_count("OTEL_BSP_MAX_QUEUE_SIZE", &v)?);
    }
    if let Some(v) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
        p.span_max_export_batch_size = Some(parse_count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v)?);
    }
    p.traces_filter = get("GENSCOPE_TRACES_FILTER");
    p.file_export = get("GENSCOPE_FILE_EXPORT").map(PathBuf::from);
    if let Some(v) = get("GENSCOPE_ANALYZER_RETENTION") {
        p.analyzer_retention = Some(parse_duration("GENSCOPE_ANALYZER_RETENTION", &v)?);
    }
    if let Some(v) = get("GENSCOPE_ANALYZER_MAX_SERIES") {
        p.analyzer_max_series_per_metric = Some(parse_count("GENSCOPE_ANALYZER_MAX_SERIES", &v)?);
    }
    if let Some(v) = get("GENSCOPE_ANALYZER_MAX_RECENT_SPANS") {
        p.analyzer_max_recent_spans = Some(parse_count("GENSCOPE_ANALYZER_MAX_RECENT_SPANS", &v)?);
    }
    if let Some(v) = get("GENSCOPE_PROMETHEUS_ADDR") {
        p.prometheus_addr = Some(super::values::parse_listen_addr(
            "GENSCOPE_PROMETHEUS_ADDR",
            &v,
        )?);
    }
    if let Some(v) = get("OTEL_PROPAGATORS") {
        p.propagators = Some(
            v.parse()
                .map_err(|r: String| ConfigError::invalid("OTEL_PROPAGATORS", &v, r))?,
        );
    }
    if let Some(v) = get("GENSCOPE_MODEL_SERVER_METRICS") {
        p.model_server_metrics =
            Some(v.parse().map_err(|r: String| {
                ConfigError::invalid("GENSCOPE_MODEL_SERVER_METRICS", &v, r)
            })?);
    }
    if let Some(v) = get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") {
        p.genai_content_capture = Some(v.parse().map_err(|r: String| {
            ConfigError::invalid("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", &v, r)
        })?);
    }
    if let Some(v) = get("OTEL_SEMCONV_STABILITY_OPT_IN") {
        p.genai_conventions =
            Some(v.parse().map_err(|r: String| {
                ConfigError::invalid("OTEL_SEMCONV_STABILITY_OPT_IN", &v, r)
            })?);
    }
    if let Some(v) = get("GENSCOPE_RESOURCE_USAGE") {
        p.resource_usage = Some(
            v.parse()
                .map_err(|r: String| ConfigError::invalid("GENSCOPE_RESOURCE_USAGE", &v, r))?,
        );
    }
    if let Some(v) = get("GENSCOPE_SPAN_EXTRAS") {
        p.span_extras = Some(
            v.parse()
                .map_err(|r: String| ConfigError::invalid("GENSCOPE_SPAN_EXTRAS", &v, r))?,
        );
    }
    for (name, slot) in [
        ("GENSCOPE_HOST_METRICS", &mut p.host_metrics),
        ("GENSCOPE_GPU_METRICS", &mut p.gpu_metrics),
    ] {
        if let Some(v) = get(name) {
            *slot = Some(
                v.parse()
                    .map_err(|r: String| ConfigError::invalid(name, &v, r))?,
            );
        }
    }
    if let Some(v) = get("GENSCOPE_RESOURCE_HISTORY") {
        p.resource_history = Some(parse_duration("GENSCOPE_RESOURCE_HISTORY", &v)?);
    }
    if let Some(v) = get("GENSCOPE_SHUTDOWN_TIMEOUT") {
        p.shutdown_timeout = Some(parse_duration("GENSCOPE_SHUTDOWN_TIMEOUT", &v)?);
    }
    Ok(p)
}

/// Reads `OTEL_LOGS_EXPORTER`, `OTEL_BLRP_*` and `GENSCOPE_LOGS_FILTER` through `get`.
fn read_logs(get: &mut impl FnMut(&str) -> Option<String>) -> Result<PartialLogs, ConfigError> {
    let mut p = PartialLogs::default();
    if let Some(v) = get("OTEL_LOGS_EXPORTER") {
        p.exporters = Some(parse_exporters("OTEL_LOGS_EXPORTER", &v)?);
    }
    p.filter = get("GENSCOPE_LOGS_FILTER");
    if let Some(v) = get("OTEL_BLRP_SCHEDULE_DELAY") {
        p.schedule_delay = Some(parse_millis("OTEL_BLRP_SCHEDULE_DELAY", &v)?);
    }
    if let Some(v) = get("OTEL_BLRP_MAX_QUEUE_SIZE") {
        p.max_queue_size = Some(parse_count("OTEL_BLRP_MAX_QUEUE_SIZE", &v)?);
    }
    if let Some(v) = get("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE") {
        p.max_export_batch_size = Some(parse_count("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", &v)?);
    }
    if let Some(v) = get("OTEL_BLRP_EXPORT_TIMEOUT") {
        p.export_timeout = Some(parse_millis("OTEL_BLRP_EXPORT_TIMEOUT", &v)?);
    }
    Ok(p)
}

fn read_otlp(
    get: &mut impl FnMut(&str) -> Option<String>,
    prefix: &str,
    per_signal: bool,
) -> Result<PartialOtlp, ConfigError> {
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let mut o = PartialOtlp::default();
    if let Some(v) = get(&name("ENDPOINT")) {
        super::values::validate_endpoint(v.trim()).map_err(|_| {
            ConfigError::invalid(
                name("ENDPOINT"),
                &v,
                "expected an http:// or https:// URL with a host, e.g. http://localhost:4317",
            )
        })?;
        let v = v.trim().to_string();
        o.endpoint = Some(if per_signal {
            Endpoint::Signal(v)
        } else {
            Endpoint::Base(v)
        });
    }
    if let Some(v) = get(&name("PROTOCOL")) {
        o.protocol = Some(
            v.parse()
                .map_err(|r: String| ConfigError::invalid(name("PROTOCOL"), &v, r))?,
        );
    }
    if let Some(v) = get(&name("HEADERS")) {
        o.headers = Some(parse_key_values(&name("HEADERS"), &v, true)?);
    }
    if let Some(v) = get(&name("TIMEOUT")) {
        o.timeout = Some(parse_millis(&name("TIMEOUT"), &v)?);
    }
    if let Some(v) = get(&name("COMPRESSION")) {
        o.compression = Some(
            v.parse()
                .map_err(|r: String| ConfigError::invalid(name("COMPRESSION"), &v, r))?,
        );
    }
    o.certificate = get(&name("CERTIFICATE")).map(PathBuf::from);
    o.client_certificate = get(&name("CLIENT_CERTIFICATE")).map(PathBuf::from);
    o.client_key = get(&name("CLIENT_KEY")).map(PathBuf::from);
    if let Some(v) = get(&name("INSECURE")) {
        o.insecure = Some(parse_bool(&name("INSECURE"), &v)?);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExporterKind, Protocol};
    use std::collections::HashMap;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Result<PartialSettings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn per_signal_beats_general_and_keeps_its_path() {
        let s = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:9000/custom",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(s.traces_otlp.protocol, Protocol::Grpc);
        assert_eq!(s.traces_otlp.endpoint, "http://base:4318/");
        assert_eq!(s.metrics_otlp.endpoint, "http://m:9000/custom");
        assert_eq!(
            s.traces_exporters,
            vec![ExporterKind::Otlp],
            "an endpoint turns OTLP on"
        );
    }

    #[test]
    fn explicit_otlp_without_endpoint_uses_spec_default() {
        let s = env(&[("OTEL_TRACES_EXPORTER", "otlp")])
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(s.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
        assert!(s.metrics_exporters.is_empty());
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-1"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "broken"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "-5"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_SDK_DISABLED", "maybe"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                "sideways",
            ),
            ("GENSCOPE_ANALYZER_RETENTION", "forever"),
            ("GENSCOPE_SHUTDOWN_TIMEOUT", "soon"),
            ("GENSCOPE_HOST_METRICS", "often"),
            ("GENSCOPE_GPU_METRICS", "1ms"),
            ("GENSCOPE_RESOURCE_HISTORY", "forever"),
        ] {
            let err = env(&[(var, value)]).expect_err(var);
            assert_eq!(err.setting(), Some(var), "{err}");
        }
    }

    #[test]
    fn observer_settings() {
        let s = env(&[
            ("GENSCOPE_HOST_METRICS", "250ms"),
            ("GENSCOPE_GPU_METRICS", "off"),
            ("GENSCOPE_RESOURCE_HISTORY", "30m"),
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(
            s.host_metrics,
            super::super::Sampling::Every(Duration::from_millis(250))
        );
        assert_eq!(s.gpu_metrics, super::super::Sampling::Off);
        assert_eq!(s.resource_history, Duration::from_secs(1800));
        let d = env(&[]).unwrap().resolve().unwrap();
        assert_eq!(d.host_metrics.interval(), Some(Duration::from_secs(1)));
        assert_eq!(d.gpu_metrics.interval(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let s = env(&[("OTEL_SERVICE_NAME", ""), ("OTEL_SDK_DISABLED", " ")]).unwrap();
        assert!(s.service_name.is_none());
        assert!(s.sdk_disabled.is_none());
    }

    #[test]
    fn durations_and_sizes() {
        let s = env(&[
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "500"),
        ])
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(s.metric_export_interval, Duration::from_millis(1500));
        assert_eq!(
            s.span_max_export_batch_size, 100,
            "a batch never exceeds the queue"
        );
    }

    fn resolve_logs(pairs: &[(&str, &str)]) -> Result<crate::config::Settings, String> {
        env(pairs)
            .and_then(|p| p.resolve())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn logs_follow_traces_and_have_their_own_endpoint() {
        let s = resolve_logs(&[]).unwrap();
        assert!(
            s.logs.exporters.is_empty(),
            "embedded default sends nothing"
        );
        let s = resolve_logs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:9999/custom"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "8000"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "2000"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "50"),
        ])
        .unwrap();
        assert_eq!(s.logs.exporters, vec![ExporterKind::Otlp]);
        assert_eq!(s.logs.otlp.endpoint, "http://l:9999/custom");
        assert_eq!(s.traces_otlp.endpoint, "http://c:4318/v1/traces");
        assert_eq!(s.logs.otlp.timeout, std::time::Duration::from_secs(2));
        assert_eq!(
            s.logs.max_export_batch_size, 10,
            "a batch never exceeds the queue"
        );
        let s = resolve_logs(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .unwrap();
        assert!(s.logs.exporters.is_empty());
        assert_eq!(s.traces_exporters, vec![ExporterKind::Otlp]);
    }

    #[test]
    fn bad_logs_settings_name_the_variable() {
        for (key, value) in [
            ("OTEL_LOGS_EXPORTER", "syslog"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BLRP_SCHEDULE_DELAY", "soon"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "0"),
            ("GENSCOPE_LOGS_FILTER", "my_server=loud"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318"),
        ] {
            let err = resolve_logs(&[(key, value)]).unwrap_err();
            assert!(
                err.contains(key) || err.contains("log queue"),
                "{key}={value}: {err}"
            );
        }
    }
}
