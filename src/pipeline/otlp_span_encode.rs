//! OTLP span export requests encoded straight from the SDK's [`SpanData`] into protobuf bytes.
//!
//! The SDK's exporters convert every span into the generated message types first (a `String` per
//! attribute key and value, a `Vec` per id, a deep copy of the whole batch per gRPC attempt) and
//! then encode those with prost. Both steps are the larger part of what an exported span costs
//! the application (`BENCHMARKS.md`, instructions per request). This encoder writes the same
//! `ExportTraceServiceRequest` bytes directly: one size pass and one write pass over the borrowed
//! batch; besides the output buffer it allocates only per batch (each span's length, each
//! scope's members), never per attribute. The output is byte for byte what prost gives
//! for the SDK's own conversion (`group_spans_by_resource_and_scope`): fields in tag order,
//! default scalars and empty strings left out, one `ResourceSpans`, scopes in first-seen order.
//! `otlp_span_encode_tests.rs` checks that equality on every kind of value, event, link and status.

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{encode_varint, encoded_len_varint};
use std::time::{SystemTime, UNIX_EPOCH};

// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The resource part of every request, encoded once (`ResourceSpans` fields 1 and 3).
#[derive(Debug, Clone)]
pub(crate) struct EncodedResource {
    /// The `Resource` message body.
    resource: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> Self {
        let attributes: Vec<KeyValue> = resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let mut body = Vec::with_capacity(kvs_len(1, &attributes));
        put_kvs(&mut body, 1, &attributes);
        EncodedResource {
            resource: body,
            schema_url: resource.schema_url().unwrap_or_default().to_owned(),
        }
    }
}

/// Encodes one `ExportTraceServiceRequest` for `spans` into `out` (appended).
pub(crate) fn encode_request(spans: &[SpanData], resource: &EncodedResource, out: &mut Vec<u8>) {
    let scopes = group_by_scope(spans);
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_lens: Vec<usize> = scopes
        .iter()
        .map(|(scope, members)| scope_spans_len(scope, members, &span_lens))
        .collect();
    let mut rs_len = field_len(1, resource.resource.len()) + str_field_len(3, &resource.schema_url);
    rs_len += scope_lens.iter().map(|&l| field_len(2, l)).sum::<usize>();
    out.reserve(field_len(1, rs_len));

    put_header(out, 1, rs_len);
    put_header(out, 1, resource.resource.len());
    out.extend_from_slice(&resource.resource);
    for ((scope, members), len) in scopes.iter().zip(scope_lens) {
        put_header(out, 2, len);
        put_scope_spans(out, scope, members, spans, &span_lens);
    }
    put_str(out, 3, &resource.schema_url);
}

/// Spans grouped by instrumentation scope, scopes in the order first seen (as the SDK does).
fn group_by_scope(spans: &[SpanData]) -> Vec<(&InstrumentationScope, Vec<usize>)> {
    let mut groups: Vec<(&InstrumentationScope, Vec<usize>)> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, span) in spans.iter().enumerate() {
        let scope = &span.instrumentation_scope;
        let at = if let Some(last) = last.filter(|&l| groups[l].0 == scope) {
            last
        } else if let Some(at) = groups.iter().position(|(s, _)| *s == scope) {
            at
        } else {
            groups.push((scope, Vec::with_capacity(spans.len() - i)));
            groups.len() - 1
        };
        groups[at].1.push(i);
        last = Some(at);
    }
    groups
}

// ---- sizes -------------------------------------------------------------------------------------

fn key_len(tag: u32) -> usize {
    encoded_len_varint(u64::from(tag << 3))
}

/// A length-delimited field of `len` body bytes.
fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// A string or bytes field, left out when empty (proto3 default).
fn str_field_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(tag, s.len())
    }
}

fn uint_field_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn fixed64_field_len(tag: u32, v: u64) -> usize {
    if v == 0 { 0 } else { key_len(tag) + 8 }
}

fn fixed32_field_len(tag: u32, v: u32) -> usize {
    if v == 0 { 0 } else { key_len(tag) + 4 }
}

fn kvs_len(tag: u32, kvs: &[KeyValue]) -> usize {
    kvs.iter().map(|kv| field_len(tag, kv_len(kv))).sum()
}

/// A `KeyValue` body: the key (1) and the value (2, always present).
fn kv_len(kv: &KeyValue) -> usize {
    str_field_len(1, kv.key.as_str()) + field_len(2, any_value_len(&kv.value))
}

