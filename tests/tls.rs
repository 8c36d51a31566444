//! OTLP over TLS with a custom CA and a client certificate (mutual TLS), configured through the
//! standard `OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE` and `_CLIENT_KEY` variables,
//! against real TLS receivers (tonic for gRPC, rustls + hyper for HTTP). Certificates are generated
//! per test. One process per test (`cargo nextest run`): these tests set environment variables.

mod common;

use common::{Receiver, TestCerts};
use genscope::Genscope;

fn set_env(pairs: &[(&str, &str)]) {
    for (k, v) in pairs {
        // SAFETY: nextest runs each test in its own process, before any other thread reads the env.
        unsafe { std::env::set_var(k, v) };
    }
}

fn client_files(certs: &TestCerts, name: &str) -> [String; 3] {
    let dir = std::env::temp_dir().join(format!("genscope-tls-{name}-{}", std::process::id()));
    certs
        .write_client_files(&dir)
        .map(|p| p.to_string_lossy().into_owned())
}

fn mutual_tls_round_trip(receiver: Receiver, certs: &TestCerts, protocol: &str) {
    let [ca, cert, key] = client_files(certs, protocol.replace('/', "-").as_str());
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key),
    ]);
    assert!(receiver.url().starts_with("https://localhost:"));
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    tracing::info_span!("over_tls").in_scope(|| {});
    telemetry
        .meter("app")
        .u64_counter("tls_counter")
        .build()
        .add(2, &[]);
    telemetry.shutdown().unwrap();
    assert_eq!(receiver.spans().len(), 1, "the span crossed TLS");
    assert!(
        receiver.latest_metric("tls_counter").is_some(),
        "the metric crossed TLS"
    );
    assert_eq!(telemetry.telemetry_loss().spans_failed(), 0);
}

#[test]
fn grpc_mutual_tls_from_standard_variables() {
    let certs = TestCerts::generate();
    mutual_tls_round_trip(Receiver::grpc_tls(&certs), &certs, "grpc");
}

#[test]
fn http_mutual_tls_from_standard_variables() {
    let certs = TestCerts::generate();
    mutual_tls_round_trip(Receiver::http_tls(&certs), &certs, "http/protobuf");
}

/// Without the CA the server is not trusted: the export fails, is counted, and nothing blocks.
#[test]
fn untrusted_server_fails_and_is_counted() {
    let certs = TestCerts::generate();
    let receiver = Receiver::http_tls(&certs);
    set_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url())]);
    let telemetry = Genscope::builder().console_logs(false).install().unwrap();
    tracing::info_span!("untrusted").in_scope(|| {});
    let _ = telemetry.shutdown();
    assert!(receiver.spans().is_empty());
    let loss = telemetry.telemetry_loss();
    assert_eq!(loss.spans_failed(), 1, "{loss:?}");
}

#[test]
fn unreadable_certificate_is_a_clear_error() {
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem"),
    ]);
    let msg = Genscope::builder().build().unwrap_err().to_string();
    assert!(
        msg.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && msg.contains("/no/such/ca.pem"),
        "{msg}"
    );
}

#[test]
fn certificate_file_without_pem_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("genscope-notpem-{}.pem", std::process::id()));
    std::fs::write(&path, "this is not a certificate").unwrap();
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path.to_str().unwrap()),
    ]);
    let msg = Genscope::builder().build().unwrap_err().to_string();
    assert!(msg.contains("no PEM certificate"), "{msg}");
}

#[test]
fn client_certificate_without_key_is_rejected() {
    set_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://localhost:4318"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/tmp/client.pem"),
    ]);
    let msg = Genscope::builder().build().unwrap_err().to_string();
    assert!(msg.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"), "{msg}");
}
