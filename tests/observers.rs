//! Host, process and GPU observers, end to end: genscope's samplers → observable instruments →
//! the metric pipeline → a real OTLP gRPC receiver decoding with the official protobufs.
//! Values are checked against independent readers of the same machine: `/proc` parsed here,
//! `df`, and node_exporter (Debian's `prometheus-node-exporter`, which `.ci/run` installs).
//! The GPU side runs on the fake backend; the real-NVML comparison is `tests/nvml.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Mode, Receiver, attr_str};
use genscope::config::{Protocol, Sampling};
use genscope::gpu::{FakeDevice, FakeGpu, GpuReading, GpuStatus, GpuUnavailable};
use genscope::observers::Observers;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, number_data_point};

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    UpDown,
    Gauge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int,
    Double,
}

/// (name, unit, kind, number type, attribute keys every point carries)
type Row = (
    &'static str,
    &'static str,
    Kind,
    Num,
    &'static [&'static str],
);

const GPU_KEYS: &[&str] = &[
    "hw.id",
    "hw.name",
    "hw.vendor",
    "hw.model",
    "hw.serial_number",
    "hw.driver_version",
    "hw.firmware_version",
];

const HOST: &[Row] = &[
    (
        "system.cpu.time",
        "s",
        Kind::Counter,
        Num::Double,
        &["cpu.mode"],
    ),
    (
        "system.cpu.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &["cpu.mode"],
    ),
    (
        "system.cpu.frequency",
        "Hz",
        Kind::Gauge,
        Num::Int,
        &["cpu.logical_number"],
    ),
    (
        "system.cpu.logical.count",
        "{cpu}",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "system.cpu.physical.count",
        "{cpu}",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "system.memory.usage",
        "By",
        Kind::UpDown,
        Num::Int,
        &["system.memory.state"],
    ),
    ("system.memory.limit", "By", Kind::UpDown, Num::Int, &[]),
    (
        "system.memory.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &["system.memory.state"],
    ),
    (
        "system.memory.linux.available",
        "By",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "system.paging.usage",
        "By",
        Kind::UpDown,
        Num::Int,
        &["system.paging.state"],
    ),
    (
        "system.disk.io",
        "By",
        Kind::Counter,
        Num::Int,
        &["system.device", "disk.io.direction"],
    ),
    (
        "system.disk.operations",
        "{operation}",
        Kind::Counter,
        Num::Int,
        &["system.device", "disk.io.direction"],
    ),
    (
        "system.disk.io_time",
        "s",
        Kind::Counter,
        Num::Double,
        &["system.device"],
    ),
    (
        "system.disk.operation_time",
        "s",
        Kind::Counter,
        Num::Double,
        &["system.device", "disk.io.direction"],
    ),
    (
        "system.filesystem.usage",
        "By",
        Kind::UpDown,
        Num::Int,
        &[
            "system.device",
            "system.filesystem.state",
            "system.filesystem.type",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
        ],
    ),
    (
        "system.filesystem.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &[
            "system.device",
            "system.filesystem.type",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
        ],
    ),
    (
        "system.filesystem.limit",
        "By",
        Kind::UpDown,
        Num::Int,
        &[
            "system.device",
            "system.filesystem.type",
            "system.filesystem.mode",
            "system.filesystem.mountpoint",
        ],
    ),
    (
        "system.network.io",
        "By",
        Kind::Counter,
        Num::Int,
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.packet.count",
        "{packet}",
        Kind::Counter,
        Num::Int,
        &["system.device", "network.io.direction"],
    ),
    (
        "system.network.errors",
        "{error}",
        Kind::Counter,
        Num::Int,
        &["network.interface.name", "network.io.direction"],
    ),
    (
        "system.network.packet.dropped",
        "{packet}",
        Kind::Counter,
        Num::Int,
        &["network.interface.name", "network.io.direction"],
    ),
    ("system.uptime", "s", Kind::Gauge, Num::Double, &[]),
    (
        "genscope.system.cpu.load_average.1m",
        "{thread}",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
    (
        "genscope.system.cpu.load_average.5m",
        "{thread}",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
    (
        "genscope.system.cpu.load_average.15m",
        "{thread}",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
];

const PROCESS: &[Row] = &[
    (
        "process.cpu.time",
        "s",
        Kind::Counter,
        Num::Double,
        &["cpu.mode"],
    ),
    (
        "process.cpu.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &["cpu.mode"],
    ),
    ("process.memory.usage", "By", Kind::UpDown, Num::Int, &[]),
    ("process.memory.virtual", "By", Kind::UpDown, Num::Int, &[]),
    (
        "process.disk.io",
        "By",
        Kind::Counter,
        Num::Int,
        &["disk.io.direction"],
    ),
    (
        "process.thread.count",
        "{thread}",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "process.unix.file_descriptor.count",
        "{file_descriptor}",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "process.context_switches",
        "{context_switch}",
        Kind::Counter,
        Num::Int,
        &["process.context_switch.type"],
    ),
    (
        "process.paging.faults",
        "{fault}",
        Kind::Counter,
        Num::Int,
        &["system.paging.fault.type"],
    ),
    ("process.uptime", "s", Kind::Gauge, Num::Double, &[]),
];

const GPU: &[Row] = &[
    (
        "hw.gpu.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &["hw.gpu.task"],
    ),
    (
        "genscope.gpu.memory_controller.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
    ("hw.gpu.memory.usage", "By", Kind::UpDown, Num::Int, &[]),
    ("hw.gpu.memory.limit", "By", Kind::UpDown, Num::Int, &[]),
    (
        "hw.gpu.memory.utilization",
        "1",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
    (
        "genscope.gpu.memory.free",
        "By",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "genscope.gpu.memory.reserved",
        "By",
        Kind::UpDown,
        Num::Int,
        &[],
    ),
    (
        "hw.gpu.io",
        "By",
        Kind::Counter,
        Num::Int,
        &["network.io.direction"],
    ),
    ("hw.power", "W", Kind::Gauge, Num::Double, &["hw.type"]),
    ("hw.energy", "J", Kind::Counter, Num::Double, &["hw.type"]),
    (
        "genscope.gpu.power.limit",
        "W",
        Kind::Gauge,
        Num::Double,
        &[],
    ),
    (
        "hw.temperature",
        "Cel",
        Kind::Gauge,
        Num::Double,
        &["hw.parent", "hw.sensor_location"],
    ),
    (
        "hw.temperature.limit",
        "Cel",
        Kind::Gauge,
        Num::Double,
        &["hw.parent", "hw.limit_type"],
    ),
    (
        "hw.fan.speed_ratio",
        "1",
        Kind::Gauge,
        Num::Double,
        &["hw.parent"],
    ),
    (
        "hw.errors",
        "{error}",
        Kind::Counter,
        Num::Int,
        &["hw.type", "error.type"],
    ),
    (
        "genscope.gpu.clock.frequency",
        "Hz",
        Kind::Gauge,
        Num::Double,
        &["genscope.gpu.clock"],
    ),
    (
        "genscope.gpu.throttle.active",
        "1",
        Kind::UpDown,
        Num::Int,
        &["genscope.gpu.throttle.reason"],
    ),
    (
        "genscope.gpu.process.memory.usage",
        "By",
        Kind::UpDown,
        Num::Int,
        &["process.pid"],
    ),
];

/// Every received version of metric `name`, oldest first.
fn versions(r: &Receiver, name: &str) -> Vec<Metric> {
    let g = r.received.lock().unwrap();
    g.metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .cloned()
        .collect()
}

fn collections(r: &Receiver) -> usize {
    r.received.lock().unwrap().metrics.len()
}

/// (attributes, value, is_int) of every point.
fn points(m: &Metric) -> Vec<(Vec<KeyValue>, f64, bool)> {
    let dps = match &m.data {
        Some(Data::Sum(s)) => &s.data_points,
        Some(Data::Gauge(g)) => &g.data_points,
        _ => return vec![],
    };
    dps.iter()
        .map(|p| match p.value {
            Some(number_data_point::Value::AsInt(i)) => (p.attributes.clone(), i as f64, true),
            Some(number_data_point::Value::AsDouble(d)) => (p.attributes.clone(), d, false),
            None => (p.attributes.clone(), f64::NAN, false),
        })
        .collect()
}

fn kind(m: &Metric) -> Option<Kind> {
    match &m.data {
        Some(Data::Sum(s)) if s.is_monotonic => Some(Kind::Counter),
        Some(Data::Sum(_)) => Some(Kind::UpDown),
        Some(Data::Gauge(_)) => Some(Kind::Gauge),
        _ => None,
    }
}

fn has(attrs: &[KeyValue], key: &str, value: &str) -> bool {
    attr_str(attrs, key).as_deref() == Some(value)
}

/// The latest value of `name` whose attributes include every `(key, value)`.
fn value(r: &Receiver, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let m = r.latest_metric(name)?;
    points(&m)
        .into_iter()
        .find(|(a, _, _)| filter.iter().all(|(k, v)| has(a, k, v)))
        .map(|(_, v, _)| v)
}

fn start(r: &Receiver, gpu: FakeGpu) -> genscope::Genscope {
    common::builder(r.url(), Protocol::Grpc)
        .metric_export_interval(Duration::from_millis(150))
        .host_metrics(Sampling::Every(Duration::from_millis(100)))
        .gpu_metrics(Sampling::Every(Duration::from_millis(100)))
        .gpu_backend(gpu)
        .build()
        .expect("telemetry")
}

fn two_gpus() -> (FakeGpu, FakeDevice) {
    let mut second = FakeDevice::typical(1);
    // A board without ECC, fans or an HBM sensor: those readings answer NotSupported.
    second.ecc_errors = None;
    second.fan_speed_ratios = None;
    second.memory_temperature = None;
    (
        FakeGpu::new(vec![FakeDevice::typical(0), second.clone()]),
        second,
    )
}

fn check_rows(r: &Receiver, rows: &[Row], problems: &mut Vec<String>) {
    for (name, unit, want_kind, num, keys) in rows {
        let Some(m) = r.latest_metric(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if m.unit != *unit {
            problems.push(format!("{name}: unit {:?}, want {unit:?}", m.unit));
        }
        if kind(&m) != Some(*want_kind) {
            problems.push(format!("{name}: kind {:?}, want {want_kind:?}", kind(&m)));
        }
        if m.description.is_empty() {
            problems.push(format!("{name}: no description"));
        }
        let pts = points(&m);
        if pts.is_empty() {
            problems.push(format!("{name}: no points"));
        }
        for (attrs, v, is_int) in &pts {
            if *is_int != (*num == Num::Int) {
                problems.push(format!("{name}: number type is_int={is_int}, want {num:?}"));
            }
            if !v.is_finite() {
                problems.push(format!("{name}: value {v}"));
            }
            if *unit == "1" && !(0.0..=1.0).contains(v) {
                problems.push(format!("{name}: ratio {v} outside 0..1"));
            }
            for k in *keys {
                if attr_str(attrs, k).is_none() {
                    problems.push(format!("{name}: point without {k}: {attrs:?}"));
                }
            }
        }
    }
}

#[test]
fn every_listed_metric_has_its_name_unit_kind_and_attributes() {
    let r = Receiver::grpc(Mode::Normal);
    let (gpu, _) = two_gpus();
    let telemetry = start(&r, gpu.clone());
    assert!(
        r.wait_for(Duration::from_secs(20), |r| {
            r.latest_metric("system.cpu.utilization").is_some()
                && r.latest_metric("process.cpu.utilization").is_some()
                && r.latest_metric("hw.gpu.io").is_some()
        }),
        "observer metrics never arrived: {:?}",
        common::all_metric_names(&r)
    );
    let mut problems = Vec::new();
    check_rows(&r, HOST, &mut problems);
    check_rows(&r, PROCESS, &mut problems);
    check_rows(&r, GPU, &mut problems);
    // Every GPU series carries the device's identity.
    for (name, ..) in GPU {
        for (attrs, ..) in r
            .latest_metric(name)
            .map(|m| points(&m))
            .unwrap_or_default()
        {
            for k in GPU_KEYS {
                if attr_str(&attrs, k).is_none() {
                    problems.push(format!("{name}: point without {k}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The fake's values arrive converted and attributed exactly.
    let dev0 = [("hw.id", "GPU-fake-0000")];
    assert_eq!(value(&r, "hw.gpu.memory.limit", &dev0), Some(80.0 * GIB));
    assert_eq!(value(&r, "hw.gpu.memory.usage", &dev0), Some(30.0 * GIB));
    assert_eq!(
        value(&r, "hw.gpu.memory.utilization", &dev0),
        Some(30.0 / 80.0)
    );
    assert_eq!(value(&r, "genscope.gpu.memory.reserved", &dev0), Some(GIB));
    assert_eq!(
        value(
            &r,
            "hw.gpu.utilization",
            &[("hw.id", "GPU-fake-0000"), ("hw.gpu.task", "general")]
        ),
        Some(0.42)
    );
    assert_eq!(
        value(
            &r,
            "hw.gpu.utilization",
            &[("hw.id", "GPU-fake-0000"), ("hw.gpu.task", "decoder")]
        ),
        Some(0.05)
    );
    assert_eq!(
        value(&r, "genscope.gpu.memory_controller.utilization", &dev0),
        Some(0.17)
    );
    assert_eq!(
        value(
            &r,
            "hw.power",
            &[("hw.id", "GPU-fake-0000"), ("hw.type", "gpu")]
        ),
        Some(310.5)
    );
    assert_eq!(value(&r, "hw.energy", &dev0), Some(1_000_000.0));
    assert_eq!(
        value(
            &r,
            "hw.temperature",
            &[
                ("hw.id", "GPU-fake-0000:memory"),
                ("hw.parent", "GPU-fake-0000"),
                ("hw.sensor_location", "memory")
            ]
        ),
        Some(61.0)
    );
    assert_eq!(
        value(
            &r,
            "hw.temperature.limit",
            &[
                ("hw.parent", "GPU-fake-0000"),
                ("hw.limit_type", "high.critical")
            ]
        ),
        Some(92.0)
    );
    assert_eq!(
        value(&r, "hw.fan.speed_ratio", &[("hw.id", "GPU-fake-0000:fan1")]),
        Some(0.35)
    );
    assert_eq!(
        value(
            &r,
            "hw.errors",
            &[("hw.id", "GPU-fake-0000"), ("error.type", "corrected")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &r,
            "genscope.gpu.clock.frequency",
            &[("hw.id", "GPU-fake-0000"), ("genscope.gpu.clock", "memory")]
        ),
        Some(2.619e9)
    );
    assert_eq!(
        value(
            &r,
            "genscope.gpu.throttle.active",
            &[
                ("hw.id", "GPU-fake-0000"),
                ("genscope.gpu.throttle.reason", "sw_power_cap")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &r,
            "genscope.gpu.throttle.active",
            &[
                ("hw.id", "GPU-fake-0000"),
                ("genscope.gpu.throttle.reason", "hw_slowdown")
            ]
        ),
        Some(0.0)
    );
    let pid = std::process::id().to_string();
    let proc_points = points(
        &r.latest_metric("genscope.gpu.process.memory.usage")
            .unwrap(),
    );
    assert!(proc_points.iter().any(|(a, v, _)| {
        matches!(common::attr(a, "process.pid"), Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(p)) if p.to_string() == pid)
            && *v == 20.0 * GIB
    }));
    for (a, ..) in points(&r.latest_metric("hw.gpu.memory.limit").unwrap()) {
        assert_eq!(attr_str(&a, "hw.vendor").as_deref(), Some("NVIDIA"));
        assert_eq!(attr_str(&a, "hw.driver_version").as_deref(), Some("999.99"));
        assert_eq!(
            attr_str(&a, "hw.model").as_deref(),
            Some("Fake H100 80GB HBM3")
        );
    }
    // PCIe bytes integrate the throughput: they grow, and by about rate × elapsed.
    let io = versions(&r, "hw.gpu.io");
    let rx = |m: &Metric| {
        points(m)
            .into_iter()
            .find(|(a, ..)| {
                has(a, "hw.id", "GPU-fake-0000") && has(a, "network.io.direction", "receive")
            })
            .map(|(_, v, _)| v)
    };
    let (first, last) = (rx(io.first().unwrap()), rx(io.last().unwrap()));
    assert!(last >= first, "{first:?} -> {last:?}");

    // The second device lacks ECC, fans and the HBM sensor: no series, and each was asked once.
    let dev1_series = |name: &str| {
        r.latest_metric(name)
            .map(|m| {
                points(&m)
                    .into_iter()
                    .filter(|(a, ..)| {
                        has(a, "hw.id", "GPU-fake-0001") || has(a, "hw.parent", "GPU-fake-0001")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(dev1_series("hw.fan.speed_ratio"), 0);
    assert_eq!(
        value(
            &r,
            "hw.errors",
            &[("hw.id", "GPU-fake-0001"), ("error.type", "corrected")]
        ),
        None
    );
    assert_eq!(
        value(
            &r,
            "hw.errors",
            &[("hw.id", "GPU-fake-0001"), ("error.type", "pcie_replay")]
        ),
        Some(0.0)
    );
    assert_eq!(dev1_series("hw.temperature"), 1, "die sensor only");
    for _ in 0..100 {
        if gpu.calls(0, GpuReading::EccErrors) >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        gpu.calls(0, GpuReading::EccErrors) >= 4,
        "device 0 is read every cycle"
    );
    assert_eq!(
        gpu.calls(1, GpuReading::EccErrors),
        1,
        "NotSupported is never asked again"
    );
    assert_eq!(gpu.calls(1, GpuReading::FanSpeeds), 1);
    telemetry.shutdown().unwrap();
}

#[test]
fn counters_are_monotonic_across_collections() {
    let r = Receiver::grpc(Mode::Normal);
    let (gpu, _) = two_gpus();
    // Energy grows between cycles like the real counter.
    let telemetry = start(&r, gpu.clone());
    let feeder = std::thread::spawn({
        let gpu = gpu.clone();
        move || {
            for i in 0..30 {
                gpu.update(0, |d| d.energy_joules = Some(1_000_000.0 + 50.0 * i as f64));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });
    assert!(r.wait_for(Duration::from_secs(30), |r| collections(r) >= 8));
    feeder.join().unwrap();
    let counters: Vec<&str> = HOST
        .iter()
        .chain(PROCESS)
        .chain(GPU)
        .filter(|row| row.2 == Kind::Counter)
        .map(|row| row.0)
        .collect();
    let mut compared = 0;
    for name in counters {
        let vs = versions(&r, name);
        assert!(vs.len() >= 3, "{name}: only {} collections", vs.len());
        let mut last: std::collections::HashMap<String, f64> = Default::default();
        for m in &vs {
            for (attrs, v, _) in points(m) {
                let key = format!("{attrs:?}");
                if let Some(prev) = last.get(&key) {
                    assert!(v >= *prev, "{name} {key}: {prev} -> {v}");
                    compared += 1;
                }
                last.insert(key, v);
            }
        }
    }
    assert!(compared > 100, "only {compared} comparisons");
    let energy: Vec<f64> = versions(&r, "hw.energy")
        .iter()
        .filter_map(|m| {
            points(m)
                .into_iter()
                .find(|(a, ..)| has(a, "hw.id", "GPU-fake-0000"))
                .map(|(_, v, _)| v)
        })
        .collect();
    assert!(
        energy.last() > energy.first(),
        "energy must have grown: {energy:?}"
    );
    telemetry.shutdown().unwrap();
}

fn meminfo_kib(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{key} missing from /proc/meminfo"))
}

#[test]
fn values_agree_with_proc_and_df() {
    let r = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(r.url(), Protocol::Grpc)
        .metric_export_interval(Duration::from_millis(150))
        .host_metrics(Sampling::Every(Duration::from_millis(100)))
        .gpu_metrics(Sampling::Off)
        .build()
        .unwrap();
    assert!(r.wait_for(Duration::from_secs(20), |r| {
        r.latest_metric("system.cpu.utilization").is_some()
    }));
    telemetry.force_flush().unwrap();

    // Exact: MemTotal never changes.
    assert_eq!(
        value(&r, "system.memory.limit", &[]),
        Some(meminfo_kib("MemTotal") * 1024.0)
    );
    // Used = MemTotal - MemAvailable, within 2 % of memory (other processes move it).
    let used = meminfo_kib("MemTotal") * 1024.0 - meminfo_kib("MemAvailable") * 1024.0;
    let reported = value(
        &r,
        "system.memory.usage",
        &[("system.memory.state", "used")],
    )
    .unwrap();
    assert!(
        (reported - used).abs() <= meminfo_kib("MemTotal") * 1024.0 * 0.02,
        "{reported} vs {used}"
    );
    let ratio = value(
        &r,
        "system.memory.utilization",
        &[("system.memory.state", "used")],
    )
    .unwrap();
    assert!((ratio - used / (meminfo_kib("MemTotal") * 1024.0)).abs() < 0.02);
    // Logical CPUs = cpuN lines of /proc/stat.
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(
        value(&r, "system.cpu.logical.count", &[]),
        Some(cpus as f64)
    );
    // CPU time: /proc/stat read after the export, so it is ahead, by at most a few intervals.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let total: f64 = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse::<f64>().unwrap())
        .sum::<f64>()
        / hz;
    let reported: f64 = points(&r.latest_metric("system.cpu.time").unwrap())
        .iter()
        .map(|(_, v, _)| v)
        .sum();
    assert!(
        reported <= total + 0.05 && total - reported < 2.0 * cpus as f64,
        "{reported} vs {total}"
    );
    // Utilization is a distribution over modes.
    let util: f64 = points(&r.latest_metric("system.cpu.utilization").unwrap())
        .iter()
        .map(|(_, v, _)| v)
        .sum();
    assert!((util - 1.0).abs() < 1e-6, "{util}");
    // Uptime within a few seconds of /proc/uptime.
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reported = value(&r, "system.uptime", &[]).unwrap();
    assert!(reported <= up && up - reported < 3.0, "{reported} vs {up}");
    // Loopback bytes: the counter is behind /proc/net/dev, never ahead.
    let net = std::fs::read_to_string("/proc/net/dev").unwrap();
    let lo_rx: f64 = net
        .lines()
        .find_map(|l| l.trim().strip_prefix("lo:"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reported = value(
        &r,
        "system.network.io",
        &[
            ("network.interface.name", "lo"),
            ("network.io.direction", "receive"),
        ],
    )
    .unwrap();
    assert!(reported <= lo_rx && reported > 0.0, "{reported} vs {lo_rx}");
    // This process: RSS within 25 % of /proc/self/statm, threads and fds close to /proc.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let rss = statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * page;
    let reported = value(&r, "process.memory.usage", &[]).unwrap();
    assert!((reported - rss).abs() <= rss * 0.25, "{reported} vs {rss}");
    let threads: f64 = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let reported = value(&r, "process.thread.count", &[]).unwrap();
    assert!((reported - threads).abs() <= 4.0, "{reported} vs {threads}");
    // User CPU time: behind this process's own getrusage (read after), by less than a second
    // (it can be 0 early on: the kernel accounts it in ticks).
    let user = value(&r, "process.cpu.time", &[("cpu.mode", "user")]).unwrap();
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let now_user = ru.ru_utime.tv_sec as f64 + ru.ru_utime.tv_usec as f64 / 1e6;
    assert!(
        user >= 0.0 && user <= now_user + 1e-6 && now_user - user < 1.0,
        "{user} vs {now_user}"
    );
    // The root filesystem's size as `df` (coreutils) reports it.
    let df = std::process::Command::new("df")
        .args(["-B1", "--output=size,target", "/"])
        .output()
        .unwrap();
    let df = String::from_utf8_lossy(&df.stdout);
    let size: f64 = df
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let reported = value(
        &r,
        "system.filesystem.limit",
        &[("system.filesystem.mountpoint", "/")],
    )
    .unwrap();
    assert_eq!(reported, size, "filesystem size of / vs df");
    telemetry.shutdown().unwrap();
}

fn node_exporter() -> Option<std::path::PathBuf> {
    [
        "/usr/bin/prometheus-node-exporter",
        "/usr/local/bin/node_exporter",
        "/usr/bin/node_exporter",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
}

#[test]
fn values_agree_with_node_exporter() {
    let Some(bin) = node_exporter() else {
        assert!(
            std::env::var_os("GENSCOPE_REQUIRE_NODE_EXPORTER").is_none(),
            "node_exporter is required here but not installed"
        );
        eprintln!("node_exporter not installed; skipped (CI installs it)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(bin)
        .args([
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
            "--collector.netdev",
            "--collector.diskstats",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Receiver::grpc(Mode::Normal);
    let telemetry = common::builder(r.url(), Protocol::Grpc)
        .metric_export_interval(Duration::from_millis(150))
        .host_metrics(Sampling::Every(Duration::from_millis(100)))
        .gpu_metrics(Sampling::Off)
        .build()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            body = common::http_get(addr, "/metrics", None).2;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(r.wait_for(Duration::from_secs(20), |r| {
        r.latest_metric("system.cpu.utilization").is_some()
    }));
    telemetry.force_flush().unwrap();
    child.kill().ok();
    child.wait().ok();
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("node_exporter text parses");
    let ne = |name: &str, labels: &[(&str, &str)]| -> Vec<f64> {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .collect()
    };
    let mut compared = BTreeSet::new();
    // Memory: exact for the total.
    assert_eq!(
        ne("node_memory_MemTotal_bytes", &[]),
        vec![value(&r, "system.memory.limit", &[]).unwrap()]
    );
    compared.insert("memory.limit");
    let buffers = value(
        &r,
        "system.memory.usage",
        &[("system.memory.state", "buffers")],
    )
    .unwrap();
    let ne_buffers = ne("node_memory_Buffers_bytes", &[])[0];
    assert!(
        (buffers - ne_buffers).abs() <= 64.0 * 1024.0 * 1024.0,
        "{buffers} vs {ne_buffers}"
    );
    compared.insert("memory.buffers");
    // CPU seconds by mode, summed over CPUs: both read /proc/stat within a second or two.
    let cpus = value(&r, "system.cpu.logical.count", &[]).unwrap();
    for (ours, theirs) in [
        ("user", "user"),
        ("system", "system"),
        ("idle", "idle"),
        ("iowait", "iowait"),
        ("steal", "steal"),
    ] {
        let a = value(&r, "system.cpu.time", &[("cpu.mode", ours)]).unwrap();
        let b: f64 = ne("node_cpu_seconds_total", &[("mode", theirs)])
            .iter()
            .sum();
        assert!((a - b).abs() <= 3.0 * cpus, "cpu {ours}: {a} vs {b}");
        compared.insert("cpu.time");
    }
    let a = value(&r, "system.cpu.time", &[("cpu.mode", "interrupt")]).unwrap();
    let b: f64 = ne("node_cpu_seconds_total", &[("mode", "irq")])
        .iter()
        .sum::<f64>()
        + ne("node_cpu_seconds_total", &[("mode", "softirq")])
            .iter()
            .sum::<f64>();
    assert!(
        (a - b).abs() <= 3.0 * cpus,
        "interrupt = irq + softirq: {a} vs {b}"
    );
    // Load average: same kernel numbers, refreshed every 5 s by the kernel.
    let ours = value(&r, "genscope.system.cpu.load_average.15m", &[]).unwrap();
    let theirs = ne("node_load15", &[])[0];
    assert!((ours - theirs).abs() < 0.5, "{ours} vs {theirs}");
    compared.insert("load");
    // Network: packets per interface node_exporter reports (it leaves out loopback); the two
    // reads are up to a second apart.
    let ifaces: BTreeSet<String> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "node_network_receive_packets_total")
        .filter_map(|s| s.labels.get("device").map(str::to_string))
        .collect();
    for i in &ifaces {
        let ours = value(
            &r,
            "system.network.packet.count",
            &[("system.device", i), ("network.io.direction", "receive")],
        )
        .unwrap_or_else(|| panic!("no packets for {i}"));
        let theirs = ne("node_network_receive_packets_total", &[("device", i)])[0];
        assert!(
            (ours - theirs).abs() <= 5000.0,
            "{i} packets {ours} vs {theirs}"
        );
        let ours = value(
            &r,
            "system.network.io",
            &[
                ("network.interface.name", i),
                ("network.io.direction", "transmit"),
            ],
        )
        .unwrap();
        let theirs = ne("node_network_transmit_bytes_total", &[("device", i)])[0];
        assert!(
            (ours - theirs).abs() <= 16.0 * 1024.0 * 1024.0,
            "{i} bytes {ours} vs {theirs}"
        );
        compared.insert("network");
    }
    // Disks: every whole disk we report is one node_exporter reports, with the same bytes read
    // (it also lists RAM disks, which we leave out).
    let disks: BTreeSet<String> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "node_disk_read_bytes_total")
        .filter_map(|s| s.labels.get("device").map(str::to_string))
        .collect();
    let ours_disks: BTreeSet<String> = points(&r.latest_metric("system.disk.io").unwrap())
        .iter()
        .filter_map(|(a, ..)| attr_str(a, "system.device"))
        .collect();
    assert!(
        !ours_disks.is_empty() && ours_disks.is_subset(&disks),
        "{ours_disks:?} vs {disks:?}"
    );
    for d in &ours_disks {
        let ours = value(
            &r,
            "system.disk.io",
            &[("system.device", d), ("disk.io.direction", "read")],
        )
        .unwrap();
        let theirs = ne("node_disk_read_bytes_total", &[("device", d)])[0];
        assert!(
            (ours - theirs).abs() <= 64.0 * 1024.0 * 1024.0,
            "disk {d}: {ours} vs {theirs}"
        );
        let ours = value(
            &r,
            "system.disk.operations",
            &[("system.device", d), ("disk.io.direction", "write")],
        )
        .unwrap();
        let theirs = ne("node_disk_writes_completed_total", &[("device", d)])[0];
        assert!(
            (ours - theirs).abs() <= 5000.0,
            "disk {d} writes: {ours} vs {theirs}"
        );
        compared.insert("disk");
    }
    eprintln!("compared with node_exporter: {compared:?} (disks {disks:?})");
    assert!(compared.len() >= 5, "{compared:?}");
    telemetry.shutdown().unwrap();
}

/// Observers on the pipeline's own meter, so a test can set the GPU backoff and stall timeout.
fn gpu_only(r: &Receiver, gpu: FakeGpu, stall: Duration) -> (genscope::Genscope, Observers) {
    let telemetry = common::builder(r.url(), Protocol::Grpc)
        .metric_export_interval(Duration::from_millis(100))
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
        .build()
        .unwrap();
    let observers = Observers::builder()
        .host_interval(Some(Duration::from_millis(100)))
        .gpu_interval(Some(Duration::from_millis(50)))
        .gpu_retry(Duration::from_millis(50), Duration::from_millis(200))
        .stall_timeout(stall)
        .gpu_backend(gpu)
        .start(&telemetry.meter("genscope.observers"));
    (telemetry, observers)
}

/// GPU ids in the most recent collection (a metric with no observations is left out of it).
fn gpu_ids_in_latest(r: &Receiver) -> BTreeSet<String> {
    let g = r.received.lock().unwrap();
    let Some(last) = g.metrics.last() else {
        return BTreeSet::new();
    };
    last.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == "hw.gpu.memory.usage")
        .flat_map(points)
        .filter_map(|(a, ..)| attr_str(&a, "hw.id"))
        .collect()
}

fn wait_status(o: &Observers, pred: impl Fn(&GpuStatus) -> bool) -> GpuStatus {
    for _ in 0..400 {
        let s = o.gpu_status();
        if pred(&s) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    o.gpu_status()
}

#[test]
fn a_vanishing_device_drops_out_and_comes_back() {
    let r = Receiver::grpc(Mode::Normal);
    let (gpu, _) = two_gpus();
    let (telemetry, observers) = gpu_only(&r, gpu.clone(), Duration::from_secs(10));
    assert!(r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r).len() == 2));
    gpu.update(1, |d| d.gone = true);
    let s = wait_status(&observers, |s| {
        matches!(s, GpuStatus::Available { devices: 1, .. })
    });
    assert!(matches!(s, GpuStatus::Available { devices: 1, .. }), "{s}");
    assert!(
        r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r)
            == BTreeSet::from(["GPU-fake-0000".to_string()])),
        "the vanished device's series must stop: {:?}",
        gpu_ids_in_latest(&r)
    );
    // Device 0 kept being read while device 1 was gone.
    let before = gpu.calls(0, GpuReading::Memory);
    std::thread::sleep(Duration::from_millis(300));
    assert!(gpu.calls(0, GpuReading::Memory) > before);
    gpu.update(1, |d| d.gone = false);
    assert!(
        r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r).len() == 2),
        "back after it returned"
    );
    // And all of them gone: unavailable, no GPU series, no error storm (one line, then backoff).
    gpu.update(0, |d| d.gone = true);
    gpu.update(1, |d| d.gone = true);
    let s = wait_status(&observers, |s| matches!(s, GpuStatus::Unavailable(_)));
    assert_eq!(s, GpuStatus::Unavailable(GpuUnavailable::NoDevice));
    assert!(observers.current_usage().gpu.is_none());
    drop(observers);
    telemetry.shutdown().unwrap();
}

#[test]
fn no_library_means_no_gpu_metrics_until_it_appears() {
    let r = Receiver::grpc(Mode::Normal);
    let gpu = FakeGpu::new(vec![FakeDevice::typical(0)]);
    gpu.set_unavailable(Some(GpuUnavailable::NoLibrary(
        "libnvidia-ml.so.1: cannot open shared object file".into(),
    )));
    let (telemetry, observers) = gpu_only(&r, gpu.clone(), Duration::from_secs(10));
    let s = wait_status(&observers, |s| matches!(s, GpuStatus::Unavailable(_)));
    assert!(
        matches!(&s, GpuStatus::Unavailable(GpuUnavailable::NoLibrary(m)) if m.contains("libnvidia-ml")),
        "{s}"
    );
    assert!(
        s.to_string().contains("install the NVIDIA driver"),
        "actionable: {s}"
    );
    // Host metrics flow; GPU metrics do not.
    assert!(r.wait_for(
        Duration::from_secs(20),
        |r| r.latest_metric("system.memory.usage").is_some() && collections(r) >= 4
    ));
    assert!(
        r.latest_metric("hw.gpu.memory.usage")
            .is_none_or(|m| points(&m).is_empty())
    );
    // Backoff: 50 ms doubling to 200 ms, so a second of retries is a handful of opens, not 20.
    let opens_before = gpu.opens();
    std::thread::sleep(Duration::from_secs(1));
    let opens = gpu.opens() - opens_before;
    assert!((2..=8).contains(&opens), "{opens} opens in 1 s");
    // The driver appears: picked up without a restart.
    gpu.set_unavailable(None);
    let s = wait_status(&observers, |s| matches!(s, GpuStatus::Available { .. }));
    assert!(matches!(s, GpuStatus::Available { devices: 1, .. }), "{s}");
    assert!(r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r).len() == 1));
    drop(observers);
    telemetry.shutdown().unwrap();
}

#[test]
fn a_hanging_gpu_call_never_delays_export() {
    let r = Receiver::grpc(Mode::Normal);
    let gpu = FakeGpu::new(vec![FakeDevice::typical(0)]);
    let (telemetry, observers) = gpu_only(&r, gpu.clone(), Duration::from_millis(300));
    assert!(r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r).len() == 1));
    gpu.hang_next_call();
    for _ in 0..200 {
        if gpu.is_hanging() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gpu.is_hanging());
    let s = wait_status(&observers, |s| *s == GpuStatus::Stalled);
    assert_eq!(s, GpuStatus::Stalled);
    // While the GPU thread is stuck, collections keep arriving with host metrics and without
    // (stale) GPU values.
    let at_stall = collections(&r);
    assert!(
        r.wait_for(Duration::from_secs(20), |r| {
            collections(r) >= at_stall + 3 && gpu_ids_in_latest(r).is_empty()
        }),
        "exports must go on without GPU values"
    );
    assert!(r.latest_metric("process.memory.usage").is_some());
    assert!(
        gpu.is_hanging(),
        "still hung: the exports above did not wait for it"
    );
    telemetry.force_flush().unwrap();
    gpu.release();
    let s = wait_status(&observers, |s| matches!(s, GpuStatus::Available { .. }));
    assert!(matches!(s, GpuStatus::Available { devices: 1, .. }), "{s}");
    assert!(
        r.wait_for(Duration::from_secs(20), |r| gpu_ids_in_latest(r).len() == 1),
        "GPU values resume"
    );
    drop(observers);
    telemetry.shutdown().unwrap();
}

#[test]
fn history_feeds_current_usage_windows_and_span_gpu_attributes() {
    let gpu = FakeGpu::new(vec![FakeDevice::typical(0)]);
    let telemetry = genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .host_metrics(Sampling::Every(Duration::from_millis(50)))
        .gpu_metrics(Sampling::Every(Duration::from_millis(50)))
        .resource_history(Duration::from_millis(400))
        .gpu_backend(gpu.clone())
        .build()
        .unwrap();
    let observers = telemetry.observers().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let now = observers.current_usage();
    assert!(now.host.as_ref().unwrap().cpu_utilization.is_some());
    assert!(now.process.as_ref().unwrap().memory_rss.unwrap() > 0);
    assert_eq!(now.gpu.as_ref().unwrap().devices[0].utilization, Some(0.42));
    let w = observers.history().window(Duration::from_secs(60));
    // Retention 400 ms at 50 ms: the ring holds about 8 points, never the whole 700 ms.
    assert!((4..=10).contains(&w.host.len()), "{}", w.host.len());
    assert!((4..=10).contains(&w.gpu.len()), "{}", w.gpu.len());
    assert!(w.host.windows(2).all(|p| p[0].at <= p[1].at));
    assert!(w.host.iter().skip(1).all(|p| p.cpu_utilization.is_some()));
    // A span that saw the GPU at 42 % then 84 % gets the mean; its memory peak is the max.
    let from = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(120));
    gpu.update(0, |d| {
        d.utilization = Some(genscope::gpu::EngineUtilization {
            gpu: 0.84,
            memory_controller: 0.1,
        });
        d.memory = Some(genscope::gpu::GpuMemory {
            total: 80 << 30,
            used: 50 << 30,
            free: 30 << 30,
            reserved: None,
        });
    });
    std::thread::sleep(Duration::from_millis(150));
    let usage = genscope::operations::GpuUsageSource::gpu_usage(
        observers.history().as_ref(),
        from,
        std::time::Instant::now(),
    )
    .unwrap();
    let u = usage.utilization.unwrap();
    assert!(u > 0.42 && u < 0.84, "{u}");
    assert_eq!(usage.memory_peak_bytes, Some(50 << 30));
    telemetry.shutdown().unwrap();
    assert!(
        observers.current_usage().host.is_none(),
        "nothing reported after shutdown"
    );
}
