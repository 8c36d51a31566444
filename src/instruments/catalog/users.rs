//! Concurrent users (the seeds' application table): `genscope.users.active`, an up-down counter
//! the application moves as sessions open and close. It takes no attributes at all, so user ids
//! cannot become series.

use opentelemetry::KeyValue;

use super::generation::LevelGuard;
use crate::instruments::{DefinitionError, Metric, MetricDefinition, MetricsCollector};

/// The users catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    vec![
        MetricDefinition::up_down_counter("genscope.users.active")
            .with_unit("{user}")
            .with_description("Users with an open session")
            .with_attributes(Vec::<&'static str>::new()),
    ]
}

/// Typed recorder for `genscope.users.active`.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let users = telemetry.metrics().users()?;
/// let session = users.session_opened();
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// assert_eq!(telemetry.analyzer().gauge("genscope.users.active", &[], w).map(|g| g.last), Some(1.0));
/// drop(session);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct UserMetrics {
    active: Metric,
}

impl UserMetrics {
    pub(crate) fn new(c: &MetricsCollector) -> Result<Self, DefinitionError> {
        Ok(UserMetrics {
            active: c.create_metric(definitions().remove(0))?,
        })
    }

    /// A session opened; dropping the guard closes it.
    pub fn session_opened(&self) -> LevelGuard {
        LevelGuard::new(self.active.clone(), &[] as &[KeyValue])
    }

    /// Moves the count by `delta` (for applications that track sessions themselves).
    pub fn add(&self, delta: i64) {
        let _ = self.active.record(delta as f64, &[]);
    }
}

impl MetricsCollector {
    /// The concurrent-users catalog's typed recorder.
    pub fn users(&self) -> Result<UserMetrics, DefinitionError> {
        UserMetrics::new(self)
    }
}
