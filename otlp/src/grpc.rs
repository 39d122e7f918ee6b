//! OTLP/gRPC: `TraceService/Export` and `MetricsService/Export` on one tonic server.
//!
//! The services are written against tonic's server building blocks rather than generated, so
//! that decoding is ours: the codec only checks the size (RESOURCE_EXHAUSTED past the limit) and
//! hands the bytes to the signal's handler, which reads them in place; a malformed message is
//! INVALID_ARGUMENT (tonic's stock codec says INTERNAL). gzip and zstd are accepted.

use super::auth::{Tokens, UNAUTHENTICATED};
use super::{ExportError, OtlpSink, Payload, Signal};
use bytes::{Buf, Bytes};
use prost::Message;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic_types::{ErrorDetails, StatusExt};

/// tonic refuses frames past this multiple of our limit before buffering them; between the two,
/// our decoder answers RESOURCE_EXHAUSTED with a clear message.
const FRAME_LIMIT_FACTOR: usize = 4;

/// The gRPC service for one OTLP signal.
pub struct OtlpGrpcService<H, S> {
    sink: Arc<S>,
    max_message_bytes: usize,
    tokens: Arc<Tokens>,
    handler: PhantomData<fn() -> H>,
}

impl<H, S> Clone for OtlpGrpcService<H, S> {
    fn clone(&self) -> Self {
        Self {
            sink: Arc::clone(&self.sink),
            max_message_bytes: self.max_message_bytes,
            tokens: Arc::clone(&self.tokens),
            handler: PhantomData,
        }
    }
}

impl<H: Signal, S: OtlpSink> OtlpGrpcService<H, S> {
    /// A service that accepts messages up to `max_message_bytes` (after decompression), from
    /// callers with one of `tokens` (any caller when none are configured).
    pub fn new(sink: Arc<S>, max_message_bytes: usize, tokens: Arc<Tokens>) -> Self {
        Self {
            sink,
            max_message_bytes,
            tokens,
            handler: PhantomData,
        }
    }
}

impl<H: Signal, S> NamedService for OtlpGrpcService<H, S> {
    const NAME: &'static str = H::GRPC_SERVICE;
}

impl<H, S, B> Service<http::Request<B>> for OtlpGrpcService<H, S>
where
    H: Signal,
    S: OtlpSink,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != H::GRPC_PATH {
            let status =
                Status::unimplemented(format!("{} is not served here", request.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let authorization = request.headers().get(http::header::AUTHORIZATION);
        if self.tokens.check(authorization).is_none() {
            self.sink.request_refused();
            let status = Status::unauthenticated(UNAUTHENTICATED);
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let limit = self.max_message_bytes;
        let export = Export::<H, S> {
            sink: Arc::clone(&self.sink),
            handler: PhantomData,
        };
        Box::pin(async move {
            let codec = OtlpCodec::<H, S> {
                max_message_bytes: limit,
                sink: Arc::clone(&export.sink),
                handler: PhantomData,
            };
            let mut grpc = tonic::server::Grpc::new(codec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(limit.saturating_mul(FRAME_LIMIT_FACTOR));
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// The unary `Export` call.
struct Export<H, S> {
    sink: Arc<S>,
    handler: PhantomData<fn() -> H>,
}

impl<H: Signal, S: OtlpSink> UnaryService<Bytes> for Export<H, S> {
    type Response = H::Response;
    type Future = BoxFuture<tonic::Response<H::Response>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            H::export(&*sink, Payload::Protobuf(request.into_inner()))
                .await
                .map(tonic::Response::new)
                .map_err(|e| {
                    sink.request_refused();
                    status_for(e)
                })
        })
    }
}

/// The gRPC status for a refused request.
fn status_for(error: ExportError) -> Status {
    match error {
        // RetryInfo tells well-behaved clients (the Plumb sidecar, OTLP exporters) how long to wait.
        ExportError::Busy { retry_after } => Status::with_error_details(
            tonic::Code::ResourceExhausted,
            error.to_string(),
            ErrorDetails::with_retry_info(Some(retry_after)),
        ),
        ExportError::ShuttingDown | ExportError::Unavailable(_) => {
            Status::unavailable(error.to_string())
        }
        ExportError::Malformed(message) => Status::invalid_argument(message),
        // Without RetryInfo, OTLP clients treat RESOURCE_EXHAUSTED as final.
        ExportError::TooLarge(message) => Status::resource_exhausted(message),
    }
}

struct OtlpCodec<H, S> {
    max_message_bytes: usize,
    sink: Arc<S>,
    handler: PhantomData<fn() -> H>,
}

impl<H: Signal, S: OtlpSink> Codec for OtlpCodec<H, S> {
    type Encode = H::Response;
    type Decode = Bytes;
    type Encoder = ProstEncoder<H::Response>;
    type Decoder = OtlpDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder {
            max_message_bytes: self.max_message_bytes,
            sink: Arc::clone(&self.sink),
        }
    }
}

struct ProstEncoder<T>(PhantomData<fn(T)>);

impl<T: Message> Encoder for ProstEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("could not encode the response: {e}")))
    }
}

struct OtlpDecoder<S> {
    max_message_bytes: usize,
    /// Told about requests refused for their size.
    sink: Arc<S>,
}

impl<S: OtlpSink> Decoder for OtlpDecoder<S> {
    type Item = Bytes;
    type Error = Status;

    /// Checks the size and hands the message bytes on; the handler decodes them.
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let size = src.remaining();
        if size > self.max_message_bytes {
            self.sink.request_refused();
            return Err(Status::resource_exhausted(format!(
                "message of {size} bytes is over the limit of {} bytes; send smaller batches",
                self.max_message_bytes
            )));
        }
        Ok(Some(src.copy_to_bytes(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn busy_carries_a_retry_hint() {
        let status = status_for(ExportError::Busy {
            retry_after: Duration::from_secs(5),
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let hint = status.get_details_retry_info().and_then(|r| r.retry_delay);
        assert_eq!(hint, Some(Duration::from_secs(5)));
        assert_eq!(
            status_for(ExportError::ShuttingDown).code(),
            tonic::Code::Unavailable
        );
        assert_eq!(
            status_for(ExportError::Malformed("x".into())).code(),
            tonic::Code::InvalidArgument
        );
    }
}
