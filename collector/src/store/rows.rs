//! Rows as ClickHouse stores them, one form per table: span rows are encoded to RowBinary
//! directly from the normalised spans (the hot path); latency and metric rows are typed structs
//! the `clickhouse` crate encodes. Nested columns are parallel arrays (`attributes.key`,
//! `attributes.value`, `latencyMap.bucket`, `latencyMap.count`).

use super::rowbinary::{put_attributes, put_str};
use crate::model::Span;
use bytes::{BufMut, Bytes, BytesMut};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// Columns of the `spans` table in the order [`encode_span`] writes them.
pub(crate) const SPAN_COLUMNS: &str = "timestamp, start_time_ns, duration_ns, trace_id, span_id, parent_span_id, \
     service, operation, name, kind, status_code, status_message, http_status_code, is_error, \
     `attributes.key`, `attributes.value`, `resource.key`, `resource.value`";

/// Appends one `spans` row for `span` in RowBinary, in [`SPAN_COLUMNS`] order.
pub(crate) fn encode_span(buf: &mut BytesMut, span: &Span<'_>) {
    buf.put_u32_le(u32::try_from(span.start_unix_ns / 1_000_000_000).unwrap_or(u32::MAX));
    buf.put_u64_le(span.start_unix_ns);
    buf.put_u64_le(span.duration_ns);
    buf.put_slice(&span.trace_id);
    buf.put_slice(&span.span_id);
    buf.put_slice(&span.parent_span_id);
    put_str(buf, span.service());
    put_str(buf, span.operation());
    put_str(buf, span.name);
    buf.put_i8(span.kind as i8);
    buf.put_i8(span.status_code);
    put_str(buf, span.status_message);
    buf.put_u16_le(span.http_status_code);
    buf.put_u8(u8::from(span.is_error));
    put_attributes(buf, &span.attributes);
    put_attributes(buf, &span.resource);
}

/// Rows already encoded as RowBinary, with the column list they follow.
#[derive(Clone, Debug)]
pub(crate) struct EncodedRows {
    /// Column list for the `INSERT`.
    pub(crate) columns: &'static str,
    /// Number of rows in `bytes`.
    pub(crate) rows: usize,
    /// The rows.
    pub(crate) bytes: Bytes,
}

thread_local! {
    /// Each thread's encoding buffer, kept between requests: it stays in memory at the size of
    /// the largest request, so encoding neither grows a buffer nor touches fresh pages.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

impl EncodedRows {
    /// Encodes `spans` as `spans` table rows, held in a buffer of exactly their size (it waits
    /// in the writer's batch until written).
    pub(crate) fn spans(spans: &[Span<'_>]) -> Self {
        let bytes = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            for span in spans {
                encode_span(scratch, span);
            }
            Bytes::copy_from_slice(scratch)
        });
        Self {
            columns: SPAN_COLUMNS,
            rows: spans.len(),
            bytes,
        }
    }
}

/// A row of the `latency_minute` table: one key's histogram for one minute.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct LatencyRow {
    /// Start of the minute, seconds since the epoch.
    pub minute: u32,
    /// Service name.
    pub service: String,
    /// Operation.
    pub operation: String,
    /// Span kind (Enum8, same numbers as OTLP).
    pub kind: i8,
    /// Spans counted.
    pub requests: u64,
    /// Spans that were errors.
    pub errors: u64,
    /// Sum of durations in microseconds.
    pub duration_sum_us: u64,
    /// HDR bucket keys (microseconds), ascending.
    #[serde(rename = "latencyMap.bucket")]
    pub buckets: Vec<u64>,
    /// Counts per bucket.
    #[serde(rename = "latencyMap.count")]
    pub counts: Vec<u64>,
}

/// A row of the `breakdown_minute` table: one endpoint's time in one component for one minute.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// Start of the minute, seconds since the epoch.
    pub minute: u32,
    /// The endpoint's service.
    pub service: String,
    /// The endpoint's operation.
    pub operation: String,
    /// `ComponentType` as its Enum8 value.
    pub component_type: i8,
    /// The component's label (empty for `request` and `self`).
    pub component: String,
    /// Requests that made at least one such call (for `request` and `self`: requests analysed).
    pub requests: u64,
    /// Calls.
    pub calls: u64,
    /// Time in microseconds (for `self`: time when no child ran; for `request`: the whole).
    pub duration_sum_us: u64,
}
