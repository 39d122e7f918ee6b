//! Where a writer's batches go: ClickHouse, or the disk spool when ClickHouse does not take them
//! now, or aside (a `.bad` file) when ClickHouse will never take them.
//!
//! One write is limited to `--write-timeout` when its table's [`WritePolicy`] allows giving up.
//! A failed write is classified (`StoreError::class`): a retriable failure (the server down,
//! slow or busy) spools the batch, which is replayed oldest first before the next write; a
//! permanent one (ClickHouse refuses the data itself: parse errors, type mismatches, data cut
//! short) sets the batch aside, logged and counted in `plumb_batches_set_aside_total`, so the
//! batches behind it are still written. When the spool is full the write is retried with backoff
//! until it succeeds or the shutdown deadline passes.
//!
//! Nothing is stored twice: a write given up keeps running in the background ([`LateWrites`]),
//! its table's spool waits until it ends, and whatever is written again (a spooled batch, a
//! retry) is first looked up ([`RowBatch::unstored`]) so that rows ClickHouse took late are left
//! out.

use super::WriterSettings;
use super::batch::{RowBatch, WritePolicy};
use crate::store::spool::Spool;
use crate::store::{ErrorClass, Store, StoreError};
use crate::telemetry::{TableLabel, Telemetry};
use plumb_net::Backoff;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a writer waits between retries of a write ClickHouse refused while the spool is full.
const RETRY_BACKOFF: Backoff =
    Backoff::new_unchecked(Duration::from_millis(200), Duration::from_secs(10), 0.5);

/// How long a write given up may run on in the background before it is dropped (its connection
/// closed): a server that has not answered by then is taken to have never read it.
const LATE_WRITE_LIMIT: Duration = Duration::from_secs(600);

/// Writes given up after `--write-timeout` that still run, at most one per table: ClickHouse may
/// yet carry them out, so that table's spool is not replayed (and no new write is sent) until
/// they end.
#[derive(Debug, Default)]
pub(crate) struct LateWrites(Mutex<HashMap<&'static str, JoinHandle<()>>>);

impl LateWrites {
    /// Whether a write into `table` that was given up still runs.
    fn running(&self, table: &'static str) -> bool {
        let mut late = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match late.get(table) {
            Some(write) if !write.is_finished() => true,
            Some(_) => {
                late.remove(table);
                false
            }
            None => false,
        }
    }

    /// Keeps the write `write` into `table`, given up, running to its end.
    fn hold(&self, table: &'static str, write: JoinHandle<Result<(), StoreError>>) {
        let waiting = tokio::spawn(async move {
            match tokio::time::timeout(LATE_WRITE_LIMIT, write).await {
                Ok(Ok(Ok(()))) => {
                    tracing::info!(table, "a write given up earlier was carried out late");
                }
                Ok(Ok(Err(e))) => {
                    tracing::info!(table, error = %e, "a write given up earlier failed")
                }
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!(table, "a write given up earlier was dropped unanswered");
                }
            }
        });
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(table, waiting);
    }
}

/// The writers' own metrics, by table.
#[derive(Debug)]
pub(crate) struct WriterTelemetry {
    /// Rows written to ClickHouse.
    pub(crate) rows_written: Family<TableLabel, Counter>,
    /// Failed writes.
    pub(crate) write_errors: Family<TableLabel, Counter>,
    /// Duration of each write.
    pub(crate) flush_duration: Family<TableLabel, Histogram>,
    /// Batches waiting in a writer's queue.
    pub(crate) queue_depth: Family<TableLabel, Gauge>,
    /// Aggregation keys held in memory until the next flush.
    pub(crate) aggregates_held: Family<TableLabel, Gauge>,
    /// Bytes in the disk spool.
    pub(crate) spool_bytes: Gauge,
    /// Batches saved to the spool after a failed write.
    pub(crate) batches_spooled: Family<TableLabel, Counter>,
    /// Spooled batches written to ClickHouse.
    pub(crate) batches_replayed: Family<TableLabel, Counter>,
    /// Batches ClickHouse refused for good, set aside as `.bad` files.
    pub(crate) batches_set_aside: Family<TableLabel, Counter>,
}

