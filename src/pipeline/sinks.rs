//! Destinations of exported batches (spans, metrics, logs): OTLP (gRPC or HTTP), the console and
//! an OTLP JSON-lines file.
//!
//! Every OTLP export is driven on genscope's own export runtime (`Handle::block_on` from the export
//! thread), so exporters never depend on the application's runtime, its flavour or its shutdown.
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

use super::accounting::SinkCounters;
use super::delivery::{Outcome, TransportState, grpc_outcome, http_outcome};
use super::otlp_json::{
    JsonLinesWriter, logs_to_json_line, metrics_to_json_line, spans_to_json_line,
};

/// An OTLP exporter and how to read its results.
pub(crate) struct Otlp<E> {
    pub exporter: Box<E>,
    /// What the HTTP transport saw of the current export; `None` for gRPC.
    pub transport: Option<Arc<TransportState>>,
}

impl<E> Otlp<E> {
    fn begin(&self) {
        if let Some(t) = &self.transport {
            t.begin();
        }
    }

    fn outcome(&self, result: &OTelSdkResult) -> Outcome {
        match &self.transport {
            Some(t) => http_outcome(result, t),
            None => grpc_outcome(result),
        }
    }

    /// Drives one export on the export runtime and reads how it ended.
    fn run(
        &self,
        runtime: &Handle,
        export: impl std::future::Future<Output = OTelSdkResult>,
    ) -> (OTelSdkResult, Outcome) {
        self.begin();
        let result = runtime.block_on(export);
        let outcome = self.outcome(&result);
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
    Otlp(Otlp<SpanExporter>),
    JsonLines {
        writer: Arc<JsonLinesWriter>,
        resource: Resource,
    },
}

pub(crate) struct SpanDestination {
    pub sink: SpanSink,
    pub counters: Arc<SinkCounters>,
}

impl SpanDestination {
    /// Exports on the calling (export) thread; OTLP futures run with the export runtime's context.
    pub fn export(&self, batch: Vec<SpanData>, runtime: &Handle) -> OTelSdkResult {
        let n = batch.len() as u64;
        self.counters.begin(n);
        let (result, outcome) = match &self.sink {
            SpanSink::Otlp(otlp) => otlp.run(runtime, otlp.exporter.export(batch)),
            SpanSink::JsonLines { writer, resource } => {
                written(writer.write_line(&spans_to_json_line(batch, resource)))
            }
        };
        self.counters.end(n, outcome);
        result
    }

    pub fn shutdown(&self, timeout: Duration) {
        if let SpanSink::Otlp(otlp) = &self.sink {
            let _ = otlp.exporter.shutdown_with_timeout(timeout);
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
