//! The ClickHouse writers: background tasks that move rows from the pipeline into storage.
//!
//! In: batches of rows from a bounded channel (spans, metric points), or the aggregator's
//! histograms. Out: `INSERT`s of up to `batch_rows` rows at least every `flush_interval`. A failed
//! write is retried with exponential backoff while the channel fills up, which pushes back on the
//! receivers instead of dropping anything. On shutdown each writer drains what it holds and keeps
//! retrying until its deadline.

use super::Store;
use crate::aggregate::Aggregator;
use crate::telemetry::{TableLabel, Telemetry};
use clickhouse::{RowOwned, RowWrite};
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

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Writes batches of rows from `rx` into `table` until shutdown, then drains.
pub async fn run_batch_writer<T>(
    store: Store,
    table: &'static str,
    mut rx: mpsc::Receiver<Vec<T>>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) where
    T: RowOwned + RowWrite,
{
    let mut batch: Vec<T> = Vec::with_capacity(settings.batch_rows);
    let mut stop_deadline: Option<Instant> = None;
    loop {
        let fill_deadline = Instant::now() + settings.flush_interval;
        let mut closed = false;
        while batch.len() < settings.batch_rows {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(rows) => batch.extend(rows),
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
        telemetry.queue_depth.set(rx.len() as i64);
        write_with_retry(&store, table, &batch, stop_deadline, &telemetry).await;
        batch.clear();
        if closed {
            return;
        }
    }
}

/// Flushes the aggregator's histograms every `interval`, and everything at shutdown.
pub async fn run_histogram_flusher(
    store: Store,
    aggregator: Arc<Aggregator>,
    settings: WriterSettings,
    mut shutdown: watch::Receiver<bool>,
    telemetry: Arc<Telemetry>,
) {
    let table = "latency_minute";
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(settings.flush_interval) => false,
            _ = shutdown.changed() => true,
        };
        telemetry.aggregates_held.set(aggregator.len() as i64);
        let rows = aggregator.take();
        if stopping {
            let deadline = Instant::now() + settings.shutdown_timeout;
            write_with_retry(&store, table, &rows, Some(deadline), &telemetry).await;
            return;
        }
        if let Err(rows) = write_once(&store, table, rows, &telemetry).await {
            // Keep them for the next flush; nothing recorded since is lost either.
            aggregator.restore(rows);
        }
    }
}

/// One attempt; gives the rows back on failure.
async fn write_once<T>(
    store: &Store,
    table: &'static str,
    rows: Vec<T>,
    telemetry: &Telemetry,
) -> Result<(), Vec<T>>
where
    T: RowOwned + RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let label = TableLabel { table };
    let started = std::time::Instant::now();
    match store.insert(table, &rows).await {
        Ok(()) => {
            telemetry
                .flush_duration
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            telemetry
                .rows_written
                .get_or_create(&label)
                .inc_by(rows.len() as u64);
            Ok(())
        }
        Err(e) => {
            telemetry.write_errors.get_or_create(&label).inc();
            tracing::warn!(table, rows = rows.len(), error = %e, "ClickHouse write failed; will retry");
            Err(rows)
        }
    }
}

/// Retries until the write succeeds or, once `deadline` is set, until it passes.
async fn write_with_retry<T>(
    store: &Store,
    table: &'static str,
    rows: &[T],
    deadline: Option<Instant>,
    telemetry: &Telemetry,
) where
    T: RowOwned + RowWrite,
{
    if rows.is_empty() {
        return;
    }
    let label = TableLabel { table };
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = std::time::Instant::now();
        match store.insert(table, rows).await {
            Ok(()) => {
                telemetry
                    .flush_duration
                    .get_or_create(&label)
                    .observe(started.elapsed().as_secs_f64());
                telemetry
                    .rows_written
                    .get_or_create(&label)
                    .inc_by(rows.len() as u64);
                return;
            }
            Err(e) => {
                telemetry.write_errors.get_or_create(&label).inc();
                if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                    tracing::error!(table, rows = rows.len(), error = %e, "ClickHouse write failed at shutdown; rows lost");
                    return;
                }
                tracing::warn!(table, rows = rows.len(), error = %e, retry_in = ?backoff, "ClickHouse write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
