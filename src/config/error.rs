//! [`ConfigError`]: every configuration value genscope could not use, naming the setting.

use std::path::PathBuf;

/// A configuration value genscope could not use.
///
/// Each variant names the setting as the user wrote it (an environment variable, a TOML key, or a
/// builder method) so the message says what to change.
///
/// ```
/// let err = genscope::config::from_lookup(|key| {
///     (key == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "carrier-pigeon".to_string())
/// })
/// .unwrap_err();
/// assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for {setting}: {reason}")]
    Invalid {
        /// The setting, as the user wrote it (`OTEL_EXPORTER_OTLP_ENDPOINT`, `otlp.endpoint`, ...).
        setting: String,
        /// The offending value (headers are redacted).
        value: String,
        /// What is expected instead.
        reason: String,
    },
    /// An environment variable whose value is not valid UTF-8.
    #[error("environment variable {variable} is not valid UTF-8")]
    NotUnicode {
        /// The variable's name.
        variable: String,
    },
    /// A configuration file that could not be read.
    #[error("cannot read configuration file {path} (set by {setting}): {source}")]
    ReadFile {
        /// Which setting named the file.
        setting: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file that is not valid TOML or does not fit genscope's schema.
    #[error("{path}:{line}:{column}: {message}")]
    Toml {
        /// The file (or `<string>` for [`from_toml_str`](crate::config::from_toml_str)).
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's explanation, including the offending key where known.
        message: String,
    },
    /// A path genscope must write to (the file exporter) cannot be opened for appending.
    #[error("cannot open {path} for {setting}: {source}")]
    Path {
        /// Which setting named the path.
        setting: String,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        setting: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            setting: setting.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// The setting this error is about, when it is about one setting.
    ///
    /// ```
    /// let err = genscope::config::from_lookup(|key| {
    ///     (key == "OTEL_METRIC_EXPORT_INTERVAL").then(|| "-5".to_string())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.setting(), Some("OTEL_METRIC_EXPORT_INTERVAL"));
    /// ```
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { setting, .. }
            | ConfigError::ReadFile { setting, .. }
            | ConfigError::Path { setting, .. } => Some(setting),
            ConfigError::NotUnicode { variable } => Some(variable),
            ConfigError::Toml { .. } => None,
        }
    }
}
