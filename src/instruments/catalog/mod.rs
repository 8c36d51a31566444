//! Catalogs: the metrics the seeds' tables name, as semantic-convention (or `genscope.`)
//! definitions with their units and advisory buckets, and a typed recorder per domain that
//! fills in the required attributes.
//!
//! | module | metrics | recorder |
//! |---|---|---|
//! | [`genai`] | `gen_ai.client.token.usage`, `gen_ai.client.operation.duration`, `gen_ai.server.request.duration`, `gen_ai.server.time_to_first_token`, `gen_ai.server.time_per_output_token`, `genscope.gen_ai.prompt.length` | [`genai::GenAiMetrics`] |
//! | [`generation`] | `genscope.generation.{requests, duration, queue.size, queue.wait, active, batch.size, steps.rate, item.duration}` | [`generation::GenerationMetrics`] |
//! | [`users`] | `genscope.users.active` | [`users::UserMetrics`] |
//! | [`http`] | `http.server.request.duration`, `http.server.active_requests` | [`http::HttpServerMetrics`] |
//! | [`db`] | `db.client.operation.duration`, `db.client.connection.{count, max, pending_requests}` | [`db::DbClientMetrics`] |
//! | [`model`] | `genscope.model.download.{io, duration, throughput}`, `genscope.model.health_check.duration`, `genscope.model.fallback.activations` | [`model::ModelMetrics`] |
//! | [`serving`] | `genscope.serving.{kv_cache.usage, kv_cache.blocks.used, kv_cache.blocks.total, requests.running, requests.waiting, preemptions, prefix_cache.queries, prefix_cache.hits, batch.tokens, spec_decode.draft_tokens, spec_decode.accepted_tokens, inter_token.duration, request.queue.duration, request.prefill.duration, request.decode.duration}` | [`serving::ServingMetrics`] |
//! | [`operation`] | `genscope.operation.duration` | [`operation::OperationMetrics`] |

pub mod db;
pub mod genai;
pub mod generation;
pub mod http;
pub mod model;
pub mod operation;
pub mod serving;
pub mod stream_timing;
pub mod users;

use super::definition::MetricDefinition;

/// Every definition the catalogs provide.
///
/// ```
/// let all = genscope::instruments::catalog::all();
/// assert!(all.iter().any(|d| d.name() == "gen_ai.client.token.usage"));
/// for d in &all { d.validate().unwrap(); }
/// ```
pub fn all() -> Vec<MetricDefinition> {
    let mut out = Vec::new();
    out.extend(genai::definitions());
    out.extend(generation::definitions());
    out.extend(users::definitions());
    out.extend(http::definitions());
    out.extend(db::definitions());
    out.extend(model::definitions());
    out.extend(operation::definitions());
    out.extend(serving::definitions());
    out
}

/// The catalog definition of a semantic-convention (or catalog `genscope.`) name, including the
/// names `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` emits.
pub(crate) fn semconv_definition(name: &str) -> Option<MetricDefinition> {
    all()
        .into_iter()
        .chain(genai::latest_experimental_definitions())
        .find(|d| d.name() == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalog_definitions_are_valid_and_unique() {
        let all = super::all();
        let mut names: Vec<&str> = all.iter().map(|d| d.name()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate catalog names");
        for d in &all {
            d.validate().unwrap();
            assert!(
                d.reserved_namespace().is_some() || d.name().starts_with("genscope."),
                "{} is neither semconv nor genscope.",
                d.name()
            );
        }
    }
}
