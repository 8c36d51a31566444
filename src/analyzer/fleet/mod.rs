//! Fleet reports: the local report's analysis over a Prometheus-compatible backend
//! (Prometheus, VictoriaMetrics, Thanos, Mimir, Cortex), per instance and fleet-wide.
//!
//! [`fleet_report`] reads every signal the local report uses with one `query_range` per metric
//! source ([`signals`]: genscope's exposition names and vLLM's and SGLang's serving metrics), so
//! the number of HTTP queries grows with the number of signals, never with series or instances.
//! Classic PromQL selectors only (`{__name__=~"…",<--match>}`), which Prometheus 2.x answers too.
//! The answers are turned into one analyzer store per instance (`convert.rs`: counter and
//! histogram increases per step, gauges as sampled) and each store gets the same
//! [`Report::compute`] a local report gets; a fleet store (every instance, the instance kept as
//! an attribute) gives the fleet's figures. Then the fleet-wide rules ([`findings`]):
//! `load-imbalance`, `outlier-instance`, `fleet-error-burst`.
//!
//! Figures agree with the instance's local report over the same window within the bucket error
//! of the quantiles (both read the same bucket layout) and one step at each end of the window
//! (the backend's samples are scrape-aligned, the local collections are not).
//!
//! Where an instance exports genscope's names, vendor-named series of the same instance (the
//! `vllm:` gateway series genscope itself serves with `GENSCOPE_MODEL_SERVER_METRICS=vllm`) are
//! not read, so that one quantity is not counted twice.
//!
//! ```no_run
//! # async fn run() -> Result<(), genscope::analyzer::fleet::FleetError> {
//! use genscope::analyzer::fleet::{Credentials, FleetOptions, PrometheusClient, fleet_report};
//! let client = PrometheusClient::new("http://localhost:9090", Credentials::from_env()?, std::time::Duration::from_secs(30))?;
//! let report = fleet_report(&client, &FleetOptions::default()).await?;
//! for i in &report.instances {
//!     println!("{} {:?} {} findings", i.instance, i.health, i.findings.len());
//! }
//! # Ok(()) }
//! ```

mod charts;
mod client;
mod convert;
mod error;
pub mod findings;
mod selector;
pub mod signals;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

pub use client::{Credentials, PrometheusClient, RangeSeries};
pub use error::FleetError;
pub use selector::Selector;
pub use signals::SignalSource;

use super::report::{
    Health, HealthStatus, InstanceSummary, NotSeen, Report, ReportConfig, Severity,
};
use super::store::{AnalyzerStore, StoreConfig, Window};
use convert::Fetched;

/// Queries in flight at once.
const CONCURRENCY: usize = 8;

/// What a fleet report reads.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The window (default 1 h).
    pub window: Duration,
    /// Its end (default: now).
    pub end: Option<SystemTime>,
    /// The label that names an instance (default `instance`; `service_instance_id` for data
    /// pushed over OTLP, `pod` in Kubernetes).
    pub by: String,
    /// Label matchers added to every query.
    pub selector: Selector,
    /// The query step (default: the window / 360, at least 1 s).
    pub step: Option<Duration>,
    /// Thresholds.
    pub config: ReportConfig,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            window: Duration::from_secs(3600),
            end: None,
            by: "instance".into(),
            selector: Selector::default(),
            step: None,
            config: ReportConfig::default(),
        }
    }
}

impl FleetOptions {
    /// The step the queries use.
    ///
    /// ```
    /// let o = genscope::analyzer::fleet::FleetOptions::default();
    /// assert_eq!(o.step(), std::time::Duration::from_secs(10));
    /// ```
    pub fn step(&self) -> Duration {
        self.step
            .unwrap_or(self.window / 360)
            .max(Duration::from_secs(1))
    }
}

/// Which naming an instance's data came under.
fn naming(stored: &[&str]) -> String {
    let vendor = |p: &str| stored.iter().any(|s| s.starts_with(p));
    if stored
        .iter()
        .any(|s| !s.contains(':') && !s.starts_with("sglang_"))
    {
        "genscope"
    } else if vendor("vllm:") {
        "vllm"
    } else if vendor("sglang") {
        "sglang"
    } else {
        "unknown"
    }
    .into()
}

fn is_vendor(s: &SignalSource) -> bool {
    s.stored.contains(':') || s.stored.starts_with("sglang_")
}

