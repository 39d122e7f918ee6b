//! The ClickHouse writers: background tasks that move rows from the pipeline into storage.
//!
//! In: batches of rows from a bounded channel (spans, metric points), or in-memory aggregates
//! (latency histograms, breakdowns). Out: `INSERT`s of up to `batch_rows` rows at least every
//! `flush_interval`. A row batch ClickHouse does not take goes to the disk spool and is written
//! (oldest first) before the next batch; when the spool is full it is retried with backoff while
//! the channel fills up, which pushes back on the receivers instead of dropping anything. A flush
//! of aggregates is retried as the same batch, never counted twice. On shutdown each writer
//! drains what it holds and spools what it cannot write before its deadline.

use super::rows::{EncodedRows, SPAN_COLUMNS};
use super::spool::Spool;
use super::{Store, StoreError};
use crate::aggregate::Flushable;
use crate::journal::{Journal, Queued, RecordId};
use crate::telemetry::{TableLabel, Telemetry};
use clickhouse::{RowOwned, RowWrite};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use plumb_net::Backoff;
use tokio::time::Instant;

/// How a writer batches and how long it may keep retrying at shutdown.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Largest number of rows in one `INSERT`.
    pub batch_rows: usize,
    /// Longest time rows wait before being written.
    pub flush_interval: Duration,
    /// How long to keep retrying a failed write once shutdown has begun.
    pub shutdown_timeout: Duration,
    /// Longest one write may take before it counts as failed.
    pub write_timeout: Duration,
}

/// A group of rows for one table, as queued for a writer.
pub trait RowBatch: Send + Sync + Sized + 'static {
    /// Whether a write of these batches may be given up after `write_timeout`. A write given up
    /// may still be carried out later by a slow or frozen ClickHouse, so a retry can store the
    /// rows twice: tolerable for span and metric rows, not for histograms, whose writes are
    /// waited for (see [`FlushBatch`]).
    const MAY_GIVE_UP: bool = true;

    /// Rows in this batch.
    fn row_count(&self) -> usize;

    /// `batches` as one spool payload.
    fn to_spool(batches: &[Self]) -> Vec<u8>;

    /// The batches of a spool payload; `None` if it is not one.
    fn from_spool(payload: &[u8]) -> Option<Vec<Self>>;

    /// Writes `batches` into `table` in one `INSERT`.
    fn insert<'a>(
        store: &'a Store,
        table: &'static str,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// Typed rows, encoded by the `clickhouse` crate (spooled as JSON).
impl<T> RowBatch for Vec<T>
where
    T: RowOwned + RowWrite + Serialize + DeserializeOwned + Send + Sync,
{
    fn row_count(&self) -> usize {
        self.len()
    }

    fn to_spool(batches: &[Self]) -> Vec<u8> {
        serde_json::to_vec(batches).unwrap_or_default()
    }

    fn from_spool(payload: &[u8]) -> Option<Vec<Self>> {
        serde_json::from_slice(payload).ok()
    }

    fn insert<'a>(
        store: &'a Store,
        table: &'static str,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        store.insert(table, batches.iter().flatten())
    }
}

/// Rows already encoded as RowBinary (spans); spooled as their bytes, each batch preceded by
/// its row count and length.
impl RowBatch for EncodedRows {
    fn row_count(&self) -> usize {
        self.rows
    }

    fn to_spool(batches: &[Self]) -> Vec<u8> {
        let mut out = Vec::new();
        for batch in batches {
            out.extend_from_slice(&(batch.rows as u64).to_le_bytes());
            out.extend_from_slice(&(batch.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&batch.bytes);
        }
        out
    }

    fn from_spool(mut payload: &[u8]) -> Option<Vec<Self>> {
        let mut batches = Vec::new();
        while !payload.is_empty() {
            let rows = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
            let len = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
            let end = 16usize.checked_add(usize::try_from(len).ok()?)?;
            batches.push(EncodedRows {
                columns: SPAN_COLUMNS,
                rows: usize::try_from(rows).ok()?,
                bytes: bytes::Bytes::copy_from_slice(payload.get(16..end)?),
            });
            payload = &payload[end..];
        }
        Some(batches)
    }

    fn insert<'a>(
        store: &'a Store,
        table: &'static str,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        let columns = batches.first().map_or("", |b| b.columns);
        store.insert_encoded(table, columns, batches.iter().map(|b| b.bytes.clone()))
    }
}

