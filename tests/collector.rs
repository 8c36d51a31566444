//! The metrics collector: every invalid input is refused with its error and counted, reset and
//! delete mean what their docs say (checked in the analyzer and at a real OTLP receiver),
//! collector callbacks that panic are contained, windowed quantiles stay within their stated
//! error bound, and attribute floods stay within the series limit.

mod common;

use std::time::Duration;

use common::{Mode, Receiver, sum_points};
use genscope::Genscope;
use genscope::analyzer::{Aggregation, Window};
use genscope::config::Protocol;
use genscope::instruments::{DefinitionError, InstrumentKind, MetricDefinition, RecordError};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

fn local() -> Genscope {
    Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .build()
        .unwrap()
}

#[test]
fn invalid_definitions_are_refused_with_their_error() {
    let t = local();
    let m = t.metrics();
    type Check = fn(&DefinitionError) -> bool;
    let cases: Vec<(MetricDefinition, Check)> = vec![
        (MetricDefinition::counter(""), |e| {
            matches!(e, DefinitionError::InvalidName { .. })
        }),
        (MetricDefinition::counter("1abc"), |e| {
            matches!(e, DefinitionError::InvalidName { .. })
        }),
        (MetricDefinition::counter("a b"), |e| {
            matches!(e, DefinitionError::InvalidName { .. })
        }),
        (MetricDefinition::counter("a".repeat(256)), |e| {
            matches!(e, DefinitionError::InvalidName { .. })
        }),
        (
            MetricDefinition::counter("app.x").with_unit("requests"),
            |e| matches!(e, DefinitionError::InvalidUnit { .. }),
        ),
        (
            MetricDefinition::counter("app.x").with_unit("s".repeat(64)),
            |e| matches!(e, DefinitionError::InvalidUnit { .. }),
        ),
        (
            MetricDefinition::histogram("app.h").with_buckets([1.0, 0.5]),
            |e| matches!(e, DefinitionError::InvalidBuckets { .. }),
        ),
        (
            MetricDefinition::histogram("app.h").with_buckets([0.5, 0.5]),
            |e| matches!(e, DefinitionError::InvalidBuckets { .. }),
        ),
        (
            MetricDefinition::histogram("app.h").with_buckets([f64::NAN]),
            |e| matches!(e, DefinitionError::InvalidBuckets { .. }),
        ),
        (
            MetricDefinition::histogram("app.h").with_buckets([0.0, f64::INFINITY]),
            |e| matches!(e, DefinitionError::InvalidBuckets { .. }),
        ),
        (MetricDefinition::gauge("app.g").with_buckets([1.0]), |e| {
            matches!(e, DefinitionError::BucketsOnNonHistogram { .. })
        }),
        (
            MetricDefinition::counter("app.c").with_attributes([""]),
            |e| matches!(e, DefinitionError::InvalidAttributeKey { .. }),
        ),
        (MetricDefinition::counter("gen_ai.my.tokens"), |e| {
            matches!(
                e,
                DefinitionError::ReservedNamespace {
                    namespace: "gen_ai.",
                    ..
                }
            )
        }),
        (MetricDefinition::counter("system.cpu.time"), |e| {
            matches!(e, DefinitionError::ReservedNamespace { .. })
        }),
        (
            MetricDefinition::counter("http.server.request.duration"),
            |e| matches!(e, DefinitionError::ReservedNamespace { .. }),
        ),
    ];
    let n = cases.len() as u64;
    for (definition, check) in cases {
        let name = definition.name().to_string();
        let err = m.create_metric(definition).expect_err(&name);
        assert!(check(&err), "{name}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(m.rejected(), n, "every refusal is counted");
    assert!(m.get_all_metrics().is_empty(), "nothing was registered");

    // A kind that does not match the existing definition.
    m.create_metric(MetricDefinition::counter("app.jobs"))
        .unwrap();
    let err = m
        .create_metric(MetricDefinition::histogram("app.jobs"))
        .unwrap_err();
    assert!(matches!(err, DefinitionError::Conflict { .. }), "{err}");
    // The same definition again is the same metric.
    assert!(
        m.create_metric(MetricDefinition::counter("app.jobs"))
            .is_ok()
    );
    // A catalog definition is accepted in its reserved namespace, exactly as the catalog has it.
    let semconv = genscope::instruments::catalog::all()
        .into_iter()
        .find(|d| d.name() == "http.server.request.duration")
        .unwrap();
    assert!(m.create_metric(semconv).is_ok());
}

#[test]
fn invalid_values_and_attributes_are_refused_and_counted() {
    let t = local();
    let m = t.metrics();
    m.create_metric(MetricDefinition::counter("app.c").with_attributes(["model"]))
        .unwrap();
    let attrs = [KeyValue::new("model", "sdxl")];
    let refused = [
        m.increment_counter("app.c", -1.0, &attrs),
        m.increment_counter("app.c", f64::NAN, &attrs),
        m.increment_counter("app.c", f64::INFINITY, &attrs),
        m.increment_counter("app.c", 1.0, &[KeyValue::new("user.id", "42")]),
        m.increment_counter("app.c", 1.0, &[KeyValue::new("", "x")]),
        m.set_gauge("app.c", 1.0, &attrs),
        m.record_histogram("app.c", 1.0, &attrs),
        m.record_timer("app.c", Duration::from_secs(1), &attrs),
        m.increment_counter("not a name", 1.0, &[]),
        m.set_gauge("app.g", f64::NEG_INFINITY, &[]),
        m.record_histogram("app.h", f64::NAN, &[]),
    ];
    for (i, r) in refused.iter().enumerate() {
        assert!(r.is_err(), "case {i} was accepted");
    }
    assert!(matches!(refused[0], Err(RecordError::InvalidValue { .. })));
    assert!(matches!(
        refused[3],
        Err(RecordError::UnexpectedAttribute { .. })
    ));
    assert!(matches!(
        refused[4],
        Err(RecordError::EmptyAttributeKey { .. })
    ));
    assert!(matches!(
        refused[5],
        Err(RecordError::KindMismatch {
            defined: InstrumentKind::Counter,
            used: InstrumentKind::Gauge,
            ..
        })
    ));
    assert!(matches!(
        refused[8],
        Err(RecordError::Definition(DefinitionError::InvalidName { .. }))
    ));
    assert_eq!(m.rejected(), refused.len() as u64);

    // Bound handles refuse too, and count.
    let bound = m.bind_counter("app.c", &attrs).unwrap();
    assert!(bound.add(-3.0).is_err());
    assert!(bound.add(f64::NAN).is_err());
    bound.add(2.0).unwrap();
    let timer = m.bind_histogram("app.timer", &[]);
    assert!(timer.is_ok(), "a histogram is defined on first bind");
    assert!(
        m.bind_counter("app.c", &[KeyValue::new("other", "x")])
            .is_err()
    );
    m.increment_counter("app.c", 1.0, &attrs).unwrap();
    assert_eq!(m.rejected(), refused.len() as u64 + 3);

    t.force_flush().unwrap();
    let w = Window::all();
    assert_eq!(
        t.analyzer().sum("app.c", &[], w),
        Some(3.0),
        "only valid values were recorded"
    );
    // The refusals are exported too.
    let rejected = t
        .analyzer()
        .sum("genscope.metric.rejected", &[], w)
        .unwrap();
    assert_eq!(rejected, (refused.len() + 3) as f64);
    assert_eq!(
        t.analyzer().sum(
            "genscope.metric.rejected",
            &[("error.type", "negative_value")],
            w
        ),
        Some(2.0)
    );
}

#[test]
fn timers_and_guards_record_durations() {
    let t = local();
    let m = t.metrics();
    let out = m.time("app.step", &[], || {
        std::thread::sleep(Duration::from_millis(20));
        7
    });
    assert_eq!(out, 7);
    let guard = m.timer("app.step", &[]).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    assert!(guard.stop() >= Duration::from_millis(10));
    m.timer("app.step", &[]).unwrap().cancel();
    // A failing timer still runs the closure.
    m.create_metric(MetricDefinition::gauge("app.g")).unwrap();
    assert_eq!(m.time("app.g", &[], || 5), 5);
    t.force_flush().unwrap();
    let h = t
        .analyzer()
        .histogram("app.step", &[], Window::all())
        .unwrap();
    assert_eq!(h.count, 2);
    assert!(h.sum >= 0.030, "{}", h.sum);
    assert_eq!(h.bounds, genscope::instruments::DURATION_BUCKETS);
}

#[test]
fn reset_starts_a_new_series_and_delete_stops_reporting() {
    let receiver = Receiver::grpc(Mode::Normal);
    let t = common::builder(receiver.url(), Protocol::Grpc)
        .build()
        .unwrap();
    let m = t.metrics();
    m.increment_counter("app.jobs", 5.0, &[]).unwrap();
    m.set_gauge("app.temp", 40.0, &[]).unwrap();
    t.force_flush().unwrap();
    let first = receiver.latest_metric("app.jobs").unwrap();
    let Some(Data::Sum(s)) = &first.data else {
        panic!()
    };
    let first_start = s.data_points[0].start_time_unix_nano;

    std::thread::sleep(Duration::from_millis(5));
    let fresh = m.reset_metric("app.jobs").unwrap();
    assert_eq!(fresh.generation(), 1);
    m.increment_counter("app.jobs", 2.0, &[]).unwrap();
    t.force_flush().unwrap();

    // At the receiver: the new stream lives in its own generation scope, starts later, holds 2.
    let received = receiver.received_scopes("app.jobs");
    let (_, new_points) = received
        .iter()
        .find(|(generation, _)| *generation == Some(1))
        .expect("a generation-1 scope");
    assert_eq!(new_points.last().unwrap().1, 2.0);
    assert!(
        new_points.last().unwrap().0 > first_start,
        "a reset moves the start time"
    );
    // In genscope's own view: the current value is the new series' 2, and the windowed increase
    // counts both (5 before the reset, 2 after).
    let snap = t.analyzer().snapshot();
    let jobs = snap.iter().find(|m| m.name == "app.jobs").unwrap();
    assert_eq!(jobs.series.len(), 1);
    assert_eq!(
        jobs.series[0].value,
        genscope::analyzer::SeriesValue::Sum(2.0)
    );
    assert_eq!(t.analyzer().sum("app.jobs", &[], Window::all()), Some(7.0));

    // Delete: the name can be defined again with another kind; the old data stops reporting.
    let removed = m.delete_metric("app.temp").unwrap();
    assert_eq!(removed.kind(), InstrumentKind::Gauge);
    assert!(m.get_metric("app.temp").is_none());
    assert!(matches!(
        m.delete_metric("app.temp"),
        Err(RecordError::UnknownMetric { .. })
    ));
    t.force_flush().unwrap();
    assert!(t.analyzer().snapshot().iter().all(|m| m.name != "app.temp"));
    m.create_metric(MetricDefinition::counter("app.temp"))
        .unwrap();
    m.increment_counter("app.temp", 1.0, &[]).unwrap();
    t.force_flush().unwrap();
    let snap = t.analyzer().snapshot();
    let temp = snap.iter().find(|m| m.name == "app.temp").unwrap();
    assert_eq!(temp.kind, genscope::analyzer::MetricKind::Counter);
    assert_eq!(
        temp.series[0].value,
        genscope::analyzer::SeriesValue::Sum(1.0)
    );
    t.shutdown().unwrap();
}

#[test]
fn panicking_collector_is_contained_and_counted() {
    let t = local();
    let m = t.metrics();
    m.add_collector(MetricDefinition::gauge("app.bad"), |_| {
        panic!("collector bug")
    })
    .unwrap();
    m.add_collector(
        MetricDefinition::counter("app.good").with_unit("{item}"),
        |obs| {
            obs.observe(3.0, &[]);
            obs.observe(f64::NAN, &[]); // refused, counted
            obs.observe(-1.0, &[]); // negative counter total: refused
        },
    )
    .unwrap();
    m.increment_counter("app.other", 1.0, &[]).unwrap();
    t.force_flush().unwrap();
    t.force_flush().unwrap();
    assert_eq!(m.collector_panics(), 2, "one panic per collection");
    let w = Window::all();
    assert_eq!(
        t.analyzer().gauge("app.good", &[], w).map(|g| g.last),
        Some(3.0)
    );
    assert_eq!(t.analyzer().sum("app.other", &[], w), Some(1.0));
    assert_eq!(m.rejected(), 4);
    assert!(
        t.analyzer()
            .sum("genscope.metric.collector.panics", &[], w)
            .unwrap()
            >= 1.0
    );
    // An observed metric takes no direct recordings.
    assert!(matches!(
        m.set_gauge("app.bad", 1.0, &[]),
        Err(RecordError::Observed { .. })
    ));
    // Deleting it stops the callback.
    m.delete_metric("app.bad").unwrap();
    t.force_flush().unwrap();
    assert_eq!(m.collector_panics(), 2);
}

#[test]
fn windowed_quantiles_stay_within_the_stated_bound() {
    let t = local();
    let m = t.metrics();
    let buckets = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
    m.create_metric(
        MetricDefinition::histogram("app.latency")
            .with_unit("s")
            .with_buckets(buckets),
    )
    .unwrap();
    // A skewed, deterministic sample: most fast, a long tail.
    let mut values: Vec<f64> = (0..5000u64)
        .map(|i| {
            let u = ((i * 7919) % 5000) as f64 / 5000.0;
            0.005 + 3.0 * u.powi(4)
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        m.record_histogram("app.latency", *v, &[]).unwrap();
        if i == 2500 {
            t.force_flush().unwrap(); // two collections: the window merges them
        }
    }
    t.force_flush().unwrap();
    values.sort_by(f64::total_cmp);
    let store = t.analyzer();
    let w = Window::all();
    for q in [0.5, 0.9, 0.95, 0.99] {
        let exact = values[((q * values.len() as f64).ceil() as usize).max(1) - 1];
        let estimate = store
            .aggregate("app.latency", &[], Aggregation::Quantile(q), w)
            .unwrap();
        // The stated bound: the width of the bucket holding the exact value.
        let i = buckets
            .iter()
            .position(|b| exact <= *b)
            .unwrap_or(buckets.len());
        let lower = if i == 0 { 0.0 } else { buckets[i - 1] };
        let upper = buckets.get(i).copied().unwrap_or(values[values.len() - 1]);
        assert!(
            (estimate - exact).abs() <= upper - lower,
            "p{}: estimate {estimate} exact {exact} bucket ({lower}, {upper}]",
            q * 100.0
        );
    }
    let sum: f64 = values.iter().sum();
    let count = values.len() as f64;
    assert_eq!(
        store.aggregate("app.latency", &[], Aggregation::Count, w),
        Some(count)
    );
    assert!(
        (store
            .aggregate("app.latency", &[], Aggregation::Sum, w)
            .unwrap()
            - sum)
            .abs()
            < 1e-6
    );
    assert!(
        (store
            .aggregate("app.latency", &[], Aggregation::Avg, w)
            .unwrap()
            - sum / count)
            .abs()
            < 1e-9
    );

    // Gauges: exact nearest-rank over the collected samples.
    for v in [5.0, 1.0, 3.0, 2.0, 4.0] {
        m.set_gauge("app.queue", v, &[]).unwrap();
        t.force_flush().unwrap();
    }
    assert_eq!(
        store.aggregate("app.queue", &[], Aggregation::Quantile(0.5), w),
        Some(3.0)
    );
    assert_eq!(
        store.aggregate("app.queue", &[], Aggregation::Max, w),
        Some(5.0)
    );
    assert_eq!(
        store.aggregate("app.queue", &[], Aggregation::Min, w),
        Some(1.0)
    );
    assert_eq!(
        store.aggregate("app.queue", &[], Aggregation::Last, w),
        Some(4.0)
    );
    assert_eq!(
        store.aggregate("app.queue", &[], Aggregation::Rate, w),
        None
    );
    let summary = store.summary(w);
    assert!(
        summary
            .iter()
            .any(|s| s.name == "app.latency" && s.p95.is_some())
    );
    let history = store.history("app.latency", &[], w);
    assert_eq!(
        history
            .iter()
            .map(|p| p.histogram.as_ref().unwrap().count)
            .sum::<u64>(),
        5000
    );
}

#[test]
fn attribute_floods_stay_within_the_series_limit() {
    let receiver = Receiver::http(Mode::Normal);
    let t = common::builder(receiver.url(), Protocol::HttpProtobuf)
        .analyzer_max_series_per_metric(50)
        .build()
        .unwrap();
    let m = t.metrics();
    for i in 0..10_000 {
        m.increment_counter(
            "app.by_user",
            1.0,
            &[KeyValue::new("user.id", i.to_string())],
        )
        .unwrap();
    }
    t.force_flush().unwrap();
    let exported = receiver.latest_metric("app.by_user").unwrap();
    let points = sum_points(&exported);
    assert!(points.len() <= 51, "{} series exported", points.len());
    let total: f64 = points.iter().map(|(_, v)| v).sum();
    assert_eq!(
        total, 10_000.0,
        "nothing is lost: overflow carries the rest"
    );
    assert!(
        points
            .iter()
            .any(|(a, _)| common::attr_str(a, "otel.metric.overflow").is_some())
    );
    assert!(t.analyzer().series("app.by_user").len() <= 51);
    assert_eq!(
        t.analyzer().sum("app.by_user", &[], Window::all()),
        Some(10_000.0)
    );
    t.shutdown().unwrap();
}

/// The value of the receiver's latest `name` point whose attributes are exactly `attrs`.
fn received_sum(receiver: &Receiver, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    let metric = receiver.latest_metric(name)?;
    sum_points(&metric).into_iter().find_map(|(kv, v)| {
        let same = kv.len() == attrs.len()
            && attrs
                .iter()
                .all(|(k, want)| common::attr_str(&kv, k).as_deref() == Some(*want));
        same.then_some(v)
    })
}

#[test]
fn bound_counters_from_many_threads_reach_the_receiver_exactly() {
    let receiver = Receiver::grpc(Mode::Normal);
    let t = common::builder(receiver.url(), Protocol::Grpc)
        .build()
        .unwrap();
    let m = t.metrics();
    let model = [KeyValue::new("model", "sdxl")];
    let tokens = m.bind_counter("app.tokens", &model).unwrap();
    let inflight = m.bind_up_down_counter("app.inflight", &[]).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (tokens, inflight) = (tokens.clone(), inflight.clone());
            s.spawn(move || {
                for i in 0..10_000 {
                    tokens.add(1.0).unwrap();
                    if i % 10 == 0 {
                        tokens.add(0.5).unwrap();
                    }
                }
                for _ in 0..5 {
                    inflight.add(1.0).unwrap();
                }
                inflight.add(-2.0).unwrap();
            });
        }
    });
    // Every thread has exited: their per-thread sums are folded in at this collection.
    t.force_flush().unwrap();
    let expected = 8.0 * (10_000.0 + 1_000.0 * 0.5);
    assert_eq!(
        received_sum(&receiver, "app.tokens", &[("model", "sdxl")]),
        Some(expected)
    );
    assert_eq!(received_sum(&receiver, "app.inflight", &[]), Some(24.0));

    // Bad values are refused without touching the sum; by name lands in the same series.
    assert!(matches!(
        tokens.add(-1.0),
        Err(RecordError::InvalidValue { .. })
    ));
    assert!(tokens.add(f64::NAN).is_err());
    assert!(inflight.add(f64::INFINITY).is_err());
    m.increment_counter("app.tokens", 1.0, &model).unwrap();
    // Recorded on a thread that ends and through a handle dropped before the collection.
    let late = tokens.clone();
    std::thread::spawn(move || late.add(2.0).unwrap())
        .join()
        .unwrap();
    tokens.add(3.0).unwrap();
    drop(tokens);
    t.force_flush().unwrap();
    assert_eq!(
        received_sum(&receiver, "app.tokens", &[("model", "sdxl")]),
        Some(expected + 6.0)
    );
    assert_eq!(
        t.analyzer()
            .sum("app.tokens", &[("model", "sdxl")], Window::all()),
        Some(expected + 6.0)
    );
    assert_eq!(m.rejected(), 3);
    t.shutdown().unwrap();
}

