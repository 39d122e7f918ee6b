//! Which rows of a batch ClickHouse holds already. A write that was given up after
//! `--write-timeout` may still be carried out by a slow or frozen server, and an `INSERT` in
//! flight at a crash may have landed; before such rows are written again (from the spool, a retry
//! or the journal) this finds out what is stored, so that no span and no metric point is stored
//! twice.
//!
//! ClickHouse writes the rows of one `INSERT` that fall in one partition (a day) as one part,
//! entirely or not at all. So a batch is split into pieces of rows that cannot straddle a
//! partition boundary (a quarter of an hour: every time zone's midnight falls on one), and the
//! first row of each piece stands for the piece: one lookup says whether all of it is stored.

use super::metric_rows::{MetricRowRead, metric_rows, string_pairs};
use super::rowbinary::Reader;
use super::rows::{EncodedRows, RowMiddle};
use super::schema::{METRICS, SPANS};
use super::{Store, StoreError};
use bytes::{Bytes, BytesMut};
use std::collections::HashSet;
use std::ops::Range;

/// Seconds in a piece: the rows of one piece are in one partition in any time zone.
const PIECE_SECONDS: u32 = 900;

/// Pieces looked up in one query.
const KEYS_PER_QUERY: usize = 100;

/// What finds one span in the `spans` table (its sort key and id).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SpanKey {
    /// Service.
    pub(crate) service: String,
    /// Operation.
    pub(crate) operation: String,
    /// Start, ns since the epoch.
    pub(crate) start_unix_ns: u64,
    /// Span id, as ClickHouse's `reinterpretAsUInt64` reads its eight bytes.
    pub(crate) span_id: u64,
}

/// What finds one metric point in the `metrics` table (its sort key, time and series).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct MetricKey {
    /// Service.
    pub(crate) service: String,
    /// Metric name.
    pub(crate) name: String,
    /// Point time, ns since the epoch.
    pub(crate) time_ns: u64,
    /// Point attribute keys.
    pub(crate) attribute_keys: Vec<String>,
    /// Point attribute values.
    pub(crate) attribute_values: Vec<String>,
}

/// One span row of an encoded batch: where it lies, its piece, and its key's parts.
struct SpanRow<'a> {
    range: Range<usize>,
    piece: u32,
    service: &'a [u8],
    operation: &'a [u8],
    start_unix_ns: u64,
    span_id: u64,
}

impl SpanRow<'_> {
    fn key(&self) -> SpanKey {
        SpanKey {
            service: String::from_utf8_lossy(self.service).into_owned(),
            operation: String::from_utf8_lossy(self.operation).into_owned(),
            start_unix_ns: self.start_unix_ns,
            span_id: self.span_id,
        }
    }
}

/// Walks span rows encoded in [`super::rows::SPAN_COLUMNS`] order; `None` if `bytes` are not such rows.
fn span_rows(bytes: &[u8]) -> Option<Vec<SpanRow<'_>>> {
    let mut r = Reader::new(bytes);
    let mut rows = Vec::new();
    while r.remaining() > 0 {
        let start = bytes.len() - r.remaining();
        let timestamp = r.u32()?;
        let subsec_ns = r.u32()?;
        r.u64()?; // duration, whole seconds
        r.u32()?; // and nanoseconds
        let middle = RowMiddle::read(&mut r)?;
        r.bytes(1)?; // attributes_folded
        rows.push(SpanRow {
            range: start..bytes.len() - r.remaining(),
            piece: timestamp / PIECE_SECONDS,
            service: middle.service,
            operation: middle.operation,
            start_unix_ns: u64::from(timestamp) * 1_000_000_000 + u64::from(subsec_ns),
            span_id: u64::from_le_bytes(middle.span_id),
        });
    }
    Some(rows)
}

/// The query that finds which of `keys` are stored (by the table's sort key, so it reads
/// little).
pub(crate) fn stored_spans_query(store: &Store, keys: &[SpanKey]) -> clickhouse::query::Query {
    lookup_query(
        store,
        &format!(
            "SELECT service, operation, start_time_ns, reinterpretAsUInt64(span_id) AS id \
             FROM {SPANS}"
        ),
        "(service = ? AND operation = ? AND timestamp = toDateTime(?) \
         AND start_subsec_ns = ? AND reinterpretAsUInt64(span_id) = ?)",
        keys,
        |query, key| {
            query
                .bind(&key.service)
                .bind(&key.operation)
                .bind(key.start_unix_ns / 1_000_000_000)
                .bind(key.start_unix_ns % 1_000_000_000)
                .bind(key.span_id)
        },
    )
}

