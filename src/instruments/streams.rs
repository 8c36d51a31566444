//! Which collector-defined metric streams were reset or deleted.
//!
//! OTel has no way to remove an instrument from a running SDK: a deleted or reset metric's old
//! instrument keeps its aggregation. genscope therefore gives every redefinition its own meter
//! scope (`genscope.collector` with attribute `genscope.metric.generation=N`) and records here
//! which `(name, generation)` pairs are retired. The analyzer store skips retired streams and
//! forgets deleted names, so genscope's own views (`/metrics`, file export, reports) stop
//! reporting them at once. Written by the collector, read by the store; it knows neither.

use std::collections::HashSet;
use std::sync::Mutex;

/// Scope name of every meter the collector creates.
pub const COLLECTOR_SCOPE: &str = "genscope.collector";
/// Scope attribute carrying the generation of a redefined metric (absent for generation 0).
pub const GENERATION_KEY: &str = "genscope.metric.generation";

/// Shared registry of retired streams. See the module docs.
#[derive(Debug, Default)]
pub struct RetiredStreams {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    retired: HashSet<(String, u64)>,
    names: HashSet<String>,
    purge: Vec<String>,
}

impl RetiredStreams {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a stream retired; `forget` also asks readers to drop the name's history.
    pub(crate) fn retire(&self, name: &str, generation: u64, forget: bool) {
        let mut inner = self.lock();
        inner.retired.insert((name.to_string(), generation));
        inner.names.insert(name.to_string());
        if forget {
            inner.purge.push(name.to_string());
        }
    }

    /// Whether `name` was ever retired (its next definition needs a new generation).
    pub(crate) fn ever_retired(&self, name: &str) -> bool {
        self.lock().names.contains(name)
    }

    /// Whether data of this stream must be ignored.
    pub fn is_retired(&self, name: &str, generation: u64) -> bool {
        let inner = self.lock();
        !inner.retired.is_empty() && inner.retired.contains(&(name.to_string(), generation))
    }

    /// `true` when nothing was ever retired (readers can skip all checks).
    pub fn is_empty(&self) -> bool {
        self.lock().retired.is_empty()
    }

    /// Names whose history readers should drop, once each.
    pub fn take_purged(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().purge)
    }
}
