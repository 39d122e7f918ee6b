//! Span validation and normalisation.
//!
//! In: an `ExportTraceServiceRequest`. Out: [`Span`]s with their service and operation resolved,
//! timing in nanoseconds, the error flag (status ERROR, or HTTP 5xx on SERVER spans) and
//! attributes as text. Spans with invalid ids or timestamps outside the accepted window are
//! rejected one by one; the rest of the batch is kept.

use super::attributes::{any_value_to_i64, any_value_to_string, find_attribute};
use super::operation::{OperationLimiter, operation_name};
use super::{Normalised, service_name};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use std::sync::Arc;
use std::time::Duration;

/// Which timestamps are believable.
#[derive(Clone, Copy, Debug)]
pub struct SpanLimits {
    /// Spans that started longer ago than this are rejected.
    pub max_age: Duration,
    /// Spans that start further than this in the future are rejected (clock skew allowance).
    pub max_future: Duration,
}

/// One validated span, ready to aggregate and store.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// `service.name` of the span's resource.
    pub service: Arc<str>,
    /// The operation it is aggregated under (see [`operation_name`]).
    pub operation: String,
    /// The span's own name.
    pub name: String,
    /// OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i8,
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Parent span id; all zero for a root span.
    pub parent_span_id: [u8; 8],
    /// Start time, nanoseconds since the Unix epoch.
    pub start_unix_ns: u64,
    /// Duration in nanoseconds.
    pub duration_ns: u64,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status_code: i8,
    /// Status message, if any.
    pub status_message: String,
    /// HTTP response status, 0 when none.
    pub http_status_code: u16,
    /// Whether the span counts as an error.
    pub is_error: bool,
    /// Span attribute keys.
    pub attribute_keys: Vec<String>,
    /// Span attribute values as text, in the same order as the keys.
    pub attribute_values: Vec<String>,
    /// Resource attributes, shared by every span of one resource.
    pub resource: ResourceAttributes,
}

/// A resource's attributes as text, shared (not copied) by its spans.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceAttributes {
    /// Keys.
    pub keys: Arc<Vec<String>>,
    /// Values as text, in the same order as the keys.
    pub values: Arc<Vec<String>>,
}

impl Span {
    /// Duration in whole microseconds, the histogram's unit.
    pub fn duration_us(&self) -> u64 {
        self.duration_ns / 1_000
    }

    /// Start of the minute the span started in, in seconds since the Unix epoch.
    pub fn minute_unix_s(&self) -> u32 {
        let secs = self.start_unix_ns / 1_000_000_000;
        u32::try_from(secs - secs % 60).unwrap_or(u32::MAX)
    }
}

/// Validates and normalises every span of a request.
pub fn normalise_traces(
    request: ExportTraceServiceRequest,
    limits: SpanLimits,
    operations: &OperationLimiter,
    now_unix_ns: u64,
) -> Normalised<Span> {
    let mut out = Normalised::default();
    let earliest = now_unix_ns.saturating_sub(limits.max_age.as_nanos() as u64);
    let latest = now_unix_ns.saturating_add(limits.max_future.as_nanos() as u64);
    operations.with_batch(|admit| {
        for resource_spans in request.resource_spans {
            let (service, unknown) = service_name(resource_spans.resource.as_ref());
            let service: Arc<str> = Arc::from(service);
            let (keys, values) = resource_spans
                .resource
                .map(|r| attributes_into_text(r.attributes))
                .unwrap_or_default();
            let resource = ResourceAttributes { keys: Arc::new(keys), values: Arc::new(values) };
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    if unknown {
                        out.unknown_service += 1;
                    }
                    let ids = (
                        <[u8; 16]>::try_from(span.trace_id.as_slice()),
                        <[u8; 8]>::try_from(span.span_id.as_slice()),
                    );
                    let (Ok(trace_id), Ok(span_id)) = ids else {
                        out.reject(|| {
                            format!(
                                "span {:?}: trace id must be 16 bytes and span id 8 bytes",
                                span.name
                            )
                        });
                        continue;
                    };
                    if trace_id == [0; 16] || span_id == [0; 8] {
                        out.reject(|| format!("span {:?}: trace and span ids must not be all zero", span.name));
                        continue;
                    }
                    let parent_span_id = match span.parent_span_id.len() {
                        0 => [0; 8],
                        _ => match <[u8; 8]>::try_from(span.parent_span_id.as_slice()) {
                            Ok(p) => p,
                            Err(_) => {
                                out.reject(|| format!("span {:?}: parent span id must be 8 bytes or empty", span.name));
                                continue;
                            }
                        },
                    };
                    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
                    if start < earliest || start > latest {
                        out.reject(|| {
                            format!(
                                "span {:?}: start time {start} ns is outside the accepted window ({earliest}..{latest} ns since the epoch)",
                                span.name
                            )
                        });
                        continue;
                    }
                    if end < start {
                        out.reject(|| format!("span {:?}: end time is before start time", span.name));
                        continue;
                    }
                    let status_code = span.status.as_ref().map_or(0, |s| s.code);
                    let http_status_code = find_attribute(&span.attributes, "http.response.status_code")
                        .or_else(|| find_attribute(&span.attributes, "http.status_code"))
                        .and_then(any_value_to_i64)
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0);
                    let is_error = status_code == StatusCode::Error as i32
                        || (span.kind == SpanKind::Server as i32 && http_status_code >= 500);
                    let operation = admit(&service, operation_name(span.kind, &span.name, &span.attributes));
                    let (attribute_keys, attribute_values) = attributes_into_text(span.attributes);
                    out.accepted.push(Span {
                        service: Arc::clone(&service),
                        operation,
                        kind: i8::try_from(span.kind).ok().filter(|k| (0..=5).contains(k)).unwrap_or(0),
                        trace_id,
                        span_id,
                        parent_span_id,
                        start_unix_ns: start,
                        duration_ns: end - start,
                        status_code: i8::try_from(status_code).ok().filter(|c| (0..=2).contains(c)).unwrap_or(0),
                        status_message: span.status.map(|s| s.message).unwrap_or_default(),
                        http_status_code,
                        is_error,
                        attribute_keys,
                        attribute_values,
                        resource: resource.clone(),
                        name: span.name,
                    });
                }
            }
        }
    });
    out
}

/// Splits attributes into keys and text values, moving strings rather than copying them.
fn attributes_into_text(attributes: Vec<KeyValue>) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::with_capacity(attributes.len());
    let mut values = Vec::with_capacity(attributes.len());
    for kv in attributes {
        let value = match kv.value {
            Some(AnyValue {
                value: Some(Value::StringValue(s)),
            }) => s,
            Some(other) => any_value_to_string(&other),
            None => String::new(),
        };
        keys.push(kv.key);
        values.push(value);
    }
    (keys, values)
}
