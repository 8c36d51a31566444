//! The opt-in local HTTP endpoint: `/metrics` in Prometheus text or OpenMetrics (content
//! negotiation), rendered from the analyzer's data, no extra reader. Served by axum on
//! genscope's export runtime, so it never runs on the application's threads.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::prometheus::{ExpositionFormat, render_prometheus};
use crate::analyzer::AnalyzerStore;

/// A running endpoint; dropping it stops serving.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metrics(State(store): State<Arc<AnalyzerStore>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = ExpositionFormat::negotiate(accept);
    let body = render_prometheus(&store.snapshot(), &store.resource(), format);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
}

/// Binds `addr` now (so a taken port is an error at startup) and serves on `runtime`.
pub(crate) fn start(
    addr: SocketAddr,
    store: Arc<AnalyzerStore>,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(store);
    let task = runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(target: "genscope", error = %e, "cannot serve /metrics");
                return;
            }
        };
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(target: "genscope", error = %e, "/metrics endpoint stopped");
        }
    });
    Ok(Endpoint { addr: bound, task })
}
