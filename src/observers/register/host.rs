//! `system.*`: the host's CPU, memory, paging, disks, filesystems, network and load.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::{Registered, direction, guarded, net_direction};
use crate::observers::host::{CpuModes, HostSample};
use crate::observers::latest::Latest;

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
    fn fs_attrs(f: &crate::observers::host::Filesystem) -> [KeyValue; 4] {
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
        (0, "genscope.system.cpu.load_average.1m"),
        (1, "genscope.system.cpu.load_average.5m"),
        (2, "genscope.system.cpu.load_average.15m"),
    ] {
        observe!(
            meter,
            out,
            f64_observable_gauge,
            name,
            "{thread}",
            "Load average (runnable and uninterruptible threads); the collector's hostmetrics load scraper calls it system.cpu.load_average.*, which no semantic convention defines.",
            latest,
            move |l: &Latest, o: &dyn AsyncInstrument<f64>| if let Some(la) =
                host(l).and_then(|h| h.load_average)
            {
                o.observe(la[i], &[]);
            }
        );
    }
}
