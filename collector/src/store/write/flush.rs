//! The aggregate flushers: every `flush_interval` the in-memory aggregates ([`Flushable`]: the
//! latency histograms, the breakdown) are taken as one [`FlushBatch`] and written.
//!
//! A flush can be written again without counting twice: each minute it holds is written together
//! with a marker row (in the same `INSERT`, so in the same part of that minute's partition), and
//! a retry first asks which minutes already carry its marker and writes only the others. A flush
//! that fails is retried as the same batch while newer aggregates wait in memory; at shutdown,
//! what cannot be written is spooled with its id and written after the next start. With a
//! journal, the aggregates are taken inside a journal cut (`ack::Cut`), so a flush holds exactly
//! one journal segment's requests, is named after the cut, and is reported safe to it.

use super::WriterSettings;
use super::batch::{RowBatch, WritePolicy};
use super::destination::Destination;
use crate::ack::{Cut, CutId};
use crate::store::{ErrorClass, Store, StoreError};
use crate::telemetry::TableLabel;
use clickhouse::{RowOwned, RowWrite};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Prefix of the operation name of flush markers (rows with an empty service).
pub(crate) const FLUSH_MARKER_PREFIX: &str = "plumb-flush-";

/// In-memory aggregates that a flusher takes as rows every interval. Their table has a `minute`
/// column and a `service` and `operation`, so that a flush can mark the minutes it wrote.
pub(crate) trait Flushable: Send + Sync + 'static {
    /// The row type of the table they are written to.
    type Row: RowOwned
        + RowWrite
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The table.
    const TABLE: &'static str;
    /// Takes every aggregate as a row, leaving the aggregator empty.
    fn take(&self) -> Vec<Self::Row>;
    /// Number of keys held.
    fn held(&self) -> usize;
    /// The minute a row belongs to (seconds since the epoch).
    fn minute(row: &Self::Row) -> u32;
    /// A row that adds nothing and records that flush `flush` wrote `minute`: empty service,
    /// the flush id as operation, all counts zero.
    fn marker(flush: &str, minute: u32) -> Self::Row;
}

/// One flush of aggregates, safe to write again (see the module comment).
pub(crate) struct FlushBatch<A: Flushable> {
    id: String,
    rows: Vec<A::Row>,
    /// Whether a write was attempted (only then can some minutes already be written).
    tried: AtomicBool,
}

impl<A: Flushable> Clone for FlushBatch<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            rows: self.rows.clone(),
            tried: AtomicBool::new(self.tried.load(Ordering::Relaxed)),
        }
    }
}

impl<A: Flushable> FlushBatch<A> {
    /// `rows` as a flush named `id`, which may already have been written (`maybe_written`: a
    /// journal replay) or not; `None` when there are no rows.
    fn new(id: String, rows: Vec<A::Row>, maybe_written: bool) -> Option<Self> {
        (!rows.is_empty()).then(|| Self {
            id,
            rows,
            tried: AtomicBool::new(maybe_written),
        })
    }

    /// Takes everything `aggregates` holds as a new flush with a fresh id.
    pub(crate) fn take(aggregates: &A) -> Option<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = crate::clock::now_unix_ns()
            ^ NEXT.fetch_add(1, Ordering::Relaxed)
            ^ (u64::from(std::process::id()) << 40);
        Self::new(
            format!("{FLUSH_MARKER_PREFIX}{unique:016x}"),
            aggregates.take(),
            false,
        )
    }

    /// Takes everything `aggregates` holds as the flush of journal cut `cut`, which may have been
    /// written before a crash (the start-up recovery writes it again).
    pub(crate) fn of_cut(cut: CutId, aggregates: &A, maybe_written: bool) -> Option<Self> {
        Self::new(cut_flush_id(cut), aggregates.take(), maybe_written)
    }

    async fn write(&self, store: &Store) -> Result<(), StoreError> {
        let table = A::TABLE;
        let written: Vec<u32> = if self.tried.swap(true, Ordering::Relaxed) {
            // The table name is a constant of Plumb's schema; the flush id is bound.
            store
                .client()
                .query(&format!(
                    "SELECT DISTINCT toUInt32(minute) FROM {table} WHERE service = '' AND operation = ?"
                ))
                .bind(&self.id)
                .fetch_all()
                .await
                .map_err(StoreError::clickhouse(format!(
                    "check flush markers in {table}"
                )))?
        } else {
            // A first attempt: nothing of this flush can be there yet.
            Vec::new()
        };
        let minutes: std::collections::BTreeSet<u32> = self
            .rows
            .iter()
            .map(A::minute)
            .filter(|m| !written.contains(m))
            .collect();
        if minutes.is_empty() {
            return Ok(());
        }
        let markers: Vec<A::Row> = minutes.iter().map(|m| A::marker(&self.id, *m)).collect();
        let mut rows: Vec<&A::Row> = Vec::with_capacity(self.rows.len() + markers.len());
        for row in &self.rows {
            if minutes.contains(&A::minute(row)) {
                rows.push(row);
            }
        }
        rows.extend(&markers);
        store.insert(table, rows).await
    }
}

/// The flush id of a journal cut.
fn cut_flush_id(cut: CutId) -> String {
    format!("{FLUSH_MARKER_PREFIX}{:016x}-{}", cut.origin, cut.sequence)
}

/// A flush as spooled: its id (so a replay stays idempotent) and its rows.
#[derive(Serialize, serde::Deserialize)]
struct SpooledFlush<R> {
    id: String,
    rows: Vec<R>,
}

