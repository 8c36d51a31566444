//! W3C trace context across two processes: a client span's `traceparent`, injected with
//! `inject_trace_context`, makes the server's SERVER span (opened by the tower layer with
//! `with_trace_context`) its child at a real OTLP receiver, and the handler's `#[instrument]`
//! span the server span's child.

#![cfg(feature = "tower")]

mod common;

use std::io::{Read as _, Write as _};
use std::process::Command;
use std::time::Duration;

use common::{Mode, Receiver};
use genscope::instruments::{HttpMetricsLayer, inject_trace_context, propagator};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

#[tracing::instrument]
async fn handle_generate() -> &'static str {
    tokio::time::sleep(Duration::from_millis(5)).await;
    "generated"
}

/// Server half, in a child process: serves one request with the layer, then flushes and exits.
#[test]
#[ignore = "run by a_client_span_is_the_parent_of_the_server_span_in_another_process"]
fn trace_context_server_child() {
    let addr_file = std::env::var("TRACE_CONTEXT_ADDR_FILE").expect("addr file");
    let telemetry = genscope::Genscope::builder()
        .console_logs(false)
        .service_name("server")
        .install()
        .expect("install");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let layer = HttpMetricsLayer::new(telemetry.metrics().http_server().expect("http"))
            .with_trace_context(propagator(telemetry.settings().propagators));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let done = std::sync::Arc::new(std::sync::Mutex::new(Some(done_tx)));
        let app = axum::Router::new()
            .route(
                "/v1/generate",
                axum::routing::post(move || {
                    let tx = done.lock().unwrap().take();
                    async move {
                        let out = handle_generate().await;
                        if let Some(tx) = tx {
                            let _ = tx.send(());
                        }
                        out
                    }
                }),
            )
            .layer(layer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        std::fs::write(&addr_file, listener.local_addr().unwrap().to_string()).unwrap();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = done_rx.await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        server.await.unwrap();
    });
    telemetry.shutdown().expect("shutdown");
}

#[test]
fn a_client_span_is_the_parent_of_the_server_span_in_another_process() {
    let rx = Receiver::grpc(Mode::Normal);
    let dir = tempfile::tempdir().expect("tempdir");
    let addr_file = dir.path().join("addr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "trace_context_server_child",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("TRACE_CONTEXT_ADDR_FILE", &addr_file)
        .env_remove("OTEL_PROPAGATORS")
        .env_remove("GENSCOPE_PROMETHEUS_ADDR")
        .spawn()
        .expect("server child");
    let mut addr = String::new();
    for _ in 0..200 {
        if let Ok(a) = std::fs::read_to_string(&addr_file)
            && !a.is_empty()
        {
            addr = a;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!addr.is_empty(), "the server child did not start");

    // The client: its own genscope, one span around the call.
    let client = common::builder(rx.url(), genscope::config::Protocol::Grpc)
        .service_name("client")
        .build()
        .expect("client genscope");
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(client.layer());
    let mut req = http::Request::post(format!("http://{addr}/v1/generate"))
        .body(())
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let _span = tracing::info_span!("client call").entered();
        inject_trace_context(&propagator(Default::default()), &mut req);
    });
    let traceparent = req.headers()["traceparent"].to_str().unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "POST /v1/generate HTTP/1.1\r\nHost: {addr}\r\ntraceparent: {traceparent}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        child.wait().expect("child").success(),
        "server child failed"
    );
    client.shutdown().expect("client shutdown");

    assert!(rx.wait_for(Duration::from_secs(10), |r| r.spans().len() >= 3));
    let spans = rx.spans();
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "{name} not among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let client_span = find("client call");
    let server_span = find("POST /v1/generate");
    let handler = find("handle_generate");
    assert_eq!(server_span.kind, SpanKind::Server as i32);
    assert_eq!(server_span.trace_id, client_span.trace_id, "one trace");
    assert_eq!(
        server_span.parent_span_id, client_span.span_id,
        "client → server"
    );
    assert_eq!(
        handler.parent_span_id, server_span.span_id,
        "server → handler"
    );
    assert_eq!(
        common::attr_str(&server_span.attributes, "http.route").as_deref(),
        Some("/v1/generate")
    );
    assert_eq!(
        common::attr(&server_span.attributes, "http.response.status_code").cloned(),
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(200))
    );
    // The traceparent carried the client span's ids.
    assert!(
        traceparent.contains(&hex(&client_span.span_id)),
        "{traceparent}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
