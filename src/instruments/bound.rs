//! Bound handles: a metric and an attribute set resolved once, recorded with no lookup.
//!
//! * [`BoundCounter`] and [`BoundUpDownCounter`] add into **per-thread cells**: the recording
//!   thread does a plain load and store on a cache line only it writes (no atomic
//!   read-modify-write, no lock; about 4.2 ns here against 7.4 ns for the SDK's own bound counter,
//!   see BENCHMARKS.md). The cells are folded into the SDK's bound counter at the start of every
//!   collection and when the last copy of the handle is dropped, so every export holds everything
//!   recorded before it: the SDK calls collection callbacks before it reads any aggregator, and
//!   the fold runs in one (`genscope.metric.rejected`'s).
//! * [`BoundHistogram`] records into per-thread bucket cells (`histogram_cells.rs`), replayed
//!   into the SDK's bound histogram at the same moments: every bucket count, the count and
//!   min/max exact, the sum up to rounding.
//! * [`BoundGauge`] calls the SDK's bound gauge directly: a gauge keeps the last value, so there
//!   is nothing to fold.
//!
//! Per-thread storage is the `thread_local` crate's `ThreadLocal` (already in the tree through
//! `tracing-subscriber`): one slot per live thread, slots of exited threads are reused by new
//! threads and never dropped before the handle, so nothing recorded is lost when a thread ends.
//! A hand-written fixed stripe array would need a fallback with atomic adds for threads beyond
//! its size. Memory: 256 bytes per thread that ever recorded on the handle, allocated in
//! power-of-two buckets by thread index (thread indices are reused lowest-first), freed with the
//! handle.

use std::sync::{Arc, Weak};

use super::counter_cells::Sum;
use super::entry::Entry;
use super::exemplars::SeriesExemplars;
use super::folds::{Fold, Folds};
use super::histogram_cells::{Distribution, SDK_DEFAULT_BOUNDARIES};
use super::record_error::RecordError;
use crate::config::ExemplarFilter;

macro_rules! summed {
    ($(#[$doc:meta])* $name:ident, $sdk:ty, $non_negative:expr, $example:literal) => {
        $(#[$doc])*
        ///
        /// Cheap to clone and share across threads; each thread records into its own cell.
        ///
        /// ```
        #[doc = $example]
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Clone)]
        pub struct $name {
            sum: Arc<Sum<$sdk>>,
            entry: Arc<Entry>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("metric", &self.entry.definition.name)
                    .finish()
            }
        }

        impl $name {
            pub(super) fn new(sdk: $sdk, entry: Arc<Entry>, folds: &Folds) -> Self {
                let sum = Arc::new(Sum::new(sdk));
                let weak: Weak<dyn Fold> = Arc::downgrade(&(Arc::clone(&sum) as Arc<dyn Fold>));
                folds.register(weak);
                $name { sum, entry }
            }

            /// Hot path: a value check and a per-thread add; no lookup, no lock, no atomic
            /// read-modify-write. NaN, infinities and (for counters) negative values are
            /// refused and counted in `genscope.metric.rejected`.
            #[inline]
            pub fn add(&self, value: f64) -> Result<(), RecordError> {
                if value.is_finite() && !($non_negative && value < 0.0) {
                    self.sum.add(value);
                    Ok(())
                } else {
                    Err(self.entry.refuse(value, $non_negative))
                }
            }
        }
    };
}

