//! The report as data: [`Report`] and its sections, the JSON document (schema [`SCHEMA`],
//! field by field in `docs/report-schema.md`) that every renderer reads.

use serde::{Deserialize, Serialize};

use super::findings::{Finding, Signals, Thresholds};
use super::trend::Trend;

/// Version of the JSON document (field by field in `docs/report-schema.md`). Bumped on any
/// incompatible change; fields are only added within a version.
pub const SCHEMA: &str = "genscope.report/1";

/// What a report is computed with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportConfig {
    /// Finding thresholds.
    pub thresholds: Thresholds,
}

/// `healthy`, `degraded` (a warning finding) or `unhealthy` (a critical finding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No warning or critical finding.
    Healthy,
    /// At least one warning.
    Degraded,
    /// At least one critical finding.
    Unhealthy,
}

/// Health with its reasons (the titles of the findings behind it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Status.
    pub status: HealthStatus,
    /// Why.
    pub reasons: Vec<String>,
}

/// The window a report covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportWindow {
    /// RFC 3339 start (exclusive).
    pub start: String,
    /// RFC 3339 end (inclusive).
    pub end: String,
    /// Length, seconds.
    pub seconds: f64,
}

/// avg / p95 / peak / last of per-collection values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub avg: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Largest.
    pub peak: f64,
    /// Latest.
    pub last: f64,
    /// Values.
    pub samples: usize,
}

impl Stat {
    /// Over `values` in time order; `None` when empty.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(Stat {
            avg: v.iter().sum::<f64>() / v.len() as f64,
            p95: sorted[rank - 1],
            peak: sorted[sorted.len() - 1],
            last: v[v.len() - 1],
            samples: v.len(),
        })
    }
}

/// One operation (type and name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRow {
    /// `genscope.operation.type`.
    pub kind: String,
    /// `genscope.operation.name`.
    pub name: String,
    /// Ended in the window.
    pub count: u64,
    /// Per second over the window.
    pub throughput_per_s: f64,
    /// 0..1.
    pub success_rate: f64,
    /// Failures per `error.type`.
    pub error_types: Vec<(String, u64)>,
    /// Duration quantiles, seconds: from the spans' sketch (1 % relative error) or the
    /// histogram (one bucket width), as `percentiles_from` says.
    pub p50_s: Option<f64>,
    /// See `p50_s`.
    pub p95_s: Option<f64>,
    /// See `p50_s`.
    pub p99_s: Option<f64>,
    /// Mean CPU time per sampled span, seconds.
    pub cpu_time_s: Option<f64>,
    /// `span_sketch`, `histogram` or `none`: where the quantiles come from.
    #[serde(default)]
    pub percentiles_from: String,
}

/// Generation service figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationSection {
    /// Requests ended in the window.
    pub requests: Option<f64>,
    /// Of which failed.
    pub failed: Option<f64>,
    /// Requests per second.
    pub requests_per_s: Option<f64>,
    /// Request duration p50 / p95 / p99, seconds.
    pub duration_s: Option<[f64; 3]>,
    /// Time to first token p50 / p95, seconds.
    pub ttft_s: Option<[f64; 2]>,
    /// Time per output token p50 / p95, seconds.
    pub tpot_s: Option<[f64; 2]>,
    /// Output tokens per second.
    pub output_tokens_per_s: Option<f64>,
    /// Queue size.
    pub queue_size: Option<Stat>,
    /// Queue wait p50 / p95, seconds.
    pub queue_wait_s: Option<[f64; 2]>,
    /// Generations in progress.
    pub active: Option<Stat>,
    /// Image/video denoising steps per second (mean).
    pub steps_per_s: Option<f64>,
}

/// Resource figures over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSection {
    /// Host CPU busy share (1 - idle - iowait).
    pub host_cpu: Option<Stat>,
    /// This process's share of its CPUs.
    pub process_cpu: Option<Stat>,
    /// Host memory used share.
    pub host_memory: Option<Stat>,
    /// This process's RSS, bytes.
    pub process_memory_bytes: Option<Stat>,
    /// GPU utilization, mean over devices.
    pub gpu_utilization: Option<Stat>,
    /// GPU memory used / installed, the fullest device.
    pub gpu_memory: Option<Stat>,
    /// GPU power, W, summed over devices.
    pub gpu_power_w: Option<Stat>,
    /// GPU temperature, °C, the hottest die.
    pub gpu_temperature_c: Option<Stat>,
}