impl WriterTelemetry {
    /// Creates the metrics, registered in `telemetry`.
    pub(crate) fn registered(telemetry: &mut Telemetry) -> Arc<Self> {
        let this = Self {
            rows_written: Family::default(),
            write_errors: Family::default(),
            flush_duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.001, 2.0, 16))) as fn() -> Histogram,
            ),
            queue_depth: Family::default(),
            aggregates_held: Family::default(),
            spool_bytes: Gauge::default(),
            batches_spooled: Family::default(),
            batches_replayed: Family::default(),
            batches_set_aside: Family::default(),
        };
        let registry = telemetry.registry();
        registry.register(
            "rows_written",
            "Rows written to ClickHouse, by table",
            this.rows_written.clone(),
        );
        registry.register(
            "write_errors",
            "Failed ClickHouse writes (retried, spooled or set aside), by table",
            this.write_errors.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time taken by each ClickHouse write, by table",
            this.flush_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Batches waiting for the ClickHouse writers",
            this.queue_depth.clone(),
        );
        registry.register(
            "aggregates_held",
            "Aggregates held in memory until the next flush, by table",
            this.aggregates_held.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes in the disk spool",
            this.spool_bytes.clone(),
        );
        registry.register(
            "batches_spooled",
            "Batches saved to the disk spool after a failed ClickHouse write, by table",
            this.batches_spooled.clone(),
        );
        registry.register(
            "batches_replayed",
            "Spooled batches written to ClickHouse, by table",
            this.batches_replayed.clone(),
        );
        registry.register(
            "batches_set_aside",
            "Batches ClickHouse refused for good (wrong data), kept as .bad files in the spool folder, by table",
            this.batches_set_aside.clone(),
        );
        Arc::new(this)
    }
}

/// Where a writer's batches go.
#[derive(Clone, Debug)]
pub(crate) struct Destination {
    /// ClickHouse.
    pub(crate) store: Store,
    /// The disk spool shared by the writers.
    pub(crate) spool: Arc<Spool>,
    /// The writers' metrics.
    pub(crate) telemetry: Arc<WriterTelemetry>,
    /// Writes given up that still run.
    pub(crate) late: Arc<LateWrites>,
}

