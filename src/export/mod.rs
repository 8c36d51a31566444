//! Output formats that do not need a network protocol crate: OTLP JSON lines (file and console).

mod otlp_json;

pub use otlp_json::{JsonLinesWriter, metrics_to_json_line, spans_to_json_line};
