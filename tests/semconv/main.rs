//! What the main example exports, checked against the semantic conventions: the official registry
//! (`../shared/semconv/v1.41.1`, the authority for names, types and units, named by the
//! dependency in `semconv/manifest.yaml`) plus genscope's own (`semconv/*.yaml`). The example runs with the fake GPU and
//! exports over OTLP/gRPC to a real receiver (`tests/common`, official protobufs); every metric
//! (name, instrument, unit) and every resource, span and metric attribute (name, type) is looked
//! up. A name is clean when the registry defines it and does not deprecate it.

mod registry;

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use registry::Registry;

/// Distinct violations (kind, name, detail) with how often each was seen.
type Violations = BTreeMap<(String, String, String), usize>;

/// The official registry genscope's manifest depends on: its release archive URL
/// (`.../archive/refs/tags/v1.41.1.zip[model]`) maps to `../shared/semconv/v1.41.1`.
fn official(manifest: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).expect("manifest YAML")[0];
    let url = doc["dependencies"][0]["registry_path"]
        .as_str()
        .expect("manifest: dependencies[0].registry_path");
    let version = url
        .split("/tags/")
        .nth(1)
        .and_then(|t| t.split(".zip").next())
        .unwrap_or_else(|| panic!("not a release archive URL: {url}"));
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/semconv")
        .join(version)
}

fn registry() -> Registry {
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("semconv");
    let root = official(&ours.join("manifest.yaml"));
    let mut r = Registry::load(&root).unwrap_or_else(|e| {
        panic!(
            "the official semantic-conventions registry is read from {} (the shared folder beside \
             the repository): {e}",
            root.display()
        )
    });
    let before = (r.attributes.len(), r.metrics.len());
    r.add(&ours).expect("genscope's registry");
    assert!(
        r.attributes.len() > before.0 && r.metrics.len() > before.1,
        "genscope's registry (semconv/) added nothing"
    );
    r
}

fn value_type(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(_)) => "string".into(),
        Some(Value::IntValue(_)) => "int".into(),
        Some(Value::DoubleValue(_)) => "double".into(),
        Some(Value::BoolValue(_)) => "boolean".into(),
        Some(Value::ArrayValue(a)) => {
            let inner = a.values.first().cloned();
            format!("{}[]", value_type(&inner))
        }
        Some(other) => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("?")
            .to_string(),
        None => "empty".into(),
    }
}

fn check_attributes(r: &Registry, place: &str, attrs: &[KeyValue], out: &mut Violations) {
    for kv in attrs {
        let key = kv.key.as_str();
        let got = value_type(&kv.value);
        let (kind, detail) = match r.attributes.get(key) {
            Some(a) if a.deprecated => ("deprecated_attribute", place.to_string()),
            Some(a) if a.kind.starts_with("template[") => continue,
            Some(a) if a.kind != got => (
                "attribute_type",
                format!("{place}: registry {}, sent {got}", a.kind),
            ),
            Some(_) => continue,
            None => {
                // Template attributes (`http.request.header.<key>`): the id is a prefix.
                let template = r.attributes.iter().any(|(id, a)| {
                    a.kind.starts_with("template[") && key.starts_with(&format!("{id}."))
                });
                if template {
                    continue;
                }
                ("unknown_attribute", format!("{place} ({got})"))
            }
        };
        *out.entry((kind.into(), key.into(), detail)).or_default() += 1;
    }
}

fn instrument(data: &Option<Data>) -> &'static str {
    match data {
        Some(Data::Sum(s)) if s.is_monotonic => "counter",
        Some(Data::Sum(_)) => "updowncounter",
        Some(Data::Gauge(_)) => "gauge",
        Some(Data::Histogram(_)) | Some(Data::ExponentialHistogram(_)) => "histogram",
        _ => "summary",
    }
}

fn point_attributes(data: &Option<Data>) -> Vec<&[KeyValue]> {
    match data {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Gauge(g)) => g
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        _ => Vec::new(),
    }
}

