//! What the server tells its telemetry, as a seam with three implementations: genscope
//! (`instrumented.rs`, the `llm_server` example), nothing at all (`llm_server_bare`, genscope
//! compiled out) and the stack servers hand-roll today (`llm_server_usual`: tower-http's
//! `TraceLayer`, tracing-opentelemetry, the SDK's `BatchSpanProcessor`, metrics-exporter-prometheus).
//! `benches/server_overhead.rs` runs the three side by side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::http::StatusCode;
use futures_util::stream::BoxStream;

/// One token-stream item: the token's text (empty for the end) and the finish reason at the end.
pub type Piece = (String, Option<&'static str>);

/// The engine's state after a scheduling pass.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // `llm_server_bare` reads none of it.
pub struct EngineState {
    pub kv_blocks_used: u64,
    pub kv_blocks_total: u64,
    pub running: u64,
    pub waiting: u64,
}

/// What the engine's scheduler loop reports.
pub trait EngineTelemetry: Send + Sync + 'static {
    fn state(&self, s: EngineState);
    fn preemptions(&self, n: u64);
    fn prefix_cache(&self, queried: u64, hit: u64);
    fn step_tokens(&self, tokens: u64);
}

/// One accepted chat request.
pub trait RequestTelemetry: Send + 'static {
    /// The engine scheduled it (the queue wait ends).
    fn scheduled(&mut self);
    /// The request's token stream, timed (first token, gaps, the end or a cancellation).
    fn timed(self, tokens: BoxStream<'static, Piece>) -> BoxStream<'static, Piece>;
}

/// The server's telemetry.
pub trait Telemetry: Send + Sync + 'static {
    type Engine: EngineTelemetry;
    type Request: RequestTelemetry;

    /// The engine's reporter (once, at startup).
    fn engine(&self) -> Self::Engine;
    /// A chat request to the server at `server` passed validation: its span and token counts
    /// begin.
    fn request(
        &self,
        server: SocketAddr,
        model: &str,
        max_tokens: u64,
        prompt_tokens: u64,
    ) -> Self::Request;
    /// A request for `model` was refused with `status` and `code` (OpenAI's error code or
    /// type), after `started`.
    fn rejected(
        &self,
        server: SocketAddr,
        model: &str,
        started: Instant,
        status: StatusCode,
        code: &str,
    );
    /// The telemetry's own routes (`/metrics`, `/report`) and HTTP layers on the app's router.
    fn routes(self: &Arc<Self>, router: Router) -> Router;
    /// Flushes and stops, after the server drained.
    fn shutdown(&self);
}
