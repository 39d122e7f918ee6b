//! Span validation and normalisation, straight from the protobuf bytes.
//!
//! In: an encoded `ExportTraceServiceRequest`. Out: [`Span`]s that borrow their text from the
//! request and their attributes from one list for the whole request (no allocation per span or
//! per attribute, integers aside), with service and operation resolved, timing in
//! nanoseconds, the error flag (status ERROR, or HTTP 5xx on SERVER spans) and attribute values
//! as text. Spans with invalid ids or timestamps outside the accepted window are rejected one by
//! one; the rest of the batch is kept. Bytes that are not a valid request are a [`WireError`].
//!
//! Only what Plumb stores is read: span events, links, trace state and scope details are skipped.

use super::operation::{NameLimiter, operation_name};
use super::wire_attributes::{attribute_run, key_value, resource_and_scopes};
use super::{Normalised, UNKNOWN_SERVICE};
use crate::model::{Attribute, Named, Span, SpanKind, find};
use crate::size_guess::SizeGuess;
use bumpalo::Bump;
use plumb_otlp::wire::{Fields, WireError};
use std::cell::Cell;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Which timestamps are believable, and how much one span or request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanLimits {
    /// Spans that started longer ago than this are rejected.
    pub(crate) max_age: Duration,
    /// Spans that start further than this in the future are rejected (clock skew allowance).
    pub(crate) max_future: Duration,
    /// Attributes kept per span (and per resource); the rest are dropped and counted.
    pub(crate) max_attributes: usize,
    /// Longest attribute value kept, in bytes; longer values are cut at a character boundary
    /// and counted.
    pub(crate) max_value_bytes: usize,
    /// Spans one request may hold; a request with more is refused whole.
    pub(crate) max_spans: usize,
}

/// Why a trace request is refused whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TraceRequestError {
    /// The bytes are not a valid request.
    #[error(transparent)]
    Malformed(#[from] WireError),
    /// More spans than `max_spans`.
    #[error("the request holds more than {0} spans (max-spans-per-request); send smaller batches")]
    TooManySpans(usize),
}

/// Attributes dropped and values cut while reading a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Truncations {
    /// Attributes over the per-span limit.
    pub(crate) attributes_dropped: u64,
    /// Values cut to the length limit.
    pub(crate) values_truncated: u64,
}

impl Truncations {
    /// Adds `attribute` to `attributes`, whose own list starts at `start`, within the limits,
    /// counting what is dropped or cut. Inlined: called on its own it got the attribute through
    /// memory the caller had just written in smaller pieces, and reading it back in one waited
    /// on those writes (half its samples at 300k spans/s on one instruction, in `perf`).
    #[inline(always)]
    pub(super) fn push<'a>(
        &mut self,
        attributes: &mut Vec<Attribute<'a>>,
        start: usize,
        (key, mut value): Attribute<'a>,
        limits: &SpanLimits,
    ) {
        if attributes.len() - start >= limits.max_attributes {
            self.attributes_dropped += 1;
            return;
        }
        if value.len() > limits.max_value_bytes {
            let cut = value.floor_char_boundary(limits.max_value_bytes);
            value = &value[..cut];
            self.values_truncated += 1;
        }
        attributes.push((key, value));
    }
}

/// The fields of one span as found on the wire, before validation.
#[derive(Default)]
struct WireSpan<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    /// Where its attributes are in the request's list.
    attributes: Range<usize>,
    status_code: i32,
    status_message: &'a str,
}

