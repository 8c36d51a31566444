//! Per-thread cells behind [`BoundCounter`](super::BoundCounter) and
//! [`BoundUpDownCounter`](super::BoundUpDownCounter): the recording thread does a plain load and
//! store on a cache line only it writes; [`Sum::fold`] moves every thread's additions into the
//! SDK's bound counter. Memory: 256 bytes per thread that ever recorded, freed with the handle.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use thread_local::ThreadLocal;

use super::folds::Fold;

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
    pub(super) fn add(&self, value: f64) {
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

impl<S: SdkAdd> Fold for Sum<S> {
    fn fold(&self) {
        Sum::fold(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use super::super::folds::Folds;

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
