//! The OTLP JSON-lines format: one `ExportTraceServiceRequest`, `ExportMetricsServiceRequest` or
//! `ExportLogsServiceRequest` per line, in the protobuf JSON mapping (hex ids, camelCase fields), as the OTel specification's file
//! exporter and the Collector's `file` exporter / `otlpjsonfile` receiver use.
//!
//! Used for `GENSCOPE_FILE_EXPORT` and for the `console` exporter (standard output). Runs on the
//! export threads, never on the application's.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::LogBatch;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::trace::SpanData;

/// One JSON document per line for a batch of spans.
///
/// ```
/// let line = genscope::export::spans_to_json_line(vec![], &opentelemetry_sdk::Resource::builder_empty().build());
/// assert_eq!(line, r#"{"resourceSpans":[]}"#);
/// ```
pub fn spans_to_json_line(spans: Vec<SpanData>, resource: &Resource) -> String {
    let resource = ResourceAttributesWithSchema::from(resource);
    let request = ExportTraceServiceRequest {
        resource_spans: if spans.is_empty() {
            vec![]
        } else {
            group_spans_by_resource_and_scope(spans, &resource)
        },
    };
    // Serializing generated message types cannot fail (no maps with non-string keys).
    serde_json::to_string(&request).unwrap_or_default()
}

/// One JSON document per line for a batch of log records (`resourceLogs`).
pub(crate) fn logs_to_json_line(logs: &LogBatch<'_>, resource: &Resource) -> String {
    let resource = ResourceAttributesWithSchema::from(resource);
    let request = ExportLogsServiceRequest {
        resource_logs: group_logs_by_resource_and_scope(logs, &resource),
    };
    serde_json::to_string(&request).unwrap_or_default()
}

/// One JSON document for a metric collection.
pub fn metrics_to_json_line(metrics: &ResourceMetrics) -> String {
    let request = ExportMetricsServiceRequest::from(metrics);
    serde_json::to_string(&request).unwrap_or_default()
}

enum Target {
    File {
        path: PathBuf,
        writer: BufWriter<File>,
    },
    Stdout,
}

/// An append-only JSON-lines destination, shared by the span and metric pipelines.
///
/// ```no_run
/// let w = genscope::export::JsonLinesWriter::open_file("telemetry.jsonl").unwrap();
/// w.write_line(r#"{"resourceSpans":[]}"#).unwrap();
/// ```
pub struct JsonLinesWriter {
    target: Mutex<Target>,
}

impl std::fmt::Debug for JsonLinesWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.target.lock().map(|t| match &*t {
            Target::File { path, .. } => path.display().to_string(),
            Target::Stdout => "stdout".to_string(),
        });
        f.debug_struct("JsonLinesWriter")
            .field("target", &target.unwrap_or_default())
            .finish()
    }
}

impl JsonLinesWriter {
    /// Opens (creating, appending) `path`. Fails now, with the OS error, if it cannot be written.
    pub fn open_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(JsonLinesWriter {
            target: Mutex::new(Target::File {
                path,
                writer: BufWriter::new(file),
            }),
        })
    }

    /// Standard output.
    pub fn stdout() -> Self {
        JsonLinesWriter {
            target: Mutex::new(Target::Stdout),
        }
    }

    /// Appends one line and flushes it, so a crash loses at most the line being written.
    pub fn write_line(&self, line: &str) -> io::Result<()> {
        let mut target = self.target.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *target {
            Target::File { writer, .. } => {
                writer.write_all(line.as_bytes())?;
                writer.write_all(b"\n")?;
                writer.flush()
            }
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()
            }
        }
    }
}
