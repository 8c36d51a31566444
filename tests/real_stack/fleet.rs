//! `genscope report --prometheus` over a real Prometheus 3 holding a historical hour: fleets
//! generated here as OpenMetrics text (10 s resolution), backfilled with
//! `promtool tsdb create-blocks-from openmetrics`, each with problems planted on chosen instances:
//! a genscope-named fleet, a vLLM-named one, an SGLang-named one (one instance with the `sglang_`
//! names of releases before 0.4) and a fleet with errors on most instances. With `--end` the
//! report finds each planted problem on the right instance, and nothing else.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::harness::{Peer, cli, free_port, peers, prometheus_config};

use crate::fleet_data::{HEALTHY, Naming, Plan, STEP, STEPS, backfill, openmetrics};

fn plans() -> Vec<Plan> {
    let p = |job, instance, naming| Plan {
        job,
        instance,
        naming,
        ..HEALTHY
    };
    vec![
        p("gen", "gen-0", Naming::Genscope),
        Plan {
            queue: 12.0,
            duration: 2.0,
            wait: 1.5,
            ..p("gen", "gen-1", Naming::Genscope)
        },
        Plan {
            errors: 0.3,
            ..p("gen", "gen-2", Naming::Genscope)
        },
        p("gen", "gen-3", Naming::Genscope),
        p("vllm", "vllm-0", Naming::Vllm),
        Plan {
            kv: 0.97,
            preemptions: 0.5,
            ..p("vllm", "vllm-1", Naming::Vllm)
        },
        p("vllm", "vllm-2", Naming::Vllm),
        p("sglang", "sglang-0", Naming::Sglang),
        Plan {
            duration: 1.2,
            ..p("sglang", "sglang-1", Naming::Sglang)
        },
        Plan {
            queue: 10.0,
            ..p("sglang", "sglang-2", Naming::Sglang)
        },
        p("sglang", "sglang-3", Naming::SglangOld),
        Plan {
            errors: 0.25,
            ..p("burst", "b-0", Naming::Genscope)
        },
        Plan {
            errors: 0.25,
            ..p("burst", "b-1", Naming::Genscope)
        },
        p("burst", "b-2", Naming::Genscope),
    ]
}

fn report(base: &str, args: &[&str]) -> (Value, u64) {
    let out = Command::new(cli())
        .args([
            "report",
            "--prometheus",
            base,
            "--window",
            "1h",
            "--format",
            "json",
        ])
        .args(args)
        .output()
        .expect("run genscope report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "genscope report {args:?}: {stderr}");
    let queries = stderr
        .split(" from ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no query count in {stderr:?}"));
    (
        serde_json::from_slice(&out.stdout).expect("JSON report"),
        queries,
    )
}

