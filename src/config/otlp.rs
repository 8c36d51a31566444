//! OTLP settings: as a source states them ([`PartialOtlp`]) and resolved for one signal: the endpoint with the signal's path, protocol, headers,
//! timeout, compression and TLS files.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::values::{self, Compression, Protocol};

/// An OTLP endpoint as a source stated it.
///
/// The OTel specification treats the two differently for HTTP: a general endpoint
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`) is a base URL that gets `/v1/traces` or `/v1/metrics` appended,
/// a per-signal endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used as is. gRPC uses both as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// From a general setting: a base URL.
    Base(String),
    /// From a per-signal setting: the full URL.
    Signal(String),
}

/// OTLP settings that exist both in general and per signal.
///
/// Every field is optional: `None` means "this source does not say".
#[derive(Clone, Default, PartialEq)]
pub struct PartialOtlp {
    /// Collector endpoint.
    pub endpoint: Option<Endpoint>,
    /// Wire protocol.
    pub protocol: Option<Protocol>,
    /// Extra request headers (authentication, tenancy). Never logged.
    pub headers: Option<Vec<(String, String)>>,
    /// Export timeout.
    pub timeout: Option<Duration>,
    /// Payload compression.
    pub compression: Option<Compression>,
    /// PEM file with the CA certificate(s) that verify the collector.
    pub certificate: Option<PathBuf>,
    /// PEM file with the client certificate (mutual TLS).
    pub client_certificate: Option<PathBuf>,
    /// PEM file with the client private key (mutual TLS).
    pub client_key: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_INSECURE`: accepted and validated for compatibility. genscope requires
    /// endpoints with a scheme, and an `http://` endpoint is already plaintext, so it changes nothing.
    pub insecure: Option<bool>,
}

/// Header names with their values hidden: headers carry credentials.
struct RedactedHeaders<'a>(&'a [(String, String)]);

impl std::fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| (k, "<redacted>")))
            .finish()
    }
}

impl std::fmt::Debug for PartialOtlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialOtlp")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.as_deref().map(RedactedHeaders))
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl PartialOtlp {
    pub(crate) fn or(self, other: PartialOtlp) -> PartialOtlp {
        PartialOtlp {
            endpoint: self.endpoint.or(other.endpoint),
            protocol: self.protocol.or(other.protocol),
            headers: self.headers.or(other.headers),
            timeout: self.timeout.or(other.timeout),
            compression: self.compression.or(other.compression),
            certificate: self.certificate.or(other.certificate),
            client_certificate: self.client_certificate.or(other.client_certificate),
            client_key: self.client_key.or(other.client_key),
            insecure: self.insecure.or(other.insecure),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == PartialOtlp::default()
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// Resolved OTLP settings of one signal. Its `Debug` shows header names, never their values.
#[derive(Clone)]
pub struct OtlpSettings {
    /// Full endpoint URL as handed to the exporter (HTTP: with the signal path).
    pub endpoint: String,
    /// Whether any source configured an endpoint (otherwise `endpoint` is the default).
    pub endpoint_configured: bool,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Export timeout (per export, retries included).
    pub timeout: Duration,
    /// Compression.
    pub compression: Compression,
    /// CA certificate file.
    pub certificate: Option<PathBuf>,
    /// Client certificate file (mutual TLS).
    pub client_certificate: Option<PathBuf>,
    /// Client key file (mutual TLS).
    pub client_key: Option<PathBuf>,
}

pub(crate) fn resolve_otlp(p: PartialOtlp, signal: Signal) -> Result<OtlpSettings, ConfigError> {
    let protocol = p.protocol.unwrap_or(Protocol::HttpProtobuf);
    let endpoint_configured = p.endpoint.is_some();
    let endpoint = match (&p.endpoint, protocol) {
        (Some(Endpoint::Signal(e)), _) | (Some(Endpoint::Base(e)), Protocol::Grpc) => e.clone(),
        (Some(Endpoint::Base(e)), _) => format!("{}{}", e.trim_end_matches('/'), signal.path()),
        (None, Protocol::Grpc) => "http://localhost:4317".to_string(),
        (None, _) => format!("http://localhost:4318{}", signal.path()),
    };
    values::validate_endpoint(&endpoint)?;
    if p.client_certificate.is_some() != p.client_key.is_some() {
        return Err(ConfigError::invalid(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "",
            "mutual TLS needs both the client certificate and the client key",
        ));
    }
    Ok(OtlpSettings {
        endpoint,
        endpoint_configured,
        protocol,
        headers: p.headers.unwrap_or_default(),
        timeout: p.timeout.unwrap_or(Duration::from_secs(10)),
        compression: p.compression.unwrap_or_default(),
        certificate: p.certificate,
        client_certificate: p.client_certificate,
        client_key: p.client_key,
    })
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("endpoint_configured", &self.endpoint_configured)
            .field("protocol", &self.protocol)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .finish()
    }
}
