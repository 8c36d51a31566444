//! Hot-path cost of recording through genscope vs the raw OpenTelemetry SDK, in one run.
//!
//! Baseline: an `SdkMeterProvider` with one `PeriodicReader` (what any OTel user has).
//! genscope: the same SDK behind the builder, with the analyzer store fed by the metric tee.
//! The export interval is long on both sides, so this measures the recording path only: the
//! analyzer must add nothing there (it is fed at export time, off the application's threads).
//! `raw_sdk_two_readers` shows what the alternative design (a second reader for the analyzer) costs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

/// An exporter that does nothing: the baseline's reader never exports during the measurement.
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

fn bench(c: &mut Criterion) {
    let raw = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(NullExporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    // What feeding an analyzer with a second reader would cost: every measurement aggregated twice.
    let two_readers = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(NullExporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .with_reader(
            PeriodicReader::builder(NullExporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .metric_export_interval(Duration::from_secs(3600))
        .build()
        .expect("genscope starts");

    let raw_meter = raw.meter("bench");
    let gs_meter = telemetry.meter("bench");
    let a = attrs();

    let mut group = c.benchmark_group("counter_add_3_attrs");
    let raw_counter = raw_meter.u64_counter("requests").build();
    let gs_counter = gs_meter.u64_counter("requests").build();
    group.bench_function("raw_sdk", |b| {
        b.iter(|| raw_counter.add(black_box(1), black_box(&a)))
    });
    group.bench_function("genscope", |b| {
        b.iter(|| gs_counter.add(black_box(1), black_box(&a)))
    });
    let two_counter = two_readers.meter("bench").u64_counter("requests").build();
    group.bench_function("raw_sdk_two_readers", |b| {
        b.iter(|| two_counter.add(black_box(1), black_box(&a)))
    });
    group.finish();

    let mut group = c.benchmark_group("histogram_record_3_attrs");
    let bounds = vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
    let raw_hist = raw_meter
        .f64_histogram("latency")
        .with_boundaries(bounds.clone())
        .build();
    let gs_hist = gs_meter
        .f64_histogram("latency")
        .with_boundaries(bounds)
        .build();
    group.bench_function("raw_sdk", |b| {
        b.iter(|| raw_hist.record(black_box(0.42), black_box(&a)))
    });
    group.bench_function("genscope", |b| {
        b.iter(|| gs_hist.record(black_box(0.42), black_box(&a)))
    });
    group.finish();

    telemetry.shutdown().expect("clean shutdown");
    let _ = raw.shutdown();
    let _ = two_readers.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
