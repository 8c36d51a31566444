//! Exemplars into a real Prometheus 3 with `--enable-feature=exemplar-storage`: it scrapes
//! genscope's `/metrics` (OpenMetrics by content negotiation) and `/api/v1/query_exemplars`
//! answers with the trace and span id of the span the measurement was taken in.

use std::time::{Duration, SystemTime};

use genscope::Genscope;
use genscope::config::{ExporterKind, Sampling};
use genscope::instruments::MetricDefinition;
use opentelemetry::trace::TraceContextExt as _;
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;

use crate::harness::{eventually, free_port, get_json, peers, prometheus_config, start_prometheus};

#[test]
fn prometheus_stores_the_exemplars_genscope_serves() {
    let Some(peers) = peers("prometheus_stores_the_exemplars_genscope_serves") else {
        return;
    };
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let telemetry = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("exemplar-test")
        .traces_exporters([] as [ExporterKind; 0])
        .metrics_exporters([] as [ExporterKind; 0])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metric_export_interval(Duration::from_millis(300))
        .prometheus_addr(addr.parse().unwrap())
        .build()
        .expect("genscope");
    telemetry
        .metrics()
        .create_metric(
            MetricDefinition::timer("exemplar.step.duration").with_buckets(vec![0.1, 0.5, 1.0]),
        )
        .expect("define");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("slow_step");
        let _entered = span.enter();
        telemetry
            .metrics()
            .record_histogram("exemplar.step.duration", 0.75, &[])
            .unwrap();
        let sc = span.context().span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    telemetry.force_flush().expect("flush");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = prometheus_config(dir.path(), &[&addr]);
    let (_prom, base) = start_prometheus(
        &peers,
        dir.path(),
        &config,
        &["--enable-feature=exemplar-storage"],
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exemplar = eventually("Prometheus returns the exemplar", 40, || {
        let url = format!(
            "{base}/api/v1/query_exemplars?query=exemplar_step_duration_seconds_bucket&start={}&end={}",
            now - 600,
            now + 600
        );
        let doc = get_json(&url);
        let found: Vec<Value> = doc["data"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
            .collect();
        found
            .into_iter()
            .next()
            .ok_or_else(|| format!("no exemplar yet: {doc}"))
    });
    assert_eq!(
        exemplar["labels"]["trace_id"],
        trace_id.as_str(),
        "{exemplar}"
    );
    assert_eq!(
        exemplar["labels"]["span_id"],
        span_id.as_str(),
        "{exemplar}"
    );
    assert_eq!(exemplar["value"], "0.75", "{exemplar}");
    println!("Prometheus 3 stored the exemplar of trace {trace_id}: {exemplar}");
    telemetry.shutdown().expect("shutdown");
}
