//! The collector's own metrics, served on `/metrics` in Prometheus text format.
//!
//! Every name is listed in the README ("The collector's own metrics"); they follow `plumb_<thing>_<unit>_total` for
//! counters. In: counts from the receivers, normaliser and writers. Out: the text exposition.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label naming the ClickHouse table a writer metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// Table name.
    pub table: &'static str,
}

/// Label naming the signal (traces or metrics) an ingest metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    /// `spans` or `metric_points`.
    pub signal: &'static str,
}

/// All counters and gauges the collector reports.
#[derive(Debug)]
pub struct Telemetry {
    registry: Registry,
    /// Items received, before validation.
    pub received: Family<SignalLabel, Counter>,
    /// Items accepted.
    pub accepted: Family<SignalLabel, Counter>,
    /// Items rejected (bad ids, timestamps) or refused (back-pressure).
    pub rejected: Family<SignalLabel, Counter>,
    /// Items whose resource had no `service.name`.
    pub unknown_service: Family<SignalLabel, Counter>,
    /// Spans folded into the overflow operation by the per-service cap.
    pub operations_overflowed: Counter,
    /// Attributes dropped by the per-span attribute limit.
    pub attributes_dropped: Counter,
    /// Attribute values cut to the length limit.
    pub values_truncated: Counter,
    /// Requests refused whole (malformed, too large, wrong type, back-pressure).
    pub requests_refused: Counter,
    /// Rows written to ClickHouse.
    pub rows_written: Family<TableLabel, Counter>,
    /// Failed writes (each retried).
    pub write_errors: Family<TableLabel, Counter>,
    /// Duration of each histogram flush and batch write.
    pub flush_duration: Family<TableLabel, Histogram>,
    /// Batches waiting for the writers, by table.
    pub queue_depth: Family<TableLabel, Gauge>,
    /// Aggregation keys held in memory, by the table they are flushed to.
    pub aggregates_held: Family<TableLabel, Gauge>,
    /// Bytes in the disk spool.
    pub spool_bytes: Gauge,
    /// Batches saved to the spool after a failed write, by table.
    pub batches_spooled: Family<TableLabel, Counter>,
    /// Spooled batches written to ClickHouse, by table.
    pub batches_replayed: Family<TableLabel, Counter>,
    /// Journal syncs to disk.
    pub journal_syncs: Counter,
    /// Bytes in the journal.
    pub journal_bytes: Gauge,
    /// Requests read back from the journal at start-up and written again.
    pub journal_requests_replayed: Counter,
    /// Traces held in the trace window.
    pub traces_held: Gauge,
    /// Spans held in the trace window.
    pub trace_spans_held: Gauge,
    /// Traces analysed for the breakdown.
    pub traces_analysed: Counter,
    /// Traces analysed before their window ended because the window was full.
    pub traces_cut_short: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("plumb");
        let received = Family::<SignalLabel, Counter>::default();
        let accepted = Family::<SignalLabel, Counter>::default();
        let rejected = Family::<SignalLabel, Counter>::default();
        let unknown_service = Family::<SignalLabel, Counter>::default();
        let operations_overflowed = Counter::default();
        let requests_refused = Counter::default();
        let attributes_dropped = Counter::default();
        let values_truncated = Counter::default();
        let rows_written = Family::<TableLabel, Counter>::default();
        let write_errors = Family::<TableLabel, Counter>::default();
        let flush_duration = Family::<TableLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 16))) as fn() -> Histogram,
        );
        let queue_depth = Family::<TableLabel, Gauge>::default();
        let aggregates_held = Family::<TableLabel, Gauge>::default();
        let spool_bytes = Gauge::default();
        let batches_spooled = Family::<TableLabel, Counter>::default();
        let batches_replayed = Family::<TableLabel, Counter>::default();
        let journal_syncs = Counter::default();
        let journal_bytes = Gauge::default();
        let journal_requests_replayed = Counter::default();
        let traces_held = Gauge::default();
        let trace_spans_held = Gauge::default();
        let traces_analysed = Counter::default();
        let traces_cut_short = Counter::default();
        registry.register(
            "received",
            "Items received over OTLP, by signal",
            received.clone(),
        );
        registry.register("accepted", "Items accepted, by signal", accepted.clone());
        registry.register(
            "rejected",
            "Items rejected or refused, by signal",
            rejected.clone(),
        );
        registry.register(
            "unknown_service",
            "Items without a service.name, filed under unknown_service",
            unknown_service.clone(),
        );
        registry.register(
            "operations_overflowed",
            "Spans folded into the [overflow] operation by the per-service operation cap",
            operations_overflowed.clone(),
        );
        registry.register(
            "attributes_dropped",
            "Attributes dropped by the per-span (and per-resource) attribute limit",
            attributes_dropped.clone(),
        );
        registry.register(
            "attribute_values_truncated",
            "Attribute values cut to the length limit",
            values_truncated.clone(),
        );
        registry.register(
            "requests_refused",
            "OTLP requests refused whole (malformed, too large, wrong content type, back-pressure)",
            requests_refused.clone(),
        );
        registry.register(
            "rows_written",
            "Rows written to ClickHouse, by table",
            rows_written.clone(),
        );
        registry.register(
            "write_errors",
            "Failed ClickHouse writes (retried), by table",
            write_errors.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time taken by each ClickHouse write, by table",
            flush_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Batches waiting for the ClickHouse writers",
            queue_depth.clone(),
        );
        registry.register(
            "aggregates_held",
            "Aggregates held in memory until the next flush, by table",
            aggregates_held.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes in the disk spool",
            spool_bytes.clone(),
        );
        registry.register(
            "batches_spooled",
            "Batches saved to the disk spool after a failed ClickHouse write, by table",
            batches_spooled.clone(),
        );
        registry.register(
            "batches_replayed",
            "Spooled batches written to ClickHouse, by table",
            batches_replayed.clone(),
        );
        registry.register(
            "journal_syncs",
            "Syncs of the journal to disk",
            journal_syncs.clone(),
        );
        registry.register(
            "journal_bytes",
            "Bytes in the journal (requests not yet safe in ClickHouse or the spool)",
            journal_bytes.clone(),
        );
        registry.register(
            "journal_requests_replayed",
            "Requests read back from the journal at start-up and written again",
            journal_requests_replayed.clone(),
        );
        registry.register(
            "traces_held",
            "Traces held in the trace window, waiting to be analysed",
            traces_held.clone(),
        );
        registry.register(
            "trace_spans_held",
            "Spans held in the trace window",
            trace_spans_held.clone(),
        );
        registry.register(
            "traces_analysed",
            "Traces analysed for the endpoint breakdown",
            traces_analysed.clone(),
        );
        registry.register(
            "traces_cut_short",
            "Traces analysed before their window ended because the trace window was full",
            traces_cut_short.clone(),
        );
        Self {
            registry,
            received,
            accepted,
            rejected,
            unknown_service,
            operations_overflowed,
            attributes_dropped,
            values_truncated,
            requests_refused,
            rows_written,
            write_errors,
            flush_duration,
            queue_depth,
            aggregates_held,
            spool_bytes,
            batches_spooled,
            batches_replayed,
            journal_syncs,
            journal_bytes,
            journal_requests_replayed,
            traces_held,
            trace_spans_held,
            traces_analysed,
            traces_cut_short,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Labels for the two signals.
pub const SPANS: SignalLabel = SignalLabel { signal: "spans" };
/// Label for metric data points.
pub const METRIC_POINTS: SignalLabel = SignalLabel {
    signal: "metric_points",
};