/// How a writer waits between retries of a write ClickHouse refused while the spool is full.
const RETRY_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_millis(200), Duration::from_secs(10), 0.5);

/// Where a writer's batches go: ClickHouse, or the spool when ClickHouse fails.
#[derive(Clone, Debug)]
pub struct Destination {
    /// ClickHouse.
    pub store: Store,
    /// The disk spool shared by the writers.
    pub spool: Arc<Spool>,
    /// The collector's telemetry.
    pub telemetry: Arc<Telemetry>,
}

impl Destination {
    /// One write, limited to `settings.write_timeout` when `B` allows it, and counted in the
    /// telemetry.
    async fn attempt<B: RowBatch>(
        &self,
        table: &'static str,
        batches: &[B],
        settings: &WriterSettings,
    ) -> Result<(), StoreError> {
        let rows: usize = batches.iter().map(RowBatch::row_count).sum();
        if rows == 0 {
            return Ok(());
        }
        let label = TableLabel { table };
        let started = std::time::Instant::now();
        let insert = B::insert(&self.store, table, batches);
        let result = if B::MAY_GIVE_UP {
            tokio::time::timeout(settings.write_timeout, insert)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::NotReady {
                        url: table.to_owned(),
                        waited: settings.write_timeout,
                        last_error: "the write did not finish in time".into(),
                    })
                })
        } else {
            insert.await
        };
        match result {
            Ok(()) => {
                let t = &self.telemetry;
                t.flush_duration
                    .get_or_create(&label)
                    .observe(started.elapsed().as_secs_f64());
                t.rows_written.get_or_create(&label).inc_by(rows as u64);
                Ok(())
            }
            Err(e) => {
                self.telemetry.write_errors.get_or_create(&label).inc();
                Err(e)
            }
        }
    }

    /// Writes the spooled files of `table`, oldest first, until one fails.
    async fn replay<B: RowBatch>(&self, table: &'static str, settings: &WriterSettings) {
        while let Some(file) = self.spool.oldest(table) {
            let batches = match self.spool.read(&file).map(|p| B::from_spool(&p)) {
                Ok(Some(batches)) => batches,
                Ok(None) => {
                    self.spool.set_aside(&file);
                    tracing::error!(table, "a spool file holds no valid batch; set aside");
                    continue;
                }
                Err(e) => {
                    tracing::error!(table, error = %e, "spool file set aside");
                    continue;
                }
            };
            if self.attempt(table, &batches, settings).await.is_err() {
                return;
            }
            self.spool.remove(&file);
            let label = TableLabel { table };
            self.telemetry.batches_replayed.get_or_create(&label).inc();
            self.telemetry
                .spool_bytes
                .set(self.spool.used_bytes() as i64);
            tracing::info!(table, "replayed a spooled batch");
        }
    }

    /// Writes `batches`, or when ClickHouse does not take them saves them to the spool, or when
    /// that fails too (the spool is full) keeps retrying, which holds the queue and pushes back on
    /// the receivers. Returns whether the batches are safe (written or spooled); they are lost
    /// only when `deadline` (set at shutdown) passes first.
    pub async fn write_or_spool<B: RowBatch>(
        &self,
        table: &'static str,
        batches: &[B],
        deadline: Option<Instant>,
        settings: &WriterSettings,
    ) -> bool {
        let Err(error) = self.attempt(table, batches, settings).await else {
            return true;
        };
        self.spool_batches(table, batches, &error)
            || self
                .write_with_retry(table, batches, deadline, settings)
                .await
    }

    /// Saves batches ClickHouse did not take (because of `why`) to the spool; false (logged)
    /// when the spool cannot take them.
    fn spool_batches<B: RowBatch>(
        &self,
        table: &'static str,
        batches: &[B],
        why: &dyn std::fmt::Display,
    ) -> bool {
        let rows: usize = batches.iter().map(RowBatch::row_count).sum();
        match self.spool.save(table, &B::to_spool(batches)) {
            Ok(()) => {
                let label = TableLabel { table };
                self.telemetry.batches_spooled.get_or_create(&label).inc();
                self.telemetry
                    .spool_bytes
                    .set(self.spool.used_bytes() as i64);
                tracing::warn!(table, rows, error = %why, "ClickHouse did not take the rows; spooled to disk, written when it answers");
                true
            }
            Err(spool_error) => {
                tracing::warn!(table, rows, error = %why, spool = %spool_error, "ClickHouse did not take the rows and the spool cannot either; retrying");
                false
            }
        }
    }

    /// Retries until the write succeeds (true) or, once `deadline` is set, until it passes.
    async fn write_with_retry<B: RowBatch>(
        &self,
        table: &'static str,
        batches: &[B],
        deadline: Option<Instant>,
        settings: &WriterSettings,
    ) -> bool {
        let mut delays = RETRY_BACKOFF.delays();
        loop {
            let Err(e) = self.attempt(table, batches, settings).await else {
                return true;
            };
            let backoff = delays.next_delay();
            let rows: usize = batches.iter().map(RowBatch::row_count).sum();
            if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                tracing::error!(table, rows, error = %e, "ClickHouse write failed at shutdown and the spool is full; rows lost unless the journal holds them");
                return false;
            }
            tracing::warn!(table, rows, error = %e, retry_in = ?backoff, "ClickHouse write failed; retrying");
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Writes batches from `rx` into `table` until shutdown, then drains. What cannot be written goes
/// to the spool, which is replayed first whenever ClickHouse answers. The `journal` hears which
/// of its records' rows are safe.
pub async fn run_batch_writer<B: RowBatch>(
    to: Destination,
    table: &'static str,
    mut rx: mpsc::Receiver<Queued<B>>,
    journal: Option<Arc<Journal>>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: Vec<B> = Vec::new();
    let mut records: Vec<RecordId> = Vec::new();
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let fill_deadline = Instant::now() + settings.flush_interval;
        let mut rows = 0;
        let mut closed = false;
        while rows < settings.batch_rows {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(queued) => {
                        rows += queued.batch.row_count();
                        pending.push(queued.batch);
                        records.extend(queued.record);
                    }
                    None => { closed = true; break; }
                },
                () = tokio::time::sleep_until(fill_deadline) => break,
                _ = shutdown.changed(), if stop_deadline.is_none() => {
                    // Refuse new batches; the ones already queued are still received.
                    rx.close();
                    stop_deadline = Some(Instant::now() + settings.shutdown_timeout);
                }
            }
        }
        to.telemetry
            .queue_depth
            .get_or_create(&TableLabel { table })
            .set(rx.len() as i64);
        to.replay::<B>(table, &settings).await;
        if to
            .write_or_spool(table, &pending, stop_deadline, &settings)
            .await
            && let Some(journal) = &journal
        {
            journal.rows_safe(&records);
        }
        pending.clear();
        records.clear();
        if closed {
            return;
        }
    }
}

