//! No collector: genscope's OTLP exporter straight into Prometheus 3's OTLP receiver,
//! VictoriaMetrics' OpenTelemetry endpoint and Jaeger's OTLP port. Known values go in; PromQL
//! and Jaeger's API must give exactly them back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use genscope::Genscope;
use genscope::config::{ExporterKind, Protocol, Sampling};
use genscope::instruments::MetricDefinition;
use opentelemetry::KeyValue;

use crate::harness::{
    Peer, eventually, free_port, peers, prometheus_config, promql, start_prometheus,
};
use crate::otlp::spans_in_file;

/// A genscope that sends only metrics, over OTLP/HTTP protobuf, to `url`.
fn metrics_only(url: &str, instance: &str) -> Genscope {
    Genscope::builder()
        .ignore_environment()
        .service_name("direct-test")
        .resource_attribute("service.instance.id", instance)
        .resource_attribute("deployment.environment.name", "peer-test")
        .metrics_endpoint(url)
        .protocol(Protocol::HttpProtobuf)
        .traces_exporters([])
        .metrics_exporters([ExporterKind::Otlp])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metric_export_interval(Duration::from_millis(500))
        .build()
        .expect("genscope")
}

/// Records the known values: a counter in two series, a histogram with explicit buckets, a gauge.
fn record_known_values(telemetry: &Genscope) {
    let m = telemetry.metrics();
    let requests = m
        .create_metric(MetricDefinition::counter("direct.requests").with_unit("{request}"))
        .expect("counter");
    requests
        .record(3.0, &[KeyValue::new("outcome", "ok")])
        .unwrap();
    requests
        .record(4.0, &[KeyValue::new("outcome", "ok")])
        .unwrap();
    requests
        .record(2.0, &[KeyValue::new("outcome", "error")])
        .unwrap();
    let latency = m
        .create_metric(
            MetricDefinition::histogram("direct.latency")
                .with_unit("s")
                .with_buckets([0.1, 0.5, 1.0]),
        )
        .expect("histogram");
    for v in [0.05, 0.2, 0.3, 0.7, 2.5] {
        latency.record(v, &[]).unwrap();
    }
    let queue = m
        .create_metric(MetricDefinition::gauge("direct.queue.size").with_unit("{request}"))
        .expect("gauge");
    queue.record(7.0, &[]).unwrap();
}

fn values(base: &str, expr: &str, label: &str) -> BTreeMap<String, f64> {
    promql(base, expr)
        .into_iter()
        .map(|s| (s.labels.get(label).cloned().unwrap_or_default(), s.value))
        .collect()
}

