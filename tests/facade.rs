//! The `metrics` facade drop-in: a program that records only through `metrics::*!` macros
//! (TGI's metric set, with TGI's bucket rule `Matcher::Suffix("duration")`) gets exact totals,
//! gauge values and bucket counts at a real OTLP receiver (official protobufs) and on `/metrics`
//! (parsed by `prometheus-parse`).

#![cfg(feature = "metrics-facade")]

mod common;

use std::time::Duration;

use common::{Mode, Receiver, attr_str, http_get, sum_points};
use genscope::config::{ExporterKind, Protocol, Sampling};
use genscope::facade::{Matcher, MetricsRecorder};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

/// TGI's duration buckets: 35 boundaries from 0.00015 s, each 1.5 times the last.
fn tgi_duration_buckets() -> Vec<f64> {
    let mut v = 0.0001;
    (0..35)
        .map(|_| {
            v *= 1.5;
            v
        })
        .collect()
}

/// What a TGI router records for `n` requests, `failed` of them failing with `validation`.
fn tgi_traffic(n: u64, failed: u64) {
    metrics::describe_counter!("tgi_request_count", "Total requests");
    metrics::describe_histogram!(
        "tgi_request_duration",
        metrics::Unit::Seconds,
        "Request duration"
    );
    metrics::describe_gauge!("tgi_queue_size", metrics::Unit::Count, "Requests waiting");
    for i in 0..n {
        metrics::counter!("tgi_request_count", "method" => "POST").increment(1);
        metrics::gauge!("tgi_queue_size").increment(1.0);
        metrics::gauge!("tgi_batch_current_size").set((i % 4) as f64);
        // 0.01 s, 0.2 s, 3 s in turn.
        let d = [0.01, 0.2, 3.0][(i % 3) as usize];
        metrics::histogram!("tgi_request_duration").record(d);
        metrics::histogram!("tgi_request_queue_duration").record(d / 10.0);
        metrics::histogram!("tgi_request_generated_tokens").record(20.0);
        if i < failed {
            metrics::counter!("tgi_request_failure", "err" => "validation").increment(1);
        } else {
            metrics::counter!("tgi_request_success").increment(1);
        }
    }
    // Four requests still wait; the rest left the queue.
    metrics::gauge!("tgi_queue_size").decrement((n - 4) as f64);
    metrics::counter!("tgi_batch_inference_count").absolute(7);
    metrics::counter!("tgi_batch_inference_count").absolute(5); // never goes back
    metrics::counter!("tgi_batch_inference_count").absolute(9);
}

fn expected_bucket_counts(bounds: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; bounds.len() + 1];
    for v in values {
        let i = bounds.iter().position(|b| v <= b).unwrap_or(bounds.len());
        counts[i] += 1;
    }
    counts
}

