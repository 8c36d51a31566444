//! The typed values of settings and the one parser per value kind that every source shares.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::error::ConfigError;

/// OTLP wire protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
///
/// ```
/// use genscope::config::Protocol;
/// assert_eq!("grpc".parse::<Protocol>().unwrap(), Protocol::Grpc);
/// assert!("udp".parse::<Protocol>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// OTLP/gRPC (tonic), default port 4317.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies, default port 4318. The specification's default.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err("expected one of: grpc, http/protobuf, http/json".into()),
        }
    }
}

/// Payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
///
/// ```
/// use genscope::config::Compression;
/// assert_eq!("gzip".parse::<Compression>().unwrap(), Compression::Gzip);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression (the specification's default).
    #[default]
    None,
    /// gzip.
    Gzip,
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "none" | "" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            _ => Err("expected one of: gzip, none".into()),
        }
    }
}

/// A destination for one signal (`OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`).
///
/// The analyzer store is not a destination: it always sees what is exported.
///
/// ```
/// use genscope::config::ExporterKind;
/// assert_eq!("console".parse::<ExporterKind>().unwrap(), ExporterKind::Console);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExporterKind {
    /// OTLP over the configured protocol.
    Otlp,
    /// OTLP JSON lines on standard output.
    Console,
}

impl FromStr for ExporterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "otlp" => Ok(ExporterKind::Otlp),
            "console" => Ok(ExporterKind::Console),
            _ => Err(
                "expected a comma-separated list of: otlp, console, or the single value none"
                    .into(),
            ),
        }
    }
}

/// Parses an exporter list: `none`, or a comma-separated list of kinds.
pub(crate) fn parse_exporters(
    setting: &str,
    value: &str,
) -> Result<Vec<ExporterKind>, ConfigError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items == ["none"] {
        return Ok(vec![]);
    }
    let mut kinds = Vec::new();
    for item in items {
        let kind = item
            .parse()
            .map_err(|r: String| ConfigError::invalid(setting, value, r))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(ConfigError::invalid(
            setting,
            value,
            "empty; use none to export nothing",
        ));
    }
    Ok(kinds)
}

/// Metric temporality on the wire (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
///
/// The analyzer store handles both: it turns cumulative points into deltas itself.
///
/// ```
/// use genscope::config::TemporalityPreference;
/// assert_eq!("Delta".parse::<TemporalityPreference>().unwrap(), TemporalityPreference::Delta);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemporalityPreference {
    /// Cumulative for every instrument (the default; robust to lost exports).
    #[default]
    Cumulative,
    /// Delta for counters and histograms.
    Delta,
    /// Delta for synchronous counters and histograms, cumulative for the rest.
    LowMemory,
}

impl FromStr for TemporalityPreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cumulative" => Ok(Self::Cumulative),
            "delta" => Ok(Self::Delta),
            "lowmemory" => Ok(Self::LowMemory),
            _ => Err("expected one of: cumulative, delta, lowmemory".into()),
        }
    }
}

/// Trace sampler (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
///
/// Metrics are never sampled: samplers only decide which spans are exported.
///
/// ```
/// use genscope::config::SamplerSetting;
/// let s = SamplerSetting::parse("parentbased_traceidratio", Some("0.25")).unwrap();
/// assert_eq!(s, SamplerSetting::ParentBasedTraceIdRatio(0.25));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum SamplerSetting {
    /// Every span.
    AlwaysOn,
    /// No span.
    AlwaysOff,
    /// A fraction of traces, by trace id.
    TraceIdRatio(f64),
    /// Follow the parent; root spans always sampled (the default).
    #[default]
    ParentBasedAlwaysOn,
    /// Follow the parent; root spans never sampled.
    ParentBasedAlwaysOff,
    /// Follow the parent; root spans by ratio.
    ParentBasedTraceIdRatio(f64),
}

impl SamplerSetting {
    /// Parses a sampler name and its optional argument as the OTel environment variables spell them.
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Self, String> {
        let ratio = || -> Result<f64, String> {
            match arg {
                None => Ok(1.0),
                Some(a) => match a.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(format!("sampler argument {a:?} must be a number in 0..=1")),
                },
            }
        };
        Ok(match name.trim() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio()?),
            "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio()?),
            _ => {
                return Err(
                    "expected one of: always_on, always_off, traceidratio, parentbased_always_on, \
                            parentbased_always_off, parentbased_traceidratio"
                        .into(),
                );
            }
        })
    }
}

/// `true` or `false`, case-insensitive. Anything else is an error rather than a silent `false`.
pub(crate) fn parse_bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(ConfigError::invalid(
            setting,
            value,
            "expected true or false",
        )),
    }
}

