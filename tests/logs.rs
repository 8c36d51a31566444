//! The logs signal: `tracing` events become OTLP log records carrying their span's trace and span
//! id, at a real OTLP receiver (gRPC and HTTP) and in the file export, through a bounded, counted
//! queue that a hung collector cannot turn into a blocked caller or an uncounted loss.

mod common;

use std::time::{Duration, Instant};

use common::{Mode, Receiver};
use genscope::analyzer::Window;
use genscope::config::{ExporterKind, Protocol};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use tracing_subscriber::layer::SubscriberExt;

mod engine {
    /// A request span with events inside; returns the span's (trace id, span id) in hex.
    #[tracing::instrument(name = "generate")]
    pub fn generate(request: u32) -> (String, String) {
        use opentelemetry::trace::TraceContextExt as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        tracing::info!(tokens = 12_i64, "prefill done");
        tracing::warn!(reason = "kv cache full", "request preempted");
        tracing::debug!("not exported at the default filter");
        let cx = tracing::Span::current().context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn body(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn logs_reach_the_receiver(protocol: Protocol) {
    let receiver = match protocol {
        Protocol::Grpc => Receiver::grpc(Mode::Normal),
        _ => Receiver::http(Mode::Normal),
    };
    let telemetry = common::builder(receiver.url(), protocol)
        .service_name("logs-test")
        .log_schedule_delay(Duration::from_millis(20))
        .build()
        .expect("genscope");
    assert!(telemetry.logger_provider().is_some(), "logs follow traces");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let ids = tracing::subscriber::with_default(subscriber, || {
        let ids: Vec<_> = (0..3).map(engine::generate).collect();
        tracing::error!(target: "engine::scheduler", "outside any span");
        ids
    });
    telemetry.force_flush().expect("flush");
    assert!(receiver.wait_for(Duration::from_secs(5), |r| r.log_records().len() >= 7));
    let records = receiver.log_records();
    assert_eq!(
        records.len(),
        7,
        "3 x (info, warn) + 1 error; debug filtered out"
    );
    let spans = receiver.spans();
    for (trace_id, span_id) in &ids {
        let mine: Vec<_> = records
            .iter()
            .filter(|r| hex(&r.trace_id) == *trace_id)
            .collect();
        assert_eq!(mine.len(), 2, "two records in trace {trace_id}");
        for r in &mine {
            assert_eq!(
                hex(&r.span_id),
                *span_id,
                "the span the event was emitted in"
            );
        }
        // The span exists at the receiver with the same ids.
        assert!(
            spans
                .iter()
                .any(|s| hex(&s.trace_id) == *trace_id && hex(&s.span_id) == *span_id),
            "span {span_id} of trace {trace_id} at the receiver"
        );
        let warn = mine.iter().find(|r| r.severity_text == "WARN").unwrap();
        assert_eq!(body(warn), "request preempted");
        assert_eq!(warn.severity_number, 13, "WARN");
        assert_eq!(
            common::attr_str(&warn.attributes, "reason").as_deref(),
            Some("kv cache full")
        );
        let info = mine.iter().find(|r| r.severity_text == "INFO").unwrap();
        assert!(
            matches!(
                common::attr(&info.attributes, "tokens"),
                Some(Value::IntValue(12))
            ),
            "{:?}",
            info.attributes
        );
    }
    let outside = records.iter().find(|r| r.severity_text == "ERROR").unwrap();
    assert!(outside.trace_id.iter().all(|b| *b == 0) || outside.trace_id.is_empty());
    // The resource is the pipeline's.
    let r = receiver.received.lock().unwrap();
    let resource = r.logs[0].resource_logs[0].resource.as_ref().unwrap();
    assert_eq!(
        common::attr_str(&resource.attributes, "service.name").as_deref(),
        Some("logs-test")
    );
    let scope = r.logs[0].resource_logs[0].scope_logs[0]
        .scope
        .as_ref()
        .unwrap();
    assert!(
        scope.name.contains("engine"),
        "the target is the scope: {}",
        scope.name
    );
    drop(r);
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.logs_emitted, 7);
    assert_eq!(loss.logs_exported, 7);
    assert_eq!(loss.logs_dropped(), 0);
    assert_eq!(loss.log_deliveries.len(), 1);
    assert_eq!(loss.log_deliveries[0].delivered, 7);
    telemetry.shutdown().expect("shutdown");
}

#[test]
fn logs_reach_a_grpc_receiver_with_their_span_ids() {
    logs_reach_the_receiver(Protocol::Grpc);
}

#[test]
fn logs_reach_an_http_receiver_with_their_span_ids() {
    logs_reach_the_receiver(Protocol::HttpProtobuf);
}

#[test]
fn the_logs_filter_and_exporter_choice_are_honoured() {
    let receiver = Receiver::http(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::HttpProtobuf)
        .logs_filter("warn,logs::engine=debug")
        .build()
        .expect("genscope");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        engine::generate(1);
        tracing::info!("below warn elsewhere");
    });
    telemetry.force_flush().expect("flush");
    let levels: Vec<String> = receiver
        .log_records()
        .iter()
        .map(|r| r.severity_text.clone())
        .collect();
    assert_eq!(levels.len(), 3, "{levels:?}");
    assert!(levels.contains(&"DEBUG".to_string()), "{levels:?}");
    telemetry.shutdown().expect("shutdown");

