//! `metrics` table rows in RowBinary, written as the points are read from a request: no row
//! struct per point. The columns that every point of one metric shares (service, name, unit,
//! type, temporality) and the resource attributes that every point of one resource shares are
//! encoded once and copied into each row as bytes.

use super::rowbinary::{Reader, put_attributes, put_length, put_str};
use super::rows::EncodedRows;
use crate::model::{Attribute, MetricType};
use crate::size_guess::SizeGuess;
use bytes::{BufMut, BytesMut};
use std::cell::Cell;
use std::ops::Range;

/// Columns of the `metrics` table in the order [`MetricRows`] writes them: the metric's shared
/// columns first, so they are one copied block per row.
pub(crate) const METRIC_COLUMNS: &str = "service, name, unit, metric_type, temporality, \
     is_monotonic, timestamp, time_ns, `attributes.key`, `attributes.value`, \
     `resource.key`, `resource.value`, value, count, sum, bucket_bounds, bucket_counts";

/// What one metric's points share.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MetricColumns<'a> {
    /// Service name from the resource.
    pub(crate) service: &'a str,
    /// Metric name.
    pub(crate) name: &'a str,
    /// Unit.
    pub(crate) unit: &'a str,
    /// Its type.
    pub(crate) metric_type: MetricType,
    /// Aggregation temporality (0 unspecified, 1 delta, 2 cumulative).
    pub(crate) temporality: i8,
    /// Whether a sum is monotonic.
    pub(crate) is_monotonic: bool,
}

/// The values of one point: a gauge's or sum's `value`, a histogram's or summary's `count` and
/// `sum`, a histogram's bucket bounds and counts (one more count than bounds).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PointValues<'a> {
    /// Gauge or sum value.
    pub(crate) value: f64,
    /// Histogram or summary count.
    pub(crate) count: u64,
    /// Histogram or summary sum.
    pub(crate) sum: f64,
    /// Upper bounds of the buckets.
    pub(crate) bounds: &'a [f64],
    /// Counts per bucket.
    pub(crate) counts: &'a [u64],
}

/// Request bytes per item of [`ROW_BYTES`]' guess: the points of a request are not counted
/// before they are read, so the room for its rows is guessed from its size.
const REQUEST_BYTES_PER_ITEM: usize = 16;

thread_local! {
    /// Each thread's bytes of rows per 16 bytes of request in the last request it encoded.
    static ROW_BYTES_PER_ITEM: Cell<usize> = const { Cell::new(32) };
}

/// Room for a request's metric rows: at most 16 times the request (a resource's attributes are
/// written again in every row; more than that grows the buffer).
static ROW_BYTES: SizeGuess = SizeGuess::new(&ROW_BYTES_PER_ITEM, 256);

/// The `metrics` rows of one request, as they are written.
#[derive(Debug, Default)]
pub(crate) struct MetricRows {
    /// The rows so far.
    bytes: BytesMut,
    /// How many.
    rows: usize,
    /// The request's size, in items of [`ROW_BYTES`]' guess.
    request_items: usize,
    /// The current metric's shared columns, encoded.
    metric: BytesMut,
    /// The current resource's attributes, encoded.
    resource: BytesMut,
}

impl MetricRows {
    /// Rows for a request of `request_bytes`, with room guessed from the rows of the thread's
    /// last request.
    pub(crate) fn for_request(request_bytes: usize) -> Self {
        let request_items = request_bytes.div_ceil(REQUEST_BYTES_PER_ITEM);
        Self {
            bytes: BytesMut::with_capacity(ROW_BYTES.room(request_items)),
            request_items,
            ..Self::default()
        }
    }

