//! Per-thread histogram cells behind [`BoundHistogram`](super::BoundHistogram): a record finds
//! its bucket and adds to this thread's count and sum for it, and the cells are replayed into the
//! SDK's bound histogram every 100 ms on the collector's `genscope-fold` thread, at the start of
//! every collection and when the last handle drops.
//!
//! **Why.** The SDK's histogram aggregator takes a mutex on every record (about 15.4 ns on the
//! reference machine uncontended, and a shared lock between every thread recording on the same
//! series). OTel has no observable histogram and the SDK's data types cannot be built outside it,
//! so whatever genscope aggregates must reach the exporter through `Histogram::record`. The cells
//! move that cost off the recording thread to the collection thread, where nothing contends.
//!
//! **What the SDK receives** per collection, for each bucket with `c` new values of sum `s`: `c`
//! records that all fall in that bucket (`lo < v <= hi`, the SDK's own `partition_point` rule),
//! whose sum is `s` up to floating-point rounding. The window's smallest and largest values are
//! replayed as themselves, and the other values of their buckets as the mean of the rest kept
//! between them. So every bucket count and the total count are exact, the sum is exact up to
//! rounding, and min and max are the recorded ones; under
//! delta temporality too, because min and max are tracked per collection window. A value
//! recorded while a collection is reading the cells is counted in that collection or the next,
//! never twice and never lost; only its part in the window's min and max can be missed.
//!
//! **Sum precision.** Each thread's per-bucket sums are cumulative `f64`s and a collection takes
//! their difference, so a window's sum carries a relative rounding error of about `n * 2^-53`,
//! `n` being the values that thread recorded in that bucket since the handle was bound: 1e-7
//! after a billion. (The SDK's own cumulative sum has the same order of error.)
//!
//! **Cost.** The record is a bucket search, one thread-local lookup and plain stores on a cache
//! line only this thread writes (BENCHMARKS.md). The replay costs one SDK record per value on
//! the collection thread: the same per-value cost as recording directly, once per collection
//! instead of on every caller. Memory: 32 bytes per bucket (plus 128) per thread that recorded
//! on the handle, freed with it.

use std::sync::Mutex;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, fence};

use thread_local::ThreadLocal;

use super::folds::Fold;

/// Bucket boundaries the SDK 0.33 uses for a histogram defined without any
/// (`opentelemetry_sdk::metrics::pipeline`, the explicit-bucket default).
pub(super) const SDK_DEFAULT_BOUNDARIES: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// The SDK side the cells replay into.
pub(super) trait SdkRecord: Send + Sync + 'static {
    fn sdk_record(&self, value: f64);
}

impl SdkRecord for opentelemetry::metrics::BoundHistogram<f64> {
    fn sdk_record(&self, value: f64) {
        self.record(value);
    }
}

/// One bucket of one thread: only the owner writes `count` and `sum`, only the fold writes the
/// `flushed_*` marks.
#[derive(Default)]
struct Slot {
    count: AtomicU64,
    /// `f64` bits.
    sum: AtomicU64,
    flushed_count: AtomicU64,
    flushed_sum: AtomicU64,
}

/// One thread's cells. Aligned so that two threads' headers never share a cache line.
#[repr(align(128))]
struct Cell {
    /// Odd while the owner is writing: a fold reads the cell as one consistent snapshot (a
    /// count never without its sum, an extreme never without its count).
    seq: AtomicU64,
    /// The collection window `min` and `max` belong to.
    window: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    slots: Box<[Slot]>,
}

impl Cell {
    fn new(buckets: usize, window: u64, first: f64) -> Cell {
        Cell {
            seq: AtomicU64::new(0),
            window: AtomicU64::new(window),
            min: AtomicU64::new(first.to_bits()),
            max: AtomicU64::new(first.to_bits()),
            slots: (0..buckets).map(|_| Slot::default()).collect(),
        }
    }
}

/// A distribution kept in per-thread cells and replayed into an SDK histogram.
pub(super) struct Distribution<S: SdkRecord> {
    bounds: Box<[f64]>,
    cells: ThreadLocal<Cell>,
    /// The current collection window; only the fold advances it.
    window: AtomicU64,
    fold: Mutex<()>,
    sdk: S,
}

