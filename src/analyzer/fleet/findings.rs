//! The fleet-wide rules, over the instances' summaries and the fleet's merged figures.
//!
//! | id | fires when (defaults in [`Thresholds`]) | severity |
//! |---|---|---|
//! | `load-imbalance` | one instance's mean queue >= 2x the median of the others' and >= 1 request, or its mean utilization (GPU, else CPU) >= 0.4 above the others' median; needs 3 instances | warning |
//! | `outlier-instance` | an instance with >= 20 requests whose median request duration is above the p95 of the rest of the fleet (all other instances' requests merged); needs 3 instances | warning |
//! | `fleet-error-burst` | >= 2 instances, and >= 50 % of those with requests, fail >= 5 % of requests (critical when the fleet fails >= 20 %) | warning / critical |
//!
//! Their `instance` is `""`: they are about the fleet; the title names the instances.

use crate::analyzer::report::findings::{Shown, describe};
use crate::analyzer::report::{Evidence, Finding, InstanceSummary, Severity, Thresholds};

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `evidence`: (quantity, the metric it comes from, observed, threshold, unit, how it reads).
fn fleet_finding(
    id: &str,
    severity: Severity,
    title: String,
    evidence: (&str, &str, f64, f64, &str, Shown),
    window: f64,
    recommendation: &str,
) -> Finding {
    let mut f = Finding {
        id: id.into(),
        severity,
        title,
        evidence: Evidence {
            metric: evidence.1.into(),
            observed: evidence.2,
            threshold: evidence.3,
            unit: evidence.4.into(),
            window_seconds: window,
            trace_ids: Vec::new(),
            quantity: String::new(),
            observed_text: String::new(),
            threshold_text: String::new(),
        },
        recommendation: recommendation.into(),
        instance: String::new(),
    };
    describe(&mut f, evidence.0, evidence.5);
    f
}

/// The busiest instance by `value` and the median of the others.
fn busiest(
    instances: &[InstanceSummary],
    value: impl Fn(&InstanceSummary) -> Option<f64>,
) -> Option<(&InstanceSummary, f64, f64)> {
    let known: Vec<(&InstanceSummary, f64)> = instances
        .iter()
        .filter_map(|i| value(i).map(|v| (i, v)))
        .collect();
    if known.len() < 3 {
        return None;
    }
    let (top, v) = *known.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let others = median(
        known
            .iter()
            .filter(|(i, _)| i.instance != top.instance)
            .map(|(_, v)| *v)
            .collect(),
    )?;
    Some((top, v, others))
}