/// (id, instance, the instance its title names) of every finding.
fn findings(r: &Value) -> BTreeSet<(String, String, String)> {
    let names: Vec<String> = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap().to_string())
        .collect();
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let title = f["title"].as_str().unwrap();
            let named = names
                .iter()
                .find(|n| {
                    title.contains(&format!("instance {n}")) || title.contains(&format!("({n}"))
                })
                .cloned()
                .unwrap_or_default();
            (
                f["id"].as_str().unwrap().to_string(),
                f["instance"]
                    .as_str()
                    .expect("instance is a string")
                    .to_string(),
                named,
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn a_backfilled_hour_gives_each_planted_problem_on_its_instance() {
    let Some(peers) = peers("a_backfilled_hour_gives_each_planted_problem_on_its_instance") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // An hour ending three hours ago, on a 10 s grid: older than the head block, inside the
    // retention.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let end = (now - 3 * 3600) / STEP * STEP;
    let t0 = end - STEP * STEPS;
    let data = backfill(&peers, dir.path(), "fleet", &openmetrics(&plans(), t0));
    let config = prometheus_config(dir.path(), &[]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut prom = Peer::start(
        "prometheus",
        &peers.join("prometheus"),
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={listen}"),
            "--storage.tsdb.retention.time=2d",
        ],
        dir.path(),
    );
    let base = format!("http://{listen}");
    prom.wait_ready(&format!("{base}/-/ready"));
    let end_text =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(end)).to_string();
    let at = ["--end", end_text.as_str()];

    let (gen_report, gen_queries) =
        report(&base, &[&at[..], &["--match", r#"{job="gen"}"#]].concat());
    assert_eq!(gen_report["schema"], "genscope.report/1");
    assert_eq!(gen_report["instances"].as_array().unwrap().len(), 4);
    assert_eq!(
        findings(&gen_report),
        set(&[
            ("load-imbalance", "", "gen-1"),
            ("outlier-instance", "", "gen-1"),
            ("queue-dominated-latency", "gen-1", ""),
            ("high-error-rate", "gen-2", ""),
        ]),
        "{:#}",
        gen_report["findings"]
    );
    let gen2 = &gen_report["instances"][2];
    assert_eq!(gen2["instance"], "gen-2");
    assert!(
        (gen2["error_rate"].as_f64().unwrap() - 0.3).abs() < 1e-6,
        "{gen2}"
    );
    assert!(
        (gen2["requests_per_s"].as_f64().unwrap() - 2.0).abs() < 1e-6,
        "{gen2}"
    );
    assert_eq!(gen2["health"], "unhealthy");
    assert_eq!(gen_report["instances"][0]["health"], "healthy");

    // The HTML: a row per instance, a line per instance on the fleet charts (real time axes,
    // plotters), each finding tagged with its instance.
    let html = dir.path().join("fleet.html");
    let out = Command::new(cli())
        .args(["report", "--prometheus", &base, "--window", "1h"])
        .args(["--format", "html", "--out"])
        .arg(&html)
        .args(at)
        .args(["--match", r#"{job="gen"}"#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#"<table id="instances">"#));
    for i in gen_report["instances"].as_array().unwrap() {
        let name = i["instance"].as_str().unwrap();
        assert!(
            page.contains(&format!(r#"<tr data-instance="{name}">"#)),
            "{name}"
        );
    }
    for chart in ["fleet-throughput", "fleet-latency-p95", "fleet-queue"] {
        let at = page
            .find(&format!(r#"data-chart="{chart}""#))
            .unwrap_or_else(|| panic!("no {chart} chart"));
        let figure = &page[at..at + page[at..].find("</figure>").unwrap()];
        assert_eq!(figure.matches("<li data-series=").count(), 4, "{chart}");
        assert_eq!(
            figure.matches(r#"stroke-width="2" points="#).count(),
            4,
            "{chart}: a line per instance"
        );
    }
    for f in gen_report["findings"].as_array().unwrap() {
        let tag = format!(
            r#"data-id="{}" data-instance="{}""#,
            f["id"].as_str().unwrap(),
            f["instance"].as_str().unwrap()
        );
        assert!(page.contains(&tag), "{tag}");
    }

    let (vllm, _) = report(&base, &[&at[..], &["--match", r#"{job="vllm"}"#]].concat());
    assert_eq!(
        findings(&vllm),
        set(&[("kv-cache-pressure", "vllm-1", "")]),
        "{:#}",
        vllm["findings"]
    );
    assert!(
        vllm["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["naming"] == "vllm")
    );

    let (sglang, _) = report(
        &base,
        &[&at[..], &["--match", r#"{job="sglang"}"#]].concat(),
    );
    assert_eq!(
        findings(&sglang),
        set(&[
            ("load-imbalance", "", "sglang-2"),
            ("outlier-instance", "", "sglang-1")
        ]),
        "{:#}",
        sglang["findings"]
    );
    let old = &sglang["instances"][3];
    assert_eq!(
        (old["instance"].as_str(), old["naming"].as_str()),
        (Some("sglang-3"), Some("sglang"))
    );
    assert!(
        old["duration_p50_s"].as_f64().is_some(),
        "the sglang_ names are read: {old}"
    );

    let (burst, _) = report(&base, &[&at[..], &["--match", r#"{job="burst"}"#]].concat());
    assert_eq!(
        findings(&burst),
        set(&[
            ("fleet-error-burst", "", "b-0"),
            ("high-error-rate", "b-0", ""),
            ("high-error-rate", "b-1", ""),
        ]),
        "{:#}",
        burst["findings"]
    );
    let title = burst["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "fleet-error-burst")
        .and_then(|f| f["title"].as_str())
        .unwrap();
    assert!(
        title.contains("b-0, b-1") && !title.contains("b-2"),
        "{title}"
    );

    // The whole backend: every instance, and as many queries as for one fleet of four.
    let (all, all_queries) = report(&base, &at);
    assert_eq!(all["instances"].as_array().unwrap().len(), 14);
    assert_eq!(
        all_queries, gen_queries,
        "queries grow with signals, not instances"
    );
    println!("{gen_queries} queries for 4 instances and for 14");
    // The same --end gives the same figures.
    let (again, _) = report(&base, &[&at[..], &["--match", r#"{job="gen"}"#]].concat());
    assert_eq!(again["instances"], gen_report["instances"]);
}

#[test]
fn a_backend_that_cannot_answer_is_a_clear_error() {
    let port = free_port();
    let out = Command::new(cli())
        .args([
            "report",
            "--prometheus",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "2s",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    for (args, what) in [
        (&["--prometheus", "localhost:9090"][..], "http://"),
        (&["--prometheus", "http://x", "--match", "up"], "braces"),
        (
            &["--prometheus", "http://x", "--end", "yesterday"],
            "RFC 3339",
        ),
        (
            &["--prometheus", "http://x", "f.jsonl"],
            "cannot be used with",
        ),
    ] {
        let out = Command::new(cli())
            .arg("report")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(what), "{args:?}: {stderr}");
    }
}
