//! Scale of the analyzer: a report over 1 hour of data with 1,000 series and 1,000,000
//! operations (target <= 50 ms), the store's memory for it (target <= 32 MB), and that the cost
//! follows series and windows, not operations.
//!
//! Data: one collection every 10 s for an hour (360), written as OTLP JSON lines and loaded
//! through the same ingestion the live pipeline uses; then the operations' spans are handed to
//! the store as the span exporter would (`ExportObserver::observe_spans`). Series: 100
//! `genscope.operation.duration` histograms (5 types x 20 names; together they count every
//! operation), 10 `genscope.generation.duration` histograms and 10 request counters, the
//! generation queue, host CPU by mode, this process, 8 GPUs, and filler gauges and counters up
//! to the total. Memory is measured with a counting global allocator: bytes held after loading.
//!
//! Baseline: `serde_json` serialization of the same report (what any consumer of the JSON pays
//! to read it), and the same report over 10x fewer operations and 10x fewer series.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group};
use genscope::analyzer::otlp_file;
use genscope::analyzer::report::{Report, ReportConfig};
use genscope::pipeline::ExportObserver;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

struct Counting;
static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        HELD.fetch_add(new, Ordering::Relaxed);
        HELD.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const COLLECTIONS: u64 = 360;
const INTERVAL_NS: u64 = 10_000_000_000;
const BOUNDS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn number(
    name: &str,
    attrs: Vec<KeyValue>,
    start: u64,
    t: u64,
    v: f64,
) -> (String, NumberDataPoint) {
    (
        name.to_string(),
        NumberDataPoint {
            attributes: attrs,
            start_time_unix_nano: start,
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        },
    )
}

