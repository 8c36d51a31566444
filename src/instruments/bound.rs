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

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use thread_local::ThreadLocal;

use super::collector::{Entry, RecordError};
use super::histogram_cells::{Distribution, SDK_DEFAULT_BOUNDARIES};

/// One thread's share of a bound counter. Only the owning thread writes `int` and `float`; only
/// the flush (under the handle's lock) writes the `flushed_*` marks. Aligned to two cache lines
/// so that neighbouring threads never share one.
#[derive(Default)]
#[repr(align(128))]
struct Cell {
    /// Whole-number adds, as wrapping `i64` bits (up-down counters go negative).
    int: AtomicU64,
    /// Fractional adds, as `f64` bits.
    float: AtomicU64,
    flushed_int: AtomicU64,
    flushed_float: AtomicU64,
}

/// The SDK side a [`Sum`] folds into.
pub(super) trait SdkAdd: Send + Sync + 'static {
    fn sdk_add(&self, delta: f64);
}

impl SdkAdd for opentelemetry::metrics::BoundCounter<f64> {
    fn sdk_add(&self, delta: f64) {
        self.add(delta);
    }
}

impl SdkAdd for opentelemetry::metrics::BoundUpDownCounter<f64> {
    fn sdk_add(&self, delta: f64) {
        self.add(delta);
    }
}

/// Largest magnitude added through the integer cell: every whole `f64` up to it is exact.
const MAX_EXACT_INT: i64 = 1 << 53;

/// A sum kept in per-thread cells and folded into an SDK bound counter.
pub(super) struct Sum<S: SdkAdd> {
    cells: ThreadLocal<Cell>,
    fold: Mutex<()>,
    sdk: S,
}

impl<S: SdkAdd> Sum<S> {
    pub(super) fn new(sdk: S) -> Self {
        Sum {
            cells: ThreadLocal::new(),
            fold: Mutex::new(()),
            sdk,
        }
    }

    /// Hot path: this thread's cell, one load and one store.
    #[inline]
    fn add(&self, value: f64) {
        let cell = self.cells.get_or(Cell::default);
        let whole = value as i64;
        if whole as f64 == value && (-MAX_EXACT_INT..=MAX_EXACT_INT).contains(&whole) {
            let v = cell.int.load(Relaxed).wrapping_add(whole as u64);
            cell.int.store(v, Relaxed);
        } else {
            let v = f64::from_bits(cell.float.load(Relaxed)) + value;
            cell.float.store(v.to_bits(), Relaxed);
        }
    }

    /// Moves what every thread added since the last fold into the SDK aggregator.
    fn fold(&self) {
        let _guard = self.fold.lock().unwrap_or_else(|p| p.into_inner());
        let mut delta = 0.0;
        for cell in self.cells.iter() {
            let int = cell.int.load(Relaxed);
            let float = f64::from_bits(cell.float.load(Relaxed));
            let int_delta = int.wrapping_sub(cell.flushed_int.load(Relaxed)) as i64;
            let float_delta = float - f64::from_bits(cell.flushed_float.load(Relaxed));
            cell.flushed_int.store(int, Relaxed);
            cell.flushed_float.store(float.to_bits(), Relaxed);
            delta += int_delta as f64 + float_delta;
        }
        if delta != 0.0 {
            self.sdk.sdk_add(delta);
        }
    }
}

impl<S: SdkAdd> Drop for Sum<S> {
    fn drop(&mut self) {
        // The last copy of the handle: nothing can add any more; hand the rest to the SDK.
        self.fold();
    }
}

/// Something folded at every collection.
pub(super) trait Fold: Send + Sync {
    fn fold(&self);
}

impl<S: SdkAdd> Fold for Sum<S> {
    fn fold(&self) {
        Sum::fold(self);
    }
}

/// The live per-thread sums of one collector, folded at the start of every collection (and, once
/// a histogram is bound, every [`BACKGROUND_FOLD`] on a background thread).
#[derive(Default)]
pub(super) struct Folds {
    live: Mutex<Vec<Weak<dyn Fold>>>,
    background: std::sync::OnceLock<()>,
}

/// How often bound histograms are replayed into the SDK between collections, so that a
/// collection only replays what was recorded since (about 15 ns a value, see
/// `histogram_cells.rs`) however long the export interval.
pub(super) const BACKGROUND_FOLD: std::time::Duration = std::time::Duration::from_millis(100);

impl Folds {
    pub(super) fn register(&self, sum: Weak<dyn Fold>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= 64 && live.len().is_power_of_two() {
            live.retain(|w| w.strong_count() > 0);
        }
        live.push(sum);
    }

