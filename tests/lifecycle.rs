//! Lifecycle and configuration: shutdown from every runtime shape, `OTEL_SDK_DISABLED`, exporter
//! selectors, the JSON-lines file, the analyzer under both temporalities, and bad configuration.
//! Tests that set environment variables or install the global subscriber rely on one process per
//! test (`cargo nextest run`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Mode, Receiver};
use genscope::analyzer::Window;
use genscope::config::{Protocol, TemporalityPreference};
use genscope::instruments::catalog::genai::{GenAiAttributes, Operation, ServerTiming};
use genscope::instruments::catalog::http::HttpRequest;
use genscope::instruments::catalog::serving::EngineState;
use genscope::instruments::catalog::stream_timing::{Chunk, StreamTiming};
use genscope::{Error, Genscope};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fn set_env(pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        // SAFETY: nextest runs each test in its own process, before any other thread reads the env.
        unsafe { std::env::set_var(k, v) };
    }
}

#[tracing::instrument]
async fn traced_async(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n * 2
}

fn grpc_telemetry(receiver: &Receiver) -> Genscope {
    common::builder(receiver.url(), Protocol::Grpc)
        .install()
        .unwrap()
}

#[test]
fn shutdown_from_plain_main() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = grpc_telemetry(&receiver);
    tracing::info_span!("plain").in_scope(|| {});
    telemetry.shutdown().unwrap();
    assert_eq!(receiver.spans().len(), 1);
}

#[test]
fn shutdown_inside_multi_thread_runtime() {
    let receiver = Receiver::grpc(Mode::Normal);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let telemetry = grpc_telemetry(&receiver);
        assert_eq!(traced_async(21).await, 42);
        let start = Instant::now();
        telemetry.shutdown().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
    });
    assert_eq!(receiver.spans().len(), 1);
}

#[test]
fn shutdown_inside_single_worker_runtime() {
    let receiver = Receiver::grpc(Mode::Normal);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let telemetry = grpc_telemetry(&receiver);
        traced_async(1).await;
        telemetry.shutdown().unwrap();
    });
    assert_eq!(receiver.spans().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_inside_current_thread_runtime() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = grpc_telemetry(&receiver);
    traced_async(3).await;
    telemetry.shutdown().unwrap();
    assert_eq!(receiver.spans().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn drop_inside_async_context_flushes_without_panic() {
    let receiver = Receiver::http(Mode::Normal);
    let telemetry = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .endpoint(receiver.url())
        .install()
        .unwrap();
    traced_async(5).await;
    drop(telemetry); // shutdown on drop, from inside the runtime
    assert_eq!(receiver.spans().len(), 1);
}

#[test]
fn sdk_disabled_is_a_noop() {
    let receiver = Receiver::grpc(Mode::Normal);
    set_env(&[
        ("OTEL_SDK_DISABLED", "true"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    assert!(!telemetry.is_enabled());
    tracing::info_span!("ignored").in_scope(|| {});
    telemetry
        .meter("app")
        .u64_counter("ignored")
        .build()
        .add(1, &[]);
    // Every catalog surface is a no-op too: GenAI, serving state, HTTP server, stream timing.
    let metrics = telemetry.metrics();
    assert!(metrics.is_disabled());
    let genai = metrics.genai().unwrap();
    assert!(genai.is_disabled());
    let attrs = GenAiAttributes::new(Operation::Chat, "genscope").unwrap();
    genai.record_tokens(&attrs, Some(12), Some(8));
    genai.record_prompt_length(&attrs, None, "hello");
    genai.record_client_operation(&attrs, Duration::from_millis(5), Some("timeout"));
    genai.record_server_request(
        &attrs,
        ServerTiming {
            duration: Duration::from_millis(9),
            time_to_first_token: Some(Duration::from_millis(2)),
            output_tokens: Some(8),
        },
        None,
    );
    let serving = metrics.serving("m").unwrap();
    serving.record_state(EngineState {
        kv_blocks_used: 1,
        kv_blocks_total: 2,
        running: 1,
        waiting: 0,
    });
    serving.record_step_tokens(4);
    let http = metrics.http_server().unwrap();
    assert!(http.is_disabled());
    http.record_request(&HttpRequest {
        method: "POST",
        route: Some("/v1/chat/completions"),
        status: Some(200),
        scheme: "http",
        duration: Duration::from_millis(3),
        error_type: None,
        protocol_version: Some("1.1"),
    });
    let chunks: Vec<u64> = StreamTiming::start(genai.clone(), attrs)
        .serving(serving)
        .wrap_iter([1u64, 1, 1].into_iter(), |n| Chunk {
            tokens: *n,
            finish_reason: None,
        })
        .collect();
    assert_eq!(chunks, [1, 1, 1], "the stream passes through untouched");
    telemetry.force_flush().unwrap();
    assert!(
        telemetry.analyzer().metrics().is_empty(),
        "no catalog recorded anything"
    );
    telemetry.shutdown().unwrap();
    assert!(receiver.spans().is_empty());
    assert!(receiver.received.lock().unwrap().metrics.is_empty());
    assert!(telemetry.analyzer().metrics().is_empty());
    assert_eq!(
        telemetry.analyzer().span_stats(None, Window::all()).count,
        0
    );
}

/// `none` exports nothing of that signal, but the analyzer still sees it.
#[test]
fn exporter_none_keeps_the_analyzer() {
    let receiver = Receiver::grpc(Mode::Normal);
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_TRACES_EXPORTER", "none"),
        ("OTEL_METRICS_EXPORTER", "otlp"),
    ]);
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    assert!(telemetry.settings().traces_exporters.is_empty());
    tracing::info_span!("local_only").in_scope(|| {});
    telemetry
        .meter("app")
        .u64_counter("exported")
        .build()
        .add(7, &[]);
    telemetry.shutdown().unwrap();
    assert!(receiver.spans().is_empty(), "traces exporter none");
    assert!(
        receiver.latest_metric("exported").is_some(),
        "metrics exporter otlp"
    );
    assert_eq!(
        telemetry
            .analyzer()
            .span_stats(Some("local_only"), Window::all())
            .count,
        1
    );
}

#[test]
fn metrics_exporter_none_and_traces_otlp() {
    let receiver = Receiver::http(Mode::Normal);
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()),
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ]);
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    tracing::info_span!("shipped").in_scope(|| {});
    telemetry
        .meter("app")
        .u64_counter("kept_local")
        .build()
        .add(7, &[]);
    telemetry.shutdown().unwrap();
    assert_eq!(receiver.spans().len(), 1);
    assert!(receiver.received.lock().unwrap().metrics.is_empty());
    assert_eq!(
        telemetry.analyzer().sum("kept_local", &[], Window::all()),
        Some(7.0)
    );
}

