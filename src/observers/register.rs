//! Observable instruments over the latest cached samples. Every callback only loads an `Arc`
//! from [`Latest`], reports nothing when that sample is stale (its sampler stalled or stopped),
//! and catches its own panics: a panicking callback would kill the SDK's metric reader thread.
//!
//! Names, units and attributes follow semconv (`system.*`, `process.*`, `hw.*`); readings
//! semconv has no name for are under `genscope.gpu.*` (see the table in `ARCHITECTURE.md`).

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::gpu::{GpuDeviceSample, THROTTLE_REASONS};
use super::host::{CpuModes, HostSample};
use super::process::ProcessSample;
use super::runner::Latest;

/// Keeps the instruments alive for as long as the observers run.
pub(crate) type Registered = Vec<Box<dyn std::any::Any + Send + Sync>>;

fn guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        tracing::error!(target: "genscope", "an observer callback panicked; its values were skipped");
    }
}

macro_rules! observe {
    ($meter:expr, $out:expr, $kind:ident, $name:expr, $unit:expr, $desc:expr, $latest:expr, $f:expr) => {{
        let latest = Arc::clone(&$latest);
        let f = $f;
        $out.push(Box::new(
            $meter
                .$kind($name)
                .with_unit($unit)
                .with_description($desc)
                .with_callback(move |o| guarded(|| f(&latest, o)))
                .build(),
        ));
    }};
}

fn host(l: &Latest) -> Option<Arc<HostSample>> {
    l.host()
}

fn modes(o: &dyn AsyncInstrument<f64>, m: &CpuModes, extra: Option<KeyValue>) {
    for (mode, v) in m.pairs() {
        let mut attrs = vec![KeyValue::new("cpu.mode", mode)];
        attrs.extend(extra.clone());
        o.observe(v, &attrs);
    }
}

fn direction(d: &'static str) -> KeyValue {
    KeyValue::new("disk.io.direction", d)
}

fn net_direction(d: &'static str) -> KeyValue {
    KeyValue::new("network.io.direction", d)
}

