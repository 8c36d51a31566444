//! Explicit operations, end to end over OTLP/HTTP (protobuf) to a real receiver: every kind's
//! span and metrics, failure and drop paths, and a trace sampler that drops most spans while the
//! operation metric still counts every operation.
//! Each test installs a global subscriber, so run them one process per test (`cargo nextest run`).

mod common;

use std::time::Duration;

use common::{Mode, Receiver, attr, attr_str};
use genscope::analyzer::Window;
use genscope::config::{Protocol, SamplerSetting};
use genscope::instruments::catalog::genai::{GenAiAttributes, Operation as GenAiOperation};
use genscope::instruments::catalog::model::HealthStatus;
use genscope::operations::{GenerationTask, OperationKind};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

fn start(sampler: Option<SamplerSetting>) -> (Receiver, genscope::Genscope) {
    let receiver = Receiver::http(Mode::Normal);
    let mut b = common::builder(receiver.url(), Protocol::HttpProtobuf)
        .metric_export_interval(Duration::from_millis(200));
    if let Some(s) = sampler {
        b = b.sampler(s);
    }
    (receiver, b.install().unwrap())
}

fn flush_spans(receiver: &Receiver, telemetry: &genscope::Genscope, n: usize) -> Vec<Span> {
    telemetry.force_flush().unwrap();
    assert!(
        receiver.wait_for(Duration::from_secs(10), |r| r.spans().len() >= n),
        "expected {n} spans, got {}",
        receiver.spans().len()
    );
    receiver.spans()
}

fn span<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {:?}", names(spans)))
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

fn s(span: &Span, key: &str) -> Option<String> {
    attr_str(&span.attributes, key)
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attr(&span.attributes, key)? {
        Value::IntValue(v) => Some(*v),
        other => panic!("{key}: {other:?}"),
    }
}

fn status(span: &Span) -> (i32, String) {
    let st = span.status.clone().unwrap_or_default();
    (st.code, st.message)
}

/// (attributes as text, count) of every point of the latest `genscope.operation.duration`.
fn duration_points(receiver: &Receiver) -> Vec<(Vec<(String, String)>, u64)> {
    let Some(m) = receiver.latest_metric("genscope.operation.duration") else {
        return Vec::new();
    };
    assert_eq!(m.unit, "s");
    let Some(Data::Histogram(h)) = m.data else {
        panic!("genscope.operation.duration is not a histogram")
    };
    h.data_points
        .iter()
        .map(|p| {
            let mut a: Vec<(String, String)> = p
                .attributes
                .iter()
                .map(|kv| (kv.key.clone(), attr_str(&p.attributes, &kv.key).unwrap()))
                .collect();
            a.sort();
            (a, p.count)
        })
        .collect()
}

fn count_where(points: &[(Vec<(String, String)>, u64)], want: &[(&str, &str)]) -> u64 {
    points
        .iter()
        .filter(|(a, _)| {
            want.iter()
                .all(|(k, v)| a.iter().any(|(ak, av)| ak == k && av == v))
        })
        .map(|(_, c)| c)
        .sum()
}

