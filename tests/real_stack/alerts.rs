//! The shipped rules and dashboard, run for real: `promtool check rules` and `promtool test rules`
//! with the built promtool 3.x and Debian's promtool 2.42, then a Prometheus 3 fed by the main
//! example (OTLP, fake GPU) evaluates every recording rule and alert of `alerts/*.yml`, and every
//! query of `dashboards/*.json` (Grafana variables substituted) must return data.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::collector::start_collector;
use crate::harness::{
    encode, eventually, get_json, peers, promql, repo, require_free, run_example, start_prometheus,
};

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {dir}/*.{ext}");
    out
}

fn promtool(program: &Path, args: &[&str], files: &[PathBuf]) {
    let out = Command::new(program)
        .args(args)
        .args(files)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's promtool 2.42 on PATH (tests/run.sh installs it); required with the peers.
fn debian_promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    found.expect(
        "promtool 2.x (Debian's `prometheus` package) is not on PATH: tests/run.sh installs it",
    )
}

#[test]
fn rules_check_and_pass_their_unit_tests_with_promtool_3_and_2() {
    let Some(peers) = peers("rules_check_and_pass_their_unit_tests_with_promtool_3_and_2") else {
        return;
    };
    let rules = files("alerts", "yml");
    let tests = files("tests/alerts", "yml");
    for tool in [peers.join("promtool"), debian_promtool()] {
        let version = Command::new(&tool)
            .arg("--version")
            .output()
            .expect("version");
        let version = String::from_utf8_lossy(&version.stdout);
        let version = version.lines().next().unwrap_or_default().to_string();
        promtool(&tool, &["check", "rules"], &rules);
        promtool(&tool, &["test", "rules"], &tests);
        println!("{version}: check rules and test rules pass");
    }
}

/// The expression without its final top-level comparison (`A > 0.5` -> `A`).
pub fn without_final_comparison(expr: &str) -> String {
    let bytes = expr.as_bytes();
    let (mut depth, mut quote, mut last) = (0i32, None::<u8>, None::<usize>);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'>' | b'<' if depth == 0 => last = Some(i),
                b'=' | b'!' if depth == 0 && bytes.get(i + 1) == Some(&b'=') => {
                    last = Some(i);
                    i += 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    match last {
        Some(pos) => expr[..pos].trim().to_string(),
        None => expr.trim().to_string(),
    }
}

/// Every `expr` of a dashboard's panels (rows included) and its variable queries.
fn dashboard_queries(doc: &Value) -> (Vec<(String, String)>, Vec<String>) {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((
                        p["title"].as_str().unwrap_or("?").to_string(),
                        e.to_string(),
                    ));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut exprs = Vec::new();
    walk(&doc["panels"], &mut exprs);
    let vars = doc["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["query"]["query"].as_str().map(str::to_string))
        .collect();
    (exprs, vars)
}

/// Grafana's variables, as a user with "All" selected gets them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace("$job", ".+")
        .replace("$instance", ".+")
}

#[test]
fn every_rule_alert_and_dashboard_query_returns_data_from_the_example() {
    let Some(peers) = peers("every_rule_alert_and_dashboard_query_returns_data_from_the_example")
    else {
        return;
    };
    for port in [4317, 4318, 8889] {
        require_free(port);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let rules: Vec<String> = files("alerts", "yml")
        .iter()
        .map(|p| format!("  - '{}'\n", p.display()))
        .collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}",
            rules.concat()
        ),
    )
    .expect("config");
    let (_prom, prom) = start_prometheus(&peers, dir, &config, &["--web.enable-otlp-receiver"]);
    // Spans go to the collector, so the span exporter's self-metrics exist too.
    let _collector = start_collector(&peers, dir, &[]);
    let otlp = format!("{prom}/api/v1/otlp/v1/metrics");
    let (_, doc) = run_example(
        dir,
        10,
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &otlp),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces",
            ),
        ],
        &["--fake-gpu"],
    );
    let total = doc["requests_total"].as_f64().unwrap();
    eventually(
        "Prometheus holds the example's requests",
        30,
        || match promql(&prom, "sum(genscope_generation_requests_total)").first() {
            Some(s) if s.value == total => Ok(()),
            other => Err(format!("{other:?} vs {total}")),
        },
    );
    // Every rule evaluated (at least once after the last data) without error.
    let groups = eventually("every rule group evaluated", 30, || {
        let doc = get_json(&format!("{prom}/api/v1/rules"));
        let groups = doc["data"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let bad: Vec<String> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if groups.is_empty() || !bad.is_empty() {
            Err(format!("{bad:?}"))
        } else {
            Ok(groups)
        }
    });
    let mut empty = Vec::new();
    let mut checked = 0;
    for rule in groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
    {
        let name = rule["name"].as_str().unwrap_or_default().to_string();
        let query = match rule["type"].as_str() {
            Some("recording") => name.clone(),
            _ => without_final_comparison(rule["query"].as_str().unwrap_or_default()),
        };
        let rows = eventually(&format!("{name} has data"), 20, || {
            let rows = promql(&prom, &query);
            if rows.is_empty() {
                Err(query.clone())
            } else {
                Ok(rows)
            }
        });
        if rows.iter().all(|r| r.value.is_nan()) {
            empty.push(format!("{name}: only NaN for {query}"));
        }
        checked += 1;
    }
    let mut queries = 0;
    for path in files("dashboards", "json") {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard"))
                .expect("dashboard JSON");
        let (exprs, vars) = dashboard_queries(&dashboard);
        for (panel, expr) in exprs {
            let expr = substitute(&expr);
            if promql(&prom, &expr).is_empty() {
                empty.push(format!("{}: panel {panel:?}: {expr}", path.display()));
            }
            queries += 1;
        }
        for var in vars {
            // label_values(selector, label)
            let inner = var
                .trim_start_matches("label_values(")
                .trim_end_matches(')')
                .to_string();
            let (selector, label) = inner.rsplit_once(',').expect("label_values(m, label)");
            let selector = substitute(selector.trim());
            let url = format!(
                "{prom}/api/v1/label/{}/values?match[]={}",
                label.trim(),
                encode(&selector)
            );
            let values = get_json(&url);
            if values["data"].as_array().is_none_or(|v| v.is_empty()) {
                empty.push(format!("{}: variable {var}", path.display()));
            }
            queries += 1;
        }
    }
    println!(
        "{checked} rules and alerts, {queries} dashboard queries and variables: {} without data",
        empty.len()
    );
    assert!(empty.is_empty(), "no data:\n{}", empty.join("\n"));
}

#[test]
fn final_comparisons_are_found() {
    assert_eq!(without_final_comparison("a > 0.5"), "a");
    assert_eq!(
        without_final_comparison("((a <= b) or b) > (14.4 * 0.01)"),
        "((a <= b) or b)"
    );
    assert_eq!(
        without_final_comparison("sum by (job) (x{error_type!=\"\", y=~\"a>b\"}) > 0"),
        "sum by (job) (x{error_type!=\"\", y=~\"a>b\"})"
    );
    assert_eq!(without_final_comparison("up == 0"), "up");
    assert_eq!(without_final_comparison("rate(x[5m])"), "rate(x[5m])");
}
