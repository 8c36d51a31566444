//! [`Entry`], one defined metric as the recording paths see it, and the checks every recording
//! passes (kind, attribute keys, value). Shared by the by-name path, the handle cache and the
//! bound handles; it knows none of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, UpDownCounter};

use super::definition::{InstrumentKind, MetricDefinition};
use super::exemplars::HistogramExemplars;
use super::observations::Observations;
use super::record_error::{Counts, RecordError};

/// The OTel instrument behind an entry (an observed metric has only its on/off switch).
#[derive(Clone)]
pub(super) enum Instrument {
    Counter(Counter<f64>),
    UpDownCounter(UpDownCounter<f64>),
    Gauge(Gauge<f64>),
    Histogram(Histogram<f64>),
    Observed(Arc<AtomicBool>),
}

pub(super) type Callback = Arc<dyn Fn(&mut Observations<'_>) + Send + Sync>;

/// One defined metric: its definition, its OTel instrument and where its refusals are counted.
pub(super) struct Entry {
    pub(super) definition: MetricDefinition,
    pub(super) generation: u64,
    pub(super) instrument: Instrument,
    pub(super) callback: Option<Callback>,
    pub(super) counts: Arc<Counts>,
    /// A recorded histogram's exemplars (`None` for other kinds and with `always_off`).
    pub(super) exemplars: Option<Arc<HistogramExemplars>>,
}

/// The collector's name -> entry map, swapped whole on every definition change.
pub(super) type Registry = HashMap<Arc<str>, Arc<Entry>, foldhash::fast::RandomState>;

/// The hot path's result: the error boxed, so that `Ok` is one word and moving it through the
/// registry closures costs nothing (the 80-byte `Result<_, RecordError>` cost ~9 ns per call in
/// stack copies). Unboxed at the public boundary.
pub(super) type Checked<T> = Result<T, Box<RecordError>>;

fn check_value(entry: &Entry, value: f64, non_negative: bool) -> Checked<()> {
    if !value.is_finite() {
        return Err(Box::new(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "not a finite number",
        }));
    }
    if non_negative && value < 0.0 {
        return Err(Box::new(RecordError::InvalidValue {
            metric: entry.definition.name.to_string(),
            value,
            reason: "negative; counters only go up and durations are never negative",
        }));
    }
    Ok(())
}

#[inline]
fn check_attributes(entry: &Entry, attributes: &[KeyValue]) -> Checked<()> {
    for kv in attributes {
        let key = kv.key.as_str();
        if key.is_empty() {
            return Err(Box::new(RecordError::EmptyAttributeKey {
                metric: entry.definition.name.to_string(),
            }));
        }
        if let Some(expected) = &entry.definition.attributes
            && !expected.iter().any(|k| k == key)
        {
            return Err(Box::new(RecordError::UnexpectedAttribute {
                metric: entry.definition.name.to_string(),
                key: key.to_string(),
                expected: format!("{expected:?}"),
            }));
        }
    }
    Ok(())
}

/// How a by-name call records: which kinds it accepts and which it defines.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Op {
    Add,
    AddUpDown,
    Set,
    Record,
    Timer,
    Rate,
}

impl Op {
    pub(super) fn defines(self) -> InstrumentKind {
        match self {
            Op::Add => InstrumentKind::Counter,
            Op::AddUpDown => InstrumentKind::UpDownCounter,
            Op::Set => InstrumentKind::Gauge,
            Op::Record => InstrumentKind::Histogram,
            Op::Timer => InstrumentKind::Timer,
            Op::Rate => InstrumentKind::Rate,
        }
    }

    pub(super) fn accepts(self, kind: InstrumentKind) -> bool {
        match self {
            Op::Record => kind.is_histogram(),
            _ => kind == self.defines(),
        }
    }
}

impl Entry {
    /// Counts and returns the error for a value a bound handle refused.
    #[cold]
    pub(super) fn refuse(&self, value: f64, non_negative: bool) -> RecordError {
        self.counts.reject(
            check_value(self, value, non_negative)
                .err()
                .map(|e| *e)
                .unwrap_or(RecordError::InvalidValue {
                    metric: self.definition.name.to_string(),
                    value,
                    reason: "not a finite number",
                }),
        )
    }

    /// Whether recordings must not be negative (counters only go up; durations are never
    /// negative).
    #[inline]
    pub(super) fn non_negative(&self) -> bool {
        matches!(
            self.definition.kind,
            InstrumentKind::Counter | InstrumentKind::Timer
        )
    }

    /// Whether `op` with `attributes` may record into this entry (kind, observed, keys).
    #[inline]
    pub(super) fn check(&self, op: Op, attributes: &[KeyValue]) -> Checked<()> {
        let kind = self.definition.kind;
        if let Instrument::Observed(_) = self.instrument {
            return Err(Box::new(RecordError::Observed {
                metric: self.definition.name.to_string(),
            }));
        }
        if !op.accepts(kind) {
            return Err(Box::new(RecordError::KindMismatch {
                metric: self.definition.name.to_string(),
                defined: kind,
                used: op.defines(),
            }));
        }
        check_attributes(self, attributes)
    }

    /// Validation and one unbound SDK call.
    #[inline]
    pub(super) fn record(&self, op: Op, value: f64, attributes: &[KeyValue]) -> Checked<()> {
        self.check(op, attributes)?;
        check_value(self, value, self.non_negative())?;
        match &self.instrument {
            Instrument::Counter(c) => c.add(value, attributes),
            Instrument::UpDownCounter(c) => c.add(value, attributes),
            Instrument::Gauge(g) => g.record(value, attributes),
            Instrument::Histogram(h) => h.record(value, attributes),
            Instrument::Observed(_) => {}
        }
        Ok(())
    }
}
