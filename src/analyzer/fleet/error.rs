//! [`FleetError`]: why a fleet report could not be made, or one signal could not be read.

/// What went wrong talking to the backend or with the report's options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    /// The `--prometheus` URL is not usable.
    #[error("--prometheus {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A `GENSCOPE_REPORT_*` variable is malformed.
    #[error("{var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Why.
        reason: String,
    },
    /// The TLS set-up failed.
    #[error("TLS set-up for the metrics backend failed: {0}")]
    Tls(String),
    /// The backend could not be reached or did not answer in time.
    #[error("{url}: {reason} (is the backend up, and the URL its HTTP API root?)")]
    Http {
        /// The request URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The backend answered with an error status or a Prometheus API error.
    #[error("{url}: HTTP {status}: {reason}")]
    Backend {
        /// The request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The backend's error (its `errorType: error`, or the start of its body).
        reason: String,
    },
    /// The answer was not what the Prometheus HTTP API returns.
    #[error("{url}: {reason}")]
    Answer {
        /// The request URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A report option is invalid (`--match`, `--by`, `--window`, `--end`).
    #[error("{option}: {reason}")]
    Option {
        /// The option.
        option: &'static str,
        /// Why.
        reason: String,
    },
}
