//! Vendor metric names the analyzer reads as its own signals when genscope's name has no data:
//! the metrics TGI, TEI and mistral.rs record through the `metrics` facade (and export under
//! the same names), so a server that switched its recorder to genscope, or whose data the
//! collector wrote to a file, gets the same report and findings. The vendor names themselves are
//! exported and stored unchanged; only reads fall back to them.

use super::metric_values::Attributes;

/// One vendor source of a genscope signal: the vendor metric and the label renames (vendor label
/// → genscope attribute) applied to its series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasSource {
    /// The vendor metric name.
    pub vendor: &'static str,
    /// Label renames applied to its series.
    pub renames: &'static [(&'static str, &'static str)],
}

/// One aliased signal: genscope's name and the vendor sources that stand in for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// genscope's metric name.
    pub signal: &'static str,
    /// Sources, all read (their series together) when `signal` has no data of its own.
    pub sources: &'static [AliasSource],
}

const fn src(vendor: &'static str) -> AliasSource {
    AliasSource {
        vendor,
        renames: &[],
    }
}

/// The built-in table (see [`Aliases::vendors`]).
const VENDORS: &[Alias] = &[
    // TGI (text-generation-inference router).
    Alias {
        signal: "genscope.generation.requests",
        sources: &[
            src("tgi_request_success"),
            AliasSource {
                vendor: "tgi_request_failure",
                renames: &[("err", "error.type")],
            },
            src("te_request_success"),
            AliasSource {
                vendor: "te_request_failure",
                renames: &[("err", "error.type")],
            },
            src("vllm:request_success_total"),
            src("sglang:num_requests_total"),
        ],
    },
    Alias {
        signal: "genscope.generation.duration",
        sources: &[src("tgi_request_duration"), src("te_request_duration")],
    },
    Alias {
        signal: "genscope.generation.queue.wait",
        sources: &[
            src("tgi_request_queue_duration"),
            src("te_request_queue_duration"),
            src("vllm:request_queue_time_seconds"),
            src("sglang:queue_time_seconds"),
        ],
    },
    Alias {
        signal: "genscope.generation.queue.size",
        sources: &[
            src("tgi_queue_size"),
            src("te_queue_size"),
            src("genscope.serving.requests.waiting"),
            src("vllm:num_requests_waiting"),
            src("sglang:num_queue_reqs"),
            src("sglang_num_queue_reqs"),
        ],
    },
    Alias {
        signal: "genscope.generation.active",
        sources: &[
            src("tgi_batch_current_size"),
            src("te_batch_current_size"),
            src("genscope.serving.requests.running"),
            src("vllm:num_requests_running"),
            src("sglang:num_running_reqs"),
            src("sglang_num_running_reqs"),
        ],
    },
    Alias {
        signal: "gen_ai.server.time_per_output_token",
        sources: &[
            src("tgi_request_mean_time_per_token_duration"),
            src("vllm:inter_token_latency_seconds"),
            src("sglang:inter_token_latency_seconds"),
            src("sglang_inter_token_latency_seconds"),
        ],
    },
    // mistral.rs.
    Alias {
        signal: "gen_ai.server.time_to_first_token",
        sources: &[
            src("mistralrs_time_to_first_token_seconds"),
            src("vllm:time_to_first_token_seconds"),
            src("sglang:time_to_first_token_seconds"),
            src("sglang_time_to_first_token_seconds"),
        ],
    },
    Alias {
        signal: "genscope.serving.inter_token.duration",
        sources: &[src("mistralrs_inter_token_latency_seconds")],
    },
    Alias {
        signal: "genscope.serving.kv_cache.blocks.used",
        sources: &[src("mistralrs_kv_cache_blocks_used")],
    },
    Alias {
        signal: "genscope.serving.kv_cache.blocks.total",
        sources: &[src("mistralrs_kv_cache_blocks_total")],
    },
    Alias {
        signal: "genscope.serving.preemptions",
        sources: &[
            src("mistralrs_paged_preemptions_total"),
            src("vllm:num_preemptions_total"),
        ],
    },
    // vLLM (v1 engine, `vllm:`) and SGLang (`sglang:`, before 0.4 `sglang_`), as a Prometheus
    // backend holds them (`analyzer::fleet`). One source per quantity and server: where vLLM
    // exposes a deprecated twin (`gpu_cache_usage_perc`, `time_per_output_token_seconds`), the
    // twin is left out so that the two are not added up.
    Alias {
        signal: "genscope.serving.kv_cache.usage",
        sources: &[
            src("vllm:kv_cache_usage_perc"),
            src("sglang:token_usage"),
            src("sglang_token_usage"),
        ],
    },
    Alias {
        signal: "genscope.serving.prefix_cache.queries",
        sources: &[src("vllm:prefix_cache_queries_total")],
    },
    Alias {
        signal: "genscope.serving.prefix_cache.hits",
        sources: &[src("vllm:prefix_cache_hits_total")],
    },
    Alias {
        signal: "gen_ai.server.request.duration",
        sources: &[
            src("vllm:e2e_request_latency_seconds"),
            src("sglang:e2e_request_latency_seconds"),
            src("sglang_e2e_request_latency_seconds"),
        ],
    },
    Alias {
        signal: "gen_ai.client.inference.usage.output_tokens",
        sources: &[
            src("vllm:generation_tokens_total"),
            src("sglang:generation_tokens_total"),
            src("sglang_generation_tokens_total"),
        ],
    },
    Alias {
        signal: "genscope.serving.request.prefill.duration",
        sources: &[src("vllm:request_prefill_time_seconds")],
    },
    Alias {
        signal: "genscope.serving.request.decode.duration",
        sources: &[src("vllm:request_decode_time_seconds")],
    },
];

