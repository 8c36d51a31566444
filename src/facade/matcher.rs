//! Histogram buckets by metric name, as `metrics-exporter-prometheus` sets them: `Full`, `Prefix`
//! and `Suffix` matchers, the first rule that matches wins.

use crate::instruments::DefinitionError;

/// Which metric names a bucket rule applies to (the same three kinds as
/// `metrics_exporter_prometheus::Matcher`; TGI and TEI use `Suffix("duration")`).
///
/// ```
/// use genscope::facade::Matcher;
/// assert!(Matcher::Suffix("duration".into()).matches("tgi_request_duration"));
/// assert!(Matcher::Prefix("tgi_".into()).matches("tgi_queue_size"));
/// assert!(!Matcher::Full("tgi_request".into()).matches("tgi_request_duration"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The whole name.
    Full(String),
    /// Names starting with it.
    Prefix(String),
    /// Names ending with it.
    Suffix(String),
}

impl Matcher {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Full(s) => name == s,
            Matcher::Prefix(s) => name.starts_with(s.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
        }
    }
}

/// Bucket boundaries for facade histograms no rule matches: the Prometheus client libraries'
/// default, 5 ms to 10 s, for latencies in seconds (the unit the `metrics` ecosystem records
/// durations in). The OpenTelemetry SDK's default (0 to 10 000) is millisecond-scale and would
/// put every latency in seconds into its first bucket.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Ordered bucket rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct BucketRules {
    rules: Vec<(Matcher, Vec<f64>)>,
}

impl BucketRules {
    /// Adds a rule; the boundaries must be finite and strictly increasing, and at least one.
    pub(crate) fn add(&mut self, matcher: Matcher, buckets: &[f64]) -> Result<(), DefinitionError> {
        let valid = !buckets.is_empty()
            && buckets.iter().all(|b| b.is_finite())
            && buckets.windows(2).all(|w| w[0] < w[1]);
        if !valid {
            return Err(DefinitionError::InvalidBuckets {
                name: format!("{matcher:?}"),
                reason: "bucket boundaries must be finite, strictly increasing, and at least one"
                    .into(),
            });
        }
        self.rules.push((matcher, buckets.to_vec()));
        Ok(())
    }

    /// The boundaries for `name`: the first matching rule's, else [`DEFAULT_BUCKETS`].
    pub(crate) fn for_name(&self, name: &str) -> &[f64] {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(name))
            .map_or(DEFAULT_BUCKETS, |(_, b)| b.as_slice())
    }
}
