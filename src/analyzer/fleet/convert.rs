//! Range-query answers into analyzer stores, one per instance: counters and histograms become
//! per-step increases (a lower value is a counter reset, as in PromQL's `increase` without its
//! extrapolation), gauges and up-down counters their sampled levels. The first sample of each
//! series is the baseline of the second, so the increases cover `(start, end]` exactly like the
//! window the report reads, except for a series born inside the window (its first sample comes
//! after the query's first step, when the backend's lookback would have shown an older one):
//! a counter starts at zero, so all of its first value is an increase. That is what makes a
//! replica started inside the window count its first requests (Prometheus' `increase` would drop
//! them); a series that vanished for longer than the lookback (5 min by default) and came back
//! is counted the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::client::RangeSeries;
use super::signals::{SignalSource, attribute_key};
use crate::analyzer::MetricKind;
use crate::analyzer::store::{
    AnalyzerStore, Attributes, HistogramDelta, MetricMeta, RawPoint, RawValue,
};

/// Labels that name where a series came from, not what it measures.
const PROVENANCE: &[&str] = &["__name__", "job", "instance", "le"];

/// One source's answer.
pub(super) struct Fetched {
    pub(super) source: SignalSource,
    pub(super) series: Vec<RangeSeries>,
}

fn time(t: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0))
}

fn label<'a>(s: &'a RangeSeries, name: &str) -> Option<&'a str> {
    s.labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The series' attributes: labels renamed to attribute keys, provenance and `by` dropped, and
/// `extra` added (the fleet store keeps the instance).
fn attributes(s: &RangeSeries, by: &str, extra: Option<(&str, &str)>) -> Attributes {
    let mut out: Attributes = s
        .labels
        .iter()
        .filter(|(k, _)| !PROVENANCE.contains(&k.as_str()) && k != by)
        .map(|(k, v)| (attribute_key(k).to_string(), v.clone()))
        .chain(extra.map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    out.sort();
    out
}

/// Points per time, for one metric of one store.
type Timeline = BTreeMap<u64, Vec<RawPoint>>;

fn push(timeline: &mut Timeline, t: f64, attributes: &Attributes, value: RawValue) {
    timeline
        .entry((t * 1e3).round() as u64)
        .or_default()
        .push(RawPoint {
            attributes: attributes.clone(),
            time: time(t),
            value,
        });
}

fn increase(prev: f64, v: f64) -> f64 {
    if v >= prev { v - prev } else { v }
}

fn counter(samples: &[(f64, f64)], born_after: f64, attrs: &Attributes, out: &mut Timeline) {
    if let Some(&(t, v)) = samples.first().filter(|(t, _)| *t > born_after) {
        push(
            out,
            t,
            attrs,
            RawValue::Sum {
                start: SystemTime::UNIX_EPOCH,
                value: v,
                cumulative: false,
            },
        );
    }
    for pair in samples.windows(2) {
        let (prev, (t, v)) = (pair[0].1, pair[1]);
        let value = increase(prev, v);
        push(
            out,
            t,
            attrs,
            RawValue::Sum {
                start: SystemTime::UNIX_EPOCH,
                value,
                cumulative: false,
            },
        );
    }
}

fn level(samples: &[(f64, f64)], attrs: &Attributes, kind: MetricKind, out: &mut Timeline) {
    for &(t, v) in samples.iter().filter(|(_, v)| v.is_finite()) {
        let value = match kind {
            MetricKind::UpDownCounter => RawValue::Sum {
                start: SystemTime::UNIX_EPOCH,
                value: v,
                cumulative: true,
            },
            _ => RawValue::Gauge(v),
        };
        push(out, t, attrs, value);
    }
}

/// A histogram's `_bucket`, `_sum` and `_count` series of one label set.
#[derive(Default)]
struct HistogramParts<'a> {
    buckets: Vec<(f64, &'a [(f64, f64)])>,
    sum: Option<&'a [(f64, f64)]>,
    count: Option<&'a [(f64, f64)]>,
}

/// Cumulative state of one histogram at one time.
struct Cumulative {
    counts: Vec<f64>,
    count: f64,
    sum: f64,
}

fn histogram(
    parts: &mut HistogramParts<'_>,
    born_after: f64,
    attrs: &Attributes,
    out: &mut Timeline,
) {
    parts.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(last, _)) = parts.buckets.last() else {
        return;
    };
    if last != f64::INFINITY {
        return; // no +Inf bucket: not a complete histogram
    }
    let bounds: Arc<[f64]> = parts.buckets[..parts.buckets.len() - 1]
        .iter()
        .map(|b| b.0)
        .collect();
    // Values per time; a time is used only when every bucket has a sample there.
    let mut at: BTreeMap<u64, Vec<Option<f64>>> = BTreeMap::new();
    let n = parts.buckets.len();
    for (i, (_, samples)) in parts.buckets.iter().enumerate() {
        for &(t, v) in *samples {
            at.entry((t * 1e3).round() as u64)
                .or_insert_with(|| vec![None; n])[i] = Some(v);
        }
    }
    let lookup = |s: Option<&[(f64, f64)]>| -> HashMap<u64, f64> {
        s.unwrap_or_default()
            .iter()
            .map(|&(t, v)| ((t * 1e3).round() as u64, v))
            .collect()
    };
    let (sums, counts) = (lookup(parts.sum), lookup(parts.count));
    // Born inside the window: its first sample is an increase from zero.
    let mut previous: Option<Cumulative> = at
        .keys()
        .next()
        .filter(|ms| **ms as f64 / 1e3 > born_after)
        .map(|_| Cumulative {
            counts: vec![0.0; n],
            count: 0.0,
            sum: 0.0,
        });
    for (ms, values) in at {
        let Some(cum) = values.into_iter().collect::<Option<Vec<f64>>>() else {
            continue;
        };
        // Per-bucket counts from the cumulative `le` counts.
        let per: Vec<f64> = cum
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    *c
                } else {
                    (c - cum[i - 1]).max(0.0)
                }
            })
            .collect();
        let now = Cumulative {
            count: counts.get(&ms).copied().unwrap_or(cum[n - 1]),
            sum: sums.get(&ms).copied().unwrap_or(0.0),
            counts: per,
        };
        if let Some(prev) = &previous {
            let reset = now.count < prev.count;
            let delta = HistogramDelta {
                bounds: Arc::clone(&bounds),
                counts: now
                    .counts
                    .iter()
                    .zip(&prev.counts)
                    .map(|(c, p)| if reset { *c } else { (c - p).max(0.0) }.round() as u64)
                    .collect(),
                count: if reset {
                    now.count
                } else {
                    now.count - prev.count
                }
                .round() as u64,
                sum: if reset { now.sum } else { now.sum - prev.sum },
                min: None,
                max: None,
            };
            push(
                out,
                ms as f64 / 1e3,
                attrs,
                RawValue::Histogram {
                    start: SystemTime::UNIX_EPOCH,
                    cumulative: false,
                    delta,
                },
            );
        }
        previous = Some(now);
    }
}

