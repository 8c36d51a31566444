//! A small simulated generation server instrumented with genscope.
//!
//! Requests arrive in bursts into a bounded queue; a few workers run an `#[instrument]`-ed
//! `generate` (model, steps, token counts) that sometimes fails. Every span and metric goes through
//! genscope: to the analyzer store always, and to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! Before serving it downloads and loads its models, a health checker probes them every second,
//! and an out-of-memory failure falls back to a smaller model: genscope operations, whose spans
//! (like `generate`'s) carry `genscope.usage.*` resource attributes.
//! At the end it prints what the analyzer store saw.
//!
//! ```text
//! cargo run --release --example generation_service -- --seconds 20
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --release --example generation_service
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use genscope::Genscope;
use genscope::analyzer::Window;
use genscope::analyzer::report::ReportConfig;
use genscope::instruments::catalog::genai::{
    GenAiAttributes, GenAiMetrics, Operation, ServerTiming,
};
use genscope::instruments::catalog::generation::{GenerationMetrics, LevelGuard};
use genscope::instruments::catalog::model::HealthStatus;
use genscope::operations::Operations;
use opentelemetry::KeyValue;
use tokio::sync::mpsc;
use tracing::Instrument;

mod summary;
use summary::{analyzer_json, print_summary, warn_export_failure};

/// Simulated generation server instrumented with genscope.
#[derive(Parser, Debug)]
struct Args {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Generation workers.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Mean arrival rate, requests per second.
    #[arg(long, default_value_t = 14.0)]
    rate: f64,
    /// Where to write the HTML report.
    #[arg(long, default_value = "genscope-report.html")]
    report: std::path::PathBuf,
    /// Also write, as JSON, the report and the analyzer's own counts (request totals, histogram
    /// buckets): what the real-backend tests compare PromQL and Jaeger's answers with.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Report a simulated GPU (genscope's `FakeGpu`) instead of probing NVML: shows the GPU
    /// metrics, panels and findings on a machine without one.
    #[arg(long)]
    fake_gpu: bool,
    /// Share of health checks that fail (a sick replica in a fleet demo: 0.5 trips
    /// `failing-health-checks`).
    #[arg(long, default_value_t = 0.05, value_parser = share)]
    health_failure_rate: f64,
}

fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

const MODELS: [(&str, &str, u32); 3] = [
    // (model, kind, denoising steps or output tokens)
    ("sdxl-turbo", "image", 8),
    ("llama-3.1-8b", "text", 96),
    ("svd-xt", "video", 14),
];

struct Request {
    id: u64,
    model: &'static str,
    kind: &'static str,
    steps: u32,
    prompt_tokens: u64,
    enqueued: Instant,
    /// Holds `genscope.generation.queue.size` up while the request waits.
    _queued: LevelGuard,
}

/// The catalogs this server records into: generation-server state and GenAI server metrics.
#[derive(Clone)]
struct Instruments {
    generation: GenerationMetrics,
    genai: GenAiMetrics,
    ops: Operations,
}

impl Instruments {
    fn new(telemetry: &Genscope) -> Result<Self, genscope::instruments::DefinitionError> {
        Ok(Instruments {
            generation: telemetry.metrics().generation()?,
            genai: telemetry.metrics().genai()?,
            ops: telemetry.operations().clone(),
        })
    }
}

/// A deterministic pseudo-random source (xorshift), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
enum GenerationError {
    OutOfMemory,
    Timeout,
}

impl GenerationError {
    fn kind(&self) -> &'static str {
        match self {
            GenerationError::OutOfMemory => "out_of_memory",
            GenerationError::Timeout => "timeout",
        }
    }
}

