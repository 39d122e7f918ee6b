//! Rows as ClickHouse stores them, one form per table: span rows are encoded to RowBinary
//! directly from the normalised spans (the hot path); latency and metric rows are typed structs
//! the `clickhouse` crate encodes. Nested columns are parallel arrays (`attributes.key`,
//! `attributes.value`, `latencyMap.bucket`, `latencyMap.count`).

use super::rowbinary::{Reader, put_attributes, put_str};
use crate::model::{Attribute, Span, SpanKind};
use crate::size_guess::SizeGuess;
use bytes::{BufMut, Bytes, BytesMut};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::sync::Arc;

/// Columns of the `spans` table in the order [`encode_span`] writes them. The start is the
/// second (`timestamp`) and the nanoseconds within it, the duration whole seconds and
/// nanoseconds (the table's `start_time_ns` and `duration_ns` put them back together): four
/// random-looking bytes each instead of eight, which LZ4 cannot shrink.
pub(crate) const SPAN_COLUMNS: &str = "timestamp, start_subsec_ns, duration_s, duration_subsec_ns, \
     trace_id, span_id, parent_span_id, \
     service, operation, name, kind, status_code, status_message, http_status_code, is_error, \
     `attributes.key`, `attributes.value`, `resource.key`, `resource.value`, attributes_folded";

/// Nanoseconds in a second.
const NS_PER_S: u64 = 1_000_000_000;

/// `attributes_folded` bit: `http.request.method` and `http.route` are left out of the
/// attributes because the operation is exactly `METHOD route` of their values.
pub(crate) const FOLDED_METHOD_AND_ROUTE: u8 = 1;
/// `attributes_folded` bit: `http.response.status_code` is left out of the attributes because
/// `http_status_code` holds the same number (its text was exactly the number's).
pub(crate) const FOLDED_STATUS_CODE: u8 = 2;

const METHOD: &str = "http.request.method";
const ROUTE: &str = "http.route";
const STATUS_CODE: &str = "http.response.status_code";

/// What one pass over a span's attributes saw of one key: its value and place when it came
/// once.
#[derive(Clone, Copy)]
enum Seen<'s> {
    Absent,
    Once(&'s str, usize),
    Repeated,
}

impl<'s> Seen<'s> {
    fn see(&mut self, value: &'s str, at: usize) {
        *self = match self {
            Self::Absent => Self::Once(value, at),
            _ => Self::Repeated,
        };
    }

    fn once(self) -> Option<(&'s str, usize)> {
        match self {
            Self::Once(value, at) => Some((value, at)),
            _ => None,
        }
    }
}

/// The attributes of a span that other columns hold exactly: not stored twice, and
/// [`unfold_attributes`] gives them back.
struct Folded {
    /// The `attributes_folded` bits.
    bits: u8,
    /// Where the folded attributes are in the span's list (the first `count`).
    places: [usize; 3],
    count: usize,
}

impl Folded {
    fn add(&mut self, bit: u8, places: &[usize]) {
        self.bits |= bit;
        for &at in places {
            self.places[self.count] = at;
            self.count += 1;
        }
    }
}

/// What of `span`'s attributes to fold. One pass over the attributes (it runs for every span
/// stored).
fn folded(span: &Span<'_>) -> Folded {
    let (mut method, mut route, mut status) = (Seen::Absent, Seen::Absent, Seen::Absent);
    for (at, (key, value)) in span.attributes.iter().enumerate() {
        match *key {
            METHOD => method.see(value, at),
            ROUTE => route.see(value, at),
            STATUS_CODE => status.see(value, at),
            _ => {}
        }
    }
    let mut folded = Folded {
        bits: 0,
        places: [0; 3],
        count: 0,
    };
    if span.kind == SpanKind::Server
        && let (Some((method, method_at)), Some((route, route_at))) = (method.once(), route.once())
        && span
            .operation()
            .strip_prefix(method)
            .and_then(|rest| rest.strip_prefix(' '))
            == Some(route)
        && !method.contains(' ')
    {
        folded.add(FOLDED_METHOD_AND_ROUTE, &[method_at, route_at]);
    }
    // Exactly the number's text: no sign, leading zero or space (checked without formatting
    // the number, which would allocate per span).
    if span.http_status_code != 0
        && let Some((code, at)) = status.once()
        && code.starts_with(|c: char| matches!(c, '1'..='9'))
        && code.parse::<u16>() == Ok(span.http_status_code)
    {
        folded.add(FOLDED_STATUS_CODE, &[at]);
    }
    folded
}

