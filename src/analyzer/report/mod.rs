//! Reports over a window, computed from the store (so from exactly what was exported): per
//! operation statistics, generation, resources, a resource efficiency score, trends, health,
//! telemetry loss, [`findings`] with recommendations, and chart series. Rendered as text
//! ([`Report::to_text`]), JSON (`serde_json::to_string(&report)`, schema [`SCHEMA`]) or a
//! self-contained HTML page ([`Report::to_html`]).
//!
//! The same function reads the live store ([`AnalyzerStore::report`]) and a store loaded from
//! OTLP JSON-lines files ([`crate::analyzer::otlp_file`]), so both inputs give the same analysis.
//!
//! # Resource efficiency score
//!
//! A weighted geometric mean in 0..1 of what is observed (a missing factor is left out and the
//! weights renormalized):
//!
//! `score = u^0.4 · s^0.3 · q^0.2 · m^0.1`, where
//! - `u` = busy share of the accelerator that does the work: mean GPU utilization when GPUs are
//!   observed, else this process's mean CPU share; divided by 0.8 and capped at 1 (80 % busy is
//!   full marks: headroom is not waste);
//! - `s` = success rate of generation requests;
//! - `q` = median request duration / (median duration + median queue wait): the share of latency
//!   spent working rather than waiting;
//! - `m` = memory headroom: 1 up to 90 % peak memory use (GPU, else host), falling linearly to 0
//!   at 100 %.
//!
//! A service that keeps its GPU busy, succeeds, does not queue and has memory to spare scores 1.

mod dashboard;
mod events;
mod extract;
pub mod findings;
mod html;
mod model;
mod slowest;
mod svg_chart;
mod text;
pub mod trend;

use std::time::{Duration, SystemTime};

pub use dashboard::Dashboard;
pub use findings::{Evidence, Finding, Severity, Signals, Thresholds};
pub use model::{
    Chart, ChartSeries, Efficiency, GenerationSection, Health, HealthStatus, InstanceSummary,
    NotSeen, OperationRow, Report, ReportConfig, ReportWindow, ResourceSection, SCHEMA, Stat,
    TelemetrySection,
};
pub use trend::{Direction, Trend};

use super::store::{AnalyzerStore, Window};

/// RFC 3339 for any time a file may carry: clamped to the range RFC 3339 can write (the epoch
/// to the end of year 9999) instead of failing.
fn rfc3339(t: SystemTime) -> String {
    use std::fmt::Write as _;
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    let t = t.clamp(SystemTime::UNIX_EPOCH, last);
    let mut out = String::new();
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(t));
    out
}

impl Report {
    /// Computes a report of `store` over `window`.
    pub fn compute(store: &AnalyzerStore, window: Window, config: &ReportConfig) -> Report {
        let x = extract::Extracted::from_store(store, window);
        let mut findings = findings::evaluate(&x.signals, &config.thresholds);
        slowest::cite_slowest(store, window, &mut findings);
        let worst = findings.iter().map(|f| f.severity).max();
        let health = Health {
            status: match worst {
                Some(Severity::Critical) => HealthStatus::Unhealthy,
                Some(Severity::Warning) => HealthStatus::Degraded,
                _ => HealthStatus::Healthy,
            },
            reasons: findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
                .map(|f| f.title.clone())
                .collect(),
        };
        Report {
            schema: SCHEMA.to_string(),
            generated_at: rfc3339(SystemTime::now()),
            window: ReportWindow {
                start: rfc3339(window.start),
                end: rfc3339(window.end),
                seconds: window.seconds(),
            },
            service: store
                .resource()
                .into_iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v),
            health,
            findings,
            operations: x.operations,
            operation_types: x.operation_types,
            generation: x.generation,
            efficiency: efficiency(&x.resources, &x.signals),
            resources: x.resources,
            trends: x.trends,
            telemetry: x.telemetry,
            charts: x.charts,
            signals: x.signals,
            instances: Vec::new(),
            not_seen: Vec::new(),
        }
    }

    /// The finding with this id, if it fired.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }

    /// A terminal summary a person reads in ten seconds.
    pub fn to_text(&self) -> String {
        text::render(self)
    }

    /// A self-contained HTML page (inline SVG charts, no network).
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

