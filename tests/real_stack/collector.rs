//! `otel-collector.yaml` run by the real collector: the main example exports to it over HTTP and
//! gRPC; Prometheus 3 scrapes its prometheus exporter, Jaeger receives its traces, its file
//! exporter feeds `genscope report`, and each answer is compared with what genscope itself saw.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{
    Peer, eventually, get_json, http_get, peers, prometheus_config, promql, repo, require_free,
    run_example, start_prometheus,
};
use crate::otlp::{Span, logs_in_file, spans_in_file};

/// The ports otel-collector.yaml and tests/real_stack/jaeger.yaml listen on.
const COLLECTOR_PORTS: [u16; 3] = [4317, 4318, 8889];
const JAEGER_PORTS: [u16; 3] = [14317, 14318, 16686];

/// Starts the collector on otel-collector.yaml in `dir` (its file exporter writes there), with
/// `overlays` merged over it (`--config` files, later ones win).
pub fn start_collector(peers: &Path, dir: &Path, overlays: &[PathBuf]) -> Peer {
    let mut args = vec![
        "--config".to_string(),
        repo().join("otel-collector.yaml").display().to_string(),
    ];
    for o in overlays {
        args.push("--config".into());
        args.push(o.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut peer = Peer::start_with_env(
        "otelcol",
        &peers.join("otelcol"),
        &args,
        dir,
        &[("OTLP_BACKEND_ENDPOINT", "127.0.0.1:14317")],
    );
    // The overlays of the fault tests leave the prometheus exporter (8889) out of the pipelines.
    let ports: &[u16] = if overlays.is_empty() {
        &COLLECTOR_PORTS
    } else {
        &COLLECTOR_PORTS[..2]
    };
    for port in ports {
        peer.wait_port(*port);
    }
    peer
}

/// Starts Jaeger from tests/real_stack/jaeger.yaml; returns it and its query base URL.
pub fn start_jaeger(peers: &Path, dir: &Path) -> (Peer, String) {
    for port in JAEGER_PORTS {
        require_free(port);
    }
    let config = repo().join("tests/real_stack/jaeger.yaml");
    let config = config.display().to_string();
    // Its own request tracing would go to the OTel SDK's default endpoint, the collector's 4318.
    let mut peer = Peer::start_with_env(
        "jaeger",
        &peers.join("jaeger"),
        &["--config", &config],
        dir,
        &[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "true"),
        ],
    );
    let base = "http://127.0.0.1:16686".to_string();
    peer.wait_ready(&format!("{base}/api/services"));
    peer.wait_port(14317);
    (peer, base)
}

#[test]
fn the_collector_validates_otel_collector_yaml() {
    let Some(peers) = peers("the_collector_validates_otel_collector_yaml") else {
        return;
    };
    let out = Command::new(peers.join("otelcol"))
        .arg("validate")
        .arg("--config")
        .arg(repo().join("otel-collector.yaml"))
        .output()
        .expect("otelcol validate");
    assert!(
        out.status.success(),
        "otelcol validate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And a config with a typo is refused (the check can fail).
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(repo().join("otel-collector.yaml")).expect("config");
    std::fs::write(
        &bad,
        text.replace("memory_limiter:\n    check", "memory_limitr:\n    check"),
    )
    .expect("write");
    let out = Command::new(peers.join("otelcol"))
        .args(["validate", "--config"])
        .arg(&bad)
        .output()
        .expect("otelcol validate");
    assert!(!out.status.success(), "a broken config validated");
}

/// `sum by (label) (expr)` as a map from the label's value ("" when absent) to the value.
fn by_label(base: &str, expr: &str, label: &str) -> BTreeMap<String, f64> {
    promql(base, &format!("sum by ({label}) ({expr})"))
        .into_iter()
        .map(|s| (s.labels.get(label).cloned().unwrap_or_default(), s.value))
        .collect()
}

/// The analyzer's `{bounds, counts}` as cumulative `le` -> count.
fn cumulative(h: &Value) -> BTreeMap<String, f64> {
    let bounds: Vec<f64> = serde_json::from_value(h["bounds"].clone()).expect("bounds");
    let counts: Vec<u64> = serde_json::from_value(h["counts"].clone()).expect("counts");
    let mut out = BTreeMap::new();
    let mut running = 0u64;
    for (i, c) in counts.iter().enumerate() {
        running += c;
        let le = bounds.get(i).map_or("+Inf".to_string(), |b| le_text(*b));
        out.insert(le, running as f64);
    }
    out
}

/// An `le` label value normalized (Prometheus writes `0.005`, `1`, `+Inf`, sometimes `1.0`).
fn le_text(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// Checks what Prometheus stored for the example against the example's own analyzer.
pub fn assert_prometheus_matches(base: &str, doc: &Value) {
    let total = doc["requests_total"].as_f64().expect("requests_total");
    assert!(total > 20.0, "the example served only {total} requests");
    eventually("Prometheus holds the example's request count", 60, || {
        let got = promql(base, "sum(genscope_generation_requests_total)");
        match got.first() {
            Some(s) if s.value == total => Ok(()),
            other => Err(format!("PromQL {other:?}, analyzer {total}")),
        }
    });
    let want: BTreeMap<String, f64> =
        serde_json::from_value(doc["requests_by_error_type"].clone()).expect("by error type");
    let got = by_label(base, "genscope_generation_requests_total", "error_type");
    assert_eq!(got, want, "requests by error.type: PromQL vs analyzer");
    for (name, prom) in [
        (
            "genscope.generation.duration",
            "genscope_generation_duration_seconds",
        ),
        (
            "gen_ai.server.time_to_first_token",
            "gen_ai_server_time_to_first_token_seconds",
        ),
    ] {
        let h = &doc["histograms"][name];
        assert!(
            h.is_object(),
            "the analyzer has no {name}: {}",
            doc["histograms"]
        );
        let want = cumulative(h);
        let got: BTreeMap<String, f64> = by_label(base, &format!("{prom}_bucket"), "le")
            .into_iter()
            .map(|(le, v)| {
                let le = le.parse::<f64>().map_or(le, le_text);
                (le, v)
            })
            .collect();
        assert_eq!(got, want, "{prom} buckets: PromQL vs analyzer");
        let count = promql(base, &format!("sum({prom}_count)"));
        assert_eq!(count[0].value, h["count"].as_f64().unwrap(), "{prom}_count");
        let sum = promql(base, &format!("sum({prom}_sum)"))[0].value;
        let want_sum = h["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{prom}_sum {sum} vs analyzer {want_sum}"
        );
    }
}

/// Every span genscope wrote to its own file is in Jaeger, with the same parent, kind, status,
/// name and resource.
pub fn assert_jaeger_has(base: &str, sent: &[Span], at_least: usize) {
    let mut traces: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in sent {
        traces.entry(&s.trace_id).or_default().push(s);
    }
    let requests: Vec<&str> = traces
        .iter()
        .filter(|(_, spans)| spans.iter().any(|s| s.name.starts_with("generate")))
        .map(|(id, _)| *id)
        .collect();
    assert!(
        requests.len() >= at_least,
        "only {} request traces",
        requests.len()
    );
    for id in &requests {
        let want = &traces[id];
        let got = eventually(&format!("Jaeger has every span of trace {id}"), 30, || {
            let (status, body) = http_get(&format!("{base}/api/v3/traces/{id}"))?;
            if status != 200 {
                return Err(format!("{status}: {body}"));
            }
            let doc: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let spans = crate::otlp::spans_of(&doc["result"]);
            if spans.len() < want.len() {
                return Err(format!("{} of {} spans", spans.len(), want.len()));
            }
            Ok(spans)
        });
        let got: BTreeMap<&str, &Span> = got.iter().map(|s| (s.span_id.as_str(), s)).collect();
        assert_eq!(got.len(), want.len(), "trace {id}: span count");
        for w in want {
            let g = got
                .get(w.span_id.as_str())
                .unwrap_or_else(|| panic!("trace {id}: span {} ({}) missing", w.span_id, w.name));
            assert_eq!(
                (&g.name, &g.parent_span_id, g.kind, g.status),
                (&w.name, &w.parent_span_id, w.kind, w.status),
                "trace {id}: span {} (name, parent, kind, status)",
                w.span_id
            );
            assert_eq!(g.resource, w.resource, "trace {id}: resource of {}", w.name);
            for (k, v) in &w.attributes {
                assert_eq!(g.attributes.get(k), Some(v), "trace {id}: {}'s {k}", w.name);
            }
        }
    }
    println!(
        "Jaeger returned all spans of {} request traces",
        requests.len()
    );
}

fn finding_ids(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_collector_forwards_to_prometheus_jaeger_and_its_file() {
    let Some(peers) = peers("the_collector_forwards_to_prometheus_jaeger_and_its_file") else {
        return;
    };
    for port in COLLECTOR_PORTS {
        require_free(port);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (_jaeger, jaeger) = start_jaeger(&peers, dir);
    let _collector = start_collector(&peers, dir, &[]);
    let config = prometheus_config(dir, &["127.0.0.1:8889"]);
    let (_prom, prom) = start_prometheus(&peers, dir, &config, &[]);

    let own = dir.join("genscope.jsonl");
    let own_text = own.display().to_string();
    let (out, doc) = run_example(
        dir,
        6,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("GENSCOPE_FILE_EXPORT", &own_text),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning: telemetry export"), "{stderr}");

    assert_prometheus_matches(&prom, &doc);
    println!(
        "PromQL over the collector's prometheus exporter = the analyzer: {} requests",
        doc["requests_total"]
    );

    let sent = spans_in_file(&own);
    assert_eq!(
        sent.len() as u64,
        doc["spans_ended"].as_u64().unwrap(),
        "genscope's own file holds every ended span"
    );
    assert_jaeger_has(&jaeger, &sent, 20);

    // The collector's file exporter: every span, and `genscope report` finds what the live
    // run found.
    let file = dir.join("genscope-collector.jsonl");
    eventually("the collector's file holds every span", 30, || {
        let n = spans_in_file(&file)
            .iter()
            .filter(|s| s.resource == sent[0].resource)
            .count();
        if n == sent.len() {
            Ok(())
        } else {
            Err(format!("{n} of {}", sent.len()))
        }
    });
    // Logs: the example's WARN and INFO events reached the collector's file as log records, each
    // carrying the trace and span id of a span that is in the same file.
    let logs = eventually(
        "the collector's file holds the example's log records",
        30,
        || {
            let logs = logs_in_file(&file);
            let mine = logs
                .iter()
                .filter(|l| l.body == "generation failed")
                .count();
            if mine > 0 && logs.len() == logs_in_file(&own).len() {
                Ok(logs)
            } else {
                Err(format!("{} records, {mine} failures", logs.len()))
            }
        },
    );
    let at_collector = spans_in_file(&file);
    // A record emitted outside any span (genscope's own startup notes, such as "no GPU metrics")
    // carries no trace id; every record that names a span names one the collector has, and every
    // failure record names one.
    for l in logs.iter().filter(|l| l.body == "generation failed") {
        assert!(
            !l.trace_id.is_empty() && !l.span_id.is_empty(),
            "failure log outside a span: {l:?}"
        );
    }
    for l in logs.iter().filter(|l| !l.trace_id.is_empty()) {
        assert!(
            at_collector
                .iter()
                .any(|s| s.trace_id == l.trace_id && s.span_id == l.span_id),
            "log {:?} ({}) names span {}/{} the collector does not have",
            l.body,
            l.severity,
            l.trace_id,
            l.span_id
        );
    }
    println!(
        "{} log records at the collector, {} in a span it has ({} WARN), {} outside any span",
        logs.len(),
        logs.iter().filter(|l| !l.trace_id.is_empty()).count(),
        logs.iter().filter(|l| l.severity == "WARN").count(),
        logs.iter().filter(|l| l.trace_id.is_empty()).count()
    );
    let cli = Command::new(crate::harness::cli())
        .arg("report")
        .arg(&file)
        .args(["--format", "json"])
        .output()
        .expect("genscope report");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let from_file: Value = serde_json::from_slice(&cli.stdout).expect("report json");
    let (live, filed) = (finding_ids(&doc["report"]), finding_ids(&from_file));
    assert_eq!(filed, live, "findings: collector file vs live run");
    assert_eq!(
        from_file["health"]["status"], doc["report"]["health"]["status"],
        "health: collector file vs live run"
    );
    println!("genscope report on the collector's file: findings {filed:?}, as live");
    let _ = get_json(&format!("{prom}/api/v1/status/buildinfo"));
}

#[test]
fn the_example_exports_to_the_collector_over_grpc() {
    let Some(peers) = peers("the_example_exports_to_the_collector_over_grpc") else {
        return;
    };
    for port in COLLECTOR_PORTS {
        require_free(port);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let _collector = start_collector(&peers, dir, &[]);
    let (out, doc) = run_example(
        dir,
        4,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning: telemetry export"), "{stderr}");
    let spans = doc["spans_ended"].as_u64().unwrap() as usize;
    let file = dir.join("genscope-collector.jsonl");
    eventually(
        "the collector's file holds every span sent over gRPC",
        30,
        || {
            let n = spans_in_file(&file).len();
            if n == spans {
                Ok(())
            } else {
                Err(format!("{n} of {spans}"))
            }
        },
    );
    // The prometheus exporter, read directly: the request count the analyzer has.
    let total = doc["requests_total"].as_f64().unwrap();
    eventually(
        "the prometheus exporter shows the request count",
        30,
        || {
            let (_, body) = http_get("http://127.0.0.1:8889/metrics")?;
            let sum: f64 = body
                .lines()
                .filter(|l| l.starts_with("genscope_generation_requests_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if sum == total {
                Ok(())
            } else {
                Err(format!("{sum} vs {total}"))
            }
        },
    );
    println!("gRPC: {spans} spans in the collector's file, {total} requests on :8889");
}
