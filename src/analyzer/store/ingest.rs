//! Ingestion: the SDK's exported metrics and spans (through [`ExportObserver`]) and the points
//! and spans read from OTLP files, turned into the store's series and span slots. Runs on the
//! export threads, never on the application's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::Status;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::trace::SpanData;

use super::config::{MAX_SPAN_NAMES, OVERFLOW_KEY, OVERFLOW_SPAN_NAME};
use super::histogram::HistogramDelta;
use super::metric_values::{Attributes, MetricKind};
use super::series::{RawPoint, RawValue};
use super::span_values::{RecentSpan, SpanSlot, UsageStats};
use super::{AnalyzerStore, Inner, MetricHistory};
use crate::instruments::{COLLECTOR_SCOPE, GENERATION_KEY};
use crate::pipeline::ExportObserver;

fn attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attributes {
    let mut out: Attributes = kvs
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    out.sort();
    out
}

fn overflow_attributes() -> Attributes {
    vec![(OVERFLOW_KEY.to_string(), "true".to_string())]
}

impl AnalyzerStore {
    fn ingest_metric(&self, inner: &mut Inner, metric: &Metric) {
        let (kind, points) = match metric.data() {
            AggregatedMetrics::F64(d) => convert(d, |v| v),
            AggregatedMetrics::U64(d) => convert(d, |v| v as f64),
            AggregatedMetrics::I64(d) => convert(d, |v| v as f64),
        };
        self.ingest_points(
            inner,
            MetricMeta {
                name: metric.name(),
                unit: metric.unit(),
                description: metric.description(),
                kind,
            },
            points,
        );
    }

    /// Ingests one metric's points of one collection (from the SDK or from an OTLP file).
    pub(in crate::analyzer) fn ingest_points(
        &self,
        inner: &mut Inner,
        meta: MetricMeta<'_>,
        points: Vec<RawPoint>,
    ) {
        let kind = meta.kind;
        let max_series = self.config.max_series_per_metric;
        // One point per collection for the whole retention, allocated once (no doubling).
        let expected_points = (self.config.retention.as_secs_f64()
            / self.config.resolution.as_secs_f64().max(0.001))
        .ceil()
        .clamp(1.0, 4096.0) as usize
            + 2;
        let history = inner
            .metrics
            .entry(meta.name.to_string())
            .or_insert_with(|| MetricHistory {
                unit: meta.unit.to_string(),
                description: meta.description.to_string(),
                kind,
                series: HashMap::new(),
            });
        history.kind = kind;
        // A redefinition (a late `describe_*!`, another unit) is a new stream: its metadata wins.
        if history.unit != meta.unit || history.description != meta.description {
            history.unit = meta.unit.to_string();
            history.description = meta.description.to_string();
        }
        // Series past the limit are summed into one overflow point per collection *before*
        // normalizing, so the overflow series is itself a consistent cumulative (or delta) series.
        let mut overflow: Option<RawPoint> = None;
        let overflow_attrs = overflow_attributes();
        for raw in points {
            // The SDK's own overflow series joins ours, so the series gets one point per collection.
            if raw.attributes != overflow_attrs
                && (history.series.contains_key(&raw.attributes)
                    || history.series.len() < max_series)
            {
                let series = history.series.entry(raw.attributes.clone()).or_default();
                if let Some(point) = series.normalize(&raw.attributes, raw.time, raw.value) {
                    series.push(point, expected_points);
                }
            } else {
                match &mut overflow {
                    None => {
                        overflow = Some(RawPoint {
                            attributes: overflow_attributes(),
                            ..raw
                        })
                    }
                    Some(acc) => acc.value.absorb(raw.value),
                }
            }
        }
        if let Some(raw) = overflow {
            let series = history.series.entry(raw.attributes.clone()).or_default();
            if let Some(point) = series.normalize(&raw.attributes, raw.time, raw.value) {
                series.points.push_back(point);
            }
        }
    }

    fn ingest_span(&self, inner: &mut Inner, span: &SpanData) {
        let parent = span.parent_span_id;
        self.ingest_span_input(
            inner,
            SpanInput {
                name: span.name.as_ref(),
                start_time: span.start_time,
                end_time: span.end_time,
                status_error: match &span.status {
                    Status::Error { description } => Some(description.as_ref()),
                    _ => None,
                },
                attributes: &span.attributes,
                trace_id: span.span_context.trace_id(),
                span_id: span.span_context.span_id(),
                parent_span_id: parent,
            },
        );
    }