/// An `AnyValue` body: one member of the `value` oneof, present even when it is a default.
fn any_value_len(v: &Value) -> usize {
    match v {
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(i) => key_len(3) + encoded_len_varint(*i as u64),
        Value::F64(_) => key_len(4) + 8,
        Value::String(s) => field_len(1, s.as_str().len()),
        Value::Array(a) => field_len(5, array_len(a)),
        other => field_len(1, other.as_str().len()),
    }
}

/// An `ArrayValue` body: each element an `AnyValue` (field 1).
fn array_len(a: &Array) -> usize {
    match a {
        Array::Bool(v) => v.len() * field_len(1, key_len(2) + 1),
        Array::I64(v) => v
            .iter()
            .map(|i| field_len(1, key_len(3) + encoded_len_varint(*i as u64)))
            .sum(),
        Array::F64(v) => v.len() * field_len(1, key_len(4) + 8),
        Array::String(v) => v
            .iter()
            .map(|s| field_len(1, field_len(1, s.as_str().len())))
            .sum(),
        other => field_len(1, field_len(1, other.to_string().len())),
    }
}

fn scope_len(scope: &InstrumentationScope) -> usize {
    let attributes: usize = scope.attributes().map(|kv| field_len(3, kv_len(kv))).sum();
    str_field_len(1, scope.name())
        + str_field_len(2, scope.version().unwrap_or_default())
        + attributes
}

fn scope_spans_len(scope: &InstrumentationScope, members: &[usize], span_lens: &[usize]) -> usize {
    let spans_len: usize = members.iter().map(|&i| field_len(2, span_lens[i])).sum();
    field_len(1, scope_len(scope))
        + spans_len
        + str_field_len(3, scope.schema_url().unwrap_or_default())
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kind_number(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn status_parts(status: &Status) -> (u64, &str) {
    match status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description.as_ref()),
    }
}

fn status_len(status: &Status) -> usize {
    let (code, message) = status_parts(status);
    str_field_len(2, message) + uint_field_len(3, code)
}

fn flags(remote: bool, trace_flags: u8) -> u32 {
    u32::from(trace_flags) | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 }
}

fn event_len(e: &opentelemetry::trace::Event) -> usize {
    fixed64_field_len(1, nanos(e.timestamp))
        + str_field_len(2, e.name.as_ref())
        + kvs_len(3, &e.attributes)
        + uint_field_len(4, u64::from(e.dropped_attributes_count))
}

fn link_len(l: &opentelemetry::trace::Link) -> usize {
    let cx = &l.span_context;
    field_len(1, 16)
        + field_len(2, 8)
        + str_field_len(3, &cx.trace_state().header())
        + kvs_len(4, &l.attributes)
        + uint_field_len(5, u64::from(l.dropped_attributes_count))
        + fixed32_field_len(6, flags(cx.is_remote(), cx.trace_flags().to_u8()))
}

fn span_len(s: &SpanData) -> usize {
    let cx = &s.span_context;
    let parent = if s.parent_span_id == SpanId::INVALID {
        0
    } else {
        field_len(4, 8)
    };
    field_len(1, 16)
        + field_len(2, 8)
        + str_field_len(3, &cx.trace_state().header())
        + parent
        + str_field_len(5, s.name.as_ref())
        + uint_field_len(6, kind_number(&s.span_kind))
        + fixed64_field_len(7, nanos(s.start_time))
        + fixed64_field_len(8, nanos(s.end_time))
        + kvs_len(9, &s.attributes)
        + uint_field_len(10, u64::from(s.dropped_attributes_count))
        + s.events
            .iter()
            .map(|e| field_len(11, event_len(e)))
            .sum::<usize>()
        + uint_field_len(12, u64::from(s.events.dropped_count))
        + s.links
            .iter()
            .map(|l| field_len(13, link_len(l)))
            .sum::<usize>()
        + uint_field_len(14, u64::from(s.links.dropped_count))
        + field_len(15, status_len(&s.status))
        + fixed32_field_len(16, flags(s.parent_span_is_remote, cx.trace_flags().to_u8()))
}

// ---- writes ------------------------------------------------------------------------------------

fn put_key(out: &mut Vec<u8>, tag: u32, wire: u32) {
    encode_varint(u64::from(tag << 3 | wire), out);
}

/// The key and length of a length-delimited field whose body follows.
fn put_header(out: &mut Vec<u8>, tag: u32, len: usize) {
    put_key(out, tag, LEN);
    encode_varint(len as u64, out);
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    put_header(out, tag, b.len());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, tag: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, tag, s.as_bytes());
    }
}

fn put_uint(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        put_key(out, tag, VARINT);
        encode_varint(v, out);
    }
}

