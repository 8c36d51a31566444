//! Exemplars on OpenMetrics `_bucket` lines: `# {trace_id="<32 hex>",span_id="<16 hex>"} VALUE
//! TIMESTAMP` (the OTel Prometheus-compatibility label names), the latest measurement of each
//! bucket, from the instruments' [`ExemplarRegistry`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use crate::analyzer::Attributes;
use crate::instruments::{Exemplar, ExemplarRegistry, SeriesKey};

/// One metric's exemplars by series.
type BySeries = HashMap<SeriesKey, Vec<Option<Exemplar>>>;

/// The exemplars of the metrics being rendered, read once per exposition.
pub(super) struct Exemplars<'a> {
    registry: Option<&'a ExemplarRegistry>,
    metric: Option<(String, BySeries)>,
}

impl<'a> Exemplars<'a> {
    pub(super) fn new(registry: Option<&'a ExemplarRegistry>) -> Self {
        Exemplars {
            registry,
            metric: None,
        }
    }

    /// The exemplars of `metric`'s series `attributes` (one per bucket, `+Inf` last).
    pub(super) fn series(
        &mut self,
        metric: &str,
        attributes: &Attributes,
    ) -> Vec<Option<Exemplar>> {
        let Some(registry) = self.registry else {
            return Vec::new();
        };
        if self.metric.as_ref().is_none_or(|(m, _)| m != metric) {
            let by_series = registry.metric(metric).into_iter().collect();
            self.metric = Some((metric.to_string(), by_series));
        }
        let mut key: SeriesKey = attributes.clone();
        key.sort();
        self.metric
            .as_ref()
            .and_then(|(_, m)| m.get(&key).cloned())
            .unwrap_or_default()
    }
}

/// ` # {trace_id="...",span_id="..."} value timestamp` for a bucket `(lo, hi]`, or nothing when
/// there is no exemplar or its value is not in the bucket (OpenMetrics requires it is).
pub(super) fn suffix(e: Option<&Exemplar>, lo: f64, hi: f64) -> String {
    let Some(e) = e else {
        return String::new();
    };
    if !(e.value > lo && e.value <= hi) {
        return String::new();
    }
    let mut out = String::from(" # {");
    if let Some((trace, span)) = e.trace {
        let _ = write!(out, "trace_id=\"{trace}\",span_id=\"{span}\"");
    }
    let t = e
        .time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // Recorded values are finite (the recording paths refuse others): Rust's shortest
    // round-trip decimal form, which every OpenMetrics parser reads.
    let _ = write!(out, "}} {} {t:.3}", e.value);
    out
}
