//! Real NVML against `nvidia-smi`, read at the same moment. Runs where an NVIDIA GPU and
//! `nvidia-smi` exist; elsewhere it says so and passes, unless `GENSCOPE_REQUIRE_NVML=1` (set it
//! on a GPU machine so a broken driver setup fails instead of skipping). With `--nocapture` it
//! also prints the cost of each NVML reading (for BENCHMARKS.md).

use std::process::Command;
use std::time::{Duration, Instant};

use genscope::gpu::{
    GpuAvailability, GpuBackend, GpuClock, GpuSampler, NvmlBackend, TemperatureLimit,
    TemperatureSensor,
};

const QUERY: &str = "index,uuid,name,memory.total,memory.used,power.draw,power.limit,temperature.gpu,clocks.sm,clocks.mem,utilization.gpu";

fn smi() -> Option<Vec<Vec<String>>> {
    let out = Command::new("nvidia-smi")
        .args([
            &format!("--query-gpu={QUERY}"),
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
            .collect()
    })
}

fn num(v: &str) -> f64 {
    v.parse()
        .unwrap_or_else(|_| panic!("nvidia-smi value {v:?}"))
}

#[test]
fn nvml_agrees_with_nvidia_smi() {
    let required = std::env::var_os("GENSCOPE_REQUIRE_NVML").is_some();
    let Some(rows) = smi() else {
        assert!(
            !required,
            "GENSCOPE_REQUIRE_NVML is set but nvidia-smi does not answer"
        );
        eprintln!("no nvidia-smi here; the real-NVML check needs a GPU machine");
        return;
    };
    match genscope::gpu::probe() {
        GpuAvailability::Available { devices, .. } => assert_eq!(devices as usize, rows.len()),
        GpuAvailability::Unavailable(why) => panic!("nvidia-smi works but NVML does not: {why}"),
    }
    let mut sampler = GpuSampler::new(
        Box::new(NvmlBackend::new()),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let sample = sampler.sample().expect("an NVML sample");
    let rows = smi().expect("nvidia-smi again");
    assert_eq!(sample.devices.len(), rows.len());
    for (d, row) in sample.devices.iter().zip(&rows) {
        let ctx = format!("gpu{} {}", d.index, d.identity.uuid);
        assert_eq!(d.identity.uuid, row[1], "{ctx}");
        assert_eq!(d.identity.model, row[2], "{ctx}");
        let m = d.memory.expect("memory info");
        assert_eq!(
            (m.total as f64 / 1048576.0).round(),
            num(&row[3]),
            "{ctx} memory.total MiB"
        );
        assert!(
            (m.used as f64 / 1048576.0 - num(&row[4])).abs() <= 256.0,
            "{ctx} memory.used"
        );
        if let Some(p) = d.power_w {
            assert!(
                (p - num(&row[5])).abs() <= 25.0 + 0.15 * p,
                "{ctx} power {p} vs {}",
                row[5]
            );
        }
        if let Some(l) = d.power_limit_w {
            assert!(
                (l - num(&row[6])).abs() <= 1.0,
                "{ctx} power limit {l} vs {}",
                row[6]
            );
        }
        let t = d.temperature_c.expect("die temperature");
        assert!(
            (t - num(&row[7])).abs() <= 3.0,
            "{ctx} temperature {t} vs {}",
            row[7]
        );
        let sm = d
            .clocks_hz
            .iter()
            .find(|(c, _)| *c == GpuClock::Sm)
            .expect("SM clock")
            .1;
        assert!(
            (sm / 1e6 - num(&row[8])).abs() <= 0.2 * num(&row[8]) + 100.0,
            "{ctx} sm clock"
        );
        let mem = d
            .clocks_hz
            .iter()
            .find(|(c, _)| *c == GpuClock::Memory)
            .expect("memory clock")
            .1;
        assert!(
            (mem / 1e6 - num(&row[9])).abs() <= 0.05 * num(&row[9]) + 10.0,
            "{ctx} mem clock"
        );
        let u = d.utilization.expect("utilization");
        assert!(
            (u * 100.0 - num(&row[10])).abs() <= 25.0,
            "{ctx} utilization {u} vs {}",
            row[10]
        );
        eprintln!("{ctx}: agrees with nvidia-smi: {d:?}");
    }

    // Per-call cost of each reading on device 0.
    let mut nvml = NvmlBackend::new();
    let t = Instant::now();
    nvml.open().expect("open");
    eprintln!("nvml open (init): {:?}", t.elapsed());
    let mut time = |name: &str, f: &mut dyn FnMut(&mut NvmlBackend) -> bool| {
        let n = 50;
        let t = Instant::now();
        let mut ok = true;
        for _ in 0..n {
            ok &= f(&mut nvml);
        }
        eprintln!(
            "nvml {name}: {:?} per call{}",
            t.elapsed() / n,
            if ok { "" } else { " (not supported)" }
        );
    };
    time("utilization", &mut |b| b.utilization(0).is_ok());
    time("memory", &mut |b| b.memory(0).is_ok());
    time("power", &mut |b| b.power_watts(0).is_ok());
    time("energy", &mut |b| b.energy_joules(0).is_ok());
    time("temperature gpu", &mut |b| {
        b.temperature(0, TemperatureSensor::Gpu).is_ok()
    });
    time("temperature memory (field 82)", &mut |b| {
        b.temperature(0, TemperatureSensor::Memory).is_ok()
    });
    time("temperature limit", &mut |b| {
        b.temperature_limit(0, TemperatureLimit::Critical).is_ok()
    });
    time("pcie throughput (tx+rx)", &mut |b| {
        b.pcie_throughput(0).is_ok()
    });
    time("clock sm", &mut |b| b.clock_hz(0, GpuClock::Sm).is_ok());
    time("ecc errors", &mut |b| b.ecc_errors(0).is_ok());
    time("throttle reasons", &mut |b| b.throttle_reasons(0).is_ok());
    time("processes", &mut |b| b.processes(0).is_ok());
    let t = Instant::now();
    let n = 5;
    for _ in 0..n {
        sampler.sample().expect("sample");
    }
    eprintln!(
        "full GPU sample, {} device(s): {:?}",
        rows.len(),
        t.elapsed() / n
    );
}

/// Builds `tests/fake_nvml/fake_nvml.c` into a `libnvidia-ml.so.1` in a temporary directory.
fn fake_nvml_library() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::tempdir().ok()?;
    let lib = dir.path().join("libnvidia-ml.so.1");
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .ok()?;
    status.success().then_some((dir, lib))
}

