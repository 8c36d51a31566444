//! What the main example exports, checked against the semantic conventions: the official registry
//! (`../shared/semconv/v1.41.1`, the authority for names, types and units, named by the
//! dependency in `semconv/manifest.yaml`) plus genscope's own (`semconv/*.yaml`). The example runs with the fake GPU and
//! exports over OTLP/gRPC to a real receiver (`tests/common`, official protobufs); every metric
//! (name, instrument, unit) and every resource, span and metric attribute (name, type) is looked
//! up. A name is clean when the registry defines it and does not deprecate it.

mod docs;
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

/// Values outside an enum's members that genscope sends on purpose: the conventions' enums are
/// open ("if none of the listed values apply, a custom value"), and these are the custom values,
/// each documented in `docs/semconv.md` (checked by `custom_enum_values_are_documented`).
const CUSTOM_ENUM_VALUES: &[(&str, &str)] = &[
    // A model the service runs itself: no provider of the registry's list serves it.
    ("gen_ai.provider.name", "self-hosted"),
];

fn scalar_text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        Some(Value::IntValue(i)) => Some(i.to_string()),
        _ => None,
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
            // `error.type`'s only member is `_OTHER`: its values are the instrumentation's own
            // low-cardinality codes by definition, so there is nothing to compare.
            Some(a) if !a.members.is_empty() && a.members != ["_OTHER"] => {
                let Some(value) = scalar_text(&kv.value) else {
                    continue;
                };
                if a.members.contains(&value) || CUSTOM_ENUM_VALUES.contains(&(key, value.as_str()))
                {
                    continue;
                }
                (
                    "undefined_enum_variant",
                    format!("{place}: {value:?} is none of {:?}", a.members),
                )
            }
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

/// A point's attributes against its metric's definition: every `required` attribute present;
/// for genscope's own metrics, no attribute the definition does not list; a missing
/// `recommended` attribute is an improvement (Weaver's level of the same name), not a violation.
fn check_point_levels(name: &str, d: &registry::Metric, attrs: &[KeyValue], out: &mut Violations) {
    use registry::Level;
    let has = |key: &str| attrs.iter().any(|kv| kv.key == key);
    for (key, level) in &d.attributes {
        let kind = match level {
            Level::Required if !has(key) => "required_attribute_missing",
            Level::Recommended if !has(key) => "improvement_recommended_attribute_missing",
            _ => continue,
        };
        *out.entry((kind.into(), key.clone(), format!("metric {name}")))
            .or_default() += 1;
    }
    if name.starts_with("genscope.") {
        for kv in attrs {
            if !d.attributes.contains_key(kv.key.as_str()) {
                *out.entry((
                    "metric_attribute_undeclared".into(),
                    kv.key.to_string(),
                    format!("metric {name}: not among its attributes in semconv/metrics.yaml"),
                ))
                .or_default() += 1;
            }
        }
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
                        if let Some(d) = r.metrics.get(&m.name) {
                            check_point_levels(&m.name, d, attrs, &mut out);
                        }
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

/// Runs the main example (fake GPU, 4 s) exporting to a real OTLP/gRPC receiver with `env` set,
/// and checks what arrived: the distinct violations, printed as `semconv:` lines, and the names
/// of the metrics received.
fn run_example(r: &Registry, env: &[(&str, &str)]) -> (Violations, Vec<String>) {
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
        .env_remove("OTEL_SEMCONV_STABILITY_OPT_IN")
        .envs(env.iter().copied())
        .output()
        .expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rx.wait_for(Duration::from_secs(10), |r| !r.spans().is_empty()));
    summarize(&format!("{env:?}"), r, &rx)
}

/// What `rx` received checked against `r`: the violations (printed as `semconv:` lines, the
/// improvements as `semconv (not a violation):`) and the names of the metrics received.
fn summarize(label: &str, r: &Registry, rx: &common::Receiver) -> (Violations, Vec<String>) {
    let (improvements, found): (Violations, Violations) = check(r, rx)
        .into_iter()
        .partition(|((kind, _, _), _)| kind.starts_with("improvement_"));
    for (kind, name, detail) in improvements.keys() {
        println!("semconv (not a violation): {kind}: {name} {detail}");
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, name, detail) in found.keys() {
        *by_kind.entry(kind.as_str()).or_default() += 1;
        println!("semconv: {kind}: {name} {detail}");
    }
    println!(
        "semconv {label}: {} registry files, {} attributes, {} metrics; {} distinct violations: \
         {by_kind:?}; {} improvements",
        r.files,
        r.attributes.len(),
        r.metrics.len(),
        found.len(),
        improvements.len()
    );
    let names = common::all_metric_names(rx);
    (found, names)
}

/// Zero violations, and every name of `expected` among the metrics received.
fn assert_clean(found: &Violations, names: &[String], expected: &[&str]) {
    assert!(
        found.is_empty(),
        "{} semantic-convention violations (listed above as `semconv:` lines)",
        found.len()
    );
    for name in expected {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not received: {names:?}"
        );
    }
}