/// The efficiency score and its factors (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    /// 0..1; `None` when no factor was observed.
    pub score: Option<f64>,
    /// `(factor, value, weight)` of each observed factor.
    pub factors: Vec<(String, f64, f64)>,
    /// The formula, in words.
    pub formula: String,
}

/// Telemetry that did not make it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySection {
    /// Spans handed to the processor in the window.
    pub spans_processed: Option<f64>,
    /// Dropped (queue full, after shutdown).
    pub spans_dropped: Option<f64>,
    /// Spans and metric points whose export failed.
    pub export_failures: Option<f64>,
}

/// One chart: series of `[unix seconds, value]` points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chart {
    /// Stable id (`latency`, `throughput`, `queue`, `utilization`, `memory`).
    pub id: String,
    /// Title.
    pub title: String,
    /// Unit of every series.
    pub unit: String,
    /// Series.
    pub series: Vec<ChartSeries>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartSeries {
    /// Legend.
    pub name: String,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<[f64; 2]>,
}

/// A whole report. Serialize it for the JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: String,
    /// RFC 3339.
    pub generated_at: String,
    /// Window.
    pub window: ReportWindow,
    /// `service.name`, when known.
    pub service: Option<String>,
    /// Health.
    pub health: Health,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Operations by type and name.
    pub operations: Vec<OperationRow>,
    /// Operations by type (name `*`).
    pub operation_types: Vec<OperationRow>,
    /// Generation.
    pub generation: GenerationSection,
    /// Resources.
    pub resources: ResourceSection,
    /// Efficiency.
    pub efficiency: Efficiency,
    /// Trends of the key series.
    pub trends: Vec<Trend>,
    /// Telemetry loss.
    pub telemetry: TelemetrySection,
    /// Chart data.
    pub charts: Vec<Chart>,
    /// The numbers the findings were computed from.
    pub signals: Signals,
    /// A fleet report's instances, each with its health and findings (empty in local reports).
    #[serde(default)]
    pub instances: Vec<InstanceSummary>,
    /// What a fleet report could not see: signals whose query failed, and series without the
    /// `--by` label (empty in local reports).
    #[serde(default)]
    pub not_seen: Vec<NotSeen>,
}

/// One instance of a fleet report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSummary {
    /// The `--by` label's value.
    pub instance: String,
    /// Its health, from its own findings.
    pub health: HealthStatus,
    /// Which metric names it was read under: `genscope`, `vllm` or `sglang`.
    pub naming: String,
    /// Requests per second.
    pub requests_per_s: Option<f64>,
    /// Share of requests that failed.
    pub error_rate: Option<f64>,
    /// Request duration p50 and p95, seconds.
    pub duration_p50_s: Option<f64>,
    /// See `duration_p50_s`.
    pub duration_p95_s: Option<f64>,
    /// Mean queue size.
    pub queue_mean: Option<f64>,
    /// Peak KV-cache usage, 0..1.
    pub kv_cache_peak: Option<f64>,
    /// Mean process CPU share (else host CPU), 0..1.
    pub cpu_mean: Option<f64>,
    /// Mean GPU utilization, 0..1.
    pub gpu_mean: Option<f64>,
    /// Its findings (each with `instance` set).
    pub findings: Vec<Finding>,
}

/// Something a fleet report could not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotSeen {
    /// The metric (stored name) or `*` for the whole backend.
    pub signal: String,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_avg_p95_peak_last() {
        let s = Stat::of(&(1..=100).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert_eq!(
            (s.avg, s.p95, s.peak, s.last, s.samples),
            (50.5, 95.0, 100.0, 100.0, 100)
        );
        assert!(Stat::of(&[f64::NAN]).is_none());
    }
}
