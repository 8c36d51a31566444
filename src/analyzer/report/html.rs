//! The HTML report: one self-contained page, no network, no script. Charts are inline SVG
//! (plotters' SVG back end, [`super::svg_chart`]), so the page renders the same in a browser, an
//! email attachment or a CI artifact viewer. A fleet report adds its instance table.

use std::fmt::Write as _;

use super::svg_chart::{self, esc};
use super::{Report, Severity};

pub(super) fn render(r: &Report) -> String {
    let mut o = String::new();
    let service = esc(r.service.as_deref().unwrap_or("unknown service"));
    let status = format!("{:?}", r.health.status).to_lowercase();
    let _ = write!(
        o,
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>genscope report: {service}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1000px}}
h1{{font-size:20px}} h2{{font-size:16px;margin-top:28px}}
.status{{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff}}
.healthy{{background:#16a34a}} .degraded{{background:#d97706}} .unhealthy{{background:#dc2626}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}}
.finding{{border-left:4px solid #d97706;padding:6px 10px;margin:8px 0;background:#fffbeb}}
.finding.critical{{border-color:#dc2626;background:#fef2f2}} .finding.info{{border-color:#2563eb;background:#eff6ff}}
.chart{{display:block;margin:8px 0;max-width:100%;height:auto}} figure{{margin:0 0 12px}}
.legend{{display:flex;flex-wrap:wrap;gap:2px 12px;list-style:none;padding:0;margin:0;font-size:12px;max-height:120px;overflow-y:auto}}
.legend span{{display:inline-block;width:10px;height:10px;margin-right:4px}}
.instance{{font-family:monospace;background:#eee;padding:0 4px}}
</style></head><body>
<h1>genscope report: {service}</h1>
<p>Window: {start} to {end} ({secs:.0} s). Generated {gen}. Health: <span class="status {status}" id="health">{status}</span>"##,
        start = esc(&r.window.start),
        end = esc(&r.window.end),
        secs = r.window.seconds,
        gen = esc(&r.generated_at),
    );
    if let Some(score) = r.efficiency.score {
        let _ = write!(o, r##" Efficiency: <b id="efficiency">{score:.2}</b>"##);
    }
    o.push_str("</p>\n<h2>Findings</h2>\n");
    if r.findings.is_empty() {
        o.push_str("<p>None.</p>\n");
    }
    for f in &r.findings {
        let class = match f.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let _ = writeln!(
            o,
            r##"<div class="finding {class}" data-id="{id}" data-instance="{inst_attr}">{inst}<b>{id}</b> ({class}): {title}<br><small>{quantity} = {obs} (threshold {thr}, {win:.0} s window; from <code>{metric}</code>)</small><br>{rec}{traces}</div>"##,
            id = esc(&f.id),
            inst_attr = esc(&f.instance),
            inst = if f.instance.is_empty() {
                String::new()
            } else {
                format!(r#"<span class="instance">{}</span> "#, esc(&f.instance))
            },
            title = esc(&f.title),
            metric = esc(&f.evidence.metric),
            quantity = esc(&f.evidence.quantity),
            obs = esc(&f.evidence.observed_text),
            thr = esc(&f.evidence.threshold_text),
            win = f.evidence.window_seconds,
            rec = esc(&f.recommendation),
            traces = if f.evidence.trace_ids.is_empty() {
                String::new()
            } else {
                format!(
                    "<br><small>slowest traces: <code>{}</code></small>",
                    esc(&f.evidence.trace_ids.join(" "))
                )
            }
        );
    }
    instances(r, &mut o);
    o.push_str("<h2>Over time</h2>\n");
    for c in &r.charts {
        let _ = writeln!(
            o,
            "<h3 style=\"font-size:14px\">{} ({})</h3>{}",
            esc(&c.title),
            esc(&c.unit),
            svg_chart::render(c)
        );
    }
    if !r.operations.is_empty() {
        o.push_str("<h2>Operations</h2>\n<table><tr><th>type</th><th>name</th><th>count</th><th>per s</th><th>success</th><th>p50</th><th>p95</th><th>p99</th><th>errors</th></tr>\n");
        let f = |v: Option<f64>| {
            v.map(|v| format!("{:.1} ms", v * 1000.0))
                .unwrap_or_default()
        };
        for op in &r.operations {
            let errors: Vec<String> = op
                .error_types
                .iter()
                .map(|(e, n)| format!("{}={n}", esc(e)))
                .collect();
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.1}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&op.kind),
                esc(&op.name),
                op.count,
                op.throughput_per_s,
                op.success_rate * 100.0,
                f(op.p50_s),
                f(op.p95_s),
                f(op.p99_s),
                errors.join(" ")
            );
        }
        o.push_str("</table>\n");
    }
    if !r.trends.is_empty() {
        o.push_str("<h2>Trends</h2>\n<table><tr><th>metric</th><th>direction</th><th>slope / min</th><th>± s.e.</th><th>points</th></tr>\n");
        for t in &r.trends {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{:?}{}</td><td>{:+.4} {}</td><td>{:.4}</td><td>{}</td></tr>",
                esc(&t.metric),
                t.direction,
                if t.significant {
                    ""
                } else {
                    " (not significant)"
                },
                t.slope_per_minute,
                esc(&t.unit),
                t.standard_error,
                t.points
            );
        }
        o.push_str("</table>\n");
    }
    let _ = writeln!(
        o,
        "<h2>Efficiency</h2><p>{}</p><p><small>{}</small></p>",
        r.efficiency
            .factors
            .iter()
            .map(|(n, v, w)| format!("{} {v:.2} (weight {w})", esc(n)))
            .collect::<Vec<_>>()
            .join(", "),
        esc(&r.efficiency.formula)
    );
    o.push_str("</body></html>\n");
    o
}

/// A fleet report's instance table (health, requests/s, p95, queue, CPU/GPU, findings) and what it
/// could not see.
fn instances(r: &Report, o: &mut String) {
    if !r.instances.is_empty() {
        o.push_str("<h2>Instances</h2>\n<table id=\"instances\"><tr><th>instance</th><th>health</th><th>naming</th><th>requests/s</th><th>errors</th><th>p50</th><th>p95</th><th>queue</th><th>KV cache peak</th><th>CPU</th><th>GPU</th><th>findings</th></tr>\n");
        let opt =
            |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        let ms = |v: f64| format!("{:.1} ms", v * 1000.0);
        for i in &r.instances {
            let status = format!("{:?}", i.health).to_lowercase();
            let _ = writeln!(
                o,
                r#"<tr data-instance="{inst}"><td>{inst}</td><td><span class="status {status}">{status}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&i.naming),
                opt(i.requests_per_s, &|v| format!("{v:.2}")),
                opt(i.error_rate, &pct),
                opt(i.duration_p50_s, &ms),
                opt(i.duration_p95_s, &ms),
                opt(i.queue_mean, &|v| format!("{v:.1}")),
                opt(i.kv_cache_peak, &pct),
                opt(i.cpu_mean, &pct),
                opt(i.gpu_mean, &pct),
                esc(&i
                    .findings
                    .iter()
                    .map(|f| f.id.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")),
                inst = esc(&i.instance),
            );
        }
        o.push_str("</table>\n");
    }
    if !r.not_seen.is_empty() {
        o.push_str("<h2>Not seen</h2>\n<ul id=\"not-seen\">");
        for n in &r.not_seen {
            let _ = write!(
                o,
                "<li><code>{}</code>: {}</li>",
                esc(&n.signal),
                esc(&n.reason)
            );
        }
        o.push_str("</ul>\n");
    }
}
