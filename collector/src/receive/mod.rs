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
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::future::Future;

/// One OTLP signal: its messages, its gRPC names, and how the pipeline takes it.
pub trait ExportHandler: Send + Sync + 'static {
    /// The export request message.
    type Request: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static;
    /// The export response message.
    type Response: prost::Message + Default + serde::Serialize + Send + 'static;
    /// Fully qualified gRPC service name.
    const GRPC_SERVICE: &'static str;
    /// Path of the gRPC `Export` method.
    const GRPC_PATH: &'static str;
    /// What the items are called in messages ("spans", "data points").
    const ITEMS: &'static str;

    /// Hands a decoded request to the pipeline and builds the OTLP response.
    fn export(
        pipeline: &Pipeline,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, IngestError>> + Send;
}

/// Traces: `TraceService/Export`, `/v1/traces`.
#[derive(Debug)]
pub struct Traces;

/// Metrics: `MetricsService/Export`, `/v1/metrics`.
#[derive(Debug)]
pub struct Metrics;

impl ExportHandler for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const ITEMS: &'static str = "spans";

    async fn export(
        pipeline: &Pipeline,
        request: Self::Request,
    ) -> Result<Self::Response, IngestError> {
        let outcome = pipeline.ingest_traces(request).await?;
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
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const ITEMS: &'static str = "data points";

    async fn export(
        pipeline: &Pipeline,
        request: Self::Request,
    ) -> Result<Self::Response, IngestError> {
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
