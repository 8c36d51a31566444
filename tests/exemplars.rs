//! Exemplars: a histogram measurement taken inside a sampled span keeps that span's trace and
//! span id, the latest one per bucket, shown on OpenMetrics `_bucket` lines and read back by a
//! real OpenMetrics parser; by name, through bound handles and through the `metrics` facade.

mod common;

use std::collections::HashMap;

use genscope::Genscope;
use genscope::config::ExemplarFilter;
use genscope::export::ExpositionFormat;
use genscope::instruments::MetricDefinition;
use openmetrics_parser::OpenMetricsValue;
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;

const METRIC: &str = "app.step.duration";
const FAMILY: &str = "app_step_duration_seconds";

fn genscope(filter: ExemplarFilter) -> Genscope {
    let telemetry = common::offline_builder()
        .exemplar_filter(filter)
        .build()
        .expect("genscope");
    telemetry
        .metrics()
        .create_metric(MetricDefinition::timer(METRIC).with_buckets(vec![0.1, 0.5, 1.0]))
        .expect("define");
    telemetry
}

/// Runs `f` inside a new sampled span; returns its (trace id, span id) in hex.
fn in_span(name: &'static str, f: impl FnOnce()) -> (String, String) {
    let span = tracing::info_span!("step", otel.name = name);
    let _entered = span.enter();
    f();
    let sc = span.context().span().span_context().clone();
    (sc.trace_id().to_string(), sc.span_id().to_string())
}

/// The exposition's `FAMILY` buckets: upper bound -> (trace_id, span_id, value) of the exemplar.
fn exemplars(om: &str) -> HashMap<String, (String, String, f64)> {
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(om)
        .unwrap_or_else(|e| panic!("openmetrics-parser: {e:?}\n{om}"));
    let family = &parsed.families[FAMILY];
    let mut out = HashMap::new();
    for sample in family.iter_samples() {
        let OpenMetricsValue::Histogram(h) = &sample.value else {
            panic!("{FAMILY} is not a histogram");
        };
        for b in &h.buckets {
            if let Some(e) = &b.exemplar {
                let label = |k: &str| e.labels.get(k).cloned().unwrap_or_default();
                out.insert(
                    b.upper_bound.to_string(),
                    (label("trace_id"), label("span_id"), e.id),
                );
            }
        }
    }
    out
}

#[test]
fn measurements_in_sampled_spans_become_the_latest_exemplar_of_their_bucket() {
    let telemetry = genscope(ExemplarFilter::TraceBased);
    let m = telemetry.metrics();
    let bound = m.bind_histogram(METRIC, &[]).expect("bind");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let (first, second, third) = tracing::subscriber::with_default(subscriber, || {
        // By name, bucket (0.1, 0.5]: the second one replaces the first.
        let first = in_span("a", || m.record_histogram(METRIC, 0.2, &[]).unwrap());
        let second = in_span("b", || m.record_histogram(METRIC, 0.3, &[]).unwrap());
        // A bound handle, bucket (1, +Inf].
        let third = in_span("c", || bound.record(2.5).unwrap());
        // Outside any span: counted, no exemplar (bucket (0, 0.1]).
        m.record_histogram(METRIC, 0.05, &[]).unwrap();
        (first, second, third)
    });
    telemetry.force_flush().expect("flush");
    let om = telemetry.metrics_exposition(ExpositionFormat::OpenMetrics);
    let kept = exemplars(&om);
    assert_eq!(kept.len(), 2, "{om}");
    assert_eq!(
        kept["0.5"],
        (second.0.clone(), second.1.clone(), 0.3),
        "{om}"
    );
    assert_ne!(second, first);
    assert_eq!(kept["inf"], (third.0.clone(), third.1.clone(), 2.5), "{om}");
    assert!(!kept.contains_key("0.1"), "no span, no exemplar: {om}");
    // The trace ids are the exported spans'.
    let spans = telemetry.analyzer().recent_spans(100);
    let b = spans.iter().find(|s| s.name == "b").expect("span b");
    assert_eq!((&b.trace_id, &b.span_id), (&second.0, &second.1));
    // The exact line: OTel's Prometheus-compatibility label names, value, timestamp.
    let line = om
        .lines()
        .find(|l| l.starts_with(&format!("{FAMILY}_bucket{{le=\"0.5\"}}")))
        .unwrap();
    let want = format!(
        "{FAMILY}_bucket{{le=\"0.5\"}} 3 # {{trace_id=\"{}\",span_id=\"{}\"}} 0.3 ",
        second.0, second.1
    );
    assert!(line.starts_with(&want), "{line}\nwant {want}");
    // The text format carries none.
    let text = telemetry.metrics_exposition(ExpositionFormat::Text);
    assert!(!text.contains("trace_id"), "{text}");
    // Nor do counters and gauges in OpenMetrics.
    assert_eq!(om.matches("trace_id").count(), 2, "{om}");
}