impl<S: SdkRecord> Distribution<S> {
    /// `bounds`: the histogram's boundaries as the SDK uses them (finite, strictly increasing).
    pub(super) fn new(bounds: &[f64], sdk: S) -> Self {
        Distribution {
            bounds: bounds.into(),
            cells: ThreadLocal::new(),
            window: AtomicU64::new(0),
            fold: Mutex::new(()),
            sdk,
        }
    }

    /// Hot path: `value` is finite (the handle checked it).
    #[inline]
    pub(super) fn record(&self, value: f64) {
        let window = self.window.load(Relaxed);
        let index = self.bounds.partition_point(|&b| b < value);
        let cell = self
            .cells
            .get_or(|| Cell::new(self.bounds.len() + 1, window, value));
        // Single writer: plain stores inside a sequence (the fences are compiler-only on x86).
        let seq = cell.seq.load(Relaxed);
        cell.seq.store(seq + 1, Relaxed);
        fence(Release);
        if let Some(slot) = cell.slots.get(index) {
            slot.count.store(slot.count.load(Relaxed) + 1, Relaxed);
            let sum = f64::from_bits(slot.sum.load(Relaxed)) + value;
            slot.sum.store(sum.to_bits(), Relaxed);
        }
        if cell.window.load(Relaxed) != window {
            cell.min.store(value.to_bits(), Relaxed);
            cell.max.store(value.to_bits(), Relaxed);
            cell.window.store(window, Relaxed);
        } else {
            if value < f64::from_bits(cell.min.load(Relaxed)) {
                cell.min.store(value.to_bits(), Relaxed);
            }
            if value > f64::from_bits(cell.max.load(Relaxed)) {
                cell.max.store(value.to_bits(), Relaxed);
            }
        }
        cell.seq.store(seq + 2, Release);
    }

    /// Replays what every thread recorded since the last fold into the SDK.
    pub(super) fn fold(&self) {
        let _guard = self.fold.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window.fetch_add(1, Relaxed);
        let buckets = self.bounds.len() + 1;
        let mut counts = vec![0u64; buckets];
        let mut sums = vec![0f64; buckets];
        let mut extremes: Option<(f64, f64)> = None;
        let mut snapshot: Vec<(u64, f64)> = Vec::with_capacity(buckets);
        for cell in self.cells.iter() {
            // A consistent snapshot of the cell: retried while its owner is mid-record.
            let (cell_window, lo, hi) = loop {
                let before = cell.seq.load(Acquire);
                if before % 2 == 1 {
                    std::hint::spin_loop();
                    continue;
                }
                snapshot.clear();
                snapshot.extend(cell.slots.iter().map(|slot| {
                    (
                        slot.count.load(Relaxed),
                        f64::from_bits(slot.sum.load(Relaxed)),
                    )
                }));
                let read = (
                    cell.window.load(Relaxed),
                    f64::from_bits(cell.min.load(Relaxed)),
                    f64::from_bits(cell.max.load(Relaxed)),
                );
                fence(Acquire);
                if cell.seq.load(Relaxed) == before {
                    break read;
                }
            };
            for (i, (slot, &(count, sum))) in cell.slots.iter().zip(&snapshot).enumerate() {
                let new = count - slot.flushed_count.load(Relaxed);
                if new == 0 {
                    continue;
                }
                counts[i] += new;
                sums[i] += sum - f64::from_bits(slot.flushed_sum.load(Relaxed));
                slot.flushed_count.store(count, Relaxed);
                slot.flushed_sum.store(sum.to_bits(), Relaxed);
            }
            if cell_window == window {
                extremes = Some(match extremes {
                    Some((a, b)) => (a.min(lo), b.max(hi)),
                    None => (lo, hi),
                });
            }
        }
        for (i, (&count, &sum)) in counts.iter().zip(&sums).enumerate() {
            if count > 0 {
                self.replay_bucket(i, count, sum, extremes);
            }
        }
    }

