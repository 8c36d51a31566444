//! HTTP server semantic conventions (stable): `http.server.request.duration` and
//! `http.server.active_requests`. The `tower` feature adds [`crate::instruments::HttpMetricsLayer`],
//! which records them for axum, hyper or tonic services.

use std::time::Duration;

use opentelemetry::KeyValue;

use super::generation::LevelGuard;
use crate::instruments::{
    DefinitionError, InstrumentKind, Metric, MetricDefinition, MetricsCollector,
};

/// `http.server.request.duration` buckets.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The HTTP catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    vec![
        MetricDefinition::new("http.server.request.duration", InstrumentKind::Histogram)
            .with_unit("s")
            .with_description("Duration of HTTP server requests")
            .with_buckets(DURATION_BUCKETS.iter().copied())
            .with_attributes([
                "http.request.method",
                "http.route",
                "http.response.status_code",
                "url.scheme",
                "error.type",
                "network.protocol.version",
            ]),
        MetricDefinition::up_down_counter("http.server.active_requests")
            .with_unit("{request}")
            .with_description("Number of active HTTP server requests")
            .with_attributes(["http.request.method", "url.scheme"]),
    ]
}

/// `http.request.method` as the conventions want it: the known methods, else `_OTHER` (a raw
/// method is client-controlled and would be unbounded).
pub fn method_attribute(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

/// One finished request, as the seeds' `record_request(endpoint, response_time, status_code)`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest<'a> {
    /// Method (normalized with [`method_attribute`]).
    pub method: &'a str,
    /// The route *template* (`/v1/models/{id}`), never the raw path; `None` when unmatched.
    pub route: Option<&'a str>,
    /// Response status, when a response was produced.
    pub status: Option<u16>,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Time to the response.
    pub duration: Duration,
    /// For failures without a 5xx status: the error's type (`timeout`, `panic`, ...).
    pub error_type: Option<&'a str>,
    /// `network.protocol.version` (`1.1`, `2`), when known.
    pub protocol_version: Option<&'a str>,
}

/// Typed recorder for the HTTP server catalog.
///
/// ```
/// use std::time::Duration;
/// use genscope::instruments::catalog::http::HttpRequest;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let http = telemetry.metrics().http_server()?;
/// http.record_request(&HttpRequest { method: "POST", route: Some("/v1/generate"), status: Some(200),
///     scheme: "http", duration: Duration::from_millis(80), error_type: None,
///     protocol_version: Some("1.1") });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HttpServerMetrics {
    duration: Metric,
    active: Metric,
    /// `OTEL_SDK_DISABLED`: nothing is recorded and the tower layer passes requests through.
    disabled: bool,
}

impl HttpServerMetrics {
    pub(crate) fn new(c: &MetricsCollector) -> Result<Self, DefinitionError> {
        let d = definitions();
        Ok(HttpServerMetrics {
            duration: c.create_metric(d[0].clone())?,
            active: c.create_metric(d[1].clone())?,
            disabled: c.is_disabled(),
        })
    }

    /// Whether the SDK is disabled (`OTEL_SDK_DISABLED`): then nothing is recorded.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Records a finished request. `error.type` is the status code for 5xx responses, else the
    /// given error type.
    pub fn record_request(&self, r: &HttpRequest<'_>) {
        if self.disabled {
            return;
        }
        let mut kv = vec![
            KeyValue::new("http.request.method", method_attribute(r.method)),
            KeyValue::new("url.scheme", r.scheme.to_string()),
        ];
        if let Some(route) = r.route {
            kv.push(KeyValue::new("http.route", route.to_string()));
        }
        if let Some(status) = r.status {
            kv.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(v) = r.protocol_version {
            kv.push(KeyValue::new("network.protocol.version", v.to_string()));
        }
        let error_type = match (r.status, r.error_type) {
            (_, Some(e)) => Some(e.to_string()),
            (Some(s), None) if s >= 500 => Some(s.to_string()),
            _ => None,
        };
        if let Some(e) = error_type {
            kv.push(KeyValue::new("error.type", e));
        }
        let _ = self.duration.record(r.duration.as_secs_f64(), &kv);
    }

    /// An in-flight request; the guard ends it when dropped (also on panic or cancellation).
    pub fn in_flight(&self, method: &str, scheme: &str) -> LevelGuard {
        LevelGuard::new(
            self.active.clone(),
            &[
                KeyValue::new("http.request.method", method_attribute(method)),
                KeyValue::new("url.scheme", scheme.to_string()),
            ],
        )
    }
}

impl MetricsCollector {
    /// The HTTP server catalog's typed recorder.
    pub fn http_server(&self) -> Result<HttpServerMetrics, DefinitionError> {
        HttpServerMetrics::new(self)
    }
}