fn loaded_registry() -> Registry {
    let r = registry();
    assert!(
        r.attributes.len() > 500 && r.metrics.len() > 100,
        "registry barely read"
    );
    r
}

#[test]
fn the_main_example_exports_registry_names_only() {
    let r = loaded_registry();
    let (found, names) = run_example(&r, &[]);
    // When this check landed there were 131 distinct violations: every `genscope.*` name (now
    // declared in `semconv/`), the tracing bridge's `busy_ns`, `idle_ns`, `target`,
    // `code.module.name` (now off unless `GENSCOPE_SPAN_EXTRAS` asks for them) and
    // `system.cpu.load_average.*` (now `genscope.system.cpu.load_average.*`).
    // The observers with the fake GPU are part of what was checked.
    assert_clean(
        &found,
        &names,
        &[
            "hw.gpu.utilization",
            "system.memory.usage",
            "gen_ai.client.token.usage",
        ],
    );
}

/// With `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` the only names outside the
/// registries are the switch's documented ones, and they replace the v1.41.1 names.
#[test]
fn the_genai_opt_in_emits_only_its_documented_exceptions() {
    use genscope::config::GenAiConventions;
    let r = loaded_registry();
    let (found, names) = run_example(
        &r,
        &[(
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "gen_ai_latest_experimental",
        )],
    );
    let documented: Vec<&str> = GenAiConventions::LATEST_EXPERIMENTAL_NAMES
        .iter()
        .map(|n| n.latest)
        .collect();
    for (kind, name, detail) in found.keys() {
        assert!(
            matches!(kind.as_str(), "unknown_metric" | "unknown_attribute")
                && documented.contains(&name.as_str()),
            "not a documented exception of the opt-in: {kind} {name} {detail}"
        );
    }
    for name in [
        "gen_ai.client.inference.usage.input_tokens",
        "gen_ai.client.inference.usage.output_tokens",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} not received: {names:?}"
        );
        assert!(
            found.contains_key(&("unknown_metric".into(), name.into(), String::new())),
            "{name} is listed as an exception, so the official registry must not define it"
        );
    }
    assert!(
        !names.iter().any(|n| n == "gen_ai.client.token.usage"),
        "the opt-in replaces gen_ai.client.token.usage: {names:?}"
    );
}

/// `examples/llm_server/` (HTTP server spans and metrics, GenAI chat spans, token-stream timing,
/// the serving catalog), driven through both completion modes and an error, exports registry
/// names only.
#[cfg(feature = "tower")]
#[test]
fn the_llm_server_exports_registry_names_only() {
    use common::llm_server::{post, start};
    let r = loaded_registry();
    let rx = common::Receiver::grpc(common::Mode::Normal);
    let mut server = start(&rx, &[], &[]);
    for body in [
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"a b c"}],"max_tokens":4}"#,
        r#"{"model":"genscope-sim","messages":[{"role":"user","content":"a"}],"max_tokens":3,"stream":true}"#,
        r#"{"model":"unknown","messages":[]}"#,
    ] {
        post(server.addr, "/v1/chat/completions", body);
    }
    std::thread::sleep(Duration::from_millis(500)); // a metric collection or two
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    assert!(server.child.wait().expect("exit").success());
    assert!(rx.wait_for(Duration::from_secs(10), |r| !r.spans().is_empty()));
    let (found, names) = summarize("llm_server", &r, &rx);
    assert_clean(
        &found,
        &names,
        &[
            "http.server.request.duration",
            "gen_ai.server.time_to_first_token",
            "genscope.serving.inter_token.duration",
        ],
    );
}

/// Every name behind the opt-in, and every custom enum value, is in `docs/semconv.md`.
#[test]
fn opt_in_names_and_custom_enum_values_are_documented() {
    use genscope::config::GenAiConventions;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/semconv.md");
    let doc = std::fs::read_to_string(&path).expect("docs/semconv.md");
    for n in GenAiConventions::LATEST_EXPERIMENTAL_NAMES {
        let row = format!("| `{}` | `{}` |", n.default, n.latest);
        assert!(doc.contains(&row), "docs/semconv.md lacks the row {row}");
    }
    for (key, value) in CUSTOM_ENUM_VALUES {
        let row = format!("| `{key}` | `{value}` |");
        assert!(doc.contains(&row), "docs/semconv.md lacks the row {row}");
    }
}

/// A function `#[instrument]`ed with a `u64` field: the bridge alone would export it as a string.
#[tracing::instrument(fields(gen_ai.usage.output_tokens = tokens, genscope.note = "158"))]
fn generate_tokens(tokens: u64) {}

