//! Declarative metric definitions and their validation.
//!
//! A [`MetricDefinition`] is checked once, when it is defined, for everything the OTel SDK would
//! otherwise turn silently into a no-op instrument or a broken stream: name syntax, unit syntax,
//! bucket boundaries, and the semantic-convention namespaces only the catalogs may define.

use std::borrow::Cow;
use std::fmt;

use super::ucum;

/// Metric namespaces owned by OpenTelemetry semantic conventions. Names inside them can only be
/// defined exactly as a genscope catalog defines them.
pub const RESERVED_NAMESPACES: &[&str] = &["gen_ai.", "http.", "db.", "system.", "process.", "hw."];

/// Most bucket boundaries a histogram may have: each record costs a search over them, and each
/// series stores one counter per bucket.
pub const MAX_BUCKETS: usize = 200;

/// What a metric measures and which OTel instrument records it.
///
/// ```
/// use genscope::instruments::InstrumentKind;
/// assert_eq!(InstrumentKind::Timer.to_string(), "timer");
/// assert!(InstrumentKind::Timer.is_histogram());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstrumentKind {
    /// A monotonic sum (OTel `Counter`).
    Counter,
    /// A sum that goes up and down (OTel `UpDownCounter`): queue sizes, in-flight requests.
    UpDownCounter,
    /// The last value (OTel `Gauge`).
    Gauge,
    /// A distribution (OTel `Histogram` with explicit buckets).
    Histogram,
    /// Durations in seconds: a histogram with unit `s` and duration buckets; negative values are
    /// rejected.
    Timer,
    /// Observed per-second rates (tokens/s, steps/s): a histogram of rates, so windows keep their
    /// distribution. A rate *of change* of a counter is a query ([`crate::analyzer::Aggregation::Rate`]).
    Rate,
}

impl InstrumentKind {
    /// `true` for the kinds recorded by an OTel histogram.
    pub fn is_histogram(self) -> bool {
        matches!(
            self,
            InstrumentKind::Histogram | InstrumentKind::Timer | InstrumentKind::Rate
        )
    }

    fn default_unit(self) -> &'static str {
        match self {
            InstrumentKind::Timer => "s",
            InstrumentKind::Rate => "1/s",
            _ => "",
        }
    }
}

impl fmt::Display for InstrumentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstrumentKind::Counter => "counter",
            InstrumentKind::UpDownCounter => "up-down counter",
            InstrumentKind::Gauge => "gauge",
            InstrumentKind::Histogram => "histogram",
            InstrumentKind::Timer => "timer",
            InstrumentKind::Rate => "rate",
        })
    }
}

/// Default buckets for [`InstrumentKind::Timer`]: 5 ms to 10 min, for requests and generations.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Default buckets for [`InstrumentKind::Rate`]: 0.1 to 100k per second.
pub const RATE_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 10000.0,
    100000.0,
];

/// Why a definition was refused. Nothing was registered.
///
/// ```
/// use genscope::instruments::{DefinitionError, MetricDefinition};
/// let err = MetricDefinition::counter("9lives").validate().unwrap_err();
/// assert!(matches!(err, DefinitionError::InvalidName { .. }));
/// assert!(err.to_string().contains("must start with a letter"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefinitionError {
    /// The name breaks OTel's instrument name syntax.
    #[error("invalid metric name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The unit is not UCUM or too long.
    #[error("invalid unit {unit:?} for metric {name:?}: the unit {reason}")]
    InvalidUnit {
        /// The metric.
        name: String,
        /// The unit.
        unit: String,
        /// What is wrong.
        reason: String,
    },
    /// Bucket boundaries that are not finite and strictly increasing.
    #[error("invalid bucket boundaries for histogram {name:?}: {reason}")]
    InvalidBuckets {
        /// The metric.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Buckets given for a kind that has none.
    #[error(
        "metric {name:?} is a {kind}; only histograms, timers and rates take bucket boundaries"
    )]
    BucketsOnNonHistogram {
        /// The metric.
        name: String,
        /// Its kind.
        kind: InstrumentKind,
    },
    /// An expected attribute key that is empty or too long.
    #[error("invalid attribute key {key:?} for metric {name:?}: keys are 1 to 255 characters")]
    InvalidAttributeKey {
        /// The metric.
        name: String,
        /// The key.
        key: String,
    },
    /// A semantic-convention namespace the catalogs own.
    #[error(
        "metric name {name:?} is in the semantic-convention namespace {namespace:?}; only the \
         genscope catalogs define names there (use genscope.instruments.catalog, or a name under \
         your own prefix)"
    )]
    ReservedNamespace {
        /// The name.
        name: String,
        /// The reserved prefix it starts with.
        namespace: &'static str,
    },
    /// The name is already defined differently.
    #[error(
        "metric {name:?} is already defined as {existing}; it cannot also be {requested} \
         (delete_metric it first, or pick another name)"
    )]
    Conflict {
        /// The name.
        name: String,
        /// The existing definition, summarized.
        existing: String,
        /// The refused one, summarized.
        requested: String,
    },
}

