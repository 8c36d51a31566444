//! The encoder against the SDK's own conversion encoded by prost: the bytes must be identical.

use super::otlp_span_encode::{EncodedResource, encode_request};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use prost::Message;
use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

fn sdk_bytes(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
    let with_schema: ResourceAttributesWithSchema = resource.into();
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), &with_schema),
    }
    .encode_to_vec()
}

fn ours(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(spans, &EncodedResource::new(resource), &mut out);
    out
}

fn assert_same(spans: &[SpanData], resource: &Resource) {
    let expected = sdk_bytes(spans, resource);
    let got = ours(spans, resource);
    if got != expected {
        let decoded = ExportTraceServiceRequest::decode(got.as_slice());
        panic!(
            "encodings differ ({} bytes ours, {} the SDK's)\nours decoded: {decoded:#?}\nSDK: {:#?}",
            got.len(),
            expected.len(),
            ExportTraceServiceRequest::decode(expected.as_slice()).unwrap()
        );
    }
}

fn context(trace: u128, span: u64, sampled: bool, remote: bool, state: &str) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let state = if state.is_empty() {
        TraceState::default()
    } else {
        state.parse::<TraceState>().unwrap()
    };
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        flags,
        remote,
        state,
    )
}

fn every_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("bool.true", true),
        KeyValue::new("bool.false", false),
        KeyValue::new("int.zero", 0_i64),
        KeyValue::new("int.negative", -1_i64),
        KeyValue::new("int.min", i64::MIN),
        KeyValue::new("int.max", i64::MAX),
        KeyValue::new("int.small", 300_i64),
        KeyValue::new("f64.zero", 0.0),
        KeyValue::new("f64.nan", f64::NAN),
        KeyValue::new("f64.neg", -2.5e-300),
        KeyValue::new("str.empty", ""),
        KeyValue::new("str.unicode", "tökens ✓"),
        KeyValue::new("str.long", "x".repeat(200)),
        KeyValue::new("str.very.long", "y".repeat(20_000)),
        KeyValue::new("", "empty key"),
        KeyValue::new("arr.bool", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("arr.i64", Value::Array(Array::I64(vec![0, -7, 1 << 40]))),
        KeyValue::new("arr.f64", Value::Array(Array::F64(vec![0.0, 1.5]))),
        KeyValue::new(
            "arr.str",
            Value::Array(Array::String(vec![
                StringValue::from(""),
                StringValue::from("a"),
                StringValue::from("z".repeat(130)),
            ])),
        ),
        KeyValue::new("arr.empty", Value::Array(Array::I64(vec![]))),
    ]
}

#[allow(clippy::too_many_arguments)]
fn span(
    name: &'static str,
    cx: SpanContext,
    parent: u64,
    parent_remote: bool,
    kind: SpanKind,
    scope: &InstrumentationScope,
    attributes: Vec<KeyValue>,
    status: Status,
) -> SpanData {
    let start = UNIX_EPOCH + Duration::from_nanos(1_733_000_000_123_456_789);
    SpanData {
        span_context: cx,
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: parent_remote,
        span_kind: kind,
        name: Cow::Borrowed(name),
        start_time: start,
        end_time: start + Duration::from_micros(1_500),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn scopes() -> (
    InstrumentationScope,
    InstrumentationScope,
    InstrumentationScope,
) {
    (
        InstrumentationScope::builder("genscope").build(),
        InstrumentationScope::builder("tower")
            .with_version("0.3.1")
            .with_schema_url("https://opentelemetry.io/schemas/1.41.0")
            .with_attributes([KeyValue::new("scope.attr", 7_i64)])
            .build(),
        InstrumentationScope::builder("").build(),
    )
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "llm-server"),
            KeyValue::new("service.instance.id", "b2a4"),
            KeyValue::new("process.pid", 4242_i64),
        ])
        .build()
}