    /// `count` records in bucket `i` summing to `sum`, the window's extremes among them when
    /// they fall in this bucket.
    fn replay_bucket(&self, i: usize, count: u64, sum: f64, extremes: Option<(f64, f64)>) {
        let lower = i.checked_sub(1).map(|j| self.bounds[j]);
        let upper = self.bounds.get(i).copied();
        let inside = |v: f64| lower.is_none_or(|l| v > l) && upper.is_none_or(|u| v <= u);
        // Replayed as themselves: the window's extremes that fall in this bucket.
        let mut specials: Vec<f64> = Vec::with_capacity(2);
        let (floor, ceiling) = extremes.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        if extremes.is_some() {
            if inside(floor) {
                specials.push(floor);
            }
            if (count as usize) > specials.len() && ceiling != floor && inside(ceiling) {
                specials.push(ceiling);
            }
        }
        let left = count - specials.len() as u64;
        let rest = sum - specials.iter().sum::<f64>();
        // With consistent cells the rest's mean lies between the extremes (and nothing is left
        // over when the extremes are all there is). Extremes read from a record racing this
        // fold may not belong to the counted values: then the bucket replays at its plain
        // mean, so the sum stays right and only those extremes are missed.
        let slack = 1e-9 * (sum.abs() + floor.abs().min(f64::MAX) + ceiling.abs().min(f64::MAX));
        let consistent = if left == 0 {
            rest.abs() <= slack
        } else {
            let mean = rest / left as f64;
            mean >= floor - slack && mean <= ceiling + slack
        };
        let (left, rest) = if consistent {
            for v in &specials {
                self.sdk.sdk_record(*v);
            }
            (left, rest)
        } else {
            (count, sum)
        };
        if left == 0 {
            return;
        }
        // The mean of the rest, kept inside the bucket (only rounding can push it out).
        let mut v = (rest / left as f64).clamp(-f64::MAX, f64::MAX);
        if let Some(u) = upper {
            v = v.min(u);
        }
        if let Some(l) = lower {
            v = v.max(l.next_up());
        }
        for _ in 0..left {
            self.sdk.sdk_record(v);
        }
    }
}

impl<S: SdkRecord> Fold for Distribution<S> {
    fn fold(&self) {
        Distribution::fold(self);
    }
}

