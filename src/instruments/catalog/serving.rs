//! Serving-engine state under `genscope.serving.*`: what a continuous-batching LLM engine (vLLM,
//! SGLang, TGI, mistral.rs) knows each scheduler step and routers and autoscalers read: KV-cache
//! usage and blocks, preemptions, prefix-cache queries and hits, running and waiting requests,
//! tokens per batch step, speculative-decoding drafts and acceptances, inter-token latency, and
//! each request's queue, prefill and decode time. No semantic convention covers these yet (the
//! shapes follow vLLM's `vllm:*` metrics; `GENSCOPE_MODEL_SERVER_METRICS=vllm` also exposes the
//! three the Gateway API Inference Extension reads under vLLM's names on `/metrics`).
//!
//! Attribute: `gen_ai.request.model` (the served model id).

use std::time::Duration;

use opentelemetry::KeyValue;

use crate::instruments::{
    BoundCounter, BoundGauge, BoundHistogram, DefinitionError, InstrumentKind, Metric,
    MetricDefinition, MetricsCollector,
};

/// Inter-token latency buckets: 1 ms to 2.5 s.
pub const INTER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.5, 0.75, 1.0, 2.5,
];
/// Per-request phase buckets (queue, prefill, decode): 1 ms to 10 min.
pub const PHASE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
    300.0, 600.0,
];
/// Tokens per scheduler step: 1 to 16384.
pub const STEP_TOKEN_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0,
];

/// The metric names, in [`definitions`] order.
pub mod names {
    /// KV-cache blocks in use over blocks in the pool (0..1).
    pub const KV_CACHE_USAGE: &str = "genscope.serving.kv_cache.usage";
    /// KV-cache blocks in use.
    pub const KV_CACHE_BLOCKS_USED: &str = "genscope.serving.kv_cache.blocks.used";
    /// KV-cache blocks in the pool.
    pub const KV_CACHE_BLOCKS_TOTAL: &str = "genscope.serving.kv_cache.blocks.total";
    /// Requests being decoded or prefilled this step.
    pub const REQUESTS_RUNNING: &str = "genscope.serving.requests.running";
    /// Requests waiting for a batch slot or KV blocks.
    pub const REQUESTS_WAITING: &str = "genscope.serving.requests.waiting";
    /// Requests preempted (their KV blocks taken back) to make room.
    pub const PREEMPTIONS: &str = "genscope.serving.preemptions";
    /// Prompt tokens looked up in the prefix cache.
    pub const PREFIX_CACHE_QUERIES: &str = "genscope.serving.prefix_cache.queries";
    /// Prompt tokens found in the prefix cache.
    pub const PREFIX_CACHE_HITS: &str = "genscope.serving.prefix_cache.hits";
    /// Tokens computed per scheduler step (prefill and decode).
    pub const BATCH_TOKENS: &str = "genscope.serving.batch.tokens";
    /// Draft tokens proposed by speculative decoding.
    pub const SPEC_DECODE_DRAFT_TOKENS: &str = "genscope.serving.spec_decode.draft_tokens";
    /// Draft tokens the target model accepted.
    pub const SPEC_DECODE_ACCEPTED_TOKENS: &str = "genscope.serving.spec_decode.accepted_tokens";
    /// Time between two output tokens of a request.
    pub const INTER_TOKEN_DURATION: &str = "genscope.serving.inter_token.duration";
    /// Time a request waited before its first scheduling.
    pub const REQUEST_QUEUE_DURATION: &str = "genscope.serving.request.queue.duration";
    /// Time a request spent in prefill (to its first token).
    pub const REQUEST_PREFILL_DURATION: &str = "genscope.serving.request.prefill.duration";
    /// Time a request spent decoding (first to last token).
    pub const REQUEST_DECODE_DURATION: &str = "genscope.serving.request.decode.duration";
}

const ATTRS: [&str; 1] = ["gen_ai.request.model"];