#[test]
fn every_value_kind_and_field_encodes_as_the_sdk_does() {
    let (a, b, empty) = scopes();
    let mut spans = vec![
        span(
            "chat llama",
            context(1, 2, true, false, ""),
            0,
            false,
            SpanKind::Client,
            &a,
            every_value(),
            Status::Unset,
        ),
        span(
            "POST /v1/chat/completions",
            context(u128::MAX, u64::MAX, true, false, "vendor=value,other=x"),
            9,
            true,
            SpanKind::Server,
            &b,
            vec![KeyValue::new("http.response.status_code", 200_i64)],
            Status::Ok,
        ),
        span(
            "",
            context(3, 4, false, true, ""),
            5,
            false,
            SpanKind::Internal,
            &empty,
            vec![],
            Status::error("model unavailable: ✗"),
        ),
        span(
            "producer",
            context(6, 7, true, false, ""),
            8,
            false,
            SpanKind::Producer,
            &a,
            vec![],
            Status::error(""),
        ),
        span(
            "consumer",
            context(6, 10, true, false, ""),
            7,
            false,
            SpanKind::Consumer,
            &b,
            vec![],
            Status::Unset,
        ),
    ];
    spans[0].dropped_attributes_count = 3;
    spans[0].events.events = vec![
        Event::new(
            "gen_ai.content.prompt",
            UNIX_EPOCH + Duration::from_secs(5),
            every_value(),
            2,
        ),
        Event::new("", UNIX_EPOCH, vec![], 0),
    ];
    spans[0].events.dropped_count = 4;
    spans[1].links.links = vec![
        Link::new(
            context(11, 12, true, true, "k=v"),
            vec![KeyValue::new("link.attr", "x")],
            1,
        ),
        Link::new(context(13, 14, false, false, ""), vec![], 0),
    ];
    spans[1].links.dropped_count = 2;
    // Before the epoch: the SDK sends 0 (field left out), so do we.
    spans[2].start_time = UNIX_EPOCH - Duration::from_secs(1);
    spans[2].end_time = UNIX_EPOCH;
    assert_same(&spans, &resource());
}

#[test]
fn scopes_group_in_first_seen_order_across_interleaved_spans() {
    let (a, b, empty) = scopes();
    let order = [&b, &a, &b, &empty, &a, &a, &b];
    let spans: Vec<SpanData> = order
        .iter()
        .enumerate()
        .map(|(i, scope)| {
            span(
                "s",
                context(i as u128 + 1, i as u64 + 1, true, false, ""),
                0,
                false,
                SpanKind::Internal,
                scope,
                vec![KeyValue::new("i", i as i64)],
                Status::Unset,
            )
        })
        .collect();
    assert_same(&spans, &resource());
    let decoded = ExportTraceServiceRequest::decode(ours(&spans, &resource()).as_slice()).unwrap();
    let names: Vec<_> = decoded.resource_spans[0]
        .scope_spans
        .iter()
        .map(|s| (s.scope.as_ref().unwrap().name.clone(), s.spans.len()))
        .collect();
    assert_eq!(
        names,
        [
            ("tower".into(), 3),
            ("genscope".into(), 3),
            (String::new(), 1)
        ]
    );
}

#[test]
fn empty_batches_and_resources_encode_as_the_sdk_does() {
    assert_same(&[], &resource());
    assert_same(&[], &Resource::builder_empty().build());
    let with_schema = Resource::builder_empty()
        .with_schema_url(
            [KeyValue::new("service.name", "x")],
            "https://opentelemetry.io/schemas/1.44.0",
        )
        .build();
    let (a, ..) = scopes();
    let one = span(
        "one",
        context(1, 1, true, false, ""),
        0,
        false,
        SpanKind::Internal,
        &a,
        vec![],
        Status::Unset,
    );
    assert_same(std::slice::from_ref(&one), &with_schema);
}

#[test]
fn a_large_batch_with_long_lengths_encodes_as_the_sdk_does() {
    // 512 spans of ~40 attributes: every length field well past one varint byte.
    let (a, b, _) = scopes();
    let spans: Vec<SpanData> = (0..512_u64)
        .map(|i| {
            let attributes = (0..40)
                .map(|k| match k % 4 {
                    0 => KeyValue::new(format!("genscope.usage.{k}"), (i * k) as i64),
                    1 => KeyValue::new(
                        format!("gen_ai.{k}"),
                        format!("value-{}", "v".repeat(k as usize)),
                    ),
                    2 => KeyValue::new(format!("f.{k}"), i as f64 / 3.0),
                    _ => KeyValue::new(format!("b.{k}"), i % 2 == 0),
                })
                .collect();
            span(
                "generate",
                context(u128::from(i) << 64 | 1, i + 1, true, false, ""),
                i,
                i % 3 == 0,
                SpanKind::Internal,
                if i % 5 == 0 { &b } else { &a },
                attributes,
                Status::Unset,
            )
        })
        .collect();
    assert_same(&spans, &resource());
}
