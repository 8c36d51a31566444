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
//!   `max_completion_tokens` below 1 400 with `param`;
//! - `GET /metrics`: Prometheus text or OpenMetrics (by `Accept`); with
//!   `GENSCOPE_MODEL_SERVER_METRICS=vllm` also the Gateway API Inference Extension's series.
//!
//! The decoder: a scheduler loop with continuous batching (`--max-batch`) over a KV-cache block
//! pool (`--kv-blocks`, 16 tokens a block; a request waits until its blocks are free); each step
//! is a timed wait standing for GPU time (1 ms plus 20 µs per prompt token prefilled in it, and
//! 4 ms per decode step). Tokenization is whitespace splitting, on the request path.
//! `--seconds N` stops after N seconds (0, the default, runs until SIGINT or SIGTERM); either way
//! the server drains, flushes telemetry and exits 0. Port 0 picks a free port; the first line
//! printed is `listening on ADDR`.

#[path = "common/serve.rs"]
mod serve;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use futures_util::StreamExt as _;
use genscope::instruments::catalog::genai::{GenAiAttributes, GenAiMetrics, Operation};
use genscope::instruments::catalog::serving::{EngineState, ServingMetrics};
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};
use genscope::instruments::{HttpMetricsLayer, propagator};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

#[derive(Parser, Debug)]
#[command(
    about = "OpenAI-compatible LLM server over a simulated decoder, instrumented with genscope"
)]
struct Args {
    /// Listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Stop after this many seconds (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// The served model id.
    #[arg(long, default_value = "genscope-sim")]
    model: String,
    /// Requests decoded together at most.
    #[arg(long, default_value_t = 8)]
    max_batch: usize,
    /// KV-cache blocks in the pool (16 tokens each).
    #[arg(long, default_value_t = 512)]
    kv_blocks: u64,
}

const BLOCK_TOKENS: u64 = 16;

/// What the engine sends a request's handler.
enum Out {
    Scheduled,
    Token(String),
    Done(&'static str),
}

struct Job {
    prompt_tokens: u64,
    max_tokens: u64,
    out: mpsc::UnboundedSender<Out>,
}

struct Running {
    job: Job,
    generated: u64,
    blocks: u64,
}

/// The simulated engine's queue and pool, shared with the scheduler loop.
struct Engine {
    waiting: Mutex<VecDeque<Job>>,
    serving: ServingMetrics,
    max_batch: usize,
    kv_blocks: u64,
}

impl Engine {
    fn blocks_for(tokens: u64) -> u64 {
        tokens.div_ceil(BLOCK_TOKENS).max(1)
    }