/// A metric as users declare it: name, kind, unit, description, buckets and expected attributes.
///
/// Built with one constructor per kind and `with_*` methods; [`MetricDefinition::validate`] (also
/// run by [`crate::instruments::MetricsCollector::create_metric`]) checks it.
///
/// ```
/// use genscope::instruments::{InstrumentKind, MetricDefinition};
/// let def = MetricDefinition::histogram("app.image.size")
///     .with_unit("By")
///     .with_description("Size of generated images")
///     .with_buckets([1e5, 1e6, 1e7])
///     .with_attributes(["model"]);
/// def.validate()?;
/// assert_eq!(def.kind(), InstrumentKind::Histogram);
/// # Ok::<(), genscope::instruments::DefinitionError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDefinition {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: InstrumentKind,
    pub(crate) unit: Cow<'static, str>,
    pub(crate) description: Cow<'static, str>,
    pub(crate) buckets: Option<Vec<f64>>,
    pub(crate) attributes: Option<Vec<Cow<'static, str>>>,
}

impl MetricDefinition {
    /// A definition of any kind, with that kind's default unit and buckets.
    pub fn new(name: impl Into<Cow<'static, str>>, kind: InstrumentKind) -> Self {
        MetricDefinition {
            name: name.into(),
            kind,
            unit: Cow::Borrowed(kind.default_unit()),
            description: Cow::Borrowed(""),
            buckets: match kind {
                InstrumentKind::Timer => Some(DURATION_BUCKETS.to_vec()),
                InstrumentKind::Rate => Some(RATE_BUCKETS.to_vec()),
                _ => None,
            },
            attributes: None,
        }
    }
    /// A counter.
    pub fn counter(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::Counter)
    }
    /// An up-down counter.
    pub fn up_down_counter(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::UpDownCounter)
    }
    /// A gauge.
    pub fn gauge(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::Gauge)
    }
    /// A histogram (SDK default buckets unless [`Self::with_buckets`]).
    pub fn histogram(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::Histogram)
    }
    /// A timer: seconds, [`DURATION_BUCKETS`].
    pub fn timer(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::Timer)
    }
    /// A rate: per second, [`RATE_BUCKETS`].
    pub fn rate(name: impl Into<Cow<'static, str>>) -> Self {
        Self::new(name, InstrumentKind::Rate)
    }
    /// The UCUM unit (`s`, `By`, `{request}`, ...).
    pub fn with_unit(mut self, unit: impl Into<Cow<'static, str>>) -> Self {
        self.unit = unit.into();
        self
    }
    /// The description.
    pub fn with_description(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.description = description.into();
        self
    }
    /// Explicit bucket boundaries (histograms, timers, rates).
    pub fn with_buckets(mut self, buckets: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = Some(buckets.into_iter().collect());
        self
    }
    /// The attribute keys recordings may carry. Recording by name with any other key is refused,
    /// so an unexpected high-cardinality attribute cannot slip in. Without this, any key is allowed.
    pub fn with_attributes<K: Into<Cow<'static, str>>>(
        mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        self.attributes = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The kind.
    pub fn kind(&self) -> InstrumentKind {
        self.kind
    }
    /// The unit.
    pub fn unit(&self) -> &str {
        &self.unit
    }
    /// The description.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Bucket boundaries, for histogram kinds with explicit ones.
    pub fn buckets(&self) -> Option<&[f64]> {
        self.buckets.as_deref()
    }
    /// Expected attribute keys, if restricted.
    pub fn attributes(&self) -> Option<&[Cow<'static, str>]> {
        self.attributes.as_deref()
    }

    /// Checks name, unit, buckets and attribute keys. Reserved namespaces are checked by the
    /// collector, which knows the catalogs.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        validate_name(&self.name)?;
        ucum::validate(&self.unit).map_err(|reason| DefinitionError::InvalidUnit {
            name: self.name.to_string(),
            unit: self.unit.to_string(),
            reason,
        })?;
        if let Some(buckets) = &self.buckets {
            if !self.kind.is_histogram() {
                return Err(DefinitionError::BucketsOnNonHistogram {
                    name: self.name.to_string(),
                    kind: self.kind,
                });
            }
            validate_buckets(&self.name, buckets)?;
        }
        if let Some(keys) = &self.attributes
            && let Some(bad) = keys.iter().find(|k| k.is_empty() || k.len() > 255)
        {
            return Err(DefinitionError::InvalidAttributeKey {
                name: self.name.to_string(),
                key: bad.to_string(),
            });
        }
        Ok(())
    }

    /// The semantic-convention namespace the name is in, if any.
    pub fn reserved_namespace(&self) -> Option<&'static str> {
        RESERVED_NAMESPACES
            .iter()
            .copied()
            .find(|ns| self.name.starts_with(ns))
    }

    /// `true` when both describe the same stream (kind, unit and buckets; description and
    /// attribute lists may differ).
    pub(crate) fn same_stream(&self, other: &MetricDefinition) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.unit == other.unit
            && self.buckets == other.buckets
    }

    pub(crate) fn summary(&self) -> String {
        let mut s = format!("a {} with unit {:?}", self.kind, self.unit);
        if let Some(b) = &self.buckets {
            s.push_str(&format!(" and buckets {b:?}"));
        }
        s
    }
}