/// One generation: a span per request with its model, steps and token counts.
#[tracing::instrument(
    skip(req, roll),
    fields(
        otel.name = format!("generate {}", req.model),
        gen_ai.request.model = req.model,
        genscope.generation.kind = req.kind,
        // Integers as i64: tracing-opentelemetry records u64 (and u32) fields as strings.
        genscope.generation.steps = i64::from(req.steps),
        gen_ai.usage.input_tokens = req.prompt_tokens as i64,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
)]
async fn generate(req: &Request, roll: f64) -> Result<(u64, Duration), GenerationError> {
    let started = Instant::now();
    let mut first_token = Duration::ZERO;
    let per_step = match req.kind {
        "text" => Duration::from_micros(1500), // per output token
        "video" => Duration::from_millis(18),
        _ => Duration::from_millis(12),
    };
    for step in 0..req.steps {
        if req.kind != "text" || step % 16 == 0 {
            denoise_step(step, per_step).await;
        } else {
            tokio::time::sleep(per_step).await;
        }
        if step == 0 {
            first_token = started.elapsed();
        }
        if roll < 0.03 && step == req.steps / 2 {
            return fail(GenerationError::OutOfMemory);
        }
    }
    if roll > 0.985 {
        return fail(GenerationError::Timeout);
    }
    let output_tokens = if req.kind == "text" {
        u64::from(req.steps)
    } else {
        0
    };
    tracing::Span::current().record("gen_ai.usage.output_tokens", output_tokens as i64);
    Ok((output_tokens, first_token))
}

fn fail<T>(e: GenerationError) -> Result<T, GenerationError> {
    // An OTel log record (with this span's trace and span id) wherever logs are exported.
    tracing::warn!(error.type = e.kind(), "generation failed");
    let span = tracing::Span::current();
    span.record("error.type", e.kind());
    span.record("otel.status_code", "ERROR");
    Err(e)
}

/// A unit of model work; a little CPU, then waiting on the (simulated) accelerator.
#[tracing::instrument(level = "debug")]
async fn denoise_step(step: u32, duration: Duration) {
    let spin = Instant::now();
    let mut x = 0u64;
    while spin.elapsed() < duration / 6 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
    tokio::time::sleep(duration - duration / 6).await;
}

async fn worker(
    id: usize,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>,
    inst: Instruments,
    seed: u64,
) {
    let mut rng = Rng(seed);
    loop {
        let Some(req) = queue.lock().await.recv().await else {
            return;
        };
        let attrs = [
            KeyValue::new("genscope.model.type", req.kind),
            KeyValue::new("gen_ai.request.model", req.model),
        ];
        inst.generation
            .record_queue_wait(req.enqueued.elapsed(), &attrs);
        let active = inst.generation.started(&attrs);
        let started = Instant::now();
        let span = tracing::info_span!(
            "handle_request",
            genscope.example.request.id = req.id as i64,
            genscope.example.worker = id as i64
        );
        let mut result = generate(&req, rng.next_f64()).instrument(span).await;
        let mut served_by = req.model;
        if matches!(result, Err(GenerationError::OutOfMemory)) && req.kind != "text" {
            served_by = fallback_model(&req);
            result = fall_back(&inst.ops, &req).await;
        }
        drop(active);
        let elapsed = started.elapsed();
        let error_type = result.as_ref().err().map(GenerationError::kind);
        inst.generation
            .record_generation(elapsed, error_type, &attrs);
        let operation = if req.kind == "text" {
            Operation::Chat
        } else {
            Operation::GenerateContent
        };
        let genai = GenAiAttributes::new(operation, "self-hosted")
            .expect("static, non-empty attributes")
            .request_model(req.model)
            // The model that answered: the fallback's after an out-of-memory. (No
            // `server.address`/`server.port`: this simulated service listens on no socket;
            // `llm_server` sets them from its listener.)
            .response_model(served_by);
        match result {
            Ok((output_tokens, first_token)) if req.kind == "text" => {
                inst.genai
                    .record_tokens(&genai, Some(req.prompt_tokens), Some(output_tokens));
                inst.genai.record_server_request(
                    &genai,
                    ServerTiming {
                        duration: elapsed,
                        time_to_first_token: Some(first_token),
                        output_tokens: Some(output_tokens),
                    },
                    None,
                );
            }
            Ok(_) => {
                inst.genai
                    .record_tokens(&genai, Some(req.prompt_tokens), None);
                inst.genai.record_server_request(
                    &genai,
                    ServerTiming {
                        duration: elapsed,
                        ..ServerTiming::default()
                    },
                    None,
                );
                inst.generation
                    .record_steps(u64::from(req.steps), elapsed, &attrs);
                inst.generation.record_item(elapsed, &attrs);
            }
            Err(e) => {
                inst.genai
                    .record_tokens(&genai, Some(req.prompt_tokens), None);
                inst.genai.record_server_request(
                    &genai,
                    ServerTiming {
                        duration: elapsed,
                        ..ServerTiming::default()
                    },
                    Some(e.kind()),
                );
            }
        }
    }
}