    /// The scheduler: admit waiting requests while batch slots and blocks allow, prefill them,
    /// then one decode step for the batch; repeat.
    async fn run(self: Arc<Self>) {
        let mut running: Vec<Running> = Vec::new();
        let mut used_blocks = 0u64;
        loop {
            let mut prefill_tokens = 0;
            {
                let mut waiting = self.waiting.lock().await;
                while running.len() < self.max_batch {
                    let Some(job) = waiting.front() else { break };
                    let blocks = Self::blocks_for(job.prompt_tokens + job.max_tokens);
                    if used_blocks + blocks > self.kv_blocks {
                        break;
                    }
                    let job = waiting.pop_front().expect("front exists");
                    let _ = job.out.send(Out::Scheduled);
                    prefill_tokens += job.prompt_tokens;
                    used_blocks += blocks;
                    running.push(Running {
                        job,
                        generated: 0,
                        blocks,
                    });
                }
                self.serving.record_state(EngineState {
                    kv_blocks_used: used_blocks,
                    kv_blocks_total: self.kv_blocks,
                    running: running.len() as u64,
                    waiting: waiting.len() as u64,
                });
            }
            if running.is_empty() {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            // GPU time: prefill of the newly admitted prompts, then one decode step.
            let step = Duration::from_millis(4) + Duration::from_micros(1000 + 20 * prefill_tokens);
            tokio::time::sleep(step).await;
            self.serving
                .record_step_tokens(prefill_tokens + running.len() as u64);
            running.retain_mut(|r| {
                r.generated += 1;
                let alive = r
                    .job
                    .out
                    .send(Out::Token(format!(" tok{}", r.generated)))
                    .is_ok();
                let finished = r.generated >= r.job.max_tokens;
                if finished {
                    let _ = r.job.out.send(Out::Done("length"));
                }
                if finished || !alive {
                    // A finished or cancelled request frees its blocks.
                    used_blocks -= r.blocks;
                    return false;
                }
                true
            });
        }
    }
}

struct App {
    model: String,
    engine: Arc<Engine>,
    genai: GenAiMetrics,
    serving: ServingMetrics,
    addr: SocketAddr,
    telemetry: Arc<genscope::Genscope>,
}

fn error(status: StatusCode, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    serve::openai_error(status, message, param, code)
}

fn tokenize(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

async fn chat(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON body: {e}"),
                None,
                None,
            );
        }
    };
    let Some(model) = req["model"].as_str().map(str::to_string) else {
        let message = "`model` is required: a string naming the model (see /v1/models)";
        return error(StatusCode::BAD_REQUEST, message, Some("model"), None);
    };
    let Some(messages) = req["messages"].as_array() else {
        let message = "`messages` is required: an array of {role, content} objects";
        return error(StatusCode::BAD_REQUEST, message, Some("messages"), None);
    };
    if model != app.model {
        let message = format!("The model `{model}` does not exist");
        return error(
            StatusCode::NOT_FOUND,
            &message,
            Some("model"),
            Some("model_not_found"),
        );
    }
    let (param, max_tokens) = match (req.get("max_completion_tokens"), req.get("max_tokens")) {
        (Some(v), _) => ("max_completion_tokens", v.as_i64()),
        (None, Some(v)) => ("max_tokens", v.as_i64()),
        (None, None) => ("max_tokens", Some(16)),
    };
    let max_tokens = match max_tokens {
        Some(n) if n >= 1 => n as u64,
        _ => {
            let message = format!("`{param}` must be an integer of at least 1");
            return error(StatusCode::BAD_REQUEST, &message, Some(param), None);
        }
    };
    let prompt: String = messages
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let prompt_tokens = tokenize(&prompt).len() as u64;
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);

    let span = tracing::info_span!(
        "chat",
        otel.name = %format!("chat {model}"),
        otel.kind = "server",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "self-hosted",
        gen_ai.request.model = %model,
        gen_ai.response.model = %model,
        gen_ai.request.max_tokens = max_tokens as i64,
        gen_ai.usage.input_tokens = prompt_tokens as i64,
    );
    let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
        .expect("static attributes")
        .request_model(model.clone())
        .response_model(model.clone())
        .server(app.addr.ip().to_string(), app.addr.port());
    app.genai.record_tokens(&attrs, Some(prompt_tokens), None);
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.engine.waiting.lock().await.push_back(Job {
        prompt_tokens,
        max_tokens,
        out: tx,
    });
    let mut timing = StreamTiming::start(app.genai.clone(), attrs)
        .serving(app.serving.clone())
        .span(span.clone());
    // Wait to be scheduled (the queue), then stream the tokens.
    match rx.recv().await {
        Some(Out::Scheduled) => timing.scheduled(),
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine stopped",
                None,
                None,
            );
        }
    }
    let tokens = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Out::Token(t)) => Some(((t, None), rx)),
            Some(Out::Done(reason)) => Some(((String::new(), Some(reason)), rx)),
            _ => None,
        }
    });
    let timed = timing.wrap(tokens, |(text, reason): &(String, Option<&'static str>)| {
        Chunk {
            tokens: u64::from(!text.is_empty()),
            finish_reason: *reason,
        }
    });
    let id = format!("chatcmpl-{}", std::process::id());
    if !stream {
        let parts: Vec<(String, Option<&'static str>)> = timed.collect().await;
        let text: String = parts.iter().map(|p| p.0.as_str()).collect();
        let completion = tokenize(&text).len() as u64;
        let reason = parts.iter().find_map(|p| p.1).unwrap_or("stop");
        let body = json!({"id": id, "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text.trim_start()},
                "finish_reason": reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion}});
        return (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let chunk = move |delta: Value, reason: Option<&str>, usage: Option<Value>| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]});
        if let Some(u) = usage {
            c["choices"] = json!([]);
            c["usage"] = u;
        }
        Event::default().data(c.to_string())
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None, None);
    let mut completion = 0u64;
    let events = timed.flat_map(move |(text, reason)| {
        let mut out = Vec::new();
        if !text.is_empty() {
            completion += 1;
            out.push(chunk(json!({"content": text}), None, None));
        }
        if let Some(r) = reason {
            out.push(chunk(json!({}), Some(r), None));
            if include_usage {
                let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                    "total_tokens": prompt_tokens + completion});
                out.push(chunk(json!({}), None, Some(usage)));
            }
            out.push(Event::default().data("[DONE]"));
        }
        futures_util::stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    Sse::new(futures_util::stream::once(async move { Ok(first) }).chain(events)).into_response()
}

async fn models(State(app): State<Arc<App>>) -> Response {
    let body = json!({"object": "list", "data": [{"id": app.model, "object": "model",
        "owned_by": "genscope"}]});
    serve::json_ok(body.to_string())
}

async fn health() -> Response {
    serve::json_ok(r#"{"status":"ok"}"#.to_string())
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    serve::metrics(&app.telemetry, &headers)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let telemetry = Arc::new(
        genscope::Genscope::builder()
            .default_service_name("llm_server")
            .install()?,
    );
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        let serving = telemetry.metrics().serving(&args.model)?;
        let engine = Arc::new(Engine {
            waiting: Mutex::new(VecDeque::new()),
            serving: serving.clone(),
            max_batch: args.max_batch.max(1),
            kv_blocks: args.kv_blocks.max(1),
        });
        tokio::spawn(Arc::clone(&engine).run());
        let app = Arc::new(App {
            model: args.model.clone(),
            engine,
            genai: telemetry.metrics().genai()?,
            serving,
            addr,
            telemetry: Arc::clone(&telemetry),
        });
        let layer = HttpMetricsLayer::new(telemetry.metrics().http_server()?)
            .with_trace_context(propagator(telemetry.settings().propagators));
        let router = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/metrics", get(metrics))
            .layer(layer)
            .with_state(app);
        axum::serve(listener, router)
            .with_graceful_shutdown(serve::stop_signal(args.seconds))
            .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(rt);
    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry export did not complete: {e}");
    }
    Ok(())
}