fn put_fixed64(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        put_key(out, tag, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_fixed32(out: &mut Vec<u8>, tag: u32, v: u32) {
    if v != 0 {
        put_key(out, tag, FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_kvs(out: &mut Vec<u8>, tag: u32, kvs: &[KeyValue]) {
    for kv in kvs {
        put_kv(out, tag, kv);
    }
}

fn put_kv(out: &mut Vec<u8>, tag: u32, kv: &KeyValue) {
    put_header(out, tag, kv_len(kv));
    put_str(out, 1, kv.key.as_str());
    put_header(out, 2, any_value_len(&kv.value));
    put_any_value(out, &kv.value);
}

fn put_any_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => {
            put_key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            put_key(out, 3, VARINT);
            encode_varint(*i as u64, out);
        }
        Value::F64(f) => {
            put_key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => put_bytes(out, 1, s.as_str().as_bytes()),
        Value::Array(a) => {
            put_header(out, 5, array_len(a));
            put_array(out, a);
        }
        other => put_bytes(out, 1, other.as_str().as_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    match a {
        Array::Bool(v) => {
            for b in v {
                put_element(out, &Value::Bool(*b));
            }
        }
        Array::I64(v) => {
            for i in v {
                put_element(out, &Value::I64(*i));
            }
        }
        Array::F64(v) => {
            for f in v {
                put_element(out, &Value::F64(*f));
            }
        }
        Array::String(v) => {
            for s in v {
                put_header(out, 1, field_len(1, s.as_str().len()));
                put_bytes(out, 1, s.as_str().as_bytes());
            }
        }
        other => {
            let s = other.to_string();
            put_header(out, 1, field_len(1, s.len()));
            put_bytes(out, 1, s.as_bytes());
        }
    }
}

fn put_element(out: &mut Vec<u8>, v: &Value) {
    put_header(out, 1, any_value_len(v));
    put_any_value(out, v);
}

fn put_scope_spans(
    out: &mut Vec<u8>,
    scope: &InstrumentationScope,
    members: &[usize],
    spans: &[SpanData],
    span_lens: &[usize],
) {
    put_header(out, 1, scope_len(scope));
    put_str(out, 1, scope.name());
    put_str(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        put_kv(out, 3, kv);
    }
    for &i in members {
        put_header(out, 2, span_lens[i]);
        put_span(out, &spans[i]);
    }
    put_str(out, 3, scope.schema_url().unwrap_or_default());
}

fn put_span(out: &mut Vec<u8>, s: &SpanData) {
    let cx = &s.span_context;
    put_bytes(out, 1, &cx.trace_id().to_bytes());
    put_bytes(out, 2, &cx.span_id().to_bytes());
    put_str(out, 3, &cx.trace_state().header());
    if s.parent_span_id != SpanId::INVALID {
        put_bytes(out, 4, &s.parent_span_id.to_bytes());
    }
    put_str(out, 5, s.name.as_ref());
    put_uint(out, 6, kind_number(&s.span_kind));
    put_fixed64(out, 7, nanos(s.start_time));
    put_fixed64(out, 8, nanos(s.end_time));
    put_kvs(out, 9, &s.attributes);
    put_uint(out, 10, u64::from(s.dropped_attributes_count));
    for e in s.events.iter() {
        put_header(out, 11, event_len(e));
        put_fixed64(out, 1, nanos(e.timestamp));
        put_str(out, 2, e.name.as_ref());
        put_kvs(out, 3, &e.attributes);
        put_uint(out, 4, u64::from(e.dropped_attributes_count));
    }
    put_uint(out, 12, u64::from(s.events.dropped_count));
    for l in s.links.iter() {
        let lcx = &l.span_context;
        put_header(out, 13, link_len(l));
        put_bytes(out, 1, &lcx.trace_id().to_bytes());
        put_bytes(out, 2, &lcx.span_id().to_bytes());
        put_str(out, 3, &lcx.trace_state().header());
        put_kvs(out, 4, &l.attributes);
        put_uint(out, 5, u64::from(l.dropped_attributes_count));
        put_fixed32(out, 6, flags(lcx.is_remote(), lcx.trace_flags().to_u8()));
    }
    put_uint(out, 14, u64::from(s.links.dropped_count));
    put_header(out, 15, status_len(&s.status));
    let (code, message) = status_parts(&s.status);
    put_str(out, 2, message);
    put_uint(out, 3, code);
    put_fixed32(
        out,
        16,
        flags(s.parent_span_is_remote, cx.trace_flags().to_u8()),
    );
}