/// Everything the receiver got, checked.
fn check(r: &Registry, rx: &common::Receiver) -> Violations {
    let mut out = Violations::new();
    let received = rx.received.lock().expect("receiver");
    for req in &received.traces {
        for rs in &req.resource_spans {
            if let Some(res) = &rs.resource {
                check_attributes(r, "resource", &res.attributes, &mut out);
            }
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let place = format!("span {}", s.name.split(' ').next().unwrap_or_default());
                    check_attributes(r, &place, &s.attributes, &mut out);
                    for e in &s.events {
                        check_attributes(r, &format!("event {}", e.name), &e.attributes, &mut out);
                    }
                }
            }
        }
    }
    for req in &received.metrics {
        for rm in &req.resource_metrics {
            if let Some(res) = &rm.resource {
                check_attributes(r, "resource", &res.attributes, &mut out);
            }
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let sent = instrument(&m.data);
                    match r.metrics.get(&m.name) {
                        None => {
                            *out.entry(("unknown_metric".into(), m.name.clone(), String::new()))
                                .or_default() += 1
                        }
                        Some(d) if d.deprecated => {
                            *out.entry((
                                "deprecated_metric".into(),
                                m.name.clone(),
                                String::new(),
                            ))
                            .or_default() += 1
                        }
                        Some(d) => {
                            if d.instrument != sent {
                                *out.entry((
                                    "metric_instrument".into(),
                                    m.name.clone(),
                                    format!("registry {}, sent {sent}", d.instrument),
                                ))
                                .or_default() += 1;
                            }
                            if d.unit != m.unit {
                                *out.entry((
                                    "metric_unit".into(),
                                    m.name.clone(),
                                    format!("registry {:?}, sent {:?}", d.unit, m.unit),
                                ))
                                .or_default() += 1;
                            }
                        }
                    }
                    for attrs in point_attributes(&m.data) {
                        check_attributes(r, &format!("metric {}", m.name), attrs, &mut out);
                    }
                }
            }
        }
    }
    out
}

fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("examples/generation_service")
}

#[test]
fn the_main_example_exports_registry_names_only() {
    let r = registry();
    assert!(
        r.attributes.len() > 500 && r.metrics.len() > 100,
        "registry barely read"
    );
    let rx = common::Receiver::grpc(common::Mode::Normal);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(example())
        .args(["--seconds", "4", "--rate", "25", "--fake-gpu", "--report"])
        .arg(dir.path().join("r.html"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
        .env_remove("GENSCOPE_PROMETHEUS_ADDR")
        .env_remove("GENSCOPE_FILE_EXPORT")
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rx.wait_for(Duration::from_secs(10), |r| !r.spans().is_empty()));
    let found = check(&r, &rx);
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, name, detail) in found.keys() {
        *by_kind.entry(kind.as_str()).or_default() += 1;
        println!("semconv: {kind}: {name} {detail}");
    }
    println!(
        "semconv: {} registry files, {} attributes, {} metrics; {} distinct violations: {by_kind:?}",
        r.files,
        r.attributes.len(),
        r.metrics.len(),
        found.len()
    );
    // When this check landed there were 131 distinct violations: every `genscope.*` name (now
    // declared in `semconv/`), the tracing bridge's `busy_ns`, `idle_ns`, `target`,
    // `code.module.name` (now off unless `GENSCOPE_SPAN_EXTRAS` asks for them) and
    // `system.cpu.load_average.*` (now `genscope.system.cpu.load_average.*`).
    assert!(
        found.is_empty(),
        "{} semantic-convention violations (listed above as `semconv:` lines)",
        found.len()
    );
}

/// The tracing bridge's extra attributes: off by default, back with `span_extras` (the
/// `GENSCOPE_SPAN_EXTRAS` setting); the registry's code location stays either way.
#[test]
fn bridge_extras_are_off_by_default_and_come_back_on_request() {
    use genscope::config::{ExporterKind, Sampling, SpanExtras};
    use tracing_subscriber::layer::SubscriberExt;
    for (extras, want) in [(SpanExtras::NONE, false), (SpanExtras::ALL, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("spans.jsonl");
        let telemetry = genscope::Genscope::builder()
            .ignore_environment()
            .traces_exporters([] as [ExporterKind; 0])
            .metrics_exporters([] as [ExporterKind; 0])
            .host_metrics(Sampling::Off)
            .gpu_metrics(Sampling::Off)
            .file_export(&file)
            .span_extras(extras)
            .build()
            .expect("genscope");
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("work").in_scope(|| {});
        });
        telemetry.shutdown().expect("shutdown");
        let text = std::fs::read_to_string(&file).expect("file");
        for key in ["busy_ns", "idle_ns", "\"target\"", "code.module.name"] {
            assert_eq!(text.contains(key), want, "{key} with {extras:?}: {text}");
        }
        for key in ["code.file.path", "code.line.number", "thread.id"] {
            assert!(text.contains(key), "{key} with {extras:?}: {text}");
        }
    }
}
