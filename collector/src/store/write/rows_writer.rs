//! The span and metric writers: each takes batches from its bounded queue, writes them in
//! `INSERT`s of up to `batch_rows` rows at least every `flush_interval`, and settles their
//! acknowledgements once they are safe. Spooled batches of its table are written first.

use super::WriterSettings;
use super::batch::RowBatch;
use super::destination::Destination;
use crate::ack::{Queued, Settle};
use crate::telemetry::TableLabel;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Writes batches from `rx` until `stop` is cancelled, then drains what is queued within
/// `settings.shutdown_timeout`. What cannot be written goes to the spool, which is replayed first
/// whenever ClickHouse answers.
pub(crate) async fn run_batch_writer<B: RowBatch>(
    to: Destination,
    mut rx: mpsc::Receiver<Queued<B>>,
    settings: WriterSettings,
    stop: CancellationToken,
) {
    let label = TableLabel { table: B::TABLE };
    let mut pending: Vec<B> = Vec::new();
    let mut settle = Settle::default();
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
                        settle.push(queued.ack);
                    }
                    None => { closed = true; break; }
                },
                () = tokio::time::sleep_until(fill_deadline) => break,
                () = stop.cancelled(), if stop_deadline.is_none() => {
                    // Refuse new batches; the ones already queued are still received.
                    rx.close();
                    stop_deadline = Some(Instant::now() + settings.shutdown_timeout);
                }
            }
        }
        to.telemetry
            .queue_depth
            .get_or_create(&label)
            .set(rx.len() as i64);
        to.replay_spooled::<B>(&settings).await;
        if to.write_or_spool(&pending, stop_deadline, &settings).await {
            settle.safe();
        } else {
            settle.forget();
        }
        pending.clear();
        if closed {
            return;
        }
    }
}
