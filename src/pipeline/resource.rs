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
    if let Some(id) = host_id() {
        attrs.push(KeyValue::new("host.id", id));
    }
    if let Some(exe) = executable_name() {
        attrs.push(KeyValue::new("process.executable.name", exe));
    }
    // Required for the `process` entity once any `process.*` attribute is present.
    if let Some(created) = process_creation_time() {
        attrs.push(KeyValue::new(
            "process.creation.time",
            humantime::format_rfc3339_millis(created).to_string(),
        ));
    }
    attrs
}

/// When this process started: `/proc/self/stat` field 22 (clock ticks after boot) plus the boot
/// time in `/proc/stat`. `None` where those do not exist.
fn process_creation_time() -> Option<std::time::SystemTime> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
        let after = stat.get(stat.rfind(')')? + 2..)?;
        let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
        let btime: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
        let since_boot = std::time::Duration::from_millis(ticks.checked_mul(1000)? / hz);
        std::time::UNIX_EPOCH
            .checked_add(std::time::Duration::from_secs(btime))?
            .checked_add(since_boot)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn executable_name() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    Some(path.file_name()?.to_string_lossy().into_owned())
}

/// `host.id`: the machine id (semconv: for non-containerized systems, `/etc/machine-id`, as
/// the collector's `system` detector reads it), else D-Bus's copy of it.
fn host_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
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

#[cfg(all(test, target_os = "linux"))]
mod creation_time_tests {
    #[test]
    fn process_creation_time_is_this_process_start() {
        let created = super::process_creation_time().expect("linux has /proc");
        let now = std::time::SystemTime::now();
        let age = now.duration_since(created).expect("created before now");
        // The test binary started moments ago (a generous bound: it only rules out garbage
        // such as boot time or the epoch).
        assert!(age < std::time::Duration::from_secs(3600), "age {age:?}");
        let text = humantime::format_rfc3339_millis(created).to_string();
        assert!(text.ends_with('Z') && text.contains('T'), "{text}");
    }
}
