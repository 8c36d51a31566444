//! End-to-end: `#[instrument]`-ed async code and OTel instruments → genscope → real OTLP receivers
//! (gRPC and HTTP/protobuf, gzip on) decoding with the official protobuf definitions.
//! Each test installs a global subscriber, so run them one process per test (`cargo nextest run`).

mod common;

use std::time::{Duration, Instant};

use common::{Mode, Receiver, attr_str, closed_port_url, sum_points};
use genscope::Genscope;
use genscope::analyzer::Window;
use genscope::config::{Compression, Protocol};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use tracing::Instrument;

const REQUESTS: u64 = 20;
const STEPS: u32 = 3;

#[tracing::instrument]
async fn handle_request(request_id: u64) {
    generate("sdxl", STEPS).await;
}

#[tracing::instrument]
async fn generate(model: &str, steps: u32) {
    for step in 0..steps {
        denoise_step(step).await;
    }
    // Hop to another task (and possibly another worker thread): the parent must still be right.
    tokio::spawn(postprocess().in_current_span()).await.unwrap();
}

#[tracing::instrument]
async fn denoise_step(step: u32) {
    tokio::task::yield_now().await;
}

#[tracing::instrument]
async fn postprocess() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn workload(telemetry: &Genscope) {
    let meter = telemetry.meter("otlp-export-test");
    let requests = meter
        .u64_counter("genscope.test.requests")
        .with_unit("{request}")
        .build();
    let duration = meter
        .f64_histogram("genscope.test.duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 1.0, 10.0])
        .build();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|i| tokio::spawn(handle_request(i)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let attrs = [
        KeyValue::new("gen_ai.request.model", "sdxl"),
        KeyValue::new("outcome", "ok"),
        KeyValue::new("route", "/generate"),
    ];
    for _ in 0..REQUESTS {
        requests.add(1, &attrs);
        duration.record(0.5, &attrs);
    }
}

fn end_to_end(protocol: Protocol) {
    let receiver = match protocol {
        Protocol::Grpc => Receiver::grpc(Mode::Normal),
        _ => Receiver::http(Mode::Normal),
    };
    let telemetry = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("e2e-test")
        .endpoint(receiver.url())
        .protocol(protocol)
        .compression(Compression::Gzip)
        .header("x-tenant", "blue")
        .install()
        .unwrap();
    workload(&telemetry);
    telemetry.shutdown().unwrap();

    // Spans: every one, with correct parents across tasks and threads.
    let spans = receiver.spans();
    let by_name = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let roots = by_name("handle_request");
    let generates = by_name("generate");
    assert_eq!(roots.len() as u64, REQUESTS);
    assert_eq!(generates.len() as u64, REQUESTS);
    assert_eq!(
        by_name("denoise_step").len() as u64,
        REQUESTS * STEPS as u64
    );
    assert_eq!(by_name("postprocess").len() as u64, REQUESTS);
    for root in &roots {
        assert!(root.parent_span_id.is_empty(), "root spans have no parent");
    }
    for g in &generates {
        let parent = roots
            .iter()
            .find(|r| r.span_id == g.parent_span_id)
            .expect("generate's parent is a request");
        assert_eq!(parent.trace_id, g.trace_id);
        assert_eq!(attr_str(&g.attributes, "model").as_deref(), Some("sdxl"));
    }
    for child in by_name("denoise_step")
        .into_iter()
        .chain(by_name("postprocess"))
    {
        let parent = generates
            .iter()
            .find(|g| g.span_id == child.parent_span_id)
            .expect("child of generate");
        assert_eq!(parent.trace_id, child.trace_id);
    }

    // Resource and transport.
    let resource = receiver.resource();
    assert_eq!(
        attr_str(&resource, "service.name").as_deref(),
        Some("e2e-test")
    );
    assert_eq!(
        attr_str(&resource, "telemetry.distro.name").as_deref(),
        Some("genscope")
    );
    assert!(attr_str(&resource, "telemetry.sdk.name").is_some());
    assert!(attr_str(&resource, "process.pid").is_some());
    assert!(receiver.gzip_seen(), "payloads were gzip-compressed");
    let headers = receiver.received.lock().unwrap().headers.clone();
    assert!(
        headers.iter().any(|(k, v)| k == "x-tenant" && v == "blue"),
        "{headers:?}"
    );
    // The trace exports themselves (genscope's own span transport): gzip, the configured
    // header, and a User-Agent naming the exporter, as the OTLP specification asks.
    let (span_headers, span_gzip) = {
        let r = receiver.received.lock().unwrap();
        (r.span_headers.clone(), r.span_gzip)
    };
    assert!(span_gzip, "trace exports were gzip-compressed");
    assert!(
        span_headers
            .iter()
            .any(|(k, v)| k == "x-tenant" && v == "blue"),
        "{span_headers:?}"
    );
    assert!(
        span_headers.iter().any(|(k, v)| k == "user-agent"
            && v.contains("OTel-OTLP-Exporter-Rust/")
            && v.contains("genscope/")),
        "{span_headers:?}"
    );

    // Counter with its attributes.
    let counter = receiver
        .latest_metric("genscope.test.requests")
        .expect("counter exported");
    assert_eq!(counter.unit, "{request}");
    let points = sum_points(&counter);
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].1, REQUESTS as f64);
    assert_eq!(
        attr_str(&points[0].0, "route").as_deref(),
        Some("/generate")
    );
    assert_eq!(
        attr_str(&points[0].0, "gen_ai.request.model").as_deref(),
        Some("sdxl")
    );

    // Histogram with its explicit buckets.
    let hist = receiver
        .latest_metric("genscope.test.duration")
        .expect("histogram exported");
    assert_eq!(hist.unit, "s");
    let Some(Data::Histogram(h)) = hist.data else {
        panic!("not a histogram")
    };
    let p = &h.data_points[0];
    assert_eq!(p.explicit_bounds, vec![0.1, 1.0, 10.0]);
    assert_eq!(p.count, REQUESTS);
    assert_eq!(p.bucket_counts, vec![0, REQUESTS, 0, 0]);
    assert!((p.sum.unwrap() - 0.5 * REQUESTS as f64).abs() < 1e-9);

    // The analyzer saw exactly what was exported.
    let store = telemetry.analyzer();
    assert_eq!(
        store.span_stats(None, Window::all()).count,
        spans.len() as u64
    );
    assert_eq!(
        store.sum(
            "genscope.test.requests",
            &[("route", "/generate")],
            Window::all()
        ),
        Some(REQUESTS as f64)
    );
    assert_eq!(
        store
            .histogram("genscope.test.duration", &[], Window::all())
            .unwrap()
            .count,
        REQUESTS
    );
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_dropped(), 0);
    assert_eq!(loss.spans_failed(), 0);
    assert_eq!(loss.span_deliveries[0].delivered, spans.len() as u64);
}