/// The fleet-wide findings. `others_p95[i]` is the request-duration p95 of every instance but
/// `instances[i]`, merged; `fleet_error_rate` the fleet's merged failure share.
pub(super) fn evaluate(
    instances: &[InstanceSummary],
    others_p95: &[Option<f64>],
    fleet_error_rate: Option<f64>,
    t: &Thresholds,
    window: f64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let queue = busiest(instances, |i| i.queue_mean).filter(|(_, v, others)| {
        *v >= t.queue_backlog && *v >= t.imbalance_ratio * others.max(0.5)
    });
    let busy = busiest(instances, |i| i.gpu_mean.or(i.cpu_mean))
        .filter(|(_, v, others)| v - others >= t.imbalance_utilization_gap);
    if let Some((top, v, others)) = queue {
        out.push(fleet_finding(
            "load-imbalance",
            Severity::Warning,
            format!(
                "instance {} queues {v:.1} requests on average, {:.1}x the others' median ({others:.1})",
                top.instance,
                v / others.max(0.5)
            ),
            ("mean queue size of the busiest instance", "genscope.generation.queue.size", v, t.imbalance_ratio * others.max(0.5), "{request}", Shown::Unit),
            window,
            "Traffic is not spread evenly: check the load balancer's policy (least-requests or queue-aware routing such as the Gateway API Inference Extension instead of round-robin), sticky sessions, and whether this instance is slower (fewer GPUs, a smaller batch).",
        ));
    } else if let Some((top, v, others)) = busy {
        out.push(fleet_finding(
            "load-imbalance",
            Severity::Warning,
            format!(
                "instance {} is {:.0}% busy on average while the others' median is {:.0}%",
                top.instance,
                v * 100.0,
                others * 100.0
            ),
            ("mean utilization of the busiest instance", "hw.gpu.utilization, else process.cpu.utilization", v, others + t.imbalance_utilization_gap, "1", Shown::Percent),
            window,
            "One instance does most of the work: check the load balancer's policy and weights, and whether clients pin to it.",
        ));
    }
    if instances.len() >= 3 {
        for (i, p95) in instances.iter().zip(others_p95) {
            let enough = i
                .requests_per_s
                .is_some_and(|r| r * window >= t.outlier_min_requests as f64);
            if let (Some(p50), Some(p95)) = (i.duration_p50_s, *p95)
                && enough
                && p95 > 0.0
                && p50 > p95
            {
                out.push(fleet_finding(
                    "outlier-instance",
                    Severity::Warning,
                    format!(
                        "instance {}: median request {:.3} s, slower than the rest of the fleet's p95 ({p95:.3} s)",
                        i.instance, p50
                    ),
                    ("median request duration of the instance (threshold: the rest of the fleet's p95)", "gen_ai.server.request.duration", p50, p95, "s", Shown::Unit),
                    window,
                    "One replica is slow for most of its requests: compare its hardware, GPU clocks and throttling, model version and configuration with the others, drain it, and look at its own findings.",
                ));
            }
        }
    }
    let with_requests: Vec<&InstanceSummary> = instances
        .iter()
        .filter(|i| i.error_rate.is_some())
        .collect();
    let failing: Vec<&str> = with_requests
        .iter()
        .filter(|i| i.error_rate.is_some_and(|r| r >= t.error_rate_warning))
        .map(|i| i.instance.as_str())
        .collect();
    if failing.len() >= 2
        && failing.len() as f64 >= t.fleet_error_share * with_requests.len() as f64
    {
        let rate = fleet_error_rate.unwrap_or(0.0);
        let critical = rate >= t.error_rate_critical;
        out.push(fleet_finding(
            "fleet-error-burst",
            if critical { Severity::Critical } else { Severity::Warning },
            format!(
                "{} of {} instances fail >= {:.0}% of requests ({}); the fleet fails {:.1}%",
                failing.len(),
                with_requests.len(),
                t.error_rate_warning * 100.0,
                failing.join(", "),
                rate * 100.0
            ),
            ("share of instances failing >= error_rate_warning of their requests", "genscope.generation.requests", failing.len() as f64 / with_requests.len() as f64, t.fleet_error_share, "1", Shown::Percent),
            window,
            "Errors across most of the fleet point to a shared cause, not one bad replica: a deploy or config rollout, a shared dependency (model store, tokenizer service, upstream API), or a client sending bad requests. Compare error.type across instances.",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::report::HealthStatus;

    fn inst(name: &str, queue: f64, p50: f64, err: f64) -> InstanceSummary {
        InstanceSummary {
            instance: name.into(),
            health: HealthStatus::Healthy,
            naming: "genscope".into(),
            requests_per_s: Some(1.0),
            error_rate: Some(err),
            duration_p50_s: Some(p50),
            duration_p95_s: Some(p50 * 2.0),
            queue_mean: Some(queue),
            kv_cache_peak: None,
            cpu_mean: Some(0.3),
            gpu_mean: None,
            findings: Vec::new(),
        }
    }

    #[test]
    fn each_rule_fires_and_stays_quiet() {
        let t = Thresholds::default();
        let ids = |v: &[InstanceSummary], p95: f64| -> Vec<String> {
            evaluate(v, &vec![Some(p95); v.len()], Some(0.1), &t, 60.0)
                .into_iter()
                .map(|f| f.id)
                .collect()
        };
        let calm = [
            inst("a", 0.2, 0.1, 0.0),
            inst("b", 0.3, 0.1, 0.0),
            inst("c", 0.2, 0.1, 0.0),
        ];
        assert!(ids(&calm, 0.3).is_empty());
        let skewed = [
            inst("a", 0.2, 0.1, 0.0),
            inst("b", 8.0, 0.1, 0.0),
            inst("c", 0.3, 0.1, 0.0),
        ];
        let f = evaluate(&skewed, &[Some(0.3); 3], None, &t, 60.0);
        assert_eq!(f[0].id, "load-imbalance");
        assert!(f[0].title.contains("instance b"), "{}", f[0].title);
        assert_eq!(f[0].instance, "");
        let slow = [
            inst("a", 0.2, 0.1, 0.0),
            inst("b", 0.2, 0.9, 0.0),
            inst("c", 0.2, 0.1, 0.0),
        ];
        let f = evaluate(&slow, &[Some(0.3), Some(0.1), Some(0.3)], None, &t, 60.0);
        assert_eq!((f.len(), f[0].id.as_str()), (1, "outlier-instance"));
        assert!(f[0].title.contains("instance b"));
        // One failing instance is its own problem; two of three is the fleet's.
        let one = [
            inst("a", 0.2, 0.1, 0.3),
            inst("b", 0.2, 0.1, 0.0),
            inst("c", 0.2, 0.1, 0.0),
        ];
        assert!(ids(&one, 0.3).is_empty());
        let two = [
            inst("a", 0.2, 0.1, 0.3),
            inst("b", 0.2, 0.1, 0.2),
            inst("c", 0.2, 0.1, 0.0),
        ];
        assert_eq!(ids(&two, 0.3), ["fleet-error-burst"]);
        // Two instances are not enough to call one of them imbalanced.
        assert!(ids(&skewed[..2], 0.3).is_empty());
    }
}
