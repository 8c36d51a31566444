//! The by-name hot path's per-thread cache of SDK bound handles.
//!
//! `increment_counter(name, value, attributes)` and the other by-name calls resolve the name in
//! the registry snapshot, then look the `(metric, call kind, attributes)` triple up here. A hit
//! records through an SDK bound handle (`experimental_metrics_bound_instruments`): the SDK's own
//! per-call work (a read lock on the instrument's attribute map and hashing the attribute set
//! with its hasher) is replaced by one `foldhash` of the attributes and a comparison, which is
//! why recording by name costs less than the raw SDK's `Counter::add` (BENCHMARKS.md).
//!
//! * **Bounded**: 64 direct-mapped slots per thread. A triple is admitted the second time in a
//!   row it lands on its slot (a one-entry doorkeeper), so a stream of ever-new attribute sets
//!   never binds and evicts on every call; it takes the unbound SDK path plus one hash, and after
//!   64 misses in a row the thread skips the cache (and the hash) for the next 1,024 calls. The
//!   worst case, every call a new set, is measured in `benches/metrics.rs`.
//! * **Always right**: a slot holds its `Arc<Entry>`, so an entry replaced by `reset_metric`,
//!   `delete_metric` or a new definition can never be confused with its successor (the registry
//!   lookup returns the new `Arc`, which misses); attributes are compared in full on every hit,
//!   and they were validated when the slot was filled. Attribute sets the SDK would treat as equal
//!   but that differ here (another order) only take another slot.
//! * **Cardinality**: a bound handle on a full instrument is the SDK's overflow series, exactly
//!   where the unbound call would have recorded. Cached handles keep their series from being
//!   evicted under delta temporality while cached: at most 64 per thread.
//!
//! Attribute sets with array values are not cached (they take the unbound path).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use opentelemetry::{KeyValue, Value};

use super::entry::{Entry, Instrument};
use super::exemplars::SeriesExemplars;
use crate::config::ExemplarFilter;

const SLOTS: usize = 64;

/// An SDK bound handle of any recording kind.
pub(super) enum Handle {
    Counter(opentelemetry::metrics::BoundCounter<f64>),
    UpDownCounter(opentelemetry::metrics::BoundUpDownCounter<f64>),
    Gauge(opentelemetry::metrics::BoundGauge<f64>),
    Histogram(opentelemetry::metrics::BoundHistogram<f64>),
}

impl Handle {
    /// An SDK bound handle for `attributes` (already checked); `None` for an observed metric.
    pub(super) fn bind(entry: &Entry, attributes: &[KeyValue]) -> Option<Handle> {
        Some(match &entry.instrument {
            Instrument::Counter(c) => Handle::Counter(c.bind(attributes)),
            Instrument::UpDownCounter(c) => Handle::UpDownCounter(c.bind(attributes)),
            Instrument::Gauge(g) => Handle::Gauge(g.bind(attributes)),
            Instrument::Histogram(h) => Handle::Histogram(h.bind(attributes)),
            Instrument::Observed(_) => return None,
        })
    }

    #[inline]
    fn record(&self, value: f64) {
        match self {
            Handle::Counter(c) => c.add(value),
            Handle::UpDownCounter(c) => c.add(value),
            Handle::Gauge(g) => g.record(value),
            Handle::Histogram(h) => h.record(value),
        }
    }
}

struct Slot {
    entry: Arc<Entry>,
    op: u8,
    attributes: Vec<KeyValue>,
    handle: Handle,
    /// A histogram series' exemplars, found once at install: a hit offers the measurement
    /// without hashing the attributes a second time for the exemplar lookup.
    exemplars: Option<(ExemplarFilter, Arc<SeriesExemplars>)>,
}

/// One thread's cache (it lives in the collector's per-thread state).
pub(super) struct Cache {
    /// Each slot's key hash, kept beside the slot pointers: a miss never touches the slot.
    hashes: [u64; SLOTS],
    slots: [Option<Box<Slot>>; SLOTS],
    /// The last key hash that missed on each slot: a second miss in a row admits it.
    candidates: [u64; SLOTS],
    misses_in_a_row: u32,
    /// Calls left that skip the cache (after [`MISSES_BEFORE_BYPASS`] misses in a row).
    bypass: u32,
}

/// Misses in a row after which this thread stops consulting its cache for a while: every call
/// brings a new attribute set, and hashing it buys nothing.
const MISSES_BEFORE_BYPASS: u32 = 64;
/// How many calls the cache then stays out of the way before it is tried again.
const BYPASS_CALLS: u32 = 1024;

impl Cache {
    pub(super) const fn new() -> Self {
        Cache {
            hashes: [0; SLOTS],
            slots: [const { None }; SLOTS],
            candidates: [0; SLOTS],
            misses_in_a_row: 0,
            bypass: 0,
        }
    }

