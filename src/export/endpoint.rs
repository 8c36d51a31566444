//! The opt-in local HTTP endpoint: `/metrics` in Prometheus text or OpenMetrics (content
//! negotiation), rendered from the analyzer's data, no extra reader; `/report` (the JSON report)
//! and `/report.html` beside it, from the dashboard cache (`?window=15m`, `?refresh=1` to
//! recompute now). Served by axum on genscope's export runtime, so it never runs on the
//! application's threads; reports are computed on a blocking thread.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::model_server::with_model_server_metrics;
use super::prometheus::{ExpositionFormat, render_prometheus_with_exemplars};
use crate::analyzer::report::Dashboard;
use crate::config::ModelServerMetrics;
use crate::instruments::ExemplarRegistry;

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

#[derive(Clone)]
struct Served {
    dashboard: Arc<Dashboard>,
    model_server: ModelServerMetrics,
    exemplars: Arc<ExemplarRegistry>,
}

async fn metrics(State(served): State<Served>, headers: HeaderMap) -> impl IntoResponse {
    let store = served.dashboard.store();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = ExpositionFormat::negotiate(accept);
    let snapshot = with_model_server_metrics(store.snapshot(), served.model_server);
    let body =
        render_prometheus_with_exemplars(&snapshot, &store.resource(), format, &served.exemplars);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
}

/// Default window of `/report`.
const REPORT_WINDOW: std::time::Duration = std::time::Duration::from_secs(900);

fn report_query(uri: &Uri) -> Result<(std::time::Duration, bool), String> {
    let mut window = REPORT_WINDOW;
    let mut refresh = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "window" => {
                window = humantime::parse_duration(v)
                    .map_err(|e| format!("window={v}: expected a duration like 15m ({e})"))?
            }
            "refresh" => refresh = matches!(v, "" | "1" | "true"),
            _ => return Err(format!("unknown parameter {k}; use window and refresh")),
        }
    }
    Ok((window, refresh))
}

async fn report(State(served): State<Served>, uri: Uri) -> axum::response::Response {
    report_response(served.dashboard, uri, false).await
}

async fn report_html(State(served): State<Served>, uri: Uri) -> axum::response::Response {
    report_response(served.dashboard, uri, true).await
}

async fn report_response(
    dashboard: Arc<Dashboard>,
    uri: Uri,
    html: bool,
) -> axum::response::Response {
    let (window, refresh) = match report_query(&uri) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let report = dashboard.report(window, refresh);
        if html {
            Ok(report.to_html())
        } else {
            serde_json::to_string(&*report)
        }
    })
    .await;
    match rendered {
        Ok(Ok(body)) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(if html {
                    "text/html; charset=utf-8"
                } else {
                    "application/json"
                }),
            )],
            body,
        )
            .into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "report failed").into_response(),
    }
}

/// Binds `addr` now (so a taken port is an error at startup) and serves on `runtime`.
pub(crate) fn start(
    addr: SocketAddr,
    dashboard: Arc<Dashboard>,
    model_server: ModelServerMetrics,
    exemplars: Arc<ExemplarRegistry>,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/report", get(report))
        .route("/report.html", get(report_html))
        .with_state(Served {
            dashboard,
            model_server,
            exemplars,
        });
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
