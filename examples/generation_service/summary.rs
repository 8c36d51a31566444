//! What the main example prints and writes at the end: the analyzer's summary, host/process/GPU
//! usage, the `--json` document, and the one warning when an export did not complete.

use std::time::Duration;

use genscope::Genscope;
use genscope::analyzer::Window;
use genscope::analyzer::report::Report;

/// The live report and the analyzer's totals, for comparing with what a backend stored.
pub(crate) fn analyzer_json(
    telemetry: &Genscope,
    report: &Report,
    window: Window,
) -> serde_json::Value {
    let store = telemetry.analyzer();
    let total = store
        .sum("genscope.generation.requests", &[], window)
        .unwrap_or(0.0);
    let mut errors: Vec<String> = store
        .series("genscope.generation.requests")
        .into_iter()
        .filter_map(|attrs| attrs.into_iter().find(|(k, _)| k == "error.type"))
        .map(|(_, v)| v)
        .collect();
    errors.sort();
    errors.dedup();
    let mut requests = serde_json::Map::new();
    let mut failed = 0.0;
    for error in errors {
        let n = store
            .sum(
                "genscope.generation.requests",
                &[("error.type", &error)],
                window,
            )
            .unwrap_or(0.0);
        failed += n;
        requests.insert(error, n.into());
    }
    requests.insert("".into(), (total - failed).into());
    let mut histograms = serde_json::Map::new();
    for name in [
        "genscope.generation.duration",
        "gen_ai.server.time_to_first_token",
        "gen_ai.client.token.usage",
    ] {
        if let Some(h) = store.histogram(name, &[], window) {
            histograms.insert(
                name.to_string(),
                serde_json::json!({"bounds": h.bounds, "counts": h.counts, "count": h.count, "sum": h.sum}),
            );
        }
    }
    serde_json::json!({
        "requests_total": total,
        "requests_by_error_type": requests,
        "histograms": histograms,
        "spans_ended": telemetry.telemetry_loss().spans_ended,
        "telemetry_loss": telemetry.telemetry_loss(),
        "max_rss_bytes": max_rss_bytes(),
        "report": report,
    })
}

/// This process's peak resident set size (`getrusage`), in bytes.
pub(crate) fn max_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            return Some(usage.ru_maxrss as u64 * 1024);
        }
    }
    None
}

/// One warning for an export that did not complete: where to, why, and what was lost.
pub(crate) fn warn_export_failure(telemetry: &Genscope, error: &genscope::ShutdownError) {
    let loss = telemetry.telemetry_loss();
    // The resolved endpoints, whichever source set them (env, per-signal env, file, builder).
    let settings = telemetry.settings();
    let (traces, metrics) = (
        &settings.traces_otlp.endpoint,
        &settings.metrics_otlp.endpoint,
    );
    let destination = if traces == metrics {
        traces.clone()
    } else {
        format!("{traces} (traces) and {metrics} (metrics)")
    };
    eprintln!(
        "warning: telemetry export to {destination} did not complete ({error}); the summary and \
         report above are complete (the analyzer is fed first). Lost at the destinations: {} \
         spans failed, {} dropped, {} metric points failed; sent without an answer (they may have \
         arrived): {} spans, {} metric points.",
        loss.spans_failed(),
        loss.spans_dropped(),
        loss.metric_points_failed(),
        loss.spans_unanswered(),
        loss.metric_points_unanswered()
    );
}

