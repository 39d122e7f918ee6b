//! `plumb-otlp`: OTLP receivers shared by Plumb's collector and sidecar.
//!
//! In: requests from any OpenTelemetry SDK or collector: OTLP/gRPC ([`grpc`]) and OTLP/HTTP with
//! protobuf or JSON bodies ([`http`]), gzip or not, checked against a size limit. Out: the body
//! handed to an [`OtlpSink`] (the collector's pipeline, the sidecar's forwarder) as a [`Payload`],
//! and the sink's OTLP response, or a whole-request error as a gRPC status / HTTP 4xx-5xx with a
//! message. [`Signal`] is the one place that says what traces and metrics differ in, so both
//! transports serve both signals with the same code.

pub mod auth;
pub mod client;
pub mod grpc;
pub mod http;
mod inflate;
pub mod serve;
pub mod tls;
pub mod unary;
pub mod wire;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::future::Future;
use std::time::Duration;

/// Why a request was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The receiver is full; retry later.
    #[error("the receiver is busy (its writers are behind); retry in {retry_after:?}")]
    Busy {
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The receiver is shutting down.
    #[error("the receiver is shutting down; retry later")]
    ShuttingDown,
    /// The receiver cannot take requests now (its disk failed, say); retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The request could not be decoded.
    #[error("{0}")]
    Malformed(String),
    /// The request is over a limit; sending it again will not help, smaller ones will.
    #[error("{0}")]
    TooLarge(String),
}

/// A request body as received, in one of the two OTLP encodings.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Protobuf (gRPC, or HTTP `application/x-protobuf`).
    Protobuf(Bytes),
    /// OTLP JSON (HTTP `application/json`).
    Json(Bytes),
}

impl Payload {
    /// Decodes the body as `M`; `items` names what it carries for the error message.
    pub fn decode<M>(&self, items: &str) -> Result<M, ExportError>
    where
        M: prost::Message + Default + serde::de::DeserializeOwned,
    {
        match self {
            Payload::Protobuf(bytes) => M::decode(bytes.as_ref()).map_err(|e| {
                ExportError::Malformed(format!(
                    "malformed OTLP protobuf ({items} export request): {e}"
                ))
            }),
            Payload::Json(json) => serde_json::from_slice(json).map_err(|e| {
                ExportError::Malformed(format!("malformed OTLP JSON ({items} export request): {e}"))
            }),
        }
    }

    /// The body as protobuf bytes: as received, or JSON decoded as `M` and encoded again.
    pub fn into_protobuf<M>(self, items: &str) -> Result<Bytes, ExportError>
    where
        M: prost::Message + Default + serde::de::DeserializeOwned,
    {
        match self {
            Payload::Protobuf(bytes) => Ok(bytes),
            json @ Payload::Json(_) => Ok(Bytes::from(json.decode::<M>(items)?.encode_to_vec())),
        }
    }
}

/// Where received requests go.
pub trait OtlpSink: Send + Sync + 'static {
    /// Takes a trace export request.
    fn export_traces(
        &self,
        payload: Payload,
    ) -> impl Future<Output = Result<ExportTraceServiceResponse, ExportError>> + Send;

    /// Takes a metrics export request.
    fn export_metrics(
        &self,
        payload: Payload,
    ) -> impl Future<Output = Result<ExportMetricsServiceResponse, ExportError>> + Send;

    /// Called once for every request refused whole, by the receivers or by the sink itself
    /// (malformed, too large, wrong content type, busy, shutting down), so the sink can count it.
    fn request_refused(&self) {}
}

/// One OTLP signal: its gRPC names and which sink method takes it.
pub trait Signal: Send + Sync + 'static {
    /// The export response message.
    type Response: prost::Message + Default + serde::Serialize + Send + 'static;
    /// Fully qualified gRPC service name.
    const GRPC_SERVICE: &'static str;
    /// Path of the gRPC `Export` method.
    const GRPC_PATH: &'static str;

    /// Hands a body to the sink.
    fn export<S: OtlpSink>(
        sink: &S,
        payload: Payload,
    ) -> impl Future<Output = Result<Self::Response, ExportError>> + Send;
}

/// Traces: `TraceService/Export`, `/v1/traces`.
#[derive(Debug)]
pub struct Traces;

/// Metrics: `MetricsService/Export`, `/v1/metrics`.
#[derive(Debug)]
pub struct Metrics;

impl Signal for Traces {
    type Response = ExportTraceServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    fn export<S: OtlpSink>(
        sink: &S,
        payload: Payload,
    ) -> impl Future<Output = Result<Self::Response, ExportError>> + Send {
        sink.export_traces(payload)
    }
}

impl Signal for Metrics {
    type Response = ExportMetricsServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

    fn export<S: OtlpSink>(
        sink: &S,
        payload: Payload,
    ) -> impl Future<Output = Result<Self::Response, ExportError>> + Send {
        sink.export_metrics(payload)
    }
}
