//! Sending pre-encoded OTLP messages over gRPC: the sidecar forwards what it received without
//! decoding it again, and the load generator and tests send bytes they built once (or malformed
//! on purpose).

use bytes::{Buf, BufMut, Bytes};
pub use tonic::codec::CompressionEncoding;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The path of OTLP's trace export call.
pub const TRACE_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The path of OTLP's metrics export call.
pub const METRICS_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// A gRPC codec that sends and receives message bytes as they are (already encoded).
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBytesCodec;

impl Codec for RawBytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawBytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawBytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Why a [`RawGrpcClient`] could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not a valid URI.
    #[error("invalid endpoint {0:?}: use a URL such as http://127.0.0.1:4317")]
    Endpoint(String),
    /// The connection failed.
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The bearer token cannot be sent as a header.
    #[error("the token must be printable ASCII")]
    Token,
}

/// Sends already-encoded messages to one gRPC method.
#[derive(Clone, Debug)]
pub struct RawGrpcClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
    path: tonic::codegen::http::uri::PathAndQuery,
    authorization: Option<tonic::metadata::AsciiMetadataValue>,
}

impl RawGrpcClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:4317`) for the method at `path`.
    pub async fn connect(
        endpoint: String,
        path: &'static str,
        compression: Option<CompressionEncoding>,
    ) -> Result<Self, ConnectError> {
        Self::connect_with(endpoint, path, compression, None).await
    }

    /// Like [`connect`](Self::connect), over TLS when `tls` is set (use an `https://` endpoint).
    pub async fn connect_with(
        endpoint: String,
        path: &'static str,
        compression: Option<CompressionEncoding>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<Self, ConnectError> {
        let channel = Self::endpoint(endpoint, tls)?.connect().await?;
        Ok(Self::over(channel, path, compression))
    }

    fn endpoint(
        endpoint: String,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<tonic::transport::Endpoint, ConnectError> {
        let mut channel = tonic::transport::Channel::from_shared(endpoint.clone())
            .map_err(|_| ConnectError::Endpoint(endpoint))?;
        if let Some(tls) = tls {
            channel = channel.tls_config(tls)?;
        }
        Ok(channel)
    }

    /// A client that connects on first use and reconnects after failures (for a peer that may
    /// be down when the client is created).
    pub fn connect_lazy(
        endpoint: String,
        path: &'static str,
        compression: Option<CompressionEncoding>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Result<Self, ConnectError> {
        let channel = Self::endpoint(endpoint, tls)?.connect_lazy();
        Ok(Self::over(channel, path, compression))
    }

    fn over(
        channel: tonic::transport::Channel,
        path: &'static str,
        compression: Option<CompressionEncoding>,
    ) -> Self {
        let mut grpc = tonic::client::Grpc::new(channel);
        if let Some(encoding) = compression {
            grpc = grpc.send_compressed(encoding).accept_compressed(encoding);
        }
        Self {
            grpc,
            path: tonic::codegen::http::uri::PathAndQuery::from_static(path),
            authorization: None,
        }
    }

    /// Sends `authorization: Bearer <token>` with every message (the error never shows the token).
    pub fn with_token(mut self, token: &str) -> Result<Self, ConnectError> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ConnectError::Token)?;
        self.authorization = Some(value);
        Ok(self)
    }

    /// Sends one message; returns the response bytes or the status.
    pub async fn send(&mut self, message: Bytes) -> Result<Bytes, tonic::Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        let path = self.path.clone();
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        self.grpc
            .unary(request, path, RawBytesCodec)
            .await
            .map(tonic::Response::into_inner)
    }
}
