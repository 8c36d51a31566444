//! What a `metrics::counter!` / `gauge!` / `histogram!` handle records into: genscope's bound
//! handles (no lookup per call), or nothing when the name, labels or kind were refused (the
//! refusal is counted in `genscope.metric.rejected` once, at registration).
//!
//! The bound handle sits behind an `ArcSwapOption` so that a `describe_*!` arriving after first
//! use can move every existing handle to the redefined metric (`recorder.rs`); a record costs one
//! `arc-swap` load more than the bound handle itself (`BENCHMARKS.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use metrics::{CounterFn, GaugeFn, HistogramFn};

use crate::instruments::{BoundCounter, BoundGauge, BoundHistogram};

/// A facade counter.
#[derive(Debug)]
pub(crate) struct CounterHandle {
    bound: ArcSwapOption<BoundCounter>,
    /// The highest `absolute` value seen: `absolute(v)` adds what `v` exceeds it by.
    absolute: AtomicU64,
}

impl CounterHandle {
    pub(crate) fn new(bound: Option<BoundCounter>) -> Self {
        CounterHandle {
            bound: ArcSwapOption::new(bound.map(Arc::new)),
            absolute: AtomicU64::new(0),
        }
    }

    /// Records into `bound` from now on.
    pub(crate) fn rebind(&self, bound: Option<BoundCounter>) {
        self.bound.store(bound.map(Arc::new));
    }
}

impl CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        if let Some(b) = &*self.bound.load() {
            let _ = b.add(value as f64);
        }
    }

    fn absolute(&self, value: u64) {
        let before = self.absolute.fetch_max(value, Ordering::AcqRel);
        if value > before {
            self.increment(value - before);
        }
    }
}

/// A facade gauge: the level it is at (`increment`/`decrement` move it, `set` replaces it), and
/// the genscope gauge it sets. The lock keeps the recorded value the latest one when threads
/// move the level at once.
#[derive(Debug)]
pub(crate) struct GaugeHandle {
    bound: ArcSwapOption<BoundGauge>,
    level: Mutex<f64>,
}

impl GaugeHandle {
    pub(crate) fn new(bound: Option<BoundGauge>) -> Self {
        GaugeHandle {
            bound: ArcSwapOption::new(bound.map(Arc::new)),
            level: Mutex::new(0.0),
        }
    }

    /// Records into `bound` from now on, starting at the level the gauge is at.
    pub(crate) fn rebind(&self, bound: Option<BoundGauge>) {
        let level = self.level.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &bound {
            let _ = b.record(*level);
        }
        self.bound.store(bound.map(Arc::new));
    }

    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let guard = self.bound.load();
        let Some(b) = &*guard else { return };
        let mut level = self.level.lock().unwrap_or_else(|p| p.into_inner());
        let next = f(*level);
        // A non-finite level is refused (and counted) by the gauge; the level stays.
        if b.record(next).is_ok() {
            *level = next;
        }
    }
}

impl GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        self.update(|l| l + value);
    }

    fn decrement(&self, value: f64) {
        self.update(|l| l - value);
    }

    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

/// A facade histogram.
#[derive(Debug)]
pub(crate) struct HistogramHandle {
    bound: ArcSwapOption<BoundHistogram>,
}

impl HistogramHandle {
    pub(crate) fn new(bound: Option<BoundHistogram>) -> Self {
        HistogramHandle {
            bound: ArcSwapOption::new(bound.map(Arc::new)),
        }
    }

    /// Records into `bound` from now on.
    pub(crate) fn rebind(&self, bound: Option<BoundHistogram>) {
        self.bound.store(bound.map(Arc::new));
    }
}

impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        if let Some(b) = &*self.bound.load() {
            let _ = b.record(value);
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        if let Some(b) = &*self.bound.load() {
            for _ in 0..count {
                let _ = b.record(value);
            }
        }
    }
}
