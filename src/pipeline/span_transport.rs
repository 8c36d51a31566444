//! genscope's own OTLP span transport (gRPC and HTTP/protobuf): each batch encoded once, straight
//! from the SDK's span data (`otlp_span_encode.rs`), and sent with the OTLP retry policy.
//!
//! The SDK's span exporters convert the batch into the generated message types before encoding
//! it, and the gRPC one does so again on every attempt, from a deep copy of the batch; on a
//! server that exports two spans per request that was the largest part of genscope's cost
//! per request (`BENCHMARKS.md`). Here the request body is built once per export and every
//! attempt sends the same bytes (a reference-counted `Bytes`).
//!
//! Each attempt ends in an [`Attempt`] (`delivery.rs`), which says both whether to try again
//! and how the export ends if not: a refused connection (nothing was sent) and a server's
//! retryable answer are retried with the OTLP exponential backoff (100 ms doubling to 1.6 s, up
//! to 100 ms jitter, at most 3 retries, never past the export timeout); an attempt that was sent
//! and not answered is never retried, so nothing reaches the destination twice (`delivery.rs`
//! has the three outcomes). OTLP/JSON keeps the SDK's exporter.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::delivery::{Attempt, Outcome};
use super::otlp_span_encode::{EncodedResource, encode_request};
use super::span_grpc::GrpcSpans;
use super::span_http::HttpSpans;

/// The OTLP retry policy the SDK's exporters use ("recommended": 3 retries, 100 ms doubling to
/// 1.6 s, up to 100 ms of jitter); a server's longer delay raises the cap up to 30 s.
const MAX_RETRIES: u32 = 3;
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
const MAX_SERVER_DELAY: Duration = Duration::from_secs(30);

/// The wire a span destination sends on.
pub(crate) enum SpanWire {
    Grpc(GrpcSpans),
    Http(HttpSpans),
}

/// One OTLP span destination's transport: the encoded resource, the wire, the export timeout.
pub(crate) struct SpanTransport {
    resource: EncodedResource,
    wire: SpanWire,
    /// Per export, retries included.
    timeout: Duration,
    /// Set by shutdown: later attempts are not sent.
    closed: AtomicBool,
}

impl SpanTransport {
    pub(crate) fn new(wire: SpanWire, resource: &Resource, timeout: Duration) -> Self {
        SpanTransport {
            resource: EncodedResource::new(resource),
            wire,
            timeout,
            closed: AtomicBool::new(false),
        }
    }

    /// Encodes `batch` once and sends it, retrying as the module doc says.
    pub(crate) async fn export(&self, batch: &[SpanData]) -> Outcome {
        let mut encoded = Vec::new();
        encode_request(batch, &self.resource, &mut encoded);
        let body = match &self.wire {
            // tonic compresses each message itself.
            SpanWire::Grpc(_) => Bytes::from(encoded),
            SpanWire::Http(h) => match h.body(Bytes::from(encoded)) {
                Ok(body) => body,
                Err(_) => return Outcome::Failed,
            },
        };
        let deadline = Instant::now() + self.timeout;
        send_with_retry(deadline, |remaining| {
            let body = body.clone();
            async move {
                if self.closed.load(Ordering::Relaxed) {
                    return Attempt::Rejected;
                }
                match &self.wire {
                    SpanWire::Grpc(g) => g.send(body, remaining).await,
                    SpanWire::Http(h) => h.send(body, remaining).await,
                }
            }
        })
        .await
    }

