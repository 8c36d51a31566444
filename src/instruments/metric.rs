//! [`Metric`], a defined metric recorded without a name lookup, and [`TimerGuard`], which records
//! the time until it is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use super::by_name::{THREAD, record_by_name};
use super::definition::{InstrumentKind, MetricDefinition};
use super::entry::{Entry, Op};
use super::record_error::RecordError;

/// A defined metric: its definition, and recording without a name lookup.
///
/// ```
/// use genscope::instruments::MetricDefinition;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let jobs = telemetry.metrics().create_metric(MetricDefinition::counter("app.jobs"))?;
/// jobs.record(1.0, &[])?;
/// assert_eq!(jobs.definition().name(), "app.jobs");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Metric {
    pub(super) entry: Arc<Entry>,
}

impl std::fmt::Debug for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metric")
            .field("definition", &self.entry.definition)
            .field("generation", &self.entry.generation)
            .finish()
    }
}

impl Metric {
    /// The definition.
    pub fn definition(&self) -> &MetricDefinition {
        &self.entry.definition
    }

    /// The stream generation (0 until the name is reset or deleted and defined again).
    pub fn generation(&self) -> u64 {
        self.entry.generation
    }

    /// Records with the metric's own kind: add for counters and up-down counters, set for
    /// gauges, record for histogram kinds.
    pub fn record(&self, value: f64, attributes: &[KeyValue]) -> Result<(), RecordError> {
        let op = match self.entry.definition.kind {
            InstrumentKind::Counter => Op::Add,
            InstrumentKind::UpDownCounter => Op::AddUpDown,
            InstrumentKind::Gauge => Op::Set,
            _ => Op::Record,
        };
        let entry = &self.entry;
        let cached = THREAD
            .try_with(|cell| {
                let mut state = cell.try_borrow_mut().ok()?;
                Some(record_by_name(
                    entry,
                    op,
                    value,
                    attributes,
                    Some(&mut state.cache),
                ))
            })
            .ok()
            .flatten();
        cached
            .unwrap_or_else(|| record_by_name(entry, op, value, attributes, None))
            .map_err(|e| entry.counts.reject(*e))
    }
}

/// Records the time from its creation into a timer when dropped (the seeds' `TimerContext`).
#[must_use = "the timer records when dropped; dropping it at once records ~0 s"]
pub struct TimerGuard {
    pub(super) metric: Option<Metric>,
    pub(super) attributes: Vec<KeyValue>,
    pub(super) start: Instant,
}

impl std::fmt::Debug for TimerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerGuard")
            .field("elapsed", &self.start.elapsed())
            .finish()
    }
}

impl TimerGuard {
    /// Time since the guard was created.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records now and returns the duration recorded.
    pub fn stop(mut self) -> Duration {
        let elapsed = self.start.elapsed();
        if let Some(m) = self.metric.take() {
            let _ = m.record(elapsed.as_secs_f64(), &self.attributes);
        }
        elapsed
    }

    /// Drops the guard without recording.
    pub fn cancel(mut self) {
        self.metric = None;
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if let Some(m) = self.metric.take() {
            let _ = m.record(self.start.elapsed().as_secs_f64(), &self.attributes);
        }
    }
}
