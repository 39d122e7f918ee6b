//! Start-up recovery: what a stopped or crashed collector left in the journal is written to
//! ClickHouse (or the spool) before new requests are taken.
//!
//! It sits beside the wiring and calls the stages downward: the journal hands over its leftover
//! generations, the pipeline rebuilds each record, the writers' destination writes the rows.
//! Each generation's requests are normalised again and aggregated apart from live traffic; the
//! histograms are written as the flush the generation had (same cut, treated as possibly
//! written), so minutes that reached ClickHouse before the crash are skipped; the span and metric
//! rows are written for the records the generation's `.rows` file does not list as written,
//! unless ClickHouse already holds a record's first span (its `INSERT` was in flight at the
//! crash). The trace window is not fed: the breakdown of requests in flight at a crash is lost.

use crate::aggregate::Aggregator;
use crate::journal::{Journal, JournalTelemetry, Leftover, read_records};
use crate::pipeline::Pipeline;
use crate::store::lookup::is_stored;
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
    /// Requests whose rows were found in ClickHouse already (their write was in flight at the
    /// crash) and not written again.
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
        let records = read_records(&leftover.path)?;
        let aggregator = Aggregator::new();
        let (mut spans, mut metrics) = (Vec::new(), Vec::new());
        for (index, (kind, payload)) in (0u32..).zip(records.iter()) {
            let with_rows = !leftover.rows_written.contains(&index);
            let replayed = pipeline.replay(kind, payload, &aggregator, with_rows);
            if let Some(probe) = &replayed.probe
                && is_stored(&to.store, probe).await
            {
                summary.found_stored += 1;
                continue;
            }
            spans.extend(replayed.spans);
            metrics.extend(replayed.metrics);
        }
        let cut = journal.cut_id(leftover.generation);
        if let Some(flush) = FlushBatch::of_cut(cut, &aggregator, true) {
            to.write_or_spool(&[flush], None, settings).await;
        }
        summary.spans += spans.iter().map(|b| b.rows).sum::<usize>();
        write_in_batches(to, &spans, settings).await;
        write_in_batches(to, &metrics, settings).await;
        journal.remove(leftover.generation);
        summary.generations += 1;
        summary.requests += records.count();
        telemetry.requests_replayed.inc_by(records.count() as u64);
    }
    Ok(summary)
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