#[test]
fn tgi_metrics_through_the_facade_arrive_exactly_over_otlp_and_on_metrics() {
    let rx = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(rx.url(), Protocol::Grpc)
        .traces_exporters([] as [ExporterKind; 0])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .prometheus_addr("127.0.0.1:0".parse().unwrap())
        .build()
        .expect("genscope");
    let buckets = tgi_duration_buckets();
    let recorder = MetricsRecorder::builder(telemetry.metrics())
        .buckets(Matcher::Suffix("duration".into()), &buckets)
        .expect("rule")
        .build();
    metrics::with_local_recorder(&recorder, || tgi_traffic(30, 6));
    telemetry.force_flush().expect("flush");

    // OTLP.
    assert!(rx.wait_for(Duration::from_secs(10), |r| {
        r.latest_metric("tgi_request_duration").is_some()
    }));
    let count = rx.latest_metric("tgi_request_count").expect("count");
    assert_eq!(count.description, "Total requests");
    let points = sum_points(&count);
    assert_eq!(points.len(), 1);
    assert_eq!(attr_str(&points[0].0, "method").as_deref(), Some("POST"));
    assert_eq!(points[0].1, 30.0);
    let failures = sum_points(&rx.latest_metric("tgi_request_failure").expect("failure"));
    assert_eq!(failures.len(), 1);
    assert_eq!(
        attr_str(&failures[0].0, "err").as_deref(),
        Some("validation")
    );
    assert_eq!(failures[0].1, 6.0);
    assert_eq!(
        sum_points(&rx.latest_metric("tgi_request_success").expect("success"))[0].1,
        24.0
    );
    assert_eq!(
        sum_points(
            &rx.latest_metric("tgi_batch_inference_count")
                .expect("absolute")
        )[0]
        .1,
        9.0
    );
    let gauge = |name: &str| match rx.latest_metric(name).and_then(|m| m.data) {
        Some(Data::Gauge(g)) => match g.data_points[0].value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                d,
            )) => d,
            other => panic!("{name}: {other:?}"),
        },
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(gauge("tgi_queue_size"), 4.0);
    assert_eq!(gauge("tgi_batch_current_size"), (29 % 4) as f64);
    let duration = rx.latest_metric("tgi_request_duration").expect("duration");
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(h)) = &duration.data else {
        panic!("not a histogram: {duration:?}")
    };
    let p = &h.data_points[0];
    assert_eq!(p.explicit_bounds, buckets, "TGI's suffix rule");
    let values: Vec<f64> = (0..30).map(|i| [0.01, 0.2, 3.0][i % 3]).collect();
    assert_eq!(p.bucket_counts, expected_bucket_counts(&buckets, &values));
    assert_eq!(p.count, 30);
    assert!((p.sum.unwrap() - values.iter().sum::<f64>()).abs() < 1e-9);
    // A histogram no rule matches gets the seconds-scale default, not the SDK's 0..10000.
    let Some(Data::Histogram(tokens)) = rx
        .latest_metric("tgi_request_generated_tokens")
        .and_then(|m| m.data)
    else {
        panic!("tokens")
    };
    assert_eq!(
        tokens.data_points[0].explicit_bounds,
        genscope::facade::DEFAULT_BUCKETS
    );

    // /metrics.
    let addr = telemetry.prometheus_addr().expect("/metrics");
    let (status, _, body) = http_get(addr, "/metrics", None);
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("prometheus-parse");
    let sample = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} not on /metrics:\n{body}"))
            .value
            .clone()
    };
    assert!(matches!(
        sample("tgi_request_count_total", Some(("method", "POST"))),
        prometheus_parse::Value::Counter(v) if v == 30.0
    ));
    assert!(matches!(
        sample("tgi_request_failure_total", Some(("err", "validation"))),
        prometheus_parse::Value::Counter(v) if v == 6.0
    ));
    assert!(matches!(
        sample("tgi_queue_size", None),
        prometheus_parse::Value::Gauge(v) if v == 4.0
    ));
    match sample("tgi_request_duration_seconds", None) {
        prometheus_parse::Value::Histogram(hist) => {
            let want = expected_bucket_counts(&buckets, &values);
            let mut cumulative = 0;
            for (bound, n) in buckets.iter().zip(&want) {
                cumulative += n;
                let got = hist
                    .iter()
                    .find(|c| (c.less_than - bound).abs() < 1e-12)
                    .unwrap_or_else(|| panic!("bucket le={bound} missing"));
                assert_eq!(got.count, cumulative as f64, "le={bound}");
            }
        }
        other => panic!("tgi_request_duration_seconds: {other:?}"),
    }
    telemetry.shutdown().expect("shutdown");
}

/// Bad names, bad labels and kind clashes inside facade calls reach the caller as nothing:
/// counted refusals; the good calls around them are recorded.
#[test]
fn refused_facade_calls_never_reach_the_caller_and_are_counted() {
    let telemetry = common::offline_builder().build().expect("genscope");
    let recorder = MetricsRecorder::builder(telemetry.metrics()).build();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("vllm:num_preemptions").increment(1); // ':' is no instrument name
        metrics::counter!("bad name").increment(1);
        metrics::counter!("gen_ai.client.token.usage").increment(1); // reserved, another kind
        metrics::counter!("app_requests", "" => "empty key").increment(1);
        metrics::gauge!("app_requests").set(1.0); // a counter already
        metrics::histogram!("app_latency").record(f64::NAN);
        metrics::counter!("app_requests").increment(2);
        metrics::histogram!("app_latency").record(0.5);
    });
    telemetry.force_flush().expect("flush");
    let w = genscope::analyzer::Window::all();
    let a = telemetry.analyzer();
    assert_eq!(a.sum("app_requests", &[], w), Some(2.0));
    assert_eq!(a.histogram("app_latency", &[], w).map(|h| h.count), Some(1));
    let rejected = a.sum("genscope.metric.rejected", &[], w).unwrap_or(0.0);
    assert!(rejected >= 5.0, "refusals counted: {rejected}");
    assert!(a.histogram("vllm:num_preemptions", &[], w).is_none());
    assert!(
        buckets_refused(),
        "bucket boundaries that are not increasing are refused"
    );
}