/// One collection's metrics: `series` series in all, `ops_per_collection` operations.
fn collection(
    i: u64,
    series: usize,
    ops_per_collection: u64,
    start: u64,
) -> ExportMetricsServiceRequest {
    let t = start + (i + 1) * INTERVAL_NS;
    let mut metrics: Vec<Metric> = Vec::new();
    let mut left = series;
    // Operation histograms: 100 series (cumulative), sharing every operation.
    let hist_series = 100.min(left);
    left -= hist_series;
    let per_series = ops_per_collection / hist_series.max(1) as u64;
    let hist = |name: &str,
                n: usize,
                cumulative_count: u64,
                attrs: &dyn Fn(usize) -> Vec<KeyValue>| Metric {
        name: name.into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            data_points: (0..n)
                .map(|s| {
                    let mut counts = vec![0u64; BOUNDS.len() + 1];
                    counts[3 + s % 5] = cumulative_count / 2;
                    counts[5 + s % 5] = cumulative_count - cumulative_count / 2;
                    HistogramDataPoint {
                        attributes: attrs(s),
                        start_time_unix_nano: start,
                        time_unix_nano: t,
                        count: cumulative_count,
                        sum: Some(cumulative_count as f64 * 0.2),
                        bucket_counts: counts,
                        explicit_bounds: BOUNDS.to_vec(),
                        ..Default::default()
                    }
                })
                .collect(),
        })),
        ..Default::default()
    };
    metrics.push(hist(
        "genscope.operation.duration",
        hist_series,
        per_series * (i + 1),
        &|s| {
            vec![
                kv(
                    "genscope.operation.type",
                    [
                        "download",
                        "health_check",
                        "fallback_strategy",
                        "model_operation",
                        "generation",
                    ][s % 5],
                ),
                kv("genscope.operation.name", &format!("model-{}", s / 5)),
                kv("genscope.operation.outcome", "success"),
            ]
        },
    ));
    let gen_series = 10.min(left);
    left -= gen_series;
    metrics.push(hist(
        "genscope.generation.duration",
        gen_series,
        30 * (i + 1),
        &|s| vec![kv("genscope.model.type", &format!("type-{s}"))],
    ));
    let mut points: Vec<(String, NumberDataPoint)> = Vec::new();
    let mut counters: Vec<(String, NumberDataPoint)> = Vec::new();
    for s in 0..10.min(left) {
        counters.push(number(
            "genscope.generation.requests",
            vec![kv("genscope.model.type", &format!("type-{s}"))],
            start,
            t,
            30.0 * (i + 1) as f64,
        ));
    }
    left -= 10.min(left);
    points.push(number(
        "genscope.generation.queue.size",
        vec![],
        start,
        t,
        (i % 40) as f64,
    ));
    for mode in [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "interrupt",
        "steal",
    ] {
        points.push(number(
            "system.cpu.utilization",
            vec![kv("cpu.mode", mode)],
            start,
            t,
            if mode == "idle" { 0.6 } else { 0.4 / 6.0 },
        ));
    }
    points.push(number(
        "process.cpu.utilization",
        vec![kv("cpu.mode", "user")],
        start,
        t,
        0.3,
    ));
    points.push(number(
        "process.memory.usage",
        vec![],
        start,
        t,
        500e6 + i as f64 * 1e3,
    ));
    for d in 0..8 {
        let id = format!("GPU-{d}");
        points.push(number(
            "hw.gpu.utilization",
            vec![kv("hw.id", &id), kv("hw.gpu.task", "general")],
            start,
            t,
            0.7,
        ));
        points.push(number(
            "hw.gpu.memory.utilization",
            vec![kv("hw.id", &id)],
            start,
            t,
            0.6,
        ));
    }
    left = left.saturating_sub(points.len());
    for s in 0..left / 2 {
        points.push(number(
            "bench.filler.gauge",
            vec![kv("index", &s.to_string())],
            start,
            t,
            s as f64,
        ));
    }
    for s in 0..left - left / 2 {
        counters.push(number(
            "bench.filler.counter",
            vec![kv("index", &s.to_string())],
            start,
            t,
            (s as u64 * (i + 1)) as f64,
        ));
    }
    let mut gauges: std::collections::BTreeMap<String, Vec<NumberDataPoint>> = Default::default();
    for (name, p) in points {
        gauges.entry(name).or_default().push(p);
    }
    for (name, dps) in gauges {
        metrics.push(Metric {
            name,
            data: Some(Data::Gauge(Gauge { data_points: dps })),
            ..Default::default()
        });
    }
    let mut sums: std::collections::BTreeMap<String, Vec<NumberDataPoint>> = Default::default();
    for (name, p) in counters {
        sums.entry(name).or_default().push(p);
    }
    for (name, dps) in sums {
        metrics.push(Metric {
            name,
            data: Some(Data::Sum(Sum {
                data_points: dps,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "bench")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Built {
    loaded: otlp_file::Loaded,
    bytes: usize,
    series: usize,
}

fn build(series: usize, operations: u64, spans: u64) -> Built {
    let start = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - COLLECTIONS * INTERVAL_NS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.jsonl");
    {
        use std::io::Write as _;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..COLLECTIONS {
            let req = collection(i, series, operations / COLLECTIONS, start);
            serde_json::to_writer(&mut f, &req).unwrap();
            f.write_all(b"\n").unwrap();
        }
    }
    let before = HELD.load(Ordering::Relaxed);
    let loaded = otlp_file::load(&[&path]).unwrap();
    // The operations' spans, as the span exporter hands them over, in batches of 512.
    let scope = opentelemetry::InstrumentationScope::builder("bench").build();
    let mut batch = Vec::with_capacity(512);
    for n in 0..spans {
        let end = SystemTime::UNIX_EPOCH
            + Duration::from_nanos(start + n * (COLLECTIONS * INTERVAL_NS / spans.max(1)));
        batch.push(opentelemetry_sdk::trace::SpanData {
            span_context: SpanContext::new(
                TraceId::from(n as u128 + 1),
                SpanId::from(n + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: [
                "download",
                "health_check",
                "fallback_strategy",
                "model_operation",
                "generate",
            ][(n % 5) as usize]
                .into(),
            start_time: end - Duration::from_millis(200),
            end_time: end,
            attributes: vec![
                opentelemetry::KeyValue::new(
                    "genscope.operation.type",
                    [
                        "download",
                        "health_check",
                        "fallback_strategy",
                        "model_operation",
                        "generation",
                    ][(n % 5) as usize],
                ),
                opentelemetry::KeyValue::new(
                    "genscope.operation.name",
                    format!("model-{}", n % 20),
                ),
                opentelemetry::KeyValue::new("genscope.usage.cpu.time", 0.01),
            ],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Ok,
            instrumentation_scope: scope.clone(),
        });
        if batch.len() == 512 {
            loaded.store.observe_spans(&batch);
            batch.clear();
        }
    }
    loaded.store.observe_spans(&batch);
    drop(batch);
    let bytes = HELD.load(Ordering::Relaxed).saturating_sub(before);
    let series = loaded.store.metrics().iter().map(|m| m.series).sum();
    Built {
        loaded,
        bytes,
        series,
    }
}

fn bench_report(c: &mut Criterion) {
    let cases = [
        ("1000_series_1M_ops", 1000usize, 1_000_000u64, 1_000_000u64),
        ("1000_series_100k_ops", 1000, 100_000, 100_000),
        ("100_series_1M_ops", 100, 1_000_000, 1_000_000),
    ];
    let mut g = c.benchmark_group("report_1h");
    for (name, series, ops, spans) in cases {
        let built = build(series, ops, spans);
        let window = built.loaded.window(None);
        let report = Report::compute(&built.loaded.store, window, &ReportConfig::default());
        println!(
            "store: {name}: {} series, {} operations ({} spans), {:.1} MB held; report: {} findings, {} operation rows",
            built.series,
            ops,
            spans,
            built.bytes as f64 / 1e6,
            report.findings.len(),
            report.operations.len()
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(Report::compute(
                    &built.loaded.store,
                    window,
                    &ReportConfig::default(),
                ))
            })
        });
        if series == 1000 && ops == 1_000_000 {
            g.bench_function("baseline_serde_json_of_the_report", |b| {
                b.iter(|| black_box(serde_json::to_string(&report).unwrap()))
            });
            let mut w15 = window;
            w15.start = window.end - Duration::from_secs(900);
            g.bench_function("1000_series_1M_ops_window_15m", |b| {
                b.iter(|| {
                    black_box(Report::compute(
                        &built.loaded.store,
                        w15,
                        &ReportConfig::default(),
                    ))
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(30);
    targets = bench_report
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
