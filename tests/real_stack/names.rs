//! Name agreement: every series name and label name on genscope's own `/metrics` equals what the
//! collector's prometheus exporter exposes and what Prometheus 3 stores from OTLP (its default
//! translation). Dashboards break on name drift; this test lists every difference.

use std::collections::{BTreeMap, BTreeSet};

use crate::collector::start_collector;
use crate::harness::{
    encode, eventually, free_port, get_json, http_get, peers, prometheus_config, require_free,
    run_example, start_prometheus,
};

/// Series name -> the union of its label names.
pub type Names = BTreeMap<String, BTreeSet<String>>;

/// Series names and label names of a text exposition. Written here (a few lines) because the
/// parsing crates fold `_bucket`/`_sum`/`_count` into one family, and the names are the point.
pub fn exposition_names(text: &str) -> Names {
    let mut out = Names::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..end].to_string();
        let mut labels = BTreeSet::new();
        if line[end..].starts_with('{') {
            let mut rest = &line[end + 1..];
            while let Some(eq) = rest.find('=') {
                let key = rest[..eq].trim_start_matches(',').trim();
                if key.is_empty() || key.starts_with('}') {
                    break;
                }
                labels.insert(key.to_string());
                // Skip the quoted value, honouring escapes.
                let value = &rest[eq + 1..];
                let mut chars = value.char_indices().skip(1);
                let mut close = value.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            close = i;
                            break;
                        }
                        _ => {}
                    }
                }
                rest = &value[(close + 1).min(value.len())..];
                if rest.starts_with('}') {
                    break;
                }
            }
        }
        out.entry(name).or_default().extend(labels);
    }
    out
}

/// Series names and label names Prometheus holds (all series).
fn stored_names(base: &str) -> Names {
    let doc = get_json(&format!(
        "{base}/api/v1/series?match[]={}",
        encode("{__name__=~\".+\"}")
    ));
    let mut out = Names::new();
    for s in doc["data"].as_array().into_iter().flatten() {
        let obj = s.as_object().expect("series");
        let name = obj["__name__"].as_str().unwrap_or_default().to_string();
        out.entry(name)
            .or_default()
            .extend(obj.keys().filter(|k| *k != "__name__").cloned());
    }
    out
}

/// The differences between two name tables, one line each.
pub fn differences(left: (&str, &Names), right: (&str, &Names)) -> Vec<String> {
    let mut out = Vec::new();
    for (name, labels) in left.1 {
        match right.1.get(name) {
            None => out.push(format!("{name}: on {} only", left.0)),
            Some(other) if other != labels => out.push(format!(
                "{name}: labels {:?} on {}, {:?} on {}",
                labels.difference(other).collect::<Vec<_>>(),
                left.0,
                other.difference(labels).collect::<Vec<_>>(),
                right.0
            )),
            Some(_) => {}
        }
    }
    for name in right.1.keys() {
        if !left.1.contains_key(name) {
            out.push(format!("{name}: on {} only", right.0));
        }
    }
    out
}

/// Labels a scraper or an OTLP receiver adds (from the target or `service.*`) and genscope's
/// own exposition cannot: `job` and `instance`. On `target_info` genscope keeps the `service.*`
/// attributes those two are made from.
fn without_target_labels(mut names: Names, own: bool) -> Names {
    for (name, labels) in names.iter_mut() {
        labels.remove("job");
        labels.remove("instance");
        if own && name == "target_info" {
            labels.remove("service_name");
            labels.remove("service_instance_id");
            labels.remove("service_namespace");
        }
    }
    names
}

/// Compares the three paths' names, prints the outcome, and fails on any difference.
fn assert_same_names(what: &str, own: &Names, collector: &Names, stored: &Names) {
    let mut diffs = differences(("genscope /metrics", own), ("collector :8889", collector));
    diffs.extend(differences(
        ("genscope /metrics", own),
        ("Prometheus OTLP", stored),
    ));
    println!(
        "{what}, {} series names compared on three paths; differences: {}",
        own.len(),
        if diffs.is_empty() {
            "none".to_string()
        } else {
            diffs.join("; ")
        }
    );
    assert!(diffs.is_empty(), "name drift:\n{}", diffs.join("\n"));
}