fn buckets_refused() -> bool {
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .build()
        .expect("genscope");
    MetricsRecorder::builder(telemetry.metrics())
        .buckets(Matcher::Full("x".into()), &[1.0, 0.5])
        .is_err()
}

/// With nothing but TGI's and mistral.rs's names in the store, the analyzer's generation section
/// and findings fill from the alias table; with `Aliases::none` they stay empty.
#[test]
fn the_alias_table_fills_the_report_from_vendor_names_alone() {
    use genscope::analyzer::Aliases;
    for aliases in [Aliases::vendors(), Aliases::none()] {
        let telemetry = common::offline_builder()
            .analyzer_aliases(aliases.clone())
            .build()
            .expect("genscope");
        let recorder = MetricsRecorder::builder(telemetry.metrics())
            .buckets(Matcher::Suffix("duration".into()), &tgi_duration_buckets())
            .expect("rule")
            .build();
        metrics::with_local_recorder(&recorder, || {
            for i in 0..40u64 {
                // Requests wait 0.7 s in queue for 1 s in all: queue-dominated latency.
                metrics::histogram!("tgi_request_duration").record(1.0);
                metrics::histogram!("tgi_request_queue_duration").record(0.7);
                metrics::histogram!("tgi_request_mean_time_per_token_duration").record(0.02);
                metrics::gauge!("tgi_queue_size").set(3.0);
                if i % 5 == 0 {
                    metrics::counter!("tgi_request_failure", "err" => "overloaded").increment(1);
                } else {
                    metrics::counter!("tgi_request_success").increment(1);
                }
            }
            metrics::gauge!("mistralrs_kv_cache_blocks_used").set(980.0);
            metrics::gauge!("mistralrs_kv_cache_blocks_total").set(1000.0);
            metrics::counter!("mistralrs_paged_preemptions_total").increment(7);
        });
        telemetry.force_flush().expect("flush");
        let report = telemetry.analyzer().report(Duration::from_secs(900));
        let ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
        if aliases == Aliases::vendors() {
            let g = &report.generation;
            assert_eq!(g.requests, Some(40.0), "{g:?}");
            assert_eq!(g.failed, Some(8.0), "{g:?}");
            assert!(g.queue_wait_s.is_some() && g.tpot_s.is_some(), "{g:?}");
            assert_eq!(g.queue_size.as_ref().map(|q| q.avg), Some(3.0), "{g:?}");
            for id in [
                "high-error-rate",
                "queue-dominated-latency",
                "kv-cache-pressure",
            ] {
                assert!(ids.contains(&id), "{id} not among {ids:?}");
            }
            let errors = report
                .findings
                .iter()
                .find(|f| f.id == "high-error-rate")
                .unwrap();
            assert!((errors.evidence.observed - 0.2).abs() < 1e-9, "{errors:?}");
        } else {
            assert_eq!(report.generation.requests, None);
            assert!(ids.is_empty(), "{ids:?}");
        }
        telemetry.shutdown().expect("shutdown");
    }
}

