//! The ClickHouse writers: background tasks that move rows from the pipeline into storage.
//!
//! In: batches of rows from a bounded channel (spans, metric points), or in-memory aggregates
//! (latency histograms, breakdowns). Out: `INSERT`s of up to `batch_rows` rows at least every `flush_interval`. A failed
//! write is retried with exponential backoff while the channel fills up, which pushes back on the
//! receivers instead of dropping anything. On shutdown each writer drains what it holds and keeps
//! retrying until its deadline.

use super::rows::EncodedRows;
use super::{Store, StoreError};
use crate::aggregate::Flushable;
use crate::telemetry::{TableLabel, Telemetry};
use clickhouse::{RowOwned, RowWrite};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
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
}

/// A group of rows for one table, as queued for a writer.
pub trait RowBatch: Send + Sync + Sized + 'static {
    /// Rows in this batch.
    fn row_count(&self) -> usize;

    /// Writes `batches` into `table` in one `INSERT`.
    fn insert<'a>(
        store: &'a Store,
        table: &'static str,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

/// Typed rows, encoded by the `clickhouse` crate.
impl<T: RowOwned + RowWrite + Send + Sync> RowBatch for Vec<T> {
    fn row_count(&self) -> usize {
        self.len()
    }

    fn insert<'a>(
        store: &'a Store,
        table: &'static str,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        store.insert(table, batches.iter().flatten())
    }
}

/// Rows already encoded as RowBinary (spans).
impl RowBatch for EncodedRows {
    fn row_count(&self) -> usize {
        self.rows
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

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Writes batches from `rx` into `table` until shutdown, then drains.
pub async fn run_batch_writer<B: RowBatch>(
    store: Store,
    table: &'static str,
    mut rx: mpsc::Receiver<B>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) {
    let mut pending: Vec<B> = Vec::new();
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let fill_deadline = Instant::now() + settings.flush_interval;
        let mut rows = 0;
        let mut closed = false;
        while rows < settings.batch_rows {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(batch) => {
                        rows += batch.row_count();
                        pending.push(batch);
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
        telemetry
            .queue_depth
            .get_or_create(&TableLabel { table })
            .set(rx.len() as i64);
        write_with_retry(&store, table, &pending, stop_deadline, &telemetry).await;
        pending.clear();
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
    /// Takes everything `aggregates` holds as a new batch; `None` when there is nothing.
    pub fn take(aggregates: &A) -> Option<Self> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let rows = aggregates.take();
        if rows.is_empty() {
            return None;
        }
        let unique = crate::clock::now_unix_ns()
            ^ NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ^ (u64::from(std::process::id()) << 40);
        Some(Self {
            id: format!("{FLUSH_MARKER_PREFIX}{unique:016x}"),
            rows,
            tried: std::sync::atomic::AtomicBool::new(false),
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

impl<A: Flushable> RowBatch for FlushBatch<A> {
    fn row_count(&self) -> usize {
        self.rows.len()
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

/// Flushes `aggregates` every `flush_interval`, and everything at shutdown. A flush that fails
/// is retried as the same batch (so it never counts twice) while newer aggregates wait in
/// memory.
pub async fn run_flusher<A: Flushable>(
    store: Store,
    aggregates: Arc<A>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) {
    let table = A::TABLE;
    let mut pending: Option<FlushBatch<A>> = None;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(settings.flush_interval) => false,
            _ = shutdown.changed() => true,
        };
        telemetry
            .aggregates_held
            .get_or_create(&TableLabel { table })
            .set(aggregates.held() as i64);
        if pending.is_none() {
            pending = FlushBatch::take(&*aggregates);
        }
        if stopping {
            let deadline = Instant::now() + settings.shutdown_timeout;
            let batches: Vec<FlushBatch<A>> = pending
                .into_iter()
                .chain(FlushBatch::take(&*aggregates))
                .collect();
            write_with_retry(&store, table, &batches, Some(deadline), &telemetry).await;
            return;
        }
        if let Some(batch) = &pending {
            match attempt(&store, table, std::slice::from_ref(batch), &telemetry).await {
                Ok(()) => pending = None,
                Err(e) => tracing::warn!(
                    table, error = %e,
                    "ClickHouse write failed; the same flush is retried next time, newer aggregates wait in memory"
                ),
            }
        }
    }
}

/// One write, counted in the telemetry.
async fn attempt<B: RowBatch>(
    store: &Store,
    table: &'static str,
    batches: &[B],
    telemetry: &Telemetry,
) -> Result<(), StoreError> {
    let rows: usize = batches.iter().map(RowBatch::row_count).sum();
    if rows == 0 {
        return Ok(());
    }
    let label = TableLabel { table };
    let started = std::time::Instant::now();
    match B::insert(store, table, batches).await {
        Ok(()) => {
            telemetry
                .flush_duration
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            telemetry
                .rows_written
                .get_or_create(&label)
                .inc_by(rows as u64);
            Ok(())
        }
        Err(e) => {
            telemetry.write_errors.get_or_create(&label).inc();
            Err(e)
        }
    }
}

/// Retries until the write succeeds or, once `deadline` is set, until it passes.
async fn write_with_retry<B: RowBatch>(
    store: &Store,
    table: &'static str,
    batches: &[B],
    deadline: Option<Instant>,
    telemetry: &Telemetry,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let Err(e) = attempt(store, table, batches, telemetry).await else {
            return;
        };
        let rows: usize = batches.iter().map(RowBatch::row_count).sum();
        if deadline.is_some_and(|d| Instant::now() + backoff > d) {
            tracing::error!(table, rows, error = %e, "ClickHouse write failed at shutdown; rows lost");
            return;
        }
        tracing::warn!(table, rows, error = %e, retry_in = ?backoff, "ClickHouse write failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
