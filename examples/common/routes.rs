//! genscope's routes of the example servers: `/metrics` and `/report`.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use genscope::Genscope;
use genscope::export::ExpositionFormat;

use crate::serve::{json_ok, openai_error};

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
