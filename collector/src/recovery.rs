//! Start-up recovery: what a stopped or crashed collector left in the journal is written to
//! ClickHouse (or the spool) before new requests are taken.
//!
//! It sits beside the wiring and calls the stages downward: the journal hands over its leftover
//! generations, the pipeline rebuilds each record, the writers' destination writes the rows.
//! Each generation's requests are normalised again and aggregated apart from live traffic; the
//! histograms are written as the flush the generation had (same cut, treated as possibly
//! written), so minutes that reached ClickHouse before the crash are skipped; the span and metric
//! and metric rows are written for the records the generation's `.rows` file does not list as
//! written, leaving out what ClickHouse holds already (`RowBatch::unstored`: an `INSERT` in
//! flight at the crash may have landed); when ClickHouse cannot say, they go to the spool, whose
//! replay looks again. The trace window is not fed: the breakdown of requests in flight at a
//! crash is lost.

use crate::aggregate::Aggregator;
use crate::journal::{Journal, JournalTelemetry, Leftover};
use crate::pipeline::Pipeline;
use crate::store::write::{Destination, FlushBatch, RowBatch, WriterSettings};

/// What a recovery wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RecoverySummary {
    /// Generations replayed.
    pub(crate) generations: usize,
    /// Requests read back.
    pub(crate) requests: usize,
    /// Spans whose rows were written again.
    pub(crate) spans: usize,
    /// Metric points written again.
    pub(crate) points: usize,
    /// Requests whose rows were all found in ClickHouse already (their write was in flight at
    /// the crash) and not written again.
    pub(crate) found_stored: usize,
}

/// Writes every leftover generation, oldest first, and removes its files. A write ClickHouse
/// refuses goes to the spool; with the spool full, it is retried until it succeeds.
pub(crate) async fn recover(
    journal: &Journal,
    leftovers: Vec<Leftover>,
    pipeline: &Pipeline,
    to: &Destination,
    settings: &WriterSettings,
    telemetry: &JournalTelemetry,
) -> std::io::Result<RecoverySummary> {
    let mut summary = RecoverySummary::default();
    for leftover in leftovers {
        let records = leftover.records()?;
        let aggregator = Aggregator::new();
        let (mut spans, mut metrics) = (Vec::new(), Vec::new());
        for (index, (kind, payload)) in (0u32..).zip(records.iter()) {
            let with_rows = !leftover.rows_written.contains(&index);
            let replayed = pipeline.replay(kind, payload, &aggregator, with_rows);
            spans.extend(replayed.spans);
            metrics.extend(replayed.metrics);
        }
        let cut = journal.cut_id(leftover.generation);
        if let Some(flush) = FlushBatch::of_cut(cut, &aggregator, true) {
            to.write_or_spool(&[flush], None, settings).await;
        }
        let (span_rows, found_spans) = write_unstored(to, spans, settings).await;
        let (points, found_points) = write_unstored(to, metrics, settings).await;
        summary.spans += span_rows;
        summary.points += points;
        summary.found_stored += found_spans + found_points;
        journal.remove(leftover.generation);
        summary.generations += 1;
        summary.requests += records.count();
        telemetry.requests_replayed.inc_by(records.count() as u64);
    }
    Ok(summary)
}

/// Writes what ClickHouse does not hold of `batches` (one per request); returns the rows written
/// (or spooled) and how many requests were found stored whole. When ClickHouse cannot say, all
/// of them are spooled (the spool's replay looks them up).
async fn write_unstored<B: RowBatch>(
    to: &Destination,
    batches: Vec<B>,
    settings: &WriterSettings,
) -> (usize, usize) {
    let unstored = match B::unstored(&to.store, &batches).await {
        Ok(unstored) => unstored,
        Err(e) => {
            let rows = batches.iter().map(RowBatch::row_count).sum();
            if !to.spool_batches(&batches, &e) {
                tracing::warn!(table = B::TABLE, error = %e, "could not look up replayed rows and the spool is full; writing them again");
                write_in_batches(to, &batches, settings).await;
            }
            return (rows, 0);
        }
    };
    let found = batches.len().saturating_sub(unstored.len());
    write_in_batches(to, &unstored, settings).await;
    (unstored.iter().map(RowBatch::row_count).sum(), found)
}

/// Writes `batches` in `INSERT`s of about `settings.batch_rows` rows.
async fn write_in_batches<B: RowBatch>(to: &Destination, batches: &[B], settings: &WriterSettings) {
    let mut start = 0;
    while start < batches.len() {
        let mut end = start;
        let mut rows = 0;
        while end < batches.len() && (end == start || rows < settings.batch_rows) {
            rows += batches[end].row_count();
            end += 1;
        }
        to.write_or_spool(&batches[start..end], None, settings)
            .await;
        start = end;
    }
}
