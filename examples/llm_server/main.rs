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
//! `--seconds N` stops after N seconds (0, the default, runs until SIGINT or SIGTERM); either way
//! the server drains, flushes telemetry and exits 0. Port 0 picks a free port; the first line
//! printed is `listening on ADDR`.

#[path = "../common/serve.rs"]
mod serve;

mod engine;
mod tokenizer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use engine::{Engine, Out};
use futures_util::StreamExt as _;
use genscope::instruments::catalog::genai::{
    GenAiAttributes, GenAiMetrics, Operation, ServerTiming,
};
use genscope::instruments::catalog::serving::ServingMetrics;
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};
use genscope::instruments::{HttpMetricsLayer, propagator};
use serde_json::{Value, json};
use tokio::sync::mpsc;

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
    /// The context window in tokens (prompt + max tokens); at most the pool's size.
    #[arg(long, default_value_t = 4096)]
    context_len: u64,
    /// Request body size limit in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
}

struct App {
    model: String,
    engine: Arc<Engine>,
    genai: GenAiMetrics,
    serving: ServingMetrics,
    addr: SocketAddr,
    telemetry: Arc<genscope::Genscope>,
    /// Prompt + max tokens at most (`--context-len`, capped at the pool's size).
    context_len: u64,
    max_body: usize,
}

impl App {
    /// OpenAI's error body, counted in `gen_ai.server.request.duration` with `error.type` = its
    /// code (or `invalid_request_error` when it has none).
    fn error(
        &self,
        started: Instant,
        status: StatusCode,
        message: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Response {
        let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
            .expect("static attributes")
            .request_model(self.model.clone())
            .server(self.addr.ip().to_string(), self.addr.port());
        let timing = ServerTiming {
            duration: started.elapsed(),
            ..ServerTiming::default()
        };
        let kind = if status.is_client_error() {
            "invalid_request_error"
        } else {
            "server_error"
        };
        self.genai
            .record_server_request(&attrs, timing, Some(code.unwrap_or(kind)));
        serve::openai_error(status, message, param, code)
    }
}

async fn chat(State(app): State<Arc<App>>, body: Body) -> Response {
    let started = Instant::now();
    let error =
        |status, message: &str, param, code| app.error(started, status, message, param, code);
    let body = match axum::body::to_bytes(body, app.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let message = format!("the request body is over {} bytes", app.max_body);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &message,
                None,
                Some("request_too_large"),
            );
        }
    };
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
    let prompt_ids = tokenizer::encode(&prompt);
    let prompt_tokens = prompt_ids.len() as u64;
    if prompt_tokens + max_tokens > app.context_len {
        let message = format!(
            "This model's maximum context length is {} tokens. However, you requested {} tokens \
             ({prompt_tokens} in the messages, {max_tokens} in the completion).",
            app.context_len,
            prompt_tokens + max_tokens
        );
        return error(
            StatusCode::BAD_REQUEST,
            &message,
            Some("messages"),
            Some("context_length_exceeded"),
        );
    }
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
    app.engine
        .submit(engine::Job::new(prompt_ids, max_tokens, tx))
        .await;
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
            Some(Out::Token(n, id)) => Some(((tokenizer::decode(n, id), None), rx)),
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
        let completion = parts.iter().filter(|p| !p.0.is_empty()).count() as u64;
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

/// `GET /report?window=SECONDS`: see [`serve::report`].
async fn report(
    State(app): State<Arc<App>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    serve::report(&app.telemetry, query.as_deref())
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
        let engine = Engine::new(serving.clone(), args.max_batch, args.kv_blocks);
        let engine_capacity = engine.capacity_tokens();
        tokio::spawn(Arc::clone(&engine).run());
        let app = Arc::new(App {
            model: args.model.clone(),
            engine,
            genai: telemetry.metrics().genai()?,
            serving,
            addr,
            telemetry: Arc::clone(&telemetry),
            context_len: args.context_len.clamp(1, engine_capacity),
            max_body: args.max_body,
        });
        let layer = HttpMetricsLayer::new(telemetry.metrics().http_server()?)
            .with_trace_context(propagator(telemetry.settings().propagators));
        let router = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .route("/metrics", get(metrics))
            .route("/report", get(report))
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