/// `fetched`'s series of one source turned into timelines per store key (the instance, or ""
/// for the fleet store, which keeps the instance as an attribute). A series whose first sample
/// is later than `born_after` (unix seconds: the query's first step) was born in the window.
pub(super) fn timelines<'a>(
    fetched: &'a Fetched,
    by: &str,
    born_after: f64,
    keep: impl Fn(&str) -> bool,
    fleet: bool,
) -> BTreeMap<String, Timeline> {
    let src = &fetched.source;
    let mut out: BTreeMap<String, Timeline> = BTreeMap::new();
    let mut histograms: BTreeMap<(String, Attributes), HistogramParts<'a>> = BTreeMap::new();
    for s in &fetched.series {
        let Some(instance) = label(s, by) else {
            continue;
        };
        if !keep(instance) {
            continue;
        }
        let extra = fleet.then_some(("instance", instance));
        let attrs = attributes(s, by, extra);
        let key = if fleet {
            String::new()
        } else {
            instance.to_string()
        };
        match src.kind {
            MetricKind::Histogram => {
                let name = label(s, "__name__").unwrap_or_default();
                let parts = histograms.entry((key, attrs)).or_default();
                if name.ends_with("_bucket") {
                    let le = label(s, "le")
                        .and_then(|l| l.parse::<f64>().ok())
                        .unwrap_or(f64::NAN);
                    if le.is_nan() {
                        continue;
                    }
                    parts.buckets.push((le, &s.samples));
                } else if name.ends_with("_sum") {
                    parts.sum = Some(&s.samples);
                } else if name.ends_with("_count") {
                    parts.count = Some(&s.samples);
                }
            }
            MetricKind::Counter => {
                counter(&s.samples, born_after, &attrs, out.entry(key).or_default())
            }
            kind => level(&s.samples, &attrs, kind, out.entry(key).or_default()),
        }
    }
    for ((key, attrs), mut parts) in histograms {
        histogram(&mut parts, born_after, &attrs, out.entry(key).or_default());
    }
    out
}

