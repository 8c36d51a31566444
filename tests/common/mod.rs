//! Real OTLP receivers for tests (traces, metrics, logs): a tonic gRPC server and an axum HTTP server, both decoding with
//! the official protobuf definitions (opentelemetry-proto), on loopback, on their own runtime.
#![allow(dead_code)]

pub mod llm_server;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{Metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// How the receiver behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Accept and decode everything.
    Normal,
    /// Accept the connection and never answer.
    Hang,
}

#[derive(Default)]
pub struct Received {
    pub traces: Vec<ExportTraceServiceRequest>,
    pub metrics: Vec<ExportMetricsServiceRequest>,
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Whether any request arrived gzip-compressed.
    pub gzip: bool,
    /// Request headers seen (lowercase name, value), from the last request.
    pub headers: Vec<(String, String)>,
    /// Whether the last request arrived gzip-compressed.
    pub last_gzip: bool,
    /// The headers of the last trace export, and whether any trace export was gzip-compressed.
    pub span_headers: Vec<(String, String)>,
    pub span_gzip: bool,
}

impl Received {
    fn push_traces(&mut self, req: ExportTraceServiceRequest) {
        self.span_headers = self.headers.clone();
        self.span_gzip |= self.last_gzip;
        self.traces.push(req);
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Received>>,
    runtime: Option<tokio::runtime::Runtime>,
    https: bool,
}

/// A CA, a server certificate for `localhost` and a client certificate, all PEM, generated per test.
pub struct TestCerts {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
            KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |purpose: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) = leaf(ExtendedKeyUsagePurpose::ClientAuth);
        TestCerts {
            ca_cert: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// Writes the files a client needs (CA, client cert, client key) into `dir`.
    pub fn write_client_files(&self, dir: &std::path::Path) -> [std::path::PathBuf; 3] {
        std::fs::create_dir_all(dir).unwrap();
        let files = [
            dir.join("ca.pem"),
            dir.join("client.pem"),
            dir.join("client.key"),
        ];
        for (path, pem) in files
            .iter()
            .zip([&self.ca_cert, &self.client_cert, &self.client_key])
        {
            std::fs::write(path, pem).unwrap();
        }
        files
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Binds without blocking on the runtime, so receivers can be created inside async tests too.
fn bind(rt: &tokio::runtime::Runtime) -> tokio::net::TcpListener {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let _guard = rt.enter();
    tokio::net::TcpListener::from_std(std_listener).unwrap()
}

struct Grpc {
    received: Arc<Mutex<Received>>,
    mode: Mode,
}

fn record_headers(received: &mut Received, map: &tonic::metadata::MetadataMap) {
    received.headers = map
        .clone()
        .into_headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    received.last_gzip = map.get("grpc-encoding").is_some_and(|v| v == "gzip");
    received.gzip |= received.last_gzip;
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if self.mode == Mode::Hang {
            std::future::pending::<()>().await;
        }
        let mut r = self.received.lock().unwrap();
        record_headers(&mut r, request.metadata());
        r.push_traces(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        if self.mode == Mode::Hang {
            std::future::pending::<()>().await;
        }
        let mut r = self.received.lock().unwrap();
        record_headers(&mut r, request.metadata());
        r.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        if self.mode == Mode::Hang {
            std::future::pending::<()>().await;
        }
        let mut r = self.received.lock().unwrap();
        record_headers(&mut r, request.metadata());
        r.logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// An OTLP/gRPC receiver accepting gzip.
    pub fn grpc(mode: Mode) -> Receiver {
        Self::grpc_with(mode, None)
    }

    /// An OTLP/gRPC receiver over TLS that requires a client certificate signed by the test CA.
    pub fn grpc_tls(certs: &TestCerts) -> Receiver {
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &certs.server_cert,
                &certs.server_key,
            ))
            .client_ca_root(tonic::transport::Certificate::from_pem(&certs.ca_cert));
        Self::grpc_with(Mode::Normal, Some(tls))
    }

    fn grpc_with(mode: Mode, tls: Option<tonic::transport::ServerTlsConfig>) -> Receiver {
        use tonic::codec::CompressionEncoding::Gzip;
        let rt = runtime();
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = bind(&rt);
        let addr = listener.local_addr().unwrap();
        let svc = || Grpc {
            received: Arc::clone(&received),
            mode,
        };
        let https = tls.is_some();
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls).unwrap();
        }
        let router = server
            .add_service(TraceServiceServer::new(svc()).accept_compressed(Gzip))
            .add_service(MetricsServiceServer::new(svc()).accept_compressed(Gzip))
            .add_service(LogsServiceServer::new(svc()).accept_compressed(Gzip));
        rt.spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = router.serve_with_incoming(incoming).await;
        });
        Receiver {
            addr,
            received,
            runtime: Some(rt),
            https,
        }
    }

    /// An OTLP/HTTP (protobuf) receiver on `/v1/traces` and `/v1/metrics`, accepting gzip.
    pub fn http(mode: Mode) -> Receiver {
        let rt = runtime();
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = bind(&rt);
        let addr = listener.local_addr().unwrap();
        let app = http_app(Arc::clone(&received), mode);
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            runtime: Some(rt),
            https: false,
        }
    }

    /// An OTLP/HTTP receiver over TLS (rustls) that requires a client certificate from the test CA.
    pub fn http_tls(certs: &TestCerts) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let rt = runtime();
        let received = Arc::new(Mutex::new(Received::default()));
        let listener = bind(&rt);
        let addr = listener.local_addr().unwrap();
        let app = http_app(Arc::clone(&received), Mode::Normal);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certs.ca_cert.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&provider),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(certs.server_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(certs.server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            runtime: Some(rt),
            https: true,
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        // TLS certificates are issued for "localhost".
        let host = if self.https {
            "localhost".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("{scheme}://{host}:{}", self.addr.port())
    }
}

fn http_app(received: Arc<Mutex<Received>>, mode: Mode) -> axum::Router {
    axum::Router::new()
        .route(
            "/v1/traces",
            otlp_route::<ExportTraceServiceRequest, ExportTraceServiceResponse>(
                Arc::clone(&received),
                mode,
                |r, req| r.push_traces(req),
            ),
        )
        .route(
            "/v1/metrics",
            otlp_route::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
                Arc::clone(&received),
                mode,
                |r, req| r.metrics.push(req),
            ),
        )
        .route(
            "/v1/logs",
            otlp_route::<ExportLogsServiceRequest, ExportLogsServiceResponse>(
                received,
                mode,
                |r, req| r.logs.push(req),
            ),
        )
}

