//! A latency finding cites the slowest requests' traces: `evidence.trace_ids` holds the trace ids
//! of the slowest request spans of the window, and those traces exist at the OTLP receiver.

mod common;

use std::time::Duration;

use common::{Mode, Receiver};
use genscope::config::{Protocol, Sampling};
use opentelemetry::KeyValue;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tail_latency_cites_the_traces_of_the_slowest_requests() {
    let rx = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(rx.url(), Protocol::Grpc)
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .build()
        .expect("genscope");
    let generation = telemetry.metrics().generation().expect("generation");
    let attrs = [KeyValue::new("gen_ai.request.model", "m")];
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let mut slow_traces = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        for i in 0..60 {
            let slow = i % 12 == 0; // 5 of 60
            let span = tracing::info_span!("chat m", gen_ai.request.model = "m");
            span.in_scope(|| {
                if slow {
                    std::thread::sleep(Duration::from_millis(30));
                }
            });
            if slow {
                let id = span.context().span().span_context().trace_id().to_string();
                slow_traces.push(id);
            }
            drop(span);
            let d = if slow { 5.0 } else { 0.1 };
            generation.record_generation(Duration::from_secs_f64(d), None, &attrs);
        }
        // A span that is no request: never cited however slow.
        tracing::info_span!("housekeeping")
            .in_scope(|| std::thread::sleep(Duration::from_millis(60)));
    });
    telemetry.force_flush().expect("flush");
    let report = telemetry.analyzer().report(Duration::from_secs(900));
    let tail = report
        .findings
        .iter()
        .find(|f| f.id == "tail-latency")
        .unwrap_or_else(|| panic!("tail-latency: {:?}", report.findings));
    let mut cited = tail.evidence.trace_ids.clone();
    cited.sort();
    slow_traces.sort();
    assert_eq!(
        cited, slow_traces,
        "the five slowest requests, nothing else"
    );
    for id in &cited {
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
    }
    // In the JSON report too, and at the receiver.
    let json = serde_json::to_value(&report).expect("json");
    let ids = &json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "tail-latency")
        .unwrap()["evidence"]["trace_ids"];
    assert_eq!(ids.as_array().map(Vec::len), Some(5));
    telemetry.shutdown().expect("shutdown");
    let received: Vec<String> = rx
        .spans()
        .iter()
        .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    for id in &cited {
        assert!(received.contains(id), "{id} not at the receiver");
    }
    // Findings that are not about latency cite nothing.
    assert!(
        report
            .findings
            .iter()
            .filter(|f| f.id != "tail-latency" && f.id != "queue-dominated-latency")
            .all(|f| f.evidence.trace_ids.is_empty())
    );
}
