//! Findings: rules over [`Signals`] (the numbers a report extracts from the store), each with a
//! stable id, a severity, the evidence and a concrete recommendation. Rules are pure functions so
//! each is tested on synthetic signals both ways (fires / stays quiet).
//!
//! | id | fires when (defaults in [`Thresholds`]) | severity |
//! |---|---|---|
//! | `gpu-underutilized-with-queue` | mean GPU utilization < 50 % while the mean queue holds >= 1 request | warning |
//! | `gpu-memory-pressure` | peak GPU memory used / installed >= 90 % (critical >= 97 %) | warning / critical |
//! | `gpu-throttling` | a thermal, power-brake or hardware-slowdown throttle reason active in >= 10 % of samples | warning |
//! | `cpu-bound` | host CPU busy (mean) >= 85 %, or this process >= 85 % of its CPUs | warning |
//! | `memory-growth` | over a window of >= 5 min, process RSS rises significantly (see `trend`) by >= 1 MiB/min and >= 5 % | warning |
//! | `high-error-rate` | generation (or any operation type with >= 20 runs) fails >= 5 % (critical >= 20 %) | warning / critical |
//! | `queue-dominated-latency` | median queue wait >= 50 % of median request duration | warning |
//! | `tail-latency` | p99 / p50 request duration >= 5 with >= 50 requests | info |
//! | `slow-downloads` | median model download throughput < 50 MB/s | info |
//! | `frequent-fallbacks` | fallback activations >= 5 % of generation requests (or >= 3 with no requests) | warning |
//! | `failing-health-checks` | >= 10 % of >= 3 health checks failed (critical >= 50 %) | warning / critical |
//! | `telemetry-loss` | spans dropped or exports failed in the window | warning |
//! | `error-burst` | >= 10 `tracing` ERROR events in the window, >= 30 per minute at the busiest collection (`genscope.events`) | warning |
//!
//! The serving-engine rules (`kv-cache-pressure`, `low-prefix-cache-hit-rate`,
//! `prefill-bound-latency`, `decode-bound-latency`) are in `serving.rs`.

mod model;
mod rules;
mod serving;
#[cfg(test)]
mod tests;

pub use model::{Evidence, Finding, Severity, Signals, Thresholds};

/// Every rule over `s`, most severe first.
pub fn evaluate(s: &Signals, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    rules::evaluate(s, t, &mut out);
    serving::evaluate(s, t, &mut out);
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
