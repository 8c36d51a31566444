//! What a `metrics::counter!` / `gauge!` / `histogram!` handle records into: genscope's bound
//! handles (no lookup per call), or nothing when the name, labels or kind were refused (the
//! refusal is counted in `genscope.metric.rejected` once, at registration).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{CounterFn, GaugeFn, HistogramFn};

use crate::instruments::{BoundCounter, BoundGauge, BoundHistogram};

/// A facade counter.
#[derive(Debug)]
pub(crate) struct CounterHandle {
    bound: Option<BoundCounter>,
    /// The highest `absolute` value seen: `absolute(v)` adds what `v` exceeds it by.
    absolute: AtomicU64,
}

impl CounterHandle {
    pub(crate) fn new(bound: Option<BoundCounter>) -> Self {
        CounterHandle {
            bound,
            absolute: AtomicU64::new(0),
        }
    }
}

impl CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        if let Some(b) = &self.bound {
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
    bound: Option<BoundGauge>,
    level: Mutex<f64>,
}

impl GaugeHandle {
    pub(crate) fn new(bound: Option<BoundGauge>) -> Self {
        GaugeHandle {
            bound,
            level: Mutex::new(0.0),
        }
    }

    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let Some(b) = &self.bound else { return };
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
    bound: Option<BoundHistogram>,
}

impl HistogramHandle {
    pub(crate) fn new(bound: Option<BoundHistogram>) -> Self {
        HistogramHandle { bound }
    }
}

impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        if let Some(b) = &self.bound {
            let _ = b.record(value);
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        if let Some(b) = &self.bound {
            for _ in 0..count {
                let _ = b.record(value);
            }
        }
    }
}
