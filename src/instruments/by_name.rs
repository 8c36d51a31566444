//! The by-name hot path's per-thread state: this thread's registry snapshot and its handle cache
//! ([`super::handle_cache`]), and [`record_by_name`], which records through the cache when it
//! can and through the validated unbound SDK call otherwise.

use std::sync::Arc;

use opentelemetry::KeyValue;

use super::entry::{Checked, Entry, Op, Registry};
use super::handle_cache::{Cache, Handle, Lookup};

/// Per-thread state of the by-name hot path (one thread-local borrow per call).
pub(super) struct ThreadState {
    /// `(collector id, registry version, snapshot)`: valid while the version matches (`arc-swap`'s
    /// own `load` costs an atomic read-modify-write per call; this costs a plain load).
    pub(super) snapshot: Option<(usize, u64, Arc<Registry>)>,
    /// SDK bound handles per attribute set ([`super::handle_cache`]).
    pub(super) cache: Cache,
}

thread_local! {
    pub(super) static THREAD: std::cell::RefCell<ThreadState> = const {
        std::cell::RefCell::new(ThreadState { snapshot: None, cache: Cache::new() })
    };
}

/// Records, then offers a histogram's measurement to its exemplars (`exemplars.rs`): a cached
/// handle carries its series' exemplars, so only the uncached path looks the series up.
#[inline]
pub(super) fn record_by_name(
    entry: &Arc<Entry>,
    op: Op,
    value: f64,
    attributes: &[KeyValue],
    cache: Option<&mut Cache>,
) -> Checked<()> {
    if record_only(entry, op, value, attributes, cache)? == Path::Unbound
        && let Some(exemplars) = &entry.exemplars
    {
        exemplars.offer(attributes, value);
    }
    Ok(())
}

/// Which way a measurement went.
#[derive(PartialEq)]
enum Path {
    /// Through a cached handle, which offered it to its exemplars too.
    Cached,
    /// The unbound SDK call: exemplars are still to be offered.
    Unbound,
}

#[inline]
fn record_only(
    entry: &Arc<Entry>,
    op: Op,
    value: f64,
    attributes: &[KeyValue],
    cache: Option<&mut Cache>,
) -> Checked<Path> {
    if let Some(cache) = cache
        && value.is_finite()
        && !(entry.non_negative() && value < 0.0)
    {
        match cache.record(entry, op as u8, attributes, value) {
            Lookup::Recorded => return Ok(Path::Cached),
            Lookup::Admit(hash) => {
                entry.check(op, attributes)?;
                if let Some(handle) = Handle::bind(entry, attributes) {
                    cache.install(hash, entry, op as u8, attributes, handle, value);
                    return Ok(Path::Cached);
                }
            }
            Lookup::Miss => {}
        }
    }
    entry.record(op, value, attributes)?;
    Ok(Path::Unbound)
}