/// A label flood through the facade stays within the series limit and loses nothing: the
/// overflow series (`otel.metric.overflow=true`) carries the rest, at the receiver and in the
/// analyzer.
#[test]
fn a_label_flood_through_the_facade_stays_within_the_series_limit() {
    let rx = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(rx.url(), Protocol::Grpc)
        .traces_exporters([] as [ExporterKind; 0])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .analyzer_max_series_per_metric(20)
        .build()
        .expect("genscope");
    let recorder = MetricsRecorder::builder(telemetry.metrics()).build();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..500 {
            metrics::counter!("app_requests_by_user", "user" => i.to_string()).increment(2);
        }
    });
    telemetry.force_flush().expect("flush");
    assert!(rx.wait_for(Duration::from_secs(10), |r| {
        r.latest_metric("app_requests_by_user").is_some()
    }));
    let points = sum_points(&rx.latest_metric("app_requests_by_user").unwrap());
    assert!(points.len() <= 21, "{} series exported", points.len());
    let total: f64 = points.iter().map(|(_, v)| v).sum();
    assert_eq!(total, 1000.0, "nothing is lost");
    assert!(
        points
            .iter()
            .any(|(a, _)| attr_str(a, "otel.metric.overflow").is_some())
    );
    let w = genscope::analyzer::Window::all();
    assert_eq!(
        telemetry.analyzer().sum("app_requests_by_user", &[], w),
        Some(1000.0)
    );
    telemetry.shutdown().expect("shutdown");
}

/// `describe_*!` after first use: the metric is redefined with the unit and description, every
/// existing handle records into it, a gauge keeps its level, and what was collected before stays
/// in the analyzer's history.
#[test]
fn a_describe_after_first_use_redefines_the_metric_and_moves_its_handles() {
    let rx = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(rx.url(), Protocol::Grpc)
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metric_export_interval(Duration::from_secs(60))
        .build()
        .expect("genscope");
    let recorder = MetricsRecorder::builder(telemetry.metrics()).build();
    metrics::with_local_recorder(&recorder, || {
        let requests = metrics::counter!("late_requests", "route" => "/v1/chat");
        let queue = metrics::gauge!("late_queue_size");
        let latency = metrics::histogram!("late_latency");
        requests.increment(2);
        queue.set(5.0);
        latency.record(0.4);
        telemetry.force_flush().expect("flush");
        metrics::describe_counter!("late_requests", metrics::Unit::Count, "Requests served");
        metrics::describe_gauge!("late_queue_size", "Requests waiting");
        metrics::describe_histogram!("late_latency", metrics::Unit::Seconds, "Request latency");
        requests.increment(3);
        queue.increment(1.0);
        latency.record(0.6);
        // A handle registered after the describe lands in the same redefined stream.
        metrics::counter!("late_requests", "route" => "/v1/chat").increment(1);
    });
    telemetry.force_flush().expect("flush");
    // The redefined stream: its scope carries the new generation (the first stream is still
    // exported, unchanged, under the scope without one).
    let redefined = |name: &str| {
        let r = rx.received.lock().unwrap();
        r.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .filter(|sm| {
                sm.scope.as_ref().is_some_and(|s| {
                    s.attributes
                        .iter()
                        .any(|kv| kv.key == "genscope.metric.generation")
                })
            })
            .flat_map(|sm| &sm.metrics)
            .rfind(|m| m.name == name)
            .cloned()
    };
    let counter = redefined("late_requests").expect("redefined counter");
    assert_eq!(counter.description, "Requests served");
    assert_eq!(counter.unit, "{count}");
    assert_eq!(sum_points(&counter)[0].1, 4.0, "3 + 1 after the describe");
    let gauge = redefined("late_queue_size").expect("gauge");
    assert_eq!(gauge.description, "Requests waiting");
    match gauge.data {
        Some(Data::Gauge(g)) => assert_eq!(
            g.data_points[0].value,
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(6.0))
        ),
        other => panic!("{other:?}"),
    }
    let hist = redefined("late_latency").expect("histogram");
    assert_eq!(hist.unit, "s");
    match hist.data {
        Some(Data::Histogram(h)) => assert_eq!(h.data_points[0].count, 1),
        other => panic!("{other:?}"),
    }
    // genscope's own views: the history before the describe is kept.
    let w = genscope::analyzer::Window::all();
    assert_eq!(
        telemetry
            .analyzer()
            .sum("late_requests", &[("route", "/v1/chat")], w),
        Some(6.0)
    );
    assert_eq!(
        telemetry
            .analyzer()
            .histogram("late_latency", &[], w)
            .map(|h| h.count),
        Some(2)
    );
    let text = telemetry.metrics_exposition(genscope::export::ExpositionFormat::Text);
    assert!(
        text.contains("# HELP late_latency_seconds Request latency"),
        "{text}"
    );
}