/// Out of memory: retry once on the smaller fallback model, as a `fallback_strategy` operation.
fn fallback_model(req: &Request) -> &'static str {
    match req.kind {
        "video" => "svd",
        _ => "sd-1.5",
    }
}

async fn fall_back(ops: &Operations, req: &Request) -> Result<(u64, Duration), GenerationError> {
    let target = fallback_model(req);
    let op = ops.fallback_strategy(req.model, target, "out_of_memory");
    let span = op.span().clone();
    async {
        tracing::info!(
            gen_ai.request.model = req.model,
            genscope.fallback.target = target,
            "falling back to a smaller model"
        );
        for step in 0..req.steps / 2 {
            denoise_step(step, Duration::from_millis(6)).await;
        }
    }
    .instrument(span)
    .await;
    op.succeed();
    Ok((0, Duration::ZERO))
}

/// Model plumbing before serving: download each model (in chunks, checksummed) and load it.
async fn prepare_models(ops: &Operations) {
    for (i, (model, _, _)) in MODELS.iter().enumerate() {
        let download = ops.download(model, "hub");
        let span = download.span().clone();
        async {
            let mut checksum = 0u64;
            for _ in 0..4 {
                // 4 MiB chunks; "network" wait, then CPU for the checksum.
                tokio::time::sleep(Duration::from_millis(25)).await;
                let chunk = vec![(i as u8).wrapping_add(1); 4 << 20];
                checksum = chunk.iter().fold(checksum, |c, &b| {
                    c.wrapping_mul(31).wrapping_add(u64::from(b))
                });
                download.add_bytes(chunk.len() as u64);
            }
            std::hint::black_box(checksum);
        }
        .instrument(span)
        .await;
        download.succeed();

        let load = ops.model_operation("load", model);
        load.in_scope(|| {
            // "Weights" that stay resident for the life of the server.
            let weights = vec![1u8; 16 << 20];
            WEIGHTS.lock().unwrap().push(weights);
        });
        load.succeed();
    }
    // The video model's warm-up at full resolution does not fit: it falls back to the smaller
    // model for the rest of the run (a failed operation, then a fallback).
    let warmup = ops.model_operation("warmup", "svd-xt");
    warmup.in_scope(|| std::thread::sleep(Duration::from_millis(15)));
    warmup.fail(
        "out_of_memory",
        "warm-up at 1024x576 needs 21 GiB, 16 GiB free",
    );
    let fallback = ops.fallback_strategy("svd-xt", "svd", "out_of_memory");
    async { denoise_step(0, Duration::from_millis(12)).await }
        .instrument(fallback.span().clone())
        .await;
    fallback.succeed();
}

