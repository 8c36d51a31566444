//! Destinations of exported batches: OTLP (gRPC or HTTP), the console and an OTLP JSON-lines file.
//!
//! Every OTLP export is driven on genscope's own export runtime (`Handle::block_on` from the export
//! thread), so exporters never depend on the application's runtime, its flavour or its shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{
    MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use tokio::runtime::Handle;

use super::accounting::SinkCounters;
use super::otlp_json::{JsonLinesWriter, metrics_to_json_line, spans_to_json_line};
use crate::Error;
use crate::config::{Compression, OtlpSettings, Protocol};

pub(crate) enum SpanSink {
    Otlp(Box<SpanExporter>),
    JsonLines {
        writer: Arc<JsonLinesWriter>,
        resource: Resource,
    },
}

pub(crate) struct SpanDestination {
    pub sink: SpanSink,
    pub counters: Arc<SinkCounters>,
}

impl SpanDestination {
    /// Exports on the calling (export) thread; OTLP futures run with the export runtime's context.
    pub fn export(&self, batch: Vec<SpanData>, runtime: &Handle) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = match &self.sink {
            SpanSink::Otlp(exporter) => runtime.block_on(exporter.export(batch)),
            SpanSink::JsonLines { writer, resource } => writer
                .write_line(&spans_to_json_line(batch, resource))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string())),
        };
        self.counters.record(n, result.is_ok());
        result
    }

    pub fn shutdown(&self, timeout: Duration) {
        if let SpanSink::Otlp(exporter) = &self.sink {
            let _ = exporter.shutdown_with_timeout(timeout);
        }
    }
}

pub(crate) enum MetricSink {
    Otlp(Box<MetricExporter>),
    JsonLines(Arc<JsonLinesWriter>),
}

pub(crate) struct MetricDestination {
    pub sink: MetricSink,
    pub counters: Arc<SinkCounters>,
}

impl MetricDestination {
    pub fn export(
        &self,
        metrics: &ResourceMetrics,
        points: u64,
        runtime: &Handle,
    ) -> OTelSdkResult {
        let result = match &self.sink {
            MetricSink::Otlp(exporter) => runtime.block_on(exporter.export(metrics)),
            MetricSink::JsonLines(writer) => writer
                .write_line(&metrics_to_json_line(metrics))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string())),
        };
        self.counters.record(points, result.is_ok());
        result
    }

    pub fn shutdown(&self, timeout: Duration) {
        if let MetricSink::Otlp(exporter) = &self.sink {
            let _ = exporter.shutdown_with_timeout(timeout);
        }
    }
}

pub(crate) fn span_component_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "otlp_grpc_span_exporter",
        Protocol::HttpProtobuf => "otlp_http_span_exporter",
        Protocol::HttpJson => "otlp_http_json_span_exporter",
    }
}

pub(crate) fn metric_component_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "otlp_grpc_metric_exporter",
        Protocol::HttpProtobuf => "otlp_http_metric_exporter",
        Protocol::HttpJson => "otlp_http_json_metric_exporter",
    }
}

fn exporter_error(signal: &'static str, s: &OtlpSettings, e: impl std::fmt::Display) -> Error {
    Error::Exporter {
        signal,
        endpoint: s.endpoint.clone(),
        message: e.to_string(),
    }
}

/// Builds an OTLP span exporter. Must run inside the export runtime's context (tonic spawns there).
pub(crate) fn otlp_span_exporter(s: &OtlpSettings) -> Result<SpanExporter, Error> {
    let err = |e: opentelemetry_otlp::ExporterBuildError| exporter_error("traces", s, e);
    match s.protocol {
        Protocol::Grpc => {
            let mut b = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&s.endpoint)
                .with_timeout(s.timeout)
                .with_metadata(metadata(s)?);
            if s.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            if let Some(tls) = tonic_tls(s)? {
                b = b.with_tls_config(tls);
            }
            b.build().map_err(err)
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let mut b = SpanExporter::builder()
                .with_http()
                .with_endpoint(&s.endpoint)
                .with_timeout(s.timeout)
                .with_protocol(http_protocol(s.protocol))
                .with_headers(headers(s))
                .with_http_client(http_client("traces", s)?);
            if s.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(err)
        }
    }
}