    // OTEL_LOGS_EXPORTER=none: traces still go out, no log pipeline exists.
    let receiver = Receiver::http(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::HttpProtobuf)
        .logs_exporters([] as [ExporterKind; 0])
        .build()
        .expect("genscope");
    assert!(telemetry.logger_provider().is_none());
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || engine::generate(2));
    telemetry.force_flush().expect("flush");
    assert!(receiver.log_records().is_empty());
    assert!(
        !receiver.spans().is_empty(),
        "{:?}",
        telemetry.telemetry_loss()
    );
    assert_eq!(telemetry.telemetry_loss().logs_emitted, 0);
}

#[test]
fn a_hung_collector_drops_logs_counted_and_never_blocks() {
    let receiver = Receiver::grpc(Mode::Hang);
    let bound = Duration::from_secs(2);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .timeout(Duration::from_secs(30))
        .log_max_queue_size(16)
        .log_schedule_delay(Duration::from_millis(10))
        .shutdown_timeout(bound)
        .build()
        .expect("genscope");
    const N: u64 = 1_000;
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let start = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..N {
            tracing::info!(i, "burst");
        }
    });
    let emit_time = start.elapsed();
    assert!(
        emit_time < Duration::from_secs(5),
        "emitting blocked: {emit_time:?}"
    );
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.logs_emitted, N);
    assert!(
        loss.logs_dropped_queue_full > 0,
        "a hung receiver fills a 16-record queue"
    );
    assert_eq!(
        loss.logs_queued + loss.logs_exported + loss.logs_dropped_queue_full,
        N
    );
    let start = Instant::now();
    let result = telemetry.shutdown();
    assert!(
        start.elapsed() < bound + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(result.is_err(), "a hung collector is reported: {result:?}");
    // The self-observability metric carries the same count (the last collection reached the
    // analyzer before its export hung).
    let dropped = telemetry.analyzer().sum(
        "otel.sdk.processor.log.processed",
        &[("error.type", "queue_full")],
        Window::all(),
    );
    let after = telemetry.telemetry_loss();
    assert!(
        dropped.is_some_and(|d| d >= loss.logs_dropped_queue_full as f64
            && d <= after.logs_dropped_queue_full as f64),
        "{dropped:?} vs {} .. {}",
        loss.logs_dropped_queue_full,
        after.logs_dropped_queue_full
    );
}

#[test]
fn logs_go_to_the_file_export_and_the_report_reads_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.jsonl");
    let telemetry = common::offline_builder()
        .file_export(&path)
        .build()
        .expect("genscope");
    assert!(
        telemetry.logger_provider().is_some(),
        "a file export takes logs too"
    );
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || engine::generate(7));
    telemetry.shutdown().expect("shutdown");
    let text = std::fs::read_to_string(&path).unwrap();
    let logs: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("resourceLogs").is_some())
        .collect();
    assert!(!logs.is_empty(), "{text}");
    let records: Vec<&serde_json::Value> = logs
        .iter()
        .flat_map(|v| v["resourceLogs"].as_array().unwrap())
        .flat_map(|rl| rl["scopeLogs"].as_array().unwrap())
        .flat_map(|sl| sl["logRecords"].as_array().unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for r in records {
        assert_eq!(r["traceId"], trace_id.as_str());
        assert_eq!(r["spanId"], span_id.as_str());
    }
    let loaded = genscope::analyzer::otlp_file::load(&[&path]).expect("load");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert!(loaded.log_batches >= 1);
    assert!(loaded.span_batches >= 1);
}

/// The logs filter never narrows the traces filter: debug spans asked for by the traces filter
/// are exported whatever level the logs filter has (and the other way round).
#[test]
fn the_logs_filter_does_not_silence_debug_spans() {
    for (traces, logs) in [("debug", "info"), ("debug", "debug"), ("info", "debug")] {
        let receiver = Receiver::grpc(Mode::Normal);
        let telemetry = common::builder(receiver.url(), Protocol::Grpc)
            .traces_filter(traces)
            .logs_filter(logs)
            .build()
            .unwrap();
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug_span!("dbg").in_scope(|| tracing::debug!("inside"));
            tracing::info_span!("inf").in_scope(|| {});
        });
        let loss = telemetry.telemetry_loss();
        let spans = if traces == "debug" { 2 } else { 1 };
        let records = if logs == "debug" { 1 } else { 0 };
        assert_eq!(loss.spans_ended, spans, "traces {traces}, logs {logs}");
        assert_eq!(loss.logs_emitted, records, "traces {traces}, logs {logs}");
    }
}
