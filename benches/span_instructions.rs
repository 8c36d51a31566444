//! Instructions per span, for callgrind: the plain `tracing-opentelemetry` span, the same span
//! watched by the usage layer, and the plain span behind per-layer filters (`EnvFilter`,
//! `Targets`, and a second fmt layer behind its own `EnvFilter`). Spans are dropped by the
//! processor where they end, as in `benches/operations.rs`. Counts are read only inside `run`:
//!
//! ```sh
//! cargo bench --bench span_instructions --no-run
//! for m in plain watch env env2 targets; do
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$m --toggle-collect='*span_instructions::run*' \
//!     target/release/deps/span_instructions-<hash> $m 21000
//! done   # instructions per span = the "refs" total / 22,000 (1,000 warm-up spans + 21,000)
//! ```
//!
//! Without valgrind it prints a (noisy) time per span.

use std::hint::black_box;
use std::time::Duration;

use genscope::operations::ResourceUsageLayer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Debug)]
struct DiscardProcessor;

impl SpanProcessor for DiscardProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[tracing::instrument]
fn generate(step: u64) -> u64 {
    black_box(step.wrapping_mul(31))
}

/// The OTel layer for whichever subscriber it is added to.
struct Otel(opentelemetry_sdk::trace::SdkTracer);

impl Otel {
    fn layer<S>(
        self,
    ) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_opentelemetry::layer().with_tracer(self.0)
    }
}

#[inline(never)]
fn run(d: &Dispatch, n: u64) {
    tracing::dispatcher::with_default(d, || {
        for i in 0..n {
            generate(black_box(i));
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mode = args.next().unwrap_or_else(|| "plain".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(DiscardProcessor)
        .build();
    let otel = || Otel(provider.tracer("bench"));
    let d = match mode.as_str() {
        "plain" => Dispatch::new(tracing_subscriber::registry().with(otel().layer())),
        "watch" => Dispatch::new(
            tracing_subscriber::registry()
                .with(ResourceUsageLayer::builder().build())
                .with(otel().layer()),
        ),
        "env" => Dispatch::new(
            tracing_subscriber::registry().with(otel().layer().with_filter(EnvFilter::new("info"))),
        ),
        "env2" => Dispatch::new(
            tracing_subscriber::registry()
                .with(otel().layer().with_filter(EnvFilter::new("info")))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::sink)
                        .with_filter(EnvFilter::new("warn")),
                ),
        ),
        "targets" => Dispatch::new(
            tracing_subscriber::registry().with(
                otel()
                    .layer()
                    .with_filter("info".parse::<Targets>().expect("directives")),
            ),
        ),
        other => {
            eprintln!("unknown mode {other}: plain, watch, env, env2 or targets");
            std::process::exit(2);
        }
    };
    run(&d, 1000);
    let t = std::time::Instant::now();
    run(&d, n);
    println!(
        "{mode}: {:.1} ns per span",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
