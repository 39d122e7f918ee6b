//! OTLP/HTTP: `POST /v1/traces` and `POST /v1/metrics` with protobuf
//! (`application/x-protobuf`) or JSON (`application/json`) bodies, optionally gzip- or zstd-encoded.
//!
//! Errors follow the OTLP/HTTP rules: 400 for a body that does not decode, 413 for one over the
//! size limit (before or after decompression), 415 for an unknown content type or encoding, 429
//! with `Retry-After` when the collector is busy, 503 when it is shutting down. Error bodies are
//! a `google.rpc.Status` (code and message) in the request's encoding.

use super::{ExportError, Metrics, OtlpSink, Payload, Signal, Traces};
use crate::auth::{Tokens, UNAUTHENTICATED};
use crate::inflate::{Compression, InflateError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;

struct HttpState<S> {
    sink: Arc<S>,
    max_body_bytes: usize,
    tokens: Arc<Tokens>,
}

impl<S> Clone for HttpState<S> {
    fn clone(&self) -> Self {
        Self {
            sink: Arc::clone(&self.sink),
            max_body_bytes: self.max_body_bytes,
            tokens: Arc::clone(&self.tokens),
        }
    }
}

/// The OTLP/HTTP routes; bodies over `max_body_bytes` (compressed or not) get 413.
/// With `tokens` configured, a request without a valid bearer token gets 401 before its body
/// is read.
pub fn router<S: OtlpSink>(sink: Arc<S>, max_body_bytes: usize, tokens: Arc<Tokens>) -> Router {
    let state = HttpState {
        sink,
        max_body_bytes,
        tokens,
    };
    Router::new()
        .route("/v1/traces", post(export::<Traces, S>))
        .route("/v1/metrics", post(export::<Metrics, S>))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate::<S>,
        ))
        .with_state(state)
}

/// Refuses requests without a valid token, in the request's encoding.
async fn authenticate<S: OtlpSink>(
    State(state): State<HttpState<S>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state
        .tokens
        .check(request.headers().get(header::AUTHORIZATION))
        .is_some()
    {
        return next.run(request).await;
    }
    state.sink.request_refused();
    let encoding = request_encoding(request.headers()).unwrap_or(Encoding::Json);
    let error = HttpError::new(
        StatusCode::UNAUTHORIZED,
        tonic::Code::Unauthenticated,
        UNAUTHENTICATED,
    );
    let mut response = error.into_response(encoding);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The two OTLP/HTTP encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        })
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An HTTP error with its gRPC-style code.
struct HttpError {
    status: StatusCode,
    grpc_code: tonic::Code,
    message: String,
    retry_after_s: Option<u64>,
}

impl HttpError {
    fn new(status: StatusCode, grpc_code: tonic::Code, message: impl Into<String>) -> Self {
        Self {
            status,
            grpc_code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    fn into_response(self, encoding: Encoding) -> Response {
        let body = RpcStatus {
            code: self.grpc_code as i32,
            message: self.message,
        };
        let mut response = encode(encoding, &body).into_response();
        *response.status_mut() = self.status;
        if let Some(secs) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<ExportError> for HttpError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Busy { retry_after } => Self {
                retry_after_s: Some(retry_after.as_secs().max(1)),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    tonic::Code::ResourceExhausted,
                    error.to_string(),
                )
            },
            ExportError::ShuttingDown | ExportError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                error.to_string(),
            ),
            ExportError::Malformed(message) => Self::new(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                message,
            ),
            ExportError::TooLarge(message) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
                message,
            ),
        }
    }
}

async fn export<H: Signal, S: OtlpSink>(
    State(state): State<HttpState<S>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Errors are answered in the request's encoding when it is known, else JSON.
    let encoding = match request_encoding(&headers) {
        Ok(e) => e,
        Err(e) => {
            state.sink.request_refused();
            return e.into_response(Encoding::Json);
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            state.sink.request_refused();
            let too_large = rejection.status() == StatusCode::PAYLOAD_TOO_LARGE;
            let error = HttpError::new(
                rejection.status(),
                if too_large {
                    tonic::Code::ResourceExhausted
                } else {
                    tonic::Code::InvalidArgument
                },
                format!(
                    "{}; the limit is {} bytes",
                    rejection.body_text(),
                    state.max_body_bytes
                ),
            );
            return error.into_response(encoding);
        }
    };
    match handle::<H, S>(&state, &headers, encoding, body).await {
        Ok(response) => response,
        Err(e) => {
            state.sink.request_refused();
            e.into_response(encoding)
        }
    }
}

async fn handle<H: Signal, S: OtlpSink>(
    state: &HttpState<S>,
    headers: &HeaderMap,
    encoding: Encoding,
    body: Bytes,
) -> Result<Response, HttpError> {
    let body = decompress(headers, body, state.max_body_bytes)?;
    let payload = match encoding {
        Encoding::Protobuf => Payload::Protobuf(body),
        Encoding::Json => Payload::Json(body),
    };
    let response = H::export(&*state.sink, payload).await?;
    Ok(encode(encoding, &response))
}

fn request_encoding(headers: &HeaderMap) -> Result<Encoding, HttpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            format!(
                "unsupported content type {content_type:?}: send application/x-protobuf or application/json"
            ),
        )),
    }
}

fn decompress(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, HttpError> {
    let name = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let compression = Compression::named(name).map_err(|other| {
        HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            format!("unsupported content encoding {other:?}: send gzip, zstd or no encoding"),
        )
    })?;
    let Some(compression) = compression else {
        return Ok(body);
    };
    compression.inflate(&body, limit).map_err(|e| {
        let (status, code) = match e {
            InflateError::Invalid { .. } => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
            InflateError::OverLimit(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                tonic::Code::ResourceExhausted,
            ),
        };
        HttpError::new(status, code, e.to_string())
    })
}

fn encode<M: prost::Message + serde::Serialize>(encoding: Encoding, message: &M) -> Response {
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        // Serialising plain generated messages cannot fail.
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}
