//! Whether a request's spans are in ClickHouse already: the start-up recovery asks this of each
//! journal record whose rows were not noted as written (its `INSERT` may have been in flight at
//! the crash). A request's rows go in one `INSERT`, so its first span stands for all.

use super::Store;
use super::schema::SPANS;

/// What finds one span in the `spans` table (its sort key and id).
#[derive(Debug)]
pub(crate) struct SpanKey {
    /// Service.
    pub(crate) service: String,
    /// Operation.
    pub(crate) operation: String,
    /// Start, ns since the epoch.
    pub(crate) start_unix_ns: u64,
    /// Span id.
    pub(crate) span_id: [u8; 8],
}

/// The query that counts the spans stored with `key` (by the table's sort key, so it reads
/// little).
pub(crate) fn stored_query(store: &Store, key: &SpanKey) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT count() AS stored FROM {SPANS} WHERE service = ? AND operation = ? \
             AND timestamp = toDateTime(?) AND start_time_ns = ? \
             AND reinterpretAsUInt64(span_id) = ?"
        ))
        .bind(&key.service)
        .bind(&key.operation)
        .bind(key.start_unix_ns / 1_000_000_000)
        .bind(key.start_unix_ns)
        .bind(u64::from_le_bytes(key.span_id))
}

/// Whether the span `key` is stored. When ClickHouse cannot say, the answer is no (the rows are
/// written again rather than lost).
pub(crate) async fn is_stored(store: &Store, key: &SpanKey) -> bool {
    stored_query(store, key)
        .fetch_one::<u64>()
        .await
        .map_err(
            |e| tracing::warn!(error = %e, "could not look up replayed rows; writing them again"),
        )
        .is_ok_and(|n| n > 0)
}