/// Requests and failures: genscope's request counter, else the server-duration histogram.
fn requests(store: &AnalyzerStore, window: Window) -> Option<(f64, f64)> {
    if let Some(r) = store.sum("genscope.generation.requests", &[], window) {
        let mut failed = 0.0;
        store.each_point("genscope.generation.requests", &[], window, |attrs, p| {
            if let crate::analyzer::store::PointValue::Sum { delta, .. } = p.value
                && attrs.iter().any(|(k, _)| k == "error.type")
            {
                failed += delta;
            }
        });
        return Some((r, failed));
    }
    let all = store.histogram("gen_ai.server.request.duration", &[], window)?;
    let mut failed = 0u64;
    store.each_point("gen_ai.server.request.duration", &[], window, |attrs, p| {
        if let crate::analyzer::store::PointValue::Histogram(h) = &p.value
            && attrs.iter().any(|(k, _)| k == "error.type")
        {
            failed += h.count;
        }
    });
    Some((all.count as f64, failed as f64))
}

/// Request durations over the window, under the name the local report reads.
fn duration(store: &AnalyzerStore, window: Window) -> Option<crate::analyzer::HistogramSummary> {
    let name = if store.kind("genscope.generation.duration").is_some() {
        "genscope.generation.duration"
    } else {
        "gen_ai.server.request.duration"
    };
    store.histogram(name, &[], window).filter(|h| h.count > 0)
}

fn summary(
    instance: &str,
    report: &mut Report,
    store: &AnalyzerStore,
    window: Window,
    names: &[&str],
) -> InstanceSummary {
    for f in &mut report.findings {
        f.instance = instance.to_string();
    }
    let w = window.seconds();
    let req = requests(store, window);
    let g = &report.generation;
    InstanceSummary {
        instance: instance.to_string(),
        health: report.health.status,
        naming: naming(names),
        requests_per_s: req.filter(|_| w > 0.0).map(|(r, _)| r / w),
        error_rate: req.filter(|(r, _)| *r > 0.0).map(|(r, f)| f / r),
        duration_p50_s: g.duration_s.map(|d| d[0]),
        duration_p95_s: g.duration_s.map(|d| d[1]),
        queue_mean: g.queue_size.map(|q| q.avg),
        kv_cache_peak: report.signals.kv_cache_usage_peak,
        cpu_mean: report
            .resources
            .process_cpu
            .or(report.resources.host_cpu)
            .map(|s| s.avg),
        gpu_mean: report.resources.gpu_utilization.map(|s| s.avg),
        findings: report.findings.clone(),
    }
}

