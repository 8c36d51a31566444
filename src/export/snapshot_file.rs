//! `export_metrics(path, format)`: the analyzer's current values written to a file atomically.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::prometheus::{ExpositionFormat, render_prometheus};
use crate::analyzer::{Attributes, MetricKind, MetricSnapshot, SeriesValue};

/// File formats for [`crate::Genscope::export_metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `ExportMetricsServiceRequest` in the OTLP JSON mapping (cumulative temporality;
    /// attribute values as strings). `genscope report` and the Collector's `otlpjsonfile`
    /// receiver read it.
    OtlpJson,
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.
    OpenMetrics,
}

/// Why a file export failed. No partial file was left behind.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing or renaming failed.
    #[error("cannot write metrics to {path}: {source}")]
    Io {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The destination has no usable parent directory or file name.
    #[error("cannot write metrics to {path}: {reason}")]
    Path {
        /// The destination.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

fn key_values(attrs: &Attributes) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.clone())),
            }),
            ..Default::default()
        })
        .collect()
}

/// The snapshot as one OTLP `ExportMetricsServiceRequest` (JSON mapping).
pub fn snapshot_to_otlp_json(metrics: &[MetricSnapshot], resource: &Attributes) -> String {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let out: Vec<Metric> = metrics
        .iter()
        .map(|m| {
            let numbers = || {
                m.series
                    .iter()
                    .filter_map(|s| {
                        let v = match s.value {
                            SeriesValue::Sum(v) | SeriesValue::Gauge(v) => v,
                            SeriesValue::Histogram { .. } => return None,
                        };
                        Some(NumberDataPoint {
                            attributes: key_values(&s.attributes),
                            start_time_unix_nano: nanos(s.start),
                            time_unix_nano: nanos(s.time),
                            value: Some(number_data_point::Value::AsDouble(v)),
                            ..Default::default()
                        })
                    })
                    .collect::<Vec<_>>()
            };
            let data = match m.kind {
                MetricKind::Counter | MetricKind::UpDownCounter => metric::Data::Sum(Sum {
                    data_points: numbers(),
                    aggregation_temporality: cumulative,
                    is_monotonic: m.kind == MetricKind::Counter,
                }),
                MetricKind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: numbers(),
                }),
                MetricKind::Histogram | MetricKind::ExponentialHistogram => {
                    metric::Data::Histogram(Histogram {
                        data_points: m
                            .series
                            .iter()
                            .filter_map(|s| match &s.value {
                                SeriesValue::Histogram {
                                    bounds,
                                    counts,
                                    count,
                                    sum,
                                    min,
                                    max,
                                } => Some(HistogramDataPoint {
                                    attributes: key_values(&s.attributes),
                                    start_time_unix_nano: nanos(s.start),
                                    time_unix_nano: nanos(s.time),
                                    count: *count,
                                    sum: Some(*sum),
                                    bucket_counts: counts.clone(),
                                    explicit_bounds: bounds.clone(),
                                    min: *min,
                                    max: *max,
                                    ..Default::default()
                                }),
                                _ => None,
                            })
                            .collect(),
                        aggregation_temporality: cumulative,
                    })
                }
            };
            Metric {
                name: m.name.clone(),
                description: m.description.clone(),
                unit: m.unit.clone(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: key_values(resource),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "genscope.snapshot".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    // Generated message types always serialize.
    serde_json::to_string(&request).unwrap_or_default()
}

/// Renders the snapshot in `format`.
pub fn render(metrics: &[MetricSnapshot], resource: &Attributes, format: Format) -> String {
    match format {
        Format::OtlpJson => snapshot_to_otlp_json(metrics, resource),
        Format::Prometheus => render_prometheus(metrics, resource, ExpositionFormat::Text),
        Format::OpenMetrics => render_prometheus(metrics, resource, ExpositionFormat::OpenMetrics),
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, flushed and
/// synced, then renamed over `path`. On any failure the temporary file is removed and `path` is
/// untouched.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.file_name().is_none() {
        return Err(ExportError::Path {
            path: path.to_path_buf(),
            reason: "it names no file",
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".genscope-export-")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