/// The latest histogram point of `name` at the receiver: (bucket counts, count, sum, min, max).
fn received_histogram(receiver: &Receiver, name: &str) -> (Vec<u64>, u64, f64, f64, f64) {
    let metric = receiver.latest_metric(name).expect("histogram exported");
    let Some(Data::Histogram(h)) = metric.data else {
        panic!("{name} is not a histogram")
    };
    let p = &h.data_points[0];
    (
        p.bucket_counts.clone(),
        p.count,
        p.sum.unwrap(),
        p.min.unwrap(),
        p.max.unwrap(),
    )
}

/// Bound histograms record into per-thread cells replayed into the SDK at each collection: the
/// receiver must see exactly the buckets, count, min and max of what was recorded (and the sum
/// up to rounding), per collection under delta temporality and in total under cumulative.
#[test]
fn bound_histograms_from_many_threads_reach_the_receiver_exactly() {
    use genscope::config::TemporalityPreference;
    for temporality in [
        TemporalityPreference::Cumulative,
        TemporalityPreference::Delta,
    ] {
        let receiver = Receiver::grpc(Mode::Normal);
        let t = common::builder(receiver.url(), Protocol::Grpc)
            .temporality(temporality)
            .build()
            .unwrap();
        let m = t.metrics();
        let bounds = [0.01, 0.1, 1.0, 10.0];
        m.create_metric(MetricDefinition::timer("app.step.duration").with_buckets(bounds))
            .unwrap();
        let steps = m.bind_histogram("app.step.duration", &[]).unwrap();
        let value = |thread: u64, i: u64| -> f64 {
            match (thread + i) % 6 {
                0 => 0.1,                            // on a boundary: its bucket is (0.01, 0.1]
                1 => 0.003 * ((i % 3) + 1) as f64,   // first bucket
                2 => 0.25 + (i % 50) as f64 / 100.0, // (0.1, 1]
                3 => 2.0 + thread as f64,            // (1, 10]
                4 => 12.5 + (i % 7) as f64,          // above the last bound
                _ => 0.0,                            // zero, the smallest
            }
        };
        let mut windows: Vec<Vec<f64>> = Vec::new();
        for round in 0..2u64 {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..6u64)
                    .map(|th| {
                        let steps = steps.clone();
                        s.spawn(move || {
                            (0..4_000u64)
                                .map(|i| {
                                    let v = value(th + round, i);
                                    steps.record(v).unwrap();
                                    v
                                })
                                .collect::<Vec<f64>>()
                        })
                    })
                    .collect();
                windows.push(
                    handles
                        .into_iter()
                        .flat_map(|h| h.join().unwrap())
                        .collect(),
                );
            });
            if round == 1 {
                // The second window also brings a value through a handle dropped before the
                // collection, from a thread that ended.
                let late = steps.clone();
                std::thread::spawn(move || late.record(99.0).unwrap())
                    .join()
                    .unwrap();
                windows[1].push(99.0);
            }
            t.force_flush().unwrap();
            let expected: Vec<f64> = match temporality {
                TemporalityPreference::Delta => windows[round as usize].clone(),
                _ => windows.concat(),
            };
            let mut counts = vec![0u64; bounds.len() + 1];
            for v in &expected {
                counts[bounds.partition_point(|b| b < v)] += 1;
            }
            let sum: f64 = expected.iter().sum();
            let min = expected.iter().copied().fold(f64::INFINITY, f64::min);
            let max = expected.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (got_counts, got_count, got_sum, got_min, got_max) =
                received_histogram(&receiver, "app.step.duration");
            let what = format!("{temporality:?} collection {round}");
            assert_eq!(got_counts, counts, "{what}: bucket counts");
            assert_eq!(got_count, expected.len() as u64, "{what}: count");
            assert!(
                (got_sum - sum).abs() <= sum * 1e-12,
                "{what}: sum {got_sum} vs {sum}"
            );
            assert_eq!((got_min, got_max), (min, max), "{what}: min and max");
        }
        // A histogram defined without buckets: the cells must use the SDK's default boundaries
        // (a copy in genscope), or the replayed values would land in other buckets.
        m.create_metric(MetricDefinition::histogram("app.batch.items"))
            .unwrap();
        let items = m.bind_histogram("app.batch.items", &[]).unwrap();
        // Dense below 100 (a quarter apart), then spread past the last default bound.
        let recorded: Vec<f64> = (0..2_000)
            .map(|i| {
                if i < 400 {
                    i as f64 * 0.25
                } else {
                    (i * 7 % 12_000) as f64
                }
            })
            .collect();
        for v in &recorded {
            items.record(*v).unwrap();
        }
        t.force_flush().unwrap();
        let metric = receiver.latest_metric("app.batch.items").expect("exported");
        let Some(Data::Histogram(h)) = metric.data else {
            panic!("app.batch.items is not a histogram")
        };
        let p = &h.data_points[0];
        assert!(!p.explicit_bounds.is_empty(), "the SDK's default buckets");
        let mut counts = vec![0u64; p.explicit_bounds.len() + 1];
        for v in &recorded {
            counts[p.explicit_bounds.partition_point(|b| b < v)] += 1;
        }
        assert_eq!(
            p.bucket_counts, counts,
            "{temporality:?}: default-bucket counts"
        );

        // Refused values never reach the cells.
        assert!(steps.record(-1.0).is_err());
        assert!(steps.record(f64::NAN).is_err());
        drop(steps);
        assert_eq!(m.rejected(), 2);
        t.shutdown().unwrap();
    }
}

