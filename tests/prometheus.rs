//! `/metrics` and `export_metrics`: Prometheus text 0.0.4 and OpenMetrics by content negotiation,
//! checked by two maintained parsers and by `promtool check metrics` when it is installed (CI
//! installs Debian's `prometheus`); the endpoint is enabled by `GENSCOPE_PROMETHEUS_ADDR`; file
//! exports are atomic.

mod common;

use std::time::Duration;

use common::http_get;
use genscope::Genscope;
use genscope::export::Format;
use genscope::instruments::MetricDefinition;
use opentelemetry::KeyValue;

fn populated(addr: &str) -> Genscope {
    let t = Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .service_name("prom-test")
        .prometheus_addr(addr.parse().unwrap())
        .build()
        .unwrap();
    let m = t.metrics();
    m.create_metric(
        MetricDefinition::timer("app.request.duration")
            .with_description("Request \"latency\"\nper route"),
    )
    .unwrap();
    for (route, ms) in [("/a", 12.0), ("/b", 230.0), ("/a", 3.0)] {
        m.record_histogram(
            "app.request.duration",
            ms / 1000.0,
            &[
                KeyValue::new("http.route", route),
                KeyValue::new("quote", "say \"hi\"\\"),
            ],
        )
        .unwrap();
    }
    m.increment_counter("app.requests", 3.0, &[KeyValue::new("http.route", "/a")])
        .unwrap();
    m.create_metric(MetricDefinition::gauge("app.memory.utilization").with_unit("1"))
        .unwrap();
    m.set_gauge("app.memory.utilization", 0.25, &[]).unwrap();
    m.add_up_down("app.queue.size", 4.0, &[]).unwrap();
    let genai = m.genai().unwrap();
    let a = genscope::instruments::catalog::genai::GenAiAttributes::new(
        genscope::instruments::catalog::genai::Operation::Chat,
        "self-hosted",
    )
    .unwrap();
    genai.record_tokens(&a, Some(10), Some(5));
    t.force_flush().unwrap();
    t
}

fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed; skipping its check (CI installs it)");
        return;
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 1 for lint findings too (e.g. naming advice); only parse errors matter here.
    assert!(
        !report.contains("error while linting") && !report.contains("text format parsing error"),
        "promtool: {report}\n{text}"
    );
}

