//! Model-server protocol spellings added to a metrics snapshot (`GENSCOPE_MODEL_SERVER_METRICS`).

use crate::analyzer::{MetricKind, MetricSnapshot};
use crate::config::ModelServerMetrics;
use crate::instruments::catalog::serving::names;

/// `snapshot` plus, for [`ModelServerMetrics::Vllm`], `vllm:num_requests_waiting`,
/// `vllm:num_requests_running` and `vllm:kv_cache_usage_perc`: each a gauge with the serving
/// catalog series' values, `gen_ai.request.model` renamed `model_name` (series without it keep no
/// such label).
///
/// ```
/// use genscope::config::ModelServerMetrics;
/// use genscope::export::with_model_server_metrics;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let serving = telemetry.metrics().serving("llama")?;
/// serving.record_state(genscope::instruments::catalog::serving::EngineState {
///     kv_blocks_used: 25, kv_blocks_total: 100, running: 2, waiting: 5 });
/// telemetry.force_flush()?;
/// let all = with_model_server_metrics(telemetry.analyzer().snapshot(), ModelServerMetrics::Vllm);
/// let waiting = all.iter().find(|m| m.name == "vllm:num_requests_waiting").unwrap();
/// assert_eq!(waiting.series[0].attributes, vec![("model_name".to_string(), "llama".to_string())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_model_server_metrics(
    mut snapshot: Vec<MetricSnapshot>,
    which: ModelServerMetrics,
) -> Vec<MetricSnapshot> {
    if which == ModelServerMetrics::Off {
        return snapshot;
    }
    let families = [
        (
            names::REQUESTS_WAITING,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
        ),
        (
            names::REQUESTS_RUNNING,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
        ),
        (
            names::KV_CACHE_USAGE,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
        ),
    ];
    let mut added = Vec::new();
    for (source, name, help) in families {
        let Some(m) = snapshot.iter().find(|m| m.name == source) else {
            continue;
        };
        let mut series = m.series.clone();
        for s in &mut series {
            s.attributes.retain(|(k, _)| k == "gen_ai.request.model");
            for (k, _) in &mut s.attributes {
                *k = "model_name".into();
            }
        }
        added.push(MetricSnapshot {
            name: name.into(),
            unit: String::new(),
            description: help.into(),
            kind: MetricKind::Gauge,
            series,
        });
    }
    snapshot.extend(added);
    snapshot
}
