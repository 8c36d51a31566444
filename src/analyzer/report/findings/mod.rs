//! Findings: rules over [`Signals`] (the numbers a report extracts from the store), each with a
//! stable id, a severity, the evidence and a concrete recommendation. Rules are pure functions so
//! each is tested on synthetic signals both ways (fires / stays quiet).
//!
//! | id | fires when (defaults in [`Thresholds`]) | severity |
//! |---|---|---|
//! | `gpu-underutilized-with-queue` | mean GPU utilization < 50 % while the mean queue holds >= 1 request | warning |
//! | `gpu-memory-pressure` | peak GPU memory used / installed >= 90 % (critical >= 97 %) | warning / critical |
//! | `gpu-throttling` | a thermal, power-brake or hardware-slowdown throttle reason active in >= 10 % of samples | warning |
//! | `cpu-bound` | host CPU busy (mean) >= 85 %, or this process >= 85 % of its CPUs | warning |
//! | `memory-growth` | over a window of >= 5 min, process RSS rises significantly (see `trend`) by >= 1 MiB/min and >= 5 % | warning |
//! | `high-error-rate` | generation (or any operation type with >= 20 runs) fails >= 5 % (critical >= 20 %) | warning / critical |
//! | `queue-dominated-latency` | median queue wait >= 50 % of median request duration | warning |
//! | `tail-latency` | p99 / p50 request duration >= 5 with >= 50 requests | info |
//! | `slow-downloads` | median model download throughput < 50 MB/s | info |
//! | `frequent-fallbacks` | fallback activations >= 5 % of generation requests (or >= 3 with no requests) | warning |
//! | `failing-health-checks` | >= 10 % of >= 3 health checks failed (critical >= 50 %) | warning / critical |
//! | `telemetry-loss` | spans dropped or exports failed in the window | warning |

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
}

#[allow(clippy::too_many_arguments)] // one call per rule, each argument named at the call
fn finding(
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
        },
        recommendation: recommendation.to_string(),
    }
}

