//! `hw.*` per GPU and `genscope.gpu.*` for what semconv has no name for.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::{Registered, guarded, net_direction};
use crate::observers::gpu::{GpuDeviceSample, THROTTLE_REASONS};
use crate::observers::latest::Latest;

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