/// `system.*`: registered when host sampling is on.
pub(crate) fn register_host(meter: &Meter, latest: &Arc<Latest>, out: &mut Registered) {
    observe!(
        meter,
        out,
        f64_observable_counter,
        "system.cpu.time",
        "s",
        "CPU time by mode, all logical CPUs together (or per CPU with cpu.logical_number).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l) {
            if h.cpu_time_per_cpu.is_empty() {
                modes(o, &h.cpu_time, None);
            } else {
                for (n, m) in &h.cpu_time_per_cpu {
                    modes(o, m, Some(KeyValue::new("cpu.logical_number", *n as i64)));
                }
            }
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "system.cpu.utilization",
        "1",
        "Share of CPU time by mode since the previous sample (0..1).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l) {
            if !h.cpu_utilization_per_cpu.is_empty() {
                for (n, m) in &h.cpu_utilization_per_cpu {
                    modes(o, m, Some(KeyValue::new("cpu.logical_number", *n as i64)));
                }
            } else if let Some(u) = &h.cpu_utilization {
                modes(o, u, None);
            }
        }
    );
    observe!(
        meter,
        out,
        i64_observable_gauge,
        "system.cpu.frequency",
        "Hz",
        "Current frequency per logical CPU.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l) {
            for (n, hz) in &h.cpu_frequency_hz {
                o.observe(*hz, &[KeyValue::new("cpu.logical_number", *n as i64)]);
            }
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.cpu.logical.count",
        "{cpu}",
        "Logical CPUs.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l)
            && h.logical_cpus > 0
        {
            o.observe(h.logical_cpus, &[]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.cpu.physical.count",
        "{cpu}",
        "Physical cores.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(n) =
            host(l).and_then(|h| h.physical_cpus)
        {
            o.observe(n, &[]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.memory.usage",
        "By",
        "Memory by state; used = MemTotal - MemAvailable.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l)
            && h.memory.total > 0
        {
            let m = &h.memory;
            for (state, v) in [
                ("used", m.used()),
                ("free", m.free),
                ("buffers", m.buffers),
                ("cached", m.cached),
            ] {
                o.observe(v as i64, &[KeyValue::new("system.memory.state", state)]);
            }
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.memory.limit",
        "By",
        "Total memory (MemTotal).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l)
            && h.memory.total > 0
        {
            o.observe(h.memory.total as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "system.memory.utilization",
        "1",
        "Memory by state as a share of the total (0..1).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l)
            && h.memory.total > 0
        {
            let m = &h.memory;
            let t = m.total as f64;
            for (state, v) in [
                ("used", m.used()),
                ("free", m.free),
                ("buffers", m.buffers),
                ("cached", m.cached),
            ] {
                o.observe(v as f64 / t, &[KeyValue::new("system.memory.state", state)]);
            }
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.memory.linux.available",
        "By",
        "The kernel's estimate of memory available without swapping (MemAvailable).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(a) =
            host(l).and_then(|h| h.memory.available)
        {
            o.observe(a as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.paging.usage",
        "By",
        "Swap space by state.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l)
            && h.memory.total > 0
        {
            let m = &h.memory;
            o.observe(
                m.swap_total.saturating_sub(m.swap_free) as i64,
                &[KeyValue::new("system.paging.state", "used")],
            );
            o.observe(
                m.swap_free as i64,
                &[KeyValue::new("system.paging.state", "free")],
            );
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.disk.io",
        "By",
        "Bytes read from and written to each whole disk.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for d in &h.disks {
                let dev = KeyValue::new("system.device", d.device.clone());
                o.observe(d.read_sectors * 512, &[dev.clone(), direction("read")]);
                o.observe(d.write_sectors * 512, &[dev, direction("write")]);
            }
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.disk.operations",
        "{operation}",
        "Completed reads and writes per whole disk.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for d in &h.disks {
                let dev = KeyValue::new("system.device", d.device.clone());
                o.observe(d.reads, &[dev.clone(), direction("read")]);
                o.observe(d.writes, &[dev, direction("write")]);
            }
        }
    );
    observe!(
        meter,
        out,
        f64_observable_counter,
        "system.disk.io_time",
        "s",
        "Time each disk had I/O in flight.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l) {
            for d in &h.disks {
                o.observe(
                    d.io_ms as f64 / 1000.0,
                    &[KeyValue::new("system.device", d.device.clone())],
                );
            }
        }
    );
    observe!(
        meter,
        out,
        f64_observable_counter,
        "system.disk.operation_time",
        "s",
        "Time spent in reads and writes per disk (summed over concurrent operations).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l) {
            for d in &h.disks {
                let dev = KeyValue::new("system.device", d.device.clone());
                o.observe(d.read_ms as f64 / 1000.0, &[dev.clone(), direction("read")]);
                o.observe(d.write_ms as f64 / 1000.0, &[dev, direction("write")]);
            }
        }
    );
    fn fs_attrs(f: &super::host::Filesystem) -> [KeyValue; 4] {
        [
            KeyValue::new("system.device", f.device.clone()),
            KeyValue::new("system.filesystem.mountpoint", f.mountpoint.clone()),
            KeyValue::new("system.filesystem.type", f.fs_type.clone()),
            KeyValue::new(
                "system.filesystem.mode",
                if f.read_only { "ro" } else { "rw" },
            ),
        ]
    }
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.filesystem.usage",
        "By",
        "Filesystem space by state (used, free, reserved for root).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l) {
            for f in &h.filesystems {
                for (state, v) in [("used", f.used), ("free", f.free), ("reserved", f.reserved)] {
                    let mut attrs = fs_attrs(f).to_vec();
                    attrs.push(KeyValue::new("system.filesystem.state", state));
                    o.observe(v as i64, &attrs);
                }
            }
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "system.filesystem.utilization",
        "1",
        "Used share of each filesystem (0..1).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(h) = host(l) {
            for f in &h.filesystems {
                if f.limit() > 0 {
                    o.observe(f.used as f64 / f.limit() as f64, &fs_attrs(f));
                }
            }
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "system.filesystem.limit",
        "By",
        "Filesystem size.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(h) = host(l) {
            for f in &h.filesystems {
                o.observe(f.limit() as i64, &fs_attrs(f));
            }
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.network.io",
        "By",
        "Bytes received and transmitted per interface.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for n in &h.networks {
                let i = KeyValue::new("network.interface.name", n.interface.clone());
                o.observe(n.rx_bytes, &[i.clone(), net_direction("receive")]);
                o.observe(n.tx_bytes, &[i, net_direction("transmit")]);
            }
        }
    );
    // Semconv (1.44) keys this one by `system.device`, unlike its siblings.
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.network.packet.count",
        "{packet}",
        "Packets received and transmitted per interface.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for n in &h.networks {
                let i = KeyValue::new("system.device", n.interface.clone());
                o.observe(n.rx_packets, &[i.clone(), net_direction("receive")]);
                o.observe(n.tx_packets, &[i, net_direction("transmit")]);
            }
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.network.errors",
        "{error}",
        "Receive and transmit errors per interface.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for n in &h.networks {
                let i = KeyValue::new("network.interface.name", n.interface.clone());
                o.observe(n.rx_errors, &[i.clone(), net_direction("receive")]);
                o.observe(n.tx_errors, &[i, net_direction("transmit")]);
            }
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "system.network.packet.dropped",
        "{packet}",
        "Packets dropped per interface and direction.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(h) = host(l) {
            for n in &h.networks {
                let i = KeyValue::new("network.interface.name", n.interface.clone());
                o.observe(n.rx_dropped, &[i.clone(), net_direction("receive")]);
                o.observe(n.tx_dropped, &[i, net_direction("transmit")]);
            }
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "system.uptime",
        "s",
        "Seconds since boot.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(u) = host(l).and_then(|h| h.uptime_s)
        {
            o.observe(u, &[]);
        }
    );
    for (i, name) in [
        (0, "system.cpu.load_average.1m"),
        (1, "system.cpu.load_average.5m"),
        (2, "system.cpu.load_average.15m"),
    ] {
        observe!(
            meter,
            out,
            f64_observable_gauge,
            name,
            "{thread}",
            "Load average (runnable and uninterruptible threads), as the collector's load scraper names it.",
            latest,
            move |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(la) =
                host(l).and_then(|h| h.load_average)
            {
                o.observe(la[i], &[]);
            }
        );
    }
}

