//! The fleet's charts: one line per instance for each quantity an operator compares across
//! replicas (p95 latency, requests/s, queue, CPU, GPU), taken from each instance's own report.

use crate::analyzer::report::{Chart, ChartSeries};

/// (chart id in an instance report, series name there, fleet chart id, title, unit).
const FLEET_CHARTS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "latency",
        "p95",
        "fleet-latency-p95",
        "Request duration p95 per instance",
        "s",
    ),
    (
        "throughput",
        "requests/s",
        "fleet-throughput",
        "Requests per second per instance",
        "{request}/s",
    ),
    (
        "queue",
        "queued",
        "fleet-queue",
        "Queue size per instance",
        "{request}",
    ),
    (
        "utilization",
        "process cpu",
        "fleet-cpu",
        "Process CPU per instance",
        "1",
    ),
    (
        "utilization",
        "gpu",
        "fleet-gpu",
        "GPU utilization per instance",
        "1",
    ),
];

/// The fleet charts from `(instance, its report's charts)`, instances in the given order; a
/// chart no instance has a line for is left out.
pub(super) fn fleet_charts(instances: &[(String, Vec<Chart>)]) -> Vec<Chart> {
    FLEET_CHARTS
        .iter()
        .filter_map(|&(chart, series, id, title, unit)| {
            let lines: Vec<ChartSeries> = instances
                .iter()
                .filter_map(|(instance, charts)| {
                    let s = charts
                        .iter()
                        .find(|c| c.id == chart)?
                        .series
                        .iter()
                        .find(|s| s.name == series && !s.points.is_empty())?;
                    Some(ChartSeries {
                        name: instance.clone(),
                        points: s.points.clone(),
                    })
                })
                .collect();
            (!lines.is_empty()).then(|| Chart {
                id: id.into(),
                title: title.into(),
                unit: unit.into(),
                series: lines,
            })
        })
        .collect()
}
