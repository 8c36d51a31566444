//! Exact accounting at the export rate the pipeline reaches now (several OTLP exports in flight
//! per destination, BENCHMARKS.md's export ceiling): two threads end spans as fast as they can
//! for 2 s into the real collector (`otlp` receiver -> `debug` exporter), and every span is
//! accounted for: ended = exported + dropped, exported = delivered + failed + unanswered, and
//! the collector's own count of accepted spans equals what genscope counted delivered.

use std::time::{Duration, Instant};

use genscope::Genscope;
use genscope::config::{ExporterKind, Protocol, Sampling};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};

use crate::harness::{Peer, eventually, http_get, peers, require_free};

const OTLP_HTTP: u16 = 44318;
const OTLP_GRPC: u16 = 44317;
const TELEMETRY: u16 = 48888;

/// The collector's `otelcol_receiver_accepted_spans` summed over its series.
fn accepted(text: &str) -> Option<f64> {
    let mut seen = false;
    let sum = text
        .lines()
        .filter(|l| l.starts_with("otelcol_receiver_accepted_spans"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .inspect(|_| seen = true)
        .sum();
    seen.then_some(sum)
}

fn run(protocol: Protocol) {
    let test = format!("exact_accounting_at_the_export_ceiling_{protocol:?}");
    let Some(peers) = peers(&test) else { return };
    for p in [OTLP_HTTP, OTLP_GRPC, TELEMETRY] {
        require_free(p);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{OTLP_GRPC}\n      http:\n        endpoint: 127.0.0.1:{OTLP_HTTP}\n\
             exporters:\n  debug:\n    verbosity: basic\n\
             service:\n  telemetry:\n    logs:\n      level: warn\n    metrics:\n      level: basic\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 127.0.0.1\n                port: {TELEMETRY}\n\
             \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let mut collector = Peer::start(
        "otelcol",
        &peers.join("otelcol"),
        &["--config", &config],
        dir.path(),
    );
    let port = if protocol == Protocol::Grpc {
        OTLP_GRPC
    } else {
        OTLP_HTTP
    };
    collector.wait_port(port);
    collector.wait_port(TELEMETRY);

    let telemetry = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("export-rate")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .protocol(protocol)
        .traces_exporters([ExporterKind::Otlp])
        .metrics_exporters([])
        .logs_exporters([])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .build()
        .expect("build");
    let provider = telemetry.tracer_provider().expect("provider").clone();
    let start = Instant::now();
    let ended: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let provider = provider.clone();
                s.spawn(move || {
                    let tracer = provider.tracer("export-rate");
                    let mut n = 0u64;
                    while start.elapsed() < Duration::from_secs(2) {
                        let mut span = tracer.start("chat genscope-sim");
                        span.set_attributes([
                            KeyValue::new("gen_ai.operation.name", "chat"),
                            KeyValue::new("gen_ai.request.model", "genscope-sim"),
                            KeyValue::new("thread", t as i64),
                        ]);
                        span.end();
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let rate = ended as f64 / start.elapsed().as_secs_f64();
    telemetry.shutdown().expect("shutdown");
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_ended, ended, "{loss:?}");
    assert_eq!(loss.spans_queued, 0, "{loss:?}");
    assert_eq!(
        loss.spans_exported + loss.spans_dropped(),
        loss.spans_ended,
        "{loss:?}"
    );
    let sink = &loss.span_deliveries[0];
    assert_eq!(sink.in_flight, 0, "{loss:?}");
    assert_eq!(
        sink.delivered + sink.failed + sink.unanswered,
        loss.spans_exported,
        "{loss:?}"
    );
    assert_eq!(
        sink.failed + sink.unanswered,
        0,
        "a healthy collector: {loss:?}"
    );
    let url = format!("http://127.0.0.1:{TELEMETRY}/metrics");
    let got = eventually("the collector counts what genscope delivered", 30, || {
        let (_, text) = http_get(&url)?;
        match accepted(&text) {
            Some(v) if v as u64 == sink.delivered => Ok(v as u64),
            other => Err(format!(
                "collector accepted {other:?}, genscope delivered {}",
                sink.delivered
            )),
        }
    });
    println!(
        "{protocol:?}: {ended} spans ended at {rate:.0}/s (2 threads); exported {} + dropped {} \
         (queue full {}); delivered {} = collector accepted {got}",
        loss.spans_exported,
        loss.spans_dropped(),
        loss.spans_dropped_queue_full,
        sink.delivered
    );
    assert!(sink.delivered > 0);
}

#[test]
fn exact_accounting_at_the_export_ceiling_over_http() {
    run(Protocol::HttpProtobuf);
}

#[test]
fn exact_accounting_at_the_export_ceiling_over_grpc() {
    run(Protocol::Grpc);
}