/// The query that finds the stored points with the sort key and time of `keys` (their series
/// are compared by the caller).
pub(crate) fn stored_metrics_query(store: &Store, keys: &[MetricKey]) -> clickhouse::query::Query {
    lookup_query(
        store,
        &format!(
            "SELECT service, name, time_ns, attributes.key AS point_keys, \
             attributes.value AS point_values FROM {METRICS}"
        ),
        "(service = ? AND name = ? AND timestamp = toDateTime(?) AND time_ns = ?)",
        keys,
        |query, key| {
            query
                .bind(&key.service)
                .bind(&key.name)
                .bind(key.time_ns / 1_000_000_000)
                .bind(key.time_ns)
        },
    )
}

/// `select` with a `WHERE` of one condition `one` per key, joined by `OR`, each bound by `bind`.
fn lookup_query<K>(
    store: &Store,
    select: &str,
    one: &str,
    keys: &[K],
    bind: impl Fn(clickhouse::query::Query, &K) -> clickhouse::query::Query,
) -> clickhouse::query::Query {
    let query = store
        .client()
        .query(&format!("{select} WHERE {}", disjunction(one, keys.len())));
    keys.iter().fold(query, bind)
}

/// `n` copies of `one` joined by `OR` (`0` for none).
fn disjunction(one: &str, n: usize) -> String {
    if n == 0 {
        return "0".into();
    }
    vec![one; n].join(" OR ")
}

/// The keys among `keys` that ClickHouse holds.
async fn stored_spans(store: &Store, keys: &[SpanKey]) -> Result<HashSet<SpanKey>, StoreError> {
    let mut found = HashSet::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let rows = stored_spans_query(store, chunk)
            .fetch_all::<(String, String, u64, u64)>()
            .await
            .map_err(StoreError::clickhouse("look up stored spans"))?;
        found.extend(
            rows.into_iter()
                .map(|(service, operation, start, id)| SpanKey {
                    service,
                    operation,
                    start_unix_ns: start,
                    span_id: id,
                }),
        );
    }
    Ok(found)
}

/// A stored point as [`stored_metrics_query`] reads it.
#[derive(clickhouse::Row, serde::Deserialize)]
struct StoredPoint {
    service: String,
    name: String,
    time_ns: u64,
    point_keys: Vec<String>,
    point_values: Vec<String>,
}

/// The keys among `keys` that ClickHouse holds.
async fn stored_metrics(
    store: &Store,
    keys: &[MetricKey],
) -> Result<HashSet<MetricKey>, StoreError> {
    let mut found = HashSet::new();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let rows = stored_metrics_query(store, chunk)
            .fetch_all::<StoredPoint>()
            .await
            .map_err(StoreError::clickhouse("look up stored metric points"))?;
        found.extend(rows.into_iter().map(|p| MetricKey {
            service: p.service,
            name: p.name,
            time_ns: p.time_ns,
            attribute_keys: p.point_keys,
            attribute_values: p.point_values,
        }));
    }
    Ok(found)
}

/// A row of an encoded batch, as a replay sees it: where it lies, its piece, and what finds it
/// in its table.
trait WalkedRow {
    /// What finds the row.
    type Key: Eq + std::hash::Hash;
    /// Where the row is in its batch's bytes.
    fn range(&self) -> Range<usize>;
    /// Its piece.
    fn piece(&self) -> u32;
    /// What finds it.
    fn key(&self) -> Self::Key;
}

impl WalkedRow for SpanRow<'_> {
    type Key = SpanKey;
    fn range(&self) -> Range<usize> {
        self.range.clone()
    }
    fn piece(&self) -> u32 {
        self.piece
    }
    fn key(&self) -> SpanKey {
        SpanRow::key(self)
    }
}

