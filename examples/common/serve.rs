//! What the example servers share: the stop signal, OpenAI's error body and JSON answers
//! (genscope's `/metrics` and `/report` handlers are in `routes.rs`).

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
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

/// OpenAI's error type for a status: `invalid_request_error` for 4xx, else `server_error`.
pub fn openai_error_type(status: StatusCode) -> &'static str {
    if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    }
}

/// OpenAI's error body, `{"error":{"message","type","param","code"}}`, logged at WARN with its
/// reason (`error.type` is the code, else the error type).
pub fn openai_error(
    status: StatusCode,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let kind = openai_error_type(status);
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