#[test]
fn by_name_recording_through_cached_handles_keeps_every_value_and_every_rule() {
    let receiver = Receiver::grpc(Mode::Normal);
    let t = common::builder(receiver.url(), Protocol::Grpc)
        .build()
        .unwrap();
    let m = t.metrics();
    let sets: Vec<[KeyValue; 2]> = (0..3)
        .map(|i| {
            [
                KeyValue::new("model", format!("m{i}")),
                KeyValue::new("route", "/v1/images"),
            ]
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (m, sets) = (&m, &sets);
            s.spawn(move || {
                // Repeated sets (cached after their second call), the same set in another
                // order, and 500 one-off sets (the cache steps aside).
                for i in 0..3_000 {
                    m.increment_counter("app.requests", 1.0, &sets[i % 3])
                        .unwrap();
                }
                let reversed = [sets[0][1].clone(), sets[0][0].clone()];
                for _ in 0..100 {
                    m.increment_counter("app.requests", 1.0, &reversed).unwrap();
                }
                for i in 0..500 {
                    let one_off = [
                        KeyValue::new("model", format!("once-{i}")),
                        KeyValue::new("route", "/v1/images"),
                    ];
                    m.increment_counter("app.requests", 1.0, &one_off).unwrap();
                }
                for i in 0..3_000 {
                    m.record_histogram("app.latency", 0.25, &sets[i % 3])
                        .unwrap();
                }
            });
        }
    });
    t.force_flush().unwrap();
    assert_eq!(
        received_sum(
            &receiver,
            "app.requests",
            &[("model", "m0"), ("route", "/v1/images")]
        ),
        Some(4.0 * 1_000.0 + 4.0 * 100.0)
    );
    assert_eq!(
        received_sum(
            &receiver,
            "app.requests",
            &[("model", "m2"), ("route", "/v1/images")]
        ),
        Some(4_000.0)
    );
    assert_eq!(
        received_sum(
            &receiver,
            "app.requests",
            &[("model", "once-499"), ("route", "/v1/images")]
        ),
        Some(4.0)
    );
    let total: f64 = sum_points(&receiver.latest_metric("app.requests").unwrap())
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 4.0 * (3_000.0 + 100.0 + 500.0));
    let latency = t
        .analyzer()
        .histogram("app.latency", &[("model", "m1")], Window::all())
        .unwrap();
    assert_eq!(latency.count, 4_000);

    // A cached series still refuses what the rules refuse, and counts it.
    let a = &sets[0];
    let before = m.rejected();
    assert!(matches!(
        m.increment_counter("app.requests", -1.0, a),
        Err(RecordError::InvalidValue { .. })
    ));
    assert!(matches!(
        m.set_gauge("app.requests", 1.0, a),
        Err(RecordError::KindMismatch { .. })
    ));
    assert_eq!(m.rejected(), before + 2);

    // A reset while this thread holds cached handles: the new stream gets only what follows.
    for _ in 0..3 {
        m.increment_counter("app.jobs", 1.0, a).unwrap();
    }
    m.reset_metric("app.jobs").unwrap();
    for _ in 0..5 {
        m.increment_counter("app.jobs", 1.0, a).unwrap();
    }
    t.force_flush().unwrap();
    let received = receiver.received_scopes("app.jobs");
    let last_of = |generation: Option<u64>| {
        received
            .iter()
            .filter(|(g, _)| *g == generation)
            .filter_map(|(_, points)| points.last().map(|p| p.1))
            .next_back()
    };
    assert_eq!(last_of(None), Some(3.0));
    assert_eq!(last_of(Some(1)), Some(5.0));

    // Deleted and defined again with another kind: the cached counter handle is not used.
    m.delete_metric("app.jobs").unwrap();
    m.set_gauge("app.jobs", 7.0, a).unwrap();
    m.set_gauge("app.jobs", 8.0, a).unwrap();
    m.set_gauge("app.jobs", 9.0, a).unwrap();
    t.force_flush().unwrap();
    let g = t
        .analyzer()
        .gauge(
            "app.jobs",
            &[("model", "m0"), ("route", "/v1/images")],
            Window::all(),
        )
        .unwrap();
    assert_eq!(g.last, 9.0);
    t.shutdown().unwrap();
}
