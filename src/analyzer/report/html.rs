//! The HTML report: one self-contained page, no network, no script. Charts are inline SVG drawn
//! here (a polyline per series over time, axes with min/max labels), so the page renders the same
//! in a browser, an email attachment or a CI artifact viewer.

use std::fmt::Write as _;

use super::{Chart, Report, Severity};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];

/// An axis label; the unit is in the chart's heading, so only ratios and seconds carry one.
fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "1" => format!("{:.0}%", v * 100.0),
        "s" if v < 1.0 => format!("{:.0} ms", v * 1000.0),
        "s" => format!("{v:.2} s"),
        _ if v.abs() >= 100.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

fn svg_chart(c: &Chart) -> String {
    let (w, h, left, right, top, bottom) = (640.0, 220.0, 64.0, 12.0, 12.0, 28.0);
    let pts = c.series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut v0, mut v1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for p in pts {
        t0 = t0.min(p[0]);
        t1 = t1.max(p[0]);
        v0 = v0.min(p[1]);
        v1 = v1.max(p[1]);
    }
    if c.unit == "1" {
        v1 = v1.max(1.0);
    }
    if v1.partial_cmp(&v0) != Some(std::cmp::Ordering::Greater) {
        v1 = v0 + 1.0;
    }
    if t1.partial_cmp(&t0) != Some(std::cmp::Ordering::Greater) {
        t1 = t0 + 1.0;
    }
    let x = |t: f64| left + (t - t0) / (t1 - t0) * (w - left - right);
    let y = |v: f64| top + (1.0 - (v - v0) / (v1 - v0)) * (h - top - bottom);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="chart" data-chart="{id}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}">"##,
        id = esc(&c.id),
        title = esc(&c.title)
    );
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#999"/><line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#999"/>"##,
        y0 = h - bottom,
        x1 = w - right
    );
    let _ = write!(
        s,
        r##"<text x="{tx}" y="{ty}" font-size="11" text-anchor="end">{hi}</text><text x="{tx}" y="{by}" font-size="11" text-anchor="end">{lo}</text>"##,
        tx = left - 4.0,
        ty = top + 10.0,
        by = h - bottom,
        hi = esc(&fmt_value(v1, &c.unit)),
        lo = esc(&fmt_value(v0, &c.unit))
    );
    let _ = write!(
        s,
        r##"<text x="{left}" y="{ly}" font-size="11">{span:.0} s window</text>"##,
        ly = h - 8.0,
        span = t1 - t0
    );
    for (i, series) in c.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = series
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p[0]), y(p[1])))
            .collect();
        if points.len() == 1 {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"##,
                x(series.points[0][0]),
                y(series.points[0][1])
            );
        }
        let _ = write!(
            s,
            r##"<polyline class="series" data-series="{name}" fill="none" stroke="{color}" stroke-width="1.8" points="{pts}"/>"##,
            name = esc(&series.name),
            pts = points.join(" ")
        );
        let _ = write!(
            s,
            r##"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/><text x="{tx}" y="{ty}" font-size="11">{name}</text>"##,
            lx = w - right - 150.0,
            ly = top + 4.0 + 14.0 * i as f64,
            tx = w - right - 136.0,
            ty = top + 13.0 + 14.0 * i as f64,
            name = esc(&series.name)
        );
    }
    s.push_str("</svg>");
    s
}

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
.chart{{display:block;margin:8px 0;background:#fafafa}}
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
            r##"<div class="finding {class}" data-id="{id}"><b>{id}</b> ({class}): {title}<br><small>{metric} = {obs:.4} {unit} (threshold {thr} {unit}, {win:.0} s window)</small><br>{rec}{traces}</div>"##,
            id = esc(&f.id),
            title = esc(&f.title),
            metric = esc(&f.evidence.metric),
            obs = f.evidence.observed,
            unit = esc(&f.evidence.unit),
            thr = f.evidence.threshold,
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
    o.push_str("<h2>Over time</h2>\n");
    for c in &r.charts {
        let _ = writeln!(
            o,
            "<h3 style=\"font-size:14px\">{} ({})</h3>{}",
            esc(&c.title),
            esc(&c.unit),
            svg_chart(c)
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
