//! What the example servers share: the stop signal, OpenAI's error body, JSON answers, and the
//! `/metrics` and `/report` handlers.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use genscope::Genscope;
use genscope::export::ExpositionFormat;
use serde_json::json;

/// Resolves after `seconds` (never when 0), on SIGINT or on SIGTERM.
pub async fn stop_signal(seconds: u64) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let timer = async {
        if seconds == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {}, _ = timer => {} }
}

/// A JSON answer with status 200.
pub fn json_ok(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// OpenAI's error body, `{"error":{"message","type","param","code"}}`, logged at WARN with its
/// reason (`error.type` is the code, else the error type).
pub fn openai_error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    tracing::warn!(
        http.response.status_code = i64::from(status.as_u16()),
        error.type = code.unwrap_or(kind),
        "request rejected: {message}"
    );
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text or OpenMetrics, as the scrape's `Accept` asks.
pub fn metrics(telemetry: &Genscope, headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = ExpositionFormat::negotiate(accept);
    let body = telemetry.metrics_exposition(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// `GET /report?window=SECONDS` (default 300): the analyzer's report over the last window as
/// `genscope.report/1` JSON (health, findings with evidence and recommendations). A window that
/// is not a positive number of seconds gets a 400 with OpenAI's error body.
pub fn report(telemetry: &Genscope, query: Option<&str>) -> Response {
    let window = match query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("window="))) {
        None => 300.0,
        Some(w) => match w.parse::<f64>() {
            Ok(w) if w.is_finite() && w > 0.0 && w <= 366.0 * 86400.0 => w,
            _ => {
                return openai_error(
                    StatusCode::BAD_REQUEST,
                    &format!("`window` must be a positive number of seconds, got {w:?}"),
                    Some("window"),
                    None,
                );
            }
        },
    };
    let report = telemetry.analyzer().report(Duration::from_secs_f64(window));
    match serde_json::to_string(&report) {
        Ok(body) => json_ok(body),
        Err(e) => openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the report could not be encoded: {e}"),
            None,
            None,
        ),
    }
}
