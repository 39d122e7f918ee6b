//! Row types as ClickHouse stores them, one per table, encoded as RowBinary by the
//! `clickhouse` crate. Nested columns are written as parallel arrays (`attributes.key`,
//! `attributes.value`, `latencyMap.bucket`, `latencyMap.count`).

use crate::normalise::Span;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A row of the `spans` table.
#[derive(Clone, Debug, Row, Serialize, Deserialize)]
pub struct SpanRow {
    /// Start time, whole seconds (partition and sort key).
    pub timestamp: u32,
    /// Start time, nanoseconds since the epoch.
    pub start_time_ns: u64,
    /// Duration in nanoseconds.
    pub duration_ns: u64,
    /// Trace id (FixedString(16); `hex(trace_id)` in SQL).
    pub trace_id: [u8; 16],
    /// Span id (FixedString(8)).
    pub span_id: [u8; 8],
    /// Parent span id (FixedString(8)); all zero for a root span.
    pub parent_span_id: [u8; 8],
    /// Service name.
    pub service: Arc<str>,
    /// Operation the span was aggregated under.
    pub operation: String,
    /// Span name.
    pub name: String,
    /// Span kind (Enum8, same numbers as OTLP).
    pub kind: i8,
    /// Status code (Enum8: unset, ok, error).
    pub status_code: i8,
    /// Status message.
    pub status_message: String,
    /// HTTP response status, 0 when none.
    pub http_status_code: u16,
    /// 1 when the span counts as an error.
    pub is_error: u8,
    /// Span attribute keys.
    #[serde(rename = "attributes.key")]
    pub attribute_keys: Vec<String>,
    /// Span attribute values, as text.
    #[serde(rename = "attributes.value")]
    pub attribute_values: Vec<String>,
    /// Resource attribute keys (shared by the spans of one resource).
    #[serde(rename = "resource.key")]
    pub resource_keys: Arc<Vec<String>>,
    /// Resource attribute values, as text.
    #[serde(rename = "resource.value")]
    pub resource_values: Arc<Vec<String>>,
}

impl From<Span> for SpanRow {
    fn from(span: Span) -> Self {
        Self {
            timestamp: u32::try_from(span.start_unix_ns / 1_000_000_000).unwrap_or(u32::MAX),
            start_time_ns: span.start_unix_ns,
            duration_ns: span.duration_ns,
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            service: span.service,
            operation: span.operation,
            name: span.name,
            kind: span.kind,
            status_code: span.status_code,
            status_message: span.status_message,
            http_status_code: span.http_status_code,
            is_error: u8::from(span.is_error),
            attribute_keys: span.attribute_keys,
            attribute_values: span.attribute_values,
            resource_keys: span.resource.keys,
            resource_values: span.resource.values,
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

/// Metric point types (Enum8 in the `metrics` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum MetricType {
    /// A gauge value.
    Gauge = 1,
    /// A sum (counter or up-down counter).
    Sum = 2,
    /// An explicit-bucket histogram.
    Histogram = 3,
    /// An exponential histogram, stored with its buckets turned into explicit bounds.
    ExponentialHistogram = 4,
    /// A summary (count and sum only).
    Summary = 5,
}

/// A row of the `metrics` table: one data point.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct MetricRow {
    /// Point time, whole seconds.
    pub timestamp: u32,
    /// Point time, nanoseconds since the epoch.
    pub time_ns: u64,
    /// Service name from the resource.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// [`MetricType`] as its Enum8 value.
    pub metric_type: i8,
    /// Aggregation temporality (0 unspecified, 1 delta, 2 cumulative).
    pub temporality: i8,
    /// 1 for monotonic sums.
    pub is_monotonic: u8,
    /// Point attribute keys.
    #[serde(rename = "attributes.key")]
    pub attribute_keys: Vec<String>,
    /// Point attribute values, as text.
    #[serde(rename = "attributes.value")]
    pub attribute_values: Vec<String>,
    /// Resource attribute keys.
    #[serde(rename = "resource.key")]
    pub resource_keys: Vec<String>,
    /// Resource attribute values.
    #[serde(rename = "resource.value")]
    pub resource_values: Vec<String>,
    /// Gauge or sum value; 0 for histograms and summaries.
    pub value: f64,
    /// Histogram or summary count.
    pub count: u64,
    /// Histogram or summary sum.
    pub sum: f64,
    /// Upper bounds of the buckets (one fewer than counts: the last bucket is unbounded).
    pub bucket_bounds: Vec<f64>,
    /// Counts per bucket.
    pub bucket_counts: Vec<u64>,
}
