//! The serving-state catalog and the model-server protocol opt-in: with
//! `GENSCOPE_MODEL_SERVER_METRICS=vllm`, `/metrics` carries `vllm:num_requests_waiting`,
//! `vllm:num_requests_running` and `vllm:kv_cache_usage_perc` (0..1) labelled `model_name`, with
//! the engine's values; without it, none of them.

mod common;

use common::http_get;
use genscope::config::ModelServerMetrics;
use genscope::instruments::catalog::serving::{EngineState, RequestPhases};
use std::time::Duration;

fn served(which: ModelServerMetrics) -> (genscope::Genscope, String) {
    let telemetry = common::offline_builder()
        .prometheus_addr("127.0.0.1:0".parse().unwrap())
        .model_server_metrics(which)
        .build()
        .expect("genscope");
    let serving = telemetry
        .metrics()
        .serving("genscope-sim")
        .expect("serving");
    serving.record_state(EngineState {
        kv_blocks_used: 300,
        kv_blocks_total: 1200,
        running: 3,
        waiting: 5,
    });
    serving.record_phases(RequestPhases {
        queue: Duration::from_millis(20),
        prefill: Duration::from_millis(80),
        decode: Duration::from_millis(400),
    });
    telemetry.force_flush().expect("flush");
    let (status, _, body) = http_get(telemetry.prometheus_addr().unwrap(), "/metrics", None);
    assert_eq!(status, 200);
    (telemetry, body)
}

#[test]
fn the_vllm_opt_in_exposes_the_gateway_protocol_series_with_the_engine_values() {
    let (telemetry, body) = served(ModelServerMetrics::Vllm);
    // openmetrics-parser reads the text format with ':' in names (prometheus-parse does not).
    let exposition =
        openmetrics_parser::prometheus::parse_prometheus(&body).expect("openmetrics-parser");
    for (name, want) in [
        ("vllm:num_requests_waiting", 5.0),
        ("vllm:num_requests_running", 3.0),
        ("vllm:kv_cache_usage_perc", 0.25),
    ] {
        let family = exposition
            .families
            .get(name)
            .unwrap_or_else(|| panic!("{name} not on /metrics:\n{body}"));
        assert_eq!(family.get_label_names(), ["model_name"], "{name}");
        let sample = family
            .get_sample_by_label_values(&["genscope-sim".to_string()])
            .unwrap_or_else(|| panic!("{name}: no model_name=genscope-sim sample"));
        match &sample.value {
            openmetrics_parser::PrometheusValue::Gauge(v) => assert_eq!(v.as_f64(), want, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // genscope's own names are still there.
    assert!(
        body.contains("genscope_serving_requests_waiting{"),
        "{body}"
    );
    assert!(body.contains("genscope_serving_request_prefill_duration_seconds_bucket{"));
    // OpenMetrics too, and the same opt-in through the environment.
    let (_, _, om) = http_get(
        telemetry.prometheus_addr().unwrap(),
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    );
    openmetrics_parser::openmetrics::parse_openmetrics(&om).expect("openmetrics-parser");
    assert!(
        om.contains("vllm:num_requests_waiting{model_name=\"genscope-sim\"} 5"),
        "{om}"
    );
    let from_env = genscope::config::from_lookup(|k| {
        (k == "GENSCOPE_MODEL_SERVER_METRICS").then(|| "vllm".to_string())
    })
    .expect("env")
    .resolve()
    .expect("settings");
    assert_eq!(from_env.model_server_metrics, ModelServerMetrics::Vllm);
    let err = genscope::config::from_lookup(|k| {
        (k == "GENSCOPE_MODEL_SERVER_METRICS").then(|| "tgi".to_string())
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("GENSCOPE_MODEL_SERVER_METRICS"), "{err}");
}

#[test]
fn without_the_opt_in_no_vllm_series_appear() {
    let (_telemetry, body) = served(ModelServerMetrics::Off);
    assert!(!body.contains("vllm:"), "{body}");
    assert!(
        body.contains("genscope_serving_kv_cache_usage_ratio{"),
        "{body}"
    );
}
