//! Reports end to end, from both inputs: a workload recorded through genscope (generation
//! metrics, operations, a fake GPU) is analyzed from the live store and from the OTLP JSON-lines
//! file the same pipeline wrote; both must give the same findings and figures. Then the
//! `genscope report` binary on that file, in every format, with bad input.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use genscope::analyzer::otlp_file;
use genscope::analyzer::report::{HealthStatus, Report, ReportConfig, SCHEMA, Severity};
use genscope::config::Sampling;
use genscope::gpu::{FakeDevice, FakeGpu, GpuMemory};
use opentelemetry::KeyValue;

/// Records a workload built to trip specific findings, and returns the telemetry handle.
fn run_workload(file: &std::path::Path) -> genscope::Genscope {
    let mut gpu = FakeDevice::typical(0);
    gpu.utilization = Some(genscope::gpu::EngineUtilization {
        gpu: 0.2,
        memory_controller: 0.1,
    });
    gpu.memory = Some(GpuMemory {
        total: 80 << 30,
        used: 76 << 30,
        free: 4 << 30,
        reserved: None,
    });
    gpu.throttle_reasons = Some(vec!["hw_slowdown"]);
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("report-test")
        .file_export(file)
        .metric_export_interval(Duration::from_millis(100))
        // Host metrics off: the real machine's load must not decide what fires (cpu-bound).
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Every(Duration::from_millis(50)))
        .gpu_backend(FakeGpu::new(vec![gpu]))
        .build()
        .unwrap();
    let g = telemetry.metrics().generation().unwrap();
    let ops = telemetry.operations();
    let attrs = [KeyValue::new("genscope.model.type", "image")];
    for round in 0..12u64 {
        g.set_queue_size(20 + round);
        for i in 0..20u64 {
            g.record_queue_wait(Duration::from_millis(2000), &attrs);
            let error = (i % 5 == 0).then_some("timeout");
            g.record_generation(Duration::from_millis(300 + (i % 10) * 10), error, &attrs);
        }
        let check = ops.health_check("sdxl");
        if round % 3 == 0 {
            check.fail("timeout", "no answer in 2 s");
        } else {
            check.succeed();
        }
        ops.fallback_strategy("sdxl", "sd-1.5", "out_of_memory")
            .succeed();
        if round % 4 == 0 {
            let d = ops.download("sdxl", "hub");
            std::thread::sleep(Duration::from_millis(50));
            d.add_bytes(1_000_000);
            d.succeed();
        }
        std::thread::sleep(Duration::from_millis(60));
    }
    telemetry.force_flush().unwrap();
    telemetry
}

fn ids(r: &Report) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.id.clone()).collect()
}

#[test]
fn live_store_and_file_give_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("telemetry.jsonl");
    let telemetry = run_workload(&file);
    // Shut down first: the last collection reaches both the store and the file.
    telemetry.shutdown().unwrap();
    let loaded = otlp_file::load(&[&file]).unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    // The same window for both: the span of the data.
    let window = loaded.window(None);
    let live = telemetry
        .analyzer()
        .report_with(window, &ReportConfig::default());

    let expected: BTreeSet<String> = [
        "gpu-underutilized-with-queue",
        "gpu-memory-pressure",
        "gpu-throttling",
        "high-error-rate",
        "queue-dominated-latency",
        "slow-downloads",
        "frequent-fallbacks",
        "failing-health-checks",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(ids(&live), expected, "{}", live.to_text());
    assert_eq!(
        live.health.status,
        HealthStatus::Unhealthy,
        "20 % errors is critical"
    );
    assert_eq!(
        live.finding("high-error-rate").unwrap().severity,
        Severity::Critical
    );
    assert_eq!(live.generation.requests, Some(240.0));
    assert_eq!(live.generation.failed, Some(48.0));
    assert_eq!(live.service.as_deref(), Some("report-test"));
    let ops: u64 = live
        .operations
        .iter()
        .filter(|o| o.kind == "health_check")
        .map(|o| o.count)
        .sum();
    assert_eq!(ops, 12);
    let hc = live
        .operation_types
        .iter()
        .find(|o| o.kind == "health_check")
        .unwrap();
    assert_eq!((hc.name.as_str(), hc.count), ("*", 12));
    assert!(
        (hc.success_rate - 8.0 / 12.0).abs() < 1e-9,
        "4 of 12 failed"
    );
    assert_eq!(hc.error_types, vec![("timeout".to_string(), 4)]);

    let from_file = Report::compute(&loaded.store, window, &ReportConfig::default());
    assert_eq!(ids(&from_file), ids(&live), "{}", from_file.to_text());
    assert_eq!(from_file.health, live.health);
    assert_eq!(from_file.generation.requests, live.generation.requests);
    assert_eq!(from_file.generation.failed, live.generation.failed);
    assert_eq!(from_file.generation.duration_s, live.generation.duration_s);
    assert_eq!(
        from_file.generation.queue_wait_s,
        live.generation.queue_wait_s
    );
    assert_eq!(from_file.service, live.service);
    assert_eq!(from_file.operations.len(), live.operations.len());
    for (a, b) in from_file.operations.iter().zip(&live.operations) {
        assert_eq!(
            (&a.kind, &a.name, a.count, a.p50_s),
            (&b.kind, &b.name, b.count, b.p50_s)
        );
    }
    for f in &live.findings {
        let g = from_file.finding(&f.id).unwrap();
        assert_eq!(g.severity, f.severity, "{}", f.id);
        assert!(
            (g.evidence.observed - f.evidence.observed).abs()
                <= 1e-9 * f.evidence.observed.abs().max(1.0),
            "{}: {} vs {}",
            f.id,
            g.evidence.observed,
            f.evidence.observed
        );
    }
    // Lines in any order, split over several files: the same report.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.reverse();
    let (a, b) = lines.split_at(lines.len() / 2);
    let (fa, fb) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&fa, a.join("\n")).unwrap();
    std::fs::write(&fb, format!("{}\n{{\"broken\": \n", b.join("\n"))).unwrap();
    let shuffled = otlp_file::load(&[&fb, &fa]).unwrap();
    assert_eq!(shuffled.problems.len(), 1, "{:?}", shuffled.problems);
    assert_eq!(shuffled.problems[0].line, b.len() + 1);
    let again = Report::compute(
        &shuffled.store,
        shuffled.window(None),
        &ReportConfig::default(),
    );
    assert_eq!(ids(&again), ids(&live));
    assert_eq!(again.generation.requests, live.generation.requests);
    assert_eq!(again.generation.duration_s, live.generation.duration_s);
}

