//! `GENSCOPE_MODEL_SERVER_METRICS`: model-server protocol spellings on `/metrics`.

use std::str::FromStr;

use serde::Deserialize;

/// Which model-server metric protocol `/metrics` also speaks, besides genscope's names.
/// `vllm`: the series the Kubernetes Gateway API Inference Extension's model-server protocol
/// reads to route requests, under vLLM's names: `vllm:num_requests_waiting`,
/// `vllm:num_requests_running` and `vllm:kv_cache_usage_perc` (0..1, vLLM's range), each
/// labelled `model_name="<served id>"`, from the serving catalog's
/// `genscope.serving.requests.{waiting,running}` and `genscope.serving.kv_cache.usage`.
///
/// ```
/// use genscope::config::ModelServerMetrics;
/// assert_eq!(ModelServerMetrics::default(), ModelServerMetrics::Off);
/// assert_eq!("vllm".parse::<ModelServerMetrics>().unwrap(), ModelServerMetrics::Vllm);
/// assert!("sglang".parse::<ModelServerMetrics>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelServerMetrics {
    /// genscope's names only (the default).
    #[default]
    Off,
    /// Also vLLM's spellings of the three routing signals.
    Vllm,
}

impl FromStr for ModelServerMetrics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" | "none" => Ok(ModelServerMetrics::Off),
            "vllm" => Ok(ModelServerMetrics::Vllm),
            other => Err(format!(
                "unknown model-server metrics protocol {other:?}: expected vllm or off"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ModelServerMetrics {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