/// The alias table of an analyzer store.
///
/// ```
/// use genscope::analyzer::Aliases;
/// let a = Aliases::vendors();
/// assert!(a.sources("genscope.generation.duration").iter().any(|s| s.vendor == "tgi_request_duration"));
/// assert!(Aliases::none().sources("genscope.generation.duration").is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aliases {
    table: &'static [Alias],
}

impl Default for Aliases {
    /// The vendor table: reads fall back only where genscope's own name has no data.
    fn default() -> Self {
        Aliases::vendors()
    }
}

impl Aliases {
    /// TGI's (`tgi_request_duration`, `tgi_request_queue_duration`,
    /// `tgi_request_mean_time_per_token_duration`, `tgi_queue_size`, `tgi_batch_current_size`,
    /// `tgi_request_success`, `tgi_request_failure{err}`), TEI's (`te_request_duration`,
    /// `te_request_queue_duration`, `te_queue_size`, `te_batch_current_size`,
    /// `te_request_success`, `te_request_failure{err}`) and mistral.rs's
    /// (`mistralrs_time_to_first_token_seconds`, `mistralrs_inter_token_latency_seconds`,
    /// `mistralrs_kv_cache_blocks_{used,total}`, `mistralrs_paged_preemptions_total`); vLLM's
    /// (`vllm:num_requests_{waiting,running}`, `vllm:kv_cache_usage_perc`,
    /// `vllm:num_preemptions_total`, `vllm:prefix_cache_{queries,hits}_total`,
    /// `vllm:request_success_total`, `vllm:generation_tokens_total`,
    /// `vllm:{time_to_first_token,inter_token_latency,e2e_request_latency,request_queue_time,
    /// request_prefill_time,request_decode_time}_seconds`) and SGLang's (`sglang:num_queue_reqs`,
    /// `sglang:num_running_reqs`, `sglang:token_usage`, `sglang:num_requests_total`,
    /// `sglang:generation_tokens_total`, `sglang:{time_to_first_token,inter_token_latency,
    /// e2e_request_latency,queue_time}_seconds`, and the `sglang_` spellings of older releases);
    /// and genscope's own serving-state gauges `genscope.serving.requests.{waiting,running}` for
    /// the queue and active signals.
    pub fn vendors() -> Self {
        Aliases { table: VENDORS }
    }

    /// No aliases: the analyzer reads genscope's names only.
    pub fn none() -> Self {
        Aliases { table: &[] }
    }

    /// The sources standing in for `signal` (empty when none).
    pub fn sources(&self, signal: &str) -> &'static [AliasSource] {
        self.table
            .iter()
            .find(|a| a.signal == signal)
            .map_or(&[], |a| a.sources)
    }

    /// Every aliased signal.
    pub fn table(&self) -> &'static [Alias] {
        self.table
    }
}

impl AliasSource {
    /// `attrs` with this source's renames applied.
    pub(crate) fn renamed(&self, attrs: &Attributes) -> Attributes {
        attrs
            .iter()
            .map(|(k, v)| {
                let k = self
                    .renames
                    .iter()
                    .find(|(from, _)| from == k)
                    .map_or(k.as_str(), |(_, to)| to);
                (k.to_string(), v.clone())
            })
            .collect()
    }
}
