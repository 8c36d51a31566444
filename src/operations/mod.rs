//! Operation tracking as spans: the resource-usage [`ResourceUsageLayer`] for any `tracing`
//! span (`#[instrument]` code included), and explicit [`Operations`] (downloads, health checks,
//! fallbacks, analytics collection, model operations, generations) that become one span plus
//! `genscope.operation.duration` and their domain metrics each.
//!
//! This module owns the span-side measurement (`probe.rs`: thread clock, `getrusage`,
//! `/proc/self/statm`; `thread_clock.rs`: the thread CPU clock without a system call between
//! context switches; `clock.rs`: the background usage clock that keeps span starts free of
//! system calls; `layer.rs`: the layer; `kind.rs`: operation kinds and generation tasks;
//! `operation.rs`: the guards). It must not know
//! about exporters or the analyzer: what it measures reaches both through the OTel span.

mod clock;
mod kind;
mod layer;
mod operation;
mod probe;
mod thread_clock;

pub use kind::{GenerationTask, OperationKind, OperationKindError};
pub use layer::{
    CPU_TIME, DEFAULT_CLOCK_INTERVAL, DEFAULT_MIN_MEMORY_SPAN, GPU_MEMORY_PEAK, GPU_UTILIZATION,
    GpuUsage, GpuUsageSource, OPERATION_FIELD, PROCESS_CPU_UTILIZATION, RSS_DELTA, RSS_PEAK,
    ResourceUsageLayer, ResourceUsageLayerBuilder, WatchRule,
};
pub use operation::{
    ERROR_DROPPED, ERROR_OTHER, ERROR_PANIC, MAX_ERROR_TYPE_LEN, OPERATION_TARGET, Operation,
    Operations,
};

pub use thread_clock::{MAX_EXTRAPOLATION, MAX_PAGES};

/// CPU time the calling thread has used since it started, as the [`ResourceUsageLayer`] reads
/// it at every enter and exit of a watched span: exact (`CLOCK_THREAD_CPUTIME_ID`), or, on Linux
/// while the thread has not been switched out since an exact reading less than
/// [`MAX_EXTRAPOLATION`] old, that reading plus the wall time since (no system call). Such a
/// read counts interrupt and hypervisor-steal time of that stretch as CPU time; every read
/// after a context switch is exact. `None` where the platform has no thread CPU clock.
///
/// ```
/// let before = genscope::operations::thread_cpu_time().unwrap_or_default();
/// let mut x = 0u64;
/// for i in 0..1_000_000u64 {
///     x = std::hint::black_box(x.wrapping_add(i));
/// }
/// let used = genscope::operations::thread_cpu_time().unwrap_or_default() - before;
/// println!("{used:?} of CPU for {x}");
/// ```
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    thread_clock::thread_cpu_ns().map(std::time::Duration::from_nanos)
}