#[test]
fn every_operation_kind_becomes_a_span_and_a_measurement() {
    let (receiver, telemetry) = start(None);
    let ops = telemetry.operations();

    let download = ops.download("sdxl-1.0", "hub");
    download.add_bytes(3_000_000);
    download.add_bytes(1_000_000);
    std::thread::sleep(Duration::from_millis(20));
    download.succeed();

    let health = ops.health_check("sdxl-1.0");
    health.set_health(HealthStatus::Degraded);
    health.succeed();

    ops.fallback_strategy("sdxl-1.0", "sd-1.5", "out_of_memory")
        .succeed();
    ops.analytics_collection("daily_usage").succeed();
    ops.model_operation("load", "llama-3-8b").succeed();

    let image = ops.generation(
        GenerationTask::new("image", "sdxl-1.0")
            .resolution(1024, 768)
            .steps(3),
    );
    for _ in 0..3 {
        image.in_scope(|| tracing::info_span!("denoise_step").in_scope(|| {}));
        image.step_completed();
    }
    image.update(&[opentelemetry::KeyValue::new(
        "genscope.generation.stage",
        "decode",
    )]);
    image.succeed();

    let genai = GenAiAttributes::new(GenAiOperation::Chat, "self-hosted")
        .unwrap()
        .request_model("llama-3-8b");
    let llm = ops.llm_generation(&genai);
    llm.set_tokens(42, 7);
    llm.succeed();

    let custom = OperationKind::custom("cache.warmup").unwrap();
    ops.start(custom, "kv-cache").succeed();

    let spans = flush_spans(&receiver, &telemetry, 9);

    let d = span(&spans, "download sdxl-1.0");
    assert_eq!(s(d, "genscope.operation.type").as_deref(), Some("download"));
    assert_eq!(s(d, "genscope.operation.name").as_deref(), Some("sdxl-1.0"));
    assert_eq!(s(d, "genscope.model.source").as_deref(), Some("hub"));
    assert_eq!(int(d, "genscope.download.bytes"), Some(4_000_000));
    match attr(&d.attributes, "genscope.download.throughput") {
        Some(Value::DoubleValue(t)) => assert!(*t > 0.0 && *t < 4_000_000.0 / 0.02 * 1.01, "{t}"),
        other => panic!("throughput: {other:?}"),
    }
    assert!(
        int(d, "genscope.usage.memory.rss.peak").is_some(),
        "operations are watched"
    );
    assert!(attr(&d.attributes, "genscope.usage.cpu.time").is_some());
    assert_eq!(status(d).0, StatusCode::Unset as i32);

    let h = span(&spans, "health_check sdxl-1.0");
    assert_eq!(
        s(h, "genscope.health_check.status").as_deref(),
        Some("degraded")
    );
    let f = span(&spans, "fallback_strategy sdxl-1.0");
    assert_eq!(s(f, "genscope.fallback.target").as_deref(), Some("sd-1.5"));
    assert_eq!(
        s(f, "genscope.fallback.reason").as_deref(),
        Some("out_of_memory")
    );
    let a = span(&spans, "analytics_collection daily_usage");
    assert_eq!(
        s(a, "genscope.operation.type").as_deref(),
        Some("analytics_collection")
    );
    let m = span(&spans, "model_operation load llama-3-8b");
    assert_eq!(s(m, "genscope.model.operation").as_deref(), Some("load"));

    let g = span(&spans, "generate sdxl-1.0");
    assert_eq!(s(g, "genscope.model.type").as_deref(), Some("image"));
    assert_eq!(
        s(g, "genscope.generation.resolution").as_deref(),
        Some("1024x768")
    );
    assert_eq!(int(g, "genscope.generation.steps"), Some(3));
    assert_eq!(int(g, "genscope.generation.steps.completed"), Some(3));
    assert!(
        g.events
            .iter()
            .any(|e| e.name == "genscope.operation.update")
    );
    let steps: Vec<&Span> = spans.iter().filter(|s| s.name == "denoise_step").collect();
    assert_eq!(steps.len(), 3);
    assert!(
        steps.iter().all(|st| st.parent_span_id == g.span_id),
        "steps nest under the operation"
    );

    // GenAI span conventions: `{gen_ai.operation.name} {gen_ai.request.model}`.
    let l = span(&spans, "chat llama-3-8b");
    assert_eq!(s(l, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(s(l, "gen_ai.provider.name").as_deref(), Some("self-hosted"));
    assert_eq!(s(l, "gen_ai.request.model").as_deref(), Some("llama-3-8b"));
    assert_eq!(int(l, "gen_ai.usage.input_tokens"), Some(42));
    assert_eq!(int(l, "gen_ai.usage.output_tokens"), Some(7));

    let c = span(&spans, "cache.warmup kv-cache");
    assert_eq!(
        s(c, "genscope.operation.type").as_deref(),
        Some("cache.warmup")
    );

    // Metrics: one duration point per operation, by type and outcome, plus the domain metrics.
    assert!(receiver.wait_for(Duration::from_secs(10), |r| {
        count_where(&duration_points(r), &[]) >= 8
    }));
    let points = duration_points(&receiver);
    for kind in [
        "download",
        "health_check",
        "fallback_strategy",
        "analytics_collection",
        "model_operation",
        "cache.warmup",
    ] {
        assert_eq!(
            count_where(
                &points,
                &[
                    ("genscope.operation.type", kind),
                    ("genscope.operation.outcome", "success")
                ]
            ),
            1,
            "{kind}: {points:?}"
        );
    }
    assert_eq!(
        count_where(&points, &[("genscope.operation.type", "generation")]),
        2
    );
    for name in [
        "genscope.model.download.io",
        "genscope.model.health_check.duration",
        "genscope.model.fallback.activations",
        "genscope.generation.requests",
        "genscope.generation.steps.rate",
    ] {
        assert!(receiver.latest_metric(name).is_some(), "{name} missing");
    }

    // The seeds' get_metrics_by_type / get_all_metrics, from the analyzer store.
    let by_type = telemetry.analyzer().operation_type_stats(Window::all());
    let kinds: Vec<&str> = by_type.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "analytics_collection",
            "cache.warmup",
            "download",
            "fallback_strategy",
            "generation",
            "health_check",
            "model_operation"
        ]
    );
    let generation = by_type.iter().find(|s| s.kind == "generation").unwrap();
    assert_eq!((generation.count, generation.failures), (2, 0));
    assert_eq!(generation.sampled_spans, 2);
    assert_eq!(generation.usage.cpu_time.samples, 2);
    assert!(generation.quantile(0.5).is_some());
    telemetry.shutdown().unwrap();
}

