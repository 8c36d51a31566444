//! The analyzer's second input: OTLP JSON-lines files (what `GENSCOPE_FILE_EXPORT` writes and
//! what the collector's `file` exporter writes), metrics and traces, several files, lines in any
//! order. They are loaded into a fresh [`AnalyzerStore`] through the same ingestion the live
//! pipeline uses, so a report over a file equals a report over the live store for the same data.
//!
//! Metric points are sorted by time before ingestion (cumulative series are differenced in time
//! order). A malformed line is reported as `path:line: message` and skipped; an unreadable file is
//! an error naming it.
//!
//! ```
//! use genscope::analyzer::otlp_file;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("telemetry.jsonl");
//! std::fs::write(&path, "{\"resourceMetrics\":[]}\nnot json\n")?;
//! let loaded = otlp_file::load(&[path])?;
//! assert_eq!(loaded.problems.len(), 1);
//! assert!(loaded.problems[0].to_string().contains("telemetry.jsonl:2:"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use super::store::{
    AnalyzerStore, Attributes, HistogramDelta, MetricKind, MetricMeta, RawPoint, RawValue,
    SpanInput, StoreConfig, Window,
};

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// File.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
    }
}

/// A file that could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Open or read failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No file given.
    #[error("no input file given")]
    NoInput,
}

/// What [`load`] produced.
#[derive(Debug)]
pub struct Loaded {
    /// The store holding everything read.
    pub store: AnalyzerStore,
    /// Lines skipped, with why.
    pub problems: Vec<LineProblem>,
    /// Earliest and latest data time seen.
    pub span: Option<(SystemTime, SystemTime)>,
    /// Metric batches (lines) read.
    pub metric_batches: usize,
    /// Span batches (lines) read.
    pub span_batches: usize,
    /// Log batches (lines) read: counted, not analyzed (the analyzer counts warning and error
    /// events from `genscope.events`, which the metrics lines carry).
    pub log_batches: usize,
}

impl Loaded {
    /// The last `duration` of the data (ending at its latest point), or all of it.
    pub fn window(&self, duration: Option<Duration>) -> Window {
        match (self.span, duration) {
            (Some((first, last)), d) => {
                // The window's start is exclusive: one nanosecond before the first point.
                let before_first = first
                    .checked_sub(Duration::from_nanos(1))
                    .unwrap_or(SystemTime::UNIX_EPOCH)
                    .max(SystemTime::UNIX_EPOCH);
                Window {
                    start: d
                        .and_then(|d| last.checked_sub(d))
                        .unwrap_or(before_first)
                        .max(before_first),
                    end: last,
                }
            }
            (None, _) => Window::all(),
        }
    }
}

fn nanos(t: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(t)
}

fn any_to_value(v: &AnyValue) -> Option<opentelemetry::Value> {
    Some(match v.value.as_ref()? {
        any_value::Value::StringValue(s) => opentelemetry::Value::String(s.clone().into()),
        any_value::Value::IntValue(i) => opentelemetry::Value::I64(*i),
        any_value::Value::DoubleValue(d) => opentelemetry::Value::F64(*d),
        any_value::Value::BoolValue(b) => opentelemetry::Value::Bool(*b),
        other => opentelemetry::Value::String(format!("{other:?}").into()),
    })
}

fn key_values(kvs: &[KeyValue]) -> Vec<opentelemetry::KeyValue> {
    kvs.iter()
        .filter_map(|kv| {
            Some(opentelemetry::KeyValue::new(
                kv.key.clone(),
                any_to_value(kv.value.as_ref()?)?,
            ))
        })
        .collect()
}

/// Attributes rendered exactly as the SDK path renders them.
fn attributes(kvs: &[KeyValue]) -> Attributes {
    let mut out: Attributes = key_values(kvs)
        .into_iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    out.sort();
    out
}

struct PendingMetric {
    time: SystemTime,
    order: usize,
    name: String,
    unit: String,
    description: String,
    kind: MetricKind,
    points: Vec<RawPoint>,
}