#[test]
fn grpc_end_to_end_with_gzip() {
    end_to_end(Protocol::Grpc);
}

#[test]
fn http_protobuf_end_to_end_with_gzip() {
    end_to_end(Protocol::HttpProtobuf);
}

#[test]
fn every_span_ended_before_shutdown_reaches_the_receiver() {
    const N: u64 = 5_000;
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .span_max_queue_size(8192)
        .install()
        .unwrap();
    for i in 0..N {
        tracing::info_span!("unit_of_work", i).in_scope(|| {});
    }
    telemetry.shutdown().unwrap();
    let spans = receiver.spans();
    assert_eq!(spans.len() as u64, N, "N of N spans delivered");
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_ended, N);
    assert_eq!(loss.spans_exported, N);
    assert_eq!(loss.spans_queued, 0);
}

/// A run with nothing listening: the workload is not slowed and shutdown stays bounded.
fn receiver_absent(protocol: Protocol) {
    let telemetry = common::builder(closed_port_url(), protocol)
        .metric_export_interval(Duration::from_millis(200))
        .span_schedule_delay(Duration::from_millis(50))
        .shutdown_timeout(Duration::from_secs(5))
        .install()
        .unwrap();
    let start = Instant::now();
    workload(&telemetry);
    let workload_time = start.elapsed();
    std::thread::sleep(Duration::from_millis(500)); // let exports fail in the background
    let start = Instant::now();
    let _ = telemetry.shutdown();
    let shutdown_time = start.elapsed();
    // Generous bounds: the workload alone takes milliseconds; only blocking on I/O could exceed these.
    assert!(
        workload_time < Duration::from_secs(3),
        "workload blocked: {workload_time:?}"
    );
    assert!(
        shutdown_time < Duration::from_secs(7),
        "shutdown unbounded: {shutdown_time:?}"
    );
    let loss = telemetry.telemetry_loss();
    let produced = REQUESTS * (3 + STEPS as u64);
    assert_eq!(loss.spans_ended, produced);
    // Everything exported failed to deliver, and nothing is unaccounted for.
    assert_eq!(loss.span_deliveries[0].delivered, 0);
    assert_eq!(
        loss.spans_failed() + loss.spans_queued + loss.spans_dropped(),
        produced
    );
    // The analyzer still saw every span.
    assert_eq!(
        telemetry.analyzer().span_stats(None, Window::all()).count,
        loss.spans_exported
    );
}

