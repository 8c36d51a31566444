//! The logs signal's settings: where `tracing` events go as OTel log records, which events, and
//! the batch queue in front of the exporters (`OTEL_LOGS_EXPORTER`, `OTEL_EXPORTER_OTLP_LOGS_*`,
//! `OTEL_BLRP_*`, `GENSCOPE_LOGS_FILTER`).
//!
//! Logs follow traces: with no `OTEL_LOGS_EXPORTER`, they go over OTLP exactly when an OTLP
//! endpoint (general or for logs) is configured, and to the file export when there is one.

use std::time::Duration;

use super::error::ConfigError;
use super::otlp::OtlpSettings;
use super::values::ExporterKind;

/// Default `tracing` filter for events that become log records.
pub const DEFAULT_LOGS_FILTER: &str = "info";

/// The logs settings as one source states them; `None` means the source is silent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartialLogs {
    /// `OTEL_LOGS_EXPORTER`: where log records go.
    pub exporters: Option<Vec<ExporterKind>>,
    /// `GENSCOPE_LOGS_FILTER`: `tracing` filter directives deciding which events are exported.
    pub filter: Option<String>,
    /// `OTEL_BLRP_SCHEDULE_DELAY`: longest time a record waits in the queue.
    pub schedule_delay: Option<Duration>,
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`: records the queue holds before it drops (and counts) new ones.
    pub max_queue_size: Option<usize>,
    /// `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE`: largest batch handed to the exporters.
    pub max_export_batch_size: Option<usize>,
    /// `OTEL_BLRP_EXPORT_TIMEOUT`: longest one OTLP log export may take (caps the OTLP timeout).
    pub export_timeout: Option<Duration>,
}

impl PartialLogs {
    /// Field by field, `self` where it says something, else `lower`.
    pub(crate) fn or(self, lower: PartialLogs) -> PartialLogs {
        PartialLogs {
            exporters: self.exporters.or(lower.exporters),
            filter: self.filter.or(lower.filter),
            schedule_delay: self.schedule_delay.or(lower.schedule_delay),
            max_queue_size: self.max_queue_size.or(lower.max_queue_size),
            max_export_batch_size: self.max_export_batch_size.or(lower.max_export_batch_size),
            export_timeout: self.export_timeout.or(lower.export_timeout),
        }
    }

    /// Validates and fills defaults (the specification's: 1 s, 2048, 512, 30 s).
    pub(crate) fn resolve(self, mut otlp: OtlpSettings) -> Result<LogsSettings, ConfigError> {
        let exporters = self.exporters.unwrap_or_else(|| {
            if otlp.endpoint_configured {
                vec![ExporterKind::Otlp]
            } else {
                vec![]
            }
        });
        let max_queue_size = self.max_queue_size.unwrap_or(2048);
        let max_batch = self.max_export_batch_size.unwrap_or(512);
        if max_queue_size == 0 || max_batch == 0 {
            return Err(ConfigError::invalid(
                "log queue / batch size",
                format!("{max_queue_size}/{max_batch}"),
                "must be greater than zero",
            ));
        }
        if let Some(t) = self.export_timeout {
            if t.is_zero() {
                return Err(ConfigError::invalid(
                    "OTEL_BLRP_EXPORT_TIMEOUT",
                    "0",
                    "must be greater than zero",
                ));
            }
            otlp.timeout = otlp.timeout.min(t);
        }
        let filter = self
            .filter
            .unwrap_or_else(|| DEFAULT_LOGS_FILTER.to_string());
        tracing_subscriber::EnvFilter::builder()
            .parse(&filter)
            .map_err(|e| ConfigError::invalid("GENSCOPE_LOGS_FILTER", &filter, e.to_string()))?;
        Ok(LogsSettings {
            exporters,
            otlp,
            filter,
            schedule_delay: self.schedule_delay.unwrap_or(Duration::from_secs(1)),
            max_queue_size,
            max_export_batch_size: max_batch.min(max_queue_size),
        })
    }
}

/// The validated logs settings.
///
/// ```
/// let settings = genscope::config::from_lookup(|key| match key {
///     "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318".into()),
///     "GENSCOPE_LOGS_FILTER" => Some("warn,my_server=info".into()),
///     _ => None,
/// })
/// .unwrap()
/// .resolve()
/// .unwrap();
/// assert_eq!(settings.logs.exporters, vec![genscope::config::ExporterKind::Otlp], "logs follow traces");
/// assert_eq!(settings.logs.otlp.endpoint, "http://collector:4318/v1/logs");
/// assert_eq!(settings.logs.filter, "warn,my_server=info");
/// ```
#[derive(Debug, Clone)]
pub struct LogsSettings {
    /// Log record destinations (none: no log pipeline is built at all, unless a file export is).
    pub exporters: Vec<ExporterKind>,
    /// OTLP settings for logs.
    pub otlp: OtlpSettings,
    /// `tracing` filter directives for events that become log records (default `info`).
    pub filter: String,
    /// Log queue delay.
    pub schedule_delay: Duration,
    /// Log queue capacity.
    pub max_queue_size: usize,
    /// Log export batch size.
    pub max_export_batch_size: usize,
}
