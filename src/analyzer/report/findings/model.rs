//! What a finding is, the thresholds of the rules and the signals they read.

use serde::{Deserialize, Serialize};

/// How bad a finding is. Health follows the worst one: critical → unhealthy, warning → degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; does not change health.
    Info,
    /// Degrades the service.
    Warning,
    /// The service is failing its users.
    Critical,
}

/// What a finding rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The metric (or derived quantity) observed.
    pub metric: String,
    /// Its value over the window.
    pub observed: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// Unit of both.
    pub unit: String,
    /// Window length, seconds.
    pub window_seconds: f64,
    /// Traces that show it: for latency findings, the slowest requests' trace ids (32 lowercase
    /// hex characters); empty when none.
    #[serde(default)]
    pub trace_ids: Vec<String>,
    /// The quantity `observed` is, in words (`share of health checks failed`); `metric` is the
    /// metric it was computed from.
    #[serde(default)]
    pub quantity: String,
    /// `observed` as people read it, with its unit (`31.0%`, `5.2x`, `12.3 MB/s`).
    #[serde(default)]
    pub observed_text: String,
    /// `threshold` the same way.
    #[serde(default)]
    pub threshold_text: String,
}

/// How a quantity reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shown {
    /// A share, as a percentage.
    Percent,
    /// A ratio of two like quantities, as `2.5x`.
    Times,
    /// The value with its UCUM unit made readable (`s`, `By/s`, `By/min`, `{event}/min`).
    Unit,
}

/// `v` in `unit` as people read it.
pub(crate) fn show(v: f64, unit: &str, how: Shown) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    match how {
        Shown::Percent => format!("{:.1}%", v * 100.0),
        Shown::Times => format!("{v:.2}x"),
        Shown::Unit => match unit {
            "s" if v < 1.0 => format!("{:.1} ms", v * 1e3),
            "s" => format!("{v:.2} s"),
            "By/s" => format!("{:.1} MB/s", v / 1e6),
            "By/min" => format!("{:.1} MiB/min", v / 1048576.0),
            "1" => format!("{v:.3}"),
            u => {
                // `{event}/min` → `events/min`; `{item}` → `items`.
                let words = u.replace(['{', '}'], "");
                let (head, tail) = words
                    .split_once('/')
                    .map_or((words.as_str(), None), |(h, t)| (h, Some(t)));
                let plural = if head.is_empty() {
                    String::new()
                } else {
                    format!(" {head}s")
                };
                match tail {
                    Some(t) => format!("{v:.1}{plural}/{t}"),
                    None => format!("{v:.1}{plural}"),
                }
            }
        },
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id (see the module table).
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// One line for people.
    pub title: String,
    /// The numbers behind it.
    pub evidence: Evidence,
    /// What to do.
    pub recommendation: String,
    /// The instance it is about in a fleet report (the `--by` label's value); `""` for
    /// fleet-wide findings and in local reports.
    #[serde(default)]
    pub instance: String,
}

/// Thresholds of the rules; every one is configurable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// `gpu-underutilized-with-queue`: mean GPU utilization below this...
    pub gpu_underutilized: f64,
    /// ...while the mean queue size is at least this.
    pub queue_backlog: f64,
    /// `gpu-memory-pressure` warning.
    pub gpu_memory_warning: f64,
    /// `gpu-memory-pressure` critical.
    pub gpu_memory_critical: f64,
    /// `gpu-throttling`: share of samples with a throttle reason active.
    pub gpu_throttle_share: f64,
    /// `cpu-bound`: mean busy share.
    pub cpu_busy: f64,
    /// `memory-growth`: bytes per minute.
    pub memory_growth_bytes_per_minute: f64,
    /// `memory-growth`: share of the mean over the window.
    pub memory_growth_share: f64,
    /// `memory-growth`: shortest window judged, seconds (shorter ones are mostly warm-up).
    pub memory_growth_min_window: f64,
    /// `high-error-rate` warning.
    pub error_rate_warning: f64,
    /// `high-error-rate` critical.
    pub error_rate_critical: f64,
    /// Fewest runs of an operation type before its error rate is judged.
    pub min_operations: u64,
    /// `queue-dominated-latency`: median queue wait / median duration.
    pub queue_share: f64,
    /// `tail-latency`: p99 / p50.
    pub tail_ratio: f64,
    /// `tail-latency`: fewest requests.
    pub tail_min_requests: u64,
    /// `slow-downloads`: bytes per second.
    pub download_bytes_per_second: f64,
    /// `frequent-fallbacks`: activations per request.
    pub fallback_share: f64,
    /// `failing-health-checks` warning.
    pub health_failure_warning: f64,
    /// `failing-health-checks` critical.
    pub health_failure_critical: f64,
    /// `kv-cache-pressure`: peak KV-cache usage (0..1), with preemptions in the window.
    pub kv_cache_usage: f64,
    /// `low-prefix-cache-hit-rate`: hits per queried prompt token below this...
    pub prefix_cache_hit_rate: f64,
    /// ...over at least this many queried tokens.
    pub prefix_cache_min_queries: f64,
    /// `prefill-bound-latency`: median prefill share of prefill + decode.
    pub prefill_share: f64,
    /// `decode-bound-latency`: median decode share of prefill + decode.
    pub decode_share: f64,
    /// Fewest requests before the phase rules judge.
    pub phase_min_requests: u64,
    /// `error-burst`: ERROR events per minute at the busiest collection...
    pub error_burst_per_minute: f64,
    /// ...with at least this many in the window.
    pub error_burst_min_events: f64,
    /// Fleet `load-imbalance`: one instance's mean queue is at least this many times the median
    /// of the others' (and at least `queue_backlog`)...
    pub imbalance_ratio: f64,
    /// ...or its mean utilization (GPU, else CPU) is this much above the others' median.
    pub imbalance_utilization_gap: f64,
    /// Fleet `outlier-instance`: requests an instance needs in the window to be judged.
    pub outlier_min_requests: u64,
    /// Fleet `fleet-error-burst`: at least this share of the instances with requests (and at
    /// least two) fail at `error_rate_warning` or more.
    pub fleet_error_share: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            gpu_underutilized: 0.5,
            queue_backlog: 1.0,
            gpu_memory_warning: 0.9,
            gpu_memory_critical: 0.97,
            gpu_throttle_share: 0.1,
            cpu_busy: 0.85,
            memory_growth_bytes_per_minute: 1024.0 * 1024.0,
            memory_growth_share: 0.05,
            memory_growth_min_window: 300.0,
            error_rate_warning: 0.05,
            error_rate_critical: 0.2,
            min_operations: 20,
            queue_share: 0.5,
            tail_ratio: 5.0,
            tail_min_requests: 50,
            download_bytes_per_second: 50e6,
            fallback_share: 0.05,
            health_failure_warning: 0.1,
            health_failure_critical: 0.5,
            kv_cache_usage: 0.9,
            prefix_cache_hit_rate: 0.1,
            prefix_cache_min_queries: 10_000.0,
            prefill_share: 0.5,
            decode_share: 0.8,
            phase_min_requests: 20,
            error_burst_per_minute: 30.0,
            error_burst_min_events: 10.0,
            imbalance_ratio: 2.0,
            imbalance_utilization_gap: 0.4,
            outlier_min_requests: 20,
            fleet_error_share: 0.5,
        }
    }
}