/// A non-negative integer number of milliseconds, as the OTel environment variables specify.
pub(crate) fn parse_millis(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            ConfigError::invalid(
                setting,
                value,
                "expected a non-negative integer number of milliseconds",
            )
        })
}

/// A human duration (`500ms`, `10s`, `1h`) for genscope's own settings.
pub(crate) fn parse_duration(setting: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::invalid(
            setting,
            value,
            format!("expected a duration like 500ms, 10s or 1h ({e})"),
        )
    })
}

/// A positive integer.
pub(crate) fn parse_count(setting: &str, value: &str) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::invalid(
            setting,
            value,
            "expected a positive integer",
        )),
    }
}

/// `key1=value1,key2=value2` with percent-encoded values, as W3C baggage and the OTel spec use for
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
///
/// `redact` hides values in the error (headers carry credentials).
pub(crate) fn parse_key_values(
    setting: &str,
    value: &str,
    redact: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let shown = |v: &str| {
        if redact {
            "<redacted>".to_string()
        } else {
            v.to_string()
        }
    };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(ConfigError::invalid(
                setting,
                shown(value),
                format!(
                    "entry {:?} is not key=value",
                    if redact { "<redacted>" } else { item }
                ),
            ));
        };
        let key = k.trim();
        if key.is_empty() {
            return Err(ConfigError::invalid(
                setting,
                shown(value),
                "an entry has an empty key",
            ));
        }
        let decoded = percent_decode(v.trim())
            .ok_or_else(|| ConfigError::invalid(setting, shown(value), "bad percent-encoding"))?;
        out.push((key.to_string(), decoded));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An endpoint must be an absolute `http` or `https` URL with a host.
pub(crate) fn validate_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid("OTLP endpoint", endpoint, reason);
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(bad(
                "expected an http:// or https:// URL, e.g. http://localhost:4317",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_decode_and_reject() {
        let kv = parse_key_values("X", "a=1, b = hello%20world ,c=%3D", false).unwrap();
        assert_eq!(
            kv,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "hello world".into()),
                ("c".into(), "=".into())
            ]
        );
        assert!(parse_key_values("X", "novalue", false).is_err());
        assert!(parse_key_values("X", "=v", false).is_err());
        assert!(parse_key_values("X", "a=%zz", false).is_err());
        let err = parse_key_values("H", "secret-token", true)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-token"), "{err}");
    }

    #[test]
    fn endpoints() {
        assert!(validate_endpoint("http://localhost:4317").is_ok());
        assert!(validate_endpoint("https://otel.example.com/v1/traces").is_ok());
        assert!(validate_endpoint("localhost:4317").is_err());
        assert!(validate_endpoint("ftp://x").is_err());
        assert!(validate_endpoint("http://").is_err());
        assert!(validate_endpoint("not a url").is_err());
    }

    #[test]
    fn exporters_and_sampler() {
        assert_eq!(parse_exporters("E", "none").unwrap(), vec![]);
        assert_eq!(
            parse_exporters("E", "otlp,console,otlp").unwrap(),
            vec![ExporterKind::Otlp, ExporterKind::Console]
        );
        assert!(parse_exporters("E", "zipkin").is_err());
        assert!(parse_exporters("E", "").is_err());
        assert!(SamplerSetting::parse("traceidratio", Some("1.5")).is_err());
        assert!(SamplerSetting::parse("sometimes", None).is_err());
    }

    #[test]
    fn numbers() {
        assert!(parse_millis("T", "-5").is_err());
        assert_eq!(
            parse_millis("T", "250").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_bool("B", "yes").is_err());
        assert!(parse_bool("B", "TRUE").unwrap());
        assert!(parse_count("C", "0").is_err());
        assert_eq!(
            parse_duration("D", "1h").unwrap(),
            Duration::from_secs(3600)
        );
    }
}

/// Whether GenAI prompt and completion content is recorded
/// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`). Off unless the user opts in.
///
/// ```
/// use genscope::config::ContentCapture;
/// assert_eq!(ContentCapture::default(), ContentCapture::NoContent);
/// assert_eq!("span_only".parse::<ContentCapture>().unwrap(), ContentCapture::SpanOnly);
/// // The boolean spelling older instrumentations used is accepted too.
/// assert_eq!("true".parse::<ContentCapture>().unwrap(), ContentCapture::SpanAndEvent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentCapture {
    /// Never record content (the default).
    #[default]
    NoContent,
    /// Content as span attributes.
    SpanOnly,
    /// Content as span events.
    EventOnly,
    /// Both.
    SpanAndEvent,
}