fn convert_metric(m: &Metric, order: usize, issues: &mut Vec<String>) -> Vec<PendingMetric> {
    let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
    let number = |v: &Option<number_data_point::Value>| match v {
        Some(number_data_point::Value::AsDouble(d)) => Some(*d),
        Some(number_data_point::Value::AsInt(i)) => Some(*i as f64),
        None => None,
    };
    // One pending batch per point time: a line may carry one collection or several.
    let mut by_time: Vec<PendingMetric> = Vec::new();
    let mut push = |time: SystemTime, kind: MetricKind, point: RawPoint| match by_time
        .iter_mut()
        .find(|p| p.time == time)
    {
        Some(p) => p.points.push(point),
        None => by_time.push(PendingMetric {
            time,
            order,
            name: m.name.clone(),
            unit: m.unit.clone(),
            description: m.description.clone(),
            kind,
            points: vec![point],
        }),
    };
    match &m.data {
        Some(Data::Gauge(g)) => {
            for p in &g.data_points {
                let Some(v) = number(&p.value) else { continue };
                let time = nanos(p.time_unix_nano);
                push(
                    time,
                    MetricKind::Gauge,
                    RawPoint {
                        attributes: attributes(&p.attributes),
                        time,
                        value: RawValue::Gauge(v),
                    },
                );
            }
        }
        Some(Data::Sum(s)) => {
            let kind = if s.is_monotonic {
                MetricKind::Counter
            } else {
                MetricKind::UpDownCounter
            };
            for p in &s.data_points {
                let Some(v) = number(&p.value) else { continue };
                let time = nanos(p.time_unix_nano);
                push(
                    time,
                    kind,
                    RawPoint {
                        attributes: attributes(&p.attributes),
                        time,
                        value: RawValue::Sum {
                            start: nanos(p.start_time_unix_nano),
                            value: v,
                            cumulative: cumulative(s.aggregation_temporality),
                        },
                    },
                );
            }
        }
        Some(Data::Histogram(h)) => {
            for p in &h.data_points {
                let buckets_fit = p.bucket_counts.len() == p.explicit_bounds.len() + 1;
                let bounds_ordered = p.explicit_bounds.windows(2).all(|w| w[0] < w[1])
                    && p.explicit_bounds.iter().all(|b| b.is_finite());
                if !buckets_fit || !bounds_ordered {
                    issues.push(format!(
                        "histogram {}: {} bucket counts for {} bounds (need bounds + 1, bounds increasing); point skipped",
                        m.name,
                        p.bucket_counts.len(),
                        p.explicit_bounds.len()
                    ));
                    continue;
                }
                let (time, point) = histogram_point(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    h.aggregation_temporality,
                    (p.explicit_bounds.clone(), p.bucket_counts.clone()),
                    (p.count, p.sum, p.min, p.max),
                );
                push(time, MetricKind::Histogram, point);
            }
        }
        // Exponential buckets are not kept (see `MetricKind::ExponentialHistogram`).
        Some(Data::ExponentialHistogram(h)) => {
            for p in &h.data_points {
                let (time, point) = histogram_point(
                    &p.attributes,
                    p.start_time_unix_nano,
                    p.time_unix_nano,
                    h.aggregation_temporality,
                    (Vec::new(), vec![p.count]),
                    (p.count, p.sum, p.min, p.max),
                );
                push(time, MetricKind::ExponentialHistogram, point);
            }
        }
        _ => {}
    }
    by_time
}

/// One histogram point as the store ingests it: `(bounds, counts)` and `(count, sum, min, max)`.
fn histogram_point(
    attrs: &[KeyValue],
    start_ns: u64,
    time_ns: u64,
    temporality: i32,
    (bounds, counts): (Vec<f64>, Vec<u64>),
    (count, sum, min, max): (u64, Option<f64>, Option<f64>, Option<f64>),
) -> (SystemTime, RawPoint) {
    let time = nanos(time_ns);
    let point = RawPoint {
        attributes: attributes(attrs),
        time,
        value: RawValue::Histogram {
            start: nanos(start_ns),
            cumulative: temporality == AggregationTemporality::Cumulative as i32,
            delta: HistogramDelta {
                bounds: Arc::from(bounds),
                counts,
                count,
                sum: sum.unwrap_or(0.0),
                min,
                max,
            },
        },
    };
    (time, point)
}

