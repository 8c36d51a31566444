//! Prometheus exposition (text format 0.0.4 and OpenMetrics 1.0) of the analyzer's current
//! values, with the OTel-to-Prometheus translation of the OTel specification: names sanitized
//! (dots to underscores), unit suffixes (`_seconds`, `_bytes`, `_ratio` for unit-1 gauges, ...),
//! `_total` on counters, `_bucket{le}`/`_sum`/`_count` for histograms, attribute keys sanitized
//! into labels, and the resource as `target_info`.
//!
//! Written here rather than with `prometheus-client`: that crate owns its own registry and
//! aggregation, and genscope renders what the OTel SDK already aggregated (no second copy).
//! The output is checked in tests by two parsers and by `promtool check metrics`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::SystemTime;

use super::exemplars::{Exemplars, suffix as exemplar_suffix};
use super::prometheus_names::{OM_RESERVED_SUFFIXES, family_name, sanitize};
use crate::analyzer::{Attributes, MetricKind, MetricSnapshot, SeriesSnapshot, SeriesValue};
use crate::instruments::ExemplarRegistry;

/// Which exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpositionFormat {
    /// Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl ExpositionFormat {
    /// The `Content-Type` to serve it with.
    pub fn content_type(self) -> &'static str {
        match self {
            ExpositionFormat::Text => "text/plain; version=0.0.4; charset=utf-8",
            ExpositionFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }

    /// Content negotiation: OpenMetrics when the `Accept` header asks for it with a quality at
    /// least that of the text format, else text 0.0.4 (also for a missing header).
    ///
    /// ```
    /// use genscope::export::ExpositionFormat;
    /// let prom = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
    /// assert_eq!(ExpositionFormat::negotiate(Some(prom)), ExpositionFormat::OpenMetrics);
    /// assert_eq!(ExpositionFormat::negotiate(Some("text/plain")), ExpositionFormat::Text);
    /// assert_eq!(ExpositionFormat::negotiate(None), ExpositionFormat::Text);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> ExpositionFormat {
        let Some(accept) = accept else {
            return ExpositionFormat::Text;
        };
        let mut om = None::<f32>;
        let mut text = None::<f32>;
        for part in accept.split(',') {
            let mut pieces = part.split(';').map(str::trim);
            let media = pieces.next().unwrap_or_default().to_ascii_lowercase();
            let q = pieces
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => om = Some(om.unwrap_or(0.0).max(q)),
                "text/plain" | "*/*" | "text/*" => text = Some(text.unwrap_or(0.0).max(q)),
                _ => {}
            }
        }
        match om {
            Some(q) if q > 0.0 && q >= text.unwrap_or(0.0) => ExpositionFormat::OpenMetrics,
            _ => ExpositionFormat::Text,
        }
    }
}

/// Control characters other than tab and line feed have no escape in either format and break
/// line-oriented readers (a carriage return ends a line for many): they become U+FFFD.
fn printable(c: char) -> char {
    if c.is_control() && c != '\t' && c != '\n' {
        '\u{FFFD}'
    } else {
        c
    }
}

fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(printable(c)),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .chars()
        .map(printable)
        .collect()
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn le_value(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        number(v)
    }
}

/// Sanitized label pairs; keys that collide after sanitizing have their values joined with `;`
/// in key order (the OTel specification's rule).
fn label_pairs(attrs: &Attributes) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in attrs {
        let key = sanitize(k, true);
        match pairs.iter_mut().find(|(pk, _)| *pk == key) {
            Some((_, pv)) => {
                pv.push(';');
                pv.push_str(v);
            }
            None => pairs.push((key, v.clone())),
        }
    }
    pairs.sort();
    pairs
}