/// Builds an OTLP metric exporter. Must run inside the export runtime's context.
pub(crate) fn otlp_metric_exporter(
    s: &OtlpSettings,
    temporality: Temporality,
) -> Result<MetricExporter, Error> {
    let err = |e: opentelemetry_otlp::ExporterBuildError| exporter_error("metrics", s, e);
    match s.protocol {
        Protocol::Grpc => {
            let mut b = MetricExporter::builder()
                .with_tonic()
                .with_temporality(temporality)
                .with_endpoint(&s.endpoint)
                .with_timeout(s.timeout)
                .with_metadata(metadata(s)?);
            if s.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            if let Some(tls) = tonic_tls(s)? {
                b = b.with_tls_config(tls);
            }
            b.build().map_err(err)
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => {
            let mut b = MetricExporter::builder()
                .with_http()
                .with_temporality(temporality)
                .with_endpoint(&s.endpoint)
                .with_timeout(s.timeout)
                .with_protocol(http_protocol(s.protocol))
                .with_headers(headers(s))
                .with_http_client(http_client("metrics", s)?);
            if s.compression == Compression::Gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().map_err(err)
        }
    }
}

fn http_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}

fn headers(s: &OtlpSettings) -> HashMap<String, String> {
    s.headers.iter().cloned().collect()
}

fn metadata(s: &OtlpSettings) -> Result<tonic::metadata::MetadataMap, Error> {
    let mut map = http::HeaderMap::new();
    for (k, v) in &s.headers {
        let name =
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|_| {
                crate::config::ConfigError::invalid(
                    "OTLP headers",
                    k.clone(),
                    "not a valid header name",
                )
            })?;
        let value = http::HeaderValue::from_str(v).map_err(|_| {
            crate::config::ConfigError::invalid(
                "OTLP headers",
                format!("{k}=<redacted>"),
                "the value is not a valid header value",
            )
        })?;
        map.insert(name, value);
    }
    Ok(tonic::metadata::MetadataMap::from_headers(map))
}

fn read_file(setting: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Tls {
        setting,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn tonic_tls(s: &OtlpSettings) -> Result<Option<tonic::transport::ClientTlsConfig>, Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let https = s.endpoint.starts_with("https://");
    if !https && s.certificate.is_none() && s.client_certificate.is_none() {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new().with_webpki_roots();
    if let Some(ca) = &s.certificate {
        tls = tls.ca_certificate(Certificate::from_pem(read_file(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ca,
        )?));
    }
    if let (Some(cert), Some(key)) = (&s.client_certificate, &s.client_key) {
        tls = tls.identity(Identity::from_pem(
            read_file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)?,
            read_file("OTEL_EXPORTER_OTLP_CLIENT_KEY", key)?,
        ));
    }
    Ok(Some(tls))
}

/// The HTTP client: async reqwest with rustls on ring, roots from webpki plus the configured CA.
fn http_client(signal: &'static str, s: &OtlpSettings) -> Result<reqwest::Client, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let tls_err = |setting: &'static str, path: &Path, e: &dyn std::fmt::Display| Error::Tls {
        setting,
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &s.certificate {
        let setting = "OTEL_EXPORTER_OTLP_CERTIFICATE";
        let pem = read_file(setting, ca)?;
        let mut any = false;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| tls_err(setting, ca, &e))?;
            roots.add(cert).map_err(|e| tls_err(setting, ca, &e))?;
            any = true;
        }
        if !any {
            return Err(tls_err(setting, ca, &"no PEM certificate found"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| exporter_error(signal, s, e))?
        .with_root_certificates(roots);
    let config = match (&s.client_certificate, &s.client_key) {
        (Some(cert), Some(key)) => {
            let cert_setting = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE";
            let key_setting = "OTEL_EXPORTER_OTLP_CLIENT_KEY";
            let cert_pem = read_file(cert_setting, cert)?;
            let chain = CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_err(cert_setting, cert, &e))?;
            let key_der = PrivateKeyDer::from_pem_slice(&read_file(key_setting, key)?)
                .map_err(|e| tls_err(key_setting, key, &e))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| tls_err(cert_setting, cert, &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(s.timeout)
        .build()
        .map_err(|e| exporter_error(signal, s, e))
}

pub(crate) fn temporality_of(pref: crate::config::TemporalityPreference) -> Temporality {
    match pref {
        crate::config::TemporalityPreference::Cumulative => Temporality::Cumulative,
        crate::config::TemporalityPreference::Delta => Temporality::Delta,
        crate::config::TemporalityPreference::LowMemory => Temporality::LowMemory,
    }
}