impl<A: Flushable> RowBatch for FlushBatch<A> {
    const TABLE: &'static str = A::TABLE;
    const POLICY: WritePolicy = WritePolicy::WaitForAnswer;

    fn row_count(&self) -> usize {
        self.rows.len()
    }

    fn to_spool(batches: &[Self]) -> Vec<u8> {
        let flushes: Vec<SpooledFlush<&A::Row>> = batches
            .iter()
            .map(|b| SpooledFlush {
                id: b.id.clone(),
                rows: b.rows.iter().collect(),
            })
            .collect();
        serde_json::to_vec(&flushes).unwrap_or_default()
    }

    fn from_spool(payload: &[u8]) -> Option<Vec<Self>> {
        let flushes: Vec<SpooledFlush<A::Row>> = serde_json::from_slice(payload).ok()?;
        Some(
            flushes
                .into_iter()
                .map(|f| FlushBatch {
                    id: f.id,
                    rows: f.rows,
                    // It may have been written before it was spooled.
                    tried: AtomicBool::new(true),
                })
                .collect(),
        )
    }

    async fn insert(store: &Store, batches: &[Self]) -> Result<(), StoreError> {
        for batch in batches {
            batch.write(store).await?;
        }
        Ok(())
    }
}

/// A flush waiting to be written, and the journal cut it holds (if any).
struct PendingFlush<A: Flushable> {
    batch: Option<FlushBatch<A>>,
    cut: Option<CutId>,
}

/// Takes the aggregates as a flush: inside a cut of `journal` when there is one (the flush is
/// named after the cut); if the journal cannot start a new segment, nothing is taken now.
fn take_flush<A: Flushable>(aggregates: &A, journal: Option<&dyn Cut>) -> Option<PendingFlush<A>> {
    let Some(journal) = journal else {
        return Some(PendingFlush {
            batch: FlushBatch::take(aggregates),
            cut: None,
        });
    };
    let mut rows = Vec::new();
    match journal.cut(&mut || rows = aggregates.take()) {
        Ok(cut) => Some(PendingFlush {
            batch: FlushBatch::new(cut_flush_id(cut), rows, false),
            cut: Some(cut),
        }),
        Err(e) => {
            tracing::error!(error = %e, "the journal cannot start a new segment; aggregates stay in memory");
            None
        }
    }
}

/// Flushes `aggregates` every `settings.flush_interval` until `stop` is cancelled, then
/// everything within `settings.shutdown_timeout` (see the module comment).
pub(crate) async fn run_flusher<A: Flushable>(
    to: Destination,
    aggregates: Arc<A>,
    journal: Option<Arc<dyn Cut>>,
    settings: WriterSettings,
    stop: CancellationToken,
) {
    let table = A::TABLE;
    let journal = journal.as_deref();
    let safe = |cuts: &[Option<CutId>]| {
        if let Some(journal) = journal {
            cuts.iter().flatten().for_each(|c| journal.flush_safe(*c));
        }
    };
    let mut pending: Option<PendingFlush<A>> = None;
    loop {
        let mut stopping = tokio::select! {
            () = tokio::time::sleep(settings.flush_interval) => false,
            () = stop.cancelled() => true,
        };
        to.telemetry
            .aggregates_held
            .get_or_create(&TableLabel { table })
            .set(aggregates.held() as i64);
        if pending.is_none() {
            pending = take_flush(&*aggregates, journal);
        }
        if !stopping {
            // Spooled flushes first, then this one; a write is waited for until it ends or
            // shutdown begins (then it is spooled as possibly written, see below).
            let round = async {
                to.replay_spooled::<FlushBatch<A>>(&settings).await;
                match pending.as_ref().and_then(|f| f.batch.as_ref()) {
                    Some(batch) => to.attempt(std::slice::from_ref(batch), &settings).await,
                    None => Ok(()),
                }
            };
            tokio::select! {
                written = round => match written {
                    Ok(()) => {
                        if let Some(flush) = pending.take() {
                            safe(&[flush.cut]);
                        }
                    }
                    Err(e) if e.class() == ErrorClass::Permanent => {
                        if let Some(flush) = pending.take()
                            && to.set_aside(flush.batch.as_slice(), &e)
                        {
                            safe(&[flush.cut]);
                        }
                    }
                    Err(e) => tracing::warn!(
                        table, error = %e,
                        "ClickHouse write failed; the same flush is retried next time, newer aggregates wait in memory"
                    ),
                },
                () = stop.cancelled() => stopping = true,
            }
        }
        if stopping {
            let deadline = Instant::now() + settings.shutdown_timeout;
            let flushes: Vec<PendingFlush<A>> = pending
                .into_iter()
                .chain(take_flush(&*aggregates, journal))
                .collect();
            let cuts: Vec<Option<CutId>> = flushes.iter().map(|f| f.cut).collect();
            let batches: Vec<FlushBatch<A>> = flushes.into_iter().filter_map(|f| f.batch).collect();
            let written = tokio::time::timeout_at(
                deadline,
                to.write_or_spool(&batches, Some(deadline), &settings),
            )
            .await
            .unwrap_or_else(|_| {
                to.spool_batches(&batches, &"no answer before the shutdown deadline")
            });
            if written {
                safe(&cuts);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_names_its_flush_the_same_way_every_time() {
        let cut = CutId {
            origin: 0xabc,
            sequence: 7,
        };
        assert_eq!(cut_flush_id(cut), "plumb-flush-0000000000000abc-7");
        assert_eq!(cut_flush_id(cut), cut_flush_id(cut));
    }
}