/// The label block. Every key of `keys` (the family's union) is written, absent ones as `""`:
/// Prometheus treats an empty label value as an absent label, and strict parsers want one label
/// set per family.
/// Distinct OTel series can render to one Prometheus series (an attribute with an empty value is
/// the same as no attribute there; sanitized keys can meet). Two samples with one label set make
/// the whole exposition invalid, so they are merged: sums and same-bucket histograms add up,
/// gauges keep the latest value. Order of first appearance is kept.
fn merge_colliding(series: &[SeriesSnapshot], keys: &[String]) -> Vec<(String, SeriesSnapshot)> {
    let mut out: Vec<(String, SeriesSnapshot)> = Vec::with_capacity(series.len());
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for s in series {
        let l = labels_with(&label_pairs(&s.attributes), keys, None);
        let Some(&i) = index.get(&l) else {
            index.insert(l.clone(), out.len());
            out.push((l, s.clone()));
            continue;
        };
        let acc = &mut out[i].1;
        match (&mut acc.value, &s.value) {
            (SeriesValue::Sum(a), SeriesValue::Sum(b)) => {
                *a += b;
                acc.start = acc.start.min(s.start);
            }
            (
                SeriesValue::Histogram {
                    bounds,
                    counts,
                    count,
                    sum,
                    min,
                    max,
                },
                SeriesValue::Histogram {
                    bounds: b_bounds,
                    counts: b_counts,
                    count: b_count,
                    sum: b_sum,
                    min: b_min,
                    max: b_max,
                },
            ) if bounds == b_bounds && counts.len() == b_counts.len() => {
                for (x, y) in counts.iter_mut().zip(b_counts) {
                    *x += y;
                }
                *count += b_count;
                *sum += b_sum;
                *min = min.zip(*b_min).map(|(x, y)| x.min(y));
                *max = max.zip(*b_max).map(|(x, y)| x.max(y));
                acc.start = acc.start.min(s.start);
            }
            (SeriesValue::Gauge(_), SeriesValue::Gauge(_)) if s.time > acc.time => {
                *acc = s.clone();
            }
            _ => {}
        }
    }
    out
}

fn labels_with(
    pairs: &[(String, String)],
    keys: &[String],
    extra: Option<(&str, String)>,
) -> String {
    let mut out = String::new();
    let mut first = true;
    let mut push = |k: &str, v: &str, out: &mut String| {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label(v, out);
        out.push('"');
    };
    for k in keys {
        let v = pairs
            .iter()
            .find(|(pk, _)| pk == k)
            .map_or("", |(_, v)| v.as_str());
        push(k, v, &mut out);
    }
    if let Some((k, v)) = extra {
        push(k, &v, &mut out);
    }
    if !first {
        out.push('}');
    }
    out
}

fn labels(attrs: &Attributes, extra: Option<(&str, String)>) -> String {
    let pairs = label_pairs(attrs);
    let keys: Vec<String> = pairs.iter().map(|(k, _)| k.clone()).collect();
    labels_with(&pairs, &keys, extra)
}

fn seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Renders the snapshot and resource in the given format. The output always parses: names and
/// labels are sanitized, a second metric translating to an already-used name is left out.
///
/// ```
/// use genscope::export::{ExpositionFormat, render_prometheus};
/// let text = render_prometheus(&[], &vec![("service.name".into(), "gen".into())], ExpositionFormat::OpenMetrics);
/// assert!(text.contains("target_info{service_name=\"gen\"} 1"));
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn render_prometheus(
    metrics: &[MetricSnapshot],
    resource: &Attributes,
    format: ExpositionFormat,
) -> String {
    render(metrics, resource, format, None)
}

/// [`render_prometheus`] with exemplars: in OpenMetrics, each `_bucket` line whose bucket kept a
/// measurement ends in `# {trace_id="...",span_id="..."} VALUE TIMESTAMP` (the latest one; the
/// text format has no exemplars).
///
/// ```
/// use genscope::export::{ExpositionFormat, render_prometheus_with_exemplars};
/// let registry = genscope::instruments::ExemplarRegistry::default();
/// let text = render_prometheus_with_exemplars(&[], &vec![], ExpositionFormat::OpenMetrics, &registry);
/// assert_eq!(text, "# EOF\n");
/// ```
pub fn render_prometheus_with_exemplars(
    metrics: &[MetricSnapshot],
    resource: &Attributes,
    format: ExpositionFormat,
    exemplars: &ExemplarRegistry,
) -> String {
    render(metrics, resource, format, Some(exemplars))
}