#[test]
fn series_and_label_names_agree_across_genscope_collector_and_prometheus() {
    let Some(peers) =
        peers("series_and_label_names_agree_across_genscope_collector_and_prometheus")
    else {
        return;
    };
    for port in [4317, 4318, 8889] {
        require_free(port);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let _collector = start_collector(&peers, dir, &[]);
    let config = prometheus_config(dir, &[]);
    let (_prom, prom) = start_prometheus(&peers, dir, &config, &["--web.enable-otlp-receiver"]);

    // Run 1: OTLP to the collector, and genscope's /metrics read while it runs.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("http://{addr}/metrics");
    let own = std::thread::scope(|s| {
        let poller = s.spawn(|| {
            let mut last = String::new();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(40);
            while std::time::Instant::now() < until {
                match http_get(&url) {
                    Ok((200, body)) => last = body,
                    _ if !last.is_empty() => break,
                    _ => {}
                }
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            last
        });
        run_example(
            dir,
            5,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("GENSCOPE_PROMETHEUS_ADDR", &addr),
            ],
            &["--fake-gpu"],
        );
        poller.join().expect("poller")
    });
    assert!(own.contains("genscope_generation_requests_total"), "{own}");
    let collector = eventually("the collector exposes the last collection", 30, || {
        let (_, body) = http_get("http://127.0.0.1:8889/metrics")?;
        let names = exposition_names(&body);
        let want = exposition_names(&own);
        if want.keys().all(|k| names.contains_key(k)) {
            Ok(names)
        } else {
            Err(format!(
                "missing {:?}",
                want.keys()
                    .filter(|k| !names.contains_key(*k))
                    .collect::<Vec<_>>()
            ))
        }
    });

    // Run 2: OTLP straight to Prometheus 3.
    let otlp = format!("{prom}/api/v1/otlp/v1/metrics");
    run_example(
        dir,
        5,
        &[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &otlp),
            // Spans and logs still go to the collector, so their exporters' self-metrics exist.
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces",
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://127.0.0.1:4318/v1/logs",
            ),
        ],
        &["--fake-gpu"],
    );
    let own = without_target_labels(exposition_names(&own), true);
    let collector = without_target_labels(collector, false);
    let stored = eventually("Prometheus holds every series", 30, || {
        let stored = without_target_labels(stored_names(&prom), false);
        if own.keys().all(|k| stored.contains_key(k)) {
            Ok(stored)
        } else {
            Err(format!(
                "missing {:?}",
                own.keys()
                    .filter(|k| !stored.contains_key(*k))
                    .collect::<Vec<_>>()
            ))
        }
    });
    assert_same_names("the main example", &own, &collector, &stored);
}

#[test]
fn exposition_names_reads_labels_with_escapes() {
    let names = exposition_names(
        "# HELP a_total x\na_total{a=\"x\\\"}y\",b=\"\"} 1\nb 2\nc_bucket{le=\"+Inf\"} 3\n",
    );
    assert_eq!(
        names["a_total"],
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
    assert!(names["b"].is_empty());
    assert_eq!(names["c_bucket"], BTreeSet::from(["le".to_string()]));
}

/// Records one value of every catalog definition (each attribute it declares set), so the
/// catalogs the main example does not use (HTTP, database, users) are compared too.
fn record_every_catalog_metric(telemetry: &genscope::Genscope) -> usize {
    let all = genscope::instruments::catalog::all();
    for d in &all {
        let attrs: Vec<opentelemetry::KeyValue> = d
            .attributes()
            .map(|keys| {
                keys.iter()
                    .map(|k| opentelemetry::KeyValue::new(k.to_string(), "1"))
                    .collect()
            })
            .unwrap_or_default();
        let metric = telemetry
            .metrics()
            .create_metric(d.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", d.name()));
        metric
            .record(1.0, &attrs)
            .unwrap_or_else(|e| panic!("{}: {e}", d.name()));
    }
    all.len()
}

fn catalog_genscope(
    name: &str,
    endpoint: &str,
    prometheus: Option<std::net::SocketAddr>,
) -> genscope::Genscope {
    use genscope::config::{ExporterKind, Protocol, Sampling};
    let mut b = genscope::Genscope::builder()
        .ignore_environment()
        .service_name(name)
        .metrics_endpoint(endpoint)
        .protocol(Protocol::HttpProtobuf)
        .metrics_exporters([ExporterKind::Otlp])
        .traces_exporters([])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .metric_export_interval(std::time::Duration::from_millis(500));
    if let Some(addr) = prometheus {
        b = b.prometheus_addr(addr);
    }
    b.build().expect("genscope")
}

#[test]
fn every_catalog_metric_has_the_same_names_on_the_three_paths() {
    let Some(peers) = peers("every_catalog_metric_has_the_same_names_on_the_three_paths") else {
        return;
    };
    for port in [4317, 4318, 8889] {
        require_free(port);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let _collector = start_collector(&peers, dir, &[]);
    let config = prometheus_config(dir, &[]);
    let (_prom, prom) = start_prometheus(&peers, dir, &config, &["--web.enable-otlp-receiver"]);

    let own_addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let to_collector = catalog_genscope(
        "catalog-names",
        "http://127.0.0.1:4318/v1/metrics",
        Some(own_addr),
    );
    let to_prometheus = catalog_genscope(
        "catalog-names",
        &format!("{prom}/api/v1/otlp/v1/metrics"),
        None,
    );
    let n = record_every_catalog_metric(&to_collector);
    record_every_catalog_metric(&to_prometheus);
    to_collector.force_flush().expect("flush to the collector");
    let url = format!(
        "http://{}/metrics",
        to_collector.prometheus_addr().expect("addr")
    );
    let own = eventually("genscope's /metrics has every catalog metric", 20, || {
        let (_, body) = http_get(&url)?;
        let names = exposition_names(&body);
        if names.len() > n {
            Ok(names)
        } else {
            Err(format!("{} names", names.len()))
        }
    });
    to_collector.shutdown().expect("export to the collector");
    to_prometheus.shutdown().expect("export to Prometheus");
    let own = without_target_labels(own, true);
    let collector = eventually("the collector exposes every catalog metric", 30, || {
        let (_, body) = http_get("http://127.0.0.1:8889/metrics")?;
        let names = without_target_labels(exposition_names(&body), false);
        if own.keys().all(|k| names.contains_key(k)) {
            Ok(names)
        } else {
            Err("missing".into())
        }
    });
    let stored = eventually("Prometheus stores every catalog metric", 30, || {
        let names = without_target_labels(stored_names(&prom), false);
        if own.keys().all(|k| names.contains_key(k)) {
            Ok(names)
        } else {
            Err("missing".into())
        }
    });
    assert_same_names(
        &format!("{n} catalog definitions"),
        &own,
        &collector,
        &stored,
    );
}
