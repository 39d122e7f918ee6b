//! The small part of the collector's insides that other crates' tests and benchmarks may use:
//! the shared test harness (`plumb-test-support`) starts ClickHouse with the same code as the
//! collector, the benchmarks drive the hot path and the query service without sockets, and the
//! storage tests seed rows and write one flush again. Everything else is private to the crate;
//! its own unit tests (including the fuzz targets and the current-ClickHouse compatibility test)
//! live beside the code.

use crate::aggregate::Aggregator;
use crate::aggregate::component_time::BreakdownAggregator;
use crate::model::{Named, Span, SpanKind};
use crate::normalise::{NameLimiter, SpanLimits, normalise_traces};
use crate::store::rows::EncodedRows;
use crate::store::write::{FlushBatch, Flushable, RowBatch};
use crate::trace_analysis::window::{TraceAssembler, WindowTelemetry};
use bumpalo::Bump;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::aggregate::histogram::LatencyHistogram;
pub use crate::clock::{now_unix_ns, now_unix_s};
pub use crate::query::api::QueryApi;
pub use crate::store::local_server::{
    LocalClickHouse, LocalServerError, PartCompression, ServerBinary,
};
pub use crate::store::rows::{BreakdownRow, LatencyRow};
pub use crate::store::schema::{
    BREAKDOWN_MINUTE, LATENCY_MINUTE, migrate, migrations, server_major,
};
pub use crate::store::{Store, StoreConfig, StoreError};

/// The settings of a collector started with no options: the defaults `--help` shows.
pub(crate) fn defaults() -> crate::config::Settings {
    match crate::config::load(["plumb-collector"]) {
        Ok(settings) => settings,
        Err(e) => unreachable!("the defaults are valid: {e}"),
    }
}

/// The query service over `store`, with the default apdex thresholds.
pub fn query_api(store: Store) -> QueryApi {
    QueryApi::new(store, defaults().apdex, None)
}

/// The query service over `store`, with the apdex thresholds that these collector flags give
/// (`--apdex-threshold`, `--apdex-thresholds`).
pub fn query_api_with_flags(
    store: Store,
    flags: &[&str],
) -> Result<QueryApi, crate::config::ConfigError> {
    let settings =
        crate::config::load(std::iter::once("plumb-collector").chain(flags.iter().copied()))?;
    Ok(QueryApi::new(store, settings.apdex, None))
}

/// The ingest hot path without sockets, queues or ClickHouse: read a request in place and
/// normalise it, aggregate its spans, encode their rows and, with the breakdown on, hold them in
/// the trace window and analyse them at once (as if their window had ended).
#[derive(Debug)]
pub struct HotPath {
    limits: SpanLimits,
    operations: NameLimiter,
    aggregator: Aggregator,
    traces: Option<TraceAssembler>,
}

impl HotPath {
    /// With the default limits; `breakdown` adds the trace window and the analysis.
    pub fn new(breakdown: bool) -> Self {
        let settings = defaults();
        let traces = settings.traces.filter(|_| breakdown).map(|window| {
            TraceAssembler::new(
                window,
                Arc::new(BreakdownAggregator::new()),
                Arc::new(WindowTelemetry::default()),
            )
        });
        Self {
            limits: settings.pipeline.limits,
            operations: NameLimiter::new(settings.pipeline.max_operations_per_service),
            aggregator: Aggregator::new(),
            traces,
        }
    }

    /// Normalises one encoded `ExportTraceServiceRequest`; returns the spans accepted.
    pub fn normalise(&self, request: &[u8]) -> usize {
        let mut attributes = Vec::new();
        let arena = Bump::new();
        normalise_traces(
            request,
            &mut attributes,
            &arena,
            self.limits,
            &self.operations,
            now_unix_ns(),
        )
        .map_or(0, |n| n.accepted.len())
    }

    /// Normalises, aggregates, encodes (and, with the breakdown, analyses) one request; returns
    /// the bytes of span rows encoded.
    pub fn ingest(&self, request: &[u8]) -> usize {
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let Ok(normalised) = normalise_traces(
            request,
            &mut attributes,
            &arena,
            self.limits,
            &self.operations,
            now_unix_ns(),
        ) else {
            return 0;
        };
        self.aggregator.record(&normalised.accepted);
        if let Some(traces) = &self.traces {
            traces.add(&normalised.accepted);
            traces.sweep(Instant::now() + Duration::from_secs(3600));
        }
        EncodedRows::spans(&normalised.accepted).bytes.len()
    }

    /// Takes the aggregates (so memory does not grow between benchmark runs); returns the rows.
    pub fn take_aggregates(&self) -> usize {
        self.aggregator.take().len()
    }
}

/// Saves `payload` in the spool folder `dir` as one segment for `table`, whole and with a valid
/// checksum, as a writer does after a failed write; the collector started on that folder writes
/// it (or sets it aside) first.
pub fn spool_segment(dir: &std::path::Path, table: &str, payload: &[u8]) -> Result<(), String> {
    let spool = crate::store::spool::Spool::open(dir, u64::MAX).map_err(|e| e.to_string())?;
    spool.save(table, payload).map_err(|e| e.to_string())
}

