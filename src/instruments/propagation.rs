//! W3C trace context for HTTP: the propagator `OTEL_PROPAGATORS` names, extraction from incoming
//! requests (the tower layer uses it) and injection into outgoing `http::Request`s.

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::Propagators;

/// The composite propagator for `setting` (W3C trace context and/or baggage; none is a
/// propagator that carries nothing).
pub fn propagator(setting: Propagators) -> TextMapCompositePropagator {
    let mut parts: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    if setting.trace_context {
        parts.push(Box::new(TraceContextPropagator::new()));
    }
    if setting.baggage {
        parts.push(Box::new(BaggagePropagator::new()));
    }
    TextMapCompositePropagator::new(parts)
}

/// The context an incoming request carries (`traceparent`, `tracestate`, `baggage`).
pub fn extract_context<B>(
    propagator: &dyn TextMapPropagator,
    req: &http::Request<B>,
) -> opentelemetry::Context {
    propagator.extract(&HeaderExtractor(req.headers()))
}

/// Writes the current span's context into an outgoing request's headers (`traceparent`, and
/// `tracestate`/`baggage` when there are any), so the server it goes to continues the trace.
///
/// ```
/// use genscope::instruments::{inject_trace_context, propagator};
/// use tracing_subscriber::layer::SubscriberExt;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let subscriber = tracing_subscriber::registry().with(telemetry.layer());
/// let mut req = http::Request::get("http://127.0.0.1:8000/v1/models").body(()).unwrap();
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("client call").entered();
///     inject_trace_context(&propagator(Default::default()), &mut req);
/// });
/// let tp = req.headers()["traceparent"].to_str().unwrap();
/// assert!(tp.starts_with("00-") && tp.len() == 55, "{tp}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inject_trace_context<B>(propagator: &dyn TextMapPropagator, req: &mut http::Request<B>) {
    let cx = tracing::Span::current().context();
    propagator.inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
}