/// The fleet report over `client`'s backend: per-instance reports in `instances`, every
/// instance's findings and the fleet-wide ones in `findings`, the fleet's merged figures in the
/// sections. Fails only when nothing could be read; a signal whose query failed is listed in
/// `not_seen`.
pub async fn fleet_report(
    client: &PrometheusClient,
    options: &FleetOptions,
) -> Result<Report, FleetError> {
    use futures_util::StreamExt as _;
    if options.by.is_empty()
        || !options
            .by
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(FleetError::Option {
            option: "--by",
            reason: format!("{:?} is not a label name", options.by),
        });
    }
    let end = options.end.unwrap_or_else(SystemTime::now);
    let start = end.checked_sub(options.window).ok_or(FleetError::Option {
        option: "--window",
        reason: "the window starts before 1970".into(),
    })?;
    let step = options.step();
    let window = Window { start, end };
    let queries = signals::sources().into_iter().map(|source| {
        let q = options.selector.query(&signals::sample_names(&source));
        async move {
            let r = client.query_range(&q, start, end, step).await;
            (source, r)
        }
    });
    let answers: Vec<_> = futures_util::stream::iter(queries)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut not_seen = Vec::new();
    let mut fetched = Vec::new();
    let mut first_error = None;
    let mut any_ok = false;
    for (source, answer) in answers {
        match answer {
            Ok((series, warnings)) => {
                any_ok = true;
                for w in warnings {
                    not_seen.push(NotSeen {
                        signal: source.stored.into(),
                        reason: format!("backend warning: {w}"),
                    });
                }
                let unlabelled = series
                    .iter()
                    .filter(|s| !s.labels.iter().any(|(k, _)| *k == options.by))
                    .count();
                if unlabelled > 0 {
                    not_seen.push(NotSeen {
                        signal: source.stored.into(),
                        reason: format!(
                            "{unlabelled} series without the {:?} label: not attributed to an instance",
                            options.by
                        ),
                    });
                }
                if !series.is_empty() {
                    fetched.push(Fetched { source, series });
                }
            }
            Err(e) => {
                not_seen.push(NotSeen {
                    signal: source.stored.into(),
                    reason: e.to_string(),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    if !any_ok && let Some(e) = first_error {
        return Err(e);
    }
    // Instances that export genscope's own names.
    let mut genscope_named: BTreeSet<String> = BTreeSet::new();
    for f in fetched.iter().filter(|f| !is_vendor(&f.source)) {
        for s in &f.series {
            if let Some((_, v)) = s.labels.iter().find(|(k, _)| *k == options.by) {
                genscope_named.insert(v.clone());
            }
        }
    }
    let config = StoreConfig {
        retention: options.window + step * 2,
        resolution: step,
        ..StoreConfig::default()
    };
    // A series first seen after the query's first step was born in the window.
    let born_after = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        + step.as_secs_f64() / 2.0;
    let mut stores: BTreeMap<String, (AnalyzerStore, Vec<&'static str>)> = BTreeMap::new();
    let fleet = AnalyzerStore::new(config.clone());
    for f in &fetched {
        let vendor = is_vendor(&f.source);
        let keep = |i: &str| !(vendor && genscope_named.contains(i));
        for (instance, timeline) in convert::timelines(f, &options.by, born_after, keep, false) {
            let (store, names) = stores
                .entry(instance)
                .or_insert_with(|| (AnalyzerStore::new(config.clone()), Vec::new()));
            names.push(f.source.stored);
            convert::ingest(store, &f.source, timeline);
        }
        for (_, timeline) in convert::timelines(f, &options.by, born_after, keep, true) {
            convert::ingest(&fleet, &f.source, timeline);
        }
    }
    let mut instances = Vec::new();
    let mut durations = Vec::new();
    let mut instance_charts = Vec::new();
    for (name, (store, names)) in &stores {
        let mut r = Report::compute(store, window, &options.config);
        instance_charts.push((name.clone(), std::mem::take(&mut r.charts)));
        instances.push(summary(name, &mut r, store, window, names));
        durations.push(duration(store, window));
    }
    // Each instance against the rest of the fleet: the others' durations merged.
    let others_p95: Vec<Option<f64>> = (0..durations.len())
        .map(|i| {
            let mut merged: Option<crate::analyzer::HistogramSummary> = None;
            for (j, d) in durations.iter().enumerate() {
                if let (true, Some(d)) = (j != i, d) {
                    match &mut merged {
                        None => merged = Some(d.clone()),
                        Some(m) => {
                            m.absorb(d);
                        }
                    }
                }
            }
            merged.and_then(|m| m.quantile(0.95))
        })
        .collect();
    let mut report = Report::compute(&fleet, window, &options.config);
    let fleet_errors = requests(&fleet, window)
        .filter(|(r, _)| *r > 0.0)
        .map(|(r, f)| f / r);
    let mut all = findings::evaluate(
        &instances,
        &others_p95,
        fleet_errors,
        &options.config.thresholds,
        window.seconds(),
    );
    all.extend(instances.iter().flat_map(|i| i.findings.iter().cloned()));
    all.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let worst = all.iter().map(|f| f.severity).max();
    report.health = Health {
        status: match worst {
            Some(Severity::Critical) => HealthStatus::Unhealthy,
            Some(Severity::Warning) => HealthStatus::Degraded,
            _ => HealthStatus::Healthy,
        },
        reasons: all
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .map(|f| {
                if f.instance.is_empty() {
                    f.title.clone()
                } else {
                    format!("{}: {}", f.instance, f.title)
                }
            })
            .collect(),
    };
    report.findings = all;
    report.instances = instances;
    // The fleet's lines per instance first, then the merged fleet's own charts.
    let mut charts = charts::fleet_charts(&instance_charts);
    charts.append(&mut report.charts);
    report.charts = charts;
    if stores.is_empty() {
        not_seen.push(NotSeen {
            signal: "*".into(),
            reason: format!(
                "no series with the {:?} label matched{}",
                options.by,
                if options.selector.matchers().is_empty() {
                    String::new()
                } else {
                    format!(" {{{}}}", options.selector.matchers())
                }
            ),
        });
    }
    report.not_seen = not_seen;
    report.service = None;
    Ok(report)
}
