//! Replay at start-up: the generations a stopped or crashed collector left in the journal are
//! written to ClickHouse (or the spool) before new requests are taken.
//!
//! Each generation's requests are normalised again and aggregated apart from live traffic; the
//! histograms are written as the flush the generation had (same id, treated as possibly
//! written), so minutes that reached ClickHouse before the crash are skipped; the span and metric
//! rows are written unless the generation's `.rows` marker says they already were. The trace
//! window is not fed: the breakdown of requests in flight at a crash is lost.

use super::{Journal, Leftover, read_records};
use crate::aggregate::{Aggregator, Flushable};
use crate::pipeline::{Pipeline, Replayed};
use crate::store::writer::{Destination, FlushBatch, RowBatch, WriterSettings};

/// What a replay wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Generations replayed.
    pub generations: usize,
    /// Requests read back.
    pub requests: usize,
    /// Spans whose rows were written again.
    pub spans: usize,
}

/// Writes every leftover generation, oldest first, and removes its file. A write ClickHouse
/// refuses goes to the spool; with the spool full, it is retried until it succeeds.
pub async fn replay(
    journal: &Journal,
    leftovers: Vec<Leftover>,
    pipeline: &Pipeline,
    to: &Destination,
    settings: &WriterSettings,
) -> std::io::Result<ReplaySummary> {
    let mut summary = ReplaySummary::default();
    for leftover in leftovers {
        let records = read_records(&leftover.path)?;
        let aggregator = Aggregator::new();
        let mut rows = Replayed::default();
        for (kind, payload) in &records {
            pipeline.replay(*kind, payload, &aggregator, &mut rows);
        }
        if let Some(flush) =
            FlushBatch::with_id(journal.flush_id(leftover.generation), &aggregator, true)
        {
            to.write_or_spool(Aggregator::TABLE, &[flush], None, settings)
                .await;
        }
        if !leftover.rows_written {
            summary.spans += rows.spans.iter().map(|b| b.rows).sum::<usize>();
            write_in_batches(to, "spans", &rows.spans, settings).await;
            write_in_batches(to, "metrics", &rows.metrics, settings).await;
        }
        journal.remove(leftover.generation);
        summary.generations += 1;
        summary.requests += records.len();
        to.telemetry
            .journal_requests_replayed
            .inc_by(records.len() as u64);
    }
    Ok(summary)
}

/// Writes `batches` in `INSERT`s of about `settings.batch_rows` rows.
async fn write_in_batches<B: RowBatch>(
    to: &Destination,
    table: &'static str,
    batches: &[B],
    settings: &WriterSettings,
) {
    let mut start = 0;
    while start < batches.len() {
        let mut end = start;
        let mut rows = 0;
        while end < batches.len() && (end == start || rows < settings.batch_rows) {
            rows += batches[end].row_count();
            end += 1;
        }
        to.write_or_spool(table, &batches[start..end], None, settings)
            .await;
        start = end;
    }
}
