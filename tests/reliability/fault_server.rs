//! A programmable OTLP/HTTP receiver on loopback: it decodes with the official protobufs and
//! counts spans and metric requests, and can be switched at any moment to reset connections,
//! hang, answer 503 or 429 with `Retry-After`, answer slowly, or go away entirely (refused
//! connections) and come back on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Decode, count, answer 200.
    None,
    /// Reset every new connection (RST) before reading.
    Reset,
    /// Accept the request and never answer.
    Hang,
    /// Answer this status with `Retry-After: 1` (503, 429).
    Status(u16),
    /// Answer correctly after this delay.
    Slow(Duration),
}

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    metric_requests: AtomicU64,
}

pub struct FaultServer {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    counts: Arc<Counts>,
    accept: Mutex<Option<tokio::task::AbortHandle>>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn app(fault: Arc<Mutex<Fault>>, counts: Arc<Counts>) -> axum::Router {
    let traces = {
        let (fault, counts) = (Arc::clone(&fault), Arc::clone(&counts));
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (fault, counts) = (Arc::clone(&fault), Arc::clone(&counts));
            async move {
                if let Some(r) = apply(&fault).await {
                    return r;
                }
                let _ = headers;
                match ExportTraceServiceRequest::decode(&body[..]) {
                    Ok(req) => {
                        let n: usize = req
                            .resource_spans
                            .iter()
                            .flat_map(|rs| &rs.scope_spans)
                            .map(|ss| ss.spans.len())
                            .sum();
                        counts.spans.fetch_add(n as u64, Ordering::Relaxed);
                        ok(ExportTraceServiceResponse::default().encode_to_vec())
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, HeaderMap::new(), vec![]),
                }
            }
        })
    };
    let metrics = axum::routing::post(move |body: Bytes| {
        let (fault, counts) = (Arc::clone(&fault), Arc::clone(&counts));
        async move {
            if let Some(r) = apply(&fault).await {
                return r;
            }
            match ExportMetricsServiceRequest::decode(&body[..]) {
                Ok(_) => {
                    counts.metric_requests.fetch_add(1, Ordering::Relaxed);
                    ok(Vec::new())
                }
                Err(_) => (StatusCode::BAD_REQUEST, HeaderMap::new(), vec![]),
            }
        }
    });
    axum::Router::new()
        .route("/v1/traces", traces)
        .route("/v1/metrics", metrics)
}

fn ok(body: Vec<u8>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut h = HeaderMap::new();
    h.insert("content-type", "application/x-protobuf".parse().unwrap());
    (StatusCode::OK, h, body)
}

/// The fault's answer, or `None` to process the request normally.
async fn apply(fault: &Mutex<Fault>) -> Option<(StatusCode, HeaderMap, Vec<u8>)> {
    let f = *fault.lock().unwrap();
    match f {
        Fault::None | Fault::Reset => None,
        Fault::Hang => {
            std::future::pending::<()>().await;
            None
        }
        Fault::Status(code) => {
            let mut h = HeaderMap::new();
            h.insert("retry-after", "1".parse().unwrap());
            Some((StatusCode::from_u16(code).unwrap(), h, vec![]))
        }
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

impl FaultServer {
    pub fn start() -> FaultServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = FaultServer {
            addr,
            fault: Arc::new(Mutex::new(Fault::None)),
            counts: Arc::new(Counts::default()),
            accept: Mutex::new(None),
            tasks: Arc::new(Mutex::new(Vec::new())),
            runtime: Some(runtime),
        };
        server.serve(listener);
        server
    }

    fn serve(&self, listener: std::net::TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let rt = self.runtime.as_ref().unwrap();
        let _guard = rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (fault, counts, tasks) = (
            Arc::clone(&self.fault),
            Arc::clone(&self.counts),
            Arc::clone(&self.tasks),
        );
        let accept = rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if *fault.lock().unwrap() == Fault::Reset {
                    // A zero linger makes the close an RST; with zero it never blocks on drop.
                    #[allow(deprecated)]
                    let _ = tcp.set_linger(Some(Duration::ZERO));
                    drop(tcp);
                    continue;
                }
                let service = hyper_util::service::TowerToHyperService::new(app(
                    Arc::clone(&fault),
                    Arc::clone(&counts),
                ));
                let conn = tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(accept.abort_handle());
    }

    /// Drops every open connection (the exporter's kept-alive one included).
    fn drop_connections(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        if fault == Fault::Reset {
            // New connections are reset on accept; the open ones go now.
            self.drop_connections();
        }
    }

    /// An outage: stop listening and drop every open connection (new ones are refused).
    pub fn go_away(&self) {
        if let Some(a) = self.accept.lock().unwrap().take() {
            a.abort();
        }
        self.drop_connections();
        // Let the aborted tasks drop their sockets.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Back on the same port.
    pub fn come_back(&self) {
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot re-bind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn spans(&self) -> u64 {
        self.counts.spans.load(Ordering::Relaxed)
    }

    pub fn metric_requests(&self) -> u64 {
        self.counts.metric_requests.load(Ordering::Relaxed)
    }
}
