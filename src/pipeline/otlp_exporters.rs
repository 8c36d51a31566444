//! Building the OTLP exporters from the settings: protocol, endpoint, headers, compression, TLS
//! (rustls with ring for both transports), the exporter timeout, and the observed HTTP client
//! (`delivery.rs`) that tells a refused request from an unanswered one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use opentelemetry_otlp::{
    LogExporter, MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::Temporality;

use super::delivery::ObservedHttpClient;
use super::span_grpc::GrpcSpans;
use super::span_http::HttpSpans;
use super::span_transport::{SpanTransport, SpanWire};
use crate::Error;
use crate::config::{Compression, OtlpSettings, Protocol};

pub(crate) fn span_component_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "otlp_grpc_span_exporter",
        Protocol::HttpProtobuf => "otlp_http_span_exporter",
        Protocol::HttpJson => "otlp_http_json_span_exporter",
    }
}

pub(crate) fn log_component_type(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "otlp_grpc_log_exporter",
        Protocol::HttpProtobuf => "otlp_http_log_exporter",
        Protocol::HttpJson => "otlp_http_json_log_exporter",
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

/// One builder chain for every signal's exporter: gRPC (tonic, metadata, TLS) or HTTP (the
/// observed reqwest client), compression, endpoint and timeout. `$extra(arg)` calls are applied
/// right after the transport is chosen (the metric exporter's temporality).
macro_rules! build_otlp {
    ($builder:expr, $s:expr, $signal:literal $(, $extra:ident($arg:expr))*) => {{
        let s: &OtlpSettings = $s;
        let err = |e: opentelemetry_otlp::ExporterBuildError| exporter_error($signal, s, e);
        match s.protocol {
            Protocol::Grpc => {
                let mut b = $builder
                    .with_tonic()
                    $(.$extra($arg))*
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
                let mut b = $builder
                    .with_http()
                    $(.$extra($arg))*
                    .with_endpoint(&s.endpoint)
                    .with_timeout(s.timeout)
                    .with_protocol(http_protocol(s.protocol))
                    .with_headers(headers(s))
                    .with_http_client(ObservedHttpClient { inner: http_client($signal, s)? });
                if s.compression == Compression::Gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build().map_err(err)
            }
        }
    }};
}

/// Builds the SDK's OTLP span exporter (genscope sends OTLP/JSON spans through it; gRPC and
/// HTTP/protobuf go through [`otlp_span_transport`]). Must run inside the export runtime's
/// context (tonic spawns there).
pub(crate) fn otlp_span_exporter(s: &OtlpSettings) -> Result<SpanExporter, Error> {
    build_otlp!(SpanExporter::builder(), s, "traces")
}

/// What genscope's span transport sends as `User-Agent` (the OTLP specification's
/// `OTel-OTLP-Exporter-<language>/<version>`, with genscope as the product); an application's own
/// `User-Agent` header wins over HTTP. tonic appends its own name over gRPC.
const USER_AGENT: &str = concat!(
    "OTel-OTLP-Exporter-Rust/",
    env!("CARGO_PKG_VERSION"),
    " genscope/",
    env!("CARGO_PKG_VERSION")
);

/// genscope's own span transport for gRPC and HTTP/protobuf (`span_transport.rs`), with the same
/// endpoint, headers, TLS, compression and timeout as the SDK's exporters; `None` for OTLP/JSON.
/// Must run inside the export runtime's context (the channel's worker is spawned there).
pub(crate) fn otlp_span_transport(
    s: &OtlpSettings,
    resource: &opentelemetry_sdk::Resource,
) -> Result<Option<SpanTransport>, Error> {
    let gzip = s.compression == Compression::Gzip;
    let wire = match s.protocol {
        Protocol::HttpJson => return Ok(None),
        Protocol::Grpc => {
            let mut endpoint = tonic::transport::Endpoint::from_shared(s.endpoint.clone())
                .and_then(|e| e.user_agent(USER_AGENT))
                .map_err(|e| exporter_error("traces", s, format!("invalid endpoint: {e}")))?;
            if let Some(tls) = tonic_tls(s)? {
                endpoint = endpoint
                    .tls_config(tls)
                    .map_err(|e| exporter_error("traces", s, e))?;
            }
            let channel = endpoint.timeout(s.timeout).connect_lazy();
            SpanWire::Grpc(GrpcSpans::new(channel, metadata(s)?, gzip))
        }
        Protocol::HttpProtobuf => {
            let url = reqwest::Url::parse(&s.endpoint)
                .map_err(|e| exporter_error("traces", s, format!("invalid endpoint: {e}")))?;
            let mut headers = metadata(s)?.into_headers();
            headers
                .entry(http::header::USER_AGENT)
                .or_insert(http::HeaderValue::from_static(USER_AGENT));
            SpanWire::Http(HttpSpans::new(
                http_client("traces", s)?,
                url,
                headers,
                gzip,
            ))
        }
    };
    Ok(Some(SpanTransport::new(wire, resource, s.timeout)))
}

/// Builds an OTLP metric exporter. Must run inside the export runtime's context.
pub(crate) fn otlp_metric_exporter(
    s: &OtlpSettings,
    temporality: Temporality,
) -> Result<MetricExporter, Error> {
    build_otlp!(
        MetricExporter::builder(),
        s,
        "metrics",
        with_temporality(temporality)
    )
}

/// Builds an OTLP log exporter. Must run inside the export runtime's context.
pub(crate) fn otlp_log_exporter(s: &OtlpSettings) -> Result<LogExporter, Error> {
    build_otlp!(LogExporter::builder(), s, "logs")
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
