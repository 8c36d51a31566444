//! One report chart as inline SVG, drawn with plotters' SVG back end: a line per series over real
//! time (UTC clock ticks at 1-2-5-style intervals), values on a unit-formatted axis, and the
//! legend in HTML beside it, so it wraps for a fleet of a hundred instances. No script, no fonts to
//! load: plotters writes `<text>` elements and the page stays self-contained.

use std::fmt::Write as _;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::prelude::*;

use super::Chart;

/// The series colors, in order (the first is the one the screenshot test looks for).
pub(super) const COLORS: [(u8, u8, u8); 10] = [
    (0x25, 0x63, 0xeb),
    (0xdc, 0x26, 0x26),
    (0x16, 0xa3, 0x4a),
    (0x93, 0x33, 0xea),
    (0xea, 0x58, 0x0c),
    (0x08, 0x91, 0xb2),
    (0xca, 0x8a, 0x04),
    (0xdb, 0x27, 0x77),
    (0x4b, 0x55, 0x63),
    (0x65, 0xa3, 0x0d),
];

const WIDTH: u32 = 680;
const HEIGHT: u32 = 240;

/// Clock-friendly tick intervals, seconds.
const TICKS: [f64; 20] = [
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
];

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value with its unit, as an axis label: ratios as percentages, seconds as ms or s, bytes in
/// binary multiples, counts with k/M.
pub(super) fn fmt_value(v: f64, unit: &str) -> String {
    match unit {
        "1" => format!("{:.0}%", v * 100.0),
        "s" if v.abs() < 1.0 => format!("{:.0} ms", v * 1000.0),
        "s" => format!("{v:.2} s"),
        "MiB" if v.abs() >= 1024.0 => format!("{:.1} GiB", v / 1024.0),
        "MiB" => format!("{v:.0} MiB"),
        _ => {
            let suffix = unit
                .split_once('/')
                .map(|(_, per)| format!("/{per}"))
                .unwrap_or_default();
            let n = if v.abs() >= 1e6 {
                format!("{:.1}M", v / 1e6)
            } else if v.abs() >= 1e3 {
                format!("{:.1}k", v / 1e3)
            } else if v.abs() >= 100.0 || v == v.trunc() {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            };
            format!("{n}{suffix}")
        }
    }
}

/// `t` (unix seconds) as a UTC clock label; seconds only when the ticks need them.
fn clock(t: f64, step: f64) -> String {
    let day = t.rem_euclid(86400.0);
    // Tenths only when the ticks are closer than a second; otherwise whole seconds.
    let (whole, tenths) = if step < 1.0 {
        let tenths = ((day - day.floor()) * 10.0).round().min(9.0);
        (day.floor() as u64 % 86400, Some(tenths))
    } else {
        (day.round() as u64 % 86400, None)
    };
    let (h, m, sec) = (whole / 3600, whole / 60 % 60, whole % 60);
    match tenths {
        Some(d) => format!("{h:02}:{m:02}:{sec:02}.{d:.0}"),
        None if step < 60.0 => format!("{h:02}:{m:02}:{sec:02}"),
        None => format!("{h:02}:{m:02}"),
    }
}

/// Tick positions at a clock interval giving 4 to 8 ticks over `t0..t1`.
fn time_ticks(t0: f64, t1: f64) -> (Vec<f64>, f64) {
    let span = t1 - t0;
    let step = TICKS
        .iter()
        .copied()
        .find(|s| span / s <= 7.0)
        .unwrap_or(86400.0 * (span / 86400.0 / 7.0).ceil());
    let mut t = (t0 / step).ceil() * step;
    let mut out = Vec::new();
    while t <= t1 && out.len() < 16 {
        out.push(t);
        t += step;
    }
    (out, step)
}

/// The time axis: unix seconds mapped linearly, key points at clock intervals.
struct TimeAxis {
    t0: f64,
    t1: f64,
    ticks: Vec<f64>,
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.t0) / (self.t1 - self.t0);
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.t0..self.t1
    }
}

fn bounds(c: &Chart) -> (f64, f64, f64, f64) {
    let (mut t0, mut t1, mut v0, mut v1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for p in c.series.iter().flat_map(|s| s.points.iter()) {
        if p[0].is_finite() && p[1].is_finite() {
            t0 = t0.min(p[0]);
            t1 = t1.max(p[0]);
            v0 = v0.min(p[1]);
            v1 = v1.max(p[1]);
        }
    }
    if c.unit == "1" {
        v1 = v1.max(1.0);
    }
    if v1.partial_cmp(&v0) != Some(std::cmp::Ordering::Greater) {
        v1 = v0 + 1.0;
    } else {
        v1 += (v1 - v0) * 0.05;
    }
    if t1.partial_cmp(&t0) != Some(std::cmp::Ordering::Greater) {
        t0 = if t0 == f64::MAX { 0.0 } else { t0 - 30.0 };
        t1 = t0 + 60.0;
    }
    (t0, t1, v0, v1)
}

fn draw(c: &Chart, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let (t0, t1, v0, v1) = bounds(c);
    let (ticks, step) = time_ticks(t0, t1);
    let unit = c.unit.clone();
    let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&RGBColor(0xfa, 0xfa, 0xfa))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(24)
        .y_label_area_size(72)
        .build_cartesian_2d(TimeAxis { t0, t1, ticks }, v0..v1)?;
    chart
        .configure_mesh()
        .y_labels(5)
        .x_label_formatter(&|t| clock(*t, step))
        .y_label_formatter(&|v| fmt_value(*v, &unit))
        .label_style(("sans-serif", 13))
        .axis_style(RGBColor(0x99, 0x99, 0x99))
        .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, series) in c.series.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let style = ShapeStyle {
            color: RGBColor(r, g, b).to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        let points: Vec<(f64, f64)> = series
            .points
            .iter()
            .filter(|p| p[0].is_finite() && p[1].is_finite())
            .map(|p| (p[0], p[1]))
            .collect();
        if points.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(points[0], 3, style.filled())))?;
        }
        chart.draw_series(LineSeries::new(points, style))?;
    }
    root.present()?;
    Ok(())
}