fn process(l: &Latest) -> Option<Arc<ProcessSample>> {
    l.process()
}

/// `process.*` for this process: registered when host sampling is on.
pub(crate) fn register_process(meter: &Meter, latest: &Arc<Latest>, out: &mut Registered) {
    observe!(
        meter,
        out,
        f64_observable_counter,
        "process.cpu.time",
        "s",
        "CPU time of this process by mode.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(p) = process(l) {
            o.observe(p.cpu_user_s, &[KeyValue::new("cpu.mode", "user")]);
            o.observe(p.cpu_system_s, &[KeyValue::new("cpu.mode", "system")]);
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "process.cpu.utilization",
        "1",
        "This process's CPU time since the previous sample over the CPUs available to it (0..1).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some((u, s)) =
            process(l).and_then(|p| p.cpu_utilization)
        {
            o.observe(u, &[KeyValue::new("cpu.mode", "user")]);
            o.observe(s, &[KeyValue::new("cpu.mode", "system")]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "process.memory.usage",
        "By",
        "Resident set size.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(v) =
            process(l).and_then(|p| p.memory_rss)
        {
            o.observe(v as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "process.memory.virtual",
        "By",
        "Virtual memory size.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(v) =
            process(l).and_then(|p| p.memory_virtual)
        {
            o.observe(v as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "process.disk.io",
        "By",
        "Bytes this process caused to be read from and written to storage.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(io) =
            process(l).and_then(|p| p.disk_io)
        {
            o.observe(io.read_bytes, &[direction("read")]);
            o.observe(io.write_bytes, &[direction("write")]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "process.thread.count",
        "{thread}",
        "Threads of this process.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(v) =
            process(l).and_then(|p| p.threads)
        {
            o.observe(v as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "process.unix.file_descriptor.count",
        "{file_descriptor}",
        "Open file descriptors.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| if let Some(v) =
            process(l).and_then(|p| p.open_fds)
        {
            o.observe(v as i64, &[]);
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "process.context_switches",
        "{context_switch}",
        "Voluntary and involuntary context switches.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(p) = process(l) {
            o.observe(
                p.voluntary_switches,
                &[KeyValue::new("process.context_switch.type", "voluntary")],
            );
            o.observe(
                p.involuntary_switches,
                &[KeyValue::new("process.context_switch.type", "involuntary")],
            );
        }
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "process.paging.faults",
        "{fault}",
        "Major and minor page faults.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| if let Some(p) = process(l) {
            o.observe(
                p.major_faults,
                &[KeyValue::new("system.paging.fault.type", "major")],
            );
            o.observe(
                p.minor_faults,
                &[KeyValue::new("system.paging.fault.type", "minor")],
            );
        }
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "process.uptime",
        "s",
        "Seconds since genscope's observers started in this process.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(p) = process(l) {
            o.observe(p.uptime_s, &[]);
        }
    );
}

/// The attributes every series of one GPU carries.
fn gpu_attrs(d: &GpuDeviceSample, driver: Option<&str>) -> Vec<KeyValue> {
    let id = &d.identity;
    let mut a = vec![
        KeyValue::new("hw.id", id.uuid.clone()),
        KeyValue::new("hw.name", format!("gpu{}", d.index)),
        KeyValue::new("hw.vendor", "NVIDIA"),
        KeyValue::new("hw.model", id.model.clone()),
    ];
    if let Some(s) = &id.serial {
        a.push(KeyValue::new("hw.serial_number", s.clone()));
    }
    if let Some(v) = driver {
        a.push(KeyValue::new("hw.driver_version", v.to_string()));
    }
    if let Some(v) = &id.firmware_version {
        a.push(KeyValue::new("hw.firmware_version", v.clone()));
    }
    a
}

fn with(mut base: Vec<KeyValue>, extra: impl IntoIterator<Item = KeyValue>) -> Vec<KeyValue> {
    base.extend(extra);
    base
}

/// A sub-component (sensor, fan) of a GPU: its own `hw.id`, the GPU as `hw.parent`.
fn component(d: &GpuDeviceSample, driver: Option<&str>, suffix: &str) -> Vec<KeyValue> {
    let mut a = gpu_attrs(d, driver);
    a[0] = KeyValue::new("hw.id", format!("{}:{suffix}", d.identity.uuid));
    a.push(KeyValue::new("hw.parent", d.identity.uuid.clone()));
    a
}

fn each_gpu(l: &Latest, mut f: impl FnMut(&GpuDeviceSample, Option<&str>)) {
    if let Some(g) = l.gpu() {
        for d in &g.devices {
            f(d, g.driver_version.as_deref());
        }
    }
}

/// `hw.*` and `genscope.gpu.*`: registered when GPU sampling is on.
pub(crate) fn register_gpu(meter: &Meter, latest: &Arc<Latest>, out: &mut Registered) {
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.gpu.utilization",
        "1",
        "Busy ratio per GPU engine (general = kernels, encoder, decoder).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            for (task, v) in [
                ("general", d.utilization),
                ("encoder", d.encoder_utilization),
                ("decoder", d.decoder_utilization),
            ] {
                if let Some(v) = v {
                    o.observe(
                        v,
                        &with(gpu_attrs(d, drv), [KeyValue::new("hw.gpu.task", task)]),
                    );
                }
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "genscope.gpu.memory_controller.utilization",
        "1",
        "Share of time device memory was read or written (NVML utilization.memory); not capacity.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            if let Some(v) = d.memory_controller_utilization {
                o.observe(v, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "hw.gpu.memory.usage",
        "By",
        "Frame-buffer memory allocated.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            if let Some(m) = d.memory {
                o.observe(m.used as i64, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "hw.gpu.memory.limit",
        "By",
        "Frame-buffer memory installed.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            if let Some(m) = d.memory {
                o.observe(m.total as i64, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.gpu.memory.utilization",
        "1",
        "Frame-buffer memory allocated / installed (capacity, 0..1).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            if let Some(v) = d.memory_utilization() {
                o.observe(v, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "genscope.gpu.memory.free",
        "By",
        "Frame-buffer memory not allocated.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            if let Some(m) = d.memory {
                o.observe(m.free as i64, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "genscope.gpu.memory.reserved",
        "By",
        "Frame-buffer memory reserved by the driver.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            if let Some(r) = d.memory.and_then(|m| m.reserved) {
                o.observe(r as i64, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "hw.gpu.io",
        "By",
        "PCIe bytes per direction since sampling began (integrated from NVML's 20 ms throughput windows: an estimate).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| each_gpu(l, |d, drv| {
            if let (Some(tx), Some(rx)) = (d.pcie_transmit_bytes, d.pcie_receive_bytes) {
                o.observe(tx, &with(gpu_attrs(d, drv), [net_direction("transmit")]));
                o.observe(rx, &with(gpu_attrs(d, drv), [net_direction("receive")]));
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.power",
        "W",
        "Power draw (NVML: a 1 s average on Ampere and later).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            if let Some(v) = d.power_w {
                o.observe(
                    v,
                    &with(gpu_attrs(d, drv), [KeyValue::new("hw.type", "gpu")]),
                );
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_counter,
        "hw.energy",
        "J",
        "Energy since the driver loaded.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            if let Some(v) = d.energy_j {
                o.observe(
                    v,
                    &with(gpu_attrs(d, drv), [KeyValue::new("hw.type", "gpu")]),
                );
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "genscope.gpu.power.limit",
        "W",
        "Enforced power limit.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            if let Some(v) = d.power_limit_w {
                o.observe(v, &gpu_attrs(d, drv));
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.temperature",
        "Cel",
        "GPU die and memory temperature; each sensor is a component of its GPU (hw.parent).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            for (loc, v) in [("gpu", d.temperature_c), ("memory", d.memory_temperature_c)] {
                if let Some(v) = v {
                    o.observe(
                        v,
                        &with(
                            component(d, drv, loc),
                            [KeyValue::new("hw.sensor_location", loc)],
                        ),
                    );
                }
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.temperature.limit",
        "Cel",
        "GPU temperature thresholds: high.degraded (slowdown), high.critical (shutdown), max.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            for (limit, v) in &d.temperature_limits {
                o.observe(
                    *v,
                    &with(
                        component(d, drv, "gpu"),
                        [
                            KeyValue::new("hw.sensor_location", "gpu"),
                            KeyValue::new("hw.limit_type", limit.as_str()),
                        ],
                    ),
                );
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "hw.fan.speed_ratio",
        "1",
        "Fan speed as a share of its maximum.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            for (i, v) in d.fan_speed_ratios.iter().enumerate() {
                o.observe(*v, &component(d, drv, &format!("fan{i}")));
            }
        })
    );
    observe!(
        meter,
        out,
        u64_observable_counter,
        "hw.errors",
        "{error}",
        "ECC errors (corrected, uncorrected; volatile since driver load) and PCIe replays.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<u64>| each_gpu(l, |d, drv| {
            let gpu = || with(gpu_attrs(d, drv), [KeyValue::new("hw.type", "gpu")]);
            if let Some(e) = d.ecc_errors {
                o.observe(
                    e.corrected,
                    &with(gpu(), [KeyValue::new("error.type", "corrected")]),
                );
                o.observe(
                    e.uncorrected,
                    &with(gpu(), [KeyValue::new("error.type", "uncorrected")]),
                );
            }
            if let Some(r) = d.pcie_replays {
                o.observe(
                    r,
                    &with(gpu(), [KeyValue::new("error.type", "pcie_replay")]),
                );
            }
        })
    );
    observe!(
        meter,
        out,
        f64_observable_gauge,
        "genscope.gpu.clock.frequency",
        "Hz",
        "Current clock frequency per domain (graphics, sm, memory, video).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<f64>| each_gpu(l, |d, drv| {
            for (clock, hz) in &d.clocks_hz {
                o.observe(
                    *hz,
                    &with(
                        gpu_attrs(d, drv),
                        [KeyValue::new("genscope.gpu.clock", clock.as_str())],
                    ),
                );
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "genscope.gpu.throttle.active",
        "1",
        "1 while a clock throttle reason is active, else 0, per reason.",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            if let Some(active) = &d.throttle_reasons {
                for reason in THROTTLE_REASONS {
                    o.observe(
                        active.contains(&reason) as i64,
                        &with(
                            gpu_attrs(d, drv),
                            [KeyValue::new("genscope.gpu.throttle.reason", reason)],
                        ),
                    );
                }
            }
        })
    );
    observe!(
        meter,
        out,
        i64_observable_up_down_counter,
        "genscope.gpu.process.memory.usage",
        "By",
        "Frame-buffer memory per process (host PIDs, even inside containers).",
        latest,
        |l: &Latest, o: &dyn AsyncInstrument<i64>| each_gpu(l, |d, drv| {
            for p in &d.processes {
                o.observe(
                    p.memory_bytes as i64,
                    &with(
                        gpu_attrs(d, drv),
                        [KeyValue::new("process.pid", p.pid as i64)],
                    ),
                );
            }
        })
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panicking_callback_body_is_contained() {
        let mut after = false;
        super::guarded(|| panic!("a bug in a callback"));
        super::guarded(|| after = true);
        assert!(after, "later callbacks still run");
    }
}
