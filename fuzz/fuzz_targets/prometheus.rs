//! The Prometheus exposition writer on arbitrary metric names, units, attributes and values: its
//! output always parses, the text format with prometheus-parse and OpenMetrics with
//! openmetrics-parser.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use genscope::analyzer::{MetricKind, MetricSnapshot, SeriesSnapshot, SeriesValue};
use genscope::export::{ExpositionFormat, render_prometheus};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Series {
    attributes: Vec<(String, String)>,
    kind: u8,
    value: f64,
    counts: Vec<u16>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    metrics: Vec<(String, String, String, Vec<Series>)>,
    resource: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // The store's invariants: one snapshot per metric name, one series per attribute set.
    let mut names = std::collections::HashSet::new();
    let metrics: Vec<MetricSnapshot> = input
        .metrics
        .into_iter()
        // Names reach the writer only after OTel name validation (the SDK and the collector
        // refuse others); units, descriptions, attributes and values are arbitrary.
        .filter(|m| genscope::instruments::validate_name(&m.0).is_ok())
        .filter(|m| names.insert(m.0.clone()))
        .take(8)
        .map(|(name, unit, description, series)| {
            let kind = match series.first().map(|s| s.kind % 4).unwrap_or(0) {
                0 => MetricKind::Counter,
                1 => MetricKind::UpDownCounter,
                2 => MetricKind::Gauge,
                _ => MetricKind::Histogram,
            };
            MetricSnapshot {
                name,
                unit,
                description,
                kind,
                series: {
                    let mut seen = std::collections::HashSet::new();
                    series.into_iter().filter(move |s| seen.insert(s.attributes.clone()))
                }
                    .take(8)
                    .map(|s| SeriesSnapshot {
                        attributes: s.attributes,
                        start: t,
                        time: t,
                        value: match kind {
                            MetricKind::Histogram => {
                                let counts: Vec<u64> = s.counts.iter().map(|c| *c as u64).collect();
                                let n = counts.len().max(1);
                                SeriesValue::Histogram {
                                    bounds: (1..n).map(|i| i as f64).collect(),
                                    count: counts.iter().sum(),
                                    counts: if counts.is_empty() { vec![0] } else { counts },
                                    sum: s.value,
                                    min: None,
                                    max: None,
                                }
                            }
                            MetricKind::Gauge => SeriesValue::Gauge(s.value),
                            _ => SeriesValue::Sum(s.value),
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    for format in [ExpositionFormat::Text, ExpositionFormat::OpenMetrics] {
        let text = render_prometheus(&metrics, &input.resource, format);
        match format {
            ExpositionFormat::Text => {
                let lines = text.lines().map(|l| Ok(l.to_string()));
                prometheus_parse::Scrape::parse(lines)
                    .unwrap_or_else(|e| panic!("unparsable text exposition: {e}\n{text}"));
            }
            // An empty metric set ("# EOF" alone) is valid OpenMetrics; openmetrics-parser 0.5
            // wants at least one family, so that one case is checked by hand.
            ExpositionFormat::OpenMetrics if text == "# EOF\n" => {}
            ExpositionFormat::OpenMetrics => {
                openmetrics_parser::openmetrics::parse_openmetrics(&text)
                    .unwrap_or_else(|e| panic!("unparsable OpenMetrics: {e:?}\n{text:?}"));
            }
        }
    }
});