#[test]
fn failures_and_dropped_guards_are_recorded_as_failed() {
    let (receiver, telemetry) = start(None);
    let ops = telemetry.operations();

    ops.download("llama-3-70b", "s3")
        .fail("timeout", "stalled at 40% after 300 s");
    ops.health_check("llama-3-70b")
        .fail("connection_refused", "port 8000 closed");
    // Dropped without succeed() or fail().
    drop(ops.model_operation("load", "llama-3-70b"));
    // Dropped by a panic.
    let ops2 = ops.clone();
    let panicked = std::thread::spawn(move || {
        let _op = ops2.analytics_collection("nightly");
        panic!("user code failed");
    })
    .join();
    assert!(panicked.is_err());
    // An unusable error type is replaced, and the given value kept in the message.
    ops.start(OperationKind::Generation, "x")
        .fail("", "no category given");

    let spans = flush_spans(&receiver, &telemetry, 5);
    let d = span(&spans, "download llama-3-70b");
    assert_eq!(s(d, "error.type").as_deref(), Some("timeout"));
    assert_eq!(
        status(d),
        (
            StatusCode::Error as i32,
            "stalled at 40% after 300 s".into()
        )
    );
    assert!(
        attr(&d.attributes, "genscope.download.throughput").is_none(),
        "no throughput for a failed download"
    );
    let h = span(&spans, "health_check llama-3-70b");
    assert_eq!(
        s(h, "genscope.health_check.status").as_deref(),
        Some("unhealthy")
    );
    let dropped = span(&spans, "model_operation load llama-3-70b");
    assert_eq!(s(dropped, "error.type").as_deref(), Some("dropped"));
    assert_eq!(status(dropped).0, StatusCode::Error as i32);
    let p = span(&spans, "analytics_collection nightly");
    assert_eq!(s(p, "error.type").as_deref(), Some("panic"));
    let other = span(&spans, "generation x");
    assert_eq!(s(other, "error.type").as_deref(), Some("_OTHER"));
    assert!(
        status(other).1.contains("no category given"),
        "{:?}",
        status(other)
    );

    assert!(receiver.wait_for(Duration::from_secs(10), |r| {
        count_where(
            &duration_points(r),
            &[("genscope.operation.outcome", "failure")],
        ) >= 5
    }));
    let points = duration_points(&receiver);
    for (kind, error) in [
        ("download", "timeout"),
        ("health_check", "connection_refused"),
        ("model_operation", "dropped"),
        ("analytics_collection", "panic"),
        ("generation", "_OTHER"),
    ] {
        assert_eq!(
            count_where(
                &points,
                &[
                    ("genscope.operation.type", kind),
                    ("error.type", error),
                    ("genscope.operation.outcome", "failure")
                ]
            ),
            1,
            "{kind}/{error}: {points:?}"
        );
    }
    assert_eq!(
        count_where(&points, &[("genscope.operation.outcome", "success")]),
        0
    );

    let stats = telemetry
        .analyzer()
        .operation_stats(Some("download"), Window::all());
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].success_rate(), 0.0);
    assert_eq!(stats[0].error_types, vec![("timeout".to_string(), 1)]);
    telemetry.shutdown().unwrap();
}

#[test]
fn a_sampler_that_drops_most_spans_does_not_drop_operation_metrics() {
    let (receiver, telemetry) = start(Some(SamplerSetting::TraceIdRatio(0.05)));
    let ops = telemetry.operations();
    const N: u64 = 400;
    for i in 0..N {
        let op = ops.health_check("sdxl-1.0");
        if i % 4 == 0 {
            op.fail("timeout", "slow");
        } else {
            op.succeed();
        }
    }
    telemetry.force_flush().unwrap();
    assert!(
        receiver.wait_for(Duration::from_secs(10), |r| {
            count_where(
                &duration_points(r),
                &[("genscope.operation.type", "health_check")],
            ) == N
        }),
        "{:?}",
        duration_points(&receiver)
    );
    let points = duration_points(&receiver);
    assert_eq!(
        count_where(&points, &[("genscope.operation.outcome", "failure")]),
        N / 4
    );
    let exported = receiver.spans().len() as u64;
    assert!(exported < N / 4, "the sampler kept {exported} of {N} spans");

    let stats = telemetry
        .analyzer()
        .operation_stats(Some("health_check"), Window::all());
    assert_eq!(stats[0].count, N);
    assert_eq!(stats[0].failures, N / 4);
    assert_eq!(stats[0].sampled_spans, exported);
    telemetry.shutdown().unwrap();
}