/// The numbers the rules read, extracted from the store for one window. `None`: not observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Window length, seconds.
    pub window_seconds: f64,
    /// Mean GPU utilization (0..1) over devices and samples.
    pub gpu_utilization_mean: Option<f64>,
    /// Peak GPU memory used / installed.
    pub gpu_memory_peak: Option<f64>,
    /// Share of GPU samples with a thermal, power-brake or hardware-slowdown reason active.
    pub gpu_throttled_share: Option<f64>,
    /// Mean generation queue size.
    pub queue_size_mean: Option<f64>,
    /// Host CPU busy share, mean.
    pub host_cpu_mean: Option<f64>,
    /// This process's share of its CPUs, mean.
    pub process_cpu_mean: Option<f64>,
    /// Process RSS trend: slope (bytes/min), mean (bytes), significant.
    pub rss_trend: Option<(f64, f64, bool)>,
    /// Generation requests in the window, and of those failed.
    pub generation_requests: Option<(f64, f64)>,
    /// Per operation type: (type, count, failures).
    pub operation_failures: Vec<(String, u64, u64)>,
    /// Median queue wait, seconds.
    pub queue_wait_p50: Option<f64>,
    /// Median and p99 request duration, seconds, and the request count they rest on.
    pub duration_p50_p99: Option<(f64, f64, u64)>,
    /// Median download throughput, bytes per second.
    pub download_throughput_p50: Option<f64>,
    /// Fallback activations.
    pub fallbacks: Option<f64>,
    /// Health checks and failed health checks.
    pub health_checks: Option<(u64, u64)>,
    /// Spans dropped and exports failed (spans + metric points).
    pub telemetry_loss: Option<(f64, f64)>,
    /// Peak KV-cache usage (0..1).
    pub kv_cache_usage_peak: Option<f64>,
    /// Requests preempted in the window.
    pub preemptions: Option<f64>,
    /// Prefix cache: queried and hit prompt tokens in the window.
    pub prefix_cache: Option<(f64, f64)>,
    /// Median prefill and decode time per request, seconds, and the requests they rest on.
    pub prefill_decode_p50: Option<(f64, f64, u64)>,
    /// `tracing` ERROR events: in the window, at the busiest collection per minute, and the
    /// target with the most.
    pub error_events: Option<(f64, f64, String)>,
}

#[allow(clippy::too_many_arguments)] // one call per rule, each argument named at the call
pub(super) fn finding(
    id: &str,
    severity: Severity,
    title: String,
    metric: &str,
    observed: f64,
    threshold: f64,
    unit: &str,
    window: f64,
    recommendation: &str,
) -> Finding {
    Finding {
        id: id.to_string(),
        severity,
        title,
        evidence: Evidence {
            metric: metric.to_string(),
            observed,
            threshold,
            unit: unit.to_string(),
            window_seconds: window,
            trace_ids: Vec::new(),
            quantity: String::new(),
            observed_text: String::new(),
            threshold_text: String::new(),
        },
        recommendation: recommendation.to_string(),
        instance: String::new(),
    }
}