#[test]
fn nvml_backend_runs_end_to_end_on_an_old_driver_library() {
    // Every machine this project builds on has a C compiler (libFuzzer and ring need one too).
    let (_dir, lib) = fake_nvml_library().expect("cc builds tests/fake_nvml/fake_nvml.c");
    let mut backend = NvmlBackend::with_library_path(&lib);
    let driver = backend.open().expect("the fake library opens");
    assert_eq!(driver.devices, 1);
    assert_eq!(driver.driver_version.as_deref(), Some("470.82.01"));
    let mut sampler = GpuSampler::new(
        Box::new(backend),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    for _ in 0..2 {
        let s = sampler.sample().expect("a sample");
        let d = &s.devices[0];
        assert_eq!(d.identity.uuid, "GPU-legacy-0000");
        assert_eq!(d.identity.model, "Legacy Tesla T4");
        assert_eq!(
            d.identity.serial, None,
            "missing symbol: no serial, no error"
        );
        // Only v1 exists: the fallback reads it, with no reserved figure.
        let m = d
            .memory
            .expect("memory through nvmlDeviceGetMemoryInfo (v1)");
        assert_eq!(
            (m.total, m.used, m.free, m.reserved),
            (16 << 30, 4 << 30, 12 << 30, None)
        );
        assert_eq!(d.memory_utilization(), Some(0.25));
        assert_eq!(d.utilization, Some(0.37));
        assert_eq!(d.memory_controller_utilization, Some(0.12));
        assert_eq!(d.power_w, Some(70.5));
        assert_eq!(d.temperature_c, Some(48.0));
        assert_eq!(d.encoder_utilization, None, "NOT_SUPPORTED");
        assert!(d.clocks_hz.is_empty() && d.fan_speed_ratios.is_empty() && d.energy_j.is_none());
    }
}

#[test]
fn a_missing_library_is_reported_with_its_path() {
    let mut backend = NvmlBackend::with_library_path("/nonexistent/dir/libnvidia-ml.so.1");
    match backend.open() {
        Err(genscope::gpu::GpuUnavailable::NoLibrary(msg)) => {
            assert!(msg.contains("/nonexistent/dir/libnvidia-ml.so.1"), "{msg}")
        }
        other => panic!("expected NoLibrary, got {other:?}"),
    }
}
