//! What a writer writes: a [`RowBatch`] is a group of rows for one table that can be inserted,
//! saved to the spool and read back from it; each table states its [`WritePolicy`].

use crate::model::{Attribute, MetricType};
use crate::store::lookup::{unstored_metrics, unstored_spans};
use crate::store::metric_rows::{
    METRIC_COLUMNS, MetricBatch, MetricColumns, MetricRows, PointValues,
};
use crate::store::rows::{EncodedRows, SPAN_COLUMNS, rows_from_before_the_split};
use crate::store::schema::{METRICS, SPANS};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use serde::Deserialize;
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

/// The first bytes of a spooled metric payload in RowBinary. A payload without them was spooled
/// as JSON by a collector from before metric rows were encoded as they were read, and is
/// encoded when read.
const METRIC_ROWS_PAYLOAD: &[u8; 8] = b"PLMETRC1";

/// Metric rows already encoded as RowBinary; spooled as [`METRIC_ROWS_PAYLOAD`] and then as
/// span rows are.
impl RowBatch for MetricBatch {
    const TABLE: &'static str = METRICS;
    const POLICY: WritePolicy = WritePolicy::GiveUpAfterTimeout;

    fn row_count(&self) -> usize {
        self.0.rows
    }

    fn to_spool(batches: &[Self]) -> Vec<u8> {
        framed(METRIC_ROWS_PAYLOAD, batches.iter().map(|b| &b.0))
    }

    fn from_spool(payload: &[u8]) -> Option<Vec<Self>> {
        match payload.strip_prefix(METRIC_ROWS_PAYLOAD) {
            Some(frames) => Some(
                unframed(frames, METRIC_COLUMNS, |bytes| {
                    Some(Bytes::copy_from_slice(bytes))
                })?
                .into_iter()
                .map(MetricBatch)
                .collect(),
            ),
            None => from_json_spool(payload),
        }
    }

    fn insert<'a>(
        store: &'a Store,
        batches: &'a [Self],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        store.insert_encoded(
            Self::TABLE,
            METRIC_COLUMNS,
            batches.iter().map(|b| b.0.bytes.clone()),
        )
    }

    async fn unstored(store: &Store, batches: &[Self]) -> Result<Vec<Self>, StoreError> {
        let rows: Vec<EncodedRows> = batches.iter().map(|b| b.0.clone()).collect();
        Ok(unstored_metrics(store, &rows)
            .await?
            .into_iter()
            .map(MetricBatch)
            .collect())
    }
}

/// A metric point as collectors before RowBinary metric rows spooled it (JSON, named by column).
#[derive(Deserialize)]
struct JsonPoint {
    time_ns: u64,
    service: String,
    name: String,
    unit: String,
    metric_type: i8,
    temporality: i8,
    is_monotonic: u8,
    #[serde(rename = "attributes.key")]
    attribute_keys: Vec<String>,
    #[serde(rename = "attributes.value")]
    attribute_values: Vec<String>,
    #[serde(rename = "resource.key")]
    resource_keys: Vec<String>,
    #[serde(rename = "resource.value")]
    resource_values: Vec<String>,
    value: f64,
    count: u64,
    sum: f64,
    bucket_bounds: Vec<f64>,
    bucket_counts: Vec<u64>,
}

/// The batches of a metric payload spooled as JSON, encoded as rows.
fn from_json_spool(payload: &[u8]) -> Option<Vec<MetricBatch>> {
    let batches: Vec<Vec<JsonPoint>> = serde_json::from_slice(payload).ok()?;
    let mut out = Vec::with_capacity(batches.len());
    for points in batches {
        let mut rows = MetricRows::default();
        for p in &points {
            rows.resource(&pairs(&p.resource_keys, &p.resource_values));
            rows.metric(&MetricColumns {
                service: &p.service,
                name: &p.name,
                unit: &p.unit,
                metric_type: MetricType::try_from(p.metric_type).ok()?,
                temporality: p.temporality,
                is_monotonic: p.is_monotonic != 0,
            });
            let values = PointValues {
                value: p.value,
                count: p.count,
                sum: p.sum,
                bounds: &p.bucket_bounds,
                counts: &p.bucket_counts,
            };
            rows.point(
                p.time_ns,
                &pairs(&p.attribute_keys, &p.attribute_values),
                &values,
            );
        }
        out.push(rows.finish());
    }
    Some(out)
}

