//! Exact counts of what the pipeline accepted, delivered and dropped, and their self-metrics.
//!
//! The SDK's batch processor keeps its drop count private and its exporters' failures are only
//! logged, so genscope counts for itself: every span that reaches the processor is either still
//! queued, delivered to a sink, or counted as dropped with a reason. The counters are plain relaxed
//! atomics; the only one on the application's path is one increment per ended span.
//!
//! They are exported as the OpenTelemetry SDK self-observability metrics
//! (`otel.sdk.processor.span.processed`, `otel.sdk.exporter.span.exported`,
//! `otel.sdk.exporter.metric_data_point.exported`, `otel.sdk.processor.span.queue.size` and
//! `.capacity`), so every backend and the analyzer see telemetry loss in the same data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::delivery::Outcome;

/// Counters of one destination (an OTLP exporter, the console, a file).
#[derive(Debug)]
pub struct SinkCounters {
    /// `otel.component.type` of the destination, e.g. `otlp_grpc_span_exporter`.
    pub component_type: &'static str,
    /// Items (spans or metric data points) the destination accepted.
    pub delivered: AtomicU64,
    /// Items in exports that failed (after the exporter's own retries): refused, or answered
    /// with an error.
    pub failed: AtomicU64,
    /// Export calls that failed.
    pub failed_exports: AtomicU64,
    /// Items in exports that were sent and never answered (the destination may have them).
    pub unanswered: AtomicU64,
    /// Items in exports running right now.
    pub in_flight: AtomicU64,
}

impl SinkCounters {
    pub(crate) fn new(component_type: &'static str) -> Arc<Self> {
        Arc::new(SinkCounters {
            component_type,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_exports: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        })
    }

    /// Marks `items` as in flight until [`SinkCounters::end`].
    pub(crate) fn begin(&self, items: u64) {
        self.in_flight.fetch_add(items, Relaxed);
    }

    /// Moves `items` from in flight to the count of `outcome`.
    pub(crate) fn end(&self, items: u64, outcome: Outcome) {
        match outcome {
            Outcome::Delivered => self.delivered.fetch_add(items, Relaxed),
            Outcome::Failed => {
                self.failed_exports.fetch_add(1, Relaxed);
                self.failed.fetch_add(items, Relaxed)
            }
            Outcome::Unanswered => self.unanswered.fetch_add(items, Relaxed),
        };
        self.in_flight.fetch_sub(items, Relaxed);
    }
}

/// All counters of one pipeline.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Spans accepted into the export queue.
    pub spans_accepted: AtomicU64,
    /// Spans dropped because the export queue was full.
    pub spans_dropped_queue_full: AtomicU64,
    /// Spans ended after shutdown began.
    pub spans_dropped_after_shutdown: AtomicU64,
    /// Capacity of the span queue.
    pub span_queue_capacity: AtomicU64,
    /// Spans handed to the exporters (and the analyzer). Queued = accepted - exported.
    pub spans_exported: AtomicU64,
    /// Per span destination.
    pub span_sinks: Vec<Arc<SinkCounters>>,
    /// Per metric destination.
    pub metric_sinks: Vec<Arc<SinkCounters>>,
    /// Metric collections handed to the exporters (and the analyzer).
    pub metric_collections: AtomicU64,
}

/// What the pipeline has lost so far, and what it delivered.
///
/// `spans_ended == spans_queued + spans_exported + spans_dropped_queue_full
/// + spans_dropped_after_shutdown`; each destination then delivered, failed, left unanswered or
/// still has in flight what was exported, so what a destination passed on lies between
/// `delivered` and `delivered + unanswered + in_flight`.
///
/// ```
/// let telemetry = genscope::Genscope::builder().ignore_environment().build().unwrap();
/// let loss = telemetry.telemetry_loss();
/// assert_eq!(loss.spans_dropped(), 0);
/// telemetry.shutdown().unwrap();
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TelemetryLoss {
    /// Spans that reached the pipeline (sampled and ended).
    pub spans_ended: u64,
    /// Spans waiting in the export queue.
    pub spans_queued: u64,
    /// Spans handed to every destination and the analyzer.
    pub spans_exported: u64,
    /// Spans dropped because the queue was full (a slow or hung destination).
    pub spans_dropped_queue_full: u64,
    /// Spans ended after shutdown began.
    pub spans_dropped_after_shutdown: u64,
    /// Per destination: spans delivered.
    pub span_deliveries: Vec<SinkDelivery>,
    /// Per destination: metric data points delivered.
    pub metric_deliveries: Vec<SinkDelivery>,
    /// Metric collections exported.
    pub metric_collections: u64,
}

/// Deliveries of one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SinkDelivery {
    /// `otel.component.type` of the destination.
    pub destination: String,
    /// Items delivered.
    pub delivered: u64,
    /// Items whose export failed: refused, or answered with an error. The destination does not
    /// have them.
    pub failed: u64,
    /// Items in exports that were sent and never answered (timeout, connection dropped): the
    /// destination may or may not have them.
    pub unanswered: u64,
    /// Items in exports still running when this was read.
    pub in_flight: u64,
}

impl TelemetryLoss {
    /// Spans that never reached any destination.
    pub fn spans_dropped(&self) -> u64 {
        self.spans_dropped_queue_full + self.spans_dropped_after_shutdown
    }