/// Prefix of the operation name of flush markers (rows with an empty service).
pub const FLUSH_MARKER_PREFIX: &str = "plumb-flush-";

/// One flush of aggregates, safe to write again: each minute it holds is written together with a
/// marker row (in the same `INSERT`, so in the same part of that minute's partition), and a
/// retry first asks which minutes already carry its marker and writes only the others. So a
/// write that reached ClickHouse but whose answer was lost never counts twice.
pub struct FlushBatch<A: Flushable> {
    id: String,
    rows: Vec<A::Row>,
    /// Whether a write was attempted (only then can some minutes already be written).
    tried: std::sync::atomic::AtomicBool,
}

impl<A: Flushable> FlushBatch<A> {
    /// Takes everything `aggregates` holds as a new batch with a fresh id; `None` when there is
    /// nothing.
    pub fn take(aggregates: &A) -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = crate::clock::now_unix_ns()
            ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ^ (u64::from(std::process::id()) << 40);
        Self::with_id(
            format!("{FLUSH_MARKER_PREFIX}{unique:016x}"),
            aggregates,
            false,
        )
    }

    /// Takes everything `aggregates` holds as the flush `id`, which may already have been
    /// written (`maybe_written`: a journal replay) or not; `None` when there is nothing.
    pub fn with_id(id: String, aggregates: &A, maybe_written: bool) -> Option<Self> {
        let rows = aggregates.take();
        (!rows.is_empty()).then(|| Self {
            id,
            rows,
            tried: std::sync::atomic::AtomicBool::new(maybe_written),
        })
    }

    async fn write(&self, store: &Store) -> Result<(), StoreError> {
        let table = A::TABLE;
        let written: Vec<u32> = if self.tried.swap(true, std::sync::atomic::Ordering::Relaxed) {
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

/// A flush as spooled: its id (so a replay stays idempotent) and its rows.
#[derive(Serialize, serde::Deserialize)]
struct SpooledFlush<R> {
    id: String,
    rows: Vec<R>,
}

impl<A: Flushable> RowBatch for FlushBatch<A> {
    /// A flush write is waited for: a given-up write that ClickHouse carries out after the retry
    /// checked the markers would count twice.
    const MAY_GIVE_UP: bool = false;

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
                    tried: std::sync::atomic::AtomicBool::new(true),
                })
                .collect(),
        )
    }

    async fn insert(
        store: &Store,
        _table: &'static str,
        batches: &[Self],
    ) -> Result<(), StoreError> {
        for batch in batches {
            batch.write(store).await?;
        }
        Ok(())
    }
}

