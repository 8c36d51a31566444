//! Reads: the current-value snapshot, metric and span listings, and the basic windowed queries
//! (sum, rate, gauge statistics, merged histograms, span statistics). `query.rs` builds the
//! aggregations on these.

use std::time::SystemTime;

use super::series::{Point, PointValue};
use super::{
    AnalyzerStore, Attributes, GaugeStats, HistogramSummary, MetricInfo, MetricKind,
    MetricSnapshot, SeriesSnapshot, SpanRecord, SpanStats, Window,
};

fn matches(attrs: &Attributes, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| attrs.iter().any(|(ak, av)| ak == k && av == v))
}

impl AnalyzerStore {
    /// Every metric's current value per series (cumulative view), sorted by name: what
    /// `/metrics` and [`crate::Genscope::export_metrics`] render. Series not reported within the
    /// retention are gone.
    ///
    /// ```
    /// # use genscope::analyzer::{AnalyzerStore, StoreConfig};
    /// let store = AnalyzerStore::new(StoreConfig::default());
    /// assert!(store.snapshot().is_empty());
    /// ```
    pub fn snapshot(&self) -> Vec<MetricSnapshot> {
        let inner = self.lock();
        let mut out: Vec<MetricSnapshot> = inner
            .metrics
            .iter()
            .map(|(name, m)| {
                let mut series: Vec<SeriesSnapshot> =
                    m.series.values().filter_map(|s| s.state.clone()).collect();
                series.sort_by(|a, b| a.attributes.cmp(&b.attributes));
                MetricSnapshot {
                    name: name.clone(),
                    unit: m.unit.clone(),
                    description: m.description.clone(),
                    kind: m.kind,
                    series,
                }
            })
            .filter(|m| !m.series.is_empty())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every metric held, sorted by name.
    pub fn metrics(&self) -> Vec<MetricInfo> {
        let inner = self.lock();
        let mut out: Vec<MetricInfo> = inner
            .metrics
            .iter()
            .map(|(name, m)| MetricInfo {
                name: name.clone(),
                unit: m.unit.clone(),
                description: m.description.clone(),
                kind: m.kind,
                series: m.series.len(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Attribute sets of a metric's series.
    pub fn series(&self, name: &str) -> Vec<Attributes> {
        let inner = self.lock();
        let mut out: Vec<Attributes> = inner
            .metrics
            .get(name)
            .map(|m| m.series.keys().cloned().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    pub(in crate::analyzer) fn each_point(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
        mut f: impl FnMut(&Attributes, &Point),
    ) -> bool {
        let inner = self.lock();
        if let Some(m) = inner.metrics.get(name) {
            for (attrs, series) in &m.series {
                if !matches(attrs, filter) {
                    continue;
                }
                for p in series.points.iter().filter(|p| window.contains(p.time())) {
                    f(attrs, p);
                }
            }
            return true;
        }
        // No data under genscope's name: the vendor names standing in for it (aliases.rs).
        let mut known = false;
        for source in self.config.aliases.sources(name) {
            let Some(m) = inner.metrics.get(source.vendor) else {
                continue;
            };
            known = true;
            for (attrs, series) in &m.series {
                let attrs = source.renamed(attrs);
                if !matches(&attrs, filter) {
                    continue;
                }
                for p in series.points.iter().filter(|p| window.contains(p.time())) {
                    f(&attrs, p);
                }
            }
        }
        known
    }

    /// Increase of a counter (or net change of an up-down counter) over the window, summed over the
    /// series whose attributes include `filter`. `None` if the metric is unknown.
    ///
    /// ```
    /// # use genscope::analyzer::{AnalyzerStore, StoreConfig, Window};
    /// let store = AnalyzerStore::new(StoreConfig::default());
    /// assert_eq!(store.sum("requests", &[("route", "/generate")], Window::all()), None);
    /// ```
    pub fn sum(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<f64> {
        let mut total = 0.0;
        let mut any = false;
        let known = self.each_point(name, filter, window, |_, p| {
            if let PointValue::Sum { delta, .. } = p.value {
                total += delta;
                any = true;
            }
        });
        (known && any).then_some(total)
    }

    /// [`Self::sum`] divided by the window length, per second.
    pub fn rate(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<f64> {
        let secs = window.seconds();
        self.sum(name, filter, window)
            .filter(|_| secs > 0.0)
            .map(|s| s / secs)
    }

    /// The kind of a metric, if held.
    pub(in crate::analyzer) fn kind(&self, name: &str) -> Option<MetricKind> {
        let inner = self.lock();
        inner.metrics.get(name).map(|m| m.kind).or_else(|| {
            self.config
                .aliases
                .sources(name)
                .iter()
                .find_map(|s| inner.metrics.get(s.vendor).map(|m| m.kind))
        })
    }

    /// Per-collection samples of a gauge or a sum's running total over the window, oldest first;
    /// with several matching series, each collection's values are summed across series.
    pub(in crate::analyzer) fn samples(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
    ) -> Vec<f64> {
        let mut by_time: Vec<(SystemTime, f64)> = Vec::new();
        self.each_point(name, filter, window, |_, p| {
            let v = match p.value {
                PointValue::Gauge(v) => v,
                PointValue::Sum { total, .. } => total,
                PointValue::Histogram(_) => return,
            };
            by_time.push((p.time(), v));
        });
        by_time.sort_by_key(|(t, _)| *t);
        let mut merged: Vec<(SystemTime, f64)> = Vec::new();
        for (t, v) in by_time {
            match merged.last_mut() {
                Some((lt, lv)) if *lt == t => *lv += v,
                _ => merged.push((t, v)),
            }
        }
        merged.into_iter().map(|(_, v)| v).collect()
    }

    /// Sampled values of a gauge, or of an up-down counter's running value, over the window.
    /// With several matching series, each collection's values are summed across series first.
    pub fn gauge(&self, name: &str, filter: &[(&str, &str)], window: Window) -> Option<GaugeStats> {
        GaugeStats::of(&self.samples(name, filter, window))
    }

    /// A histogram's buckets merged over the window and the matching series.
    /// Series with different bucket boundaries than the first are skipped.
    ///
    /// Min and max are exact with delta temporality; with cumulative temporality the wire
    /// carries only lifetime extremes, so they are `None` past the first interval and
    /// [`HistogramSummary::quantile`] falls back to bucket bounds.
    pub fn histogram(
        &self,
        name: &str,
        filter: &[(&str, &str)],
        window: Window,
    ) -> Option<HistogramSummary> {
        let mut out: Option<HistogramSummary> = None;
        self.each_point(name, filter, window, |_, p| {
            let PointValue::Histogram(h) = &p.value else {
                return;
            };
            match &mut out {
                None => out = Some(h.summary()),
                Some(acc) => {
                    acc.absorb(&h.summary());
                }
            }
        });
        out
    }

    /// Span statistics over the window for one span name, or all spans with `None`.
    /// Resolution is the slot width: slots overlapping the window count whole.
    pub fn span_stats(&self, name: Option<&str>, window: Window) -> SpanStats {
        let inner = self.lock();
        let mut stats = SpanStats::default();
        for (n, slots) in &inner.span_slots {
            if name.is_some_and(|want| want != n) {
                continue;
            }
            for slot in slots {
                let start = slot.start;
                let end = start + self.config.resolution;
                if end > window.start && start <= window.end {
                    stats.count += slot.count;
                    stats.errors += slot.errors;
                    stats.durations.merge(&slot.durations);
                    stats.usage.merge(&slot.usage);
                }
            }
        }
        stats
    }

    /// Span names seen, sorted.
    pub fn span_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().span_slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// The most recent ended spans, newest last, at most `limit`.
    pub fn recent_spans(&self, limit: usize) -> Vec<SpanRecord> {
        let inner = self.lock();
        let skip = inner.recent_spans.len().saturating_sub(limit);
        inner
            .recent_spans
            .iter()
            .skip(skip)
            .map(|r| r.to_record())
            .collect()
    }

    /// The trace ids of the `n` slowest spans that ended in `window` and satisfy `keep` (by
    /// their attributes as exported), distinct, slowest first. Formats only what it returns.
    pub(in crate::analyzer) fn slowest_traces(
        &self,
        window: Window,
        n: usize,
        keep: impl Fn(&[opentelemetry::KeyValue]) -> bool,
    ) -> Vec<String> {
        let inner = self.lock();
        let mut spans: Vec<_> = inner
            .recent_spans
            .iter()
            .filter(|s| s.end >= window.start && s.end <= window.end && keep(&s.attributes))
            .collect();
        spans.sort_by(|a, b| b.duration_seconds().total_cmp(&a.duration_seconds()));
        let mut ids = Vec::new();
        for s in spans {
            if !ids.contains(&s.trace_id) {
                ids.push(s.trace_id);
                if ids.len() == n {
                    break;
                }
            }
        }
        ids.iter().map(|t| t.to_string()).collect()
    }
}
