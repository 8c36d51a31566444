//! Rules over the serving-engine signals (`genscope.serving.*`, or a vendor's names through the
//! analyzer's aliases).
//!
//! | id | fires when (defaults in [`Thresholds`]) | severity |
//! |---|---|---|
//! | `kv-cache-pressure` | peak KV-cache usage >= 90 % while requests were preempted in the window | warning |
//! | `low-prefix-cache-hit-rate` | prefix-cache hits < 10 % of >= 10 000 queried prompt tokens | info |
//! | `prefill-bound-latency` | median prefill >= 50 % of median prefill + decode, over >= 20 requests | info |
//! | `decode-bound-latency` | median decode >= 80 % of median prefill + decode, over >= 20 requests | info |

use super::model::{Finding, Severity, Signals, Thresholds, finding};

pub(super) fn evaluate(s: &Signals, t: &Thresholds, out: &mut Vec<Finding>) {
    let w = s.window_seconds;
    if let (Some(peak), Some(preempted)) = (s.kv_cache_usage_peak, s.preemptions)
        && peak >= t.kv_cache_usage
        && preempted > 0.0
    {
        out.push(finding("kv-cache-pressure", Severity::Warning,
            format!("KV cache {:.0}% full at peak with {preempted:.0} preemptions", peak * 100.0),
            "genscope.serving.kv_cache.usage", peak, t.kv_cache_usage, "1", w,
            "The KV cache runs out and the engine preempts requests (recomputing or swapping them): lower max batch size or max sequence length, give the cache more memory (gpu-memory utilization), quantize the KV cache, or add replicas."));
    }
    if let Some((queried, hits)) = s.prefix_cache
        && queried >= t.prefix_cache_min_queries
        && hits / queried < t.prefix_cache_hit_rate
    {
        out.push(finding("low-prefix-cache-hit-rate", Severity::Info,
            format!("{:.1}% of {queried:.0} prompt tokens hit the prefix cache", hits / queried * 100.0),
            "genscope.serving.prefix_cache.hits", hits / queried, t.prefix_cache_hit_rate, "1", w,
            "Prompts share little cached prefix: put the stable part (system prompt, tools, few-shot examples) first and keep it byte-identical, route requests of one conversation to the same replica, or give the cache more blocks."));
    }
    if let Some((prefill, decode, n)) = s.prefill_decode_p50
        && n >= t.phase_min_requests
        && prefill + decode > 0.0
    {
        let prefill_share = prefill / (prefill + decode);
        if prefill_share >= t.prefill_share {
            out.push(finding("prefill-bound-latency", Severity::Info,
                format!("prefill takes {:.0}% of model time (median {prefill:.3} s prefill, {decode:.3} s decode)", prefill_share * 100.0),
                "genscope.serving.request.prefill.duration", prefill_share, t.prefill_share, "1", w,
                "Time to first token dominates: enable prefix caching and chunked prefill, shorten or deduplicate prompts, or separate prefill from decode (disaggregated serving) so long prompts do not stall the batch."));
        } else if 1.0 - prefill_share >= t.decode_share {
            out.push(finding("decode-bound-latency", Severity::Info,
                format!("decode takes {:.0}% of model time (median {decode:.3} s decode, {prefill:.3} s prefill)", (1.0 - prefill_share) * 100.0),
                "genscope.serving.request.decode.duration", 1.0 - prefill_share, t.decode_share, "1", w,
                "Generating tokens dominates: cap max_tokens, use speculative decoding, a quantized or smaller model, or more tensor parallelism; a larger batch raises throughput but not per-request speed."));
        }
    }
}