summed!(
    /// A counter with its attributes resolved once ([`MetricsCollector::bind_counter`](super::MetricsCollector::bind_counter)).
    BoundCounter,
    opentelemetry::metrics::BoundCounter<f64>,
    true,
    "let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
let served = telemetry.metrics().bind_counter(\"app.images.served\", &[])?;
served.add(2.0)?;
assert!(served.add(-1.0).is_err());
telemetry.force_flush()?;
assert_eq!(telemetry.analyzer().sum(\"app.images.served\", &[], genscope::analyzer::Window::all()), Some(2.0));"
);

summed!(
    /// An up-down counter with its attributes resolved once
    /// ([`MetricsCollector::bind_up_down_counter`](super::MetricsCollector::bind_up_down_counter)).
    BoundUpDownCounter,
    opentelemetry::metrics::BoundUpDownCounter<f64>,
    false,
    "let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
let queue = telemetry.metrics().bind_up_down_counter(\"app.queue.size\", &[])?;
queue.add(3.0)?;
queue.add(-1.0)?;
telemetry.force_flush()?;
assert_eq!(telemetry.analyzer().sum(\"app.queue.size\", &[], genscope::analyzer::Window::all()), Some(2.0));"
);

/// A gauge with its attributes resolved once
/// ([`MetricsCollector::bind_gauge`](super::MetricsCollector::bind_gauge)).
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let depth = telemetry.metrics().bind_gauge("app.batch.depth", &[])?;
/// depth.record(4.0)?;
/// assert!(depth.record(f64::NAN).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BoundGauge {
    inner: opentelemetry::metrics::BoundGauge<f64>,
    entry: Arc<Entry>,
}

impl std::fmt::Debug for BoundGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundGauge")
            .field("metric", &self.entry.definition.name)
            .finish()
    }
}

impl BoundGauge {
    pub(super) fn new(inner: opentelemetry::metrics::BoundGauge<f64>, entry: Arc<Entry>) -> Self {
        BoundGauge { inner, entry }
    }

    /// Hot path: a finiteness check and the SDK's bound record.
    #[inline]
    pub fn record(&self, value: f64) -> Result<(), RecordError> {
        if value.is_finite() {
            self.inner.record(value);
            Ok(())
        } else {
            Err(self.entry.refuse(value, false))
        }
    }
}

/// A histogram, timer or rate with its attributes resolved once
/// ([`MetricsCollector::bind_histogram`](super::MetricsCollector::bind_histogram)).
///
/// ```
/// use genscope::instruments::MetricDefinition;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// telemetry.metrics().create_metric(MetricDefinition::timer("app.step.duration"))?;
/// let steps = telemetry.metrics().bind_histogram("app.step.duration", &[])?;
/// steps.record(0.25)?;
/// assert!(steps.record(-0.25).is_err()); // a timer never goes back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BoundHistogram {
    cells: Arc<Distribution<opentelemetry::metrics::BoundHistogram<f64>>>,
    /// A timer's (copied from the entry: one load less per record).
    non_negative: bool,
    entry: Arc<Entry>,
    /// This series' exemplars, with the filter (`None` with `always_off`).
    exemplars: Option<(ExemplarFilter, Arc<SeriesExemplars>)>,
}

impl std::fmt::Debug for BoundHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundHistogram")
            .field("metric", &self.entry.definition.name)
            .finish()
    }
}

impl BoundHistogram {
    pub(super) fn new(
        sdk: opentelemetry::metrics::BoundHistogram<f64>,
        entry: Arc<Entry>,
        folds: &Arc<Folds>,
        exemplars: Option<Arc<SeriesExemplars>>,
    ) -> Self {
        let filter = entry
            .exemplars
            .as_ref()
            .map_or(ExemplarFilter::AlwaysOff, |e| e.filter());
        let bounds = entry
            .definition
            .buckets()
            .unwrap_or(&SDK_DEFAULT_BOUNDARIES);
        let cells = Arc::new(Distribution::new(bounds, sdk));
        folds.register(Arc::downgrade(&(Arc::clone(&cells) as Arc<dyn Fold>)));
        folds.fold_in_background();
        BoundHistogram {
            cells,
            non_negative: entry.non_negative(),
            entry,
            exemplars: exemplars.map(|e| (filter, e)),
        }
    }

    /// Hot path: a value check, the bucket search and a per-thread add; no lookup, no lock, no
    /// atomic read-modify-write (inside a sampled span, the exemplar too: `exemplars.rs`). The values reach the SDK at the next collection
    /// (`histogram_cells.rs` says exactly what it receives).
    #[inline]
    pub fn record(&self, value: f64) -> Result<(), RecordError> {
        if value.is_finite() && !(self.non_negative && value < 0.0) {
            self.cells.record(value);
            if let Some((filter, exemplars)) = &self.exemplars {
                exemplars.offer(*filter, value);
            }
            Ok(())
        } else {
            Err(self.entry.refuse(value, self.non_negative))
        }
    }
}