impl WalkedRow for MetricRowRead<'_> {
    type Key = MetricKey;
    fn range(&self) -> Range<usize> {
        self.range.clone()
    }
    fn piece(&self) -> u32 {
        self.timestamp / PIECE_SECONDS
    }
    fn key(&self) -> MetricKey {
        let (attribute_keys, attribute_values) = string_pairs(self.attributes).unwrap_or_default();
        MetricKey {
            service: String::from_utf8_lossy(self.service).into_owned(),
            name: String::from_utf8_lossy(self.name).into_owned(),
            time_ns: self.time_ns,
            attribute_keys,
            attribute_values,
        }
    }
}

/// The keys to look up for `walked` batches: the first row of each piece.
fn keys_of_pieces<R: WalkedRow>(walked: &[Option<Vec<R>>]) -> Vec<R::Key> {
    walked
        .iter()
        .flatten()
        .flat_map(|rows| first_of_each_piece(rows, R::piece).map(R::key))
        .collect()
}

/// The rows of `batches` (walked into `walked`) that are not in pieces whose first row is
/// `stored`: batches stored whole are left out, batches stored in part keep only their pieces
/// not stored. A batch whose bytes could not be walked is kept as it is (ClickHouse will refuse
/// it and it is set aside).
fn keep_unstored<R: WalkedRow>(
    batches: &[EncodedRows],
    walked: &[Option<Vec<R>>],
    stored: &HashSet<R::Key>,
) -> Vec<EncodedRows> {
    let mut out = Vec::with_capacity(batches.len());
    for (batch, rows) in batches.iter().zip(walked) {
        let Some(rows) = rows else {
            out.push(batch.clone());
            continue;
        };
        let stored_pieces: HashSet<u32> = first_of_each_piece(rows, R::piece)
            .filter(|r| stored.contains(&r.key()))
            .map(R::piece)
            .collect();
        if stored_pieces.is_empty() {
            out.push(batch.clone());
            continue;
        }
        let mut bytes = BytesMut::new();
        let mut kept = 0;
        for row in rows.iter().filter(|r| !stored_pieces.contains(&r.piece())) {
            bytes.extend_from_slice(&batch.bytes[row.range()]);
            kept += 1;
        }
        if kept > 0 {
            out.push(EncodedRows {
                columns: batch.columns,
                rows: kept,
                bytes: Bytes::from(bytes),
            });
        }
    }
    out
}

/// The span rows of `batches` that ClickHouse does not hold (see [`keep_unstored`]).
pub(crate) async fn unstored_spans(
    store: &Store,
    batches: &[EncodedRows],
) -> Result<Vec<EncodedRows>, StoreError> {
    let walked: Vec<_> = batches.iter().map(|b| span_rows(&b.bytes)).collect();
    let stored = stored_spans(store, &keys_of_pieces(&walked)).await?;
    Ok(keep_unstored(batches, &walked, &stored))
}

/// The metric rows of `batches` that ClickHouse does not hold, by the same pieces as spans.
pub(crate) async fn unstored_metrics(
    store: &Store,
    batches: &[EncodedRows],
) -> Result<Vec<EncodedRows>, StoreError> {
    let walked: Vec<_> = batches.iter().map(|b| metric_rows(&b.bytes)).collect();
    let stored = stored_metrics(store, &keys_of_pieces(&walked)).await?;
    Ok(keep_unstored(batches, &walked, &stored))
}

