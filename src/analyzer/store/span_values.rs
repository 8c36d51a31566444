//! What the store keeps and answers about spans: ended [`SpanRecord`]s, [`SpanStats`] with
//! their resource usage, and the per-name time slots they are aggregated in.

use std::collections::VecDeque;
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};

use super::metric_values::Attributes;
use crate::analyzer::sketch::Sketch;

/// One ended span, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Span name.
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// Start time.
    pub start: SystemTime,
    /// End time.
    pub end: SystemTime,
    /// Whether the span ended with an error status.
    pub error: bool,
    /// The `error.type` attribute or the status description, when the span failed.
    pub error_type: Option<String>,
    /// Attributes, values as text.
    pub attributes: Attributes,
}

impl SpanRecord {
    /// Duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.end
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// One ended span as the store keeps it: ids as numbers and attributes as exported, so that
/// ingestion copies and formats nothing (at 200k spans/s every span passes through here, and
/// only the last `max_recent_spans` are ever read). [`SpanRecord`] is made from it on read.
#[derive(Debug, Clone)]
pub(in crate::analyzer) struct RecentSpan {
    pub(in crate::analyzer) name: String,
    pub(in crate::analyzer) trace_id: TraceId,
    pub(in crate::analyzer) span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub(in crate::analyzer) parent_span_id: SpanId,
    pub(in crate::analyzer) start: SystemTime,
    pub(in crate::analyzer) end: SystemTime,
    pub(in crate::analyzer) error_type: Option<String>,
    pub(in crate::analyzer) attributes: Vec<KeyValue>,
}

impl RecentSpan {
    /// The public record: ids as hex, attribute values as text, sorted by key.
    pub(in crate::analyzer) fn to_record(&self) -> SpanRecord {
        let mut attributes: Attributes = self
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        attributes.sort();
        SpanRecord {
            name: self.name.clone(),
            trace_id: self.trace_id.to_string(),
            span_id: self.span_id.to_string(),
            parent_span_id: (self.parent_span_id != SpanId::INVALID)
                .then(|| self.parent_span_id.to_string()),
            start: self.start,
            end: self.end,
            error: self.error_type.is_some(),
            error_type: self.error_type.clone(),
            attributes,
        }
    }

    /// Duration in seconds.
    pub(in crate::analyzer) fn duration_seconds(&self) -> f64 {
        self.end
            .duration_since(self.start)
            .unwrap_or_default()
            .as_secs_f64()
    }
}

/// Span statistics over a window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanStats {
    /// Spans ended in the window.
    pub count: u64,
    /// Of which with an error status.
    pub errors: u64,
    /// Durations in seconds.
    pub durations: Sketch,
    /// Resource usage the spans carried (`genscope.usage.*` attributes).
    pub usage: UsageStats,
}

/// One `genscope.usage.*` attribute over the spans that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStat {
    /// Spans that carried the attribute (absent = not measured, never counted as zero).
    pub samples: u64,
    /// Sum of the values.
    pub sum: f64,
    /// Largest value.
    pub max: f64,
}

impl UsageStat {
    fn add(&mut self, v: f64) {
        self.max = if self.samples == 0 {
            v
        } else {
            self.max.max(v)
        };
        self.samples += 1;
        self.sum += v;
    }
    /// Adds another statistic of the same attribute.
    pub fn merge(&mut self, o: &UsageStat) {
        if o.samples == 0 {
            return;
        }
        self.max = if self.samples == 0 {
            o.max
        } else {
            self.max.max(o.max)
        };
        self.samples += o.samples;
        self.sum += o.sum;
    }
    /// Mean over the spans that carried it.
    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum / self.samples as f64)
    }
}

/// Resource usage of spans, per `genscope.usage.*` attribute (units as on the span: seconds,
/// ratios, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UsageStats {
    /// `genscope.usage.cpu.time`, s.
    pub cpu_time: UsageStat,
    /// `genscope.usage.process.cpu.utilization`, 0..1.
    pub process_cpu_utilization: UsageStat,
    /// `genscope.usage.memory.rss.delta`, By.
    pub rss_delta: UsageStat,
    /// `genscope.usage.memory.rss.peak`, By.
    pub rss_peak: UsageStat,
    /// `genscope.usage.gpu.utilization`, 0..1.
    pub gpu_utilization: UsageStat,
    /// `genscope.usage.gpu.memory.peak`, By.
    pub gpu_memory_peak: UsageStat,
}

impl UsageStats {
    /// Adds another set of usage statistics (e.g. several span names into one).
    pub fn merge(&mut self, o: &UsageStats) {
        self.cpu_time.merge(&o.cpu_time);
        self.process_cpu_utilization
            .merge(&o.process_cpu_utilization);
        self.rss_delta.merge(&o.rss_delta);
        self.rss_peak.merge(&o.rss_peak);
        self.gpu_utilization.merge(&o.gpu_utilization);
        self.gpu_memory_peak.merge(&o.gpu_memory_peak);
    }

    pub(super) fn add_attribute(&mut self, key: &str, value: &opentelemetry::Value) {
        use crate::operations as ops;
        let stat = match key {
            ops::CPU_TIME => &mut self.cpu_time,
            ops::PROCESS_CPU_UTILIZATION => &mut self.process_cpu_utilization,
            ops::RSS_DELTA => &mut self.rss_delta,
            ops::RSS_PEAK => &mut self.rss_peak,
            ops::GPU_UTILIZATION => &mut self.gpu_utilization,
            ops::GPU_MEMORY_PEAK => &mut self.gpu_memory_peak,
            _ => return,
        };
        let v = match value {
            opentelemetry::Value::F64(v) => *v,
            opentelemetry::Value::I64(v) => *v as f64,
            _ => return,
        };
        if v.is_finite() {
            stat.add(v);
        }
    }
}

impl SpanStats {
    /// Errors / count.
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }
}

#[derive(Debug, Clone)]
pub(in crate::analyzer) struct SpanSlot {
    pub(in crate::analyzer) start: SystemTime,
    pub(in crate::analyzer) count: u64,
    pub(in crate::analyzer) errors: u64,
    pub(in crate::analyzer) durations: Sketch,
    pub(in crate::analyzer) usage: UsageStats,
}

impl SpanSlot {
    fn new(start: SystemTime) -> Self {
        SpanSlot {
            start,
            count: 0,
            errors: 0,
            durations: Sketch::default(),
            usage: UsageStats::default(),
        }
    }

    /// The slot starting at `slot_start`, inserted in order when missing. Spans arrive nearly
    /// in end-time order, so the search runs from the back.
    pub(super) fn find_or_insert(
        slots: &mut VecDeque<SpanSlot>,
        slot_start: SystemTime,
    ) -> &mut SpanSlot {
        let pos = slots.iter().rposition(|s| s.start <= slot_start);
        match pos {
            Some(i) if slots[i].start == slot_start => &mut slots[i],
            Some(i) => {
                slots.insert(i + 1, SpanSlot::new(slot_start));
                &mut slots[i + 1]
            }
            None => {
                slots.push_front(SpanSlot::new(slot_start));
                &mut slots[0]
            }
        }
    }

    pub(super) fn add(&mut self, failed: bool, duration: f64, usage: &UsageStats) {
        self.count += 1;
        self.errors += u64::from(failed);
        self.durations.insert(duration);
        self.usage.merge(usage);
    }
}