    /// Ingests one ended span (from the SDK or from an OTLP file).
    pub(in crate::analyzer) fn ingest_span_input(&self, inner: &mut Inner, span: SpanInput<'_>) {
        let error_type = span.status_error.map(|description| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| kv.value.to_string())
                .unwrap_or_else(|| {
                    if description.is_empty() {
                        "error".into()
                    } else {
                        description.to_string()
                    }
                })
        });
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default()
            .as_secs_f64();
        let slot_start = align(span.end_time, self.config.resolution);
        let name = if inner.span_slots.contains_key(span.name)
            || inner.span_slots.len() < MAX_SPAN_NAMES
        {
            span.name
        } else {
            OVERFLOW_SPAN_NAME
        };
        let mut usage = UsageStats::default();
        let (mut op_type, mut op_name) = (None, None);
        for kv in span.attributes {
            let key = kv.key.as_str();
            if key.starts_with("genscope.usage.") {
                usage.add_attribute(key, &kv.value);
            } else if key == crate::instruments::catalog::operation::OPERATION_TYPE {
                op_type = Some(kv.value.as_str());
            } else if key == crate::instruments::catalog::operation::OPERATION_NAME {
                op_name = Some(kv.value.as_str());
            }
        }
        let failed = error_type.is_some();
        // Looked up by reference first: a known name allocates nothing.
        let slots = match inner.span_slots.get_mut(name) {
            Some(slots) => slots,
            None => inner.span_slots.entry(name.to_string()).or_default(),
        };
        SpanSlot::find_or_insert(slots, slot_start).add(failed, duration, &usage);
        if let (Some(t), Some(n)) = (op_type, op_name) {
            let key = (t.into_owned(), n.into_owned());
            if inner.operation_slots.contains_key(&key)
                || inner.operation_slots.len() < MAX_SPAN_NAMES
            {
                let slots = inner.operation_slots.entry(key).or_default();
                SpanSlot::find_or_insert(slots, slot_start).add(failed, duration, &usage);
            }
        }

        // The oldest record's allocations are reused when the ring is full.
        let mut record = if inner.recent_spans.len() >= self.config.max_recent_spans.max(1) {
            inner.recent_spans.pop_front()
        } else {
            None
        };
        match &mut record {
            Some(r) => {
                r.name.clear();
                r.name.push_str(span.name);
                r.attributes.clear();
                r.attributes.extend_from_slice(span.attributes);
                r.trace_id = span.trace_id;
                r.span_id = span.span_id;
                r.parent_span_id = span.parent_span_id;
                r.start = span.start_time;
                r.end = span.end_time;
                r.error_type = error_type;
            }
            None => {
                record = Some(RecentSpan {
                    name: span.name.to_string(),
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    start: span.start_time,
                    end: span.end_time,
                    error_type,
                    attributes: span.attributes.to_vec(),
                })
            }
        }
        if self.config.max_recent_spans > 0 {
            inner.recent_spans.extend(record);
        }
        while inner.recent_spans.len() > self.config.max_recent_spans {
            inner.recent_spans.pop_front();
        }
        inner.spans_seen += 1;
    }
}

/// What the store needs of one metric, whatever its source.
pub(in crate::analyzer) struct MetricMeta<'a> {
    pub(in crate::analyzer) name: &'a str,
    pub(in crate::analyzer) unit: &'a str,
    pub(in crate::analyzer) description: &'a str,
    pub(in crate::analyzer) kind: MetricKind,
}

/// What the store needs of one ended span, whatever its source.
pub(in crate::analyzer) struct SpanInput<'a> {
    pub(in crate::analyzer) name: &'a str,
    pub(in crate::analyzer) start_time: SystemTime,
    pub(in crate::analyzer) end_time: SystemTime,
    /// `Some(description)` when the status is an error.
    pub(in crate::analyzer) status_error: Option<&'a str>,
    pub(in crate::analyzer) attributes: &'a [opentelemetry::KeyValue],
    pub(in crate::analyzer) trace_id: opentelemetry::trace::TraceId,
    pub(in crate::analyzer) span_id: opentelemetry::trace::SpanId,
    /// `SpanId::INVALID` for a root span.
    pub(in crate::analyzer) parent_span_id: opentelemetry::trace::SpanId,
}

fn align(t: SystemTime, resolution: Duration) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let res = resolution.as_nanos().max(1);
    let aligned = since.as_nanos() / res * res;
    SystemTime::UNIX_EPOCH + Duration::from_nanos(aligned as u64)
}

