//! Operation tracking as spans: the resource-usage [`ResourceUsageLayer`] for any `tracing`
//! span (`#[instrument]` code included), and explicit [`Operations`] (downloads, health checks,
//! fallbacks, analytics collection, model operations, generations) that become one span plus
//! `genscope.operation.duration` and their domain metrics each.
//!
//! This module owns the span-side measurement (`probe.rs`: thread clock, `getrusage`,
//! `/proc/self/statm`; `clock.rs`: the background usage clock that keeps span starts free of
//! system calls; `layer.rs`: the layer; `operation.rs`: the guards). It must not know
//! about exporters or the analyzer: what it measures reaches both through the OTel span.

mod clock;
mod layer;
mod operation;
mod probe;

pub use layer::{
    CPU_TIME, DEFAULT_CLOCK_INTERVAL, DEFAULT_MIN_MEMORY_SPAN, GPU_MEMORY_PEAK, GPU_UTILIZATION,
    GpuUsage, GpuUsageSource, OPERATION_FIELD, PROCESS_CPU_UTILIZATION, RSS_DELTA, RSS_PEAK,
    ResourceUsageLayer, ResourceUsageLayerBuilder, WatchRule,
};
pub use operation::{
    ERROR_DROPPED, ERROR_OTHER, ERROR_PANIC, GenerationTask, MAX_ERROR_TYPE_LEN, OPERATION_TARGET,
    Operation, OperationKind, OperationKindError, Operations,
};