/// The serving catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    use names::*;
    let def = |name: &'static str, kind: InstrumentKind, unit: &'static str, d: &'static str| {
        MetricDefinition::new(name, kind)
            .with_unit(unit)
            .with_description(d)
            .with_attributes(ATTRS)
    };
    let hist = |name, unit, b: &[f64], d| {
        def(name, InstrumentKind::Histogram, unit, d).with_buckets(b.iter().copied())
    };
    use InstrumentKind::{Counter, Gauge};
    vec![
        def(
            KV_CACHE_USAGE,
            Gauge,
            "1",
            "KV-cache blocks in use over blocks in the pool",
        ),
        def(
            KV_CACHE_BLOCKS_USED,
            Gauge,
            "{block}",
            "KV-cache blocks in use",
        ),
        def(
            KV_CACHE_BLOCKS_TOTAL,
            Gauge,
            "{block}",
            "KV-cache blocks in the pool",
        ),
        def(
            REQUESTS_RUNNING,
            Gauge,
            "{request}",
            "Requests in the running batch",
        ),
        def(
            REQUESTS_WAITING,
            Gauge,
            "{request}",
            "Requests waiting to be scheduled",
        ),
        def(
            PREEMPTIONS,
            Counter,
            "{preemption}",
            "Requests preempted to free KV-cache blocks",
        ),
        def(
            PREFIX_CACHE_QUERIES,
            Counter,
            "{token}",
            "Prompt tokens looked up in the prefix cache",
        ),
        def(
            PREFIX_CACHE_HITS,
            Counter,
            "{token}",
            "Prompt tokens found in the prefix cache",
        ),
        hist(
            BATCH_TOKENS,
            "{token}",
            STEP_TOKEN_BUCKETS,
            "Tokens computed per scheduler step",
        ),
        def(
            SPEC_DECODE_DRAFT_TOKENS,
            Counter,
            "{token}",
            "Draft tokens proposed by speculative decoding",
        ),
        def(
            SPEC_DECODE_ACCEPTED_TOKENS,
            Counter,
            "{token}",
            "Draft tokens accepted by the target model",
        ),
        hist(
            INTER_TOKEN_DURATION,
            "s",
            INTER_TOKEN_BUCKETS,
            "Time between consecutive output tokens of a request",
        ),
        hist(
            REQUEST_QUEUE_DURATION,
            "s",
            PHASE_BUCKETS,
            "Time a request waited before it was first scheduled",
        ),
        hist(
            REQUEST_PREFILL_DURATION,
            "s",
            PHASE_BUCKETS,
            "Time a request spent in prefill, to its first token",
        ),
        hist(
            REQUEST_DECODE_DURATION,
            "s",
            PHASE_BUCKETS,
            "Time a request spent decoding, from its first to its last token",
        ),
    ]
}

/// The engine's state at one scheduler step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineState {
    /// KV-cache blocks in use.
    pub kv_blocks_used: u64,
    /// KV-cache blocks in the pool.
    pub kv_blocks_total: u64,
    /// Requests in the running batch.
    pub running: u64,
    /// Requests waiting.
    pub waiting: u64,
}

/// One request's phases.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestPhases {
    /// Arrival to first scheduling.
    pub queue: Duration,
    /// First scheduling to first token.
    pub prefill: Duration,
    /// First token to last token.
    pub decode: Duration,
}

/// Typed recorder for the serving catalog. Get it with
/// [`MetricsCollector::serving`](crate::instruments::MetricsCollector::serving).
///
/// ```
/// use genscope::instruments::catalog::serving::{EngineState, names};
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let serving = telemetry.metrics().serving("llama-3-8b")?;
/// serving.record_state(EngineState { kv_blocks_used: 900, kv_blocks_total: 1000, running: 8, waiting: 3 });
/// serving.add_preemptions(2);
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// let usage = telemetry.analyzer().gauge(names::KV_CACHE_USAGE, &[], w).unwrap();
/// assert!((usage.last - 0.9).abs() < 1e-12);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServingMetrics {
    /// Bound to the model's attribute set: a record is a per-thread cell update, no lookup
    /// (inter-token latency is recorded for every token).
    m: Vec<Bound>,
    /// `OTEL_SDK_DISABLED`: every record returns at once.
    disabled: bool,
}

