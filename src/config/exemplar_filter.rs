//! `OTEL_METRICS_EXEMPLAR_FILTER`: which histogram measurements keep an exemplar.

use std::str::FromStr;

/// Which histogram measurements keep an exemplar (the latest one per bucket and series), shown
/// on `/metrics` in OpenMetrics (`# {trace_id="...",span_id="..."} value timestamp`).
///
/// The OTel SDK 0.33 fills no exemplars itself; genscope keeps them on its own recording paths
/// (by name, bound histograms, the catalogs, the `metrics` facade).
///
/// ```
/// use genscope::config::ExemplarFilter;
/// assert_eq!("trace_based".parse::<ExemplarFilter>().unwrap(), ExemplarFilter::TraceBased);
/// assert_eq!(ExemplarFilter::default(), ExemplarFilter::TraceBased);
/// assert!("sometimes".parse::<ExemplarFilter>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum ExemplarFilter {
    /// Measurements taken inside a sampled span, with its trace and span id (the specification's
    /// default).
    #[default]
    TraceBased,
    /// Every measurement; the trace and span id when inside a sampled span, none otherwise.
    AlwaysOn,
    /// None: the recording paths do not look at the span context at all.
    AlwaysOff,
}

impl FromStr for ExemplarFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "trace_based" => Ok(ExemplarFilter::TraceBased),
            "always_on" => Ok(ExemplarFilter::AlwaysOn),
            "always_off" => Ok(ExemplarFilter::AlwaysOff),
            _ => Err("expected one of: trace_based, always_on, always_off".into()),
        }
    }
}

impl TryFrom<String> for ExemplarFilter {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