static WEIGHTS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// Probes every model once a second: degraded while the queue is long, a timeout now and then.
async fn health_checker(
    ops: Operations,
    queue: mpsc::WeakSender<Request>,
    mut rng: Rng,
    failure_rate: f64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(tx) = queue.upgrade() else { return };
        let backlog = tx.max_capacity() - tx.capacity();
        drop(tx);
        for (model, _, _) in MODELS {
            let check = ops.health_check(model);
            tokio::time::sleep(Duration::from_millis(2 + (rng.next_f64() * 6.0) as u64))
                .instrument(check.span().clone())
                .await;
            if rng.next_f64() < failure_rate {
                check.fail("timeout", "no answer from the model worker within 8 ms");
            } else {
                if backlog > 8 {
                    check.set_health(HealthStatus::Degraded);
                }
                check.succeed();
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut builder = Genscope::builder().default_service_name("generation-service");
    if std::env::var_os("OTEL_METRIC_EXPORT_INTERVAL").is_none() {
        // A short run wants frequent collections (the analyzer and /metrics read them).
        builder = builder.metric_export_interval(Duration::from_secs(2));
    }
    if args.fake_gpu {
        use genscope::gpu::{FakeDevice, FakeGpu};
        builder = builder.gpu_backend(FakeGpu::new(vec![FakeDevice::typical(0)]));
    }
    let telemetry = builder.install()?;
    if let Some(addr) = telemetry.prometheus_addr() {
        eprintln!("serving Prometheus metrics on http://{addr}/metrics");
    }
    let inst = Instruments::new(&telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let produced = runtime.block_on(serve(&args, inst));
    // Export (and hand the analyzer) everything ended so far before reading it. The analyzer gets
    // every batch before the destinations do, so a collector that is down or hangs costs the run
    // its export, never its summary or report: warn, and go on.
    let flushed = telemetry.force_flush();
    // One window for the summary and the report: the whole run (and a second before it), so both
    // give the same figure for the same quantity.
    let window = Window::last(started.elapsed() + Duration::from_secs(1));
    let report = telemetry
        .analyzer()
        .report_with(window, &ReportConfig::default());
    print_summary(&telemetry, &report, window, produced, started.elapsed());
    // The analyzer's report over the whole run: health, findings with recommendations, trends.
    println!("\n{}", report.to_text());
    match std::fs::write(&args.report, report.to_html()) {
        Ok(()) => println!("HTML report written to {}", args.report.display()),
        Err(e) => eprintln!("cannot write {}: {e}", args.report.display()),
    }
    if let Some(path) = &args.json {
        let doc = analyzer_json(&telemetry, &report, window);
        if let Err(e) = std::fs::write(path, doc.to_string()) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    let shut_down = telemetry.shutdown();
    if let Some(e) = flushed.err().or(shut_down.err()) {
        warn_export_failure(&telemetry, &e);
    }
    Ok(())
}

async fn serve(args: &Args, inst: Instruments) -> u64 {
    prepare_models(&inst.ops).await;
    let (tx, rx) = mpsc::channel::<Request>(512);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let checker = tokio::spawn(health_checker(
        inst.ops.clone(),
        tx.downgrade(),
        Rng(0x5851_F42D),
        args.health_failure_rate,
    ));
    let workers: Vec<_> = (0..args.workers)
        .map(|i| {
            tokio::spawn(worker(
                i,
                Arc::clone(&rx),
                inst.clone(),
                0x9E37_79B9 + i as u64,
            ))
        })
        .collect();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut id = 0;
    while Instant::now() < deadline {
        // Bursty arrivals: the rate swings between 40% and 160% of the mean every few seconds,
        // so the queue builds up in the busy phases.
        let phase = (Instant::now() + Duration::from_secs(args.seconds) - deadline).as_secs_f64();
        let rate = args.rate * (1.0 + 0.6 * (phase / 3.0).sin());
        let gap = -rng.next_f64().max(1e-9).ln() / rate;
        tokio::time::sleep(Duration::from_secs_f64(gap.min(1.0))).await;
        let (model, kind, steps) =
            MODELS[(rng.next_f64() * MODELS.len() as f64) as usize % MODELS.len()];
        let attrs = [
            KeyValue::new("genscope.model.type", kind),
            KeyValue::new("gen_ai.request.model", model),
        ];
        let req = Request {
            id,
            model,
            kind,
            steps,
            prompt_tokens: 20 + (rng.next_f64() * 400.0) as u64,
            enqueued: Instant::now(),
            _queued: inst.generation.enqueued(&attrs),
        };
        // A full queue rejects the request (its guard drops, the queue size goes back).
        if tx.try_send(req).is_ok() {
            id += 1;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let _ = checker.await;
    id
}
