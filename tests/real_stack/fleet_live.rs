//! `genscope report --prometheus` over a live fleet: three `generation_service` instances with
//! different behaviour (one overloaded, one failing its health checks, one healthy) run at once,
//! scraped every second by a real Prometheus 3 and, separately, pushing OTLP to VictoriaMetrics
//! (`-opentelemetry.usePrometheusNaming`; there the instance is `service_instance_id`, since it
//! derives no `instance` from OTLP). Each fleet report puts each planted problem on its instance
//! and gives each instance its own local report's findings; its quantiles equal the local
//! report's (`--json`) within the bucket width, and its request counts equal what the backend
//! holds for the instance within one step at each end of the window (the documented error), which is what the instance counted up to its last scrape or
//! push (the last second or two of a run can miss the final scrape).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::direct::start_victoria_metrics;
use crate::harness::{
    cli, free_port, peers, prometheus_config, promql_scalar, spawn_example, start_prometheus,
};

/// (name, arguments): what each instance does.
const FLEET: [(&str, &[&str]); 3] = [
    (
        "overloaded",
        &[
            "--rate",
            "10",
            "--workers",
            "1",
            "--health-failure-rate",
            "0",
        ],
    ),
    ("sick", &["--rate", "8", "--health-failure-rate", "0.5"]),
    ("healthy", &["--rate", "8", "--health-failure-rate", "0"]),
];

fn fleet_report(base: &str, by: &str, end: u64, window: u64) -> Value {
    let end = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(end)).to_string();
    let out = Command::new(cli())
        .args(["report", "--prometheus", base, "--format", "json"])
        .args(["--end", &end, "--window", &format!("{window}s")])
        .args(["--by", by, "--step", "1s"])
        .output()
        .expect("genscope report");
    assert!(
        out.status.success(),
        "genscope report --prometheus {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

/// The width of the bucket of `bounds` that holds `v`.
fn bucket_width(bounds: &[f64], v: f64) -> f64 {
    let i = bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len());
    let lo = if i == 0 { 0.0 } else { bounds[i - 1] };
    let hi = bounds.get(i).copied().unwrap_or(lo * 2.0);
    hi - lo
}

