//! Destinations of exported batches (spans, metrics, logs): OTLP (gRPC or HTTP), the console and
//! an OTLP JSON-lines file.
//!
//! Every OTLP export is driven on genscope's own export runtime, so exporters never depend on the
//! application's runtime, its flavour or its shutdown. Metric and log exports are driven from
//! their export thread (`Handle::block_on`); span exports are spawned on the runtime, up to
//! [`SPAN_EXPORTS_IN_FLIGHT`] per destination at once, so the span export thread goes on with
//! the next batch (normalization, the analyzer) while the last one is encoded and on the wire.
//! Each export ends delivered, failed or unanswered (`delivery.rs`), and is counted in flight
//! while it runs.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use super::accounting::SinkCounters;
use super::delivery::{Outcome, TransportState, grpc_outcome, http_outcome, observing};
use super::otlp_json::{
    JsonLinesWriter, logs_to_json_line, metrics_to_json_line, spans_to_json_line,
};
use super::span_transport::SpanTransport;

/// Span exports of one OTLP destination in flight at once. One would leave the export thread
/// waiting for every answer; with four, a receiver's round trip overlaps the next batches'
/// preparation and encoding, and a hung receiver holds at most four batches besides the queue.
pub(crate) const SPAN_EXPORTS_IN_FLIGHT: u32 = 4;

/// An OTLP exporter and how to read its results.
pub(crate) struct Otlp<E> {
    pub exporter: Arc<E>,
    /// OTLP/HTTP (its transport is observed, `delivery.rs`); gRPC otherwise.
    pub http: bool,
}

/// How an export ended, from its result and (HTTP) what its transport saw.
fn outcome(http: bool, result: &OTelSdkResult, state: &TransportState) -> Outcome {
    if http {
        http_outcome(result, state)
    } else {
        grpc_outcome(result)
    }
}

impl<E> Otlp<E> {
    /// Drives one export on the export runtime and reads how it ended.
    fn run(
        &self,
        runtime: &Handle,
        export: impl std::future::Future<Output = OTelSdkResult>,
    ) -> (OTelSdkResult, Outcome) {
        let state = Arc::new(TransportState::default());
        let result = runtime.block_on(observing(Arc::clone(&state), export));
        let outcome = outcome(self.http, &result, &state);
        (result, outcome)
    }
}

/// How a JSON-lines write ended.
fn written(result: std::io::Result<()>) -> (OTelSdkResult, Outcome) {
    match result {
        Ok(()) => (Ok(()), Outcome::Delivered),
        Err(e) => (
            Err(OTelSdkError::InternalFailure(e.to_string())),
            Outcome::Failed,
        ),
    }
}

pub(crate) enum SpanSink {
    /// gRPC and HTTP/protobuf: genscope's own transport (`span_transport.rs`).
    Direct(Arc<SpanTransport>),
    /// OTLP/JSON: the SDK's exporter.
    Otlp(Otlp<SpanExporter>),
    JsonLines {
        writer: Arc<JsonLinesWriter>,
        resource: Resource,
    },
}

pub(crate) struct SpanDestination {
    pub sink: SpanSink,
    pub counters: Arc<SinkCounters>,
    /// Permits for the OTLP exports in flight.
    slots: Arc<Semaphore>,
}

impl SpanDestination {
    pub fn new(sink: SpanSink, counters: Arc<SinkCounters>) -> Self {
        SpanDestination {
            sink,
            counters,
            slots: Arc::new(Semaphore::new(SPAN_EXPORTS_IN_FLIGHT as usize)),
        }
    }

    /// Hands `batch` on. A file or the console is written on the calling (export) thread; an
    /// OTLP export is spawned on the export runtime once fewer than [`SPAN_EXPORTS_IN_FLIGHT`]
    /// are in flight (the call waits for a slot), and counted when it ends.
    pub fn export(&self, batch: Vec<SpanData>, runtime: &Handle) {
        let n = batch.len() as u64;
        self.counters.begin(n);
        match &self.sink {
            SpanSink::Direct(transport) => {
                let transport = Arc::clone(transport);
                self.spawn_counted(runtime, n, async move { transport.export(&batch).await });
            }
            SpanSink::Otlp(otlp) => {
                let (exporter, http) = (Arc::clone(&otlp.exporter), otlp.http);
                self.spawn_counted(runtime, n, async move {
                    let state = Arc::new(TransportState::default());
                    let result = observing(Arc::clone(&state), exporter.export(batch)).await;
                    outcome(http, &result, &state)
                });
            }
            SpanSink::JsonLines { writer, resource } => {
                let (_, outcome) = written(writer.write_line(&spans_to_json_line(batch, resource)));
                self.counters.end(n, outcome);
            }
        }
    }

