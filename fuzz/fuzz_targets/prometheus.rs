//! The Prometheus exposition writer on arbitrary metric names, units, attributes and values: its
//! output always parses (prometheus-parse), in both formats.
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
    let metrics: Vec<MetricSnapshot> = input
        .metrics
        .into_iter()
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
                series: series
                    .into_iter()
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
        if format == ExpositionFormat::Text {
            let lines = text.lines().map(|l| Ok(l.to_string()));
            prometheus_parse::Scrape::parse(lines)
                .unwrap_or_else(|e| panic!("unparsable exposition: {e}\n{text}"));
        }
    }
});
