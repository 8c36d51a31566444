//! The traces behind a latency finding: the slowest requests of the window, so a reader can open
//! them in a trace backend (the same trace ids the OTLP exporters sent).

use crate::analyzer::{AnalyzerStore, Window};

use super::findings::Finding;

/// Findings about request latency: they cite the slowest requests' traces.
const LATENCY_FINDINGS: &[&str] = &[
    "tail-latency",
    "queue-dominated-latency",
    "prefill-bound-latency",
    "decode-bound-latency",
];

/// How many traces a finding cites.
const CITED: usize = 5;

/// Whether a span stands for a request: a GenAI span (`gen_ai.request.model` or
/// `gen_ai.operation.name`) or a generation operation.
fn is_request(attributes: &[opentelemetry::KeyValue]) -> bool {
    attributes.iter().any(|kv| {
        let k = kv.key.as_str();
        k == "gen_ai.request.model"
            || k == "gen_ai.operation.name"
            || (k == "genscope.operation.type" && kv.value.as_str() == "generation")
    })
}

/// Fills `evidence.trace_ids` of the latency findings with the trace ids of the slowest request
/// spans that ended in `window` (distinct, slowest first; the store's recent spans).
pub(super) fn cite_slowest(store: &AnalyzerStore, window: Window, findings: &mut [Finding]) {
    if !findings
        .iter()
        .any(|f| LATENCY_FINDINGS.contains(&f.id.as_str()))
    {
        return;
    }
    let ids = store.slowest_traces(window, CITED, is_request);
    for f in findings
        .iter_mut()
        .filter(|f| LATENCY_FINDINGS.contains(&f.id.as_str()))
    {
        f.evidence.trace_ids = ids.clone();
    }
}
