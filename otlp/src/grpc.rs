//! OTLP/gRPC: `TraceService/Export` and `MetricsService/Export` on one tonic server.
//!
//! The services are written as tower services rather than generated, so that the call is ours
//! from the body's frames on: [`unary`](crate::unary) reads the one message (without a copy when
//! one frame holds it, RESOURCE_EXHAUSTED past the limit, gzip and zstd accepted) and the signal's
//! handler reads it in place; a malformed message is INVALID_ARGUMENT (tonic's stock codec says
//! INTERNAL).

use super::auth::{Tokens, UNAUTHENTICATED};
use super::{ExportError, OtlpSink, Payload, Signal, unary};
use bytes::Bytes;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::NamedService;
use tonic_types::{ErrorDetails, StatusExt};

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
    B: Body<Data = Bytes> + Send + 'static,
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
        let sink = Arc::clone(&self.sink);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let exported = match unary::read_message(&parts.headers, body, limit).await {
                Ok(message) => H::export(&*sink, Payload::Protobuf(message))
                    .await
                    .map_err(status_for),
                Err(status) => Err(status),
            };
            Ok(match exported {
                Ok(response) => unary::reply(&response),
                Err(status) => {
                    sink.request_refused();
                    status.into_http()
                }
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