/// Checks OTel's instrument name syntax: an ASCII letter, then up to 254 of `A-Za-z0-9_.-/`.
///
/// ```
/// assert!(genscope::instruments::validate_name("gen_ai.client.token.usage").is_ok());
/// assert!(genscope::instruments::validate_name("tokens per second").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<(), DefinitionError> {
    let err = |reason: String| DefinitionError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let Some(first) = name.chars().next() else {
        return Err(err("is empty".into()));
    };
    if !first.is_ascii_alphabetic() {
        return Err(err(format!("must start with a letter, not {first:?}")));
    }
    if name.len() > 255 {
        return Err(err(format!(
            "is {} characters long; the limit is 255",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(err(format!(
            "contains {c:?}; allowed are ASCII letters, digits and _ . - /"
        )));
    }
    Ok(())
}

fn validate_buckets(name: &str, buckets: &[f64]) -> Result<(), DefinitionError> {
    let err = |reason: String| DefinitionError::InvalidBuckets {
        name: name.to_string(),
        reason,
    };
    if buckets.len() > MAX_BUCKETS {
        return Err(err(format!(
            "{} boundaries; at most {MAX_BUCKETS}",
            buckets.len()
        )));
    }
    if let Some(b) = buckets.iter().find(|b| !b.is_finite()) {
        return Err(err(format!("{b} is not finite")));
    }
    if let Some(w) = buckets.windows(2).find(|w| w[0] >= w[1]) {
        return Err(err(format!(
            "{} then {}: boundaries must be strictly increasing",
            w[0], w[1]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name("genscope.generation.queue.size").is_ok());
        assert!(validate_name("x/y-z_1").is_ok());
        assert!(validate_name(&"a".repeat(255)).is_ok());
        for bad in ["", "1a", "_a", "a b", "a{b}", "é", &"a".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets() {
        let ok = MetricDefinition::histogram("h").with_buckets([0.1, 1.0]);
        assert!(ok.validate().is_ok());
        for bad in [
            vec![1.0, 1.0],
            vec![2.0, 1.0],
            vec![f64::NAN],
            vec![f64::INFINITY],
            (0..201).map(f64::from).collect(),
        ] {
            let e = MetricDefinition::histogram("h")
                .with_buckets(bad.clone())
                .validate();
            assert!(
                matches!(e, Err(DefinitionError::InvalidBuckets { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            MetricDefinition::counter("c")
                .with_buckets([1.0])
                .validate(),
            Err(DefinitionError::BucketsOnNonHistogram { .. })
        ));
    }

    #[test]
    fn units_and_keys() {
        assert!(matches!(
            MetricDefinition::counter("c")
                .with_unit("requests")
                .validate(),
            Err(DefinitionError::InvalidUnit { .. })
        ));
        assert!(matches!(
            MetricDefinition::counter("c")
                .with_attributes([""])
                .validate(),
            Err(DefinitionError::InvalidAttributeKey { .. })
        ));
        assert_eq!(
            MetricDefinition::counter("http.x").reserved_namespace(),
            Some("http.")
        );
        assert_eq!(
            MetricDefinition::counter("httpx").reserved_namespace(),
            None
        );
    }
}
