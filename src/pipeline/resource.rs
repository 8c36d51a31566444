//! The OTel resource: who is sending. Built by genscope itself (not the SDK's env detectors) so that
//! builder > environment > file precedence holds for `service.name` and every attribute.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use crate::config::Settings;

/// `host.*`, `os.type`, `process.*` of this process: cheap facts read once at startup.
fn detected() -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("host.arch", host_arch()),
        KeyValue::new("os.type", os_type()),
        KeyValue::new("process.pid", i64::from(std::process::id())),
        KeyValue::new("process.runtime.name", "rust"),
        KeyValue::new("telemetry.distro.name", "genscope"),
        KeyValue::new("telemetry.distro.version", env!("CARGO_PKG_VERSION")),
    ];
    if let Some(host) = host_name() {
        attrs.push(KeyValue::new("host.name", host));
    }
    if let Some(exe) = executable_name() {
        attrs.push(KeyValue::new("process.executable.name", exe));
    }
    attrs
}

fn executable_name() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    Some(path.file_name()?.to_string_lossy().into_owned())
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
}

/// Semconv `host.arch` values.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// Semconv `os.type` values.
fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

pub(crate) fn build(settings: &Settings) -> Resource {
    let mut attrs = detected();
    let mut service_name = None;
    for (k, v) in &settings.resource_attributes {
        if k == "service.name" {
            service_name = Some(v.clone());
        } else {
            attrs.push(KeyValue::new(k.clone(), v.clone()));
        }
    }
    // Every process is its own instance (semconv: a UUID, unique per service.namespace and
    // service.name); exporters derive Prometheus' `instance` label and `target_info` from it.
    if !settings
        .resource_attributes
        .iter()
        .any(|(k, _)| k == "service.instance.id")
    {
        attrs.push(KeyValue::new(
            "service.instance.id",
            uuid::Uuid::new_v4().to_string(),
        ));
    }
    if let Some(version) = &settings.service_version {
        attrs.push(KeyValue::new("service.version", version.clone()));
    }
    let service_name = settings
        .service_name
        .clone()
        .or(service_name)
        .unwrap_or_else(|| format!("unknown_service:{}", executable_name().unwrap_or_default()));
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(attrs)
        .with_service_name(service_name)
        .build()
}