#[derive(Debug, Clone)]
enum Bound {
    Counter(BoundCounter),
    Gauge(BoundGauge),
    Histogram(BoundHistogram),
    Unbound(Metric, Vec<KeyValue>),
}

impl ServingMetrics {
    pub(crate) fn new(c: &MetricsCollector, model: &str) -> Result<Self, DefinitionError> {
        let attrs = vec![KeyValue::new("gen_ai.request.model", model.to_string())];
        let mut m = Vec::new();
        for d in definitions() {
            let metric = c.create_metric(d)?;
            let name = metric.definition().name().to_string();
            // Binding checks the attribute set once; should it be refused (a series limit), the
            // metric is recorded by reference instead, and each record counts the refusal.
            let bound = match metric.definition().kind() {
                InstrumentKind::Counter => c.bind_counter(&name, &attrs).map(Bound::Counter).ok(),
                InstrumentKind::Gauge => c.bind_gauge(&name, &attrs).map(Bound::Gauge).ok(),
                _ => c.bind_histogram(&name, &attrs).map(Bound::Histogram).ok(),
            };
            m.push(bound.unwrap_or_else(|| Bound::Unbound(metric, attrs.clone())));
        }
        Ok(ServingMetrics {
            m,
            disabled: c.is_disabled(),
        })
    }

    fn rec(&self, i: usize, v: f64) {
        if self.disabled {
            return;
        }
        let _ = match &self.m[i] {
            Bound::Counter(b) => b.add(v),
            Bound::Gauge(b) => b.record(v),
            Bound::Histogram(b) => b.record(v),
            Bound::Unbound(m, attrs) => m.record(v, attrs),
        };
    }

    /// The state at a scheduler step: blocks used and total, their ratio, running and waiting.
    /// A pool of zero blocks records no usage ratio.
    pub fn record_state(&self, s: EngineState) {
        if s.kv_blocks_total > 0 {
            self.rec(0, s.kv_blocks_used as f64 / s.kv_blocks_total as f64);
        }
        self.rec(1, s.kv_blocks_used as f64);
        self.rec(2, s.kv_blocks_total as f64);
        self.rec(3, s.running as f64);
        self.rec(4, s.waiting as f64);
    }

    /// `n` requests preempted.
    pub fn add_preemptions(&self, n: u64) {
        self.rec(5, n as f64);
    }

    /// A prefix-cache lookup: `queried` prompt tokens, `hit` of them cached.
    pub fn record_prefix_cache(&self, queried: u64, hit: u64) {
        self.rec(6, queried as f64);
        self.rec(7, hit.min(queried) as f64);
    }

    /// Tokens computed in one scheduler step.
    pub fn record_step_tokens(&self, tokens: u64) {
        self.rec(8, tokens as f64);
    }

    /// Speculative decoding: `draft` tokens proposed, `accepted` of them accepted.
    pub fn record_spec_decode(&self, draft: u64, accepted: u64) {
        self.rec(9, draft as f64);
        self.rec(10, accepted.min(draft) as f64);
    }

    /// The time between two output tokens of one request.
    pub fn record_inter_token(&self, gap: Duration) {
        self.rec(11, gap.as_secs_f64());
    }

    /// One finished request's queue, prefill and decode time.
    pub fn record_phases(&self, p: RequestPhases) {
        self.rec(12, p.queue.as_secs_f64());
        self.rec(13, p.prefill.as_secs_f64());
        self.rec(14, p.decode.as_secs_f64());
    }
}

impl MetricsCollector {
    /// The serving catalog's typed recorder for the served model `model` (defines its metrics on
    /// first use).
    pub fn serving(&self, model: &str) -> Result<ServingMetrics, DefinitionError> {
        ServingMetrics::new(self, model)
    }
}
