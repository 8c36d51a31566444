//! Output formats and the local endpoint: OTLP JSON lines (file and console), Prometheus text and
//! OpenMetrics, snapshot files written atomically, and `/metrics`.

pub(crate) mod endpoint;
mod otlp_json;
mod prometheus;
mod snapshot_file;

pub use otlp_json::{JsonLinesWriter, metrics_to_json_line, spans_to_json_line};
pub use prometheus::{ExpositionFormat, prometheus_name, render_prometheus};
pub use snapshot_file::{ExportError, Format, render, snapshot_to_otlp_json, write_atomically};