impl ContentCapture {
    /// Content goes on spans as attributes.
    pub fn on_span(self) -> bool {
        matches!(
            self,
            ContentCapture::SpanOnly | ContentCapture::SpanAndEvent
        )
    }
    /// Content goes into an event.
    pub fn as_event(self) -> bool {
        matches!(
            self,
            ContentCapture::EventOnly | ContentCapture::SpanAndEvent
        )
    }
}

impl FromStr for ContentCapture {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "NO_CONTENT" | "FALSE" => Ok(Self::NoContent),
            "SPAN_ONLY" => Ok(Self::SpanOnly),
            "EVENT_ONLY" => Ok(Self::EventOnly),
            "SPAN_AND_EVENT" | "TRUE" => Ok(Self::SpanAndEvent),
            _ => Err("expected one of: NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT".into()),
        }
    }
}

impl<'de> Deserialize<'de> for ContentCapture {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which spans the resource-usage layer measures (`GENSCOPE_RESOURCE_USAGE`, TOML
/// `traces.resource_usage`): `off`, `operations` (spans with an `operation` field and genscope's
/// operations), or a level name (`error` .. `trace`): spans at that level or more severe, plus
/// operations. Default `info`.
///
/// ```
/// use genscope::config::ResourceUsage;
/// assert_eq!(ResourceUsage::default(), ResourceUsage::Level(tracing::Level::INFO));
/// assert_eq!("operations".parse::<ResourceUsage>().unwrap(), ResourceUsage::Operations);
/// assert_eq!("DEBUG".parse::<ResourceUsage>().unwrap(), ResourceUsage::Level(tracing::Level::DEBUG));
/// assert!("sometimes".parse::<ResourceUsage>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceUsage {
    /// No measurement; the layer is not added.
    Off,
    /// Operation spans only.
    Operations,
    /// Spans at this level or more severe, and operation spans.
    Level(tracing::Level),
}

impl Default for ResourceUsage {
    fn default() -> Self {
        ResourceUsage::Level(tracing::Level::INFO)
    }
}

impl FromStr for ResourceUsage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "false" => Ok(Self::Off),
            "operations" => Ok(Self::Operations),
            "error" => Ok(Self::Level(tracing::Level::ERROR)),
            "warn" => Ok(Self::Level(tracing::Level::WARN)),
            "info" => Ok(Self::Level(tracing::Level::INFO)),
            "debug" => Ok(Self::Level(tracing::Level::DEBUG)),
            "trace" => Ok(Self::Level(tracing::Level::TRACE)),
            _ => {
                Err("expected off, operations, or a level: error, warn, info, debug, trace".into())
            }
        }
    }
}

impl<'de> Deserialize<'de> for ResourceUsage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether and how often an observer samples (`GENSCOPE_HOST_METRICS`, `GENSCOPE_GPU_METRICS`,
/// TOML `observers.host` / `observers.gpu`): `off`, or an interval of at least 10 ms.
///
/// ```
/// use std::time::Duration;
/// use genscope::config::Sampling;
/// assert_eq!("off".parse::<Sampling>().unwrap(), Sampling::Off);
/// assert_eq!("250ms".parse::<Sampling>().unwrap(), Sampling::Every(Duration::from_millis(250)));
/// assert!("1ms".parse::<Sampling>().is_err());
/// assert!("often".parse::<Sampling>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Not sampled; the instruments are not registered.
    Off,
    /// Sampled at this interval.
    Every(Duration),
}

impl Sampling {
    /// The interval, or `None` when off.
    pub fn interval(self) -> Option<Duration> {
        match self {
            Sampling::Off => None,
            Sampling::Every(d) => Some(d),
        }
    }
}

impl FromStr for Sampling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "false" | "0" => Ok(Sampling::Off),
            v => match humantime::parse_duration(v) {
                Ok(d) if d >= Duration::from_millis(10) => Ok(Sampling::Every(d)),
                Ok(_) => Err("the interval must be at least 10ms".into()),
                Err(e) => Err(format!(
                    "expected off or an interval like 1s or 500ms ({e})"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Sampling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses a `/metrics` listen address: `host:port`, `:port` (loopback) or a bare port.
pub(crate) fn parse_listen_addr(
    setting: &str,
    value: &str,
) -> Result<std::net::SocketAddr, super::ConfigError> {
    let v = value.trim();
    let candidate = if let Some(port) = v.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else if v.chars().all(|c| c.is_ascii_digit()) {
        format!("127.0.0.1:{v}")
    } else {
        v.to_string()
    };
    candidate.parse().map_err(|_| {
        super::ConfigError::invalid(
            setting,
            value,
            "expected an IP address and port such as 127.0.0.1:9464 (or :9464 for loopback)",
        )
    })
}
