//! The HTML report in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads the page with no console messages, and its charts have drawn content: every
//! chart's polylines carry points in the rendered DOM, and the screenshot has pixels of the
//! series colors. A control page with a `console.error` proves the console check can fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use genscope::analyzer::otlp_file;
use genscope::analyzer::report::{
    Chart, ChartSeries, HealthStatus, InstanceSummary, Report, ReportConfig,
};
use genscope::config::Sampling;
use genscope::gpu::{FakeDevice, FakeGpu};
use opentelemetry::KeyValue;

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Chromium, or `None` with a skip line (a failure where `GENSCOPE_REQUIRE_CHROMIUM` is set).
fn chromium_or_skip() -> Option<PathBuf> {
    let bin = chromium();
    if bin.is_none() {
        assert!(
            std::env::var_os("GENSCOPE_REQUIRE_CHROMIUM").is_none(),
            "GENSCOPE_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("chromium not installed; skipped (CI installs it)");
    }
    bin
}

/// Runs headless Chromium on `page`; returns (stdout, stderr).
fn run_chromium(bin: &Path, profile: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(":CONSOLE")).collect()
}

/// A report with every chart populated: generation, queue, host, process and a fake GPU.
fn report() -> Report {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.jsonl");
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .file_export(&file)
        .metric_export_interval(Duration::from_millis(100))
        .host_metrics(Sampling::Every(Duration::from_millis(50)))
        .gpu_metrics(Sampling::Every(Duration::from_millis(50)))
        .gpu_backend(FakeGpu::new(vec![FakeDevice::typical(0)]))
        .build()
        .unwrap();
    let g = telemetry.metrics().generation().unwrap();
    let attrs = [KeyValue::new("genscope.model.type", "image")];
    for round in 0..10u64 {
        g.set_queue_size(round * 3);
        for i in 0..10u64 {
            g.record_queue_wait(Duration::from_millis(100 * round), &attrs);
            g.record_generation(Duration::from_millis(200 + i * 20), None, &attrs);
        }
        std::thread::sleep(Duration::from_millis(110));
    }
    telemetry.shutdown().unwrap();
    let loaded = otlp_file::load(&[&file]).unwrap();
    Report::compute(&loaded.store, loaded.window(None), &ReportConfig::default())
}

#[test]
fn the_html_report_renders_in_chromium_with_drawn_charts_and_no_console_messages() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let report = report();
    let ids: Vec<&str> = report.charts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        ["latency", "throughput", "queue", "utilization", "memory"]
    );
    let page = dir.path().join("report.html");
    std::fs::write(&page, report.to_html()).unwrap();

    // The console check can fail: a control page that logs an error is caught.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<html><body><script>console.error('control')</script></body></html>",
    )
    .unwrap();
    let (_, stderr) = run_chromium(
        &bin,
        &dir.path().join("p0"),
        &control,
        &["--dump-dom".into()],
    );
    assert!(
        console_lines(&stderr).iter().any(|l| l.contains("control")),
        "{stderr}"
    );

    // The report: no console messages; every chart has polylines with at least two points.
    let (dom, stderr) = run_chromium(&bin, &dir.path().join("p1"), &page, &["--dump-dom".into()]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console: {:?}",
        console_lines(&stderr)
    );
    for id in &ids {
        let start = dom
            .find(&format!("data-chart=\"{id}\""))
            .unwrap_or_else(|| panic!("chart {id} not in the DOM"));
        let svg = &dom[start..start + dom[start..].find("</svg>").unwrap()];
        // Series lines are 2 px wide (the axes and ticks, also polylines, 1 px).
        let drawn = svg
            .split("<polyline")
            .skip(1)
            .filter(|p| {
                p.split("/>")
                    .next()
                    .unwrap_or("")
                    .contains("stroke-width=\"2\"")
            })
            .filter(|p| {
                p.split("points=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .is_some_and(|pts| pts.split_whitespace().count() >= 2)
            })
            .count();
        assert!(drawn >= 1, "chart {id} has no drawn series");
        // A real time axis: at least three UTC clock ticks (HH:MM, with seconds and tenths on short windows) under it.
        let ticks = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| t.split('>').nth(1)?.split('<').next())
            .map(str::trim)
            .filter(|t| {
                t.len() >= 5
                    && t.as_bytes()[2] == b':'
                    && t.chars()
                        .all(|c| c.is_ascii_digit() || c == ':' || c == '.')
            })
            .count();
        assert!(ticks >= 3, "chart {id} has {ticks} time ticks");
    }
    assert!(dom.contains("id=\"health\""));

    // The screenshot: pixels of the first series color (#2563eb) in quantity.
    let shot = dir.path().join("report.png");
    let (_, stderr) = run_chromium(
        &bin,
        &dir.path().join("p2"),
        &page,
        &[
            "--window-size=1100,2600".into(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(console_lines(&stderr).is_empty());
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let blue = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|px| {
            px[0].abs_diff(0x25) < 40 && px[1].abs_diff(0x63) < 40 && px[2].abs_diff(0xeb) < 40
        })
        .count();
    assert!(blue > 500, "only {blue} series-colored pixels");
    if let Ok(keep) = std::env::var("GENSCOPE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn a_fleet_of_a_hundred_instances_renders_its_table_and_a_line_each() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut report = report();
    let base = report
        .charts
        .iter()
        .find(|c| c.id == "throughput")
        .expect("a throughput chart")
        .series[0]
        .points
        .clone();
    let names: Vec<String> = (0..100).map(|i| format!("gen-{i:03}")).collect();
    report.charts.insert(
        0,
        Chart {
            id: "fleet-throughput".into(),
            title: "Requests per second per instance".into(),
            unit: "{request}/s".into(),
            series: names
                .iter()
                .enumerate()
                .map(|(i, n)| ChartSeries {
                    name: n.clone(),
                    points: base.iter().map(|p| [p[0], p[1] + i as f64]).collect(),
                })
                .collect(),
        },
    );
    report.instances = names
        .iter()
        .enumerate()
        .map(|(i, n)| InstanceSummary {
            instance: n.clone(),
            health: if i == 7 {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            },
            naming: "genscope".into(),
            requests_per_s: Some(10.0 + i as f64),
            error_rate: Some(0.0),
            duration_p50_s: Some(0.2),
            duration_p95_s: Some(0.4),
            queue_mean: Some(1.0),
            kv_cache_peak: None,
            cpu_mean: Some(0.3),
            gpu_mean: None,
            findings: Vec::new(),
        })
        .collect();
    let page = dir.path().join("fleet.html");
    std::fs::write(&page, report.to_html()).unwrap();
    let (dom, stderr) = run_chromium(&bin, &dir.path().join("p"), &page, &["--dump-dom".into()]);
    assert!(
        console_lines(&stderr).is_empty(),
        "console: {:?}",
        console_lines(&stderr)
    );
    assert_eq!(dom.matches("<tr data-instance=\"gen-").count(), 100);
    assert!(dom.contains("<span class=\"status degraded\">degraded</span>"));
    let at = dom.find("data-chart=\"fleet-throughput\"").unwrap();
    let figure = &dom[at..at + dom[at..].find("</figure>").unwrap()];
    assert_eq!(figure.matches("<li data-series=\"gen-").count(), 100);
    assert_eq!(
        figure.matches("stroke-width=\"2\" points=").count(),
        100,
        "a drawn line per instance"
    );
}