#[test]
fn the_filter_decides_which_measurements_are_kept() {
    let telemetry = genscope(ExemplarFilter::AlwaysOff);
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        in_span("a", || {
            telemetry
                .metrics()
                .record_histogram(METRIC, 0.2, &[])
                .unwrap()
        });
    });
    telemetry.force_flush().expect("flush");
    let om = telemetry.metrics_exposition(ExpositionFormat::OpenMetrics);
    assert!(exemplars(&om).is_empty(), "{om}");

    let telemetry = genscope(ExemplarFilter::AlwaysOn);
    telemetry
        .metrics()
        .record_histogram(METRIC, 0.7, &[])
        .unwrap();
    telemetry.force_flush().expect("flush");
    let om = telemetry.metrics_exposition(ExpositionFormat::OpenMetrics);
    let kept = exemplars(&om);
    assert_eq!(kept["1"], (String::new(), String::new(), 0.7), "{om}");
    assert!(
        om.contains("# {} 0.7 "),
        "an exemplar without a trace: {om}"
    );

    let err = genscope::config::from_lookup(|k| {
        (k == "OTEL_METRICS_EXEMPLAR_FILTER").then(|| "sometimes".to_string())
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("OTEL_METRICS_EXEMPLAR_FILTER"), "{err}");
}

#[test]
fn each_series_keeps_its_own_exemplars() {
    let telemetry = genscope(ExemplarFilter::TraceBased);
    let m = telemetry.metrics();
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let (a, b) = tracing::subscriber::with_default(subscriber, || {
        let a = in_span("a", || {
            m.record_histogram(METRIC, 0.2, &[opentelemetry::KeyValue::new("model", "a")])
                .unwrap()
        });
        let b = in_span("b", || {
            m.record_histogram(METRIC, 0.2, &[opentelemetry::KeyValue::new("model", "b")])
                .unwrap()
        });
        (a, b)
    });
    telemetry.force_flush().expect("flush");
    let om = telemetry.metrics_exposition(ExpositionFormat::OpenMetrics);
    for (model, (trace, span)) in [("a", &a), ("b", &b)] {
        let line = om
            .lines()
            .find(|l| l.starts_with(&format!("{FAMILY}_bucket{{model=\"{model}\",le=\"0.5\"}}")))
            .unwrap_or_else(|| panic!("{om}"));
        assert!(
            line.contains(&format!("trace_id=\"{trace}\",span_id=\"{span}\"")),
            "{line}"
        );
    }
    let kept = telemetry
        .exemplars()
        .series(METRIC, &[("model".into(), "a".into())]);
    assert_eq!(kept.iter().flatten().count(), 1);
}

#[cfg(feature = "metrics-facade")]
#[test]
fn facade_histograms_keep_exemplars() {
    let telemetry = common::offline_builder().build().expect("genscope");
    let recorder = genscope::facade::MetricsRecorder::builder(telemetry.metrics()).build();
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    let (trace, span) = tracing::subscriber::with_default(subscriber, || {
        metrics::with_local_recorder(&recorder, || {
            in_span("request", || {
                metrics::histogram!("tgi_request_duration").record(0.42);
            })
        })
    });
    telemetry.force_flush().expect("flush");
    let om = telemetry.metrics_exposition(ExpositionFormat::OpenMetrics);
    let line = om
        .lines()
        .find(|l| l.starts_with("tgi_request_duration_bucket") && l.contains("trace_id"))
        .unwrap_or_else(|| panic!("{om}"));
    assert!(
        line.contains(&format!("trace_id=\"{trace}\",span_id=\"{span}\"}} 0.42 ")),
        "{line}"
    );
}