/// Puts back the attributes a row left out (`folded`, see [`FOLDED_METHOD_AND_ROUTE`] and
/// [`FOLDED_STATUS_CODE`]), after the stored ones.
pub(crate) fn unfold_attributes(
    folded: u8,
    operation: &str,
    http_status_code: u16,
    keys: &mut Vec<String>,
    values: &mut Vec<String>,
) {
    if folded & FOLDED_METHOD_AND_ROUTE != 0
        && let Some((method, route)) = operation.split_once(' ')
    {
        keys.extend([METHOD.to_owned(), ROUTE.to_owned()]);
        values.extend([method.to_owned(), route.to_owned()]);
    }
    if folded & FOLDED_STATUS_CODE != 0 {
        keys.push(STATUS_CODE.to_owned());
        values.push(http_status_code.to_string());
    }
}

/// Appends the start and duration columns.
fn put_times(buf: &mut BytesMut, start_unix_ns: u64, duration_ns: u64) {
    buf.put_u32_le(u32::try_from(start_unix_ns / NS_PER_S).unwrap_or(u32::MAX));
    buf.put_u32_le((start_unix_ns % NS_PER_S) as u32);
    buf.put_u64_le(duration_ns / NS_PER_S);
    buf.put_u32_le((duration_ns % NS_PER_S) as u32);
}

/// The resource attributes of the span encoded last, in RowBinary: the spans of one resource
/// (often all of a request's) copy them in one piece instead of writing each string again.
#[derive(Default)]
struct LastResource<'a> {
    /// The resource (held, so that its address is not reused by another one).
    resource: Option<Arc<Vec<Attribute<'a>>>>,
    /// Its attributes, encoded.
    bytes: BytesMut,
}

impl<'a> LastResource<'a> {
    /// Appends the attributes of `resource`.
    fn put(&mut self, buf: &mut BytesMut, resource: &Arc<Vec<Attribute<'a>>>) {
        if !self
            .resource
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, resource))
        {
            self.bytes.clear();
            put_attributes(&mut self.bytes, resource, &[]);
            self.resource = Some(Arc::clone(resource));
        }
        buf.put_slice(&self.bytes);
    }
}

/// Appends one `spans` row for `span` in RowBinary, in [`SPAN_COLUMNS`] order; `last` holds the
/// resource attributes of the span before, encoded.
fn encode_span<'a>(buf: &mut BytesMut, span: &Span<'a>, last: &mut LastResource<'a>) {
    put_times(buf, span.start_unix_ns, span.duration_ns);
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
    let folded = folded(span);
    put_attributes(buf, span.attributes, &folded.places[..folded.count]);
    last.put(buf, &span.resource);
    buf.put_u8(folded.bits);
}

/// What a replay needs of a span row's columns after the times, through the resource
/// attributes (ids, names, status, the four attribute arrays): the same bytes in the row layout
/// before and after the times were split.
pub(crate) struct RowMiddle<'a> {
    /// The eight bytes of the span id.
    pub(crate) span_id: [u8; 8],
    /// Service.
    pub(crate) service: &'a [u8],
    /// Operation.
    pub(crate) operation: &'a [u8],
}

impl<'a> RowMiddle<'a> {
    /// Reads those columns, leaving `r` after the resource attributes; `None` if the bytes end
    /// first.
    pub(crate) fn read(r: &mut Reader<'a>) -> Option<Self> {
        r.bytes(16)?; // trace id
        let span_id = r.array()?;
        r.bytes(8)?; // parent span id
        let service = r.str()?;
        let operation = r.str()?;
        r.str()?; // name
        r.bytes(2)?; // kind, status code
        r.str()?; // status message
        r.bytes(3)?; // http status code, is_error
        for _ in 0..4 {
            r.skip_str_array()?; // attribute keys and values, resource keys and values
        }
        Some(Self {
            span_id,
            service,
            operation,
        })
    }
}

