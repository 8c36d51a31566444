//! Per-operation statistics over a window: the seeds' `get_metrics_by_type(type, hours_back)`
//! and `get_all_metrics(hours_back)`.
//!
//! Counts, success rates and error categories come from the `genscope.operation.duration`
//! histogram, which every operation records whatever the trace sampler decides; average resource
//! usage comes from the operation spans that were sampled and exported (their `genscope.usage.*`
//! attributes). Duration percentiles come from the spans' quantile sketch (relative error 1 %,
//! [`crate::analyzer::sketch::ALPHA`]) when the exported spans cover at least
//! [`SPAN_COVERAGE`] of the counted operations (the default sampler keeps every span), and
//! otherwise from the histogram, with its error bound: at most one bucket width of
//! `OPERATION_BUCKETS`. [`OperationStats::percentile_source`] says which.

use std::collections::BTreeMap;

use super::sketch::Sketch;
use super::store::{
    AnalyzerStore, Attributes, HistogramDelta, HistogramSummary, PointValue, UsageStats, Window,
};
use crate::instruments::catalog::operation::{
    OPERATION_DURATION, OPERATION_NAME, OPERATION_OUTCOME, OPERATION_TYPE,
};

/// The share of the counted operations whose spans must be in the window for the percentiles to
/// come from the span sketch rather than from the histogram's buckets.
pub const SPAN_COVERAGE: f64 = 0.9;

/// Where [`OperationStats::quantile`] reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentileSource {
    /// The sampled spans' sketch: relative error 1 %.
    SpanSketch,
    /// The `genscope.operation.duration` histogram: error at most one bucket width.
    Histogram,
    /// Neither holds a value.
    None,
}

/// Statistics of one operation (type and name), or of a whole type (name `*`).
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStats {
    /// `genscope.operation.type`.
    pub kind: String,
    /// `genscope.operation.name`, `*` for a per-type aggregate.
    pub name: String,
    /// Operations ended in the window (unsampled: from the metric).
    pub count: u64,
    /// Of which failed.
    pub failures: u64,
    /// Failures per `error.type`, most frequent first.
    pub error_types: Vec<(String, u64)>,
    /// Durations, seconds, merged over the window.
    pub duration: Option<HistogramSummary>,
    /// Operation spans exported in the window (sampled), the base of `usage`.
    pub sampled_spans: u64,
    /// The sampled spans' durations, seconds.
    pub span_durations: Sketch,
    /// Resource usage averaged over the sampled spans.
    pub usage: UsageStats,
}

impl OperationStats {
    /// Successes / count (1 when nothing ran).
    pub fn success_rate(&self) -> f64 {
        if self.count == 0 {
            1.0
        } else {
            (self.count - self.failures) as f64 / self.count as f64
        }
    }

    /// Duration quantile, seconds (`q` in 0..=1), from [`Self::percentile_source`].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        match self.percentile_source() {
            PercentileSource::SpanSketch => self.span_durations.quantile(q),
            PercentileSource::Histogram => self.duration.as_ref().and_then(|h| h.quantile(q)),
            PercentileSource::None => None,
        }
    }

    /// The span sketch when the spans cover [`SPAN_COVERAGE`] of the operations, else the
    /// histogram.
    pub fn percentile_source(&self) -> PercentileSource {
        let spans = self.span_durations.count();
        if spans > 0 && spans as f64 >= SPAN_COVERAGE * self.count as f64 {
            PercentileSource::SpanSketch
        } else if self.duration.as_ref().is_some_and(|h| h.count > 0) {
            PercentileSource::Histogram
        } else {
            PercentileSource::None
        }
    }

    fn add_duration(&mut self, h: &HistogramDelta) {
        match &mut self.duration {
            None => self.duration = Some(h.summary()),
            Some(acc) => {
                acc.absorb_delta(h);
            }
        }
    }

    fn add_errors(&mut self, error_type: &str, n: u64) {
        if n == 0 {
            return;
        }
        match self.error_types.iter_mut().find(|(e, _)| e == error_type) {
            Some((_, c)) => *c += n,
            None => self.error_types.push((error_type.to_string(), n)),
        }
    }

    fn sort_errors(&mut self) {
        self.error_types
            .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }

    fn merge(&mut self, o: &OperationStats) {
        self.count += o.count;
        self.failures += o.failures;
        for (t, n) in &o.error_types {
            self.add_errors(t, *n);
        }
        if let Some(d) = &o.duration {
            match &mut self.duration {
                None => self.duration = Some(d.clone()),
                Some(acc) => {
                    acc.absorb(d);
                }
            }
        }
        self.sampled_spans += o.sampled_spans;
        self.span_durations.merge(&o.span_durations);
        self.usage.merge(&o.usage);
    }
}

