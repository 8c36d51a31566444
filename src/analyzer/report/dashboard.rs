//! [`Dashboard`]: the report a dashboard or `/report` reads, cached so that frequent reads cost
//! one computation per store resolution. The cache belongs here, beside the report, not in the
//! store it reads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Report;
use crate::analyzer::AnalyzerStore;

/// A report over the last window, recomputed when older than the store's resolution (the metric
/// interval) or on demand: the seeds' `get_dashboard_data`.
///
/// [`crate::Genscope::dashboard`] reads the handle's own; build one for any store with
/// [`Dashboard::new`].
///
/// ```
/// use std::time::Duration;
/// use genscope::analyzer::report::Dashboard;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let dashboard = Dashboard::new(telemetry.analyzer_handle());
/// let a = dashboard.report(Duration::from_secs(900), false);
/// let b = dashboard.report(Duration::from_secs(900), false);
/// assert!(std::sync::Arc::ptr_eq(&a, &b), "cached");
/// let c = dashboard.report(Duration::from_secs(900), true);
/// assert!(!std::sync::Arc::ptr_eq(&a, &c), "refreshed");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Dashboard {
    store: Arc<AnalyzerStore>,
    cached: Mutex<Option<(Instant, Duration, Arc<Report>)>>,
}

impl Dashboard {
    /// A dashboard over `store`, with nothing cached yet.
    pub fn new(store: Arc<AnalyzerStore>) -> Self {
        Dashboard {
            store,
            cached: Mutex::new(None),
        }
    }

    /// The store it reads.
    pub fn store(&self) -> &Arc<AnalyzerStore> {
        &self.store
    }

    /// The report over the last `window`: served from the cache while it is younger than the
    /// store's resolution and covers the same window, recomputed now with `force_refresh`.
    pub fn report(&self, window: Duration, force_refresh: bool) -> Arc<Report> {
        let max_age = self.store.config().resolution;
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !force_refresh
            && let Some((at, w, report)) = cached.as_ref()
            && *w == window
            && at.elapsed() < max_age
        {
            return Arc::clone(report);
        }
        let report = Arc::new(self.store.report(window));
        *cached = Some((Instant::now(), window, Arc::clone(&report)));
        report
    }
}

impl AnalyzerStore {
    /// The report over the last `window`, computed now.
    ///
    /// Deprecated: the cache moved out of the store into [`Dashboard`]; this computes a fresh
    /// report on every call. Use [`crate::Genscope::dashboard`] (cached per handle) or a
    /// [`Dashboard`] of your own.
    ///
    /// ```
    /// # #![allow(deprecated)]
    /// use std::time::Duration;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// let report = telemetry.analyzer().dashboard(Duration::from_secs(900), false);
    /// assert_eq!(report.schema, genscope::analyzer::report::SCHEMA);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[deprecated(
        since = "0.2.0",
        note = "use Genscope::dashboard or analyzer::report::Dashboard (this no longer caches)"
    )]
    pub fn dashboard(&self, window: Duration, _force_refresh: bool) -> Arc<Report> {
        Arc::new(self.report(window))
    }
}
