//! Exact counts of what the pipeline accepted, delivered and dropped, and their self-metrics.
//!
//! The SDK's batch processors keep their drop counts private and its exporters' failures are only
//! logged, so genscope counts for itself: every span and log record that reaches a processor is
//! either still queued, delivered to a sink, or counted as dropped with a reason. The counters are
//! plain relaxed atomics; the only one on the application's path is one increment per ended span
//! or emitted record.
//!
//! They are exported as the OpenTelemetry SDK self-observability metrics
//! (`otel.sdk.processor.{span,log}.processed`, `otel.sdk.processor.{span,log}.queue.size` and
//! `.capacity`, `otel.sdk.exporter.{span,log}.exported`,
//! `otel.sdk.exporter.metric_data_point.exported`), so every backend and the analyzer see
//! telemetry loss in the same data.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::batch_queue::QueueCounters;
use super::delivery::Outcome;

/// Counters of one destination (an OTLP exporter, the console, a file).
#[derive(Debug)]
pub struct SinkCounters {
    /// `otel.component.type` of the destination, e.g. `otlp_grpc_span_exporter`.
    pub component_type: &'static str,
    /// Items (spans, metric data points or log records) the destination accepted.
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
    /// The span queue.
    pub spans: Arc<QueueCounters>,
    /// The log queue (all zero when no log pipeline runs).
    pub logs: Arc<QueueCounters>,
    /// Per span destination.
    pub span_sinks: Vec<Arc<SinkCounters>>,
    /// Per metric destination.
    pub metric_sinks: Vec<Arc<SinkCounters>>,
    /// Per log destination.
    pub log_sinks: Vec<Arc<SinkCounters>>,
    /// Metric collections handed to the exporters (and the analyzer).
    pub metric_collections: AtomicU64,
}

/// What the pipeline has lost so far, and what it delivered.
///
/// `spans_ended == spans_queued + spans_exported + spans_dropped_queue_full
/// + spans_dropped_after_shutdown`, and the same for `logs_*`; each destination then delivered, failed, left unanswered or
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
    /// Log records that reached the pipeline (`tracing` events past the logs filter).
    pub logs_emitted: u64,
    /// Log records waiting in the export queue.
    pub logs_queued: u64,
    /// Log records handed to every destination.
    pub logs_exported: u64,
    /// Log records dropped because the queue was full (a slow or hung destination).
    pub logs_dropped_queue_full: u64,
    /// Log records emitted after shutdown began.
    pub logs_dropped_after_shutdown: u64,
    /// Per destination: log records delivered.
    pub log_deliveries: Vec<SinkDelivery>,
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

    /// Log records that never reached any destination.
    pub fn logs_dropped(&self) -> u64 {
        self.logs_dropped_queue_full + self.logs_dropped_after_shutdown
    }

    /// Log records a destination failed to receive, summed over destinations.
    pub fn logs_failed(&self) -> u64 {
        self.log_deliveries.iter().map(|d| d.failed).sum()
    }

    /// Log records sent and never answered, summed over destinations.
    pub fn logs_unanswered(&self) -> u64 {
        self.log_deliveries.iter().map(|d| d.unanswered).sum()
    }

    /// Metric points sent and never answered, summed over destinations.
    pub fn metric_points_unanswered(&self) -> u64 {
        self.metric_deliveries.iter().map(|d| d.unanswered).sum()
    }
}

/// One read of a queue's counters.
struct QueueSnapshot {
    exported: u64,
    accepted: u64,
    full: u64,
    late: u64,
}

impl QueueSnapshot {
    fn read(q: &QueueCounters) -> Self {
        // Read exported before accepted so that queued never goes negative.
        let exported = q.exported.load(Relaxed);
        QueueSnapshot {
            exported,
            accepted: q.accepted.load(Relaxed),
            full: q.dropped_queue_full.load(Relaxed),
            late: q.dropped_after_shutdown.load(Relaxed),
        }
    }

    fn offered(&self) -> u64 {
        self.accepted + self.full + self.late
    }

    fn queued(&self) -> u64 {
        self.accepted.saturating_sub(self.exported)
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
        let spans = QueueSnapshot::read(&self.spans);
        let logs = QueueSnapshot::read(&self.logs);
        TelemetryLoss {
            spans_ended: spans.offered(),
            spans_queued: spans.queued(),
            spans_exported: spans.exported,
            spans_dropped_queue_full: spans.full,
            spans_dropped_after_shutdown: spans.late,
            span_deliveries: deliveries(&self.span_sinks),
            metric_deliveries: deliveries(&self.metric_sinks),
            metric_collections: self.metric_collections.load(Relaxed),
            logs_emitted: logs.offered(),
            logs_queued: logs.queued(),
            logs_exported: logs.exported,
            logs_dropped_queue_full: logs.full,
            logs_dropped_after_shutdown: logs.late,
            log_deliveries: deliveries(&self.log_sinks),
        }
    }

    /// Registers the self-observability instruments on `meter`. Callbacks only read atomics.
    pub(crate) fn register(self: &Arc<Self>, meter: &Meter) {
        for (signal, unit, processor, queue) in [
            ("span", "{span}", "batching_span_processor", &self.spans),
            ("log", "{log_record}", "batching_log_processor", &self.logs),
        ] {
            register_queue(meter, signal, unit, processor, queue);
        }
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
            (
                "otel.sdk.exporter.log.exported",
                "{log_record}",
                self.log_sinks.clone(),
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

/// `otel.sdk.processor.<signal>.processed`, `.queue.size` and `.queue.capacity` of one queue.
fn register_queue(
    meter: &Meter,
    signal: &str,
    unit: &'static str,
    processor: &'static str,
    queue: &Arc<QueueCounters>,
) {
    let q = Arc::clone(queue);
    meter
        .u64_observable_counter(format!("otel.sdk.processor.{signal}.processed"))
        .with_unit(unit)
        .with_description("Items handed to the processor, with error.type when dropped.")
        .with_callback(move |o| {
            let t = KeyValue::new("otel.component.type", processor);
            o.observe(q.accepted.load(Relaxed), std::slice::from_ref(&t));
            o.observe(
                q.dropped_queue_full.load(Relaxed),
                &[t.clone(), KeyValue::new("error.type", "queue_full")],
            );
            o.observe(
                q.dropped_after_shutdown.load(Relaxed),
                &[t, KeyValue::new("error.type", "shutdown")],
            );
        })
        .build();
    let q = Arc::clone(queue);
    meter
        .i64_observable_up_down_counter(format!("otel.sdk.processor.{signal}.queue.size"))
        .with_unit(unit)
        .with_description("Items waiting in the export queue.")
        .with_callback(move |o| {
            let exported = q.exported.load(Relaxed);
            o.observe(
                q.accepted.load(Relaxed).saturating_sub(exported) as i64,
                &[KeyValue::new("otel.component.type", processor)],
            )
        })
        .build();
    let q = Arc::clone(queue);
    meter
        .i64_observable_up_down_counter(format!("otel.sdk.processor.{signal}.queue.capacity"))
        .with_unit(unit)
        .with_description("Capacity of the export queue.")
        .with_callback(move |o| {
            o.observe(
                q.capacity.load(Relaxed) as i64,
                &[KeyValue::new("otel.component.type", processor)],
            )
        })
        .build();
}