/// Every rule over `s`, most severe first.
pub fn evaluate(s: &Signals, t: &Thresholds) -> Vec<Finding> {
    let w = s.window_seconds;
    let mut out = Vec::new();
    if let (Some(gpu), Some(queue)) = (s.gpu_utilization_mean, s.queue_size_mean)
        && gpu < t.gpu_underutilized
        && queue >= t.queue_backlog
    {
        out.push(finding("gpu-underutilized-with-queue", Severity::Warning,
            format!("GPUs {:.0}% busy while {queue:.1} requests wait on average", gpu * 100.0),
            "hw.gpu.utilization", gpu, t.gpu_underutilized, "1", w,
            "Requests queue while the GPU idles: raise batch size or concurrency (more workers per GPU, continuous batching), or move CPU-side pre/post-processing off the request path."));
    }
    if let Some(m) = s.gpu_memory_peak
        && m >= t.gpu_memory_warning
    {
        let critical = m >= t.gpu_memory_critical;
        out.push(finding("gpu-memory-pressure", if critical { Severity::Critical } else { Severity::Warning },
            format!("GPU memory peaked at {:.0}% of capacity", m * 100.0),
            "hw.gpu.memory.utilization", m, if critical { t.gpu_memory_critical } else { t.gpu_memory_warning }, "1", w,
            "Close to out-of-memory: lower batch size or max sequence length, use a quantized or smaller model, enable memory-efficient attention, or cap the KV cache."));
    }
    if let Some(share) = s.gpu_throttled_share
        && share >= t.gpu_throttle_share
    {
        out.push(finding("gpu-throttling", Severity::Warning,
            format!("GPU clocks throttled (thermal/power/hardware) in {:.0}% of samples", share * 100.0),
            "genscope.gpu.throttle.active", share, t.gpu_throttle_share, "1", w,
            "The GPU slows itself down: check cooling and airflow, the power limit (genscope.gpu.power.limit) and the board's power delivery; sustained throughput will be below spec."));
    }
    let cpu = [
        ("system.cpu.utilization", s.host_cpu_mean, "host CPUs"),
        (
            "process.cpu.utilization",
            s.process_cpu_mean,
            "this process's CPUs",
        ),
    ]
    .into_iter()
    .filter_map(|(m, v, what)| v.map(|v| (m, v, what)))
    .filter(|(_, v, _)| *v >= t.cpu_busy)
    .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((metric, v, what)) = cpu {
        out.push(finding("cpu-bound", Severity::Warning,
            format!("{what} {:.0}% busy on average", v * 100.0),
            metric, v, t.cpu_busy, "1", w,
            "CPU is the bottleneck: move tokenization, image encoding and pre/post-processing to more workers or threads, avoid busy polling, and check that inference really runs on the GPU."));
    }
    if let Some((slope, mean, significant)) = s.rss_trend
        && significant
        && w >= t.memory_growth_min_window
        && slope >= t.memory_growth_bytes_per_minute
        && slope * w / 60.0 >= t.memory_growth_share * mean
    {
        out.push(finding("memory-growth", Severity::Warning,
            format!("process memory grows {:.1} MiB per minute", slope / 1048576.0),
            "process.memory.usage", slope, t.memory_growth_bytes_per_minute, "By/min", w,
            "Resident memory keeps rising: look for caches without bounds, retained request buffers or tensors, and leaked model copies; compare heap profiles minutes apart."));
    }
    // (metric, what failed in words, rate)
    let mut worst: Option<(String, String, f64)> = None;
    if let Some((requests, failed)) = s.generation_requests
        && requests >= 1.0
    {
        worst = Some((
            "genscope.generation.requests".into(),
            format!("{requests:.0} generation requests"),
            failed / requests,
        ));
    }
    // Health checks have their own rule (`failing-health-checks`).
    for (kind, count, failures) in s
        .operation_failures
        .iter()
        .filter(|o| o.0 != "health_check")
    {
        if *count >= t.min_operations {
            let rate = *failures as f64 / *count as f64;
            if worst.as_ref().is_none_or(|w| rate > w.2) {
                worst = Some((
                    format!("genscope.operation.duration{{genscope.operation.type={kind}}}"),
                    format!("{count} {kind} operations"),
                    rate,
                ));
            }
        }
    }
    if let Some((metric, what, rate)) = worst
        && rate >= t.error_rate_warning
    {
        let critical = rate >= t.error_rate_critical;
        out.push(finding("high-error-rate", if critical { Severity::Critical } else { Severity::Warning },
            format!("{:.1}% of {what} failed", rate * 100.0),
            &metric, rate, if critical { t.error_rate_critical } else { t.error_rate_warning }, "1", w,
            "Look at the error.type breakdown in the operations table: timeouts point to capacity, out_of_memory to batch size or model size, validation errors to clients."));
    }
    if let (Some(wait), Some((p50, _, _))) = (s.queue_wait_p50, s.duration_p50_p99)
        && p50 > 0.0
        && wait / p50 >= t.queue_share
    {
        let share = wait / p50;
        out.push(finding("queue-dominated-latency", Severity::Warning,
            format!("requests wait {wait:.2} s in queue for {p50:.2} s of work (median)"),
            "genscope.generation.queue.wait", share, t.queue_share, "1", w,
            "Latency is mostly waiting, not working: add capacity (replicas, GPUs), batch more per step, or shed load early with admission control instead of queueing."));
    }
    if let Some((p50, p99, n)) = s.duration_p50_p99
        && n >= t.tail_min_requests
        && p50 > 0.0
        && p99 / p50 >= t.tail_ratio
    {
        out.push(finding("tail-latency", Severity::Info,
            format!("p99 request duration is {:.1}x the median", p99 / p50),
            "genscope.generation.duration", p99 / p50, t.tail_ratio, "1", w,
            "A slow tail: look for long prompts or high resolutions sharing batches with short ones, cold model loads, GC or swap; bucket requests by size."));
    }
    if let Some(tp) = s.download_throughput_p50
        && tp < t.download_bytes_per_second
    {
        out.push(finding("slow-downloads", Severity::Info,
            format!("model downloads run at {:.1} MB/s (median)", tp / 1e6),
            "genscope.model.download.throughput", tp, t.download_bytes_per_second, "By/s", w,
            "Model downloads are slow: use a regional mirror or a local cache, parallel chunked downloads, or bake models into the image."));
    }
    if let Some(fallbacks) = s.fallbacks
        && fallbacks > 0.0
    {
        let requests = s.generation_requests.map(|r| r.0).unwrap_or(0.0);
        let share = if requests > 0.0 {
            fallbacks / requests
        } else {
            f64::INFINITY
        };
        let fires = if requests > 0.0 {
            share >= t.fallback_share
        } else {
            fallbacks >= 3.0
        };
        if fires {
            out.push(finding("frequent-fallbacks", Severity::Warning,
                format!("{fallbacks:.0} fallback activations for {requests:.0} requests"),
                "genscope.model.fallback.activations", if share.is_finite() { share } else { fallbacks }, t.fallback_share, "1", w,
                "The primary path fails often: fix its cause (see genscope.fallback.reason) rather than relying on the fallback, which usually costs quality or latency."));
        }
    }
    if let Some((checks, failed)) = s.health_checks
        && checks >= 3
    {
        let rate = failed as f64 / checks as f64;
        if rate >= t.health_failure_warning {
            let critical = rate >= t.health_failure_critical;
            out.push(finding("failing-health-checks", if critical { Severity::Critical } else { Severity::Warning },
                format!("{failed} of {checks} health checks failed"),
                "genscope.model.health_check.duration", rate, if critical { t.health_failure_critical } else { t.health_failure_warning }, "1", w,
                "Models fail their health checks: check the model server's logs and readiness, memory headroom and the check's timeout."));
        }
    }
    if let Some((dropped, failed)) = s.telemetry_loss
        && dropped + failed > 0.0
    {
        out.push(finding("telemetry-loss", Severity::Warning,
            format!("{dropped:.0} spans dropped, {failed:.0} items failed to export"),
            "otel.sdk.processor.span.processed", dropped + failed, 0.0, "{item}", w,
            "Telemetry was lost: raise OTEL_BSP_MAX_QUEUE_SIZE, sample more (OTEL_TRACES_SAMPLER), or fix the collector endpoint; what this report shows may be incomplete."));
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

#[cfg(test)]
mod tests;
