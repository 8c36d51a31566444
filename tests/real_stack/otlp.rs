//! Reading OTLP JSON (genscope's file export, the collector's file exporter, Jaeger's api/v3) into
//! one normalized shape, whichever way each writer spells enums, ids and integers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// A span as the comparisons need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind` number (1 internal, 2 server, 3 client, ...).
    pub kind: i64,
    /// OTLP `StatusCode` number (0 unset, 1 ok, 2 error).
    pub status: i64,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub end_time: u64,
}

/// An attribute value as text: strings as they are, numbers and booleans printed.
pub fn value_text(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let Some((k, inner)) = obj.iter().next() else {
        return String::new();
    };
    match (k.as_str(), inner) {
        ("stringValue", Value::String(s)) => s.clone(),
        ("intValue", Value::String(s)) => s.clone(),
        ("intValue", n) => n.to_string(),
        ("doubleValue", n) => n.as_f64().map_or(n.to_string(), |f| f.to_string()),
        ("boolValue", b) => b.to_string(),
        (_, other) => other.to_string(),
    }
}

/// `[{key, value}]` to a map.
pub fn attributes(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_string(),
                        value_text(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn enum_number(v: &Value, names: &[&str]) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(-1),
        Value::String(s) => names.iter().position(|n| n == s).map_or(-1, |i| i as i64),
        _ => 0,
    }
}

const KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// The spans of one `TracesData`-shaped document (`resourceSpans`).
pub fn spans_of(doc: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
        let resource = attributes(&rs["resource"]["attributes"]);
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                out.push(Span {
                    trace_id: s["traceId"].as_str().unwrap_or_default().to_lowercase(),
                    span_id: s["spanId"].as_str().unwrap_or_default().to_lowercase(),
                    parent_span_id: s["parentSpanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    name: s["name"].as_str().unwrap_or_default().to_string(),
                    kind: enum_number(&s["kind"], &KINDS),
                    status: enum_number(&s["status"]["code"], &STATUS),
                    attributes: attributes(&s["attributes"]),
                    resource: resource.clone(),
                    end_time: match &s["endTimeUnixNano"] {
                        Value::String(t) => t.parse().unwrap_or(0),
                        Value::Number(n) => n.as_u64().unwrap_or(0),
                        _ => 0,
                    },
                });
            }
        }
    }
    out
}

/// Every span in a JSON-lines file (lines that hold metrics contribute none).
pub fn spans_in_file(path: &Path) -> Vec<Span> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|doc| spans_of(&doc))
        .collect()
}

/// One log record of an OTLP JSON document: trace id, span id (hex, empty when none), severity
/// text and body.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub trace_id: String,
    pub span_id: String,
    pub severity: String,
    pub body: String,
}

/// Every log record in an OTLP JSON-lines file (`resourceLogs` lines).
pub fn logs_in_file(path: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for doc in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        for rl in doc["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for r in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push(LogLine {
                        trace_id: r["traceId"].as_str().unwrap_or_default().to_string(),
                        span_id: r["spanId"].as_str().unwrap_or_default().to_string(),
                        severity: r["severityText"].as_str().unwrap_or_default().to_string(),
                        body: value_text(&r["body"]),
                    });
                }
            }
        }
    }
    out
}
