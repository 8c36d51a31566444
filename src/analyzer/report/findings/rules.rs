//! The rules over the generation, resource, model-plumbing and telemetry signals (the table in
//! the module docs).

use super::model::{Finding, Severity, Signals, Thresholds, finding};

pub(super) fn evaluate(s: &Signals, t: &Thresholds, out: &mut Vec<Finding>) {
    let w = s.window_seconds;
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
                "genscope.model.fallback.activations", if share.is_finite() { share } else { fallbacks }, if share.is_finite() { t.fallback_share } else { 3.0 }, if share.is_finite() { "1" } else { "{activation}" }, w,
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
    if let Some((errors, peak, target)) = &s.error_events
        && *errors >= t.error_burst_min_events
        && *peak >= t.error_burst_per_minute
    {
        out.push(finding("error-burst", Severity::Warning,
            format!("{errors:.0} ERROR events, up to {peak:.0} per minute (most from {target})"),
            "genscope.events", *peak, t.error_burst_per_minute, "{event}/min", w,
            "A burst of errors: read the events of the busiest target first (logs or span events), and correlate with deployments, dependency outages or overload in the same minutes."));
    }
    if let Some((dropped, failed)) = s.telemetry_loss
        && dropped + failed > 0.0
    {
        out.push(finding("telemetry-loss", Severity::Warning,
            format!("{dropped:.0} spans dropped, {failed:.0} items failed to export"),
            "otel.sdk.processor.span.processed", dropped + failed, 0.0, "{item}", w,
            "Telemetry was lost: raise OTEL_BSP_MAX_QUEUE_SIZE, sample more (OTEL_TRACES_SAMPLER), or fix the collector endpoint; what this report shows may be incomplete."));
    }
}
