//! The ClickHouse writers: background tasks that move rows from the pipeline into storage.
//!
//! In: [`Queued`](crate::ack::Queued) batches of rows from bounded channels (spans, metric
//! points), or in-memory aggregates ([`Flushable`]: latency histograms, breakdowns). Out:
//! `INSERT`s of up to `batch_rows` rows at least every `flush_interval`, and acknowledgements
//! (`ack`) once rows are safe.
//!
//! - [`batch`]: what a writer writes ([`RowBatch`]), and each table's [`WritePolicy`].
//! - [`destination`]: one write, with its timeout, and what happens when ClickHouse does not take
//!   it: retriable errors send the batch to the disk spool (replayed oldest first before the next
//!   write), permanent ones (data ClickHouse will never take) set it aside as a `.bad` file, and
//!   when the spool is full the write is retried with backoff, which holds the queue and pushes
//!   back on the receivers instead of dropping anything.
//! - [`rows_writer`]: the span and metric writers.
//! - [`flush`]: the aggregate flushers, whose writes can be repeated without counting twice.

pub(crate) mod batch;
pub(crate) mod destination;
pub(crate) mod flush;
pub(crate) mod rows_writer;

pub(crate) use batch::RowBatch;
pub(crate) use destination::{Destination, WriterTelemetry};
pub(crate) use flush::{FlushBatch, Flushable, run_flusher};
pub(crate) use rows_writer::run_batch_writer;

use std::time::Duration;

/// How a writer batches and how long it may keep retrying at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriterSettings {
    /// Largest number of rows in one `INSERT`.
    pub(crate) batch_rows: usize,
    /// Longest time rows wait before being written.
    pub(crate) flush_interval: Duration,
    /// How long to keep retrying a failed write once shutdown has begun.
    pub(crate) shutdown_timeout: Duration,
    /// Longest one write may take before it counts as failed (for tables whose policy allows
    /// giving up).
    pub(crate) write_timeout: Duration,
}
