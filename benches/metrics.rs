//! Recording cost of genscope's collector vs the raw OpenTelemetry SDK, in one run, with
//! metrics-rs and prometheus-client handles as references.
//!
//! * `raw_sdk/*`: `Counter<f64>::add` / `Histogram<f64>::record` with 3 attributes, and the SDK's
//!   own bound instruments (`experimental_metrics_bound_instruments`).
//! * `genscope_unbound/*`: `increment_counter(name, ..)` / `record_histogram(name, ..)`: registry
//!   lookup by name, then this thread's cached SDK bound handle for the attribute set.
//! * `genscope_bound/*`: `bind_counter` (per-thread cells folded into the SDK at collection) /
//!   `bind_histogram` (validation plus the SDK's bound call).
//! * `counter_add_1000_attribute_sets/*`: the by-name cache's worst case, every call another of
//!   1,000 attribute sets, against the raw SDK with the same sets.
//! * `metrics_rs/*`: `metrics::Counter` over an `AtomicU64`, `metrics::Histogram` over
//!   metrics-util's `AtomicBucket` (what a metrics-rs recorder hands out).
//! * `prometheus_client/*`: a held `Counter` / `Histogram`, and `Family::get_or_create` +
//!   record for the by-labels path.
//!
//! The export interval is an hour on every OTel side: this measures recording only.
//!
//! genscope's calls return `Result<(), RecordError>`; the benches consume it as callers do
//! (`?`, `is_ok()`: a branch on the discriminant). Handing the whole 80-byte `Result` to
//! `black_box` instead makes the compiler store it byte-wise and read it back wider, a
//! store-forwarding stall that no caller's `?` pays (about 1 ns on the bound counter here: 5.25
//! vs 4.17 ns).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;

struct NullExporter;

impl PushMetricExporter for NullExporter {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn attrs() -> [KeyValue; 3] {
    [
        KeyValue::new("gen_ai.request.model", "sdxl-turbo"),
        KeyValue::new("outcome", "success"),
        KeyValue::new("route", "/v1/images"),
    ]
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    model: String,
    outcome: String,
    route: String,
}

const BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

fn bench(c: &mut Criterion) {
    let raw = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(NullExporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let meter = raw.meter("bench");
    let raw_counter = meter.f64_counter("raw.requests").build();
    let raw_hist = meter
        .f64_histogram("raw.latency")
        .with_boundaries(BUCKETS.to_vec())
        .build();
    let a = attrs();
    let raw_bound_counter = raw_counter.bind(&a);
    let raw_bound_hist = raw_hist.bind(&a);

    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .metric_export_interval(Duration::from_secs(3600))
        .build()
        .expect("genscope starts");
    let m = telemetry.metrics();
    m.create_metric(genscope::instruments::MetricDefinition::counter(
        "app.requests",
    ))
    .unwrap();
    m.create_metric(
        genscope::instruments::MetricDefinition::histogram("app.latency")
            .with_unit("s")
            .with_buckets(BUCKETS),
    )
    .unwrap();
    let bound_counter = m.bind_counter("app.requests", &a).unwrap();
    let provider_counter = telemetry.meter("bench").f64_counter("sdk.requests").build();
    let metric_handle = m.get_metric("app.requests").unwrap();
    let bound_hist = m.bind_histogram("app.latency", &a).unwrap();

    let mrs_counter = metrics::Counter::from_arc(Arc::new(AtomicU64::new(0)));
    let mrs_hist =
        metrics::Histogram::from_arc(Arc::new(metrics_util::storage::AtomicBucket::<f64>::new()));
    // metrics-util's AtomicBucket grows until drained, as a recorder's exporter would do.
    let mrs_bucket = Arc::new(metrics_util::storage::AtomicBucket::<f64>::new());
    let mrs_hist_drained = metrics::Histogram::from_arc(Arc::clone(&mrs_bucket));

    let pc_counter: PcCounter<f64, AtomicU64> = PcCounter::default();
    let pc_hist = PcHistogram::new(BUCKETS);
    let pc_family: Family<Labels, PcCounter<f64, AtomicU64>> = Family::default();
    let labels = Labels {
        model: "sdxl-turbo".into(),
        outcome: "success".into(),
        route: "/v1/images".into(),
    };

    let mut g = c.benchmark_group("counter_add");
    g.bench_function("raw_sdk", |b| {
        b.iter(|| raw_counter.add(black_box(1.0), &a))
    });
    g.bench_function("genscope_unbound", |b| {
        b.iter(|| {
            m.increment_counter(black_box("app.requests"), black_box(1.0), &a)
                .is_ok()
        })
    });
    g.bench_function("genscope_provider_sdk", |b| {
        b.iter(|| provider_counter.add(black_box(1.0), &a))
    });
    g.bench_function("genscope_metric_handle", |b| {
        b.iter(|| metric_handle.record(black_box(1.0), &a).is_ok())
    });
    g.bench_function("raw_sdk_bound", |b| {
        b.iter(|| raw_bound_counter.add(black_box(1.0)))
    });
    g.bench_function("genscope_bound", |b| {
        b.iter(|| bound_counter.add(black_box(1.0)).is_ok())
    });
    g.bench_function("metrics_rs_handle", |b| {
        b.iter(|| mrs_counter.increment(black_box(1)))
    });
    g.bench_function("prometheus_client_handle", |b| {
        b.iter(|| pc_counter.inc_by(black_box(1.0)))
    });
    g.bench_function("prometheus_client_family", |b| {
        b.iter(|| pc_family.get_or_create(&labels).inc_by(black_box(1.0)))
    });
    g.finish();

    // The by-name cache's worst case: every call a different attribute set (1,000 in turn, more
    // than a thread's 64 cached handles), against the raw SDK given the same sets.
    let rotating: Vec<[KeyValue; 3]> = (0..1000)
        .map(|i| {
            [
                KeyValue::new("gen_ai.request.model", format!("model-{}", i % 10)),
                KeyValue::new("outcome", "success"),
                KeyValue::new("route", format!("/v1/route/{i}")),
            ]
        })
        .collect();
    let mut g = c.benchmark_group("counter_add_1000_attribute_sets");
    g.bench_function("raw_sdk", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % rotating.len();
            raw_counter.add(black_box(1.0), &rotating[i])
        })
    });
    g.bench_function("genscope_unbound", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % rotating.len();
            m.increment_counter(black_box("app.requests"), black_box(1.0), &rotating[i])
                .is_ok()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("histogram_record");
    g.bench_function("raw_sdk", |b| {
        b.iter(|| raw_hist.record(black_box(0.42), &a))
    });
    g.bench_function("genscope_unbound", |b| {
        b.iter(|| {
            m.record_histogram(black_box("app.latency"), black_box(0.42), &a)
                .is_ok()
        })
    });
    g.bench_function("raw_sdk_bound", |b| {
        b.iter(|| raw_bound_hist.record(black_box(0.42)))
    });
    g.bench_function("genscope_bound", |b| {
        b.iter(|| bound_hist.record(black_box(0.42)).is_ok())
    });
    g.bench_function("metrics_rs_handle", |b| {
        b.iter_batched(
            || mrs_bucket.clear(),
            |_| {
                for _ in 0..1000 {
                    mrs_hist_drained.record(black_box(0.42));
                }
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("prometheus_client_handle", |b| {
        b.iter(|| pc_hist.observe(black_box(0.42)))
    });
    g.finish();
    drop(mrs_hist);
    telemetry.shutdown().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
