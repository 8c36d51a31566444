//! `examples/llm_server` with the telemetry stack Rust servers hand-roll today, recording the same
//! things by hand: tower-http's `TraceLayer` (a span per request continuing the caller's
//! `traceparent`, and the HTTP duration histogram), tracing-opentelemetry with the SDK's
//! `BatchSpanProcessor` and opentelemetry-otlp over gRPC (the endpoint from
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), and metrics-exporter-prometheus (`metrics` macros at every
//! recording site, as TGI writes them) on `/metrics`: request and queue durations, time to first
//! token, inter-token latency, token counts, the engine's KV-cache, running and waiting gauges,
//! preemptions, prefix-cache queries and hits, and step tokens. The "usual stack" row of
//! `benches/server_overhead.rs`.
//!
//! Run: `cargo run --release --example llm_server_usual -- --addr 127.0.0.1:8000`

#[path = "../llm_server/engine.rs"]
mod engine;
#[path = "../common/serve.rs"]
mod serve;
#[path = "../llm_server/server.rs"]
mod server;
#[path = "../llm_server/telemetry.rs"]
mod telemetry;
#[path = "../llm_server/tokenizer.rs"]
mod tokenizer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use clap::Parser;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use telemetry::{EngineState, EngineTelemetry, Piece, RequestTelemetry, Telemetry};
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

struct Usual {
    prometheus: PrometheusHandle,
    provider: SdkTracerProvider,
}

#[derive(Clone)]
struct Engine;

impl EngineTelemetry for Engine {
    fn state(&self, s: EngineState) {
        gauge!("llm_kv_cache_usage_ratio")
            .set(s.kv_blocks_used as f64 / s.kv_blocks_total.max(1) as f64);
        gauge!("llm_requests_running").set(s.running as f64);
        gauge!("llm_requests_waiting").set(s.waiting as f64);
    }
    fn preemptions(&self, n: u64) {
        counter!("llm_preemptions_total").increment(n);
    }
    fn prefix_cache(&self, queried: u64, hit: u64) {
        counter!("llm_prefix_cache_queries_total").increment(queried);
        counter!("llm_prefix_cache_hits_total").increment(hit);
    }
    fn step_tokens(&self, tokens: u64) {
        counter!("llm_step_tokens_total").increment(tokens);
    }
}

struct Chat {
    span: tracing::Span,
    model: String,
    started: Instant,
    scheduled: Option<Instant>,
}

impl RequestTelemetry for Chat {
    fn scheduled(&mut self) {
        let now = Instant::now();
        histogram!("llm_request_queue_duration_seconds", "model" => self.model.clone())
            .record(now - self.started);
        self.scheduled = Some(now);
    }

    fn timed(self, tokens: BoxStream<'static, Piece>) -> BoxStream<'static, Piece> {
        let Chat {
            span,
            model,
            started,
            ..
        } = self;
        let mut last: Option<Instant> = None;
        let mut output = 0u64;
        tokens
            .map(move |piece: Piece| {
                let now = Instant::now();
                if !piece.0.is_empty() {
                    output += 1;
                    match last {
                        None => histogram!("llm_time_to_first_token_seconds", "model" => model.clone())
                            .record(now - started),
                        Some(t) => histogram!("llm_inter_token_latency_seconds", "model" => model.clone())
                            .record(now - t),
                    }
                    last = Some(now);
                }
                if let Some(reason) = piece.1 {
                    histogram!("llm_request_duration_seconds", "model" => model.clone(), "finish_reason" => reason)
                        .record(now - started);
                    counter!("llm_generation_tokens_total", "model" => model.clone()).increment(output);
                    span.record("gen_ai.usage.output_tokens", output as i64);
                }
                piece
            })
            .boxed()
    }
}

impl Telemetry for Usual {
    type Engine = Engine;
    type Request = Chat;

    fn engine(&self) -> Engine {
        Engine
    }

    fn request(&self, _server: SocketAddr, model: &str, max_tokens: u64, prompt: u64) -> Chat {
        let span = tracing::info_span!(
            "chat",
            otel.name = %format!("chat {model}"),
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "self-hosted",
            gen_ai.request.model = model,
            gen_ai.response.model = model,
            gen_ai.request.max_tokens = max_tokens as i64,
            gen_ai.usage.input_tokens = prompt as i64,
            gen_ai.usage.output_tokens = tracing::field::Empty,
        );
        counter!("llm_prompt_tokens_total", "model" => model.to_string()).increment(prompt);
        Chat {
            span,
            model: model.to_string(),
            started: Instant::now(),
            scheduled: None,
        }
    }

    fn rejected(&self, _: SocketAddr, model: &str, started: Instant, _: StatusCode, code: &str) {
        histogram!("llm_request_duration_seconds", "model" => model.to_string(), "error_type" => code.to_string())
            .record(started.elapsed());
    }

    fn routes(self: &Arc<Self>, router: Router) -> Router {
        let prometheus = self.prometheus.clone();
        let router = router.route(
            "/metrics",
            get(move || {
                let p = prometheus.clone();
                async move { p.render() }
            }),
        );
        let trace = TraceLayer::new_for_http()
            .make_span_with(|req: &Request<axum::body::Body>| {
                let span = tracing::info_span!(
                    "request",
                    otel.name = %format!("{} {}", req.method(), req.uri().path()),
                    otel.kind = "server",
                    http.request.method = %req.method(),
                    url.path = %req.uri().path(),
                    http.response.status_code = tracing::field::Empty,
                );
                let parent = TraceContextPropagator::new()
                    .extract(&opentelemetry_http::HeaderExtractor(req.headers()));
                let _ = span.set_parent(parent);
                span
            })
            .on_response(
                |res: &Response<axum::body::Body>, latency: Duration, span: &tracing::Span| {
                    span.record(
                        "http.response.status_code",
                        i64::from(res.status().as_u16()),
                    );
                    histogram!("http_server_request_duration_seconds",
                        "http_response_status_code" => res.status().as_str().to_string())
                    .record(latency);
                },
            );
        router.layer(trace)
    }

    fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: span export did not complete: {e}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = server::Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    // tonic's channel lives on the application's runtime; the BatchSpanProcessor's thread drives
    // each export's future with it.
    let exporter = {
        let _guard = rt.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("llm_server_usual")
                .build(),
        )
        .build();
    // Per-layer filters, as tracing-subscriber's docs show: `RUST_LOG` picks what the console
    // prints, and the trace pipeline takes INFO spans whatever it says (one global EnvFilter at
    // `RUST_LOG=warn` would silently drop every request span: no trace work to measure).
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("llm_server_usual"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .init();
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)?
        .build_recorder();
    let prometheus = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    let upkeep = prometheus.clone();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        }
    });
    let telemetry = Arc::new(Usual {
        prometheus,
        provider,
    });
    server::run(args, telemetry, rt)
}