impl<S: SdkRecord> Drop for Distribution<S> {
    fn drop(&mut self) {
        // The last copy of the handle: nothing can record any more; hand the rest to the SDK.
        self.fold();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Keeps every replayed value, so the replay can be checked without an SDK.
    #[derive(Default)]
    struct Replayed(Mutex<Vec<f64>>);

    impl SdkRecord for Arc<Replayed> {
        fn sdk_record(&self, value: f64) {
            self.0.lock().unwrap().push(value);
        }
    }

    /// What the SDK's aggregator would hold for these values.
    #[derive(Debug, PartialEq)]
    struct Summary {
        counts: Vec<u64>,
        count: u64,
        min: f64,
        max: f64,
    }

    fn summarize(bounds: &[f64], values: &[f64]) -> (Summary, f64) {
        let mut counts = vec![0; bounds.len() + 1];
        for v in values {
            counts[bounds.partition_point(|&b| b < *v)] += 1;
        }
        let s = Summary {
            counts,
            count: values.len() as u64,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        };
        (s, values.iter().sum())
    }

    fn take(r: &Replayed) -> Vec<f64> {
        std::mem::take(&mut *r.0.lock().unwrap())
    }

    fn check(bounds: &[f64], recorded: &[f64], replayed: &[f64]) {
        let (want, want_sum) = summarize(bounds, recorded);
        let (got, got_sum) = summarize(bounds, replayed);
        assert_eq!(got, want, "bucket counts, count, min, max");
        assert!(
            (got_sum - want_sum).abs() <= want_sum.abs() * 1e-12 + 1e-9,
            "sum {got_sum} vs {want_sum}"
        );
    }

    /// A deterministic spread of values over and beyond the buckets, boundaries included.
    fn values(seed: u64, n: usize, bounds: &[f64]) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 5 {
                    0 => bounds[(x >> 8) as usize % bounds.len()], // exactly on a boundary
                    1 => -(((x >> 12) % 1000) as f64) / 7.0,       // below the first
                    _ => ((x >> 12) % 1_000_000) as f64 / 97.0,    // spread, some above the last
                }
            })
            .collect()
    }

    #[test]
    fn the_sdk_gets_the_same_buckets_count_sum_min_and_max_from_many_threads() {
        let bounds = [0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 1000.0, 5000.0];
        let replayed = Arc::new(Replayed::default());
        let d = Arc::new(Distribution::new(&bounds, Arc::clone(&replayed)));
        for round in 0..3u64 {
            let mut this_window = Vec::new();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..6u64)
                    .map(|t| {
                        let d = &d;
                        let bounds = &bounds;
                        s.spawn(move || {
                            let v = values(round * 100 + t, 5_000, bounds);
                            for x in &v {
                                d.record(*x);
                            }
                            v
                        })
                    })
                    .collect();
                for h in handles {
                    this_window.extend(h.join().unwrap());
                }
            });
            d.fold();
            // Each collection replays exactly the values recorded since the last one.
            let got = take(&replayed);
            check(&bounds, &this_window, &got);
        }
        d.fold();
        assert!(take(&replayed).is_empty(), "an idle fold replays nothing");
    }

    #[test]
    fn a_fold_in_the_middle_loses_and_repeats_nothing() {
        let bounds = SDK_DEFAULT_BOUNDARIES;
        let replayed = Arc::new(Replayed::default());
        let d = Arc::new(Distribution::new(&bounds, Arc::clone(&replayed)));
        let recorded: Vec<f64> = std::thread::scope(|s| {
            let writers: Vec<_> = (0..4u64)
                .map(|t| {
                    let d = &d;
                    s.spawn(move || {
                        let v = values(t + 7, 20_000, &SDK_DEFAULT_BOUNDARIES);
                        for x in &v {
                            d.record(*x);
                        }
                        v
                    })
                })
                .collect();
            for _ in 0..50 {
                d.fold(); // collections while the writers run
                std::thread::yield_now();
            }
            writers
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        d.fold();
        let got = take(&replayed);
        let (want, want_sum) = summarize(&bounds, &recorded);
        let (have, have_sum) = summarize(&bounds, &got);
        // Racing folds may split a window's extremes, never a count.
        assert_eq!(have.counts, want.counts);
        assert_eq!(have.count, want.count);
        assert!((have_sum - want_sum).abs() <= want_sum.abs() * 1e-9);
        // A record racing a fold can miss its window's extremes (it is then replayed inside a
        // mean), so the replayed extremes lie within the recorded ones.
        assert!(
            have.min >= want.min && have.max <= want.max,
            "{have:?} vs {want:?}"
        );
    }

    #[test]
    fn single_values_and_one_value_buckets_replay_as_themselves() {
        let bounds = [1.0, 2.0];
        let replayed = Arc::new(Replayed::default());
        let d = Distribution::new(&bounds, Arc::clone(&replayed));
        d.record(1.5);
        d.fold();
        assert_eq!(take(&replayed), vec![1.5]);
        for v in [0.25, 1.0, 7.0, 2.0] {
            d.record(v);
        }
        d.fold();
        let mut got = take(&replayed);
        got.sort_by(f64::total_cmp);
        assert_eq!(got, vec![0.25, 1.0, 2.0, 7.0]);
    }

    #[test]
    fn dropping_the_last_handle_replays_the_rest_and_exited_threads_count() {
        let replayed = Arc::new(Replayed::default());
        let d = Arc::new(Distribution::new(&[10.0], Arc::clone(&replayed)));
        for i in 0..20 {
            let d = Arc::clone(&d);
            std::thread::spawn(move || d.record(i as f64))
                .join()
                .unwrap();
        }
        drop(d);
        let got = take(&replayed);
        check(&[10.0], &(0..20).map(f64::from).collect::<Vec<_>>(), &got);
    }
}
