//! [`RecordError`], why a recording was refused, and the per-collector refusal counts behind
//! `genscope.metric.rejected` and `genscope.metric.collector.panics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::definition::{DefinitionError, InstrumentKind};

/// Why a recording was refused. It was counted in `genscope.metric.rejected` (by `error.type`)
/// and nothing was recorded.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let err = telemetry.metrics().increment_counter("app.requests", -1.0, &[]).unwrap_err();
/// assert!(err.to_string().contains("negative"), "{err}");
/// assert_eq!(telemetry.metrics().rejected(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A value the instrument cannot take (NaN, infinite, or negative for a counter or timer).
    #[error("metric {metric:?} refused value {value}: {reason}")]
    InvalidValue {
        /// The metric.
        metric: String,
        /// The value.
        value: f64,
        /// Why.
        reason: &'static str,
    },
    /// The metric exists with another kind.
    #[error("metric {metric:?} is a {defined}; it cannot be recorded as a {used}")]
    KindMismatch {
        /// The metric.
        metric: String,
        /// Its defined kind.
        defined: InstrumentKind,
        /// The kind the call implies.
        used: InstrumentKind,
    },
    /// An attribute key outside the definition's expected keys.
    #[error("metric {metric:?} does not take attribute {key:?}; its definition allows {expected}")]
    UnexpectedAttribute {
        /// The metric.
        metric: String,
        /// The key.
        key: String,
        /// The allowed keys.
        expected: String,
    },
    /// An empty attribute key.
    #[error("metric {metric:?} got an attribute with an empty key")]
    EmptyAttributeKey {
        /// The metric.
        metric: String,
    },
    /// No metric of that name is defined (reset, delete, get).
    #[error("no metric named {metric:?} is defined")]
    UnknownMetric {
        /// The name.
        metric: String,
    },
    /// The metric is observed by an `add_collector` callback and takes no direct recordings.
    #[error(
        "metric {metric:?} is observed by a collector callback; it cannot be recorded directly"
    )]
    Observed {
        /// The metric.
        metric: String,
    },
    /// Recording by name would have defined the metric, and the definition is invalid.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
}

impl RecordError {
    pub(super) fn error_type(&self) -> usize {
        match self {
            RecordError::InvalidValue { reason, .. } if reason.starts_with("negative") => 0,
            RecordError::InvalidValue { .. } => 1,
            RecordError::KindMismatch { .. } | RecordError::Observed { .. } => 2,
            RecordError::UnexpectedAttribute { .. } | RecordError::EmptyAttributeKey { .. } => 3,
            RecordError::UnknownMetric { .. } => 4,
            RecordError::Definition(_) => 5,
        }
    }
}

pub(super) const REJECTION_TYPES: [&str; 6] = [
    "negative_value",
    "not_finite",
    "kind_mismatch",
    "invalid_attribute",
    "unknown_metric",
    "invalid_definition",
];

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) rejected: [AtomicU64; 6],
    pub(super) collector_panics: AtomicU64,
    pub(super) collector_panic_logged: AtomicBool,
    pub(super) time_error_logged: AtomicBool,
}

impl Counts {
    #[cold]
    pub(super) fn reject(&self, e: RecordError) -> RecordError {
        self.rejected[e.error_type()].fetch_add(1, Ordering::Relaxed);
        e
    }
}
