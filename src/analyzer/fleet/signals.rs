//! Which metric names a fleet report reads: every metric the local report reads, under the
//! Prometheus name genscope's `/metrics`, the collector's Prometheus exporters and Prometheus 3's
//! OTLP receiver give it (`export::prometheus_name`), and the serving metrics of vLLM and SGLang
//! that stand for the same signals (read through the store's alias table, as the TGI names are).
//!
//! Sources for the vendor names: vLLM's `vllm/v1/metrics/loggers.py` (v1 engine; `vllm:` prefix,
//! `kv_cache_usage_perc` since 0.10, `gpu_cache_usage_perc` before) and SGLang's
//! `python/sglang/srt/metrics/collector.py` (`sglang:` prefix; releases before 0.4 used
//! `sglang_`).

use crate::analyzer::MetricKind;
use crate::export::prometheus_name;
use crate::instruments::catalog::serving::names as serving;

/// One stored metric and the Prometheus names that feed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSource {
    /// The name the store keeps it under (genscope's OTel name, or the vendor's name).
    pub stored: &'static str,
    /// Its unit, as the report reads it.
    pub unit: &'static str,
    /// Its kind.
    pub kind: MetricKind,
    /// The Prometheus metric family (for histograms, without `_bucket`/`_sum`/`_count`).
    pub family: String,
}

/// genscope's signals: (OTel name, unit, kind).
const GENSCOPE: &[(&str, &str, MetricKind)] = &[
    (
        "genscope.generation.requests",
        "{request}",
        MetricKind::Counter,
    ),
    ("genscope.generation.duration", "s", MetricKind::Histogram),
    ("gen_ai.server.request.duration", "s", MetricKind::Histogram),
    ("genscope.generation.queue.wait", "s", MetricKind::Histogram),
    (serving::REQUEST_QUEUE_DURATION, "s", MetricKind::Histogram),
    (
        "genscope.generation.queue.size",
        "{request}",
        MetricKind::UpDownCounter,
    ),
    (
        "genscope.generation.active",
        "{request}",
        MetricKind::UpDownCounter,
    ),
    (
        "gen_ai.client.token.usage",
        "{token}",
        MetricKind::Histogram,
    ),
    (
        "gen_ai.server.token.usage",
        "{token}",
        MetricKind::Histogram,
    ),
    (
        "gen_ai.client.inference.usage.output_tokens",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "gen_ai.server.time_to_first_token",
        "s",
        MetricKind::Histogram,
    ),
    (
        "gen_ai.server.time_per_output_token",
        "s",
        MetricKind::Histogram,
    ),
    (
        "genscope.generation.steps.rate",
        "{step}/s",
        MetricKind::Histogram,
    ),
    ("genscope.events", "{event}", MetricKind::Counter),
    (serving::KV_CACHE_USAGE, "1", MetricKind::Gauge),
    (serving::KV_CACHE_BLOCKS_USED, "{block}", MetricKind::Gauge),
    (serving::KV_CACHE_BLOCKS_TOTAL, "{block}", MetricKind::Gauge),
    (serving::PREEMPTIONS, "{preemption}", MetricKind::Counter),
    (
        serving::PREFIX_CACHE_QUERIES,
        "{token}",
        MetricKind::Counter,
    ),
    (serving::PREFIX_CACHE_HITS, "{token}", MetricKind::Counter),
    (
        serving::REQUEST_PREFILL_DURATION,
        "s",
        MetricKind::Histogram,
    ),
    (serving::REQUEST_DECODE_DURATION, "s", MetricKind::Histogram),
    (serving::INTER_TOKEN_DURATION, "s", MetricKind::Histogram),
    // Every operation (downloads, loads, health checks, fallbacks) by type, name and outcome.
    ("genscope.operation.duration", "s", MetricKind::Histogram),
    (
        "genscope.model.health_check.duration",
        "s",
        MetricKind::Histogram,
    ),
    (
        "genscope.model.fallback.activations",
        "{activation}",
        MetricKind::Counter,
    ),
    (
        "genscope.model.download.throughput",
        "By/s",
        MetricKind::Histogram,
    ),
    ("system.cpu.utilization", "1", MetricKind::Gauge),
    ("process.cpu.utilization", "1", MetricKind::Gauge),
    ("system.memory.utilization", "1", MetricKind::Gauge),
    ("process.memory.usage", "By", MetricKind::UpDownCounter),
    ("hw.gpu.utilization", "1", MetricKind::Gauge),
    ("hw.gpu.memory.utilization", "1", MetricKind::Gauge),
    ("hw.gpu.memory.usage", "By", MetricKind::UpDownCounter),
    ("hw.power", "W", MetricKind::Gauge),
    ("hw.temperature", "Cel", MetricKind::Gauge),
    (
        "genscope.gpu.throttle.active",
        "1",
        MetricKind::UpDownCounter,
    ),
    (
        "otel.sdk.processor.span.processed",
        "{span}",
        MetricKind::Counter,
    ),
    (
        "otel.sdk.exporter.span.exported",
        "{span}",
        MetricKind::Counter,
    ),
    (
        "otel.sdk.exporter.metric_data_point.exported",
        "{data_point}",
        MetricKind::Counter,
    ),
];

