//! What happened to one export: delivered, failed (refused, or answered with an error), or
//! unanswered (sent, and no answer came: the destination may or may not have it).
//!
//! The OTLP exporters report every failure as a message, and the HTTP one folds connection
//! refused, timeouts and resets into one "network error". A refused connection loses the batch
//! for sure; a request that was sent and never answered (a collector that hangs, or dies while
//! handling it) may have been taken. Counting the second kind as failed would make a downstream
//! count larger than "delivered" look like a bug; counting it as delivered would hide loss. So
//! each export ends in exactly one of three counts, and for any destination:
//! `delivered <= what it passed on <= delivered + unanswered + in flight`.
//!
//! For OTLP/HTTP, [`ObservedHttpClient`] wraps the `reqwest` client: it sees each attempt of the
//! exporter's retry loop (through the [`TransportState`] of the export it belongs to, set for the
//! export's task by [`observing`], so that exports in flight at once keep apart), records why a request failed (`reqwest::Error::is_connect`), and once
//! one attempt of an export went unanswered it refuses the retries of that export, so an
//! unanswered request is never sent twice (no duplicates downstream). For gRPC the exporter's
//! final status is read: tonic's transport errors carry their source chain ("tcp connect
//! error" = refused), a status without one came from the server.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

/// How one export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The destination acknowledged it.
    Delivered,
    /// It did not arrive (connection refused), or the destination answered with an error.
    Failed,
    /// It was sent and no answer came (timeout, connection dropped mid-request).
    Unanswered,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The destination acknowledged the request.
    Delivered,
    /// Nothing was sent (connection refused, DNS): safe to send again.
    Refused,
    /// The destination answered that it may take it later (OTLP's retryable answers), after
    /// at least the delay it named.
    Retryable(Option<Duration>),
    /// The destination answered with an error that retrying does not fix.
    Rejected,
    /// Sent, and no answer came (timeout, reset): it may have arrived, so it is not sent again.
    Unanswered,
}

/// Whether a transport error's text (tonic's source chain) says the connection was never made,
/// so nothing was sent.
pub(crate) fn never_connected(transport_error: &str) -> bool {
    [
        "tcp connect error",
        "dns error",
        "Connection refused",
        "invalid URL",
    ]
    .iter()
    .any(|m| transport_error.contains(m))
}

/// Whether a `reqwest` error says the connection was never made (a connect timeout may have
/// been a slow server: not counted as refused).
pub(crate) fn reqwest_refused(e: &reqwest::Error) -> bool {
    e.is_connect() && !e.is_timeout()
}

const REFUSED: u8 = 1;
const UNANSWERED: u8 = 2;

/// What the transport saw during one export of an HTTP destination (a new one for each export;
/// several exports of one destination may be in flight at once).
#[derive(Debug, Default)]
pub(crate) struct TransportState {
    seen: AtomicU8,
}

impl TransportState {
    fn note(&self, kind: u8) {
        // Unanswered wins over refused: once anything may have arrived, it may have.
        self.seen.fetch_max(kind, Ordering::Relaxed);
    }

    fn unanswered(&self) -> bool {
        self.seen.load(Ordering::Relaxed) == UNANSWERED
    }
}

tokio::task_local! {
    /// The state of the export the current task drives.
    static CURRENT: Arc<TransportState>;
}

/// Runs one export with `state` as what its HTTP attempts report to.
pub(crate) async fn observing<F: Future>(state: Arc<TransportState>, export: F) -> F::Output {
    CURRENT.scope(state, export).await
}

/// The `reqwest` client the OTLP/HTTP exporters get, observing each attempt.
#[derive(Debug)]
pub(crate) struct ObservedHttpClient {
    pub inner: reqwest::Client,
}

/// The error a retry of an unanswered export gets instead of being sent.
#[derive(Debug, thiserror::Error)]
#[error("not retried: an earlier attempt of this export was sent and not answered")]
struct NotRetried;