#[test]
fn grpc_receiver_absent_does_not_block() {
    receiver_absent(Protocol::Grpc);
}

#[test]
fn http_receiver_absent_does_not_block() {
    receiver_absent(Protocol::HttpProtobuf);
}

/// A receiver that accepts and never answers: callers are not blocked and shutdown returns in
/// its bound even though the exporter's own timeout (30 s here) is longer.
fn receiver_hangs(protocol: Protocol) {
    let receiver = match protocol {
        Protocol::Grpc => Receiver::grpc(Mode::Hang),
        _ => Receiver::http(Mode::Hang),
    };
    let bound = Duration::from_secs(3);
    let telemetry = common::builder(receiver.url(), protocol)
        .timeout(Duration::from_secs(30))
        .metric_export_interval(Duration::from_millis(200))
        .span_schedule_delay(Duration::from_millis(20))
        .shutdown_timeout(bound)
        .install()
        .unwrap();
    let start = Instant::now();
    workload(&telemetry);
    std::thread::sleep(Duration::from_millis(300)); // exports are now stuck on the receiver
    workload(&telemetry);
    let workload_time = start.elapsed();
    let start = Instant::now();
    let result = telemetry.shutdown();
    let shutdown_time = start.elapsed();
    assert!(
        workload_time < Duration::from_secs(4),
        "workload blocked: {workload_time:?}"
    );
    assert!(
        shutdown_time < bound + Duration::from_secs(1),
        "shutdown took {shutdown_time:?}"
    );
    assert!(
        matches!(result, Err(genscope::ShutdownError::Timeout(_))),
        "{result:?}"
    );
}

#[test]
fn grpc_receiver_hangs_does_not_block() {
    receiver_hangs(Protocol::Grpc);
}

#[test]
fn http_receiver_hangs_does_not_block() {
    receiver_hangs(Protocol::HttpProtobuf);
}

#[test]
fn full_queue_drops_are_counted_exactly() {
    let receiver = Receiver::grpc(Mode::Hang);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .timeout(Duration::from_secs(2))
        .span_max_queue_size(16)
        .span_max_export_batch_size(4)
        .span_schedule_delay(Duration::from_millis(10))
        .shutdown_timeout(Duration::from_secs(2))
        .install()
        .unwrap();
    const N: u64 = 1_000;
    for i in 0..N {
        tracing::info_span!("burst", i).in_scope(|| {});
    }
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_ended, N);
    assert!(
        loss.spans_dropped_queue_full > 0,
        "a hung receiver must fill a 16-span queue"
    );
    assert_eq!(
        loss.spans_queued + loss.spans_exported + loss.spans_dropped_queue_full,
        N
    );
    let _ = telemetry.shutdown();
    // The final collection (handed to the analyzer before its export hangs) carries the same count
    // in the SDK self-observability metric.
    let dropped = telemetry.analyzer().sum(
        "otel.sdk.processor.span.processed",
        &[("error.type", "queue_full")],
        Window::all(),
    );
    assert_eq!(dropped, Some(loss.spans_dropped_queue_full as f64));
}