/// vLLM's and SGLang's names (as exposed: counters with `_total`, histograms by family), with
/// their kind and unit. The alias table says which genscope signal each stands for.
const VENDORS: &[(&str, &str, MetricKind)] = &[
    ("vllm:num_requests_waiting", "{request}", MetricKind::Gauge),
    ("vllm:num_requests_running", "{request}", MetricKind::Gauge),
    ("vllm:kv_cache_usage_perc", "1", MetricKind::Gauge),
    ("vllm:gpu_cache_usage_perc", "1", MetricKind::Gauge),
    (
        "vllm:num_preemptions_total",
        "{preemption}",
        MetricKind::Counter,
    ),
    (
        "vllm:prefix_cache_queries_total",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "vllm:prefix_cache_hits_total",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "vllm:request_success_total",
        "{request}",
        MetricKind::Counter,
    ),
    (
        "vllm:generation_tokens_total",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "vllm:time_to_first_token_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:inter_token_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:time_per_output_token_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:e2e_request_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:request_queue_time_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:request_prefill_time_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "vllm:request_decode_time_seconds",
        "s",
        MetricKind::Histogram,
    ),
    ("sglang:num_queue_reqs", "{request}", MetricKind::Gauge),
    ("sglang:num_running_reqs", "{request}", MetricKind::Gauge),
    ("sglang:token_usage", "1", MetricKind::Gauge),
    (
        "sglang:num_requests_total",
        "{request}",
        MetricKind::Counter,
    ),
    (
        "sglang:generation_tokens_total",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "sglang:time_to_first_token_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "sglang:inter_token_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "sglang:e2e_request_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
    ("sglang:queue_time_seconds", "s", MetricKind::Histogram),
    ("sglang_num_queue_reqs", "{request}", MetricKind::Gauge),
    ("sglang_num_running_reqs", "{request}", MetricKind::Gauge),
    ("sglang_token_usage", "1", MetricKind::Gauge),
    (
        "sglang_generation_tokens_total",
        "{token}",
        MetricKind::Counter,
    ),
    (
        "sglang_time_to_first_token_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "sglang_inter_token_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
    (
        "sglang_e2e_request_latency_seconds",
        "s",
        MetricKind::Histogram,
    ),
];

/// Prometheus label names back to the attribute keys the report filters on (the exposition
/// replaces dots with underscores, which cannot be undone in general).
const LABELS: &[(&str, &str)] = &[
    ("error_type", "error.type"),
    ("cpu_mode", "cpu.mode"),
    ("gen_ai_token_type", "gen_ai.token.type"),
    ("gen_ai_operation_name", "gen_ai.operation.name"),
    ("gen_ai_request_model", "gen_ai.request.model"),
    ("system_memory_state", "system.memory.state"),
    ("hw_type", "hw.type"),
    ("hw_id", "hw.id"),
    ("hw_gpu_task", "hw.gpu.task"),
    ("hw_sensor_location", "hw.sensor_location"),
    (
        "genscope_gpu_throttle_reason",
        "genscope.gpu.throttle.reason",
    ),
    ("genscope_event_level", "genscope.event.level"),
    ("genscope_event_target", "genscope.event.target"),
    ("genscope_operation_type", "genscope.operation.type"),
    ("genscope_operation_name", "genscope.operation.name"),
    ("genscope_operation_outcome", "genscope.operation.outcome"),
    ("genscope_model_name", "genscope.model.name"),
];

/// The attribute key for a Prometheus label name.
pub(super) fn attribute_key(label: &str) -> &str {
    LABELS
        .iter()
        .find(|(l, _)| *l == label)
        .map_or(label, |(_, k)| k)
}

/// Every source a fleet report reads, genscope's names first.
pub fn sources() -> Vec<SignalSource> {
    let genscope = GENSCOPE.iter().map(|&(name, unit, kind)| {
        let full = prometheus_name(name, unit, kind);
        SignalSource {
            stored: name,
            unit,
            kind,
            // The family of a counter is queried with its `_total` sample name.
            family: full,
        }
    });
    let vendors = VENDORS.iter().map(|&(name, unit, kind)| SignalSource {
        stored: name,
        unit,
        kind,
        family: name.to_string(),
    });
    genscope.chain(vendors).collect()
}

/// The Prometheus sample names of one source.
pub(super) fn sample_names(s: &SignalSource) -> Vec<String> {
    match s.kind {
        MetricKind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", s.family))
            .collect(),
        _ => vec![s.family.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genscope_names_are_the_exposition_names() {
        let all = sources();
        let find = |stored: &str| all.iter().find(|s| s.stored == stored).unwrap();
        assert_eq!(
            find("genscope.generation.requests").family,
            "genscope_generation_requests_total"
        );
        assert_eq!(
            sample_names(find("gen_ai.server.request.duration")),
            [
                "gen_ai_server_request_duration_seconds_bucket",
                "gen_ai_server_request_duration_seconds_sum",
                "gen_ai_server_request_duration_seconds_count"
            ]
        );
        assert_eq!(
            find("system.cpu.utilization").family,
            "system_cpu_utilization_ratio"
        );
        assert_eq!(
            find("genscope.gpu.throttle.active").family,
            "genscope_gpu_throttle_active"
        );
        assert_eq!(attribute_key("error_type"), "error.type");
        assert_eq!(attribute_key("model_name"), "model_name");
    }
}