fn render(
    metrics: &[MetricSnapshot],
    resource: &Attributes,
    format: ExpositionFormat,
    exemplars: Option<&ExemplarRegistry>,
) -> String {
    let om = format == ExpositionFormat::OpenMetrics;
    let mut exemplars = Exemplars::new(exemplars.filter(|_| om));
    let mut out = String::new();
    let mut used: HashSet<String> = HashSet::new();
    if !resource.is_empty() {
        used.insert("target".into());
        used.insert("target_info".into());
        if om {
            out.push_str("# TYPE target info\n# HELP target Target metadata\n");
        } else {
            out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\n");
        }
        let _ = writeln!(out, "target_info{} 1", labels(resource, None));
    }
    for m in metrics {
        let mut keys: Vec<String> = m
            .series
            .iter()
            .flat_map(|s| label_pairs(&s.attributes).into_iter().map(|(k, _)| k))
            .filter(|k| k != "le")
            .collect();
        keys.sort();
        keys.dedup();
        let merged = merge_colliding(&m.series, &keys);
        // A family without samples says nothing, and some parsers reject it: leave it out (in
        // OpenMetrics that includes a counter whose every total is negative, see below).
        let writes_a_sample = merged.iter().any(|(_, s)| match s.value {
            SeriesValue::Sum(v) if om && m.kind == MetricKind::Counter => v >= 0.0,
            _ => true,
        });
        if !writes_a_sample {
            continue;
        }
        let (mut family, suffix) = family_name(&m.name, &m.unit, m.kind);
        // OpenMetrics readers find a family from its samples by stripping the reserved suffixes,
        // so a counter or histogram family may not end in one ("x_sum" would read as "x").
        if om
            && matches!(
                m.kind,
                MetricKind::Counter | MetricKind::Histogram | MetricKind::ExponentialHistogram
            )
            && OM_RESERVED_SUFFIXES.iter().any(|r| family.ends_with(r))
        {
            family.push('_');
        }
        let sample = if m.kind == MetricKind::Counter {
            format!("{family}_total")
        } else {
            family.clone()
        };
        // Every name a family produces must be new, or the exposition would not parse.
        let produced: Vec<String> = match m.kind {
            MetricKind::Histogram | MetricKind::ExponentialHistogram => vec![
                family.clone(),
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
                format!("{family}_created"),
            ],
            MetricKind::Counter => {
                vec![family.clone(), sample.clone(), format!("{family}_created")]
            }
            _ => vec![family.clone()],
        };
        if produced.iter().any(|n| used.contains(n)) {
            continue;
        }
        used.extend(produced);
        let type_name = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::UpDownCounter | MetricKind::Gauge => "gauge",
            MetricKind::Histogram | MetricKind::ExponentialHistogram => "histogram",
        };
        let header_name = if om { &family } else { &sample };
        let _ = writeln!(out, "# HELP {header_name} {}", escape_help(&m.description));
        let _ = writeln!(out, "# TYPE {header_name} {type_name}");
        // UNIT is optional metadata ("MAY"); emitted for counters and gauges only, since some
        // OpenMetrics parsers refuse it on histograms.
        if om
            && matches!(
                m.kind,
                MetricKind::Counter | MetricKind::Gauge | MetricKind::UpDownCounter
            )
            && let Some(unit) = &suffix
            && family.ends_with(&format!("_{unit}"))
        {
            let _ = writeln!(out, "# UNIT {family} {unit}");
        }
        for (l, s) in merged {
            let l = &l;
            let pairs = label_pairs(&s.attributes);
            match &s.value {
                // OpenMetrics counter totals must be non-negative numbers; a callback that
                // reported otherwise is left out there (the text format shows it as is).
                SeriesValue::Sum(v)
                    if om && m.kind == MetricKind::Counter && (v.is_nan() || *v < 0.0) => {}
                SeriesValue::Sum(v) | SeriesValue::Gauge(v) => {
                    let _ = writeln!(out, "{sample}{l} {}", number(*v));
                    if om && m.kind == MetricKind::Counter {
                        let _ = writeln!(out, "{family}_created{l} {}", number(seconds(s.start)));
                    }
                }
                SeriesValue::Histogram {
                    bounds,
                    counts,
                    count,
                    sum,
                    ..
                } => {
                    let mut cumulative = 0u64;
                    let kept = exemplars.series(&m.name, &s.attributes);
                    for (i, c) in counts.iter().enumerate() {
                        cumulative += c;
                        let le = bounds.get(i).map_or("+Inf".to_string(), |b| le_value(*b));
                        let lo = if i == 0 {
                            f64::NEG_INFINITY
                        } else {
                            bounds[i - 1]
                        };
                        let hi = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                        let exemplar = if kept.len() == counts.len() {
                            exemplar_suffix(kept[i].as_ref(), lo, hi)
                        } else {
                            String::new()
                        };
                        let _ = writeln!(
                            out,
                            "{family}_bucket{} {cumulative}{exemplar}",
                            labels_with(&pairs, &keys, Some(("le", le)))
                        );
                    }
                    if counts.len() <= bounds.len() {
                        let _ = writeln!(
                            out,
                            "{family}_bucket{} {count}",
                            labels_with(&pairs, &keys, Some(("le", "+Inf".into())))
                        );
                    }
                    // OpenMetrics allows a negative sum only beside a negative bucket bound, and
                    // a count only with a sum: such a histogram shows its buckets alone there
                    // (the text format keeps both).
                    let negative_buckets = bounds.first().is_some_and(|b| *b < 0.0);
                    if !(om && *sum < 0.0 && !negative_buckets) {
                        let _ = writeln!(out, "{family}_sum{l} {}", number(*sum));
                        let _ = writeln!(out, "{family}_count{l} {count}");
                    }
                    if om {
                        let _ = writeln!(out, "{family}_created{l} {}", number(seconds(s.start)));
                    }
                }
            }
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_collisions_and_escaping() {
        let attrs = vec![
            ("a.b".to_string(), "1".to_string()),
            ("a_b".to_string(), "2".to_string()),
            ("q".to_string(), "say \"hi\"\\\n".to_string()),
        ];
        assert_eq!(labels(&attrs, None), r#"{a_b="1;2",q="say \"hi\"\\\n"}"#);
        assert_eq!(
            labels(&vec![("1x".into(), "v".into())], None),
            r#"{key_1x="v"}"#
        );
    }
}

#[cfg(test)]
mod collision_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn series_that_render_alike_are_merged_not_duplicated() {
        // Found by fuzzing: `k=""` and no `k` are one Prometheus series; two samples with one
        // label set would make the whole scrape invalid.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let series = |attrs: Vec<(&str, &str)>, v: f64| SeriesSnapshot {
            attributes: attrs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            start: t,
            time: t,
            value: SeriesValue::Sum(v),
        };
        let m = MetricSnapshot {
            name: "app.requests".into(),
            unit: "{request}".into(),
            description: String::new(),
            kind: MetricKind::Counter,
            series: vec![
                series(vec![], 2.0),
                series(vec![("k", "")], 3.0),
                series(vec![("k", "x")], 1.0),
            ],
        };
        for format in [ExpositionFormat::Text, ExpositionFormat::OpenMetrics] {
            let text = render_prometheus(std::slice::from_ref(&m), &Attributes::new(), format);
            assert!(text.contains("app_requests_total{k=\"\"} 5"), "{text}");
            assert!(text.contains("app_requests_total{k=\"x\"} 1"), "{text}");
            assert_eq!(
                text.matches("app_requests_total{k=\"\"}").count(),
                1,
                "{text}"
            );
        }
    }
}

