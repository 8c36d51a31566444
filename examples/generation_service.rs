//! A small simulated generation server instrumented with genscope.
//!
//! Requests arrive in bursts into a bounded queue; a few workers run an `#[instrument]`-ed
//! `generate` (model, steps, token counts) that sometimes fails. Every span and metric goes through
//! genscope: to the analyzer store always, and to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
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
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};
use tokio::sync::mpsc;
use tracing::Instrument;

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
}

#[derive(Clone)]
struct Instruments {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    queue_wait: Histogram<f64>,
    tokens: Histogram<u64>,
    queue_size: UpDownCounter<i64>,
    active: UpDownCounter<i64>,
}

impl Instruments {
    fn new(telemetry: &Genscope) -> Self {
        let meter = telemetry.meter("generation_service");
        let seconds = vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        Instruments {
            requests: meter
                .u64_counter("genscope.generation.requests")
                .with_unit("{request}")
                .build(),
            duration: meter
                .f64_histogram("genscope.generation.duration")
                .with_unit("s")
                .with_boundaries(seconds.clone())
                .build(),
            queue_wait: meter
                .f64_histogram("genscope.generation.queue.wait")
                .with_unit("s")
                .with_boundaries(seconds)
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_boundaries(vec![
                    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
                ])
                .build(),
            queue_size: meter
                .i64_up_down_counter("genscope.generation.queue.size")
                .with_unit("{request}")
                .build(),
            active: meter
                .i64_up_down_counter("genscope.generation.active")
                .with_unit("{request}")
                .build(),
        }
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
        genscope.generation.steps = req.steps,
        gen_ai.usage.input_tokens = req.prompt_tokens,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
)]
async fn generate(req: &Request, roll: f64) -> Result<u64, GenerationError> {
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
    tracing::Span::current().record("gen_ai.usage.output_tokens", output_tokens);
    Ok(output_tokens)
}

fn fail(e: GenerationError) -> Result<u64, GenerationError> {
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
        inst.queue_size.add(-1, &[]);
        let model = KeyValue::new("gen_ai.request.model", req.model);
        inst.queue_wait.record(
            req.enqueued.elapsed().as_secs_f64(),
            std::slice::from_ref(&model),
        );
        inst.active.add(1, &[]);
        let started = Instant::now();
        let span = tracing::info_span!("handle_request", request.id = req.id, worker = id);
        let result = generate(&req, rng.next_f64()).instrument(span).await;
        inst.active.add(-1, &[]);
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.kind(),
        };
        let attrs = [model.clone(), KeyValue::new("outcome", outcome)];
        inst.requests.add(1, &attrs);
        inst.duration
            .record(started.elapsed().as_secs_f64(), &attrs);
        let token_type = |t: &'static str| [model.clone(), KeyValue::new("gen_ai.token.type", t)];
        inst.tokens.record(req.prompt_tokens, &token_type("input"));
        if let Ok(output) = result
            && output > 0
        {
            inst.tokens.record(output, &token_type("output"));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let telemetry = Genscope::builder()
        .service_name("generation-service")
        .install()?;
    let inst = Instruments::new(&telemetry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let produced = runtime.block_on(serve(&args, inst));
    // Export (and hand the analyzer) everything ended so far before reading it.
    telemetry.force_flush()?;
    print_summary(&telemetry, produced, started.elapsed());
    telemetry.shutdown()?;
    Ok(())
}

async fn serve(args: &Args, inst: Instruments) -> u64 {
    let (tx, rx) = mpsc::channel::<Request>(512);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
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
        let req = Request {
            id,
            model,
            kind,
            steps,
            prompt_tokens: 20 + (rng.next_f64() * 400.0) as u64,
            enqueued: Instant::now(),
        };
        if tx.try_send(req).is_ok() {
            inst.queue_size.add(1, &[]);
            id += 1;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    id
}

fn print_summary(telemetry: &Genscope, produced: u64, elapsed: Duration) {
    let store = telemetry.analyzer();
    let window = Window::all();
    println!(
        "\ngenscope analyzer store after {:.1} s ({produced} requests)",
        elapsed.as_secs_f64()
    );
    println!(
        "{:<28} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "span", "count", "errors", "p50 ms", "p95 ms", "p99 ms"
    );
    for name in store.span_names() {
        let s = store.span_stats(Some(&name), window);
        let q = |p| s.durations.quantile(p).unwrap_or(0.0) * 1000.0;
        println!(
            "{:<28} {:>7} {:>7} {:>9.1} {:>9.1} {:>9.1}",
            name,
            s.count,
            s.errors,
            q(0.5),
            q(0.95),
            q(0.99)
        );
    }
    println!();
    if let Some(rate) = store.rate("genscope.generation.requests", &[], Window::last(elapsed)) {
        println!("{:<28} {rate:>9.2}", "requests/s");
    }
    for outcome in ["success", "out_of_memory", "timeout"] {
        let n = store
            .sum(
                "genscope.generation.requests",
                &[("outcome", outcome)],
                window,
            )
            .unwrap_or(0.0);
        println!("{:<28} {n:>9.0}", format!("requests {outcome}"));
    }
    if let Some(h) = store.histogram("genscope.generation.duration", &[], window) {
        println!(
            "{:<28} {:>9.3} / {:.3} / {:.3}",
            "duration p50/p95/p99 s",
            h.quantile(0.5).unwrap_or(0.0),
            h.quantile(0.95).unwrap_or(0.0),
            h.quantile(0.99).unwrap_or(0.0)
        );
    }
    if let Some(h) = store.histogram("genscope.generation.queue.wait", &[], window) {
        println!(
            "{:<28} {:>9.3} / {:.3}",
            "queue wait p50/p95 s",
            h.quantile(0.5).unwrap_or(0.0),
            h.quantile(0.95).unwrap_or(0.0)
        );
    }
    if let Some(g) = store.gauge("genscope.generation.queue.size", &[], window) {
        println!(
            "{:<28} {:>9.0} (max {:.0} over {} collections)",
            "queue size", g.last, g.max, g.samples
        );
    }
    for token_type in ["input", "output"] {
        if let Some(h) = store.histogram(
            "gen_ai.client.token.usage",
            &[("gen_ai.token.type", token_type)],
            window,
        ) {
            println!("{:<28} {:>9.0}", format!("{token_type} tokens"), h.sum);
        }
    }
    let loss = telemetry.telemetry_loss();
    println!(
        "{:<28} {:>9} ended, {} exported, {} dropped, {} failed deliveries",
        "telemetry spans",
        loss.spans_ended,
        loss.spans_exported,
        loss.spans_dropped(),
        loss.spans_failed()
    );
    let destinations: Vec<&str> = loss
        .span_deliveries
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    println!(
        "{:<28} {}",
        "span destinations",
        if destinations.is_empty() {
            "none (embedded default: set OTEL_EXPORTER_OTLP_ENDPOINT to export)".to_string()
        } else {
            destinations.join(", ")
        }
    );
}