/// The tracing bridge's extra attributes: off by default, back with `span_extras` (the
/// `GENSCOPE_SPAN_EXTRAS` setting); the registry's code location on by default (`none` turns it
/// off); registry integers recorded from `u64` arrive as integers.
#[test]
fn bridge_extras_follow_span_extras_and_integers_stay_integers() {
    use genscope::config::SpanExtras;
    use tracing_subscriber::layer::SubscriberExt;
    for (extras, noise, location) in [
        (SpanExtras::default(), false, true),
        (SpanExtras::NONE, false, false),
        (SpanExtras::ALL, true, true),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("spans.jsonl");
        let telemetry = common::offline_builder()
            .file_export(&file)
            .span_extras(extras)
            .build()
            .expect("genscope");
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("a manual span").in_scope(|| {});
            generate_tokens(158);
        });
        telemetry.shutdown().expect("shutdown");
        let text = std::fs::read_to_string(&file).expect("file");
        for key in ["busy_ns", "idle_ns", "\"target\"", "code.module.name"] {
            assert_eq!(text.contains(key), noise, "{key} with {extras:?}: {text}");
        }
        for key in ["code.file.path", "code.line.number"] {
            assert_eq!(
                text.contains(key),
                location,
                "{key} with {extras:?}: {text}"
            );
        }
        let function = format!(
            "\"code.function.name\",\"value\":{{\"stringValue\":\"{}::generate_tokens\"}}",
            module_path!()
        );
        assert_eq!(
            text.contains(&function),
            location,
            "{function} with {extras:?}: {text}"
        );
        // Only the span named like a function gets a function name.
        assert_eq!(
            text.matches("code.function.name").count(),
            usize::from(location),
            "{text}"
        );
        assert!(
            text.contains("\"gen_ai.usage.output_tokens\",\"value\":{\"intValue\":\"158\"}"),
            "{text}"
        );
        // A string attribute that is not a registry integer stays a string.
        assert!(
            text.contains("\"genscope.note\",\"value\":{\"stringValue\":\"158\"}"),
            "{text}"
        );
    }
}

/// `Operation::set_cache_tokens`: `cache_creation` by default, `cache_write` behind the switch;
/// integers either way.
#[test]
fn cache_tokens_follow_the_genai_switch() {
    use genscope::config::GenAiConventions;
    use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
    for (conventions, written) in [
        (
            GenAiConventions::Default,
            "gen_ai.usage.cache_creation.input_tokens",
        ),
        (
            GenAiConventions::LatestExperimental,
            "gen_ai.usage.cache_write.input_tokens",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("spans.jsonl");
        let telemetry = common::offline_builder()
            .file_export(&file)
            .genai_conventions(conventions)
            .build()
            .expect("genscope");
        let attrs = GenAiAttributes::new(Operation::Chat, "self-hosted")
            .expect("attributes")
            .request_model("m");
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::with_default(subscriber, || {
            let op = telemetry.operations().llm_generation(&attrs);
            op.set_tokens(100, 5);
            op.set_cache_tokens(Some(64), Some(16));
            op.succeed();
        });
        telemetry.shutdown().expect("shutdown");
        let text = std::fs::read_to_string(&file).expect("file");
        for (key, n) in [("gen_ai.usage.cache_read.input_tokens", 64), (written, 16)] {
            let want = format!("\"{key}\",\"value\":{{\"intValue\":\"{n}\"}}");
            assert!(text.contains(&want), "{want} with {conventions:?}: {text}");
        }
        let other = if conventions.latest() {
            "cache_creation"
        } else {
            "cache_write"
        };
        assert!(!text.contains(other), "{other} with {conventions:?}");
    }
}

/// `record_client_operation` and `record_tokens` behind the switch: inference and embeddings
/// durations under their new names, other operations under the old one, tokens as counters.
#[test]
fn client_metrics_follow_the_genai_switch() {
    use genscope::config::GenAiConventions;
    use genscope::instruments::catalog::genai::{GenAiAttributes, Operation};
    let telemetry = common::offline_builder()
        .genai_conventions(GenAiConventions::LatestExperimental)
        .build()
        .expect("genscope");
    let genai = telemetry.metrics().genai().expect("genai");
    for op in [
        Operation::Chat,
        Operation::Embeddings,
        Operation::ExecuteTool,
    ] {
        let attrs = GenAiAttributes::new(op, "self-hosted").expect("attributes");
        genai.record_client_operation(&attrs, Duration::from_millis(300), None);
        genai.record_tokens(&attrs, Some(10), Some(2));
    }
    telemetry.force_flush().expect("flush");
    let a = telemetry.analyzer();
    let w = genscope::analyzer::Window::all();
    let count = |name: &str| a.histogram(name, &[], w).map(|h| h.count);
    assert_eq!(count("gen_ai.client.inference.duration"), Some(1));
    assert_eq!(count("gen_ai.client.embeddings.duration"), Some(1));
    assert_eq!(
        count("gen_ai.client.operation.duration"),
        Some(1),
        "execute_tool keeps it"
    );
    assert_eq!(
        a.sum("gen_ai.client.inference.usage.input_tokens", &[], w),
        Some(30.0)
    );
    assert_eq!(
        a.sum("gen_ai.client.inference.usage.output_tokens", &[], w),
        Some(6.0)
    );
    assert_eq!(count("gen_ai.client.token.usage"), None);
}