impl Destination {
    /// One write, limited to `settings.write_timeout` when `B`'s policy allows giving up, and
    /// counted.
    pub(crate) async fn attempt<B: RowBatch>(
        &self,
        batches: &[B],
        settings: &WriterSettings,
    ) -> Result<(), StoreError> {
        let rows = rows_in(batches);
        if rows == 0 {
            return Ok(());
        }
        let label = TableLabel { table: B::TABLE };
        let started = std::time::Instant::now();
        let result = match B::POLICY {
            WritePolicy::GiveUpAfterTimeout => self.attempt_in_time(batches, settings).await,
            WritePolicy::WaitForAnswer => B::insert(&self.store, batches).await,
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

    /// One write as a task of its own, waited for `settings.write_timeout`; a write given up
    /// runs on in [`LateWrites`]. While an earlier one runs, no new write is sent.
    async fn attempt_in_time<B: RowBatch>(
        &self,
        batches: &[B],
        settings: &WriterSettings,
    ) -> Result<(), StoreError> {
        let table = B::TABLE;
        let given_up = StoreError::Timeout {
            table,
            limit: settings.write_timeout,
        };
        if self.late.running(table) {
            return Err(given_up);
        }
        let (store, owned) = (self.store.clone(), batches.to_vec());
        let mut write = tokio::spawn(async move { B::insert(&store, &owned).await });
        match tokio::time::timeout(settings.write_timeout, &mut write).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(given_up),
            Err(_) => {
                self.late.hold(table, write);
                Err(given_up)
            }
        }
    }

    /// Writes the spooled files of `B`'s table, oldest first, until one fails for a reason that
    /// may pass; a file ClickHouse refuses for good is set aside and the next one is written.
    pub(crate) async fn replay_spooled<B: RowBatch>(&self, settings: &WriterSettings) {
        let table = B::TABLE;
        while let Some(file) = self.spool.oldest(table) {
            if self.late.running(table) {
                return;
            }
            let spooled = match self.spool.read(&file).map(|p| B::from_spool(&p)) {
                Ok(Some(batches)) => batches,
                Ok(None) => {
                    self.spool.set_aside(&file);
                    self.counted_aside(table);
                    tracing::error!(table, "a spool file holds no valid batch; set aside");
                    continue;
                }
                Err(e) => {
                    self.counted_aside(table);
                    tracing::error!(table, error = %e, "spool file set aside");
                    continue;
                }
            };
            // It may have been carried out before it was spooled.
            let batches = match B::unstored(&self.store, &spooled).await {
                Ok(batches) => batches,
                Err(e) => {
                    tracing::warn!(table, error = %e, "could not look up what a spooled batch holds; replayed later");
                    return;
                }
            };
            match self.attempt(&batches, settings).await {
                Ok(()) => {
                    self.spool.remove(&file);
                    let label = TableLabel { table };
                    self.telemetry.batches_replayed.get_or_create(&label).inc();
                    let (spooled, written) = (rows_in(&spooled), rows_in(&batches));
                    tracing::info!(table, spooled, written, "replayed a spooled batch");
                }
                Err(e) if e.class() == ErrorClass::Permanent => {
                    self.spool.set_aside(&file);
                    self.counted_aside(table);
                    tracing::error!(table, error = %e, file = %file.path().display(), "ClickHouse refuses a spooled batch for good; set aside, the batches after it are written");
                }
                Err(_) => return,
            }
            self.telemetry
                .spool_bytes
                .set(self.spool.used_bytes() as i64);
        }
    }

    /// Writes `batches`; when ClickHouse does not take them now saves them to the spool, when it
    /// never will sets them aside, and when the spool is full too keeps retrying, which holds the
    /// queue and pushes back on the receivers. Returns whether the batches are safe (written,
    /// spooled or set aside); they are lost only when `deadline` (set at shutdown) passes first.
    pub(crate) async fn write_or_spool<B: RowBatch>(
        &self,
        batches: &[B],
        deadline: Option<Instant>,
        settings: &WriterSettings,
    ) -> bool {
        match self.attempt(batches, settings).await {
            Ok(()) => true,
            Err(e) if e.class() == ErrorClass::Permanent => self.set_aside(batches, &e),
            Err(e) => {
                self.spool_batches(batches, &e)
                    || self.write_with_retry(batches, deadline, settings).await
            }
        }
    }

    /// Keeps batches ClickHouse refuses for good (because of `why`) as a `.bad` file; false when
    /// even that fails.
    pub(crate) fn set_aside<B: RowBatch>(&self, batches: &[B], why: &StoreError) -> bool {
        let table = B::TABLE;
        let rows = rows_in(batches);
        match self.spool.save_aside(table, &B::to_spool(batches)) {
            Ok(path) => {
                self.counted_aside(table);
                tracing::error!(table, rows, error = %why, file = %path.display(), "ClickHouse refuses these rows for good; set aside");
                true
            }
            Err(e) => {
                tracing::error!(table, rows, error = %why, aside = %e, "ClickHouse refuses these rows for good and they cannot be set aside; dropped");
                false
            }
        }
    }

    fn counted_aside(&self, table: &'static str) {
        self.telemetry
            .batches_set_aside
            .get_or_create(&TableLabel { table })
            .inc();
    }

    /// Saves batches ClickHouse did not take (because of `why`) to the spool; false (logged)
    /// when the spool cannot take them.
    pub(crate) fn spool_batches<B: RowBatch>(
        &self,
        batches: &[B],
        why: &dyn std::fmt::Display,
    ) -> bool {
        let table = B::TABLE;
        let rows = rows_in(batches);
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

    /// Retries until the write succeeds or is set aside (true) or, once `deadline` is set, until
    /// it passes.
    async fn write_with_retry<B: RowBatch>(
        &self,
        batches: &[B],
        deadline: Option<Instant>,
        settings: &WriterSettings,
    ) -> bool {
        let table = B::TABLE;
        let mut delays = RETRY_BACKOFF.delays();
        let mut batches = batches.to_vec();
        loop {
            let e = match self.attempt(&batches, settings).await {
                Ok(()) => return true,
                Err(e) if e.class() == ErrorClass::Permanent => {
                    return self.set_aside(&batches, &e);
                }
                Err(e) => e,
            };
            let backoff = delays.next_delay();
            let rows = rows_in(&batches);
            if deadline.is_some_and(|d| Instant::now() + backoff > d) {
                tracing::error!(table, rows, error = %e, "ClickHouse write failed at shutdown and the spool is full; rows lost unless the journal holds them");
                return false;
            }
            tracing::warn!(table, rows, error = %e, retry_in = ?backoff, "ClickHouse write failed; retrying");
            tokio::time::sleep(backoff).await;
            // The failed write may have been carried out (late or in part).
            if !self.late.running(table)
                && let Ok(unstored) = B::unstored(&self.store, &batches).await
            {
                batches = unstored;
            }
        }
    }
}

/// Rows in `batches`.
fn rows_in<B: RowBatch>(batches: &[B]) -> usize {
    batches.iter().map(RowBatch::row_count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_backoff_is_valid() {
        assert!(RETRY_BACKOFF.checked().is_ok());
    }
}
