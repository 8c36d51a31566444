//! Database client semantic conventions: `db.client.operation.duration` (stable) and the
//! connection-pool metrics, fed by a callback the application supplies per pool.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;

use crate::instruments::{
    DefinitionError, InstrumentKind, Metric, MetricDefinition, MetricsCollector, Observations,
};

/// `db.client.operation.duration` buckets.
pub const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// The database catalog definitions.
pub fn definitions() -> Vec<MetricDefinition> {
    vec![
        MetricDefinition::new("db.client.operation.duration", InstrumentKind::Histogram)
            .with_unit("s")
            .with_description("Duration of database client operations")
            .with_buckets(DURATION_BUCKETS.iter().copied())
            .with_attributes([
                "db.system.name",
                "db.operation.name",
                "db.collection.name",
                "db.namespace",
                "error.type",
                "server.address",
                "server.port",
            ]),
        MetricDefinition::up_down_counter("db.client.connection.count")
            .with_unit("{connection}")
            .with_description("The number of connections that are currently in state described by the state attribute"),
        MetricDefinition::up_down_counter("db.client.connection.max")
            .with_unit("{connection}")
            .with_description("The maximum number of open connections allowed"),
        MetricDefinition::up_down_counter("db.client.connection.pending_requests")
            .with_unit("{request}")
            .with_description("The number of current pending requests for an open connection"),
    ]
}

/// A connection pool's state, as the application's callback reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolState {
    /// Idle connections.
    pub idle: u64,
    /// Connections in use.
    pub used: u64,
    /// Pool capacity.
    pub max: u64,
    /// Requests waiting for a connection.
    pub pending: u64,
}

/// A pool's state callback.
pub(crate) type PoolCallback = Arc<dyn Fn() -> PoolState + Send + Sync>;
/// The registered pools of one collector, shared by every copy of the recorder.
#[derive(Default)]
pub(crate) struct PoolRegistry(Mutex<Vec<(String, PoolCallback)>>);

/// What every copy of the recorder holds.
pub(crate) type Pools = Arc<PoolRegistry>;

/// One database operation (the seeds' query time).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DbOperation<'a> {
    /// `db.system.name` (`postgresql`, `redis`, `sqlite`, ...).
    pub system: &'a str,
    /// `db.operation.name` (`SELECT`, `COMMIT`, ...).
    pub operation: Option<&'a str>,
    /// `db.collection.name` (table).
    pub collection: Option<&'a str>,
    /// `db.namespace` (database).
    pub namespace: Option<&'a str>,
    /// Duration.
    pub duration: Duration,
    /// `error.type` on failure.
    pub error_type: Option<&'a str>,
}

/// Typed recorder for the database catalog.
///
/// ```
/// use genscope::instruments::catalog::db::PoolState;
/// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
/// let db = telemetry.metrics().db_client()?;
/// db.observe_pool("main", || PoolState { idle: 3, used: 2, max: 10, pending: 0 });
/// telemetry.force_flush()?;
/// let w = genscope::analyzer::Window::all();
/// let used = telemetry.analyzer().gauge("db.client.connection.count", &[("db.client.connection.state", "used")], w);
/// assert_eq!(used.map(|g| g.last), Some(2.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DbClientMetrics {
    duration: Metric,
    pools: Pools,
}

impl std::fmt::Debug for DbClientMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbClientMetrics").finish_non_exhaustive()
    }
}

fn each_pool(
    pools: &Pools,
    obs: &mut Observations<'_>,
    f: impl Fn(&mut Observations<'_>, &str, PoolState),
) {
    let pools: Vec<(String, PoolCallback)> = pools.0.lock().map(|p| p.clone()).unwrap_or_default();
    for (name, callback) in pools {
        // One pool's panicking callback must not hide the others.
        if let Ok(state) = catch_unwind(AssertUnwindSafe(|| callback())) {
            f(obs, &name, state);
        }
    }
}

impl DbClientMetrics {
    pub(crate) fn new(c: &MetricsCollector, pools: Pools) -> Result<Self, DefinitionError> {
        let d = definitions();
        let duration = c.create_metric(d[0].clone())?;
        if c.get_metric("db.client.connection.count").is_none() {
            let p = Arc::clone(&pools);
            c.add_collector(d[1].clone(), move |obs| {
                each_pool(&p, obs, |obs, name, s| {
                    for (state, n) in [("idle", s.idle), ("used", s.used)] {
                        obs.observe(
                            n as f64,
                            &[
                                KeyValue::new("db.client.connection.state", state),
                                KeyValue::new("db.client.connection.pool.name", name.to_string()),
                            ],
                        );
                    }
                })
            })?;
            let p = Arc::clone(&pools);
            c.add_collector(d[2].clone(), move |obs| {
                each_pool(&p, obs, |obs, name, s| {
                    obs.observe(
                        s.max as f64,
                        &[KeyValue::new(
                            "db.client.connection.pool.name",
                            name.to_string(),
                        )],
                    )
                })
            })?;
            let p = Arc::clone(&pools);
            c.add_collector(d[3].clone(), move |obs| {
                each_pool(&p, obs, |obs, name, s| {
                    obs.observe(
                        s.pending as f64,
                        &[KeyValue::new(
                            "db.client.connection.pool.name",
                            name.to_string(),
                        )],
                    )
                })
            })?;
        }
        Ok(DbClientMetrics { duration, pools })
    }

    /// Records one operation.
    pub fn record_operation(&self, op: &DbOperation<'_>) {
        let mut kv = vec![KeyValue::new("db.system.name", op.system.to_string())];
        for (key, value) in [
            ("db.operation.name", op.operation),
            ("db.collection.name", op.collection),
            ("db.namespace", op.namespace),
            ("error.type", op.error_type),
        ] {
            if let Some(v) = value {
                kv.push(KeyValue::new(key, v.to_string()));
            }
        }
        let _ = self.duration.record(op.duration.as_secs_f64(), &kv);
    }

    /// Observes a pool at every collection through `state` (called three times per collection,
    /// once per pool metric; keep it cheap — read atomics, do not query the database). A pool
    /// registered again under the same name replaces the earlier callback.
    pub fn observe_pool(
        &self,
        pool_name: impl Into<String>,
        state: impl Fn() -> PoolState + Send + Sync + 'static,
    ) {
        let name = pool_name.into();
        if let Ok(mut pools) = self.pools.0.lock() {
            pools.retain(|(n, _)| *n != name);
            pools.push((name, Arc::new(state)));
        }
    }
}

impl MetricsCollector {
    /// The database client catalog's typed recorder (pools registered on any copy are observed).
    pub fn db_client(&self) -> Result<DbClientMetrics, DefinitionError> {
        DbClientMetrics::new(self, self.extension::<PoolRegistry>())
    }
}
