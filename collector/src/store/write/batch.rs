//! What a writer writes: a [`RowBatch`] is a group of rows for one table that can be inserted,
//! saved to the spool and read back from it; each table states its [`WritePolicy`].

use crate::model::MetricPoint;
use crate::store::lookup::{unstored_metrics, unstored_spans};
use crate::store::rows::{EncodedRows, SPAN_COLUMNS, rows_from_before_the_split};
use crate::store::schema::{METRICS, SPANS};
use crate::store::{Store, StoreError};
use std::future::Future;

/// Whether a write may be given up after `--write-timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WritePolicy {
    /// Give up waiting after the timeout and spool the rows. The write given up runs on in the
    /// background (a slow or frozen ClickHouse may still carry it out); the spool is not replayed
    /// before it ends, and the replay writes only the rows [`RowBatch::unstored`] does not find.
    GiveUpAfterTimeout,
    /// Wait for ClickHouse's answer, however long. For flushes of aggregates: a given-up write
    /// that ClickHouse carries out after a retry checked its markers would count twice.
    WaitForAnswer,
}

/// A group of rows for one table, as queued for a writer.
pub(crate) trait RowBatch: Clone + Send + Sync + Sized + 'static {
    /// The table these rows go to.
    const TABLE: &'static str;

    /// Whether a write of these rows may be given up (a required choice per table).
    const POLICY: WritePolicy;

    /// Rows in this batch.
    fn row_count(&self) -> usize;

    /// `batches` as one spool payload.
    fn to_spool(batches: &[Self]) -> Vec<u8>;

    /// The batches of a spool payload; `None` if it is not one.
    fn from_spool(payload: &[u8]) -> Option<Vec<Self>>;

    /// Writes `batches` in one `INSERT`.
    fn insert<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;

    /// What of `batches` ClickHouse does not hold yet, to be written again after a write that
    /// may have been carried out. By default all of them: for tables whose writes are idempotent
    /// by themselves (the flushes' markers).
    fn unstored<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send + 'a {
        let _ = store;
        std::future::ready(Ok(batches.to_vec()))
    }
}

/// Metric points, encoded by the `clickhouse` crate (spooled as JSON).
impl RowBatch for Vec<MetricPoint> {
    const TABLE: &'static str = METRICS;
    const POLICY: WritePolicy = WritePolicy::GiveUpAfterTimeout;

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
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        store.insert(Self::TABLE, batches.iter().flatten())
    }

    fn unstored<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send + 'a {
        unstored_metrics(store, batches)
    }
}

/// The first bytes of a spooled span payload in today's row layout. A payload without them was
/// spooled by a collector from before the times were split (migration 8) and is re-encoded when
/// read; its first eight bytes are a row count, never this many.
const SPLIT_TIMES_PAYLOAD: &[u8; 8] = b"PLSPANS2";

/// Span rows already encoded as RowBinary; spooled as [`SPLIT_TIMES_PAYLOAD`], then each batch's
/// bytes preceded by its row count and length.
impl RowBatch for EncodedRows {
    const TABLE: &'static str = SPANS;
    const POLICY: WritePolicy = WritePolicy::GiveUpAfterTimeout;

    fn row_count(&self) -> usize {
        self.rows
    }

    fn to_spool(batches: &[Self]) -> Vec<u8> {
        let mut out = SPLIT_TIMES_PAYLOAD.to_vec();
        for batch in batches {
            out.extend_from_slice(&(batch.rows as u64).to_le_bytes());
            out.extend_from_slice(&(batch.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&batch.bytes);
        }
        out
    }

    fn from_spool(payload: &[u8]) -> Option<Vec<Self>> {
        let (mut payload, split) = match payload.strip_prefix(SPLIT_TIMES_PAYLOAD) {
            Some(rest) => (rest, true),
            None => (payload, false),
        };
        let mut batches = Vec::new();
        while !payload.is_empty() {
            let rows = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
            let len = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
            let end = 16usize.checked_add(usize::try_from(len).ok()?)?;
            let bytes = payload.get(16..end)?;
            batches.push(EncodedRows {
                columns: SPAN_COLUMNS,
                rows: usize::try_from(rows).ok()?,
                bytes: match split {
                    true => bytes::Bytes::copy_from_slice(bytes),
                    false => rows_from_before_the_split(bytes)?,
                },
            });
            payload = &payload[end..];
        }
        Some(batches)
    }

    fn insert<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        let columns = batches.first().map_or("", |b| b.columns);
        store.insert_encoded(
            Self::TABLE,
            columns,
            batches.iter().map(|b| b.bytes.clone()),
        )
    }

    fn unstored<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<Vec<Self>, StoreError>> + Send + 'a {
        unstored_spans(store, batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_rows_come_back_from_the_spool_as_they_went_in() {
        let batches = vec![
            EncodedRows {
                columns: SPAN_COLUMNS,
                rows: 2,
                bytes: bytes::Bytes::from_static(b"two rows"),
            },
            EncodedRows {
                columns: SPAN_COLUMNS,
                rows: 1,
                bytes: bytes::Bytes::from_static(b"one"),
            },
        ];
        let back = EncodedRows::from_spool(&EncodedRows::to_spool(&batches)).expect("valid");
        assert_eq!(
            back.iter()
                .map(|b| (b.rows, b.bytes.clone()))
                .collect::<Vec<_>>(),
            batches
                .iter()
                .map(|b| (b.rows, b.bytes.clone()))
                .collect::<Vec<_>>()
        );
        assert!(EncodedRows::from_spool(&[1, 2, 3]).is_none(), "cut short");
    }
}