fn efficiency(r: &ResourceSection, s: &Signals) -> Efficiency {
    let mut factors: Vec<(String, f64, f64)> = Vec::new();
    let busy = r
        .gpu_utilization
        .map(|g| ("gpu_busy", g.avg))
        .or(r.process_cpu.map(|c| ("cpu_busy", c.avg)));
    if let Some((name, v)) = busy {
        factors.push((name.into(), (v / 0.8).clamp(0.0, 1.0), 0.4));
    }
    if let Some((requests, failed)) = s.generation_requests
        && requests > 0.0
    {
        factors.push((
            "success".into(),
            (1.0 - failed / requests).clamp(0.0, 1.0),
            0.3,
        ));
    }
    if let (Some(wait), Some((p50, _, _))) = (s.queue_wait_p50, s.duration_p50_p99)
        && p50 + wait > 0.0
    {
        factors.push(("working_share".into(), p50 / (p50 + wait), 0.2));
    }
    let peak_memory = r.gpu_memory.or(r.host_memory).map(|m| m.peak);
    if let Some(peak) = peak_memory {
        factors.push((
            "memory_headroom".into(),
            ((1.0 - peak) / 0.1).clamp(0.0, 1.0),
            0.1,
        ));
    }
    let total_weight: f64 = factors.iter().map(|f| f.2).sum();
    let score = (total_weight > 0.0).then(|| {
        factors
            .iter()
            .map(|(_, v, w)| v.max(1e-6).powf(w / total_weight))
            .product::<f64>()
            .clamp(0.0, 1.0)
    });
    Efficiency {
        score,
        factors,
        formula: "u^0.4 * s^0.3 * q^0.2 * m^0.1 over the observed factors (weights renormalized): u = busy share / 0.8 capped at 1 (GPU, else this process's CPU); s = request success rate; q = working share of latency (duration / (duration + queue wait), medians); m = memory headroom (1 up to 90% peak use, 0 at 100%)".into(),
    }
}

impl AnalyzerStore {
    /// A report over the last `window` up to now, with the default thresholds (the seeds'
    /// `generate_performance_report(hours_back)` / `get_performance_analysis(window)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use genscope::analyzer::report::HealthStatus;
    /// let telemetry = genscope::Genscope::builder().ignore_environment().build()?;
    /// let report = telemetry.analyzer().report(Duration::from_secs(900));
    /// assert_eq!(report.health.status, HealthStatus::Healthy);
    /// assert!(serde_json::to_string(&report)?.contains("genscope.report/1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn report(&self, window: Duration) -> Report {
        Report::compute(self, Window::last(window), &ReportConfig::default())
    }

    /// A report over an explicit window with explicit thresholds.
    pub fn report_with(&self, window: Window, config: &ReportConfig) -> Report {
        Report::compute(self, window, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(avg: f64, peak: f64) -> Option<Stat> {
        Some(Stat {
            avg,
            p95: peak,
            peak,
            last: avg,
            samples: 10,
        })
    }

    #[test]
    fn efficiency_follows_the_documented_formula() {
        let r = ResourceSection {
            gpu_utilization: stat(0.4, 0.6),
            gpu_memory: stat(0.4, 0.5),
            process_cpu: stat(0.9, 1.0),
            ..Default::default()
        };
        let s = Signals {
            generation_requests: Some((100.0, 10.0)),
            queue_wait_p50: Some(1.0),
            duration_p50_p99: Some((1.0, 2.0, 100)),
            ..Default::default()
        };
        let e = efficiency(&r, &s);
        // u = 0.4 / 0.8 (the GPU wins over the CPU), s = 0.9, q = 1 / (1 + 1), m = 1.
        let want = 0.5f64.powf(0.4) * 0.9f64.powf(0.3) * 0.5f64.powf(0.2) * 1.0f64.powf(0.1);
        assert!((e.score.unwrap() - want).abs() < 1e-12, "{e:?}");
        assert_eq!(e.factors[0].0, "gpu_busy");
    }

    #[test]
    fn efficiency_renormalizes_missing_factors_and_is_bounded() {
        // Only the CPU is known: the score is that factor alone.
        let r = ResourceSection {
            process_cpu: stat(0.2, 0.3),
            ..Default::default()
        };
        let e = efficiency(&r, &Signals::default());
        assert!((e.score.unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(
            efficiency(&ResourceSection::default(), &Signals::default()).score,
            None
        );
        // Ideal service: 1. Out of memory: close to 0 but not negative.
        let ideal = ResourceSection {
            gpu_utilization: stat(0.95, 1.0),
            gpu_memory: stat(0.5, 0.7),
            ..Default::default()
        };
        let ok = Signals {
            generation_requests: Some((10.0, 0.0)),
            queue_wait_p50: Some(0.0),
            duration_p50_p99: Some((1.0, 1.0, 10)),
            ..Default::default()
        };
        assert_eq!(efficiency(&ideal, &ok).score, Some(1.0));
        let full = ResourceSection {
            gpu_memory: stat(0.99, 1.0),
            ..ideal
        };
        let s = efficiency(&full, &ok).score.unwrap();
        assert!((0.0..0.5).contains(&s), "{s}");
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn rfc3339_never_fails_on_times_a_file_may_carry() {
        // Found by fuzzing: a window starting before the epoch made formatting panic.
        let before = SystemTime::UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
        let far = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::MAX);
        assert!(rfc3339(far).starts_with("2554-"));
        let beyond = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(beyond), "9999-12-31T23:59:59.000Z");
    }
}