    /// Records `value` through the cached handle for `(entry, op, attributes)` if there is
    /// one. `value` must already be valid for the entry's kind.
    #[inline]
    pub(super) fn record(
        &mut self,
        entry: &Arc<Entry>,
        op: u8,
        attributes: &[KeyValue],
        value: f64,
    ) -> Lookup {
        if self.bypass > 0 {
            self.bypass -= 1;
            return Lookup::Miss;
        }
        let Some(hash) = key_hash(entry, op, attributes) else {
            return Lookup::Miss;
        };
        let i = (hash as usize) % SLOTS;
        if self.hashes[i] == hash
            && let Some(slot) = &self.slots[i]
            && Arc::ptr_eq(&slot.entry, entry)
            && slot.op == op
            && same_attributes(&slot.attributes, attributes)
        {
            self.misses_in_a_row = 0;
            slot.handle.record(value);
            if let Some((filter, series)) = &slot.exemplars {
                series.offer(*filter, value);
            }
            return Lookup::Recorded;
        }
        if self.candidates[i] == hash {
            return Lookup::Admit(hash);
        }
        self.candidates[i] = hash;
        self.misses_in_a_row += 1;
        if self.misses_in_a_row >= MISSES_BEFORE_BYPASS {
            self.misses_in_a_row = 0;
            self.bypass = BYPASS_CALLS;
        }
        Lookup::Miss
    }

    /// Caches `handle` for `(entry, op, attributes)` (after [`Lookup::Admit`]), replacing the
    /// slot's previous handle, and records `value` through it (and offers it to the series'
    /// exemplars, as a hit does).
    pub(super) fn install(
        &mut self,
        hash: u64,
        entry: &Arc<Entry>,
        op: u8,
        attributes: &[KeyValue],
        handle: Handle,
        value: f64,
    ) {
        handle.record(value);
        let exemplars = entry.exemplars.as_ref().and_then(|e| {
            let series = e.series(attributes)?;
            series.offer(e.filter(), value);
            Some((e.filter(), series))
        });
        let i = (hash as usize) % SLOTS;
        self.candidates[i] = 0;
        self.hashes[i] = hash;
        self.slots[i] = Some(Box::new(Slot {
            entry: Arc::clone(entry),
            op,
            attributes: attributes.to_vec(),
            handle,
            exemplars,
        }));
    }

    /// How many slots hold a handle (tests).
    #[cfg(test)]
    pub(super) fn cached(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether the cache is stepping aside after a run of misses (tests).
    #[cfg(test)]
    pub(super) fn bypassing(&self) -> bool {
        self.bypass > 0
    }
}

/// What a lookup found.
pub(super) enum Lookup {
    /// Recorded through the cached handle (and offered to its exemplars).
    Recorded,
    /// Not cached; seen twice in a row: bind it and [`install`] it.
    Admit(u64),
    /// Not cached (or not cacheable): record the unbound way.
    Miss,
}

/// The key hash of `(entry, op, attributes)`, or `None` for attribute sets that are not cached.
#[inline]
fn key_hash(entry: &Arc<Entry>, op: u8, attributes: &[KeyValue]) -> Option<u64> {
    let mut h = foldhash::fast::FixedState::with_seed(0x9e37_79b9_7f4a_7c15).build_hasher();
    h.write_usize(Arc::as_ptr(entry) as usize);
    h.write_u8(op);
    for kv in attributes {
        h.write(kv.key.as_str().as_bytes());
        match &kv.value {
            Value::String(s) => h.write(s.as_str().as_bytes()),
            Value::I64(i) => i.hash(&mut h),
            Value::F64(f) => f.to_bits().hash(&mut h),
            Value::Bool(b) => b.hash(&mut h),
            _ => return None,
        }
    }
    Some(h.finish())
}

/// Whether two strings are equal, by address first: keys and values built from literals or
/// shared `Arc<str>`s compare without reading their bytes.
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// Attribute-list equality, in order (`f64` values by bits, as the key hash sees them).
#[inline]
fn same_attributes(cached: &[KeyValue], attributes: &[KeyValue]) -> bool {
    cached.len() == attributes.len()
        && cached.iter().zip(attributes).all(|(a, b)| {
            same_str(a.key.as_str(), b.key.as_str())
                && match (&a.value, &b.value) {
                    (Value::String(x), Value::String(y)) => same_str(x.as_str(), y.as_str()),
                    (Value::I64(x), Value::I64(y)) => x == y,
                    (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
                    (Value::Bool(x), Value::Bool(y)) => x == y,
                    _ => false,
                }
        })
}