/// Reads one span, appending its attributes to `attributes` (the request's list).
fn wire_span<'a>(
    bytes: &'a [u8],
    attributes: &mut Vec<Attribute<'a>>,
    arena: &'a Bump,
    limits: &SpanLimits,
    truncations: &mut Truncations,
) -> Result<WireSpan<'a>, WireError> {
    let start = attributes.len();
    let mut span = WireSpan::default();
    // The span's attributes, one after the other, checked as UTF-8 once at the first of them.
    let mut run = None;
    for field in Fields::new(bytes) {
        match field? {
            (1, v) => span.trace_id = v.bytes()?,
            (2, v) => span.span_id = v.bytes()?,
            (4, v) => span.parent_span_id = v.bytes()?,
            (5, v) => span.name = v.str()?,
            (6, v) => span.kind = v.varint()? as i32,
            (7, v) => span.start = v.fixed64()?,
            (8, v) => span.end = v.fixed64()?,
            (9, v) => {
                let kv = v.bytes()?;
                let run = run.get_or_insert_with(|| attribute_run(bytes, kv));
                truncations.push(attributes, start, key_value(kv, run, arena)?, limits);
            }
            (15, v) => {
                for field in Fields::new(v.bytes()?) {
                    match field? {
                        (2, v) => span.status_message = v.str()?,
                        (3, v) => span.status_code = v.varint()? as i32,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    span.attributes = start..attributes.len();
    Ok(span)
}

thread_local! {
    /// Each thread's attributes per span in the last request it read.
    static ATTRIBUTES_PER_SPAN: Cell<usize> = const { Cell::new(8) };
}

/// Room in a request's attribute list: at most 64 attributes a span.
static SPAN_ATTRIBUTES: SizeGuess = SizeGuess::new(&ATTRIBUTES_PER_SPAN, 64);

/// Validates and normalises every span of an encoded export request. The spans' attributes are
/// kept in `attributes`, one list for the whole request.
pub(crate) fn normalise_traces<'a>(
    request: &'a [u8],
    attributes: &'a mut Vec<Attribute<'a>>,
    arena: &'a Bump,
    limits: SpanLimits,
    operations: &NameLimiter,
    now_unix_ns: u64,
) -> Result<Normalised<Vec<Span<'a>>>, TraceRequestError> {
    let mut out: Normalised<Vec<Span<'a>>> = Normalised::default();
    // Where each accepted span's attributes are in `attributes`, in the order of `accepted`.
    let mut places = Vec::new();
    let mut truncations = Truncations::default();
    let window = Window {
        earliest: now_unix_ns.saturating_sub(limits.max_age.as_nanos() as u64),
        latest: now_unix_ns.saturating_add(limits.max_future.as_nanos() as u64),
    };
    operations.with_batch(|admit| {
        for field in Fields::new(request) {
            let (1, resource_spans) = field? else {
                continue;
            };
            let mut resource_attributes = Vec::new();
            let scopes = resource_and_scopes(resource_spans.bytes()?, arena, |kv| {
                truncations.push(&mut resource_attributes, 0, kv, &limits);
            })?;
            let resource = Arc::new(resource_attributes);
            let service = match find(&resource, "service.name") {
                Some(name) if !name.is_empty() => name,
                _ => UNKNOWN_SERVICE,
            };
            let unknown = service == UNKNOWN_SERVICE;
            for scope in scopes {
                // Room for the scope's spans at once: a span is moved once, not again each time
                // the list grows (a malformed field is reported by the loop below).
                let spans = Fields::new(scope)
                    .filter(|f| matches!(f, Ok((2, _))))
                    .count();
                out.accepted.reserve(spans.min(limits.max_spans));
                places.reserve(spans.min(limits.max_spans));
                attributes.reserve(SPAN_ATTRIBUTES.room(spans.min(limits.max_spans)));
                for field in Fields::new(scope) {
                    let (2, span) = field? else { continue };
                    if unknown {
                        out.unknown_service += 1;
                    }
                    let names = |kind: SpanKind, name: &str, attributes: &[Attribute<'_>]| {
                        admit(service, &operation_name(kind, name, attributes))
                    };
                    if out.accepted.len() as u64 + out.rejected >= limits.max_spans as u64 {
                        return Err(TraceRequestError::TooManySpans(limits.max_spans));
                    }
                    let wire =
                        wire_span(span.bytes()?, attributes, arena, &limits, &mut truncations)?;
                    let place = wire.attributes.clone();
                    match validate(wire, &attributes[place.clone()], &window, &resource, names) {
                        Ok(span) => {
                            out.accepted.push(span);
                            places.push(place);
                        }
                        Err(reason) => {
                            attributes.truncate(place.start);
                            out.reject(|| reason);
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    SPAN_ATTRIBUTES.learn(attributes.len(), out.accepted.len());
    let attributes: &'a [Attribute<'a>] = attributes;
    for (span, place) in out.accepted.iter_mut().zip(places) {
        span.attributes = &attributes[place];
    }
    out.truncations = truncations;
    Ok(out)
}

struct Window {
    earliest: u64,
    latest: u64,
}

/// Checks ids and times; `names` gives the interned service and operation of a valid span, which
/// shares `resource` with the other spans of its resource. The span's `attributes` are read
/// here; the span comes back without them (they are set once the request's list is complete).
fn validate<'a>(
    span: WireSpan<'a>,
    attributes: &[Attribute<'a>],
    window: &Window,
    resource: &Arc<Vec<Attribute<'a>>>,
    names: impl FnOnce(SpanKind, &str, &[Attribute<'a>]) -> Arc<Named>,
) -> Result<Span<'a>, String> {
    let name = span.name;
    let (Ok(trace_id), Ok(span_id)) = (
        <[u8; 16]>::try_from(span.trace_id),
        <[u8; 8]>::try_from(span.span_id),
    ) else {
        return Err(format!(
            "span {name:?}: trace id must be 16 bytes and span id 8 bytes"
        ));
    };
    if trace_id == [0; 16] || span_id == [0; 8] {
        return Err(format!(
            "span {name:?}: trace and span ids must not be all zero"
        ));
    }
    let parent_span_id = match span.parent_span_id.len() {
        0 => [0; 8],
        _ => <[u8; 8]>::try_from(span.parent_span_id)
            .map_err(|_| format!("span {name:?}: parent span id must be 8 bytes or empty"))?,
    };
    let (start, end) = (span.start, span.end);
    if start < window.earliest || start > window.latest {
        return Err(format!(
            "span {name:?}: start time {start} ns is outside the accepted window ({}..{} ns since the epoch)",
            window.earliest, window.latest
        ));
    }
    if end < start {
        return Err(format!("span {name:?}: end time is before start time"));
    }
    let http_status_code = find(attributes, "http.response.status_code")
        .or_else(|| find(attributes, "http.status_code"))
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(0);
    const ERROR: i32 = 2;
    let kind = SpanKind::from_otlp(span.kind);
    let is_error =
        span.status_code == ERROR || (kind == SpanKind::Server && http_status_code >= 500);
    let endpoint = names(kind, name, attributes);
    Ok(Span {
        endpoint,
        name,
        kind,
        trace_id,
        span_id,
        parent_span_id,
        start_unix_ns: start,
        duration_ns: end - start,
        status_code: i8::try_from(span.status_code)
            .ok()
            .filter(|c| (0..=2).contains(c))
            .unwrap_or(0),
        status_message: span.status_message,
        http_status_code,
        is_error,
        attributes: &[],
        resource: Arc::clone(resource),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use plumb_loadgen::{Workload, WorkloadShape, text};
    use prost::Message;

    const LIMITS: SpanLimits = SpanLimits {
        max_age: Duration::from_secs(86_400),
        max_future: Duration::from_secs(600),
        max_attributes: 128,
        max_value_bytes: 4096,
        max_spans: 100_000,
    };

    /// Normalises a valid encoded request as the trace service does, with room for `operations`
    /// operation names, and hands the result to `check`.
    fn normalised<R>(
        bytes: &[u8],
        operations: usize,
        now: u64,
        check: impl FnOnce(&Normalised<Vec<Span<'_>>>) -> R,
    ) -> R {
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let names = NameLimiter::new(operations);
        let out = normalise_traces(bytes, &mut attributes, &arena, LIMITS, &names, now);
        check(&out.expect("valid"))
    }

    #[test]
    fn matches_what_prost_decodes() {
        let mut workload = Workload::new(WorkloadShape {
            services: 3,
            endpoints_per_service: 5,
            spans_per_request: 200,
            seed: 9,
        });
        let request = workload.request();
        let bytes = request.encode_to_vec();
        let now = crate::clock::now_unix_ns();
        normalised(&bytes, 100, now, |out| {
            let expected: Vec<_> = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .collect();
            assert_eq!(out.accepted.len(), expected.len());
            for (got, want) in out.accepted.iter().zip(expected) {
                assert_eq!(got.name, want.name);
                assert_eq!(&got.trace_id[..], &want.trace_id[..]);
                assert_eq!(
                    got.duration_ns,
                    want.end_time_unix_nano - want.start_time_unix_nano
                );
                assert_eq!(got.attributes.len(), want.attributes.len());
                for ((k, v), kv) in got.attributes.iter().zip(&want.attributes) {
                    assert_eq!(*k, kv.key);
                    assert_eq!(
                        *v,
                        crate::normalise::attributes::any_value_to_string(
                            kv.value.as_ref().expect("value")
                        )
                    );
                }
                assert_eq!(
                    got.is_error,
                    want.status.as_ref().is_some_and(|s| s.code == 2)
                        || got.http_status_code >= 500 && want.kind == 2
                );
            }
        });
    }

    #[test]
    fn non_string_values_and_missing_service() {
        let int = KeyValue {
            key: "http.response.status_code".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(503)),
            }),
            ..Default::default()
        };
        let mut request = ExportTraceServiceRequest::default();
        let now = crate::clock::now_unix_ns();
        request
            .resource_spans
            .push(opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![text("host.name", "a")],
                    ..Default::default()
                }),
                scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                    spans: vec![opentelemetry_proto::tonic::trace::v1::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "GET".into(),
                        kind: 2,
                        start_time_unix_nano: now,
                        end_time_unix_nano: now + 5,
                        attributes: vec![
                            int,
                            text("http.request.method", "GET"),
                            text("url.path", "/a/1"),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            });
        let bytes = request.encode_to_vec();
        normalised(&bytes, 10, now, |out| {
            let span = &out.accepted[0];
            assert_eq!(
                (span.service().as_ref(), span.operation().as_ref()),
                (UNKNOWN_SERVICE, "GET /a/{id}")
            );
            assert_eq!((span.http_status_code, span.is_error), (503, true));
            assert_eq!(out.unknown_service, 1);
            assert_eq!(span.resource.as_slice(), &[("host.name", "a")]);
        });
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_before_or_after_a_number() {
        let now = crate::clock::now_unix_ns();
        let int = KeyValue {
            key: "n".into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(200)),
            }),
            ..Default::default()
        };
        let long = "x".repeat(200);
        let orders = [
            vec![text("bad", "BAD!"), int.clone(), text("b", "ok")],
            vec![text("a", "ok"), int.clone(), text("bad", "BAD!")],
            vec![text("a", &long), text("bad", "BAD!")],
            vec![text("a", "ok"), text("b", "ok"), text("bad", "BAD!")],
        ];
        for attributes in orders {
            let request = ExportTraceServiceRequest {
                resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                    scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                        spans: vec![opentelemetry_proto::tonic::trace::v1::Span {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            name: "GET".into(),
                            start_time_unix_nano: now,
                            end_time_unix_nano: now + 5,
                            attributes: attributes.clone(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let mut bytes = request.encode_to_vec();
            let limiter = NameLimiter::new(10);
            let mut read = Vec::new();
            let arena = Bump::new();
            normalise_traces(&bytes, &mut read, &arena, LIMITS, &limiter, now)
                .expect("valid as sent");
            let at = bytes
                .windows(4)
                .position(|w| w == b"BAD!")
                .expect("the value");
            bytes[at + 1] = 0xff;
            let mut read = Vec::new();
            let arena = Bump::new();
            let refused = normalise_traces(&bytes, &mut read, &arena, LIMITS, &limiter, now);
            assert!(
                matches!(refused, Err(TraceRequestError::Malformed(_))),
                "{attributes:?}"
            );
        }
    }

    #[test]
    fn attribute_and_span_limits_are_enforced_and_counted() {
        let now = crate::clock::now_unix_ns();
        let span = |i: u8| opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: vec![1; 16],
            span_id: vec![i + 1; 8],
            name: "GET".into(),
            kind: 2,
            start_time_unix_nano: now,
            end_time_unix_nano: now + 5,
            attributes: vec![text("a", "ééééé"), text("b", "short"), text("c", "dropped")],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![text("service.name", "svc"), text("x", "1"), text("y", "2")],
                    ..Default::default()
                }),
                scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans {
                    spans: vec![span(0), span(1), span(2)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = request.encode_to_vec();
        let limits = SpanLimits {
            max_attributes: 2,
            max_value_bytes: 5,
            max_spans: 3,
            ..LIMITS
        };
        let names = NameLimiter::new(10);
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let out = normalise_traces(&bytes, &mut attributes, &arena, limits, &names, now)
            .expect("within limits");
        let first = &out.accepted[0];
        // "é" is two bytes: five bytes keep two of them, cut at a character boundary.
        assert_eq!(first.attributes, [("a", "éé"), ("b", "short")]);
        assert_eq!(first.resource.len(), 2);
        assert_eq!(
            out.truncations,
            Truncations {
                attributes_dropped: 3 + 1,
                values_truncated: 3,
            }
        );
        let two = SpanLimits {
            max_spans: 2,
            ..limits
        };
        let mut attributes = Vec::new();
        let arena = Bump::new();
        let refused = normalise_traces(&bytes, &mut attributes, &arena, two, &names, now)
            .expect_err("too many spans");
        assert!(
            matches!(refused, TraceRequestError::TooManySpans(2)),
            "{refused}"
        );
        assert!(refused.to_string().contains("more than 2 spans"));
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            ".{0,20}".prop_map(Value::StringValue),
            any::<i64>().prop_map(Value::IntValue),
            any::<bool>().prop_map(Value::BoolValue),
            any::<f64>().prop_map(Value::DoubleValue),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
        ]
    }

    proptest::proptest! {
        #[test]
        fn attributes_and_names_read_in_place_equal_prost(
            name in ".{0,30}",
            kind in 0i32..6,
            attributes in proptest::collection::vec(("[a-z.]{1,12}", any_value()), 0..12),
        ) {
            let now = crate::clock::now_unix_ns();
            let span = opentelemetry_proto::tonic::trace::v1::Span {
                trace_id: vec![3; 16],
                span_id: vec![4; 8],
                name: name.clone(),
                kind,
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1,
                attributes: attributes
                    .iter()
                    .map(|(k, v)| KeyValue { key: k.clone(), value: Some(AnyValue { value: Some(v.clone()) }), ..Default::default() })
                    .collect(),
                ..Default::default()
            };
            let request = ExportTraceServiceRequest {
                resource_spans: vec![opentelemetry_proto::tonic::trace::v1::ResourceSpans {
                    scope_spans: vec![opentelemetry_proto::tonic::trace::v1::ScopeSpans { spans: vec![span.clone()], ..Default::default() }],
                    ..Default::default()
                }],
            };
            let bytes = request.encode_to_vec();
            normalised(&bytes, 10, now, |out| {
                proptest::prop_assert_eq!(out.accepted.len(), 1);
                let got = &out.accepted[0];
                proptest::prop_assert_eq!(got.name, name.as_str());
                proptest::prop_assert_eq!(got.kind as i32, kind);
                for ((k, v), kv) in got.attributes.iter().zip(&span.attributes) {
                    proptest::prop_assert_eq!(*k, kv.key.as_str());
                    proptest::prop_assert_eq!(*v, crate::normalise::attributes::any_value_to_string(kv.value.as_ref().expect("set")));
                }
                Ok(())
            })?;
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut attributes = Vec::new();
            let arena = Bump::new();
            let _ = normalise_traces(&bytes, &mut attributes, &arena, LIMITS, &NameLimiter::new(10), 0);
        }
    }
}
