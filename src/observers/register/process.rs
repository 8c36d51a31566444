//! `process.*`: this process's CPU, memory, disk, threads, descriptors and uptime.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::{Registered, direction, guarded};
use crate::observers::latest::Latest;
use crate::observers::process::ProcessSample;

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
