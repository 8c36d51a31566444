//! OTLP/gRPC span attempts over tonic: the encoded request sent as it is (a pass-through codec),
//! the answer decoded, and the status read into an [`Attempt`].

use std::error::Error as _;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::Code;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

use super::delivery::{Attempt, never_connected};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC wire of one span destination.
pub(crate) struct GrpcSpans {
    grpc: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
}

impl GrpcSpans {
    /// Over `channel` (lazily connected), with `metadata` on every request and, if asked, gzip.
    pub(crate) fn new(channel: Channel, metadata: MetadataMap, gzip: bool) -> Self {
        let mut grpc = tonic::client::Grpc::new(channel);
        if gzip {
            grpc = grpc
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        GrpcSpans { grpc, metadata }
    }

    /// One attempt with the encoded `ExportTraceServiceRequest` `body`.
    pub(crate) async fn send(&self, body: Bytes, remaining: Duration) -> Attempt {
        let mut grpc = self.grpc.clone();
        if grpc.ready().await.is_err() {
            // The channel's buffer is gone (its worker ended): nothing was sent.
            return Attempt::Refused;
        }
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        // The server is told the deadline too (grpc-timeout), as tonic's own clients do.
        request.set_timeout(remaining);
        let answer = grpc
            .unary::<Bytes, ExportTraceServiceResponse, _>(
                request,
                PathAndQuery::from_static(EXPORT_PATH),
                PassThrough,
            )
            .await;
        match answer {
            Ok(_) => Attempt::Delivered,
            Err(status) => classify(&status),
        }
    }
}

/// The status of a failed attempt, as OTLP's specification reads gRPC codes, with tonic's
/// transport errors (a status carrying a source) told apart from the server's answers.
pub(crate) fn classify(status: &tonic::Status) -> Attempt {
    if let Some(source) = status.source() {
        let mut chain = source.to_string();
        let mut next = source.source();
        while let Some(e) = next {
            chain.push_str(": ");
            chain.push_str(&e.to_string());
            next = e.source();
        }
        // After connecting (reset, broken pipe, h2 error) it may have arrived.
        return if never_connected(&chain) {
            Attempt::Refused
        } else {
            Attempt::Unanswered
        };
    }
    let server_delay = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    match status.code() {
        // tonic's own deadline ("Timeout expired"): sent, no answer in time.
        Code::DeadlineExceeded | Code::Cancelled => Attempt::Unanswered,
        // Retryable only when the server says when (OTLP: RetryInfo).
        Code::ResourceExhausted => match server_delay {
            Some(d) => Attempt::Retryable(Some(d)),
            None => Attempt::Rejected,
        },
        Code::Unavailable | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
            Attempt::Retryable(server_delay.filter(|d| !d.is_zero()))
        }
        _ => Attempt::Rejected,
    }
}

/// Sends already encoded bytes; decodes the answer with prost.
#[derive(Debug, Clone, Copy)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let answer = ExportTraceServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| tonic::Status::internal(format!("undecodable export answer: {e}")))?;
        Ok(Some(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_are_read_as_otlp_says() {
        let s = |code| classify(&tonic::Status::new(code, "x"));
        assert_eq!(s(Code::Unavailable), Attempt::Retryable(None));
        assert_eq!(s(Code::Aborted), Attempt::Retryable(None));
        assert_eq!(s(Code::DataLoss), Attempt::Retryable(None));
        // memory_limiter without RetryInfo: not retryable.
        assert_eq!(s(Code::ResourceExhausted), Attempt::Rejected);
        assert_eq!(s(Code::InvalidArgument), Attempt::Rejected);
        assert_eq!(s(Code::Unauthenticated), Attempt::Rejected);
        assert_eq!(s(Code::Unimplemented), Attempt::Rejected);
        assert_eq!(s(Code::DeadlineExceeded), Attempt::Unanswered);
        assert_eq!(s(Code::Cancelled), Attempt::Unanswered);
    }

    /// A status tonic made from a transport error carries it as its source.
    fn transport(chain: &str) -> tonic::Status {
        #[derive(Debug)]
        struct Cause(String);
        impl std::fmt::Display for Cause {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Cause {}
        tonic::Status::from_error(Box::new(Cause(chain.into())))
    }

    #[test]
    fn transport_errors_are_refused_before_sending_and_unanswered_after() {
        let refused = [
            "transport error: tcp connect error: Connection refused (os error 111)",
            "transport error: dns error: failed to lookup address information",
        ];
        for chain in refused {
            assert_eq!(classify(&transport(chain)), Attempt::Refused, "{chain}");
        }
        let unanswered = [
            "transport error: connection error: Connection reset by peer (os error 104)",
            "h2 protocol error: stream no longer needed",
            "broken pipe",
        ];
        for chain in unanswered {
            assert_eq!(classify(&transport(chain)), Attempt::Unanswered, "{chain}");
        }
    }

    #[test]
    fn retry_info_names_the_delay() {
        use tonic_types::{ErrorDetails, StatusExt};
        let details = ErrorDetails::with_retry_info(Some(Duration::from_secs(2)));
        let status =
            tonic::Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        assert_eq!(
            classify(&status),
            Attempt::Retryable(Some(Duration::from_secs(2)))
        );
    }
}