/// A POST handler that decodes (and gunzips) one OTLP request type, stores it and answers with the
/// protobuf response; in `Mode::Hang` it never answers.
fn otlp_route<Req, Resp>(
    received: Arc<Mutex<Received>>,
    mode: Mode,
    store: fn(&mut Received, Req),
) -> axum::routing::MethodRouter
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Default,
{
    axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
        if mode == Mode::Hang {
            std::future::pending::<()>().await;
        }
        let bytes = decode_body(&headers, &body, &received);
        match Req::decode(bytes.as_slice()) {
            Ok(req) => {
                store(&mut received.lock().unwrap(), req);
                (StatusCode::OK, Resp::default().encode_to_vec())
            }
            Err(_) => (StatusCode::BAD_REQUEST, vec![]),
        }
    })
}

impl Receiver {
    /// All spans received so far.
    pub fn spans(&self) -> Vec<Span> {
        let r = self.received.lock().unwrap();
        r.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| ss.spans.clone())
            .collect()
    }

    /// All log records received so far.
    pub fn log_records(&self) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
        let r = self.received.lock().unwrap();
        r.logs
            .iter()
            .flat_map(|l| &l.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| sl.log_records.clone())
            .collect()
    }

    /// Resource attributes of the first trace or metrics request.
    pub fn resource(&self) -> Vec<KeyValue> {
        let r = self.received.lock().unwrap();
        r.traces
            .iter()
            .flat_map(|t| &t.resource_spans)
            .filter_map(|rs| rs.resource.clone())
            .chain(
                r.metrics
                    .iter()
                    .flat_map(|m| &m.resource_metrics)
                    .filter_map(|rm| rm.resource.clone()),
            )
            .next()
            .map(|res| res.attributes)
            .unwrap_or_default()
    }

    /// The latest received version of each metric, by name.
    pub fn latest_metric(&self, name: &str) -> Option<Metric> {
        let r = self.received.lock().unwrap();
        r.metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .rfind(|m| m.name == name)
            .cloned()
    }

    pub fn gzip_seen(&self) -> bool {
        self.received.lock().unwrap().gzip
    }

    /// Waits until `pred` holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Receiver) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if pred(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(self)
    }
}

