//! Errors at genscope's two lifecycle boundaries: starting ([`Error`]) and stopping ([`ShutdownError`]).
//! Configuration errors have their own type, [`crate::config::ConfigError`], wrapped here.

use std::path::PathBuf;
use std::time::Duration;

/// Why genscope could not start.
///
/// ```
/// let err = genscope::Genscope::builder()
///     .ignore_environment()
///     .endpoint("not a url")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("OTLP endpoint"), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The OTLP exporter rejected its configuration.
    #[error("cannot build the {signal} OTLP exporter for {endpoint}: {message}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The endpoint it was built for.
        endpoint: String,
        /// The exporter's explanation.
        message: String,
    },
    /// A certificate or key file could not be used.
    #[error("cannot use {path} for {setting}: {reason}")]
    Tls {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The export runtime or a worker thread could not be started.
    #[error("cannot start genscope's export threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// [`crate::GenscopeBuilder::install`] found a global `tracing` subscriber already set.
    #[error(
        "a global tracing subscriber is already installed; build with Genscope::builder().build() \
         and add telemetry.layer() to your own subscriber instead"
    )]
    SubscriberAlreadySet,
}

/// Why [`crate::Genscope::shutdown`] or [`crate::Genscope::force_flush`] did not complete cleanly.
/// Shutdown still returned within its bound; what was not delivered is counted in
/// [`crate::Genscope::telemetry_loss`].
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The bound passed; export threads are left to finish on their own.
    #[error("telemetry was not fully flushed within {0:?}; the collector may be down or slow")]
    Timeout(Duration),
    /// The destination took the last exports and never answered within the export timeout
    /// (`OTEL_EXPORTER_OTLP_TIMEOUT`): a hung or overloaded collector. They may have arrived.
    #[error(
        "the {signal} destination did not answer within the export timeout ({items} items sent \
         without an answer); the collector may be hung or overloaded"
    )]
    Unanswered {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// Spans or metric points sent without an answer during this flush.
        items: u64,
    },
    /// A provider reported an error while flushing.
    #[error("flushing {signal} failed: {message}")]
    Flush {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The provider's message.
        message: String,
    },
}
