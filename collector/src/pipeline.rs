//! The ingest pipeline: what a receiver calls once it has decoded an OTLP request.
//!
//! In: encoded `ExportTraceServiceRequest`s and decoded `ExportMetricsServiceRequest`s. Out: the
//! request appended to the journal (when it is on), spans and metric points queued for the
//! ClickHouse writers, spans added to the latency aggregates and to the trace window (for the
//! breakdown), and an [`IngestOutcome`] saying what was rejected. The queues are bounded: when a
//! writer falls behind, a request waits up to `enqueue_timeout` for room and is then refused with
//! [`ExportError::Busy`] before anything of it is recorded, so a client's retry never counts
//! twice. [`Pipeline::replay`] rebuilds journal records at start-up.

use crate::aggregate::Aggregator;
use crate::clock::now_unix_ns;
use crate::journal::{AppendError, Appended, Journal, Queued, RecordKind};
use crate::normalise::{
    NameLimiter, Normalised, OVERFLOW_OPERATION, SpanLimits, TraceRequestError, normalise_metrics,
    normalise_traces,
};
use crate::store::rows::{EncodedRows, MetricRow};
use crate::telemetry::{METRIC_POINTS, SPANS, SignalLabel, Telemetry};
use crate::trace::assemble::TraceAssembler;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use plumb_otlp::ExportError;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a refused client is told to wait before it retries.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What happened to an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Items rejected one by one.
    pub rejected: u64,
    /// The first rejection's reason.
    pub message: Option<String>,
}

/// Settings for [`Pipeline::new`].
#[derive(Clone, Copy, Debug)]
pub struct PipelineSettings {
    /// Which timestamps are believable.
    pub limits: SpanLimits,
    /// Operations remembered per service before folding into `[overflow]`.
    pub max_operations_per_service: usize,
    /// How long a request may wait for queue room before being refused.
    pub enqueue_timeout: Duration,
}

/// The shared ingest path.
#[derive(Debug)]
pub struct Pipeline {
    settings: PipelineSettings,
    operations: NameLimiter,
    aggregator: Arc<Aggregator>,
    traces: Option<Arc<TraceAssembler>>,
    spans: mpsc::Sender<Queued<EncodedRows>>,
    metrics: mpsc::Sender<Queued<Vec<MetricRow>>>,
    journal: Option<Arc<Journal>>,
    telemetry: Arc<Telemetry>,
}

/// Where the pipeline's output goes.
#[derive(Debug)]
pub struct PipelineOutputs {
    /// The latency aggregates.
    pub aggregator: Arc<Aggregator>,
    /// The trace window, when the breakdown is on.
    pub traces: Option<Arc<TraceAssembler>>,
    /// The span writer's queue.
    pub spans: mpsc::Sender<Queued<EncodedRows>>,
    /// The metric writer's queue.
    pub metrics: mpsc::Sender<Queued<Vec<MetricRow>>>,
    /// The journal every accepted request is appended to, when it is on.
    pub journal: Option<Arc<Journal>>,
}

/// One journal record rebuilt for the writers.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Its span rows.
    pub spans: Option<EncodedRows>,
    /// Its first span, to look up whether its rows are stored already.
    pub probe: Option<SpanKey>,
    /// Its metric rows.
    pub metrics: Option<Vec<MetricRow>>,
}

/// What finds one span in the `spans` table (its sort key and id).
#[derive(Debug)]
pub struct SpanKey {
    /// Service.
    pub service: String,
    /// Operation.
    pub operation: String,
    /// Start, ns since the epoch.
    pub start_unix_ns: u64,
    /// Span id.
    pub span_id: [u8; 8],
}

