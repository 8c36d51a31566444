//! Every catalog metric, recorded through its typed recorder, arrives at a real OTLP receiver
//! (gRPC and HTTP/protobuf, decoded with the official protobuf definitions) with its exact semconv name,
//! unit, instrument kind and bucket boundaries; GenAI content is not captured by default.

mod common;

use std::time::Duration;

use common::{Mode, Receiver, all_metric_names, attr_str};
use genscope::config::{ContentCapture, Protocol};
use genscope::instruments::catalog::db::{DbOperation, PoolState};
use genscope::instruments::catalog::genai::{GenAiAttributes, Operation, ServerTiming};
use genscope::instruments::catalog::http::HttpRequest;
use genscope::instruments::catalog::model::HealthStatus;
use genscope::instruments::{InstrumentKind, catalog};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use tracing_subscriber::layer::SubscriberExt as _;

fn record_everything(telemetry: &genscope::Genscope) {
    let m = telemetry.metrics();
    let serving = m.serving("llama-3-8b").unwrap();
    serving.record_state(genscope::instruments::catalog::serving::EngineState {
        kv_blocks_used: 10,
        kv_blocks_total: 100,
        running: 2,
        waiting: 1,
    });
    serving.add_preemptions(1);
    serving.record_prefix_cache(64, 32);
    serving.record_step_tokens(128);
    serving.record_spec_decode(8, 5);
    serving.record_inter_token(Duration::from_millis(20));
    serving.record_phases(genscope::instruments::catalog::serving::RequestPhases {
        queue: Duration::from_millis(5),
        prefill: Duration::from_millis(50),
        decode: Duration::from_millis(500),
    });
    let genai = m.genai().unwrap();
    let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
        .unwrap()
        .request_model("llama-3-8b")
        .server("localhost", 8000);
    genai.record_tokens(&attrs, Some(100), Some(20));
    genai.record_prompt_length(&attrs, None, "hello, model");
    genai.record_client_operation(&attrs, Duration::from_millis(900), None);
    genai.record_server_request(
        &attrs,
        ServerTiming {
            duration: Duration::from_millis(1000),
            time_to_first_token: Some(Duration::from_millis(50)),
            output_tokens: Some(20),
        },
        None,
    );

    let generation = m.generation().unwrap();
    let image = [KeyValue::new("genscope.model.type", "image")];
    let queued = generation.enqueued(&image);
    generation.record_queue_wait(Duration::from_millis(30), &image);
    drop(queued);
    let _active = generation.started(&image);
    generation.record_generation(Duration::from_secs(2), None, &image);
    generation.record_generation(Duration::from_secs(1), Some("out_of_memory"), &image);
    generation.record_batch(4, &image);
    generation.record_steps(30, Duration::from_secs(2), &image);
    generation.record_item(Duration::from_millis(500), &image);

    let _session = m.users().unwrap().session_opened();

    let http = m.http_server().unwrap();
    http.record_request(&HttpRequest {
        method: "POST",
        route: Some("/v1/generate"),
        status: Some(200),
        scheme: "http",
        duration: Duration::from_millis(80),
        error_type: None,
        protocol_version: Some("1.1"),
    });
    let _inflight = http.in_flight("GET", "http");

    let db = m.db_client().unwrap();
    db.record_operation(&DbOperation {
        system: "postgresql",
        operation: Some("SELECT"),
        collection: Some("jobs"),
        duration: Duration::from_millis(3),
        ..Default::default()
    });
    db.observe_pool("main", || PoolState {
        idle: 3,
        used: 2,
        max: 10,
        pending: 1,
    });

    let model = m.model().unwrap();
    model.record_download("sdxl", "hub", 1_000_000, Duration::from_secs(2), None);
    model.record_health_check(
        "sdxl",
        HealthStatus::Healthy,
        Duration::from_millis(5),
        None,
    );
    model.record_fallback("sdxl", "sd-1.5", "out_of_memory");
    m.operation()
        .unwrap()
        .record("download", "sdxl", Duration::from_secs(40), None);
}