    /// Spans a destination failed to receive, summed over destinations.
    pub fn spans_failed(&self) -> u64 {
        self.span_deliveries.iter().map(|d| d.failed).sum()
    }

    /// Metric points a destination failed to receive, summed over destinations.
    pub fn metric_points_failed(&self) -> u64 {
        self.metric_deliveries.iter().map(|d| d.failed).sum()
    }

    /// Spans sent and never answered (the destination may have them), summed over destinations.
    pub fn spans_unanswered(&self) -> u64 {
        self.span_deliveries.iter().map(|d| d.unanswered).sum()
    }

    /// Metric points sent and never answered, summed over destinations.
    pub fn metric_points_unanswered(&self) -> u64 {
        self.metric_deliveries.iter().map(|d| d.unanswered).sum()
    }
}

fn deliveries(sinks: &[Arc<SinkCounters>]) -> Vec<SinkDelivery> {
    sinks
        .iter()
        .map(|s| SinkDelivery {
            destination: s.component_type.to_string(),
            delivered: s.delivered.load(Relaxed),
            failed: s.failed.load(Relaxed),
            unanswered: s.unanswered.load(Relaxed),
            in_flight: s.in_flight.load(Relaxed),
        })
        .collect()
}

impl Accounting {
    /// A consistent-enough snapshot (each counter is read once; they move independently).
    pub fn snapshot(&self) -> TelemetryLoss {
        // Read exported before accepted so that queued never goes negative.
        let exported = self.spans_exported.load(Relaxed);
        let accepted = self.spans_accepted.load(Relaxed);
        let full = self.spans_dropped_queue_full.load(Relaxed);
        let late = self.spans_dropped_after_shutdown.load(Relaxed);
        TelemetryLoss {
            spans_ended: accepted + full + late,
            spans_queued: accepted.saturating_sub(exported),
            spans_exported: exported,
            spans_dropped_queue_full: full,
            spans_dropped_after_shutdown: late,
            span_deliveries: deliveries(&self.span_sinks),
            metric_deliveries: deliveries(&self.metric_sinks),
            metric_collections: self.metric_collections.load(Relaxed),
        }
    }

    /// Registers the self-observability instruments on `meter`. Callbacks only read atomics.
    pub(crate) fn register(self: &Arc<Self>, meter: &Meter) {
        const PROCESSOR: &str = "batching_span_processor";
        let me = Arc::clone(self);
        meter
            .u64_observable_counter("otel.sdk.processor.span.processed")
            .with_unit("{span}")
            .with_description("Spans handed to the span processor, with error.type when dropped.")
            .with_callback(move |o| {
                let t = KeyValue::new("otel.component.type", PROCESSOR);
                o.observe(me.spans_accepted.load(Relaxed), std::slice::from_ref(&t));
                o.observe(
                    me.spans_dropped_queue_full.load(Relaxed),
                    &[t.clone(), KeyValue::new("error.type", "queue_full")],
                );
                o.observe(
                    me.spans_dropped_after_shutdown.load(Relaxed),
                    &[t, KeyValue::new("error.type", "shutdown")],
                );
            })
            .build();
        let me = Arc::clone(self);
        meter
            .i64_observable_up_down_counter("otel.sdk.processor.span.queue.size")
            .with_unit("{span}")
            .with_description("Spans waiting in the export queue.")
            .with_callback(move |o| {
                let exported = me.spans_exported.load(Relaxed);
                o.observe(
                    me.spans_accepted.load(Relaxed).saturating_sub(exported) as i64,
                    &[KeyValue::new("otel.component.type", PROCESSOR)],
                )
            })
            .build();
        let me = Arc::clone(self);
        meter
            .i64_observable_up_down_counter("otel.sdk.processor.span.queue.capacity")
            .with_unit("{span}")
            .with_description("Capacity of the span export queue.")
            .with_callback(move |o| {
                o.observe(
                    me.span_queue_capacity.load(Relaxed) as i64,
                    &[KeyValue::new("otel.component.type", PROCESSOR)],
                )
            })
            .build();
        for (name, unit, sinks) in [
            (
                "otel.sdk.exporter.span.exported",
                "{span}",
                self.span_sinks.clone(),
            ),
            (
                "otel.sdk.exporter.metric_data_point.exported",
                "{data_point}",
                self.metric_sinks.clone(),
            ),
        ] {
            meter
                .u64_observable_counter(name)
                .with_unit(unit)
                .with_description(
                    "Items exported, with error.type export_failed (refused or answered with \
                     an error) or unanswered (sent, no answer: the destination may have them).",
                )
                .with_callback(move |o| {
                    for s in &sinks {
                        let t = KeyValue::new("otel.component.type", s.component_type);
                        o.observe(s.delivered.load(Relaxed), std::slice::from_ref(&t));
                        o.observe(
                            s.failed.load(Relaxed),
                            &[t.clone(), KeyValue::new("error.type", "export_failed")],
                        );
                        o.observe(
                            s.unanswered.load(Relaxed),
                            &[t, KeyValue::new("error.type", "unanswered")],
                        );
                    }
                })
                .build();
        }
    }
}
