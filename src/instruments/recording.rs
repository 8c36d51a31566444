//! Recording by name on [`MetricsCollector`]: counters, up-down counters, gauges, histograms,
//! timers and rates (each defined on first use), timer guards, and binding handles.
//!
//! Hot path: `with_entry` resolves the name in this thread's registry snapshot with a plain
//! atomic load and one hash lookup, then [`record_by_name`] records through this thread's cached
//! SDK bound handle ([`super::handle_cache`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;

use super::bound::{BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter};
use super::by_name::{THREAD, record_by_name};
use super::collector::MetricsCollector;
use super::definition::MetricDefinition;
use super::entry::{Checked, Entry, Instrument, Op};
use super::handle_cache::Cache;
use super::metric::{Metric, TimerGuard};
use super::record_error::RecordError;

impl MetricsCollector {
    /// Resolves `name`, defining it with the op's kind defaults (or the catalog's definition for
    /// a semantic-convention name) when unknown. `f` also gets this thread's handle cache when
    /// it is free (not on a re-entered call).
    #[inline]
    fn with_entry<R>(
        &self,
        name: &str,
        op: Op,
        f: impl Fn(&Arc<Entry>, Option<&mut Cache>) -> Checked<R>,
    ) -> Result<R, RecordError> {
        let f_ref = &f;
        // Hot path: one thread-local borrow, a plain atomic load (the snapshot's version) and one
        // hash lookup; no reference count is touched.
        let version = self.shared.version.load(Ordering::Acquire);
        let id = self.shared.id;
        let found = THREAD
            .try_with(|cell| {
                let mut guard = cell.try_borrow_mut().ok()?;
                let state = &mut *guard;
                if !matches!(&state.snapshot, Some((i, v, _)) if *i == id && *v == version) {
                    state.snapshot = Some((id, version, self.shared.registry.load_full()));
                }
                let (_, _, registry) = state.snapshot.as_ref()?;
                let entry = registry.get(name)?;
                Some(f_ref(entry, Some(&mut state.cache)))
            })
            .ok()
            .flatten();
        let result = match found {
            Some(result) => result,
            None => match self.shared.registry.load().get(name) {
                Some(entry) => f_ref(entry, None),
                None => self
                    .define_on_first_use(name, op)
                    .map_err(Box::new)
                    .and_then(|m| f_ref(&m.entry, None)),
            },
        };
        match result {
            Ok(r) => Ok(r),
            Err(e) => Err(self.shared.counts.reject(*e)),
        }
    }

    #[cold]
    fn define_on_first_use(&self, name: &str, op: Op) -> Result<Metric, RecordError> {
        let definition = (self.shared.semconv)(name)
            .unwrap_or_else(|| MetricDefinition::new(name.to_string(), op.defines()));
        Ok(self.define(definition, None)?)
    }