/// The first item of each piece (by `piece_of`), in order of first appearance.
fn first_of_each_piece<T>(items: &[T], piece_of: impl Fn(&T) -> u32) -> impl Iterator<Item = &T> {
    let mut seen = HashSet::new();
    items.iter().filter(move |item| seen.insert(piece_of(item)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, Span};

    const ROUTE: &[Attribute<'static>] = &[("http.route", "/cart")];

    fn span(start_s: u64, id: u8) -> Span<'static> {
        Span {
            name: "cart",
            span_id: [id; 8],
            start_unix_ns: start_s * 1_000_000_000 + 5,
            attributes: ROUTE,
            ..Span::example("GET /cart")
        }
    }

    #[test]
    fn span_rows_are_walked_with_their_keys_and_pieces() {
        let spans = [
            span(1_800_000_000, 1),
            span(1_800_000_899, 2),
            span(1_800_000_900, 3),
        ];
        let encoded = EncodedRows::spans(&spans);
        let rows = span_rows(&encoded.bytes).expect("span rows");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].range.end, encoded.bytes.len());
        assert_eq!(rows[0].range.end, rows[1].range.start);
        let key = rows[1].key();
        assert_eq!(
            (key.service.as_str(), key.operation.as_str()),
            ("shop", "GET /cart")
        );
        assert_eq!(key.start_unix_ns, 1_800_000_899_000_000_005);
        assert_eq!(key.span_id, u64::from_le_bytes([2; 8]));
        let firsts: Vec<u64> = first_of_each_piece(&rows, |r| r.piece)
            .map(|r| r.start_unix_ns / 1_000_000_000)
            .collect();
        assert_eq!(firsts, [1_800_000_000, 1_800_000_900], "two pieces");
        assert!(span_rows(&encoded.bytes[..encoded.bytes.len() - 1]).is_none());
        assert!(span_rows(b"not rows").is_none());
    }

    #[test]
    fn metric_rows_are_walked_with_their_keys_and_pieces() {
        use crate::model::MetricType;
        use crate::store::metric_rows::{MetricColumns, MetricRows, PointValues};
        let mut rows = MetricRows::default();
        rows.resource(&[("host.name", "box-1")]);
        rows.metric(&MetricColumns {
            service: "shop",
            name: "latency",
            unit: "s",
            metric_type: MetricType::Histogram,
            temporality: 1,
            is_monotonic: false,
        });
        let values = PointValues {
            bounds: &[0.5],
            counts: &[1, 2],
            ..PointValues::default()
        };
        for (s, route) in [
            (1_800_000_000, "/a"),
            (1_800_000_899, "/b"),
            (1_800_000_900, "/c"),
        ] {
            rows.point(s * 1_000_000_000 + 7, &[("route", route)], &values);
        }
        let batch = rows.finish().0;
        let walked = metric_rows(&batch.bytes).expect("metric rows");
        assert_eq!(walked.len(), 3);
        assert_eq!(walked[2].range.end, batch.bytes.len());
        assert_eq!(walked[0].range.end, walked[1].range.start);
        let key = WalkedRow::key(&walked[1]);
        assert_eq!(
            (key.service.as_str(), key.name.as_str()),
            ("shop", "latency")
        );
        assert_eq!(key.time_ns, 1_800_000_899_000_000_007);
        assert_eq!(
            (key.attribute_keys, key.attribute_values),
            (vec!["route".to_owned()], vec!["/b".to_owned()])
        );
        assert_eq!(
            (&walked[1].bounds[..], &walked[1].counts[..]),
            (&[0.5][..], &[1, 2][..])
        );
        let firsts: Vec<u32> = first_of_each_piece(&walked, WalkedRow::piece)
            .map(|r| r.timestamp)
            .collect();
        assert_eq!(firsts, [1_800_000_000, 1_800_000_900], "two pieces");

        // Of two batches, the one whose pieces are all stored is left out, and of the other only
        // the piece not stored is kept.
        let second = EncodedRows {
            bytes: batch.bytes.slice(walked[2].range.clone()),
            rows: 1,
            ..batch.clone()
        };
        let batches = [batch.clone(), second];
        let walked: Vec<_> = batches.iter().map(|b| metric_rows(&b.bytes)).collect();
        let keys = keys_of_pieces(&walked);
        assert_eq!(
            keys.len(),
            3,
            "two pieces of the first batch, one of the second"
        );
        let stored: HashSet<MetricKey> = [keys[0].clone()].into();
        let kept = keep_unstored(&batches, &walked, &stored);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].rows, 1, "the first batch's piece not stored");
        let last = metric_rows(&kept[0].bytes).expect("rows");
        assert_eq!(last[0].timestamp, 1_800_000_900);
        assert_eq!(kept[1].bytes, batches[1].bytes, "the second batch whole");
        let stored: HashSet<MetricKey> = [keys[0].clone(), keys[1].clone()].into();
        assert!(
            keep_unstored(&batches, &walked, &stored).is_empty(),
            "batches stored whole are left out (the second's point is the first's last)"
        );
        assert!(metric_rows(&batches[0].bytes[..batches[0].bytes.len() - 1]).is_none());
    }

    #[test]
    fn an_empty_lookup_asks_for_nothing() {
        assert_eq!(disjunction("(a = ?)", 0), "0");
        assert_eq!(disjunction("(a = ?)", 2), "(a = ?) OR (a = ?)");
    }
}
