//! OTLP/HTTP (protobuf) span attempts over genscope's `reqwest` client: the encoded request
//! POSTed (gzipped when asked), and the answer read into an [`Attempt`].

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::delivery::{Attempt, reqwest_refused};

/// The HTTP wire of one span destination.
pub(crate) struct HttpSpans {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: HeaderMap,
    gzip: bool,
}

impl HttpSpans {
    pub(crate) fn new(
        client: reqwest::Client,
        endpoint: reqwest::Url,
        headers: HeaderMap,
        gzip: bool,
    ) -> Self {
        HttpSpans {
            client,
            endpoint,
            headers,
            gzip,
        }
    }

    /// The request body every attempt of one export sends: `encoded`, gzipped when asked
    /// (once per export, not per attempt).
    pub(crate) fn body(&self, encoded: Bytes) -> std::io::Result<Bytes> {
        if self.gzip {
            gzip(&encoded).map(Bytes::from)
        } else {
            Ok(encoded)
        }
    }

    /// One attempt with `body` from [`HttpSpans::body`].
    pub(crate) async fn send(&self, body: Bytes, remaining: Duration) -> Attempt {
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .timeout(remaining);
        if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        request = request.body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if reqwest_refused(&e) => return Attempt::Refused,
            Err(_) => return Attempt::Unanswered,
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // The answer is read to its end so the connection can be reused.
        let read = response.bytes().await;
        classify(status, retry_after, read.is_ok())
    }
}

/// OTLP/HTTP's reading of an answer: 2xx delivered; 429, 502, 503 and 504 retryable (after
/// `Retry-After` when given); anything else rejected. A 2xx whose body broke off is unanswered.
pub(crate) fn classify(status: u16, retry_after: Option<Duration>, body_read: bool) -> Attempt {
    match status {
        200..=299 if body_read => Attempt::Delivered,
        200..=299 => Attempt::Unanswered,
        429 | 502 | 503 | 504 => Attempt::Retryable(retry_after),
        _ => Attempt::Rejected,
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn answers_are_read_as_otlp_http_says() {
        assert_eq!(classify(200, None, true), Attempt::Delivered);
        assert_eq!(classify(202, None, true), Attempt::Delivered);
        assert_eq!(classify(200, None, false), Attempt::Unanswered);
        assert_eq!(
            classify(429, Some(Duration::from_secs(3)), true),
            Attempt::Retryable(Some(Duration::from_secs(3)))
        );
        for s in [502, 503, 504] {
            assert_eq!(classify(s, None, true), Attempt::Retryable(None));
        }
        for s in [400, 401, 404, 413, 500] {
            assert_eq!(classify(s, None, true), Attempt::Rejected);
        }
    }

    #[test]
    fn gzip_round_trips() {
        let body = b"otlp body ".repeat(100);
        let zipped = gzip(&body).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(zipped.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }
}
