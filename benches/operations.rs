//! Cost of a span through tracing-opentelemetry, with and without the resource-usage layer, and
//! of an explicit operation, in one run.
//!
//! All variants use the same `SdkTracerProvider` (always sampled) whose span processor drops
//! each finished `SpanData` on the recording thread, so the differences are the layer's and the
//! operation's own costs. (A `BatchSpanProcessor` in front of a discarding exporter made the
//! baseline itself bimodal on a 2-core machine, 1.2 or 2.4 µs from one run to the next, as the
//! processor's thread competed for the second core; a processor runs the same whatever layers
//! are on.)
//!
//! - `plain_span`: `registry().with(otel)`, an `#[instrument]` function (the baseline).
//! - `usage_layer_watching`: `registry().with(usage).with(otel)`, the span watched (target ~1.5x).
//! - `usage_layer_skipping`: the same stack, the layer configured to skip the span (target ~1.05x).
//! - `operation`: `operations().start(kind, name).succeed()` under the watching stack: span,
//!   usage, and one `genscope.operation.duration` point.
//!
//! Group `span_after_switch`: `plain_span` and `usage_layer_watching` again, each span right after
//! the thread slept (untimed), so the usage layer's first thread-clock read is the exact system
//! call rather than the switch-detected fast read.
//!
//! Group `probe`: the system calls the layer is made of, measured alone, so the floor under the
//! watched span is a figure of this run (`thread_cpu_clock` is the exact system call, `thread_cpu_time` the clock the layer reads at
//! every enter and exit;
//! `getrusage_self` and `statm_pread` at the close of spans of 1 ms or more).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use genscope::operations::{OperationKind, ResourceUsageLayer, WatchRule};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanProcessor};
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

/// Drops every finished span where it ends.
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

fn otel<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))
}

#[tracing::instrument]
fn generate(step: u64) -> u64 {
    black_box(step.wrapping_mul(31))
}

fn bench(c: &mut Criterion) {
    let provider = SdkTracerProvider::builder()
        .with_span_processor(DiscardProcessor)
        .build();

    let plain = Dispatch::new(tracing_subscriber::registry().with(otel(&provider)));
    let watching = Dispatch::new(
        tracing_subscriber::registry()
            .with(ResourceUsageLayer::builder().build())
            .with(otel(&provider)),
    );
    let skipping = Dispatch::new(
        tracing_subscriber::registry()
            .with(
                ResourceUsageLayer::builder()
                    .watch(WatchRule::operations_only())
                    .build(),
            )
            .with(otel(&provider)),
    );
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .metric_export_interval(Duration::from_secs(3600))
        .build()
        .expect("genscope starts");
    let ops = telemetry.operations().clone();
    let kind = OperationKind::ModelOperation;

    let mut g = c.benchmark_group("span");
    g.bench_function("plain_span", |b| {
        tracing::dispatcher::with_default(&plain, || b.iter(|| generate(black_box(7))))
    });
    g.bench_function("usage_layer_watching", |b| {
        tracing::dispatcher::with_default(&watching, || b.iter(|| generate(black_box(7))))
    });
    g.bench_function("usage_layer_skipping", |b| {
        tracing::dispatcher::with_default(&skipping, || b.iter(|| generate(black_box(7))))
    });
    g.bench_function("operation", |b| {
        tracing::dispatcher::with_default(&watching, || {
            b.iter(|| ops.start(kind.clone(), "warmup").succeed())
        })
    });
    g.finish();

    // The worst case for the thread clock: the thread was switched out (a 20 us sleep, not
    // timed) right before every span, so the span's first clock read is the system call.
    let mut g = c.benchmark_group("span_after_switch");
    g.measurement_time(Duration::from_millis(100));
    g.warm_up_time(Duration::from_millis(100));
    let after_switch = |dispatch: &Dispatch, b: &mut criterion::Bencher<'_>| {
        tracing::dispatcher::with_default(dispatch, || {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    std::thread::sleep(Duration::from_micros(20));
                    let start = std::time::Instant::now();
                    black_box(generate(black_box(7)));
                    timed += start.elapsed();
                }
                timed
            })
        })
    };
    g.bench_function("plain_span", |b| after_switch(&plain, b));
    g.bench_function("usage_layer_watching", |b| after_switch(&watching, b));
    g.finish();
    drop(telemetry);
    probes(c);
}

#[cfg(unix)]
fn probes(c: &mut Criterion) {
    use std::os::unix::fs::FileExt as _;
    use std::time::Instant;
    let mut g = c.benchmark_group("probe");
    g.bench_function("thread_cpu_clock", |b| {
        b.iter(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid out pointer, constant clock id.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            black_box(ts.tv_nsec)
        })
    });
    g.bench_function("thread_cpu_time", |b| {
        b.iter(|| black_box(genscope::operations::thread_cpu_time()))
    });
    g.bench_function("getrusage_self", |b| {
        b.iter(|| {
            // SAFETY: an all-zero rusage is valid; valid out pointer.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
            black_box(ru.ru_maxrss)
        })
    });
    if let Ok(statm) = std::fs::File::open("/proc/self/statm") {
        let mut buf = [0u8; 128];
        g.bench_function("statm_pread", |b| {
            b.iter(|| black_box(statm.read_at(&mut buf, 0).unwrap_or(0)))
        });
    }
    g.bench_function("instant_now", |b| b.iter(|| black_box(Instant::now())));
    g.finish();
}

#[cfg(not(unix))]
fn probes(_c: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