#[async_trait::async_trait]
impl HttpClient for ObservedHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Outside `observing` (never in genscope's own exports) nothing is recorded.
        let state = CURRENT.try_with(Arc::clone).ok();
        if state.as_ref().is_some_and(|s| s.unanswered()) {
            return Err(Box::new(NotRetried));
        }
        match HttpClient::send_bytes(&self.inner, request).await {
            Ok(response) => Ok(response),
            Err(e) => {
                let refused = e
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest_refused);
                if let Some(s) = state {
                    s.note(if refused { REFUSED } else { UNANSWERED });
                }
                Err(e)
            }
        }
    }
}

/// Classifies the result of an HTTP export, with what its transport saw.
pub(crate) fn http_outcome(result: &OTelSdkResult, state: &TransportState) -> Outcome {
    match result {
        Ok(()) => Outcome::Delivered,
        Err(OTelSdkError::Timeout(_)) => Outcome::Unanswered,
        Err(_) if state.unanswered() => Outcome::Unanswered,
        Err(_) => Outcome::Failed,
    }
}

/// Classifies the result of a gRPC export from the exporter's message
/// (`... export failed with gRPC code: Unavailable: transport error: tcp connect error: ...`).
pub(crate) fn grpc_outcome(result: &OTelSdkResult) -> Outcome {
    let message = match result {
        Ok(()) => return Outcome::Delivered,
        Err(OTelSdkError::Timeout(_)) => return Outcome::Unanswered,
        Err(OTelSdkError::InternalFailure(m)) => m.as_str(),
        Err(_) => return Outcome::Failed,
    };
    let Some((_, after)) = message.split_once("gRPC code: ") else {
        return Outcome::Failed;
    };
    let (code, source) = match after.split_once(": ") {
        Some((code, source)) => (code, Some(source)),
        None => (after.trim(), None),
    };
    match (code, source) {
        // The deadline passed or the call was cancelled (tonic's request timeout).
        ("DeadlineExceeded" | "Cancelled", _) => Outcome::Unanswered,
        // Never connected: nothing was sent.
        (_, Some(s)) if never_connected(s) => Outcome::Failed,
        // A transport error after connecting (reset, broken pipe, h2 error): sent, unanswered.
        (_, Some(_)) => Outcome::Unanswered,
        // A status from the server: it answered.
        (_, None) => Outcome::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grpc(m: &str) -> Outcome {
        grpc_outcome(&Err(OTelSdkError::InternalFailure(m.into())))
    }

    #[test]
    fn grpc_messages_are_classified() {
        assert_eq!(grpc_outcome(&Ok(())), Outcome::Delivered);
        assert_eq!(
            grpc(
                "TonicTracesClient export failed with gRPC code: Unavailable: transport error: tcp connect error: Connection refused (os error 111)"
            ),
            Outcome::Failed
        );
        assert_eq!(
            grpc("TonicTracesClient export failed with gRPC code: Cancelled: Timeout expired"),
            Outcome::Unanswered
        );
        assert_eq!(
            grpc(
                "TonicMetricsClient export failed with gRPC code: Unknown: transport error: connection error: Connection reset by peer (os error 104)"
            ),
            Outcome::Unanswered
        );
        // memory_limiter refusing: a status from the server.
        assert_eq!(
            grpc("TonicTracesClient export failed with gRPC code: ResourceExhausted"),
            Outcome::Failed
        );
        assert_eq!(grpc("something else"), Outcome::Failed);
        assert_eq!(
            grpc_outcome(&Err(OTelSdkError::Timeout(std::time::Duration::from_secs(
                1
            )))),
            Outcome::Unanswered
        );
    }

    #[test]
    fn http_unanswered_wins_over_refused() {
        let s = TransportState::default();
        let err: OTelSdkResult = Err(OTelSdkError::InternalFailure("network error".into()));
        s.note(REFUSED);
        assert_eq!(http_outcome(&err, &s), Outcome::Failed);
        s.note(UNANSWERED);
        s.note(REFUSED);
        assert_eq!(http_outcome(&err, &s), Outcome::Unanswered);
        // The next export has a state of its own.
        let s = TransportState::default();
        assert_eq!(http_outcome(&Ok(()), &s), Outcome::Delivered);
        assert_eq!(http_outcome(&err, &s), Outcome::Failed);
    }
}