fn decode_body(headers: &HeaderMap, body: &Bytes, received: &Arc<Mutex<Received>>) -> Vec<u8> {
    let gz = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    {
        let mut r = received.lock().unwrap();
        r.gzip |= gz;
        r.last_gzip = gz;
        r.headers = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
    }
    if gz {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap_or_default();
        out
    } else {
        body.to_vec()
    }
}

/// A builder exporting to `url` with `protocol`, environment ignored, console logs off.
pub fn builder(url: String, protocol: genscope::config::Protocol) -> genscope::GenscopeBuilder {
    genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .endpoint(url)
        .protocol(protocol)
}

/// A genscope that exports nowhere and samples no observers (the environment ignored): the
/// analyzer store, and whatever the test adds (`file_export`, `prometheus_addr`, ...).
pub fn offline_builder() -> genscope::GenscopeBuilder {
    use genscope::config::{ExporterKind, Sampling};
    genscope::Genscope::builder()
        .ignore_environment()
        .console_logs(false)
        .traces_exporters([] as [ExporterKind; 0])
        .metrics_exporters([] as [ExporterKind; 0])
        .logs_exporters([] as [ExporterKind; 0])
        .host_metrics(Sampling::Off)
        .gpu_metrics(Sampling::Off)
}

/// A loopback port with nothing listening (connection refused).
pub fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

pub fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub fn attr_str(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

/// Sum data points as (attributes, value).
pub fn sum_points(metric: &Metric) -> Vec<(Vec<KeyValue>, f64)> {
    match &metric.data {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| {
                let v = match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    None => f64::NAN,
                };
                (p.attributes.clone(), v)
            })
            .collect(),
        _ => vec![],
    }
}

/// A plain HTTP/1.1 GET over a std socket: status, content type and body.
pub fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, content_type, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Every metric received, latest version per name.
pub fn all_metric_names(r: &Receiver) -> Vec<String> {
    let g = r.received.lock().unwrap();
    let mut names: Vec<String> = g
        .metrics
        .iter()
        .flat_map(|m| &m.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A scope's generation attribute and the (start time, value) points seen in it.
pub type ScopePoints = (Option<u64>, Vec<(u64, f64)>);

impl Receiver {
    /// For each scope that carried metric `name`: the scope's `genscope.metric.generation`
    /// attribute (if any) and the (start time, value) of its first sum point, oldest first.
    pub fn received_scopes(&self, name: &str) -> Vec<ScopePoints> {
        let r = self.received.lock().unwrap();
        let mut out: Vec<ScopePoints> = Vec::new();
        for sm in r
            .metrics
            .iter()
            .flat_map(|m| &m.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
        {
            let generation = sm.scope.as_ref().and_then(|s| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key == "genscope.metric.generation")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        AnyValue::IntValue(i) => Some(*i as u64),
                        _ => None,
                    })
            });
            for m in sm.metrics.iter().filter(|m| m.name == name) {
                let Some(Data::Sum(s)) = &m.data else {
                    continue;
                };
                let Some(p) = s.data_points.first() else {
                    continue;
                };
                let v = match p.value {
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => continue,
                };
                match out.iter_mut().find(|(g, _)| *g == generation) {
                    Some((_, pts)) => pts.push((p.start_time_unix_nano, v)),
                    None => out.push((generation, vec![(p.start_time_unix_nano, v)])),
                }
            }
        }
        out
    }
}