fn ids(findings: &Value) -> BTreeSet<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_live_fleet_in_prometheus_and_victoria_metrics_names_each_instance() {
    let Some(peers) = peers("a_live_fleet_in_prometheus_and_victoria_metrics_names_each_instance")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_vm, vm) = start_victoria_metrics(&peers, dir.path());
    let ports: Vec<u16> = FLEET.iter().map(|_| free_port()).collect();
    let targets: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let config = prometheus_config(dir.path(), &target_refs);
    let (_prom, prom) = start_prometheus(&peers, dir.path(), &config, &[]);

    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let otlp = format!("{vm}/opentelemetry/v1/metrics");
    let running: Vec<_> = FLEET
        .iter()
        .zip(&targets)
        .map(|((name, args), target)| {
            let resource = format!("service.instance.id={name}");
            spawn_example(
                dir.path(),
                20,
                &[
                    ("GENSCOPE_PROMETHEUS_ADDR", target.as_str()),
                    ("OTEL_RESOURCE_ATTRIBUTES", &resource),
                    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &otlp),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_TRACES_EXPORTER", "none"),
                    ("OTEL_LOGS_EXPORTER", "none"),
                ],
                args,
            )
        })
        .collect();
    let local: BTreeMap<&str, Value> = FLEET
        .iter()
        .zip(running)
        .map(|((name, _), r)| (*name, r.finish().1))
        .collect();
    // Let VictoriaMetrics make the last pushes searchable.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let window = end - started + 5;

    // Prometheus: the instance is the scrape target; VictoriaMetrics: service_instance_id.
    let by_target: BTreeMap<String, &str> = targets
        .iter()
        .cloned()
        .zip(FLEET.iter().map(|(n, _)| *n))
        .collect();
    for (backend, base, by) in [
        ("prometheus", prom.as_str(), "instance"),
        ("victoria-metrics", vm.as_str(), "service_instance_id"),
    ] {
        let report = fleet_report(base, by, end, window);
        let name = |v: &Value| -> String {
            let i = v.as_str().unwrap();
            by_target.get(i).map_or(i, |n| n).to_string()
        };
        let instances: BTreeMap<String, &Value> = report["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (name(&i["instance"]), i))
            .collect();
        assert_eq!(
            instances
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            FLEET.iter().map(|(n, _)| *n).collect(),
            "{backend}: {:#}",
            report["not_seen"]
        );
        // Every planted problem on its instance, and on no other.
        let with = |id: &str| -> BTreeSet<String> {
            report["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["id"] == id)
                .map(|f| name(&f["instance"]))
                .collect()
        };
        assert_eq!(
            with("failing-health-checks"),
            BTreeSet::from(["sick".to_string()]),
            "{backend}: {:#}\nlocal: {:#}",
            report["findings"],
            Value::Array(
                local
                    .values()
                    .map(|d| d["report"]["findings"].clone())
                    .collect()
            )
        );
        assert_eq!(
            with("queue-dominated-latency"),
            BTreeSet::from(["overloaded".to_string()]),
            "{backend}"
        );
        for (name, doc) in &local {
            let fleet = instances[*name];
            let mine = &doc["report"];
            // The same findings as the instance's own report.
            assert_eq!(
                ids(&fleet["findings"]),
                ids(&mine["findings"]),
                "{backend} {name}: fleet vs local findings"
            );
            // Requests: the fleet report counts what the backend holds for the instance (every
            // series from zero: the instance was born inside the window); the backend holds what
            // the instance exported up to its last scrape or push.
            let requests = fleet["requests_per_s"].as_f64().unwrap() * window as f64;
            let total = doc["requests_total"].as_f64().unwrap();
            let selector = match backend {
                "prometheus" => {
                    let target = by_target.iter().find(|(_, n)| *n == name).unwrap().0;
                    format!("instance=\"{target}\"")
                }
                _ => format!("service_instance_id=\"{name}\""),
            };
            let held = promql_scalar(
                base,
                &format!(
                    "sum(max_over_time(genscope_generation_requests_total{{{selector}}}[{}s]))",
                    window + 60
                ),
            )
            .unwrap_or_else(|| panic!("{backend} holds no requests of {name}"));
            // Within the documented error: one 1 s step at each end, at the instance's rate.
            let run = mine["window"]["seconds"].as_f64().unwrap();
            let steps = 2.0 * held / run + 0.5;
            assert!(
                (requests - held).abs() <= steps,
                "{backend} {name}: {requests:.1} requests in the fleet report, {held} in the backend \
                 (more than two steps, {steps:.1}, apart)"
            );
            assert!(
                held <= total && held >= 0.75 * total,
                "{backend} {name}: the backend holds {held} of the {total} requests the instance counted"
            );
            // Duration quantiles: within the width of the bucket they fall in.
            let bounds: Vec<f64> = doc["histograms"]["genscope.generation.duration"]["bounds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_f64().unwrap())
                .collect();
            let d = &mine["generation"]["duration_s"];
            for (i, key) in [(0, "duration_p50_s"), (1, "duration_p95_s")] {
                let (here, there) = (d[i].as_f64().unwrap(), fleet[key].as_f64().unwrap());
                assert!(
                    (here - there).abs() <= bucket_width(&bounds, here),
                    "{backend} {name} {key}: fleet {there}, local {here}"
                );
            }
            println!(
                "{backend} {name}: {requests:.0} requests (local {total}), p95 {:.3} s (local {:.3} s), findings {:?}",
                fleet["duration_p95_s"].as_f64().unwrap(),
                d[1].as_f64().unwrap(),
                ids(&fleet["findings"])
            );
        }
    }
}