    /// Rows from here on are of a resource with these attributes.
    pub(crate) fn resource(&mut self, attributes: &[Attribute<'_>]) {
        self.resource.clear();
        put_attributes(&mut self.resource, attributes, &[]);
    }

    /// Rows from here on are points of this metric.
    pub(crate) fn metric(&mut self, metric: &MetricColumns<'_>) {
        let m = &mut self.metric;
        m.clear();
        put_str(m, metric.service);
        put_str(m, metric.name);
        put_str(m, metric.unit);
        m.put_i8(metric.metric_type as i8);
        m.put_i8(metric.temporality);
        m.put_u8(u8::from(metric.is_monotonic));
    }

    /// Appends one point of the current metric and resource.
    pub(crate) fn point(
        &mut self,
        time_ns: u64,
        attributes: &[Attribute<'_>],
        values: &PointValues<'_>,
    ) {
        let b = &mut self.bytes;
        b.put_slice(&self.metric);
        b.put_u32_le(u32::try_from(time_ns / 1_000_000_000).unwrap_or(u32::MAX));
        b.put_u64_le(time_ns);
        put_attributes(b, attributes, &[]);
        b.put_slice(&self.resource);
        b.put_f64_le(values.value);
        b.put_u64_le(values.count);
        b.put_f64_le(values.sum);
        put_length(b, values.bounds.len());
        for bound in values.bounds {
            b.put_f64_le(*bound);
        }
        put_length(b, values.counts.len());
        for count in values.counts {
            b.put_u64_le(*count);
        }
        self.rows += 1;
    }

    /// Points written so far.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// The rows, ready for the writer.
    pub(crate) fn finish(self) -> MetricBatch {
        ROW_BYTES.learn(self.bytes.len(), self.request_items);
        MetricBatch(EncodedRows {
            columns: METRIC_COLUMNS,
            rows: self.rows,
            bytes: self.bytes.freeze(),
        })
    }
}

/// Metric rows in RowBinary, in [`METRIC_COLUMNS`] order: what the metric writer writes.
#[derive(Clone, Debug)]
pub(crate) struct MetricBatch(pub(crate) EncodedRows);

/// One row of encoded metric rows, read back: where it lies and its columns, the arrays as
/// their encoded bytes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MetricRowRead<'a> {
    /// Where the row is in the bytes.
    pub(crate) range: Range<usize>,
    /// Service.
    pub(crate) service: &'a [u8],
    /// Metric name.
    pub(crate) name: &'a [u8],
    /// Unit.
    pub(crate) unit: &'a [u8],
    /// [`MetricType`] as its Enum8 value.
    pub(crate) metric_type: i8,
    /// Temporality.
    pub(crate) temporality: i8,
    /// 1 for monotonic sums.
    pub(crate) is_monotonic: u8,
    /// Point time, whole seconds.
    pub(crate) timestamp: u32,
    /// Point time, nanoseconds since the epoch.
    pub(crate) time_ns: u64,
    /// The point attributes' two arrays (see [`string_pairs`]).
    pub(crate) attributes: &'a [u8],
    /// The resource attributes' two arrays.
    pub(crate) resource: &'a [u8],
    /// Value.
    pub(crate) value: f64,
    /// Count.
    pub(crate) count: u64,
    /// Sum.
    pub(crate) sum: f64,
    /// Bucket bounds.
    pub(crate) bounds: Vec<f64>,
    /// Bucket counts.
    pub(crate) counts: Vec<u64>,
}

/// Walks rows encoded in [`METRIC_COLUMNS`] order; `None` if `bytes` are not such rows.
pub(crate) fn metric_rows(bytes: &[u8]) -> Option<Vec<MetricRowRead<'_>>> {
    let mut r = Reader::new(bytes);
    let mut rows = Vec::new();
    let one = |r: &mut Reader<'_>| r.bytes(1).and_then(|b| b.first().copied());
    while r.remaining() > 0 {
        let start = bytes.len() - r.remaining();
        let (service, name, unit) = (r.str()?, r.str()?, r.str()?);
        let (metric_type, temporality, is_monotonic) = (one(&mut r)?, one(&mut r)?, one(&mut r)?);
        let (timestamp, time_ns) = (r.u32()?, r.u64()?);
        let attributes = string_arrays(&mut r, bytes)?;
        let resource = string_arrays(&mut r, bytes)?;
        let (value, count, sum) = (r.u64()?, r.u64()?, r.u64()?);
        let bounds = (0..r.length()?)
            .map(|_| r.u64().map(f64::from_bits))
            .collect::<Option<_>>()?;
        let counts = (0..r.length()?).map(|_| r.u64()).collect::<Option<_>>()?;
        rows.push(MetricRowRead {
            range: start..bytes.len() - r.remaining(),
            service,
            name,
            unit,
            metric_type: metric_type as i8,
            temporality: temporality as i8,
            is_monotonic,
            timestamp,
            time_ns,
            attributes,
            resource,
            value: f64::from_bits(value),
            count,
            sum: f64::from_bits(sum),
            bounds,
            counts,
        });
    }
    Some(rows)
}

/// Skips the two string arrays of a `Nested(key String, value String)` column; their bytes.
fn string_arrays<'a>(r: &mut Reader<'a>, bytes: &'a [u8]) -> Option<&'a [u8]> {
    let start = bytes.len() - r.remaining();
    r.skip_str_array()?;
    r.skip_str_array()?;
    bytes.get(start..bytes.len() - r.remaining())
}

/// The keys and the values of two encoded string arrays (as [`MetricRowRead`] holds them).
pub(crate) fn string_pairs(arrays: &[u8]) -> Option<(Vec<String>, Vec<String>)> {
    let mut r = Reader::new(arrays);
    let mut array = || {
        (0..r.length()?)
            .map(|_| r.str().map(|s| String::from_utf8_lossy(s).into_owned()))
            .collect::<Option<Vec<_>>>()
    };
    Some((array()?, array()?))
}
