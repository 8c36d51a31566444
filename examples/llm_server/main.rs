//! An OpenAI-compatible LLM server over a simulated decoder, instrumented only through genscope's
//! public API: the tower layer (HTTP metrics, a SERVER span per request continuing the caller's
//! `traceparent`), GenAI `chat {model}` spans, token-stream timing and the serving-state catalog,
//! with `/metrics` on the same port.
//!
//! Run: `cargo run --example llm_server -- --addr 127.0.0.1:8000`
//!
//! - `GET /health`: `{"status":"ok"}` once it can serve;
//! - `GET /v1/models`: the served model (`--model`, default `genscope-sim`);
//! - `POST /v1/chat/completions`: `stream: true` gives SSE `chat.completion.chunk` events ending
//!   with `data: [DONE]` (a usage chunk first when `stream_options.include_usage` is set);
//!   `stream: false` one `chat.completion` with `usage`. Errors use OpenAI's body
//!   (`{"error":{"message","type","param","code"}}`): bad JSON 400, a missing `model` or
//!   `messages` 400 with `param`, an unknown model 404 `model_not_found`, `max_tokens` /
//!   `max_completion_tokens` below 1 400 with `param`, a prompt plus `max_tokens` over the
//!   context window (`--context-len`) 400 `context_length_exceeded`, a body over `--max-body`
//!   413. Each is counted in `gen_ai.server.request.duration` with `error.type` = its code (or
//!   `invalid_request_error`) and logged at WARN with its reason;
//! - `GET /metrics`: Prometheus text or OpenMetrics (by `Accept`); with
//!   `GENSCOPE_MODEL_SERVER_METRICS=vllm` also the Gateway API Inference Extension's series;
//! - `GET /report?window=SECONDS`: the analyzer's report over the last window (default 300 s),
//!   as `genscope.report/1` JSON.
//!
//! The engine (`engine.rs`): a scheduler step loop with continuous batching (`--max-batch`), a
//! KV-cache block pool (`--kv-blocks`, 16 tokens a block) with recompute preemption when it runs
//! out, and a prefix cache; steps are timed waits standing for GPU time. The host-side work is
//! real CPU work on the request path (`tokenizer.rs`: a stated cost per token for tokenization
//! and detokenization), with JSON and SSE encoding. A client that disconnects mid-stream is
//! recorded as cancelled and its KV blocks are freed at the next step.
//! The server (`server.rs`) is generic over its telemetry (`telemetry.rs`); this example runs it
//! with genscope (`instrumented.rs`). `llm_server_bare` runs the same server with genscope
//! compiled out and `llm_server_usual` with the stack servers hand-roll today; see
//! `benches/server_overhead.rs`.
//!
//! `--seconds N` stops after N seconds (0, the default, runs until SIGINT or SIGTERM); either way
//! the server drains, flushes telemetry and exits 0. Port 0 picks a free port; the first line
//! printed is `listening on ADDR`.

#[path = "../common/routes.rs"]
mod routes;
#[path = "../common/serve.rs"]
mod serve;

mod engine;
mod instrumented;
mod server;
mod telemetry;
mod tokenizer;

use std::sync::Arc;

use clap::Parser;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = server::Args::parse();
    let genscope = genscope::Genscope::builder()
        .default_service_name("llm_server")
        .install()?;
    let telemetry = Arc::new(instrumented::Instrumented::new(genscope, &args.model)?);
    let rt = tokio::runtime::Runtime::new()?;
    server::run(args, telemetry, rt)
}