/// The chart as `<figure>`: the SVG (with `class="chart"` and `data-chart` = the chart id) and an
/// HTML legend. A chart plotters cannot draw becomes a line saying why; never a panic.
pub(super) fn render(c: &Chart) -> String {
    let mut svg = String::new();
    let drawn = draw(c, &mut svg);
    let mut o = String::new();
    let _ = write!(o, r#"<figure class="chart-box">"#);
    match drawn {
        Ok(()) => {
            // plotters writes the `<svg ...>` element itself, no XML declaration before it.
            let attrs = format!(
                r#"<svg class="chart" data-chart="{}" role="img" aria-label="{} ({})" "#,
                esc(&c.id),
                esc(&c.title),
                esc(&c.unit)
            );
            // Inline in HTML the namespace is implied: the page names no URL at all.
            let svg = svg.replacen(r#" xmlns="http://www.w3.org/2000/svg""#, "", 1);
            o.push_str(&svg.replacen("<svg ", &attrs, 1));
        }
        Err(e) => {
            let _ = write!(
                o,
                r#"<p class="chart-error" data-chart="{}">chart not drawn: {}</p>"#,
                esc(&c.id),
                esc(&e.to_string())
            );
        }
    }
    o.push_str(r#"<figcaption><ul class="legend">"#);
    for (i, s) in c.series.iter().enumerate() {
        let (r, g, b) = COLORS[i % COLORS.len()];
        let _ = write!(
            o,
            r##"<li data-series="{name}"><span style="background:#{r:02x}{g:02x}{b:02x}"></span>{name}</li>"##,
            name = esc(&s.name)
        );
    }
    o.push_str("</ul></figcaption></figure>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::report::ChartSeries;

    fn chart(n: usize, seconds: f64) -> Chart {
        Chart {
            id: "latency".into(),
            title: "Request duration".into(),
            unit: "s".into(),
            series: (0..n)
                .map(|i| ChartSeries {
                    name: format!("gen-{i:03}"),
                    points: (0..=10)
                        .map(|k| {
                            [
                                1_764_763_200.0 + seconds * k as f64 / 10.0,
                                0.1 + 0.01 * (i + k) as f64,
                            ]
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn time_axis_ticks_at_clock_intervals() {
        // An hour from 12:00 UTC: ticks every 10 minutes, labelled by the clock.
        let html = render(&chart(2, 3600.0));
        for label in ["12:00", "12:10", "12:30", "13:00"] {
            assert!(
                html.contains(&format!(">\n{label}\n<")),
                "{label} in {html}"
            );
        }
        // Values are formatted with their unit.
        assert!(html.contains(" ms\n<"), "{html}");
        assert!(html.contains(r#"data-chart="latency""#));
        // A minute: ticks every 10 s, with seconds.
        let html = render(&chart(1, 60.0));
        assert!(html.contains(">\n12:00:10\n<"), "{html}");
        // Two seconds: ticks every half second.
        let html = render(&chart(1, 2.0));
        assert!(html.contains(">\n12:00:01.5\n<"), "{html}");
    }

    #[test]
    fn a_hundred_series_get_a_legend_entry_each() {
        let html = render(&chart(100, 3600.0));
        assert_eq!(html.matches("<li data-series=").count(), 100);
        // Series lines are 2 px wide; the axes and ticks 1 px.
        assert_eq!(html.matches(r#"stroke-width="2" points="#).count(), 100);
    }

    #[test]
    fn empty_and_degenerate_charts_do_not_panic() {
        let mut c = chart(1, 0.0);
        render(&c);
        c.series[0].points = vec![[f64::NAN, f64::INFINITY]];
        render(&c);
        c.series.clear();
        assert!(render(&c).contains("data-chart"));
    }

    #[test]
    fn units_read_as_people_read_them() {
        assert_eq!(fmt_value(0.25, "1"), "25%");
        assert_eq!(fmt_value(0.0123, "s"), "12 ms");
        assert_eq!(fmt_value(2048.0, "MiB"), "2.0 GiB");
        assert_eq!(fmt_value(1500.0, "{request}/s"), "1.5k/s");
        assert_eq!(fmt_value(3.0, "{request}"), "3");
    }
}