/// The same checks for any Prometheus-compatible query API fed by [`record_known_values`].
/// `resource` lists the labels the resource must become on every series.
fn assert_known_values(base: &str, backend: &str, resource: &[(&str, &str)]) {
    eventually(
        &format!("{backend} holds direct_requests_total"),
        60,
        || {
            let got = values(base, "direct_requests_total", "outcome");
            let want = BTreeMap::from([("ok".to_string(), 7.0), ("error".to_string(), 2.0)]);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
    let buckets = values(base, "direct_latency_seconds_bucket", "le");
    let buckets: BTreeMap<String, f64> = buckets
        .into_iter()
        .map(|(le, v)| (le.parse::<f64>().map_or(le, |f| format!("{f}")), v))
        .collect();
    let want = BTreeMap::from([
        ("0.1".to_string(), 1.0),
        ("0.5".to_string(), 3.0),
        ("1".to_string(), 4.0),
        ("inf".to_string(), 5.0),
    ]);
    assert_eq!(buckets, want, "{backend}: histogram buckets");
    assert_eq!(values(base, "direct_latency_seconds_count", "")[""], 5.0);
    let sum = values(base, "direct_latency_seconds_sum", "")[""];
    assert!((sum - 3.75).abs() < 1e-9, "{backend}: sum {sum}");
    assert_eq!(
        values(base, "direct_queue_size", "")[""],
        7.0,
        "{backend}: gauge"
    );
    for row in promql(base, "{__name__=~\"direct_.+\"}") {
        for (k, v) in resource {
            assert_eq!(
                row.labels.get(*k).map(String::as_str),
                Some(*v),
                "{backend}: resource label {k}: {row:?}"
            );
        }
    }
}

#[test]
fn genscope_to_prometheus_otlp_receiver_reads_back_exactly() {
    let Some(peers) = peers("genscope_to_prometheus_otlp_receiver_reads_back_exactly") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = prometheus_config(dir.path(), &[]);
    let (_prom, base) =
        start_prometheus(&peers, dir.path(), &config, &["--web.enable-otlp-receiver"]);
    let telemetry = metrics_only(&format!("{base}/api/v1/otlp/v1/metrics"), "direct-1");
    record_known_values(&telemetry);
    telemetry.shutdown().expect("export to Prometheus");
    // service.name and service.instance.id become job and instance.
    assert_known_values(
        &base,
        "Prometheus",
        &[("job", "direct-test"), ("instance", "direct-1")],
    );
    // The rest of the resource is on target_info, joined by job and instance.
    let info = promql(&base, "target_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0]
            .labels
            .get("deployment_environment_name")
            .map(String::as_str),
        Some("peer-test"),
        "{info:?}"
    );
    assert_eq!(telemetry.telemetry_loss().metric_points_failed(), 0);
}

/// Starts VictoriaMetrics with Prometheus naming for OTLP; returns the peer and its base URL.
pub fn start_victoria_metrics(peers: &Path, dir: &Path) -> (Peer, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        format!("-httpListenAddr={listen}"),
        format!("-storageDataPath={}", dir.join("vm-data").display()),
        "-retentionPeriod=1d".into(),
        // Names as Prometheus 3 stores them (by default VictoriaMetrics keeps the dots).
        "-opentelemetry.usePrometheusNaming".into(),
        // Fresh samples are visible at once (the default hides the last 30 s).
        "-search.latencyOffset=0s".into(),
        "-search.disableCache".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut peer = Peer::start(
        "victoria-metrics",
        &peers.join("victoria-metrics"),
        &args,
        dir,
    );
    let base = format!("http://{listen}");
    peer.wait_ready(&format!("{base}/health"));
    (peer, base)
}

#[test]
fn genscope_to_victoria_metrics_reads_back_exactly() {
    let Some(peers) = peers("genscope_to_victoria_metrics_reads_back_exactly") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_vm, base) = start_victoria_metrics(&peers, dir.path());
    let telemetry = metrics_only(&format!("{base}/opentelemetry/v1/metrics"), "direct-2");
    record_known_values(&telemetry);
    telemetry.shutdown().expect("export to VictoriaMetrics");
    // VictoriaMetrics copies every resource attribute onto the series (no job/instance).
    assert_known_values(
        &base,
        "VictoriaMetrics",
        &[
            ("service_name", "direct-test"),
            ("service_instance_id", "direct-2"),
            ("deployment_environment_name", "peer-test"),
        ],
    );
    assert_eq!(telemetry.telemetry_loss().metric_points_failed(), 0);
}

#[test]
fn genscope_to_jaeger_returns_every_span() {
    let Some(peers) = peers("genscope_to_jaeger_returns_every_span") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_jaeger, base) = crate::collector::start_jaeger(&peers, dir.path());
    let own = dir.path().join("sent.jsonl");
    let telemetry = Genscope::builder()
        .ignore_environment()
        .service_name("direct-traces")
        .resource_attribute("service.instance.id", "direct-3")
        .traces_endpoint("http://127.0.0.1:14318/v1/traces")
        .protocol(Protocol::HttpProtobuf)
        .traces_exporters([ExporterKind::Otlp])
        .metrics_exporters([])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .file_export(&own)
        .build()
        .expect("genscope");
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..30 {
            let request = tracing::info_span!("handle", otel.kind = "server", request = i);
            let _r = request.enter();
            let generate = tracing::info_span!(
                "generate",
                otel.kind = "client",
                gen_ai.request.model = "tiny",
                otel.status_code = tracing::field::Empty
            );
            let _g = generate.enter();
            if i % 5 == 0 {
                generate.record("otel.status_code", "ERROR");
            }
            tracing::info_span!("decode", step = 1).in_scope(|| {});
        }
    });
    telemetry.shutdown().expect("export to Jaeger");
    let sent = spans_in_file(&own);
    assert_eq!(sent.len(), 90, "genscope's own copy of what it sent");
    assert!(sent.iter().any(|s| s.status == 2), "an error span was sent");
    assert!(sent.iter().any(|s| s.kind == 2) && sent.iter().any(|s| s.kind == 3));
    crate::collector::assert_jaeger_has(&base, &sent, 30);
}