#[cfg(test)]
mod reserved_suffix_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn an_openmetrics_histogram_family_never_ends_in_a_reserved_suffix() {
        // Found by fuzzing: a histogram named "x.sum" became family "x_sum", which readers take
        // for the `_sum` series of a family "x".
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let m = MetricSnapshot {
            name: "payload.sum".into(),
            unit: String::new(),
            description: String::new(),
            kind: MetricKind::Histogram,
            series: vec![SeriesSnapshot {
                attributes: vec![],
                start: t,
                time: t,
                value: SeriesValue::Histogram {
                    bounds: vec![1.0],
                    counts: vec![1, 0],
                    count: 1,
                    sum: 0.5,
                    min: None,
                    max: None,
                },
            }],
        };
        let om = render_prometheus(
            std::slice::from_ref(&m),
            &Attributes::new(),
            ExpositionFormat::OpenMetrics,
        );
        assert!(om.contains("# TYPE payload_sum_ histogram"), "{om}");
        openmetrics_parser::openmetrics::parse_openmetrics(&om).unwrap();
        let text = render_prometheus(&[m], &Attributes::new(), ExpositionFormat::Text);
        assert!(
            text.contains("payload_sum_bucket{le=\"1\"} 1")
                || text.contains("payload_sum_bucket{le=\"1.0\"} 1"),
            "{text}"
        );
    }
}