fn convert<T: Copy>(
    data: &MetricData<T>,
    to_f64: impl Fn(T) -> f64,
) -> (MetricKind, Vec<RawPoint>) {
    match data {
        MetricData::Gauge(g) => (
            MetricKind::Gauge,
            g.data_points()
                .map(|p| RawPoint {
                    attributes: attributes(p.attributes()),
                    time: g.time(),
                    value: RawValue::Gauge(to_f64(p.value())),
                })
                .collect(),
        ),
        MetricData::Sum(s) => (
            if s.is_monotonic() {
                MetricKind::Counter
            } else {
                MetricKind::UpDownCounter
            },
            sum_points(s, &to_f64),
        ),
        MetricData::Histogram(h) => (MetricKind::Histogram, histogram_points(h, &to_f64)),
        MetricData::ExponentialHistogram(h) => (
            MetricKind::ExponentialHistogram,
            h.data_points()
                .map(|p| RawPoint {
                    attributes: attributes(p.attributes()),
                    time: h.time(),
                    value: RawValue::Histogram {
                        start: h.start_time(),
                        cumulative: h.temporality() == Temporality::Cumulative,
                        delta: HistogramDelta {
                            bounds: Arc::from(Vec::new()),
                            counts: vec![p.count() as u64],
                            count: p.count() as u64,
                            sum: to_f64(p.sum()),
                            min: p.min().map(&to_f64),
                            max: p.max().map(&to_f64),
                        },
                    },
                })
                .collect(),
        ),
    }
}

fn sum_points<T: Copy>(s: &Sum<T>, to_f64: &impl Fn(T) -> f64) -> Vec<RawPoint> {
    let cumulative = s.temporality() == Temporality::Cumulative;
    s.data_points()
        .map(|p| RawPoint {
            attributes: attributes(p.attributes()),
            time: s.time(),
            value: RawValue::Sum {
                start: s.start_time(),
                value: to_f64(p.value()),
                cumulative,
            },
        })
        .collect()
}

fn histogram_points<T: Copy>(h: &Histogram<T>, to_f64: &impl Fn(T) -> f64) -> Vec<RawPoint> {
    let cumulative = h.temporality() == Temporality::Cumulative;
    h.data_points()
        .map(|p| RawPoint {
            attributes: attributes(p.attributes()),
            time: h.time(),
            value: RawValue::Histogram {
                start: h.start_time(),
                cumulative,
                delta: HistogramDelta {
                    bounds: Arc::from(p.bounds().collect::<Vec<f64>>()),
                    counts: p.bucket_counts().collect(),
                    count: p.count(),
                    sum: to_f64(p.sum()),
                    min: p.min().map(to_f64),
                    max: p.max().map(to_f64),
                },
            },
        })
        .collect()
}

impl ExportObserver for AnalyzerStore {
    fn observe_metrics(&self, metrics: &ResourceMetrics) {
        let now = SystemTime::now();
        {
            let mut inner = self.lock();
            if inner.resource.is_empty() {
                inner.resource = resource_attributes(metrics.resource());
            }
            let retired = self.retired.as_deref().filter(|r| !r.is_empty());
            if let Some(r) = retired {
                for name in r.take_purged() {
                    inner.metrics.remove(&name);
                }
            }
            for scope in metrics.scope_metrics() {
                let generation = retired.and_then(|_| {
                    (scope.scope().name() == COLLECTOR_SCOPE).then(|| {
                        scope
                            .scope()
                            .attributes()
                            .find(|kv| kv.key.as_str() == GENERATION_KEY)
                            .and_then(|kv| match kv.value {
                                opentelemetry::Value::I64(g) => Some(g as u64),
                                _ => None,
                            })
                            .unwrap_or(0)
                    })
                });
                for metric in scope.metrics() {
                    if let (Some(r), Some(g)) = (retired, generation)
                        && r.is_retired(metric.name(), g)
                    {
                        continue;
                    }
                    self.ingest_metric(&mut inner, metric);
                }
            }
            inner.metric_batches += 1;
            inner.last_collection = Some(now);
        }
        self.prune(now);
    }

    fn observe_spans(&self, spans: &[SpanData]) {
        {
            let mut inner = self.lock();
            for span in spans {
                self.ingest_span(&mut inner, span);
            }
            inner.span_batches += 1;
        }
        self.prune(SystemTime::now());
    }

    fn observe_resource(&self, resource: &Resource) {
        self.lock().resource = resource_attributes(resource);
    }
}

fn resource_attributes(resource: &Resource) -> Attributes {
    let mut out: Attributes = resource
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}
