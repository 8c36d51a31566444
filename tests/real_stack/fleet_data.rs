//! Fleets as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: each instance's
//! hour at 10 s steps, under genscope's, vLLM's or SGLang's names (tests/real_stack/fleet.rs and
//! benches/fleet_report.rs).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `text` to `DIR/NAME.om` and backfills it with `promtool tsdb create-blocks-from
/// openmetrics` into `DIR/NAME-data`, which it returns (a Prometheus `--storage.tsdb.path`).
pub fn backfill(peers: &Path, dir: &Path, name: &str, text: &str) -> PathBuf {
    let file = dir.join(format!("{name}.om"));
    std::fs::write(&file, text).expect("write the OpenMetrics file");
    let data = dir.join(format!("{name}-data"));
    let out = Command::new(peers.join("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&file)
        .arg(&data)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

#[derive(Clone, Copy, PartialEq)]
pub enum Naming {
    Genscope,
    Vllm,
    Sglang,
    SglangOld,
}

/// One instance's hour: what it does at every 10 s step.
#[derive(Clone, Copy)]
pub struct Plan {
    pub job: &'static str,
    pub instance: &'static str,
    pub naming: Naming,
    /// Requests per second.
    pub rps: f64,
    /// Every request's duration (one bucket), seconds.
    pub duration: f64,
    /// Share of failed requests (genscope names only).
    pub errors: f64,
    /// Queue size, as sampled.
    pub queue: f64,
    /// Queue wait per request, seconds (genscope names only).
    pub wait: f64,
    /// KV-cache usage, 0..1 (vLLM and SGLang).
    pub kv: f64,
    /// Preemptions per step (vLLM).
    pub preemptions: f64,
}

pub const HEALTHY: Plan = Plan {
    job: "",
    instance: "",
    naming: Naming::Genscope,
    rps: 2.0,
    duration: 0.08,
    errors: 0.0,
    queue: 0.2,
    wait: 0.01,
    kv: 0.3,
    preemptions: 0.0,
};

pub const BOUNDS: [f64; 7] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
pub const STEP: u64 = 10;
pub const STEPS: u64 = 360;

/// One family's samples, grouped by series, oldest first.
struct Family {
    name: String,
    kind: &'static str,
    lines: String,
}

fn labels(p: &Plan, extra: &[(&str, String)]) -> String {
    let mut l = format!("instance=\"{}\",job=\"{}\"", p.instance, p.job);
    for (k, v) in extra {
        let _ = write!(l, ",{k}=\"{v}\"");
    }
    l
}

fn counter(f: &mut Family, p: &Plan, extra: &[(&str, String)], per_step: f64, t0: u64) {
    let l = labels(p, extra);
    for k in 0..=STEPS {
        let _ = writeln!(
            f.lines,
            "{}_total{{{l}}} {} {}",
            f.name,
            per_step * k as f64,
            t0 + k * STEP
        );
    }
}

fn gauge(f: &mut Family, p: &Plan, value: f64, t0: u64) {
    let l = labels(p, &[]);
    for k in 0..=STEPS {
        let _ = writeln!(f.lines, "{}{{{l}}} {value} {}", f.name, t0 + k * STEP);
    }
}

/// Every request of a step in the bucket holding `value`.
fn histogram(f: &mut Family, p: &Plan, value: f64, per_step: f64, t0: u64) {
    let l = labels(p, &[]);
    for k in 0..=STEPS {
        let n = per_step * k as f64;
        let t = t0 + k * STEP;
        for b in BOUNDS {
            let c = if value <= b { n } else { 0.0 };
            let _ = writeln!(f.lines, "{}_bucket{{{l},le=\"{b}\"}} {c} {t}", f.name);
        }
        let _ = writeln!(f.lines, "{}_bucket{{{l},le=\"+Inf\"}} {n} {t}", f.name);
        let _ = writeln!(f.lines, "{}_count{{{l}}} {n} {t}", f.name);
        let _ = writeln!(f.lines, "{}_sum{{{l}}} {} {t}", f.name, n * value);
    }
}

/// `plans` as one OpenMetrics document, the hour starting at `t0`.
pub fn openmetrics(plans: &[Plan], t0: u64) -> String {
    let mut families: Vec<Family> = Vec::new();
    let mut family = |name: &str, kind: &'static str| -> usize {
        match families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                families.push(Family {
                    name: name.to_string(),
                    kind,
                    lines: String::new(),
                });
                families.len() - 1
            }
        }
    };
    let mut plan_lines: Vec<(usize, Plan, &str)> = Vec::new();
    for &p in plans {
        let n = p.rps * STEP as f64;
        let (prefix, sep) = match p.naming {
            Naming::Vllm => ("vllm", ':'),
            Naming::Sglang => ("sglang", ':'),
            Naming::SglangOld => ("sglang", '_'),
            Naming::Genscope => ("", '_'),
        };
        let v = |name: &str| format!("{prefix}{sep}{name}");
        match p.naming {
            Naming::Genscope => {
                let i = family("genscope_generation_requests", "counter");
                plan_lines.push((i, p, "requests"));
                let i = family("gen_ai_server_request_duration_seconds", "histogram");
                plan_lines.push((i, p, "duration"));
                let i = family("genscope_generation_queue_wait_seconds", "histogram");
                plan_lines.push((i, p, "wait"));
                let i = family("genscope_generation_queue_size", "gauge");
                plan_lines.push((i, p, "queue"));
                let i = family("process_cpu_utilization_ratio", "gauge");
                plan_lines.push((i, p, "cpu"));
            }
            Naming::Vllm => {
                for (name, kind, what) in [
                    ("num_requests_waiting", "gauge", "queue"),
                    ("kv_cache_usage_perc", "gauge", "kv"),
                    ("num_preemptions", "counter", "preemptions"),
                    ("request_success", "counter", "success"),
                    ("e2e_request_latency_seconds", "histogram", "duration"),
                ] {
                    let i = family(&v(name), kind);
                    plan_lines.push((i, p, what));
                }
            }
            Naming::Sglang | Naming::SglangOld => {
                for (name, kind, what) in [
                    ("num_queue_reqs", "gauge", "queue"),
                    ("token_usage", "gauge", "kv"),
                    ("e2e_request_latency_seconds", "histogram", "duration"),
                ] {
                    let i = family(&v(name), kind);
                    plan_lines.push((i, p, what));
                }
            }
        }
        let _ = n;
    }
    for (i, p, what) in plan_lines {
        let n = p.rps * STEP as f64;
        let f = &mut families[i];
        match what {
            "requests" => {
                counter(f, &p, &[], n * (1.0 - p.errors), t0);
                if p.errors > 0.0 {
                    counter(f, &p, &[("error_type", "timeout".into())], n * p.errors, t0);
                }
            }
            "success" => counter(f, &p, &[("finished_reason", "stop".into())], n, t0),
            "preemptions" => counter(f, &p, &[], p.preemptions, t0),
            "duration" => histogram(f, &p, p.duration, n, t0),
            "wait" => histogram(f, &p, p.wait, n, t0),
            "queue" => gauge(f, &p, p.queue, t0),
            "kv" => gauge(f, &p, p.kv, t0),
            "cpu" => gauge(f, &p, 0.2, t0),
            _ => unreachable!(),
        }
    }
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        out.push_str(&f.lines);
    }
    out.push_str("# EOF\n");
    out
}
