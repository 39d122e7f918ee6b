//! The ingest pipeline: what a receiver calls once it has decoded an OTLP request.
//!
//! In: encoded `ExportTraceServiceRequest`s and `ExportMetricsServiceRequest`s. Out: the request
//! appended to the journal (when it is on), span and metric rows queued for the ClickHouse
//! writers, spans added to the latency aggregates and to the trace window (for the
//! breakdown), and an [`IngestOutcome`] saying what was rejected. The queues are bounded: when a
//! writer falls behind, a request waits up to `enqueue_timeout` for room and is then refused with
//! [`ExportError::Busy`] before anything of it is recorded, so a client's retry never counts
//! twice. [`Pipeline::replay`] rebuilds journal records for the start-up recovery.

use crate::ack::{Ack, Queued, RowAcks};
use crate::aggregate::Aggregator;
use crate::clock::now_unix_ns;
use crate::journal::{AppendError, Appended, Journal, RecordKind};
use crate::model::{Attribute, Span};
use crate::normalise::{
    NameLimiter, Normalised, OVERFLOW_OPERATION, SpanLimits, TraceRequestError, normalise_metrics,
    normalise_traces,
};
use crate::store::metric_rows::MetricBatch;
use crate::store::rows::EncodedRows;
use crate::telemetry::{METRIC_POINTS, SPANS, SignalLabel, Telemetry};
use crate::trace_analysis::window::TraceAssembler;
use bumpalo::Bump;
use plumb_otlp::ExportError;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a refused client is told to wait before it retries.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What happened to an accepted request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IngestOutcome {
    /// Items rejected one by one.
    pub(crate) rejected: u64,
    /// The first rejection's reason.
    pub(crate) message: Option<String>,
}

/// Settings for [`Pipeline::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PipelineSettings {
    /// Which timestamps are believable.
    pub(crate) limits: SpanLimits,
    /// Operations remembered per service before folding into `[overflow]`.
    pub(crate) max_operations_per_service: usize,
    /// How long a request may wait for queue room before being refused.
    pub(crate) enqueue_timeout: Duration,
}

/// The ingest path's own metrics.
#[derive(Debug, Default)]
pub(crate) struct IngestTelemetry {
    /// Items received, before validation.
    received: Family<SignalLabel, Counter>,
    /// Items accepted.
    accepted: Family<SignalLabel, Counter>,
    /// Items rejected (bad ids, timestamps) or refused (back-pressure).
    rejected: Family<SignalLabel, Counter>,
    /// Items whose resource had no `service.name`.
    unknown_service: Family<SignalLabel, Counter>,
    /// Spans folded into the overflow operation by the per-service cap.
    operations_overflowed: Counter,
    /// Attributes dropped by the per-span attribute limit.
    attributes_dropped: Counter,
    /// Attribute values cut to the length limit.
    values_truncated: Counter,
    /// Requests refused whole (malformed, too large, wrong type, back-pressure).
    requests_refused: Counter,
}

impl IngestTelemetry {
    /// Creates the metrics, registered in `telemetry`.
    pub(crate) fn registered(telemetry: &mut Telemetry) -> Arc<Self> {
        let this = Self::default();
        let registry = telemetry.registry();
        registry.register(
            "received",
            "Items received over OTLP, by signal",
            this.received.clone(),
        );
        registry.register(
            "accepted",
            "Items accepted, by signal",
            this.accepted.clone(),
        );
        registry.register(
            "rejected",
            "Items rejected or refused, by signal",
            this.rejected.clone(),
        );
        registry.register(
            "unknown_service",
            "Items without a service.name, filed under unknown_service",
            this.unknown_service.clone(),
        );
        registry.register(
            "operations_overflowed",
            "Spans folded into the [overflow] operation by the per-service operation cap",
            this.operations_overflowed.clone(),
        );
        registry.register(
            "attributes_dropped",
            "Attributes dropped by the per-span (and per-resource) attribute limit",
            this.attributes_dropped.clone(),
        );
        registry.register(
            "attribute_values_truncated",
            "Attribute values cut to the length limit",
            this.values_truncated.clone(),
        );
        registry.register(
            "requests_refused",
            "OTLP requests refused whole (malformed, too large, wrong content type, back-pressure)",
            this.requests_refused.clone(),
        );
        Arc::new(this)
    }
}

/// The shared ingest path.
#[derive(Debug)]
pub(crate) struct Pipeline {
    settings: PipelineSettings,
    operations: NameLimiter,
    aggregator: Arc<Aggregator>,
    traces: Option<Arc<TraceAssembler>>,
    spans: mpsc::Sender<Queued<EncodedRows>>,
    metrics: mpsc::Sender<Queued<MetricBatch>>,
    journal: Option<Arc<Journal>>,
    telemetry: Arc<IngestTelemetry>,
}

