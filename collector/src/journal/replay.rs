//! Replay at start-up: the generations a stopped or crashed collector left in the journal are
//! written to ClickHouse (or the spool) before new requests are taken.
//!
//! Each generation's requests are normalised again and aggregated apart from live traffic; the
//! histograms are written as the flush the generation had (same id, treated as possibly
//! written), so minutes that reached ClickHouse before the crash are skipped; the span and metric
//! rows are written for the records the generation's `.rows` file does not list as written,
//! unless ClickHouse already holds a record's first span (its `INSERT` was in flight at the
//! crash). The trace window is not fed: the breakdown of requests in flight at a crash is lost.

use super::{Journal, Leftover, read_records};
use crate::aggregate::{Aggregator, Flushable};
use crate::pipeline::{Pipeline, SpanKey};
use crate::store::Store;
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
    /// Requests whose rows were found in ClickHouse already (their write was in flight at the
    /// crash) and not written again.
    pub found_stored: usize,
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
        let (mut spans, mut metrics) = (Vec::new(), Vec::new());
        for (index, (kind, payload)) in (0u32..).zip(records.iter()) {
            let with_rows = !leftover.rows_written.contains(&index);
            let replayed = pipeline.replay(kind, payload, &aggregator, with_rows);
            if let Some(probe) = &replayed.probe
                && stored(to, probe).await
            {
                summary.found_stored += 1;
                continue;
            }
            spans.extend(replayed.spans);
            metrics.extend(replayed.metrics);
        }
        if let Some(flush) =
            FlushBatch::with_id(journal.flush_id(leftover.generation), &aggregator, true)
        {
            to.write_or_spool(Aggregator::TABLE, &[flush], None, settings)
                .await;
        }
        summary.spans += spans.iter().map(|b| b.rows).sum::<usize>();
        write_in_batches(to, "spans", &spans, settings).await;
        write_in_batches(to, "metrics", &metrics, settings).await;
        journal.remove(leftover.generation);
        summary.generations += 1;
        summary.requests += records.count();
        to.telemetry
            .journal_requests_replayed
            .inc_by(records.count() as u64);
    }
    Ok(summary)
}

/// Whether the span `key` is in the `spans` table already (a request's rows go in one `INSERT`,
/// so its first span stands for all). When ClickHouse cannot say, the rows are written again.
async fn stored(to: &Destination, key: &SpanKey) -> bool {
    stored_query(&to.store, key)
        .fetch_one::<u64>()
        .await
        .map_err(
            |e| tracing::warn!(error = %e, "could not look up replayed rows; writing them again"),
        )
        .is_ok_and(|n| n > 0)
}

/// The query that counts the spans stored with `key` (by the table's sort key, so it reads
/// little).
pub fn stored_query(store: &Store, key: &SpanKey) -> clickhouse::query::Query {
    store
        .client()
        .query(
            "SELECT count() AS stored FROM spans WHERE service = ? AND operation = ? \
             AND timestamp = toDateTime(?) AND start_time_ns = ? \
             AND reinterpretAsUInt64(span_id) = ?",
        )
        .bind(&key.service)
        .bind(&key.operation)
        .bind(key.start_unix_ns / 1_000_000_000)
        .bind(key.start_unix_ns)
        .bind(u64::from_le_bytes(key.span_id))
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