/// Attributes of two parallel lists of keys and values.
fn pairs<'s>(keys: &'s [String], values: &'s [String]) -> Vec<Attribute<'s>> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `batches` framed for the spool after `magic`: each batch's row count and length, then its
/// bytes.
fn framed<'a>(magic: &[u8], batches: impl Iterator<Item = &'a EncodedRows>) -> Vec<u8> {
    let mut out = magic.to_vec();
    for batch in batches {
        out.extend_from_slice(&(batch.rows as u64).to_le_bytes());
        out.extend_from_slice(&(batch.bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(&batch.bytes);
    }
    out
}

/// The batches of `frames` (a payload after its magic), each batch's bytes as `bytes` makes
/// them; `None` if the frames are cut short or `bytes` refuses one.
fn unframed(
    mut frames: &[u8],
    columns: &'static str,
    bytes: impl Fn(&[u8]) -> Option<Bytes>,
) -> Option<Vec<EncodedRows>> {
    let mut batches = Vec::new();
    while !frames.is_empty() {
        let rows = u64::from_le_bytes(frames.get(..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(frames.get(8..16)?.try_into().ok()?);
        let end = 16usize.checked_add(usize::try_from(len).ok()?)?;
        batches.push(EncodedRows {
            columns,
            rows: usize::try_from(rows).ok()?,
            bytes: bytes(frames.get(16..end)?)?,
        });
        frames = &frames[end..];
    }
    Some(batches)
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
        framed(SPLIT_TIMES_PAYLOAD, batches.iter())
    }

    fn from_spool(payload: &[u8]) -> Option<Vec<Self>> {
        match payload.strip_prefix(SPLIT_TIMES_PAYLOAD) {
            Some(frames) => unframed(frames, SPAN_COLUMNS, |b| Some(Bytes::copy_from_slice(b))),
            None => unframed(payload, SPAN_COLUMNS, rows_from_before_the_split),
        }
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

    fn metric_batch(points: &[(u64, &str)]) -> MetricBatch {
        let mut rows = MetricRows::default();
        rows.resource(&[("host.name", "box-1")]);
        rows.metric(&MetricColumns {
            service: "shop",
            name: "queue.depth",
            unit: "1",
            metric_type: MetricType::Gauge,
            temporality: 0,
            is_monotonic: false,
        });
        for (time_ns, queue) in points {
            let values = PointValues {
                value: 3.0,
                ..PointValues::default()
            };
            rows.point(*time_ns, &[("queue", *queue)], &values);
        }
        rows.finish()
    }

    #[test]
    fn metric_rows_come_back_from_the_spool_as_they_went_in() {
        let batches = [
            metric_batch(&[(1, "mail"), (2, "jobs")]),
            metric_batch(&[(3, "mail")]),
        ];
        let payload = MetricBatch::to_spool(&batches);
        let back = MetricBatch::from_spool(&payload).expect("valid");
        let bytes = |b: &[MetricBatch]| -> Vec<(usize, Bytes)> {
            b.iter().map(|b| (b.0.rows, b.0.bytes.clone())).collect()
        };
        assert_eq!(bytes(&back), bytes(&batches));
        assert!(MetricBatch::from_spool(&payload[..payload.len() - 1]).is_none());
        assert!(MetricBatch::from_spool(b"[[{}]]").is_none(), "not points");
    }

    #[test]
    fn metric_points_spooled_as_json_by_an_older_collector_are_read_as_rows() {
        // What a collector from before RowBinary metric rows wrote for the batches above.
        let point = |time_ns: u64, queue: &str| {
            serde_json::json!({
                "timestamp": 0, "time_ns": time_ns, "service": "shop", "name": "queue.depth",
                "unit": "1", "metric_type": 1, "temporality": 0, "is_monotonic": 0,
                "attributes.key": ["queue"], "attributes.value": [queue],
                "resource.key": ["host.name"], "resource.value": ["box-1"],
                "value": 3.0, "count": 0, "sum": 0.0, "bucket_bounds": [], "bucket_counts": []
            })
        };
        let payload = serde_json::to_vec(&serde_json::json!([
            [point(1, "mail"), point(2, "jobs")],
            [point(3, "mail")]
        ]))
        .expect("json");
        let back = MetricBatch::from_spool(&payload).expect("old payload");
        let want = [
            metric_batch(&[(1, "mail"), (2, "jobs")]),
            metric_batch(&[(3, "mail")]),
        ];
        assert_eq!(back.len(), 2);
        for (got, want) in back.iter().zip(&want) {
            assert_eq!((got.0.rows, &got.0.bytes), (want.0.rows, &want.0.bytes));
            assert_eq!(got.0.columns, METRIC_COLUMNS);
        }
    }

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
