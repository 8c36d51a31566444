//! The terminal summary: health and findings first, then the numbers that explain them.

use std::fmt::Write as _;

use super::{Report, Stat};

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn stat_pct(s: &Option<Stat>) -> Option<String> {
    s.map(|s| format!("avg {} p95 {} peak {}", pct(s.avg), pct(s.p95), pct(s.peak)))
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{:.1} ms", v * 1000.0)
    } else {
        format!("{v:.2} s")
    }
}

pub(super) fn render(r: &Report) -> String {
    let mut o = String::new();
    let service = r.service.as_deref().unwrap_or("unknown service");
    let _ = writeln!(
        o,
        "genscope report: {service}, {:.0} s window ending {}",
        r.window.seconds, r.window.end
    );
    let status = format!("{:?}", r.health.status).to_uppercase();
    let _ = writeln!(
        o,
        "health: {status}{}",
        match r.efficiency.score {
            Some(s) => format!(
                "   efficiency {s:.2} ({})",
                r.efficiency
                    .factors
                    .iter()
                    .map(|(n, v, w)| format!("{n} {v:.2} x{w}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        }
    );
    if r.findings.is_empty() {
        let _ = writeln!(o, "findings: none");
    } else {
        let _ = writeln!(o, "findings:");
        for f in &r.findings {
            let at = if f.instance.is_empty() {
                String::new()
            } else {
                format!("{}: ", f.instance)
            };
            let _ = writeln!(
                o,
                "  [{:<8}] {:<30} {at}{}",
                format!("{:?}", f.severity).to_lowercase(),
                f.id,
                f.title
            );
            if !f.evidence.quantity.is_empty() {
                let _ = writeln!(
                    o,
                    "             {} = {} (threshold {}; {})",
                    f.evidence.quantity,
                    f.evidence.observed_text,
                    f.evidence.threshold_text,
                    f.evidence.metric
                );
            }
            let _ = writeln!(o, "             -> {}", f.recommendation);
            if !f.evidence.trace_ids.is_empty() {
                let _ = writeln!(o, "             traces: {}", f.evidence.trace_ids.join(" "));
            }
        }
    }
    instances(r, &mut o);
    let g = &r.generation;
    if let Some(req) = g.requests {
        let _ = write!(
            o,
            "generation: {req:.0} requests ({:.2}/s), {} failed",
            g.requests_per_s.unwrap_or(0.0),
            g.failed.unwrap_or(0.0)
        );
        if let Some(d) = g.duration_s {
            let _ = write!(o, "; p50 {} p95 {} p99 {}", ms(d[0]), ms(d[1]), ms(d[2]));
        }
        let _ = writeln!(o);
        let mut parts = Vec::new();
        if let Some(q) = g.queue_wait_s {
            parts.push(format!("queue wait p50 {} p95 {}", ms(q[0]), ms(q[1])));
        }
        if let Some(q) = g.queue_size {
            parts.push(format!("queue avg {:.1} max {:.0}", q.avg, q.peak));
        }
        if let Some(t) = g.ttft_s {
            parts.push(format!("ttft p50 {}", ms(t[0])));
        }
        if let Some(t) = g.output_tokens_per_s {
            parts.push(format!("{t:.0} output tok/s"));
        }
        if let Some(s) = g.steps_per_s {
            parts.push(format!("{s:.1} steps/s"));
        }
        if !parts.is_empty() {
            let _ = writeln!(o, "            {}", parts.join(", "));
        }
    }
    let res = &r.resources;
    for (label, s) in [
        ("host cpu", stat_pct(&res.host_cpu)),
        ("process cpu", stat_pct(&res.process_cpu)),
        ("host memory", stat_pct(&res.host_memory)),
        ("gpu", stat_pct(&res.gpu_utilization)),
        ("gpu memory", stat_pct(&res.gpu_memory)),
    ] {
        if let Some(s) = s {
            let _ = writeln!(o, "{label:<12} {s}");
        }
    }
    if let Some(m) = res.process_memory_bytes {
        let _ = writeln!(
            o,
            "{:<12} avg {:.1} MiB peak {:.1} MiB",
            "process rss",
            m.avg / 1048576.0,
            m.peak / 1048576.0
        );
    }
    if !r.operations.is_empty() {
        let _ = writeln!(
            o,
            "{:<34} {:>7} {:>8} {:>9} {:>9}",
            "operation", "count", "success", "p50", "p95"
        );
        for op in r.operations.iter().take(12) {
            let _ = writeln!(
                o,
                "{:<34} {:>7} {:>8} {:>9} {:>9}",
                format!("{} {}", op.kind, op.name),
                op.count,
                pct(op.success_rate),
                op.p50_s.map(ms).unwrap_or_default(),
                op.p95_s.map(ms).unwrap_or_default()
            );
        }
    }
    let rising: Vec<String> = r
        .trends
        .iter()
        .filter(|t| t.significant)
        .map(|t| {
            format!(
                "{} {:?} ({:+.3} {}/min)",
                t.metric, t.direction, t.slope_per_minute, t.unit
            )
        })
        .collect();
    if !rising.is_empty() {
        let _ = writeln!(o, "trends: {}", rising.join("; "));
    }
    if let (Some(d), Some(f)) = (r.telemetry.spans_dropped, r.telemetry.export_failures) {
        let _ = writeln!(o, "telemetry: {d:.0} spans dropped, {f:.0} export failures");
    }
    o
}

/// A fleet report's instance table and what it could not see.
fn instances(r: &Report, o: &mut String) {
    if !r.instances.is_empty() {
        let _ = writeln!(
            o,
            "{:<28} {:<9} {:<8} {:>8} {:>7} {:>9} {:>9} {:>6} {:>6} {:>6} findings",
            "instance", "health", "naming", "req/s", "errors", "p50", "p95", "queue", "cpu", "gpu"
        );
        for i in &r.instances {
            let opt =
                |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                o,
                "{:<28} {:<9} {:<8} {:>8} {:>7} {:>9} {:>9} {:>6} {:>6} {:>6} {}",
                i.instance,
                format!("{:?}", i.health).to_lowercase(),
                i.naming,
                opt(i.requests_per_s, &|v| format!("{v:.2}")),
                opt(i.error_rate, &pct),
                opt(i.duration_p50_s, &ms),
                opt(i.duration_p95_s, &ms),
                opt(i.queue_mean, &|v| format!("{v:.1}")),
                opt(i.cpu_mean, &|v| format!("{:.0}%", v * 100.0)),
                opt(i.gpu_mean, &|v| format!("{:.0}%", v * 100.0)),
                i.findings
                    .iter()
                    .map(|f| f.id.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    for n in &r.not_seen {
        let _ = writeln!(o, "not seen: {}: {}", n.signal, n.reason);
    }
}