/// The `spans` rows of one encoded `ExportTraceServiceRequest`, normalised with the default
/// limits and encoded as the span writer encodes them.
fn span_rows(request: &[u8]) -> Result<EncodedRows, String> {
    let settings = defaults();
    let operations = NameLimiter::new(settings.pipeline.max_operations_per_service);
    let mut attributes = Vec::new();
    let arena = Bump::new();
    let normalised = normalise_traces(
        request,
        &mut attributes,
        &arena,
        settings.pipeline.limits,
        &operations,
        now_unix_ns(),
    )
    .map_err(|e| e.to_string())?;
    Ok(EncodedRows::spans(&normalised.accepted))
}

/// The spool payload of the `spans` rows of one encoded `ExportTraceServiceRequest`, as the span
/// writer spools them.
pub fn spooled_spans(request: &[u8]) -> Result<Vec<u8>, String> {
    Ok(EncodedRows::to_spool(&[span_rows(request)?]))
}

/// Writes the `spans` rows of encoded `ExportTraceServiceRequest`s in one insert, as the span
/// writer does; the number of rows written.
pub async fn insert_spans(store: &Store, requests: &[Vec<u8>]) -> Result<usize, String> {
    let batches = requests
        .iter()
        .map(|request| span_rows(request))
        .collect::<Result<Vec<_>, _>>()?;
    <EncodedRows as crate::store::write::RowBatch>::insert(store, &batches)
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches.iter().map(|b| b.rows).sum())
}

/// A spool payload for the `spans` table that claims one row but holds three bytes: its
/// checksum is valid, but ClickHouse refuses the rows for good.
pub fn spooled_spans_clickhouse_refuses() -> Vec<u8> {
    EncodedRows::to_spool(&[EncodedRows {
        columns: crate::store::rows::SPAN_COLUMNS,
        rows: 1,
        bytes: bytes::Bytes::from_static(&[1, 2, 3]),
    }])
}

/// Writes `days` days of checks for `probes` probes (1,440 checks a day each, one in a hundred
/// failed, one rollup row per probe and day) ending at `now`, as the uptime benchmark's history.
pub async fn seed_probe_history(
    store: &Store,
    probes: usize,
    days: u32,
    now_unix_s: u32,
) -> Result<(), StoreError> {
    use crate::alerting::store::ProbeMinuteRow;
    let today = now_unix_s - now_unix_s % 86_400;
    let mut rows = Vec::with_capacity(probes);
    for day in 0..days {
        rows.clear();
        for p in 0..probes {
            rows.push(ProbeMinuteRow {
                minute: today - day * 86_400,
                probe: format!("probe-{p}"),
                location: "local".into(),
                checks: 1440,
                failures: 14,
                duration_sum_us: 1440 * 2000,
                buckets: vec![1000, 2000, 5000],
                counts: vec![700, 700, 40],
            });
        }
        store
            .insert(crate::store::schema::PROBE_MINUTE, &rows)
            .await?;
    }
    Ok(())
}

/// One SERVER span's timing, for [`write_latency_flush`].
#[derive(Clone, Debug)]
pub struct ServerSpan {
    /// Service.
    pub service: String,
    /// Operation.
    pub operation: String,
    /// Start, ns since the epoch.
    pub start_unix_ns: u64,
    /// Duration, ns.
    pub duration_ns: u64,
}

/// Aggregates `spans` into one latency flush and writes that same flush `times` times in a row,
/// as the collector does when a write's answer is lost and it tries again.
pub async fn write_latency_flush(
    store: &Store,
    spans: &[ServerSpan],
    times: usize,
) -> Result<(), StoreError> {
    let aggregator = Aggregator::new();
    let spans: Vec<Span<'_>> = spans
        .iter()
        .map(|s| Span {
            endpoint: Named::new(&s.service, &s.operation),
            name: &s.operation,
            kind: SpanKind::Server,
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: [0; 8],
            start_unix_ns: s.start_unix_ns,
            duration_ns: s.duration_ns,
            status_code: 0,
            status_message: "",
            http_status_code: 200,
            is_error: false,
            attributes: &[],
            resource: Arc::default(),
        })
        .collect();
    aggregator.record(&spans);
    let Some(batch) = FlushBatch::<Aggregator>::take(&aggregator) else {
        return Ok(());
    };
    for _ in 0..times {
        FlushBatch::insert(store, std::slice::from_ref(&batch)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_flush_goes_to_the_latency_table() {
        assert_eq!(<Aggregator as Flushable>::TABLE, LATENCY_MINUTE);
        assert_eq!(<BreakdownAggregator as Flushable>::TABLE, BREAKDOWN_MINUTE);
    }

    #[test]
    fn the_hot_path_takes_a_request() {
        let path = HotPath::new(true);
        let request = plumb_loadgen::Workload::new(plumb_loadgen::WorkloadShape {
            services: 1,
            endpoints_per_service: 2,
            spans_per_request: 20,
            seed: 1,
        })
        .request();
        let bytes = prost::Message::encode_to_vec(&request);
        assert_eq!(path.normalise(&bytes), 20);
        assert!(path.ingest(&bytes) > 0);
        assert!(path.take_aggregates() > 0);
    }
}