/// A flush waiting to be written, and the journal generation it holds (if any).
struct PendingFlush<A: Flushable> {
    batch: Option<FlushBatch<A>>,
    generation: Option<u64>,
}

/// Takes the aggregates as a flush. With a journal, the take ends a journal generation and the
/// flush is named after it; if the journal cannot start a new generation, nothing is taken now.
fn take_flush<A: Flushable>(aggregates: &A, journal: Option<&Journal>) -> Option<PendingFlush<A>> {
    let Some(journal) = journal else {
        return Some(PendingFlush {
            batch: FlushBatch::take(aggregates),
            generation: None,
        });
    };
    match journal
        .cut(|generation| FlushBatch::with_id(journal.flush_id(generation), aggregates, false))
    {
        Ok((generation, batch)) => Some(PendingFlush {
            batch,
            generation: Some(generation),
        }),
        Err(e) => {
            tracing::error!(error = %e, "the journal cannot start a new segment; aggregates stay in memory");
            None
        }
    }
}

/// Flushes `aggregates` every `flush_interval`, and everything at shutdown. A flush that fails
/// is retried as the same batch (so it never counts twice) while newer aggregates wait in
/// memory; at shutdown, what cannot be written is spooled (with its flush id) and written after
/// the next start. With a `journal`, each flush ends a journal generation and is reported to it
/// once written or spooled.
pub async fn run_flusher<A: Flushable>(
    to: Destination,
    aggregates: Arc<A>,
    journal: Option<Arc<Journal>>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let table = A::TABLE;
    let journal = journal.as_deref();
    let safe = |generations: &[Option<u64>]| {
        if let Some(journal) = journal {
            generations
                .iter()
                .flatten()
                .for_each(|g| journal.flushed(*g));
        }
    };
    let mut pending: Option<PendingFlush<A>> = None;
    loop {
        let mut stopping = tokio::select! {
            () = tokio::time::sleep(settings.flush_interval) => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
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
                to.replay::<FlushBatch<A>>(table, &settings).await;
                match pending.as_ref().and_then(|f| f.batch.as_ref()) {
                    Some(batch) => {
                        to.attempt(table, std::slice::from_ref(batch), &settings)
                            .await
                    }
                    None => Ok(()),
                }
            };
            tokio::select! {
                written = round => match written {
                    Ok(()) => {
                        if let Some(flush) = pending.take() {
                            safe(&[flush.generation]);
                        }
                    }
                    Err(e) => tracing::warn!(
                        table, error = %e,
                        "ClickHouse write failed; the same flush is retried next time, newer aggregates wait in memory"
                    ),
                },
                _ = shutdown.wait_for(|stop| *stop) => stopping = true,
            }
        }
        if stopping {
            let deadline = Instant::now() + settings.shutdown_timeout;
            let flushes: Vec<PendingFlush<A>> = pending
                .into_iter()
                .chain(take_flush(&*aggregates, journal))
                .collect();
            let generations: Vec<Option<u64>> = flushes.iter().map(|f| f.generation).collect();
            let batches: Vec<FlushBatch<A>> = flushes.into_iter().filter_map(|f| f.batch).collect();
            let written = tokio::time::timeout_at(
                deadline,
                to.write_or_spool(table, &batches, Some(deadline), &settings),
            )
            .await
            .unwrap_or_else(|_| {
                to.spool_batches(table, &batches, &"no answer before the shutdown deadline")
            });
            if written {
                safe(&generations);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_backoff_is_valid() {
        assert!(RETRY_BACKOFF.checked().is_ok());
    }
}