#[test]
fn text_format_parses_and_translates_names() {
    let t = populated("127.0.0.1:0");
    let addr = t.prometheus_addr().unwrap();
    let (status, content_type, body) = http_get(addr, "/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");

    // Parser 1: prometheus-parse.
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("prometheus-parse");
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for expected in [
        "app_requests_total",
        "app_memory_utilization_ratio",
        "app_queue_size",
        "target_info",
        "gen_ai_client_token_usage", // buckets, grouped by the parser into one histogram sample
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let requests = scrape
        .samples
        .iter()
        .find(|s| s.metric == "app_requests_total")
        .unwrap();
    assert_eq!(requests.labels.get("http_route"), Some("/a"));
    assert!(matches!(requests.value, prometheus_parse::Value::Counter(v) if v == 3.0));
    let target = scrape
        .samples
        .iter()
        .find(|s| s.metric == "target_info")
        .unwrap();
    assert_eq!(target.labels.get("service_name"), Some("prom-test"));
    // Histogram: cumulative buckets ending in +Inf = count.
    assert!(body.contains("app_request_duration_seconds_bucket{http_route=\"/a\",quote=\"say \\\"hi\\\"\\\\\",le=\"+Inf\"} 2"), "{body}");
    assert!(body.contains("app_request_duration_seconds_count{http_route=\"/b\""));
    assert!(body.contains("# HELP app_request_duration_seconds Request \"latency\"\\nper route"));

    // Parser 2: openmetrics-parser's Prometheus text parser.
    openmetrics_parser::prometheus::parse_prometheus(&body).expect("openmetrics-parser (text)");
    promtool_check(&body);
    t.shutdown().unwrap();
}

#[test]
fn openmetrics_is_served_by_content_negotiation() {
    let t = populated("127.0.0.1:0");
    let addr = t.prometheus_addr().unwrap();
    let accept =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
    let (status, content_type, body) = http_get(addr, "/metrics", Some(accept));
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    let exposition = openmetrics_parser::openmetrics::parse_openmetrics(&body)
        .unwrap_or_else(|e| panic!("openmetrics-parser: {e:?}\n{body}"));
    assert!(exposition.families.contains_key("app_requests"));
    assert!(
        exposition
            .families
            .contains_key("app_request_duration_seconds")
    );
    assert!(
        body.contains("# UNIT app_memory_utilization_ratio ratio"),
        "{body}"
    );
    assert!(body.contains("app_requests_created{"));
    // `promtool check metrics` reads only the 0.0.4 text format; OpenMetrics is checked above.
    t.shutdown().unwrap();
}

#[test]
fn endpoint_is_enabled_by_the_environment_variable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // One process per test (nextest): changing this process's environment is safe here.
    unsafe {
        std::env::set_var("GENSCOPE_PROMETHEUS_ADDR", format!("127.0.0.1:{port}"));
        std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "200");
    }
    let t = Genscope::builder().console_logs(false).build().unwrap();
    assert_eq!(t.prometheus_addr().unwrap().port(), port);
    t.metrics()
        .increment_counter("app.ticks", 1.0, &[])
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut body = String::new();
    while std::time::Instant::now() < deadline {
        body = http_get(t.prometheus_addr().unwrap(), "/metrics", None).2;
        if body.contains("app_ticks_total 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(body.contains("app_ticks_total 1"), "{body}");
    t.shutdown().unwrap();
    // After shutdown nothing listens.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn bad_listen_addresses_are_config_errors() {
    for bad in ["localhost", "127.0.0.1:99999", "nonsense:1"] {
        let err = genscope::config::from_lookup(|k| {
            (k == "GENSCOPE_PROMETHEUS_ADDR").then(|| bad.to_string())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("GENSCOPE_PROMETHEUS_ADDR"),
            "{err}"
        );
    }
    let ok = genscope::config::from_lookup(|k| {
        (k == "GENSCOPE_PROMETHEUS_ADDR").then(|| ":9464".into())
    })
    .unwrap()
    .resolve()
    .unwrap();
    assert_eq!(
        ok.prometheus_addr,
        Some("127.0.0.1:9464".parse().unwrap()),
        "loopback by default"
    );
    // A port already taken is an error at startup, naming the setting.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = Genscope::builder()
        .ignore_environment()
        .prometheus_addr(taken.local_addr().unwrap())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("GENSCOPE_PROMETHEUS_ADDR"),
        "{err}"
    );
}

#[test]
fn export_metrics_writes_atomically_or_not_at_all() {
    let t = populated("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();

    let prom = dir.path().join("metrics.prom");
    t.export_metrics(&prom, Format::Prometheus).unwrap();
    let text = std::fs::read_to_string(&prom).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    promtool_check(&text);

    let om = dir.path().join("metrics.om");
    t.export_metrics(&om, Format::OpenMetrics).unwrap();
    openmetrics_parser::openmetrics::parse_openmetrics(&std::fs::read_to_string(&om).unwrap())
        .unwrap();

    let json = dir.path().join("metrics.json");
    t.export_metrics(&json, Format::OtlpJson).unwrap();
    let request: opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<String> = request.resource_metrics[0].scope_metrics[0]
        .metrics
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert!(names.contains(&"app.requests".to_string()), "{names:?}");

    // Overwriting replaces the whole file.
    std::fs::write(&prom, "old contents").unwrap();
    t.export_metrics(&prom, Format::Prometheus).unwrap();
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), text);

    // Failures return the error and leave nothing behind.
    let missing = dir.path().join("no/such/dir/m.prom");
    let err = t.export_metrics(&missing, Format::Prometheus).unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    let onto_dir = dir.path().join("a-directory");
    std::fs::create_dir(&onto_dir).unwrap();
    assert!(t.export_metrics(&onto_dir, Format::Prometheus).is_err());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".genscope-export-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    t.shutdown().unwrap();
}
