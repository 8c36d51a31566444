//! Output formats and the local endpoint: OTLP JSON lines (file and console), Prometheus text and
//! OpenMetrics, snapshot files written atomically, and `/metrics`.

pub(crate) mod endpoint;
mod exemplars;
mod model_server;
mod prometheus;
mod prometheus_names;
mod snapshot_file;

// The OTLP JSON-lines encoding lives with the pipeline's file and console destinations.
pub use crate::pipeline::{JsonLinesWriter, metrics_to_json_line, spans_to_json_line};
pub use model_server::with_model_server_metrics;
pub use prometheus::{ExpositionFormat, render_prometheus, render_prometheus_with_exemplars};
pub use prometheus_names::prometheus_name;
pub use snapshot_file::{ExportError, Format, render, snapshot_to_otlp_json, write_atomically};