#[test]
fn the_cli_reports_in_every_format_and_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("telemetry.jsonl");
    run_workload(&file).shutdown().unwrap();
    let bin = env!("CARGO_BIN_EXE_genscope");

    let out = Command::new(bin)
        .args(["report"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("health: UNHEALTHY"), "{text}");
    assert!(text.contains("queue-dominated-latency"), "{text}");
    assert!(text.lines().count() < 60, "a summary, not a dump: {text}");

    let out = Command::new(bin)
        .args(["report", "--format", "json", "--window", "1h"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["schema"], SCHEMA);
    let parsed: Report =
        serde_json::from_value(json).expect("the JSON document round-trips into Report");
    assert!(parsed.finding("gpu-memory-pressure").is_some());

    let html = dir.path().join("report.html");
    let out = Command::new(bin)
        .args(["report", "--format", "html", "--out"])
        .arg(&html)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>")
            && page.contains("<svg")
            && page.contains("gpu-throttling")
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );

    // Thresholds from a file change what fires.
    let thresholds = dir.path().join("thresholds.toml");
    std::fs::write(
        &thresholds,
        "[thresholds]\ngpu_memory_warning = 0.99\ngpu_memory_critical = 0.999\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["report", "--format", "json", "--thresholds"])
        .arg(&thresholds)
        .arg(&file)
        .output()
        .unwrap();
    let parsed: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed.finding("gpu-memory-pressure").is_none());

    // A malformed line is named and skipped; the report still comes.
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        format!(
            "{}\nthis is not json\n",
            std::fs::read_to_string(&file).unwrap().trim_end()
        ),
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["report"])
        .arg(&mixed)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mixed.jsonl:") && stderr.contains("not JSON"),
        "{stderr}"
    );

    // Unreadable file, bad thresholds, nothing usable, bad arguments.
    let out = Command::new(bin)
        .args(["report", "/nonexistent/telemetry.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/telemetry.jsonl")
    );
    std::fs::write(&thresholds, "[thresholds]\ngpu_memory_warning = \"high\"\n").unwrap();
    let out = Command::new(bin)
        .args(["report", "--thresholds"])
        .arg(&thresholds)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("thresholds.toml"));
    let junk = dir.path().join("junk.jsonl");
    std::fs::write(&junk, "junk\n").unwrap();
    let out = Command::new(bin)
        .args(["report"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no telemetry"));
    let out = Command::new(bin)
        .args(["report", "--format", "pdf"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .args(["report", "--window", "soon"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_endpoint_serves_the_report_beside_metrics() {
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .prometheus_addr("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap())
        .metric_export_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let g = telemetry.metrics().generation().unwrap();
    for _ in 0..30 {
        g.record_generation(Duration::from_millis(250), Some("timeout"), &[]);
    }
    telemetry.force_flush().unwrap();
    let addr = telemetry.prometheus_addr().unwrap();
    let (status, content_type, body) = common::http_get(addr, "/report?window=5m&refresh=1", None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    let report: Report = serde_json::from_str(&body).unwrap();
    assert_eq!(report.schema, SCHEMA);
    assert_eq!(report.generation.requests, Some(30.0));
    assert_eq!(
        report.health.status,
        HealthStatus::Unhealthy,
        "every request failed"
    );
    assert_eq!(report.window.seconds, 300.0);
    let (status, content_type, page) = common::http_get(addr, "/report.html", None);
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(page.contains("high-error-rate"));
    let (status, _, body) = common::http_get(addr, "/report?window=soon", None);
    assert_eq!(status, 400);
    assert!(body.contains("window=soon"), "{body}");
    let (status, _, _) = common::http_get(addr, "/report?colour=blue", None);
    assert_eq!(status, 400);
    assert_eq!(common::http_get(addr, "/metrics", None).0, 200);
    telemetry.shutdown().unwrap();
}

/// Inputs the fuzzer (fuzz/fuzz_targets/otlp_lines.rs) found crashing, kept as regressions.
#[test]
fn fuzz_regressions_load_and_report() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for name in [
        "fuzz-otlp-before-epoch.jsonl",
        "fuzz-otlp-histogram-buckets.jsonl",
    ] {
        let loaded = otlp_file::load(&[dir.join(name)]).unwrap();
        let report = Report::compute(&loaded.store, loaded.window(None), &ReportConfig::default());
        assert!(
            !report.to_text().is_empty() && !report.to_html().is_empty(),
            "{name}"
        );
        serde_json::to_string(&report).unwrap();
    }
}

/// The number after `label` on the summary line that starts with it (`label   12.34 / 5.6`).
fn summary_numbers(stdout: &str, label: &str) -> Vec<f64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(label) && l[label.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no summary line {label:?} in:\n{stdout}"));
    line[label.len()..]
        .split([' ', '/'])
        .filter_map(|w| w.parse::<f64>().ok())
        .collect()
}

#[test]
fn the_main_examples_summary_and_report_give_one_number_per_quantity() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = Command::new(common::llm_server::example("generation_service"))
        .args(["--seconds", "8", "--rate", "25", "--json"])
        .arg(&json)
        .arg("--report")
        .arg(dir.path().join("report.html"))
        .current_dir(dir.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("GENSCOPE_PROMETHEUS_ADDR")
        .env_remove("GENSCOPE_FILE_EXPORT")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .output()
        .expect("run the example (cargo nextest builds the examples)");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let report: Report = serde_json::from_value(doc["report"].clone()).unwrap();
    let g = &report.generation;
    // The window is the whole run: every request the example produced is in it.
    let produced: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split_once(" s (")?
                .1
                .split_once(" requests;")?
                .0
                .parse()
                .ok()
        })
        .expect("the summary's header line");
    assert_eq!(g.requests, Some(produced), "{stdout}");
    let close = |printed: f64, reported: f64, decimals: i32, what: &str| {
        let half_ulp = 0.5 * 10f64.powi(-decimals) + 1e-9;
        assert!(
            (printed - reported).abs() <= half_ulp,
            "{what}: summary {printed}, report {reported}\n{stdout}"
        );
    };
    close(
        summary_numbers(&stdout, "requests/s")[0],
        g.requests_per_s.unwrap(),
        2,
        "requests/s",
    );
    close(
        summary_numbers(&stdout, "output tokens/s")[0],
        g.output_tokens_per_s.unwrap(),
        2,
        "output tokens/s",
    );
    let d = summary_numbers(&stdout, "duration p50/p95/p99 s");
    for (i, (p, r)) in d.iter().zip(g.duration_s.unwrap()).enumerate() {
        close(*p, r, 3, &format!("duration quantile {i}"));
    }
    let ttft = summary_numbers(&stdout, "time to first token p50/p95 s");
    close(ttft[0], g.ttft_s.unwrap()[0], 4, "ttft p50");
    // The operations table: count, success, p50 ms, p95 ms per type, the report's figures, with
    // the percentiles from the span sketch (the default sampler exports every span).
    let kinds: Vec<&str> = report
        .operation_types
        .iter()
        .map(|o| o.kind.as_str())
        .collect();
    for kind in [
        "download",
        "model_operation",
        "health_check",
        "fallback_strategy",
    ] {
        assert!(kinds.contains(&kind), "no {kind} operations: {kinds:?}");
    }
    let table: String = stdout
        .lines()
        .skip_while(|l| !l.starts_with("operation "))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    for op in &report.operation_types {
        assert_eq!(op.percentiles_from, "span_sketch", "{op:?}");
        let v = summary_numbers(&table, &op.kind);
        assert_eq!(v[0], op.count as f64, "{} count\n{stdout}", op.kind);
        close(
            v[1],
            op.p50_s.unwrap() * 1e3,
            1,
            &format!("{} p50 ms", op.kind),
        );
        close(
            v[2],
            op.p95_s.unwrap() * 1e3,
            1,
            &format!("{} p95 ms", op.kind),
        );
    }
}
