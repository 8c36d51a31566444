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

pub(crate) use model::{Shown, show};

/// What each rule's evidence shows, and how it reads.
const QUANTITIES: &[(&str, &str, Shown)] = &[
    (
        "gpu-underutilized-with-queue",
        "mean GPU utilization",
        Shown::Percent,
    ),
    (
        "gpu-memory-pressure",
        "peak GPU memory used / installed",
        Shown::Percent,
    ),
    (
        "gpu-throttling",
        "share of GPU samples with a throttle reason active",
        Shown::Percent,
    ),
    ("cpu-bound", "mean CPU busy share", Shown::Percent),
    (
        "memory-growth",
        "process resident memory growth",
        Shown::Unit,
    ),
    (
        "high-error-rate",
        "share of requests failed",
        Shown::Percent,
    ),
    (
        "queue-dominated-latency",
        "median queue wait / median request duration",
        Shown::Times,
    ),
    ("tail-latency", "p99 / p50 request duration", Shown::Times),
    (
        "slow-downloads",
        "median model download throughput",
        Shown::Unit,
    ),
    (
        "frequent-fallbacks",
        "fallback activations per generation request",
        Shown::Percent,
    ),
    (
        "failing-health-checks",
        "share of health checks failed",
        Shown::Percent,
    ),
    (
        "error-burst",
        "ERROR events per minute at the busiest collection",
        Shown::Unit,
    ),
    (
        "telemetry-loss",
        "spans dropped plus items failed to export",
        Shown::Unit,
    ),
    ("kv-cache-pressure", "peak KV-cache usage", Shown::Percent),
    (
        "low-prefix-cache-hit-rate",
        "share of prompt tokens hit in the prefix cache",
        Shown::Percent,
    ),
    (
        "prefill-bound-latency",
        "prefill share of model time (medians)",
        Shown::Percent,
    ),
    (
        "decode-bound-latency",
        "decode share of model time (medians)",
        Shown::Percent,
    ),
];

/// Names the quantity of `f`'s evidence and writes its values with their units.
pub(crate) fn describe(f: &mut Finding, quantity: &str, how: Shown) {
    let e = &mut f.evidence;
    // A share needs a share's unit; a count stands alone (fallbacks with no requests).
    let how = if how == Shown::Percent && e.unit != "1" {
        Shown::Unit
    } else {
        how
    };
    e.quantity = quantity.to_string();
    e.observed_text = show(e.observed, &e.unit, how);
    e.threshold_text = show(e.threshold, &e.unit, how);
}

/// Every rule over `s`, most severe first.
pub fn evaluate(s: &Signals, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    rules::evaluate(s, t, &mut out);
    serving::evaluate(s, t, &mut out);
    for f in &mut out {
        if let Some((_, q, how)) = QUANTITIES.iter().find(|(id, _, _)| *id == f.id) {
            describe(f, q, *how);
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
