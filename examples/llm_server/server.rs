//! The server itself, generic over its [`Telemetry`]: the OpenAI-compatible routes, request
//! validation with OpenAI's errors, the engine and the SSE/JSON encoding. The same code runs in
//! every variant of `benches/server_overhead.rs`; only the telemetry differs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::engine::{self, Engine, Out};
use crate::serve;
use crate::telemetry::{RequestTelemetry as _, Telemetry};
use crate::tokenizer;

#[derive(Parser, Debug)]
#[command(about = "OpenAI-compatible LLM server over a simulated decoder")]
pub struct Args {
    /// Listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: SocketAddr,
    /// Stop after this many seconds (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
    /// The served model id.
    #[arg(long, default_value = "genscope-sim")]
    pub model: String,
    /// Requests decoded together at most.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// KV-cache blocks in the pool (16 tokens each).
    #[arg(long, default_value_t = 512)]
    pub kv_blocks: u64,
    /// The context window in tokens (prompt + max tokens); at most the pool's size.
    #[arg(long, default_value_t = 4096)]
    pub context_len: u64,
    /// Request body size limit in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
}

struct App<T: Telemetry> {
    model: String,
    engine: Arc<Engine<T::Engine>>,
    addr: SocketAddr,
    telemetry: Arc<T>,
    /// Prompt + max tokens at most (`--context-len`, capped at the pool's size).
    context_len: u64,
    max_body: usize,
}

impl<T: Telemetry> App<T> {
    /// OpenAI's error body, counted by the telemetry with `error.type` = its code (or
    /// `invalid_request_error` / `server_error` when it has none).
    fn error(
        &self,
        started: Instant,
        status: StatusCode,
        message: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Response {
        let kind = code.unwrap_or(serve::openai_error_type(status));
        self.telemetry
            .rejected(self.addr, &self.model, started, status, kind);
        serve::openai_error(status, message, param, code)
    }
}

async fn chat<T: Telemetry>(State(app): State<Arc<App<T>>>, body: Body) -> Response {
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

    let mut request = app
        .telemetry
        .request(app.addr, &model, max_tokens, prompt_tokens);
    let (tx, mut rx) = mpsc::unbounded_channel();
    app.engine
        .submit(engine::Job::new(prompt_ids, max_tokens, tx))
        .await;
    // Wait to be scheduled (the queue), then stream the tokens.
    match rx.recv().await {
        Some(Out::Scheduled) => request.scheduled(),
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
    let timed = request.timed(tokens.boxed());
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

async fn models<T: Telemetry>(State(app): State<Arc<App<T>>>) -> Response {
    let body = json!({"object": "list", "data": [{"id": app.model, "object": "model",
        "owned_by": "genscope"}]});
    serve::json_ok(body.to_string())
}

async fn health() -> Response {
    serve::json_ok(r#"{"status":"ok"}"#.to_string())
}

/// Serves until `--seconds` pass or SIGINT/SIGTERM, drains, then shuts the telemetry down.
pub fn run<T: Telemetry>(
    args: Args,
    telemetry: Arc<T>,
    rt: tokio::runtime::Runtime,
) -> Result<(), Box<dyn std::error::Error>> {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        let engine = Engine::new(telemetry.engine(), args.max_batch, args.kv_blocks);
        let engine_capacity = engine.capacity_tokens();
        tokio::spawn(Arc::clone(&engine).run());
        let app = Arc::new(App {
            model: args.model.clone(),
            engine,
            addr,
            telemetry: Arc::clone(&telemetry),
            context_len: args.context_len.clamp(1, engine_capacity),
            max_body: args.max_body,
        });
        let router = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models::<T>))
            .route("/v1/chat/completions", post(chat::<T>))
            .with_state(app);
        let router = telemetry.routes(router);
        axum::serve(listener, router)
            .with_graceful_shutdown(serve::stop_signal(args.seconds))
            .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    // Before the runtime goes: a telemetry whose exporter lives on it (tonic) can still send.
    telemetry.shutdown();
    drop(rt);
    Ok(())
}
