//! Error events over the window, from `genscope.events` (the layer counts `tracing` WARN and
//! ERROR events by level and target): the total, the busiest collection's rate per minute, and
//! the target with the most.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::analyzer::store::{AnalyzerStore, PointValue, Window};

const EVENTS: &str = "genscope.events";
const ERROR: (&str, &str) = ("genscope.event.level", "ERROR");

/// (errors in the window, peak errors per minute, the target with the most errors).
pub(super) fn error_events(store: &AnalyzerStore, window: Window) -> Option<(f64, f64, String)> {
    let total = store.sum(EVENTS, &[ERROR], window)?;
    let mut per_collection: BTreeMap<SystemTime, f64> = BTreeMap::new();
    let mut per_target: BTreeMap<String, f64> = BTreeMap::new();
    store.each_point(EVENTS, &[ERROR], window, |attrs, p| {
        if let PointValue::Sum { delta, .. } = p.value {
            *per_collection.entry(p.time()).or_default() += delta;
            if let Some((_, target)) = attrs.iter().find(|(k, _)| k == "genscope.event.target") {
                *per_target.entry(target.clone()).or_default() += delta;
            }
        }
    });
    let interval = store.config().resolution.as_secs_f64().max(1e-3);
    let peak = per_collection.values().copied().fold(0.0, f64::max) / interval * 60.0;
    let top = per_target
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(t, _)| t)
        .unwrap_or_default();
    Some((total, peak, top))
}