/// Span rows written before the times were split (start and duration as `UInt64`
/// nanoseconds, no `attributes_folded`; a spool file left by an older collector) in today's
/// [`SPAN_COLUMNS`] order; `None` if the bytes are not such rows.
pub(crate) fn rows_from_before_the_split(bytes: &[u8]) -> Option<Bytes> {
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut r = Reader::new(bytes);
    while r.remaining() > 0 {
        r.u32()?; // the second, which the start gives again
        let start_unix_ns = r.u64()?;
        let duration_ns = r.u64()?;
        let middle = bytes.len() - r.remaining();
        RowMiddle::read(&mut r)?;
        put_times(&mut out, start_unix_ns, duration_ns);
        out.put_slice(&bytes[middle..bytes.len() - r.remaining()]);
        out.put_u8(0);
    }
    Some(out.freeze())
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
    /// Each thread's bytes per span row in the last request it encoded.
    static BYTES_PER_SPAN: Cell<usize> = const { Cell::new(256) };
}

/// Room for a request's span rows: at most 4 KiB a row.
static SPAN_ROW_BYTES: SizeGuess = SizeGuess::new(&BYTES_PER_SPAN, 4096);

impl EncodedRows {
    /// Encodes `spans` as `spans` table rows. They are written in place into the buffer that
    /// waits in the writer's batch until written, sized an eighth above the thread's last
    /// request's bytes per span: it rarely grows (which copies it) and holds little unused room.
    pub(crate) fn spans(spans: &[Span<'_>]) -> Self {
        let mut bytes = BytesMut::with_capacity(SPAN_ROW_BYTES.room(spans.len()));
        let mut last = LastResource::default();
        for span in spans {
            encode_span(&mut bytes, span, &mut last);
        }
        SPAN_ROW_BYTES.learn(bytes.len(), spans.len());
        Self {
            columns: SPAN_COLUMNS,
            rows: spans.len(),
            bytes: bytes.freeze(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;

    fn span(operation: &str, attributes: Vec<Attribute<'static>>) -> Span<'static> {
        Span {
            start_unix_ns: 1_800_000_123_456_789_012,
            duration_ns: 5_000_000_007,
            // Leaked: a test's few spans live as long as it does.
            attributes: attributes.leak(),
            ..Span::example(operation)
        }
    }

    /// One row's attribute arrays (keys, values, resource keys, resource values) and its
    /// `attributes_folded`, read from `r`.
    fn read_row(r: &mut Reader<'_>) -> ([Vec<String>; 4], u8) {
        r.bytes(20).expect("times");
        for n in [16, 8, 8] {
            r.bytes(n).expect("ids");
        }
        for _ in 0..3 {
            r.str().expect("names");
        }
        r.bytes(2).expect("kind, status");
        r.str().expect("status message");
        r.bytes(3).expect("http status, is_error");
        let mut array = || -> Vec<String> {
            (0..r.length().expect("count"))
                .map(|_| String::from_utf8(r.str().expect("item").to_vec()).expect("utf-8"))
                .collect()
        };
        let arrays = [array(), array(), array(), array()];
        (arrays, r.bytes(1).expect("attributes_folded")[0])
    }

    /// The attributes a row stores and its `attributes_folded`, read back from its bytes.
    fn stored_attributes(row: &[u8]) -> (Vec<String>, Vec<String>, u8) {
        let mut r = Reader::new(row);
        let ([keys, values, _, _], folded) = read_row(&mut r);
        assert_eq!(r.remaining(), 0);
        (keys, values, folded)
    }

    #[test]
    fn each_row_has_its_own_resource_when_resources_take_turns() {
        let resource = |name: &'static str| Arc::new(vec![("service.name", name)]);
        let (a, b) = (resource("a"), resource("b"));
        let spans: Vec<Span<'static>> = [&a, &a, &b, &a, &b, &b]
            .into_iter()
            .map(|resource| Span {
                resource: Arc::clone(resource),
                ..span("GET /x", vec![])
            })
            .collect();
        let rows = EncodedRows::spans(&spans);
        let mut r = Reader::new(&rows.bytes);
        let names: Vec<String> = (0..rows.rows)
            .map(|_| {
                let ([_, _, keys, values], _) = read_row(&mut r);
                assert_eq!(keys, ["service.name"]);
                values.concat()
            })
            .collect();
        assert_eq!(names, ["a", "a", "b", "a", "b", "b"]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn times_are_split_into_seconds_and_nanoseconds() {
        let mut buf = BytesMut::new();
        encode_span(
            &mut buf,
            &span("GET /cart", vec![]),
            &mut LastResource::default(),
        );
        let mut r = Reader::new(&buf);
        assert_eq!(r.u32(), Some(1_800_000_123));
        assert_eq!(r.u32(), Some(456_789_012));
        assert_eq!(r.u64(), Some(5));
        assert_eq!(r.u32(), Some(7));
    }

    #[test]
    fn attributes_other_columns_hold_are_stored_once_and_given_back() {
        let attributes = vec![
            ("http.request.method", "GET"),
            ("url.path", "/users/42"),
            ("http.route", "/users/{id}"),
            ("http.response.status_code", "200"),
        ];
        let mut buf = BytesMut::new();
        encode_span(
            &mut buf,
            &span("GET /users/{id}", attributes.clone()),
            &mut LastResource::default(),
        );
        let (mut keys, mut values, folded) = stored_attributes(&buf);
        assert_eq!(folded, FOLDED_METHOD_AND_ROUTE | FOLDED_STATUS_CODE);
        assert_eq!(
            (keys.as_slice(), values.as_slice()),
            (&["url.path".to_owned()][..], &["/users/42".to_owned()][..])
        );
        unfold_attributes(folded, "GET /users/{id}", 200, &mut keys, &mut values);
        let mut back: Vec<(String, String)> = keys.into_iter().zip(values).collect();
        let mut sent: Vec<(String, String)> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        back.sort();
        sent.sort();
        assert_eq!(back, sent);

        // Kept whenever the other column would not give back the same text.
        for (operation, attributes) in [
            // A lower-case method: the operation has it in upper case.
            (
                "GET /a",
                vec![("http.request.method", "get"), ("http.route", "/a")],
            ),
            // The route repeated.
            (
                "GET /a",
                vec![
                    ("http.request.method", "GET"),
                    ("http.route", "/a"),
                    ("http.route", "/a"),
                ],
            ),
            // Past the operation cap.
            (
                "[overflow]",
                vec![("http.request.method", "GET"), ("http.route", "/a")],
            ),
            // A status code whose text is not exactly the number's.
            ("x", vec![("http.response.status_code", " 200")]),
            ("x", vec![("http.response.status_code", "0200")]),
            ("x", vec![("http.response.status_code", "+200")]),
        ] {
            buf.clear();
            encode_span(
                &mut buf,
                &span(operation, attributes.clone()),
                &mut LastResource::default(),
            );
            let (keys, _, folded) = stored_attributes(&buf);
            assert_eq!(folded, 0, "{attributes:?}");
            assert_eq!(keys.len(), attributes.len());
        }
    }

    #[test]
    fn rows_spooled_before_the_split_are_re_encoded() {
        let spans = [span("GET /cart", vec![("a", "b")]), span("GET /x", vec![])];
        let today = EncodedRows::spans(&spans).bytes;
        let mut before = BytesMut::new();
        for span in &spans {
            let mut row = BytesMut::new();
            encode_span(&mut row, span, &mut LastResource::default());
            before.put_u32_le(1_800_000_123);
            before.put_u64_le(span.start_unix_ns);
            before.put_u64_le(span.duration_ns);
            before.put_slice(&row[20..row.len() - 1]);
        }
        assert_eq!(rows_from_before_the_split(&before), Some(today));
        assert_eq!(
            rows_from_before_the_split(&before[..before.len() - 1]),
            None
        );
    }
}