    /// Spawns one OTLP export of `n` items on the export runtime once a slot is free (waiting
    /// for one), and counts how it ended.
    fn spawn_counted(
        &self,
        runtime: &Handle,
        n: u64,
        export: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) {
        let Ok(permit) = runtime.block_on(Arc::clone(&self.slots).acquire_owned()) else {
            // Closed only at shutdown, after the last drain.
            self.counters.end(n, Outcome::Failed);
            return;
        };
        let counters = Arc::clone(&self.counters);
        runtime.spawn(async move {
            counters.end(n, export.await);
            drop(permit);
        });
    }

    /// Waits until no export of this destination is in flight.
    pub fn wait_idle(&self, runtime: &Handle) {
        if let Ok(all) = runtime.block_on(self.slots.acquire_many(SPAN_EXPORTS_IN_FLIGHT)) {
            drop(all);
        }
    }

    pub fn shutdown(&self, timeout: Duration, runtime: &Handle) {
        if matches!(self.sink, SpanSink::JsonLines { .. }) {
            return;
        }
        self.wait_idle(runtime);
        self.slots.close();
        match &self.sink {
            SpanSink::Direct(transport) => transport.shutdown(),
            SpanSink::Otlp(otlp) => {
                let _ = otlp.exporter.shutdown_with_timeout(timeout);
            }
            SpanSink::JsonLines { .. } => {}
        }
    }
}

pub(crate) enum MetricSink {
    Otlp(Otlp<MetricExporter>),
    JsonLines(Arc<JsonLinesWriter>),
}

pub(crate) struct MetricDestination {
    pub sink: MetricSink,
    pub counters: Arc<SinkCounters>,
}

impl MetricDestination {
    pub fn export(
        &self,
        metrics: &ResourceMetrics,
        points: u64,
        runtime: &Handle,
    ) -> OTelSdkResult {
        self.counters.begin(points);
        let (result, outcome) = match &self.sink {
            MetricSink::Otlp(otlp) => otlp.run(runtime, otlp.exporter.export(metrics)),
            MetricSink::JsonLines(writer) => {
                written(writer.write_line(&metrics_to_json_line(metrics)))
            }
        };
        self.counters.end(points, outcome);
        result
    }

    pub fn shutdown(&self, timeout: Duration) {
        if let MetricSink::Otlp(otlp) = &self.sink {
            let _ = otlp.exporter.shutdown_with_timeout(timeout);
        }
    }
}

/// A record and the scope of the logger that emitted it, as the exporters take them.
pub(crate) type LogItem = (
    opentelemetry_sdk::logs::SdkLogRecord,
    opentelemetry::InstrumentationScope,
);

pub(crate) enum LogSink {
    Otlp(Otlp<LogExporter>),
    JsonLines {
        writer: Arc<JsonLinesWriter>,
        resource: Resource,
    },
}

pub(crate) struct LogDestination {
    pub sink: LogSink,
    pub counters: Arc<SinkCounters>,
}

impl LogDestination {
    /// Exports on the calling (export) thread; OTLP futures run with the export runtime's context.
    pub fn export(&self, records: &[LogItem], runtime: &Handle) -> OTelSdkResult {
        let n = records.len() as u64;
        let refs: Vec<_> = records.iter().map(|(r, s)| (r, s)).collect();
        let batch = LogBatch::new(&refs);
        self.counters.begin(n);
        let (result, outcome) = match &self.sink {
            LogSink::Otlp(otlp) => otlp.run(runtime, otlp.exporter.export(batch)),
            LogSink::JsonLines { writer, resource } => {
                written(writer.write_line(&logs_to_json_line(&batch, resource)))
            }
        };
        self.counters.end(n, outcome);
        result
    }

    pub fn shutdown(&self, timeout: Duration) {
        if let LogSink::Otlp(otlp) = &self.sink {
            let _ = otlp.exporter.shutdown_with_timeout(timeout);
        }
    }
}