fn attr<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl AnalyzerStore {
    /// Statistics per operation (type and name) over the window, sorted by type then name;
    /// `kind` restricts to one `genscope.operation.type`.
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// let ops = telemetry.operations();
    /// ops.download("sdxl", "hub").succeed();
    /// ops.download("sdxl", "hub").fail("timeout", "stalled at 40%");
    /// telemetry.force_flush()?;
    /// let stats = telemetry.analyzer().operation_stats(Some("download"), genscope::analyzer::Window::all());
    /// assert_eq!((stats[0].count, stats[0].failures), (2, 1));
    /// assert_eq!(stats[0].error_types, vec![("timeout".to_string(), 1)]);
    /// assert_eq!(stats[0].success_rate(), 0.5);
    /// // `build()` installs no tracing subscriber, so no operation span reached the analyzer:
    /// // the percentiles come from the histogram (with `install()` and the default sampler they
    /// // come from the spans' sketch).
    /// use genscope::analyzer::PercentileSource;
    /// assert_eq!(stats[0].sampled_spans, 0);
    /// assert_eq!(stats[0].percentile_source(), PercentileSource::Histogram);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn operation_stats(&self, kind: Option<&str>, window: Window) -> Vec<OperationStats> {
        let mut by_op: BTreeMap<(String, String), OperationStats> = BTreeMap::new();
        let filter: Vec<(&str, &str)> = kind.map(|k| (OPERATION_TYPE, k)).into_iter().collect();
        // A series' points come one after another: look its key up once per series, not per point.
        let mut current: Option<(*const Attributes, (String, String))> = None;
        self.each_point(OPERATION_DURATION, &filter, window, |attrs, p| {
            let PointValue::Histogram(h) = &p.value else {
                return;
            };
            let key = match &current {
                Some((ptr, key)) if std::ptr::eq(*ptr, attrs) => key,
                _ => {
                    let (Some(t), Some(n)) =
                        (attr(attrs, OPERATION_TYPE), attr(attrs, OPERATION_NAME))
                    else {
                        return;
                    };
                    &current.insert((attrs, (t.to_string(), n.to_string()))).1
                }
            };
            let entry = match by_op.get_mut(key) {
                Some(e) => e,
                None => by_op
                    .entry(key.clone())
                    .or_insert_with(|| empty(&key.0, &key.1)),
            };
            entry.count += h.count;
            if attr(attrs, OPERATION_OUTCOME) == Some("failure") {
                entry.failures += h.count;
                entry.add_errors(attr(attrs, "error.type").unwrap_or("_OTHER"), h.count);
            }
            entry.add_duration(h);
        });
        let resolution = self.config().resolution;
        let inner = self.lock();
        for ((t, n), slots) in &inner.operation_slots {
            if kind.is_some_and(|k| k != t) {
                continue;
            }
            let entry = by_op
                .entry((t.clone(), n.clone()))
                .or_insert_with(|| empty(t, n));
            for slot in slots {
                let end = slot.start + resolution;
                if end > window.start && slot.start <= window.end {
                    entry.sampled_spans += slot.count;
                    entry.span_durations.merge(&slot.durations);
                    entry.usage.merge(&slot.usage);
                }
            }
        }
        drop(inner);
        let mut out: Vec<OperationStats> = by_op
            .into_values()
            .filter(|s| s.count > 0 || s.sampled_spans > 0)
            .collect();
        out.iter_mut().for_each(OperationStats::sort_errors);
        out
    }

    /// Statistics per operation type (name `*`), over the window.
    ///
    /// ```
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// telemetry.operations().health_check("a").succeed();
    /// telemetry.operations().health_check("b").succeed();
    /// telemetry.force_flush()?;
    /// let by_type = telemetry.analyzer().operation_type_stats(genscope::analyzer::Window::all());
    /// assert_eq!((by_type[0].kind.as_str(), by_type[0].count), ("health_check", 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn operation_type_stats(&self, window: Window) -> Vec<OperationStats> {
        OperationStats::by_type(&self.operation_stats(None, window))
    }
}

impl OperationStats {
    /// Per-operation statistics merged per type (name `*`).
    pub(crate) fn by_type(stats: &[OperationStats]) -> Vec<OperationStats> {
        let mut by_type: BTreeMap<String, OperationStats> = BTreeMap::new();
        for s in stats {
            by_type
                .entry(s.kind.clone())
                .or_insert_with(|| empty(&s.kind, "*"))
                .merge(s);
        }
        let mut out: Vec<OperationStats> = by_type.into_values().collect();
        out.iter_mut().for_each(OperationStats::sort_errors);
        out
    }
}

fn empty(kind: &str, name: &str) -> OperationStats {
    OperationStats {
        kind: kind.to_string(),
        name: name.to_string(),
        count: 0,
        failures: 0,
        error_types: Vec::new(),
        duration: None,
        sampled_spans: 0,
        span_durations: Sketch::default(),
        usage: UsageStats::default(),
    }
}