/// Loads OTLP JSON-lines files into a new store (retention long enough to keep them whole).
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Loaded, LoadError> {
    if paths.is_empty() {
        return Err(LoadError::NoInput);
    }
    let mut problems = Vec::new();
    let mut pending: Vec<PendingMetric> = Vec::new();
    let mut spans: Vec<ExportTraceServiceRequest> = Vec::new();
    let mut resource: Option<Attributes> = None;
    let (mut metric_batches, mut span_batches, mut log_batches) = (0, 0, 0);
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let problem = |message: String| LineProblem {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(problem(format!("not JSON: {e}")));
                    continue;
                }
            };
            if value.get("resourceMetrics").is_some() {
                match serde_json::from_value::<ExportMetricsServiceRequest>(value) {
                    Ok(req) => {
                        metric_batches += 1;
                        for rm in &req.resource_metrics {
                            if resource.is_none()
                                && let Some(r) = &rm.resource
                            {
                                resource = Some(attributes(&r.attributes));
                            }
                            for sm in &rm.scope_metrics {
                                for m in &sm.metrics {
                                    let order = pending.len();
                                    let mut issues = Vec::new();
                                    pending.extend(convert_metric(m, order, &mut issues));
                                    problems.extend(issues.into_iter().map(&problem));
                                }
                            }
                        }
                    }
                    Err(e) => problems.push(problem(format!("not an OTLP metrics request: {e}"))),
                }
            } else if value.get("resourceSpans").is_some() {
                match serde_json::from_value::<ExportTraceServiceRequest>(value) {
                    Ok(req) => {
                        span_batches += 1;
                        if resource.is_none()
                            && let Some(r) = req
                                .resource_spans
                                .iter()
                                .find_map(|rs| rs.resource.as_ref())
                        {
                            resource = Some(attributes(&r.attributes));
                        }
                        spans.push(req);
                    }
                    Err(e) => problems.push(problem(format!("not an OTLP traces request: {e}"))),
                }
            } else if value.get("resourceLogs").is_some() {
                log_batches += 1;
            } else {
                problems.push(problem(
                    "neither resourceMetrics, resourceSpans nor resourceLogs: not an OTLP JSON \
                     line"
                        .into(),
                ));
            }
        }
    }
    pending.sort_by_key(|p| (p.time, p.order));
    let mut first: Option<SystemTime> = None;
    let mut last: Option<SystemTime> = None;
    let mut seen = |t: SystemTime| {
        first = Some(first.map_or(t, |f| f.min(t)));
        last = Some(last.map_or(t, |l| l.max(t)));
    };
    for p in &pending {
        seen(p.time);
    }
    for s in spans
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
    {
        seen(nanos(s.end_time_unix_nano));
    }
    // Retention: the data's own span (plus a minute), so nothing is pruned and no series
    // reserves room for more history than the files hold.
    let data_span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let store = AnalyzerStore::new(StoreConfig {
        retention: data_span + Duration::from_secs(60),
        ..StoreConfig::default()
    });
    {
        let mut inner = store.lock();
        if let Some(r) = resource {
            inner.resource = r;
        }
        for p in pending {
            store.ingest_points(
                &mut inner,
                MetricMeta {
                    name: &p.name,
                    unit: &p.unit,
                    description: &p.description,
                    kind: p.kind,
                },
                p.points,
            );
        }
        for req in &spans {
            for ss in req.resource_spans.iter().flat_map(|rs| &rs.scope_spans) {
                for s in &ss.spans {
                    let attrs = key_values(&s.attributes);
                    let status_error = s
                        .status
                        .as_ref()
                        .filter(|st| st.code == StatusCode::Error as i32)
                        .map(|st| st.message.as_str());
                    let end = nanos(s.end_time_unix_nano);
                    store.ingest_span_input(
                        &mut inner,
                        SpanInput {
                            name: &s.name,
                            start_time: nanos(s.start_time_unix_nano),
                            end_time: end,
                            status_error,
                            attributes: &attrs,
                            trace_id: <[u8; 16]>::try_from(s.trace_id.as_slice())
                                .map_or(TraceId::INVALID, TraceId::from_bytes),
                            span_id: <[u8; 8]>::try_from(s.span_id.as_slice())
                                .map_or(SpanId::INVALID, SpanId::from_bytes),
                            parent_span_id: <[u8; 8]>::try_from(s.parent_span_id.as_slice())
                                .map_or(SpanId::INVALID, SpanId::from_bytes),
                        },
                    );
                }
            }
        }
    }
    Ok(Loaded {
        store,
        problems,
        span: first.zip(last),
        metric_batches,
        span_batches,
        log_batches,
    })
}
