//! Forwarding: the sidecar's [`OtlpSink`] and the senders that ship its backlog to the collector.
//!
//! In: export requests from the local receivers. The forwarder adds the host's resource attributes
//! (`host.name`, when the SDK did not set it), counts the items and queues the encoded request in
//! a bounded [`Backlog`]. Out: a sender per signal concatenates queued requests into batches (two
//! encoded export requests concatenated are one request with both lists) and sends them over
//! OTLP/gRPC with gzip. Retryable failures (unavailable, resource exhausted, deadline, aborted)
//! are retried with exponential backoff and jitter, waiting at least what the collector's
//! `RetryInfo` asks; other refusals drop the batch and count it.

use crate::backlog::{Backlog, Entry};
use crate::telemetry::{SidecarTelemetry, Signal};
use bytes::{Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;
use plumb_net::Backoff;
use plumb_otlp::client::RawGrpcClient;
use plumb_otlp::{ExportError, OtlpSink, Payload};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic_types::StatusExt;

/// The sidecar's sink: two backlogs and the host attributes to add.
#[derive(Debug)]
pub struct Forwarder {
    /// Trace requests waiting to be sent.
    pub traces: Backlog,
    /// Metric requests waiting to be sent.
    pub metrics: Backlog,
    host_name: Option<String>,
    telemetry: Arc<SidecarTelemetry>,
}

impl Forwarder {
    /// A forwarder holding at most `max_bytes` per signal.
    pub fn new(
        max_bytes: usize,
        host_name: Option<String>,
        telemetry: Arc<SidecarTelemetry>,
    ) -> Self {
        Self {
            traces: Backlog::new(max_bytes),
            metrics: Backlog::new(max_bytes),
            host_name,
            telemetry,
        }
    }

    /// Counts a received request and queues it, counting what the backlog drops for it.
    fn queue(&self, signal: Signal, backlog: &Backlog, entry: Entry) {
        self.telemetry.received(signal, entry.items);
        let dropped = backlog.push(entry);
        self.telemetry.dropped(signal, dropped);
    }

    /// Adds `host.name` to a metrics resource that lacks it (spans: see `enrich.rs`).
    fn enrich(&self, resource: &mut Option<Resource>) {
        let Some(host) = &self.host_name else { return };
        let resource = resource.get_or_insert_with(Resource::default);
        if !resource.attributes.iter().any(|kv| kv.key == "host.name") {
            resource.attributes.push(KeyValue {
                key: "host.name".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue(host.clone())),
                }),
                ..Default::default()
            });
        }
    }
}

/// The number of data points of a metric.
fn data_points(data: Option<&Data>) -> u64 {
    (match data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}

impl OtlpSink for Forwarder {
    async fn export_traces(
        &self,
        payload: Payload,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        // Spans are the bulk: the encoded request is edited in place, never decoded.
        let request = payload.into_protobuf::<ExportTraceServiceRequest>("spans")?;
        let (bytes, items) = crate::enrich::add_host_name(request, self.host_name.as_deref())
            .map_err(|e| {
                ExportError::Malformed(format!(
                    "malformed OTLP protobuf (spans export request): {e}"
                ))
            })?;
        self.queue(Signal::Traces, &self.traces, Entry { bytes, items });
        Ok(ExportTraceServiceResponse::default())
    }

    async fn export_metrics(
        &self,
        payload: Payload,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        let mut request = payload.decode::<ExportMetricsServiceRequest>("data points")?;
        let mut items = 0;
        for resource_metrics in &mut request.resource_metrics {
            self.enrich(&mut resource_metrics.resource);
            let metrics = resource_metrics
                .scope_metrics
                .iter()
                .flat_map(|s| &s.metrics);
            items += metrics.map(|m| data_points(m.data.as_ref())).sum::<u64>();
        }
        let bytes = Bytes::from(request.encode_to_vec());
        self.queue(Signal::Metrics, &self.metrics, Entry { bytes, items });
        Ok(ExportMetricsServiceResponse::default())
    }

    fn request_refused(&self) {
        self.telemetry.refused.inc();
    }
}

/// How a sender batches and retries.
#[derive(Clone, Copy, Debug)]
pub struct SendSettings {
    /// Largest batch, in encoded bytes.
    pub batch_max_bytes: usize,
    /// Longest wait before queued data is sent.
    pub flush_interval: Duration,
    /// How long to keep trying at shutdown.
    pub shutdown_timeout: Duration,
}

/// How the sender waits between failed sends; the jitter spreads many sidecars' retries.
const RETRY_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_millis(250), Duration::from_secs(30), 0.5);

/// Sends `backlog` to the collector until shutdown, then drains it within the shutdown timeout.
pub async fn run_sender(
    backlog: &Backlog,
    mut client: RawGrpcClient,
    signal: Signal,
    settings: SendSettings,
    stop: tokio_util::sync::CancellationToken,
    telemetry: Arc<SidecarTelemetry>,
) {
    let mut deadline: Option<Instant> = None;
    loop {
        let batch = backlog.take(settings.batch_max_bytes);
        if batch.is_empty() {
            if deadline.is_some() {
                return;
            }
            tokio::select! {
                () = backlog.ready() => {}
                () = tokio::time::sleep(settings.flush_interval) => {}
                () = stop.cancelled(), if deadline.is_none() => deadline = Some(Instant::now() + settings.shutdown_timeout),
            }
            continue;
        }
        let items: u64 = batch.iter().map(|e| e.items).sum();
        let mut message = BytesMut::with_capacity(batch.iter().map(|e| e.bytes.len()).sum());
        batch
            .iter()
            .for_each(|e| message.extend_from_slice(&e.bytes));
        let message = message.freeze();
        let mut delays = RETRY_BACKOFF.delays();
        loop {
            match client.send(message.clone()).await {
                Ok(_) => {
                    telemetry.forwarded(signal, items);
                    break;
                }
                Err(status) if retryable(status.code()) => {
                    telemetry.export_failed(signal);
                    let wait = retry_wait(&status, delays.next_delay());
                    if deadline.is_some_and(|d| Instant::now() + wait > d) {
                        telemetry.dropped(signal, items);
                        tracing::error!(
                            ?signal,
                            items,
                            "collector unreachable at shutdown; data lost"
                        );
                        break;
                    }
                    tracing::warn!(?signal, code = ?status.code(), message = status.message(), retry_in = ?wait, "forwarding failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled(), if deadline.is_none() => {
                            deadline = Some(Instant::now() + settings.shutdown_timeout);
                        }
                    }
                }
                Err(status) => {
                    telemetry.rejected(signal, items);
                    tracing::warn!(?signal, items, code = ?status.code(), message = status.message(), "collector refused a batch; dropped");
                    break;
                }
            }
        }
    }
}

/// How long to wait before retrying: the backoff's delay, but never less than the collector's
/// `RetryInfo` hint.
fn retry_wait(status: &tonic::Status, backoff: Duration) -> Duration {
    let hinted = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_default();
    backoff.max(hinted)
}

/// Codes worth retrying: the collector is down, busy or slow, not the data wrong.
fn retryable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Aborted
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn the_retry_backoff_is_valid() {
        assert!(RETRY_BACKOFF.checked().is_ok());
    }

    #[test]
    fn the_collectors_retry_hint_is_honoured() {
        let hinted = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "busy",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        assert!(retry_wait(&hinted, Duration::from_millis(250)) >= Duration::from_secs(3));
        let plain = tonic::Status::unavailable("down");
        assert_eq!(
            retry_wait(&plain, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(
            retryable(tonic::Code::ResourceExhausted) && !retryable(tonic::Code::InvalidArgument)
        );
    }
}