/// Child half of `console_exporter_writes_otlp_json_lines`: runs with the console exporters on.
#[test]
#[ignore = "run by console_exporter_writes_otlp_json_lines in a child process"]
fn console_child() {
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    tracing::info_span!("to_console").in_scope(|| {});
    telemetry
        .meter("app")
        .u64_counter("console_counter")
        .build()
        .add(3, &[]);
    telemetry.shutdown().unwrap();
}

#[test]
fn console_exporter_writes_otlp_json_lines() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "console_child",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("OTEL_TRACES_EXPORTER", "console")
        .env("OTEL_METRICS_EXPORTER", "console")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints "test console_child ... " in front of the first line: parse from the JSON.
    let stdout: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find("{\"resource").map(|i| format!("{}\n", &l[i..])))
        .collect();
    let traces: Vec<ExportTraceServiceRequest> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"resourceSpans\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let metrics: Vec<ExportMetricsServiceRequest> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"resourceMetrics\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let span_names: Vec<&str> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(span_names, vec!["to_console"]);
    assert!(
        metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .any(|m| m.name == "console_counter")
    );
}

#[test]
fn file_export_writes_otlp_json_lines() {
    let dir = std::env::temp_dir().join(format!("genscope-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("telemetry.jsonl");
    set_env(&[("GENSCOPE_FILE_EXPORT", path.to_str().unwrap())]);
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    for i in 0..10 {
        tracing::info_span!("filed", i).in_scope(|| {});
    }
    telemetry
        .meter("app")
        .f64_histogram("filed_latency")
        .with_unit("s")
        .build()
        .record(0.25, &[]);
    telemetry.shutdown().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut spans = 0;
    let mut saw_histogram = false;
    for line in text.lines() {
        if line.starts_with("{\"resourceSpans\"") {
            let req: ExportTraceServiceRequest = serde_json::from_str(line).unwrap();
            spans += req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>();
        } else {
            let req: ExportMetricsServiceRequest = serde_json::from_str(line).unwrap();
            saw_histogram |= req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .any(|m| m.name == "filed_latency" && m.unit == "s");
        }
    }
    assert_eq!(spans, 10);
    assert!(saw_histogram);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_export_to_unwritable_path_is_a_clear_error() {
    let err = Genscope::builder()
        .ignore_environment()
        .file_export("/nonexistent-dir/x/telemetry.jsonl")
        .build()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("GENSCOPE_FILE_EXPORT") && msg.contains("/nonexistent-dir/x/telemetry.jsonl"),
        "{msg}"
    );
}

/// The analyzer's windowed sums equal what was recorded, whatever the wire temporality.
fn analyzer_sums(temporality: TemporalityPreference) {
    let telemetry = Genscope::builder()
        .ignore_environment()
        .temporality(temporality)
        .metric_export_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let meter = telemetry.meter("app");
    let counter = meter.u64_counter("jobs").build();
    let queue = meter.i64_up_down_counter("queue").build();
    let latency = meter
        .f64_histogram("latency")
        .with_unit("s")
        .with_boundaries(vec![0.1, 1.0])
        .build();
    let a = [KeyValue::new("model", "a")];
    let b = [KeyValue::new("model", "b")];
    counter.add(5, &a);
    counter.add(2, &b);
    queue.add(10, &[]);
    latency.record(0.05, &a);
    telemetry.force_flush().unwrap();
    counter.add(3, &a);
    queue.add(-4, &[]);
    latency.record(0.5, &a);
    latency.record(0.7, &a);
    telemetry.force_flush().unwrap();
    let store = telemetry.analyzer();
    let all = Window::all();
    assert_eq!(
        store.sum("jobs", &[("model", "a")], all),
        Some(8.0),
        "{temporality:?}"
    );
    assert_eq!(store.sum("jobs", &[], all), Some(10.0));
    let q = store.gauge("queue", &[], all).unwrap();
    assert_eq!((q.last, q.max, q.min), (6.0, 10.0, 6.0), "{temporality:?}");
    let h = store.histogram("latency", &[("model", "a")], all).unwrap();
    assert_eq!(h.count, 3);
    assert_eq!(h.counts, vec![1, 2, 0]);
    assert!((h.sum - 1.25).abs() < 1e-9);
    let median = h.quantile(0.5).unwrap();
    assert!(
        (0.1..=1.0).contains(&median),
        "the median lies in the (0.1, 1] bucket: {median}"
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn analyzer_sums_with_cumulative_temporality() {
    analyzer_sums(TemporalityPreference::Cumulative);
}

#[test]
fn analyzer_sums_with_delta_temporality() {
    analyzer_sums(TemporalityPreference::Delta);
}

#[test]
fn analyzer_folds_series_past_the_limit_into_overflow() {
    let telemetry = Genscope::builder()
        .ignore_environment()
        .analyzer_max_series_per_metric(3)
        .metric_export_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let counter = telemetry.meter("app").u64_counter("by_user").build();
    for user in 0..10 {
        counter.add(1, &[KeyValue::new("user", user.to_string())]);
    }
    telemetry.force_flush().unwrap();
    let store = telemetry.analyzer();
    assert_eq!(store.series("by_user").len(), 4, "3 series + overflow");
    assert_eq!(
        store.sum("by_user", &[], Window::all()),
        Some(10.0),
        "nothing lost"
    );
    assert_eq!(
        store.sum(
            "by_user",
            &[("otel.metric.overflow", "true")],
            Window::all()
        ),
        Some(7.0)
    );
}

#[test]
fn invalid_environment_names_the_variable() {
    set_env(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-3")]);
    let err = Genscope::builder().build().unwrap_err();
    let Error::Config(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.setting(), Some("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"));
}

#[test]
fn config_file_errors_carry_path_and_line() {
    let path = std::env::temp_dir().join(format!("genscope-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[service]\nname = \"x\"\n\n[metrics]\nexport_interval = \"often\"\n",
    )
    .unwrap();
    set_env(&[("GENSCOPE_CONFIG", path.to_str().unwrap())]);
    let msg = Genscope::builder().build().unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{}:5:", path.display())), "{msg}");
    std::fs::remove_file(&path).unwrap();

    set_env(&[("GENSCOPE_CONFIG", "/no/such/genscope.toml")]);
    let msg = Genscope::builder().build().unwrap_err().to_string();
    assert!(
        msg.contains("GENSCOPE_CONFIG") && msg.contains("/no/such/genscope.toml"),
        "{msg}"
    );
}

#[test]
fn precedence_builder_over_env_over_file() {
    let path = std::env::temp_dir().join(format!("genscope-prec-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[service]\nname = \"from-file\"\nversion = \"1.0\"\n[resource]\nteam = \"file\"\nregion = \"eu\"\n[metrics]\nexport_interval = \"7s\"\n",
    )
    .unwrap();
    set_env(&[
        ("GENSCOPE_CONFIG", path.to_str().unwrap()),
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=env"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
    ]);
    let s = Genscope::builder()
        .service_name("from-builder")
        .settings()
        .unwrap();
    assert_eq!(s.service_name.as_deref(), Some("from-builder"));
    assert_eq!(
        s.service_version.as_deref(),
        Some("1.0"),
        "file fills what others leave"
    );
    assert_eq!(
        s.metric_export_interval,
        Duration::from_secs(5),
        "env beats file"
    );
    let mut attrs = s.resource_attributes.clone();
    attrs.sort();
    assert_eq!(
        attrs,
        vec![
            ("region".into(), "eu".into()),
            ("team".into(), "env".into())
        ]
    );
    let s = Genscope::builder().settings().unwrap();
    assert_eq!(s.service_name.as_deref(), Some("from-env"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn embedded_default_sends_nothing_and_never_fails() {
    let telemetry = Genscope::builder().ignore_environment().build().unwrap();
    assert!(telemetry.settings().traces_exporters.is_empty());
    assert!(telemetry.settings().metrics_exporters.is_empty());
    assert_eq!(
        telemetry.settings().metric_export_interval,
        Duration::from_secs(10)
    );
    telemetry
        .meter("app")
        .u64_counter("local")
        .build()
        .add(1, &[]);
    telemetry.force_flush().unwrap();
    assert_eq!(
        telemetry.analyzer().sum("local", &[], Window::all()),
        Some(1.0)
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn install_twice_reports_the_existing_subscriber() {
    let first = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .install()
        .unwrap();
    let err = Genscope::builder()
        .ignore_environment()
        .install()
        .unwrap_err();
    assert!(matches!(err, Error::SubscriberAlreadySet));
    first.shutdown().unwrap();
}

/// The exporters' own crates (hyper, h2, tonic, reqwest, tower, the SDK) never become exported
/// spans, whatever the traces filter says: exporting must not produce telemetry to export.
#[test]
fn exporter_crates_are_never_exported() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .traces_filter("trace")
        .install()
        .unwrap();
    tracing::info_span!(target: "hyper::client::conn", "connect").in_scope(|| {});
    tracing::info_span!(target: "h2::proto", "stream").in_scope(|| {});
    tracing::info_span!(target: "tonic::transport", "call").in_scope(|| {});
    tracing::info_span!(target: "reqwest::connect", "dial").in_scope(|| {});
    tracing::trace_span!(target: "my_app::worker", "kept").in_scope(|| {});
    telemetry.shutdown().unwrap();
    let names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["kept".to_string()]);
}

/// The resource attribute `key` as exported (the analyzer reads the resource the exporters get).
fn exported_resource(telemetry: &Genscope, key: &str) -> Option<String> {
    telemetry
        .analyzer()
        .resource()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[test]
fn operator_environment_beats_the_applications_defaults() {
    set_env(&[
        ("OTEL_SERVICE_NAME", "operator-name"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod,team=ops",
        ),
    ]);
    let telemetry = Genscope::builder()
        .default_service_name("app-default")
        .default_resource_attribute("deployment.environment.name", "dev")
        .default_resource_attribute("app.flavor", "vanilla")
        .console_logs(false)
        .build()
        .unwrap();
    assert_eq!(
        exported_resource(&telemetry, "service.name").as_deref(),
        Some("operator-name")
    );
    assert_eq!(
        exported_resource(&telemetry, "deployment.environment.name").as_deref(),
        Some("prod")
    );
    assert_eq!(
        exported_resource(&telemetry, "team").as_deref(),
        Some("ops")
    );
    // A default the operator did not set stays.
    assert_eq!(
        exported_resource(&telemetry, "app.flavor").as_deref(),
        Some("vanilla")
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn service_name_in_resource_attributes_beats_the_default_name() {
    set_env(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")]);
    let telemetry = Genscope::builder()
        .default_service_name("app-default")
        .console_logs(false)
        .build()
        .unwrap();
    assert_eq!(
        exported_resource(&telemetry, "service.name").as_deref(),
        Some("from-attributes")
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn builder_values_still_beat_the_environment_and_defaults_apply_without_it() {
    set_env(&[("OTEL_SERVICE_NAME", "operator-name")]);
    let telemetry = Genscope::builder()
        .service_name("forced")
        .console_logs(false)
        .build()
        .unwrap();
    assert_eq!(
        exported_resource(&telemetry, "service.name").as_deref(),
        Some("forced")
    );
    telemetry.shutdown().unwrap();
    let telemetry = Genscope::builder()
        .ignore_environment()
        .default_service_name("app-default")
        .build()
        .unwrap();
    assert_eq!(
        exported_resource(&telemetry, "service.name").as_deref(),
        Some("app-default")
    );
    telemetry.shutdown().unwrap();
}
