//! The `metrics` facade through genscope vs through `metrics-exporter-prometheus` (the recorder
//! TGI, TEI and mistral.rs install), in one run, and token-stream timing per token.
//!
//! * `facade_counter/*`: `metrics::counter!("tgi_request_count", "method" => "POST").increment(1)`
//!   as TGI writes it, the macro (registration lookup by key) included, with each recorder as the
//!   thread's default;
//! * `facade_histogram/*`: `metrics::histogram!("tgi_request_duration").record(..)` with a bucket
//!   rule on both sides (`Matcher::Suffix("duration")`, so the exporter keeps a histogram, not a
//!   summary);
//! * `stream_timing/*`: one token through `StreamTiming::wrap_iter` (TTFT, inter-token latency
//!   into the serving catalog) vs the same iterator unwrapped, per token over 1,000-token streams.
//!
//! Export intervals are an hour: this measures recording only.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};

const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn bench(c: &mut Criterion) {
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .metric_export_interval(Duration::from_secs(3600))
        .host_metrics(genscope::config::Sampling::Off)
        .gpu_metrics(genscope::config::Sampling::Off)
        .build()
        .expect("genscope");
    let genscope_rec = genscope::facade::MetricsRecorder::builder(telemetry.metrics())
        .buckets(
            genscope::facade::Matcher::Suffix("duration".into()),
            &BUCKETS,
        )
        .expect("rule")
        .build();
    let prom_rec = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("duration".into()),
            &BUCKETS,
        )
        .expect("buckets")
        .build_recorder();

    let mut g = c.benchmark_group("facade_counter");
    g.bench_function("metrics_exporter_prometheus", |b| {
        let _guard = metrics::set_default_local_recorder(&prom_rec);
        b.iter(|| {
            metrics::counter!("tgi_request_count", "method" => "POST").increment(black_box(1))
        })
    });
    g.bench_function("genscope", |b| {
        let _guard = metrics::set_default_local_recorder(&genscope_rec);
        b.iter(|| {
            metrics::counter!("tgi_request_count", "method" => "POST").increment(black_box(1))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("facade_histogram");
    g.bench_function("metrics_exporter_prometheus", |b| {
        let _guard = metrics::set_default_local_recorder(&prom_rec);
        let handle = prom_rec.handle();
        // The exporter buffers histogram samples until a render drains them; drain per batch.
        b.iter_batched(
            || {
                let _ = handle.render();
            },
            |_| {
                for _ in 0..1000 {
                    metrics::histogram!("tgi_request_duration").record(black_box(0.42));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("genscope", |b| {
        let _guard = metrics::set_default_local_recorder(&genscope_rec);
        b.iter_batched(
            || (),
            |_| {
                for _ in 0..1000 {
                    metrics::histogram!("tgi_request_duration").record(black_box(0.42));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let genai = telemetry.metrics().genai().expect("genai");
    let serving = telemetry.metrics().serving("bench").expect("serving");
    let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
        .expect("attrs")
        .request_model("bench");
    let mut g = c.benchmark_group("stream_timing");
    g.bench_function("plain_1000_tokens", |b| {
        b.iter(|| (0..1000u64).map(black_box).sum::<u64>())
    });
    g.bench_function("timed_1000_tokens", |b| {
        b.iter(|| {
            StreamTiming::start(genai.clone(), attrs.clone())
                .serving(serving.clone())
                .wrap_iter((0..1000u64).map(black_box), |_| Chunk {
                    tokens: 1,
                    finish_reason: None,
                })
                .sum::<u64>()
        })
    });
    g.finish();
    telemetry.shutdown().expect("shutdown");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
