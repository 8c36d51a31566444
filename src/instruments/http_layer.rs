//! [`HttpMetricsLayer`]: a `tower::Layer` recording the HTTP server semantic conventions
//! (feature `tower`). Works wherever tower services do: axum, hyper, tonic.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::catalog::http::{HttpRequest, HttpServerMetrics};
use super::propagation::extract_context;

/// A shared propagator, as the layer holds it.
type SharedPropagator = Arc<dyn opentelemetry::propagation::TextMapPropagator + Send + Sync>;

type RouteOf<B> = Arc<dyn Fn(&http::Request<B>) -> Option<String> + Send + Sync>;

/// Records `http.server.request.duration` (method, route template, status, scheme, `error.type`)
/// and `http.server.active_requests` for every request through the wrapped service. Requests
/// whose service errors are recorded with the error's type; requests whose handler panics with
/// `error.type=panic` (the panic then continues, for an outer `CatchPanic` layer or the server).
///
/// The route comes from axum's `MatchedPath` by default (add the layer with `Router::layer` or
/// `route_layer` so routing has happened); [`HttpMetricsLayer::with_route`] supplies another
/// source. The raw path is never recorded: without a template, `http.route` is absent.
///
/// ```
/// use axum::{Router, routing::get};
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let layer = genscope::instruments::HttpMetricsLayer::new(telemetry.metrics().http_server()?);
/// let app: Router = Router::new().route("/v1/models/{id}", get(|| async { "ok" })).layer(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpMetricsLayer<B = axum::body::Body> {
    metrics: HttpServerMetrics,
    route: RouteOf<B>,
    trace_context: Option<SharedPropagator>,
}

impl<B> Clone for HttpMetricsLayer<B> {
    fn clone(&self) -> Self {
        HttpMetricsLayer {
            metrics: self.metrics.clone(),
            route: Arc::clone(&self.route),
            trace_context: self.trace_context.clone(),
        }
    }
}

impl<B> std::fmt::Debug for HttpMetricsLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsLayer").finish_non_exhaustive()
    }
}

impl<B> HttpMetricsLayer<B> {
    /// A layer taking the route from axum's `MatchedPath`.
    pub fn new(metrics: HttpServerMetrics) -> Self {
        HttpMetricsLayer {
            metrics,
            route: Arc::new(|req: &http::Request<B>| {
                req.extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_string())
            }),
            trace_context: None,
        }
    }

    /// Also opens a SERVER span per request (`{method} {http.route}`, the HTTP semantic
    /// conventions' attributes: `http.request.method`, `url.scheme`, `url.path`, `http.route`,
    /// `http.response.status_code`, `error.type` and `otel.status_code=ERROR` on 5xx), child of
    /// the context the request carries (`traceparent`, `tracestate`, `baggage`, read with
    /// `propagator`: usually [`propagator`](super::propagator)`(telemetry.settings().propagators)`),
    /// and runs the handler inside it, so its `#[instrument]` spans are the server span's
    /// children.
    pub fn with_trace_context(
        mut self,
        propagator: impl opentelemetry::propagation::TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.trace_context = Some(Arc::new(propagator));
        self
    }

    /// Takes the route template from `route` instead (return `None` when unknown).
    pub fn with_route(
        mut self,
        route: impl Fn(&http::Request<B>) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.route = Arc::new(route);
        self
    }
}

impl<S, B> tower_layer::Layer<S> for HttpMetricsLayer<B> {
    type Service = HttpMetricsService<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`HttpMetricsLayer`] wraps around yours.
pub struct HttpMetricsService<S, B = axum::body::Body> {
    inner: S,
    layer: HttpMetricsLayer<B>,
}

impl<S: Clone, B> Clone for HttpMetricsService<S, B> {
    fn clone(&self) -> Self {
        HttpMetricsService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, B> std::fmt::Debug for HttpMetricsService<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsService").finish_non_exhaustive()
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

impl<S, B, ResB> tower_service::Service<http::Request<B>> for HttpMetricsService<S, B>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // OTEL_SDK_DISABLED: no span, no metrics, no per-request allocation of the layer's own.
        if self.layer.metrics.is_disabled() {
            return Box::pin(self.inner.call(req));
        }
        let method = req.method().as_str().to_string();
        let scheme = req.uri().scheme_str().unwrap_or("http").to_string();
        let route = (self.layer.route)(&req);
        let protocol_version = match req.version() {
            http::Version::HTTP_09 => Some("0.9"),
            http::Version::HTTP_10 => Some("1.0"),
            http::Version::HTTP_11 => Some("1.1"),
            http::Version::HTTP_2 => Some("2"),
            http::Version::HTTP_3 => Some("3"),
            _ => None,
        };
        let metrics = self.layer.metrics.clone();
        let in_flight = metrics.in_flight(&method, &scheme);
        let start = Instant::now();
        let span = match &self.layer.trace_context {
            Some(propagator) => {
                let name = match &route {
                    Some(r) => format!("{method} {r}"),
                    None => method.clone(),
                };
                let span = tracing::info_span!(
                    target: "genscope::http",
                    "HTTP request",
                    otel.name = %name,
                    otel.kind = "server",
                    http.request.method = %method,
                    url.scheme = %scheme,
                    network.protocol.version = protocol_version,
                    url.path = %req.uri().path(),
                    http.route = route.as_deref(),
                    http.response.status_code = tracing::field::Empty,
                    error.type = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                );
                let parent = extract_context(propagator.as_ref(), &req);
                let _ = span.set_parent(parent);
                span
            }
            None => tracing::Span::none(),
        };
        let future = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let outcome = AssertUnwindSafe(future).catch_unwind().await;
            drop(in_flight);
            let mut record = HttpRequest {
                method: &method,
                route: route.as_deref(),
                status: None,
                scheme: &scheme,
                duration: start.elapsed(),
                error_type: None,
                protocol_version,
            };
            match outcome {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    record.status = Some(status);
                    metrics.record_request(&record);
                    span.record("http.response.status_code", i64::from(status));
                    if status >= 500 {
                        span.record("error.type", status.to_string());
                        span.record("otel.status_code", "ERROR");
                    }
                    Ok(response)
                }
                Ok(Err(error)) => {
                    record.error_type = Some(short_type_name::<S::Error>());
                    metrics.record_request(&record);
                    span.record("error.type", short_type_name::<S::Error>());
                    span.record("otel.status_code", "ERROR");
                    Err(error)
                }
                Err(panic) => {
                    record.error_type = Some("panic");
                    metrics.record_request(&record);
                    span.record("error.type", "panic");
                    span.record("otel.status_code", "ERROR");
                    std::panic::resume_unwind(panic)
                }
            }
        })
    }
}