#[test]
fn every_catalog_metric_arrives_with_its_semconv_shape() {
    let receiver = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(receiver.url(), Protocol::Grpc)
        .build()
        .unwrap();
    record_everything(&telemetry);
    telemetry.force_flush().unwrap();

    let definitions = catalog::all();
    assert!(
        receiver.wait_for(Duration::from_secs(10), |r| {
            definitions
                .iter()
                .all(|d| r.latest_metric(d.name()).is_some())
        }),
        "missing: {:?} (got {:?})",
        definitions
            .iter()
            .map(|d| d.name())
            .filter(|n| receiver.latest_metric(n).is_none())
            .collect::<Vec<_>>(),
        all_metric_names(&receiver)
    );
    for d in &definitions {
        let m = receiver.latest_metric(d.name()).unwrap();
        assert_eq!(m.unit, d.unit(), "{}", d.name());
        let data = m.data.as_ref().unwrap();
        match d.kind() {
            InstrumentKind::Counter => assert!(
                matches!(data, Data::Sum(s) if s.is_monotonic),
                "{} should be a monotonic sum",
                d.name()
            ),
            InstrumentKind::UpDownCounter => assert!(
                matches!(data, Data::Sum(s) if !s.is_monotonic),
                "{} should be a non-monotonic sum",
                d.name()
            ),
            InstrumentKind::Gauge => assert!(matches!(data, Data::Gauge(_)), "{}", d.name()),
            _ => {
                let Data::Histogram(h) = data else {
                    panic!("{} should be a histogram", d.name())
                };
                let p = &h.data_points[0];
                assert_eq!(
                    Some(p.explicit_bounds.as_slice()),
                    d.buckets(),
                    "{} buckets",
                    d.name()
                );
            }
        }
    }

    // Spot-check values and required attributes.
    let tokens = receiver.latest_metric("gen_ai.client.token.usage").unwrap();
    let Some(Data::Histogram(h)) = tokens.data else {
        panic!()
    };
    let mut types: Vec<String> = h
        .data_points
        .iter()
        .map(|p| {
            for key in ["gen_ai.operation.name", "gen_ai.provider.name"] {
                assert!(attr_str(&p.attributes, key).is_some(), "{key}");
            }
            attr_str(&p.attributes, "gen_ai.token.type").unwrap()
        })
        .collect();
    types.sort();
    assert_eq!(types, ["input", "output"]);

    let tpot = receiver
        .latest_metric("gen_ai.server.time_per_output_token")
        .unwrap();
    let Some(Data::Histogram(h)) = tpot.data else {
        panic!()
    };
    // (1.0 s - 0.05 s) / (20 - 1) = 0.05 s
    assert!((h.data_points[0].sum.unwrap() - 0.05).abs() < 1e-9);

    let pool = receiver
        .latest_metric("db.client.connection.count")
        .unwrap();
    let points = common::sum_points(&pool);
    let used = points
        .iter()
        .find(|(a, _)| attr_str(a, "db.client.connection.state").as_deref() == Some("used"))
        .unwrap();
    assert_eq!(used.1, 2.0);

    let requests = receiver
        .latest_metric("genscope.generation.requests")
        .unwrap();
    let failed: f64 = common::sum_points(&requests)
        .iter()
        .filter(|(a, _)| attr_str(a, "error.type").as_deref() == Some("out_of_memory"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(failed, 1.0);
    telemetry.shutdown().unwrap();
}

fn span_with_content(
    capture: Option<ContentCapture>,
) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
    let receiver = Receiver::http(Mode::Normal);
    let mut b = common::builder(receiver.url(), Protocol::HttpProtobuf);
    if let Some(c) = capture {
        b = b.genai_content_capture(c);
    }
    let telemetry = b.build().unwrap();
    let genai = telemetry.metrics().genai().unwrap();
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("chat llama-3-8b");
        let recorded =
            genai.record_content(&span, "[{\"role\":\"user\"}]", "[{\"role\":\"assistant\"}]");
        assert_eq!(
            recorded,
            capture.is_some_and(|c| c != ContentCapture::NoContent)
        );
        span.in_scope(|| {});
    });
    telemetry.force_flush().unwrap();
    assert!(receiver.wait_for(Duration::from_secs(10), |r| !r.spans().is_empty()));
    let spans = receiver.spans();
    telemetry.shutdown().unwrap();
    spans
}

#[test]
fn genai_content_is_not_captured_by_default() {
    let spans = span_with_content(None);
    let span = &spans[0];
    assert!(attr_str(&span.attributes, "gen_ai.input.messages").is_none());
    assert!(attr_str(&span.attributes, "gen_ai.output.messages").is_none());
    assert!(span.events.is_empty());
}

#[test]
fn genai_content_is_captured_when_opted_in() {
    let spans = span_with_content(Some(ContentCapture::SpanAndEvent));
    let span = &spans[0];
    assert_eq!(
        attr_str(&span.attributes, "gen_ai.input.messages").as_deref(),
        Some("[{\"role\":\"user\"}]")
    );
    assert_eq!(
        span.events[0].name,
        "gen_ai.client.inference.operation.details"
    );
}

#[test]
fn content_capture_env_var_is_parsed_and_validated() {
    let p = genscope::config::from_lookup(|k| {
        (k == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT").then(|| "SPAN_ONLY".to_string())
    })
    .unwrap()
    .resolve()
    .unwrap();
    assert_eq!(p.genai_content_capture, ContentCapture::SpanOnly);
    let err = genscope::config::from_lookup(|k| {
        (k == "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
            .then(|| "everything".to_string())
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    );
    assert_eq!(
        genscope::config::PartialSettings::default()
            .resolve()
            .unwrap()
            .genai_content_capture,
        ContentCapture::NoContent
    );
}
