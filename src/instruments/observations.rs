//! [`Observations`], what an `add_collector` callback reports through: values are checked and
//! refusals counted like direct recordings.

use opentelemetry::KeyValue;
use opentelemetry::metrics::AsyncInstrument;

use super::record_error::{Counts, RecordError};

/// What an `add_collector` callback reports through.
pub struct Observations<'a> {
    pub(super) inner: &'a dyn AsyncInstrument<f64>,
    pub(super) metric: &'a str,
    pub(super) non_negative: bool,
    pub(super) counts: &'a Counts,
}

impl Observations<'_> {
    /// Reports one value. NaN, infinities and (for counters) negative totals are refused and
    /// counted in `genscope.metric.rejected`.
    pub fn observe(&mut self, value: f64, attributes: &[KeyValue]) {
        if !value.is_finite() || (self.non_negative && value < 0.0) {
            let _ = self.counts.reject(RecordError::InvalidValue {
                metric: self.metric.to_string(),
                value,
                reason: if value.is_finite() {
                    "negative; counters only go up"
                } else {
                    "not a finite number"
                },
            });
            return;
        }
        self.inner.observe(value, attributes);
    }
}