/// Where the pipeline's output goes.
#[derive(Debug)]
pub(crate) struct PipelineOutputs {
    /// The latency aggregates.
    pub(crate) aggregator: Arc<Aggregator>,
    /// The trace window, when the breakdown is on.
    pub(crate) traces: Option<Arc<TraceAssembler>>,
    /// The span writer's queue.
    pub(crate) spans: mpsc::Sender<Queued<EncodedRows>>,
    /// The metric writer's queue.
    pub(crate) metrics: mpsc::Sender<Queued<MetricBatch>>,
    /// The journal every accepted request is appended to, when it is on.
    pub(crate) journal: Option<Arc<Journal>>,
}

/// One journal record rebuilt for the writers.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// Its span rows.
    pub(crate) spans: Option<EncodedRows>,
    /// Its metric rows.
    pub(crate) metrics: Option<MetricBatch>,
}

impl Pipeline {
    /// A pipeline feeding `outputs`.
    pub(crate) fn new(
        settings: PipelineSettings,
        outputs: PipelineOutputs,
        telemetry: Arc<IngestTelemetry>,
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

    /// Counts a request refused whole before it reached the pipeline.
    pub(crate) fn request_refused(&self) {
        self.telemetry.requests_refused.inc();
    }

    /// The acknowledgement of a journal record, for the writers.
    fn ack(&self, appended: Option<&Appended<'_>>) -> Option<Ack> {
        let journal = self.journal.as_ref()?;
        let to: Arc<dyn RowAcks> = Arc::clone(journal) as Arc<dyn RowAcks>;
        appended.map(|a| Ack::new(to, a.id))
    }

    /// Validates, journals, aggregates and queues the spans of one encoded export request.
    pub(crate) async fn ingest_traces(&self, request: &[u8]) -> Result<IngestOutcome, ExportError> {
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let normalised = self.normalise_traces(request, &mut attributes, &arena)?;
        let overflowed = normalised
            .accepted
            .iter()
            .filter(|s| &**s.operation() == OVERFLOW_OPERATION)
            .count();
        let accepted = self.count(SPANS, normalised.accepted.len() as u64, &normalised);
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
            ack: self.ack(appended.as_ref()),
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

    /// Normalises the spans of one encoded export request (their attributes kept in
    /// `attributes`, values that are not text written out in `arena`), or says why it is refused
    /// whole.
    fn normalise_traces<'a>(
        &self,
        request: &'a [u8],
        attributes: &'a mut Vec<Attribute<'a>>,
        arena: &'a Bump,
    ) -> Result<Normalised<Vec<Span<'a>>>, ExportError> {
        normalise_traces(
            request,
            attributes,
            arena,
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
    pub(crate) fn replay(
        &self,
        kind: RecordKind,
        payload: &[u8],
        aggregator: &Aggregator,
        with_rows: bool,
    ) -> Replayed {
        let mut replayed = Replayed::default();
        match kind {
            RecordKind::Spans => {
                match self.normalise_traces(payload, &mut Vec::new(), &Bump::new()) {
                    Ok(normalised) => {
                        aggregator.record(&normalised.accepted);
                        if with_rows && !normalised.accepted.is_empty() {
                            replayed.spans = Some(EncodedRows::spans(&normalised.accepted));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "a journal record was not replayed"),
                }
            }
            RecordKind::Metrics if with_rows => {
                match normalise_metrics(payload, self.settings.limits, now_unix_ns()) {
                    Ok(normalised) => {
                        replayed.metrics = Some(normalised.accepted.finish());
                    }
                    Err(e) => tracing::error!(error = %e, "a journal record was not replayed"),
                }
            }
            RecordKind::Metrics => {}
        }
        replayed
    }

    /// Validates, journals and queues the data points of one encoded export request.
    pub(crate) async fn ingest_metrics(
        &self,
        request: &[u8],
    ) -> Result<IngestOutcome, ExportError> {
        let normalised =
            normalise_metrics(request, self.settings.limits, now_unix_ns()).map_err(|e| {
                ExportError::Malformed(format!(
                    "malformed OTLP protobuf (metrics export request): {e}"
                ))
            })?;
        let accepted = self.count(METRIC_POINTS, normalised.accepted.len() as u64, &normalised);
        let permit = self.reserve(&self.metrics, METRIC_POINTS, accepted).await?;
        let appended = self.append(RecordKind::Metrics, request, METRIC_POINTS, accepted)?;
        permit.send(Queued {
            batch: normalised.accepted.finish(),
            ack: self.ack(appended.as_ref()),
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

    /// Counts what came in (`accepted` of `normalised` were); returns `accepted`.
    fn count<T>(&self, signal: SignalLabel, accepted: u64, normalised: &Normalised<T>) -> u64 {
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