/// The summary: the spans and operations the analyzer saw, and the generation figures, over
/// `window`, the report's window. Every figure the report also has is the report's (one number
/// per quantity): operation percentiles from the span sketch, rates over the window's length.
pub(crate) fn print_summary(
    telemetry: &Genscope,
    report: &Report,
    window: Window,
    produced: u64,
    elapsed: Duration,
) {
    let store = telemetry.analyzer();
    println!(
        "\ngenscope analyzer store after {:.1} s ({produced} requests; window {:.1} s, the report's)",
        elapsed.as_secs_f64(),
        window.seconds()
    );
    println!(
        "{:<34} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "span", "count", "errors", "p50 ms", "p95 ms", "p99 ms"
    );
    for name in store.span_names() {
        let s = store.span_stats(Some(&name), window);
        let q = |p| s.durations.quantile(p).unwrap_or(0.0) * 1000.0;
        println!(
            "{:<34} {:>7} {:>7} {:>9.1} {:>9.1} {:>9.1}",
            name,
            s.count,
            s.errors,
            q(0.5),
            q(0.95),
            q(0.99)
        );
    }
    println!(
        "\n{:<22} {:>6} {:>8} {:>9} {:>9} {:>10} {:>10}  errors",
        "operation", "count", "success", "p50 ms", "p95 ms", "cpu ms", "rss MiB"
    );
    let by_type = store.operation_type_stats(window);
    for op in &report.operation_types {
        let ms = |v: Option<f64>| v.unwrap_or(0.0) * 1000.0;
        let rss = by_type
            .iter()
            .find(|t| t.kind == op.kind)
            .map_or(0.0, |t| t.usage.rss_peak.max);
        let errors: Vec<String> = op
            .error_types
            .iter()
            .map(|(e, n)| format!("{e}={n}"))
            .collect();
        println!(
            "{:<22} {:>6} {:>7.0}% {:>9.1} {:>9.1} {:>10.2} {:>10.1}  {}",
            op.kind,
            op.count,
            op.success_rate * 100.0,
            ms(op.p50_s),
            ms(op.p95_s),
            ms(op.cpu_time_s),
            rss / (1u64 << 20) as f64,
            errors.join(" ")
        );
    }
    let generate = store
        .span_names()
        .into_iter()
        .filter(|n| n.starts_with("generate "))
        .map(|n| store.span_stats(Some(&n), window).usage)
        .fold(None::<genscope::analyzer::UsageStats>, |acc, u| {
            let mut acc = acc.unwrap_or_default();
            acc.merge(&u);
            Some(acc)
        });
    if let Some(u) = generate {
        println!(
            "{:<28} {:>9.2} ms CPU per request (over {} spans)",
            "generate resource usage",
            u.cpu_time.mean().unwrap_or(0.0) * 1000.0,
            u.cpu_time.samples
        );
    }
    println!();
    let g = &report.generation;
    if let Some(rate) = g.requests_per_s {
        println!("{:<28} {rate:>9.2}", "requests/s");
    }
    let total = g.requests.unwrap_or(0.0);
    for error_type in ["out_of_memory", "timeout"] {
        let n = store
            .sum(
                "genscope.generation.requests",
                &[("error.type", error_type)],
                window,
            )
            .unwrap_or(0.0);
        println!("{:<28} {n:>9.0}", format!("requests {error_type}"));
    }
    println!(
        "{:<28} {:>9.0}",
        "requests success",
        total - g.failed.unwrap_or(0.0)
    );
    for (label, q) in [
        ("time to first token p50/p95 s", g.ttft_s),
        ("time per output token p50/p95 s", g.tpot_s),
    ] {
        if let Some([p50, p95]) = q {
            println!("{label:<28} {p50:>9.4} / {p95:.4}");
        }
    }
    if let Some(steps) = g.steps_per_s {
        println!("{:<28} {steps:>9.1}", "image/video steps/s (mean)");
    }
    if let Some([p50, p95, p99]) = g.duration_s {
        println!(
            "{:<28} {p50:>9.3} / {p95:.3} / {p99:.3}",
            "duration p50/p95/p99 s"
        );
    }
    if let Some([p50, p95]) = g.queue_wait_s {
        println!("{:<28} {p50:>9.3} / {p95:.3}", "queue wait p50/p95 s");
    }
    if let Some(q) = g.queue_size {
        println!(
            "{:<28} {:>9.1} (max {:.0} over {} collections)",
            "queue size mean", q.avg, q.peak, q.samples
        );
    }
    for token_type in ["input", "output"] {
        if let Some(h) = store.histogram(
            "gen_ai.client.token.usage",
            &[("gen_ai.token.type", token_type)],
            window,
        ) {
            println!("{:<28} {:>9.0}", format!("{token_type} tokens"), h.sum);
        }
    }
    if let Some(t) = g.output_tokens_per_s {
        println!("{:<28} {t:>9.2}", "output tokens/s");
    }
    print_resources(telemetry, window);
    let loss = telemetry.telemetry_loss();
    println!(
        "{:<28} {:>9} ended, {} exported, {} dropped, {} failed deliveries, {} unanswered",
        "telemetry spans",
        loss.spans_ended,
        loss.spans_exported,
        loss.spans_dropped(),
        loss.spans_failed(),
        loss.spans_unanswered()
    );
    let destinations: Vec<&str> = loss
        .span_deliveries
        .iter()
        .map(|d| d.destination.as_str())
        .collect();
    println!(
        "{:<28} {}",
        "span destinations",
        if destinations.is_empty() {
            "none (embedded default: set OTEL_EXPORTER_OTLP_ENDPOINT to export)".to_string()
        } else {
            destinations.join(", ")
        }
    );
}

/// Host, process and GPU usage: the observers' own history, and the analyzer's view of the very
/// metrics that were exported.
pub(crate) fn print_resources(telemetry: &Genscope, window: Window) {
    println!();
    let Some(observers) = telemetry.observers() else {
        println!("{:<28} off", "resource observers");
        return;
    };
    println!("{:<28} {}", "gpu", observers.gpu_status());
    // Everything the ring still holds (10 minutes by default: the whole run here).
    let history = observers.history().window(Duration::MAX);
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    if let Some(cpu) = mean(
        history
            .host
            .iter()
            .filter_map(|p| p.cpu_utilization)
            .collect(),
    ) {
        println!(
            "{:<28} {:>8.1}%  ({} samples)",
            "host cpu busy (history)",
            cpu * 100.0,
            history.host.len()
        );
    }
    if let Some(cpu) = mean(
        history
            .host
            .iter()
            .filter_map(|p| p.process_cpu_utilization)
            .collect(),
    ) {
        println!("{:<28} {:>8.1}%", "process cpu (history)", cpu * 100.0);
    }
    if let Some(rss) = history
        .host
        .iter()
        .filter_map(|p| p.process_rss_bytes)
        .max()
    {
        println!(
            "{:<28} {:>8.1} MiB",
            "process rss peak",
            rss as f64 / (1u64 << 20) as f64
        );
    }
    if let Some(gpu) = mean(
        history
            .gpu
            .iter()
            .filter_map(|p| p.mean_utilization())
            .collect(),
    ) {
        println!("{:<28} {:>8.1}%", "gpu busy (history)", gpu * 100.0);
    }
    let store = telemetry.analyzer();
    if let Some(used) = store.gauge(
        "system.memory.utilization",
        &[("system.memory.state", "used")],
        window,
    ) {
        println!(
            "{:<28} {:>8.1}%  (analyzer, {} collections, max {:.1}%)",
            "host memory used",
            used.mean * 100.0,
            used.samples,
            used.max * 100.0
        );
    }
    if let Some(cpu) = store.gauge("process.cpu.utilization", &[], window) {
        println!(
            "{:<28} {:>8.1}%  (analyzer, user + system)",
            "process cpu",
            cpu.mean * 100.0
        );
    }
}