/// Ingests one source's timeline into `store`, one collection per time.
pub(super) fn ingest(store: &AnalyzerStore, source: &SignalSource, timeline: Timeline) {
    let mut inner = store.lock();
    for (_, points) in timeline {
        store.ingest_points(
            &mut inner,
            MetricMeta {
                name: source.stored,
                unit: source.unit,
                description: "",
                kind: source.kind,
            },
            points,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::{StoreConfig, Window};

    fn series(labels: &[(&str, &str)], samples: &[(f64, f64)]) -> RangeSeries {
        RangeSeries {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            samples: samples.to_vec(),
        }
    }

    fn window(start: f64, end: f64) -> Window {
        Window {
            start: time(start),
            end: time(end),
        }
    }

    #[test]
    fn counters_become_increases_across_a_reset() {
        let source = super::super::signals::sources()
            .into_iter()
            .find(|s| s.stored == "genscope.generation.requests")
            .unwrap();
        let fetched = Fetched {
            source: source.clone(),
            series: vec![series(
                &[
                    ("__name__", "genscope_generation_requests_total"),
                    ("instance", "a:1"),
                    ("error_type", "timeout"),
                ],
                // 10 → 15 → reset to 3 → 7: increases 5, 3, 4.
                &[(100.0, 10.0), (110.0, 15.0), (120.0, 3.0), (130.0, 7.0)],
            )],
        };
        let mut t = timelines(&fetched, "instance", 100.0, |_| true, false);
        let store = AnalyzerStore::new(StoreConfig::default());
        ingest(&store, &source, t.remove("a:1").unwrap());
        let w = window(100.0, 130.0);
        assert_eq!(
            store.sum("genscope.generation.requests", &[], w),
            Some(12.0)
        );
        assert_eq!(
            store.sum(
                "genscope.generation.requests",
                &[("error.type", "timeout")],
                w
            ),
            Some(12.0)
        );
    }

    #[test]
    fn histograms_are_rebuilt_from_their_buckets() {
        let source = super::super::signals::sources()
            .into_iter()
            .find(|s| s.stored == "gen_ai.server.request.duration")
            .unwrap();
        let b = |le: &'static str, a: f64, z: f64| {
            series(
                &[
                    ("__name__", "gen_ai_server_request_duration_seconds_bucket"),
                    ("instance", "a:1"),
                    ("le", le),
                ],
                &[(0.0, a), (10.0, z)],
            )
        };
        let fetched = Fetched {
            source: source.clone(),
            series: vec![
                b("0.1", 1.0, 3.0),
                b("1", 2.0, 10.0),
                b("+Inf", 2.0, 12.0),
                series(
                    &[
                        ("__name__", "gen_ai_server_request_duration_seconds_count"),
                        ("instance", "a:1"),
                    ],
                    &[(0.0, 2.0), (10.0, 12.0)],
                ),
                series(
                    &[
                        ("__name__", "gen_ai_server_request_duration_seconds_sum"),
                        ("instance", "a:1"),
                    ],
                    &[(0.0, 0.5), (10.0, 8.5)],
                ),
            ],
        };
        let mut t = timelines(&fetched, "instance", 0.0, |_| true, false);
        let store = AnalyzerStore::new(StoreConfig::default());
        ingest(&store, &source, t.remove("a:1").unwrap());
        let h = store
            .histogram("gen_ai.server.request.duration", &[], window(0.0, 10.0))
            .unwrap();
        assert_eq!((h.count, h.sum), (10, 8.0));
        assert_eq!(h.counts, [2, 6, 2]);
        assert_eq!(h.bounds, [0.1, 1.0]);
    }

    #[test]
    fn a_series_born_inside_the_window_counts_its_first_value() {
        let source = super::super::signals::sources()
            .into_iter()
            .find(|s| s.stored == "genscope.generation.requests")
            .unwrap();
        let s = |instance: &str, samples: &[(f64, f64)]| {
            series(
                &[
                    ("__name__", "genscope_generation_requests_total"),
                    ("instance", instance),
                ],
                samples,
            )
        };
        let fetched = Fetched {
            source: source.clone(),
            series: vec![
                // There at the first step: its first value is the baseline.
                s("old:1", &[(100.0, 40.0), (110.0, 45.0)]),
                // First seen after it (a replica started in the window): counted from zero.
                s("new:1", &[(110.0, 6.0), (120.0, 9.0)]),
            ],
        };
        let mut t = timelines(&fetched, "instance", 100.0, |_| true, false);
        let w = window(100.0, 130.0);
        for (instance, expected) in [("old:1", 5.0), ("new:1", 9.0)] {
            let store = AnalyzerStore::new(StoreConfig::default());
            ingest(&store, &source, t.remove(instance).unwrap());
            assert_eq!(
                store.sum("genscope.generation.requests", &[], w),
                Some(expected),
                "{instance}"
            );
        }
    }
}