    /// Adds to a counter (defined on first use). Negative, NaN and infinite values are refused.
    ///
    /// Hot path: a repeated attribute set records through this thread's cached SDK bound handle,
    /// about half the raw SDK `Counter::add` with the same attributes; ever-new sets cost about
    /// the raw call (BENCHMARKS.md).
    pub fn increment_counter(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Add, |e, cache| {
            record_by_name(e, Op::Add, value, attributes, cache)
        })
    }

    /// Adds a (possibly negative) delta to an up-down counter (queue sizes, in-flight work).
    pub fn add_up_down(
        &self,
        name: &str,
        delta: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::AddUpDown, |e, cache| {
            record_by_name(e, Op::AddUpDown, delta, attributes, cache)
        })
    }

    /// Sets a gauge.
    pub fn set_gauge(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Set, |e, cache| {
            record_by_name(e, Op::Set, value, attributes, cache)
        })
    }

    /// Records into a histogram (or a timer or rate).
    pub fn record_histogram(
        &self,
        name: &str,
        value: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Record, |e, cache| {
            record_by_name(e, Op::Record, value, attributes, cache)
        })
    }

    /// Records a duration into a timer (seconds).
    pub fn record_timer(
        &self,
        name: &str,
        duration: Duration,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Timer, |e, cache| {
            record_by_name(e, Op::Timer, duration.as_secs_f64(), attributes, cache)
        })
    }

    /// Records an observed per-second rate (tokens/s, steps/s) into a rate metric.
    pub fn record_rate(
        &self,
        name: &str,
        rate: f64,
        attributes: &[KeyValue],
    ) -> Result<(), RecordError> {
        self.with_entry(name, Op::Rate, |e, cache| {
            record_by_name(e, Op::Rate, rate, attributes, cache)
        })
    }

    /// A guard that records the time until it is dropped (or [`TimerGuard::stop`]ped) into the
    /// timer `name` (the seeds' `TimerContext`). Works across `.await`.
    pub fn timer(&self, name: &str, attributes: &[KeyValue]) -> Result<TimerGuard, RecordError> {
        Ok(TimerGuard {
            metric: Some(self.bind_entry(name, Op::Timer, attributes)?),
            attributes: attributes.to_vec(),
            start: Instant::now(),
        })
    }

    /// Runs `f` and records its duration into the timer `name` (the seeds' `timed_function`).
    /// `f` always runs: if the timer cannot be used (invalid name, another kind), the error is
    /// counted in `genscope.metric.rejected` and logged once, and the result is still returned.
    pub fn time<R>(&self, name: &str, attributes: &[KeyValue], f: impl FnOnce() -> R) -> R {
        match self.timer(name, attributes) {
            Ok(_guard) => f(),
            Err(e) => {
                if !self
                    .shared
                    .counts
                    .time_error_logged
                    .swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(target: "genscope", error = %e, "MetricsCollector::time could not record");
                }
                f()
            }
        }
    }

    /// Resolves (or defines) `name` for `op` and checks `attributes` once, for handles and timers.
    fn bind_entry(
        &self,
        name: &str,
        op: Op,
        attributes: &[KeyValue],
    ) -> Result<Metric, RecordError> {
        self.with_entry(name, op, |entry, _| {
            entry.check(op, attributes)?;
            Ok(Metric {
                entry: Arc::clone(entry),
            })
        })
    }

    /// A counter bound to `attributes`: [`BoundCounter::add`] does no lookup at all.
    pub fn bind_counter(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundCounter, RecordError> {
        let m = self.bind_entry(name, Op::Add, attributes)?;
        match &m.entry.instrument {
            Instrument::Counter(c) => Ok(BoundCounter::new(
                c.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// An up-down counter bound to `attributes`.
    pub fn bind_up_down_counter(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundUpDownCounter, RecordError> {
        let m = self.bind_entry(name, Op::AddUpDown, attributes)?;
        match &m.entry.instrument {
            Instrument::UpDownCounter(c) => Ok(BoundUpDownCounter::new(
                c.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// A histogram (or timer or rate) bound to `attributes`: [`BoundHistogram::record`] does no
    /// lookup at all.
    pub fn bind_histogram(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundHistogram, RecordError> {
        let m = self.bind_entry(name, Op::Record, attributes)?;
        match &m.entry.instrument {
            Instrument::Histogram(h) => Ok(BoundHistogram::new(
                h.bind(attributes),
                Arc::clone(&m.entry),
                &self.shared.folds,
                m.entry
                    .exemplars
                    .as_ref()
                    .and_then(|e| e.series(attributes)),
            )),
            _ => unreachable_kind(&m),
        }
    }

    /// A gauge bound to `attributes`.
    pub fn bind_gauge(
        &self,
        name: &str,
        attributes: &[KeyValue],
    ) -> Result<BoundGauge, RecordError> {
        let m = self.bind_entry(name, Op::Set, attributes)?;
        match &m.entry.instrument {
            Instrument::Gauge(g) => Ok(BoundGauge::new(g.bind(attributes), Arc::clone(&m.entry))),
            _ => unreachable_kind(&m),
        }
    }
}

#[cold]
fn unreachable_kind<T>(m: &Metric) -> Result<T, RecordError> {
    // `bind_entry` checked the kind; an observed metric is the only other shape.
    Err(RecordError::Observed {
        metric: m.entry.definition.name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::by_name::THREAD;
    use super::*;

    fn cached_here() -> usize {
        THREAD.with(|t| t.borrow().cache.cached())
    }

    #[test]
    fn repeated_sets_are_cached_and_one_offs_are_not() {
        // A thread of its own: the cache is per thread.
        std::thread::spawn(|| {
            let telemetry = crate::Genscope::builder()
                .ignore_environment()
                .console_logs(false)
                .build()
                .unwrap();
            let m = telemetry.metrics();
            m.create_metric(MetricDefinition::counter("app.hits"))
                .unwrap();
            let attrs = [KeyValue::new("model", "a")];
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(cached_here(), 0, "the first call only marks the slot");
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(
                cached_here(),
                1,
                "the second call in a row binds and caches"
            );
            m.increment_counter("app.hits", 1.0, &attrs).unwrap();
            assert_eq!(cached_here(), 1);
            for i in 0..200 {
                let one_off = [KeyValue::new("model", format!("x{i}"))];
                m.increment_counter("app.misses", 1.0, &one_off).unwrap();
            }
            assert_eq!(cached_here(), 1, "one-off sets never bind");
            assert!(
                THREAD.with(|t| t.borrow().cache.bypassing()),
                "after a run of misses the cache steps aside"
            );
            telemetry.force_flush().unwrap();
            let window = crate::analyzer::Window::all();
            assert_eq!(
                telemetry
                    .analyzer()
                    .sum("app.hits", &[("model", "a")], window),
                Some(3.0)
            );
            let misses: f64 = (0..200)
                .filter_map(|i| {
                    let v = format!("x{i}");
                    telemetry
                        .analyzer()
                        .sum("app.misses", &[("model", v.as_str())], window)
                })
                .sum();
            assert_eq!(misses, 200.0);
        })
        .join()
        .unwrap();
    }
}
