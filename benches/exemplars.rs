//! The cost of exemplars on a histogram record (BENCHMARKS.md, "Exemplars"): the raw SDK's bound
//! histogram as the baseline, genscope's bound and by-name records with the filter `always_off`,
//! and with `trace_based` (the default) outside any span (one context read) and inside a sampled
//! span (the exemplar is kept).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use genscope::config::{ExemplarFilter, Sampling};
use genscope::instruments::MetricDefinition;
use opentelemetry::KeyValue;
use tracing_subscriber::layer::SubscriberExt;

const BUCKETS: [f64; 8] = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

fn genscope(filter: ExemplarFilter) -> genscope::Genscope {
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metric_export_interval(Duration::from_secs(3600))
        .exemplar_filter(filter)
        .build()
        .expect("genscope starts");
    telemetry
        .metrics()
        .create_metric(
            MetricDefinition::histogram("app.latency")
                .with_unit("s")
                .with_buckets(BUCKETS),
        )
        .unwrap();
    telemetry
}

fn bench(c: &mut Criterion) {
    let a = [
        KeyValue::new("model", "sdxl-turbo"),
        KeyValue::new("outcome", "success"),
    ];
    let off = genscope(ExemplarFilter::AlwaysOff);
    let on = genscope(ExemplarFilter::TraceBased);
    // The raw SDK's bound histogram on the same provider (its reader aggregates).
    let raw_bound = off
        .meter("bench")
        .f64_histogram("raw.latency")
        .with_boundaries(BUCKETS.to_vec())
        .build()
        .bind(&a);
    let off_bound = off.metrics().bind_histogram("app.latency", &a).unwrap();
    let on_bound = on.metrics().bind_histogram("app.latency", &a).unwrap();

    let mut g = c.benchmark_group("histogram_exemplars");
    g.bench_function("raw_sdk_bound", |b| {
        b.iter(|| raw_bound.record(black_box(0.42)))
    });
    g.bench_function("bound_off", |b| {
        b.iter(|| off_bound.record(black_box(0.42)).is_ok())
    });
    g.bench_function("bound_trace_based_no_span", |b| {
        b.iter(|| on_bound.record(black_box(0.42)).is_ok())
    });
    for (name, telemetry, bound) in [
        ("bound_off_in_sampled_span", &off, &off_bound),
        ("bound_trace_based_in_sampled_span", &on, &on_bound),
    ] {
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("request").in_scope(|| {
                g.bench_function(name, |b| b.iter(|| bound.record(black_box(0.42)).is_ok()));
            })
        });
    }
    for (name, telemetry) in [
        ("by_name_off_in_sampled_span", &off),
        ("by_name_trace_based_in_sampled_span", &on),
    ] {
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("request").in_scope(|| {
                g.bench_function(name, |b| {
                    b.iter(|| {
                        telemetry
                            .metrics()
                            .record_histogram("app.latency", black_box(0.42), &a)
                            .is_ok()
                    })
                });
            })
        });
    }
    g.finish();
    off.shutdown().unwrap();
    on.shutdown().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