    /// Starts the background fold thread once; it holds only a weak reference and ends with
    /// the collector. Without a thread (spawn refused), collections still fold everything.
    pub(super) fn fold_in_background(self: &Arc<Self>) {
        self.background.get_or_init(|| {
            let weak = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("genscope-fold".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(BACKGROUND_FOLD);
                        match weak.upgrade() {
                            Some(folds) => folds.fold_all(),
                            None => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(target: "genscope", error = %e, "bound histograms fold at collections only: no fold thread");
            }
        });
    }

    /// Runs on the SDK's collection thread before any aggregator is read.
    pub(super) fn fold_all(&self) {
        let live: Vec<Arc<dyn Fold>> = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|w| w.strong_count() > 0);
            live.iter().filter_map(Weak::upgrade).collect()
        };
        for sum in live {
            sum.fold();
        }
    }
}

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
    ) -> Self {
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
        }
    }

    /// Hot path: a value check, the bucket search and a per-thread add; no lookup, no lock, no
    /// atomic read-modify-write. The values reach the SDK at the next collection
    /// (`histogram_cells.rs` says exactly what it receives).
    #[inline]
    pub fn record(&self, value: f64) -> Result<(), RecordError> {
        if value.is_finite() && !(self.non_negative && value < 0.0) {
            self.cells.record(value);
            Ok(())
        } else {
            Err(self.entry.refuse(value, self.non_negative))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// Records every fold, so the cells can be checked without an SDK.
    #[derive(Default)]
    struct Folded(AtomicU64);

    impl SdkAdd for Arc<Folded> {
        fn sdk_add(&self, delta: f64) {
            let mut cur = self.0.load(Relaxed);
            loop {
                let next = (f64::from_bits(cur) + delta).to_bits();
                match self.0.compare_exchange(cur, next, Relaxed, Relaxed) {
                    Ok(_) => return,
                    Err(c) => cur = c,
                }
            }
        }
    }

    fn total(f: &Folded) -> f64 {
        f64::from_bits(f.0.load(Relaxed))
    }

    #[test]
    fn folds_every_thread_exactly_once() {
        let folded = Arc::new(Folded::default());
        let sum = Arc::new(Sum::new(Arc::clone(&folded)));
        std::thread::scope(|s| {
            for t in 0..8 {
                let sum = &sum;
                s.spawn(move || {
                    for i in 0..10_000 {
                        sum.add(if t % 2 == 0 { 1.0 } else { 0.5 });
                        if i == 5_000 && t == 3 {
                            sum.fold(); // a collection in the middle changes nothing
                        }
                    }
                });
            }
        });
        sum.fold();
        assert_eq!(total(&folded), 4.0 * 10_000.0 + 4.0 * 5_000.0);
        sum.fold();
        assert_eq!(total(&folded), 60_000.0, "a second fold adds nothing");
    }

    #[test]
    fn negative_huge_and_fractional_values_keep_their_sum() {
        let folded = Arc::new(Folded::default());
        let sum = Sum::new(Arc::clone(&folded));
        for v in [1e17, -1e17, 5.0, -7.0, 0.25, -0.0, 9.0e15, -9.0e15, 3.0] {
            sum.add(v);
        }
        sum.fold();
        assert_eq!(total(&folded), 1.25);
        sum.add(1e300);
        sum.fold();
        assert_eq!(total(&folded), 1e300);
    }

    #[test]
    fn dropping_the_last_copy_folds_the_rest() {
        let folded = Arc::new(Folded::default());
        let sum = Arc::new(Sum::new(Arc::clone(&folded)));
        let folds = Folds::default();
        folds.register(Arc::downgrade(&(Arc::clone(&sum) as Arc<dyn Fold>)));
        let other = Arc::clone(&sum);
        std::thread::spawn(move || other.add(2.0)).join().unwrap();
        sum.add(1.0);
        drop(sum);
        assert_eq!(total(&folded), 3.0);
        folds.fold_all(); // the registry only holds a dead weak now
        assert_eq!(total(&folded), 3.0);
        assert!(folds.live.lock().unwrap().is_empty());
    }

    #[test]
    fn cells_of_exited_threads_are_kept() {
        let folded = Arc::new(Folded::default());
        let sum = Arc::new(Sum::new(Arc::clone(&folded)));
        for _ in 0..20 {
            let s = Arc::clone(&sum);
            std::thread::spawn(move || s.add(1.0)).join().unwrap();
        }
        sum.fold();
        assert_eq!(total(&folded), 20.0);
    }
}
