//! Acknowledgements: how the writers tell the stage that keeps data safe until then (the
//! journal) that they have taken it over, without knowing what that stage is.
//!
//! A request is acknowledged to its client once it is in the journal; its rows travel to a
//! writer as a [`Queued`] batch carrying an [`Ack`]. When the writer has written the rows to
//! ClickHouse, spooled them or set them aside, it settles the acks of that write ([`Settle`]),
//! and the journal notes the records as safe. The latency flusher takes its aggregates inside a
//! [`Cut`] of the journal, so a flush holds exactly the records of one journal segment, and
//! reports the cut safe once the flush is written or spooled. Both traits are implemented by
//! `journal::Journal`; the writers depend only on this module.

use std::fmt::Debug;
use std::sync::Arc;

/// Where one record is in the journal: its segment and its place in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRef {
    /// The segment.
    pub(crate) segment: u64,
    /// The record's index in the segment.
    pub(crate) index: u32,
}

/// Told when the rows of records are safe (written, spooled or set aside).
pub(crate) trait RowAcks: Send + Sync + Debug {
    /// The rows of `records` are safe; called once per write with all of its records.
    fn rows_safe(&self, records: &[RecordRef]);
}

/// The name of one cut: unique across collectors (`origin`) and restarts (`sequence`), so a
/// flush named after it can be written again without counting twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CutId {
    /// Tells one journal from another.
    pub(crate) origin: u64,
    /// The segment the cut ended.
    pub(crate) sequence: u64,
}

/// A log that can be cut: the flusher takes its aggregates inside the cut.
pub(crate) trait Cut: Send + Sync + Debug {
    /// Ends the current segment and runs `take` before any record of the next one is appended;
    /// the segment is on disk when this returns.
    fn cut(&self, take: &mut dyn FnMut()) -> std::io::Result<CutId>;

    /// The flush taken inside cut `id` is written or spooled.
    fn flush_safe(&self, id: CutId);
}

/// One batch's acknowledgement: whom to tell, and about which record.
#[derive(Clone, Debug)]
pub(crate) struct Ack {
    to: Arc<dyn RowAcks>,
    record: RecordRef,
}

impl Ack {
    /// The acknowledgement of `record`, told to `to`.
    pub(crate) fn new(to: Arc<dyn RowAcks>, record: RecordRef) -> Self {
        Self { to, record }
    }
}

/// A batch for a writer queue, with its acknowledgement (none when the journal is off, and for a
/// batch replayed at start-up, whose journal segment goes once the replay is done).
#[derive(Debug)]
pub(crate) struct Queued<B> {
    /// The rows.
    pub(crate) batch: B,
    /// Told once the rows are safe.
    pub(crate) ack: Option<Ack>,
}

/// The acknowledgements of the batches of one write, settled together once it is safe.
#[derive(Debug, Default)]
pub(crate) struct Settle {
    to: Option<Arc<dyn RowAcks>>,
    records: Vec<RecordRef>,
}

impl Settle {
    /// Adds one batch's acknowledgement.
    pub(crate) fn push(&mut self, ack: Option<Ack>) {
        if let Some(ack) = ack {
            self.to.get_or_insert(ack.to);
            self.records.push(ack.record);
        }
    }

    /// Tells every acknowledgement collected so far that its rows are safe.
    pub(crate) fn safe(&mut self) {
        if let Some(to) = &self.to
            && !self.records.is_empty()
        {
            to.rows_safe(&self.records);
        }
        self.records.clear();
    }

    /// Forgets what was collected (the rows were lost at a shutdown deadline: the journal keeps
    /// them for the next start).
    pub(crate) fn forget(&mut self) {
        self.records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Heard(Mutex<Vec<Vec<RecordRef>>>);

    impl RowAcks for Heard {
        fn rows_safe(&self, records: &[RecordRef]) {
            self.0.lock().expect("lock").push(records.to_vec());
        }
    }

    #[test]
    fn a_write_settles_its_batches_together_once() {
        let heard = Arc::new(Heard::default());
        let record = |index| RecordRef { segment: 3, index };
        let to: Arc<dyn RowAcks> = heard.clone();
        let mut settle = Settle::default();
        settle.push(Some(Ack::new(Arc::clone(&to), record(0))));
        settle.push(None);
        settle.push(Some(Ack::new(Arc::clone(&to), record(1))));
        settle.safe();
        settle.safe();
        settle.push(Some(Ack::new(to, record(2))));
        settle.forget();
        settle.safe();
        assert_eq!(
            *heard.0.lock().expect("lock"),
            vec![vec![record(0), record(1)]]
        );
    }
}
