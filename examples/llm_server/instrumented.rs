//! The server's telemetry through genscope's public API: the tower layer (HTTP metrics and a
//! SERVER span per request continuing the caller's `traceparent`), a GenAI `chat {model}` span
//! per request, token counts, token-stream timing with the serving-state catalog, and genscope's
//! `/metrics` and `/report`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use genscope::Genscope;
use genscope::instruments::catalog::genai::{
    GenAiAttributes, GenAiMetrics, Operation, ServerTiming,
};
use genscope::instruments::catalog::serving::{self, ServingMetrics};
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};
use genscope::instruments::{HttpMetricsLayer, propagator};

use crate::routes;
use crate::telemetry::{EngineState, EngineTelemetry, Piece, RequestTelemetry, Telemetry};

pub struct Instrumented {
    telemetry: Arc<Genscope>,
    genai: GenAiMetrics,
    serving: ServingMetrics,
}

impl Instrumented {
    pub fn new(telemetry: Genscope, model: &str) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(Instrumented {
            genai: telemetry.metrics().genai()?,
            serving: telemetry.metrics().serving(model)?,
            telemetry: Arc::new(telemetry),
        })
    }

    fn attributes(&self, server: SocketAddr, model: &str) -> GenAiAttributes {
        GenAiAttributes::new(Operation::Chat, "self-hosted")
            .expect("static attributes")
            .request_model(model.to_string())
            .server(server.ip().to_string(), server.port())
    }
}

impl EngineTelemetry for ServingMetrics {
    fn state(&self, s: EngineState) {
        self.record_state(serving::EngineState {
            kv_blocks_used: s.kv_blocks_used,
            kv_blocks_total: s.kv_blocks_total,
            running: s.running,
            waiting: s.waiting,
        });
    }
    fn preemptions(&self, n: u64) {
        self.add_preemptions(n);
    }
    fn prefix_cache(&self, queried: u64, hit: u64) {
        self.record_prefix_cache(queried, hit);
    }
    fn step_tokens(&self, tokens: u64) {
        self.record_step_tokens(tokens);
    }
}

pub struct Request(StreamTiming);

impl RequestTelemetry for Request {
    fn scheduled(&mut self) {
        self.0.scheduled();
    }
    fn timed(self, tokens: BoxStream<'static, Piece>) -> BoxStream<'static, Piece> {
        self.0
            .wrap(tokens, |(text, reason): &Piece| Chunk {
                tokens: u64::from(!text.is_empty()),
                finish_reason: *reason,
            })
            .boxed()
    }
}

impl Telemetry for Instrumented {
    type Engine = ServingMetrics;
    type Request = Request;

    fn engine(&self) -> ServingMetrics {
        self.serving.clone()
    }

    fn request(
        &self,
        server: SocketAddr,
        model: &str,
        max_tokens: u64,
        prompt_tokens: u64,
    ) -> Request {
        let span = tracing::info_span!(
            "chat",
            otel.name = %format!("chat {model}"),
            otel.kind = "server",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "self-hosted",
            gen_ai.request.model = model,
            gen_ai.response.model = model,
            gen_ai.request.max_tokens = max_tokens as i64,
            gen_ai.usage.input_tokens = prompt_tokens as i64,
        );
        let attrs = self
            .attributes(server, model)
            .response_model(model.to_string());
        let mut timing = StreamTiming::start(self.genai.clone(), attrs)
            .serving(self.serving.clone())
            .span(span);
        timing.input_tokens(prompt_tokens);
        Request(timing)
    }

    fn rejected(
        &self,
        server: SocketAddr,
        model: &str,
        started: Instant,
        _status: StatusCode,
        code: &str,
    ) {
        let timing = ServerTiming {
            duration: started.elapsed(),
            ..ServerTiming::default()
        };
        self.genai
            .record_server_request(&self.attributes(server, model), timing, Some(code));
    }

    fn routes(self: &Arc<Self>, router: Router) -> Router {
        let layer = match self.telemetry.metrics().http_server() {
            Ok(m) => Some(
                HttpMetricsLayer::new(m)
                    .with_trace_context(propagator(self.telemetry.settings().propagators)),
            ),
            Err(e) => {
                eprintln!("warning: no HTTP server metrics: {e}");
                None
            }
        };
        let own = Router::new()
            .route("/metrics", get(metrics))
            .route("/report", get(report))
            .with_state(Arc::clone(&self.telemetry));
        let router = router.merge(own);
        match layer {
            Some(l) => router.layer(l),
            None => router,
        }
    }

    fn shutdown(&self) {
        if let Err(e) = self.telemetry.shutdown() {
            eprintln!("warning: telemetry export did not complete: {e}");
        }
    }
}

/// `GET /report?window=SECONDS`: see [`routes::report`].
async fn report(
    State(telemetry): State<Arc<Genscope>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    routes::report(&telemetry, query.as_deref())
}

async fn metrics(State(telemetry): State<Arc<Genscope>>, headers: HeaderMap) -> Response {
    routes::metrics(&telemetry, &headers)
}