    /// Stops sending: later attempts fail at once.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

/// Runs attempts until one is final, the retries are spent, or the next wait would pass
/// `deadline`. Each attempt gets the time left.
pub(crate) async fn send_with_retry<F, Fut>(deadline: Instant, mut attempt: F) -> Outcome
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut delay = INITIAL_DELAY;
    let mut cap = MAX_DELAY;
    let mut retries = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Outcome::Unanswered;
        }
        let last = match tokio::time::timeout(remaining, attempt(remaining)).await {
            Err(_) => return Outcome::Unanswered,
            Ok(a) => a,
        };
        let server_delay = match last {
            Attempt::Delivered => return Outcome::Delivered,
            Attempt::Rejected => return Outcome::Failed,
            Attempt::Unanswered => return Outcome::Unanswered,
            Attempt::Refused => None,
            Attempt::Retryable(after) => after,
        };
        if retries == MAX_RETRIES {
            return Outcome::Failed;
        }
        retries += 1;
        if let Some(after) = server_delay {
            let after = after.min(MAX_SERVER_DELAY);
            if after > cap {
                cap = MAX_SERVER_DELAY;
            }
            delay = delay.max(after);
        }
        let wait = (delay + jitter()).min(cap);
        if wait >= deadline.saturating_duration_since(Instant::now()) {
            return Outcome::Failed;
        }
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(cap);
    }
}

/// Up to [`MAX_JITTER_MS`] of jitter from the clock's nanoseconds (no random source needed).
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // A multiplicative hash spreads the low bits of the clock over the range.
    let mixed = u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    Duration::from_millis(mixed % (MAX_JITTER_MS + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Runs `send_with_retry` over a script of attempts; returns the outcome and the attempts made.
    fn run(script: &[Attempt], timeout: Duration) -> (Outcome, usize) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let made = Mutex::new(0_usize);
        let outcome = rt.block_on(send_with_retry(Instant::now() + timeout, |_| {
            let mut n = made.lock().unwrap();
            let a = script[(*n).min(script.len() - 1)];
            *n += 1;
            async move { a }
        }));
        (outcome, made.into_inner().unwrap())
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn final_answers_end_the_export_at_once() {
        assert_eq!(run(&[Attempt::Delivered], LONG), (Outcome::Delivered, 1));
        assert_eq!(run(&[Attempt::Rejected], LONG), (Outcome::Failed, 1));
        // Sent and not answered: never sent twice.
        assert_eq!(run(&[Attempt::Unanswered], LONG), (Outcome::Unanswered, 1));
    }

    #[test]
    fn refused_and_retryable_attempts_are_retried_three_times() {
        assert_eq!(
            run(&[Attempt::Refused, Attempt::Delivered], LONG),
            (Outcome::Delivered, 2)
        );
        assert_eq!(run(&[Attempt::Refused], LONG), (Outcome::Failed, 4));
        assert_eq!(run(&[Attempt::Retryable(None)], LONG), (Outcome::Failed, 4));
        assert_eq!(
            run(&[Attempt::Refused, Attempt::Unanswered], LONG),
            (Outcome::Unanswered, 2)
        );
    }

    #[test]
    fn no_wait_runs_past_the_export_timeout() {
        // The first wait is at least 100 ms: with 50 ms in all, one attempt only.
        assert_eq!(
            run(&[Attempt::Refused], Duration::from_millis(50)),
            (Outcome::Failed, 1)
        );
        // A server asking for 10 s, with 5 s left: given up, not slept through.
        assert_eq!(
            run(
                &[Attempt::Retryable(Some(Duration::from_secs(10)))],
                Duration::from_secs(5)
            ),
            (Outcome::Failed, 1)
        );
        // With time enough, the server's delay is honoured and the retry delivers.
        assert_eq!(
            run(
                &[
                    Attempt::Retryable(Some(Duration::from_secs(10))),
                    Attempt::Delivered
                ],
                LONG
            ),
            (Outcome::Delivered, 2)
        );
    }

    #[test]
    fn an_attempt_that_outlives_the_timeout_is_unanswered() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let outcome = rt.block_on(send_with_retry(
            Instant::now() + Duration::from_secs(1),
            |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Attempt::Delivered
            },
        ));
        assert_eq!(outcome, Outcome::Unanswered);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            assert!(jitter() <= Duration::from_millis(MAX_JITTER_MS));
        }
    }
}
