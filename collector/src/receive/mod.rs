//! Receivers: OTLP over gRPC ([`grpc`]) and over HTTP with protobuf or JSON bodies ([`http`]).
//!
//! In: requests from any OpenTelemetry SDK or collector, gzip or not. Out: decoded requests handed
//! to the [`Pipeline`], and the OTLP response: partial success with the count and first reason for
//! anything rejected, or a whole-request error (gRPC status / HTTP 4xx-5xx with a message).
//! [`ExportHandler`] is the one place that says what traces and metrics differ in, so both
//! transports serve both signals with the same code.

pub mod grpc;
pub mod http;

use crate::pipeline::{IngestError, IngestOutcome, Pipeline};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::future::Future;

/// A request body as received, in one of the two OTLP encodings.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Protobuf (gRPC, or HTTP `application/x-protobuf`).
    Protobuf(Bytes),
    /// OTLP JSON (HTTP `application/json`).
    Json(Bytes),
}

/// One OTLP signal: its gRPC names, how its bodies are decoded, and how the pipeline takes it.
pub trait ExportHandler: Send + Sync + 'static {
    /// The export response message.
    type Response: prost::Message + Default + serde::Serialize + Send + 'static;
    /// Fully qualified gRPC service name.
    const GRPC_SERVICE: &'static str;
    /// Path of the gRPC `Export` method.
    const GRPC_PATH: &'static str;
    /// What the items are called in messages ("spans", "data points").
    const ITEMS: &'static str;

    /// Decodes a body, hands it to the pipeline and builds the OTLP response.
    fn export(
        pipeline: &Pipeline,
        payload: Payload,
    ) -> impl Future<Output = Result<Self::Response, IngestError>> + Send;
}

/// Traces: `TraceService/Export`, `/v1/traces`.
#[derive(Debug)]
pub struct Traces;

/// Metrics: `MetricsService/Export`, `/v1/metrics`.
#[derive(Debug)]
pub struct Metrics;

fn malformed_json(items: &str, error: serde_json::Error) -> IngestError {
    IngestError::Malformed(format!(
        "malformed OTLP JSON ({items} export request): {error}"
    ))
}

impl ExportHandler for Traces {
    type Response = ExportTraceServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const ITEMS: &'static str = "spans";

    async fn export(pipeline: &Pipeline, payload: Payload) -> Result<Self::Response, IngestError> {
        // Spans are read straight from protobuf bytes; JSON is converted to them first.
        let bytes = match payload {
            Payload::Protobuf(bytes) => bytes,
            Payload::Json(json) => {
                let request: ExportTraceServiceRequest =
                    serde_json::from_slice(&json).map_err(|e| malformed_json(Self::ITEMS, e))?;
                Bytes::from(request.encode_to_vec())
            }
        };
        let outcome = pipeline.ingest_traces(&bytes).await?;
        Ok(ExportTraceServiceResponse {
            partial_success: partial(outcome).map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        })
    }
}

impl ExportHandler for Metrics {
    type Response = ExportMetricsServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const ITEMS: &'static str = "data points";

    async fn export(pipeline: &Pipeline, payload: Payload) -> Result<Self::Response, IngestError> {
        let request = match payload {
            Payload::Protobuf(bytes) => {
                ExportMetricsServiceRequest::decode(bytes).map_err(|e| {
                    IngestError::Malformed(format!(
                        "malformed OTLP protobuf ({} export request): {e}",
                        Self::ITEMS
                    ))
                })?
            }
            Payload::Json(json) => {
                serde_json::from_slice(&json).map_err(|e| malformed_json(Self::ITEMS, e))?
            }
        };
        let outcome = pipeline.ingest_metrics(request).await?;
        Ok(ExportMetricsServiceResponse {
            partial_success: partial(outcome).map(|(rejected_data_points, error_message)| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        })
    }
}

/// `(rejected count, message)` when anything was rejected.
fn partial(outcome: IngestOutcome) -> Option<(i64, String)> {
    (outcome.rejected > 0).then(|| {
        (
            i64::try_from(outcome.rejected).unwrap_or(i64::MAX),
            outcome.message.unwrap_or_default(),
        )
    })
}