impl Pipeline {
    /// A pipeline feeding `outputs`.
    pub fn new(
        settings: PipelineSettings,
        outputs: PipelineOutputs,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            operations: NameLimiter::new(settings.max_operations_per_service),
            settings,
            aggregator: outputs.aggregator,
            traces: outputs.traces,
            spans: outputs.spans,
            metrics: outputs.metrics,
            journal: outputs.journal,
            telemetry,
        }
    }

    /// The collector's telemetry.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Validates, journals, aggregates and queues the spans of one encoded export request.
    pub async fn ingest_traces(&self, request: &[u8]) -> Result<IngestOutcome, ExportError> {
        let normalised = self.normalise_traces(request)?;
        let overflowed = normalised
            .accepted
            .iter()
            .filter(|s| &*s.operation == OVERFLOW_OPERATION)
            .count();
        let accepted = self.count(SPANS, &normalised);
        let permit = self.reserve(&self.spans, SPANS, accepted).await?;
        let appended = self.append(RecordKind::Spans, request, SPANS, accepted)?;
        self.telemetry
            .operations_overflowed
            .inc_by(overflowed as u64);
        self.aggregator.record(&normalised.accepted);
        if let Some(traces) = &self.traces {
            traces.add(&normalised.accepted);
        }
        permit.send(Queued {
            batch: EncodedRows::spans(&normalised.accepted),
            record: appended.as_ref().map(|a| a.id),
        });
        self.telemetry
            .accepted
            .get_or_create(&SPANS)
            .inc_by(accepted);
        Ok(IngestOutcome {
            rejected: normalised.rejected,
            message: normalised.first_error,
        })
    }

    /// Normalises the spans of one encoded export request, or says why it is refused whole.
    fn normalise_traces<'a>(
        &self,
        request: &'a [u8],
    ) -> Result<Normalised<crate::normalise::Span<'a>>, ExportError> {
        normalise_traces(
            request,
            self.settings.limits,
            &self.operations,
            now_unix_ns(),
        )
        .map_err(|e| match e {
            TraceRequestError::Malformed(e) => ExportError::Malformed(format!(
                "malformed OTLP protobuf (spans export request): {e}"
            )),
            TraceRequestError::TooManySpans(_) => ExportError::TooLarge(e.to_string()),
        })
    }

    /// Appends an accepted request to the journal (when it is on); a request the journal cannot
    /// take is refused before anything of it is recorded: as busy when the journal is full,
    /// UNAVAILABLE when its disk fails.
    fn append(
        &self,
        kind: RecordKind,
        request: &[u8],
        signal: SignalLabel,
        items: u64,
    ) -> Result<Option<Appended<'_>>, ExportError> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        journal.append(kind, request).map(Some).map_err(|e| {
            self.telemetry.rejected.get_or_create(&signal).inc_by(items);
            match e {
                AppendError::Full { .. } => ExportError::Busy {
                    retry_after: RETRY_AFTER,
                },
                AppendError::Io(_) => {
                    tracing::error!(error = %e, "journal append failed; request refused");
                    ExportError::Unavailable(e.to_string())
                }
            }
        })
    }

    /// Rebuilds one journal record: its spans are aggregated into `aggregator` (not the live
    /// one, and not the trace window); its rows come back when `with_rows` is set.
    pub fn replay(
        &self,
        kind: RecordKind,
        payload: &[u8],
        aggregator: &Aggregator,
        with_rows: bool,
    ) -> Replayed {
        let mut replayed = Replayed::default();
        match kind {
            RecordKind::Spans => match self.normalise_traces(payload) {
                Ok(normalised) => {
                    aggregator.record(&normalised.accepted);
                    if with_rows && let Some(first) = normalised.accepted.first() {
                        replayed.probe = Some(SpanKey {
                            service: first.service.to_string(),
                            operation: first.operation.to_string(),
                            start_unix_ns: first.start_unix_ns,
                            span_id: first.span_id,
                        });
                        replayed.spans = Some(EncodedRows::spans(&normalised.accepted));
                    }
                }
                Err(e) => tracing::error!(error = %e, "a journal record was not replayed"),
            },
            RecordKind::Metrics if with_rows => {
                match ExportMetricsServiceRequest::decode(payload) {
                    Ok(request) => {
                        replayed.metrics = Some(
                            normalise_metrics(request, self.settings.limits, now_unix_ns())
                                .accepted,
                        );
                    }
                    Err(e) => tracing::error!(error = %e, "a journal record was not replayed"),
                }
            }
            RecordKind::Metrics => {}
        }
        replayed
    }

    /// Validates, journals and queues the data points of one request.
    pub async fn ingest_metrics(
        &self,
        request: ExportMetricsServiceRequest,
    ) -> Result<IngestOutcome, ExportError> {
        let encoded = self.journal.as_ref().map(|_| request.encode_to_vec());
        let normalised = normalise_metrics(request, self.settings.limits, now_unix_ns());
        let accepted = self.count(METRIC_POINTS, &normalised);
        let permit = self.reserve(&self.metrics, METRIC_POINTS, accepted).await?;
        let appended = match &encoded {
            Some(encoded) => self.append(RecordKind::Metrics, encoded, METRIC_POINTS, accepted)?,
            None => None,
        };
        permit.send(Queued {
            batch: normalised.accepted,
            record: appended.as_ref().map(|a| a.id),
        });
        self.telemetry
            .accepted
            .get_or_create(&METRIC_POINTS)
            .inc_by(accepted);
        Ok(IngestOutcome {
            rejected: normalised.rejected,
            message: normalised.first_error,
        })
    }

    /// Counts what came in; returns how many were accepted.
    fn count<T>(&self, signal: SignalLabel, normalised: &Normalised<T>) -> u64 {
        let accepted = normalised.accepted.len() as u64;
        let t = &self.telemetry;
        t.received
            .get_or_create(&signal)
            .inc_by(accepted + normalised.rejected);
        t.rejected
            .get_or_create(&signal)
            .inc_by(normalised.rejected);
        t.unknown_service
            .get_or_create(&signal)
            .inc_by(normalised.unknown_service);
        t.attributes_dropped
            .inc_by(normalised.truncations.attributes_dropped);
        t.values_truncated
            .inc_by(normalised.truncations.values_truncated);
        accepted
    }

    /// Waits for room in a writer queue, or refuses the request.
    async fn reserve<'a, T>(
        &self,
        queue: &'a mpsc::Sender<T>,
        signal: SignalLabel,
        items: u64,
    ) -> Result<mpsc::Permit<'a, T>, ExportError> {
        let refused = |e: ExportError| {
            self.telemetry.rejected.get_or_create(&signal).inc_by(items);
            e
        };
        match tokio::time::timeout(self.settings.enqueue_timeout, queue.reserve()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(refused(ExportError::ShuttingDown)),
            Err(_elapsed) => Err(refused(ExportError::Busy {
                retry_after: RETRY_AFTER,
            })),
        }
    }
}
