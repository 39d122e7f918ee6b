//! Receiving: the OTLP/gRPC and OTLP/HTTP listeners come from `plumb-otlp`; this module makes
//! the [`Pipeline`] the place their requests go.
//!
//! In: a [`Payload`] per request. Out: the OTLP response, with partial success carrying the count
//! and first reason for what was rejected. Bodies stay protobuf bytes (JSON is converted),
//! because the pipeline reads spans and points in place.

use crate::pipeline::{IngestOutcome, Pipeline};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use plumb_otlp::{ExportError, OtlpSink, Payload};

impl OtlpSink for Pipeline {
    async fn export_traces(
        &self,
        payload: Payload,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let bytes = payload.into_protobuf::<ExportTraceServiceRequest>("spans")?;
        let outcome = self.ingest_traces(&bytes).await?;
        Ok(ExportTraceServiceResponse {
            partial_success: partial(outcome).map(|(rejected_spans, error_message)| {
                ExportTracePartialSuccess {
                    rejected_spans,
                    error_message,
                }
            }),
        })
    }

    async fn export_metrics(
        &self,
        payload: Payload,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        let bytes = payload.into_protobuf::<ExportMetricsServiceRequest>("data points")?;
        let outcome = self.ingest_metrics(&bytes).await?;
        Ok(ExportMetricsServiceResponse {
            partial_success: partial(outcome).map(|(rejected_data_points, error_message)| {
                ExportMetricsPartialSuccess {
                    rejected_data_points,
                    error_message,
                }
            }),
        })
    }

    fn request_refused(&self) {
        Pipeline::request_refused(self);
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
