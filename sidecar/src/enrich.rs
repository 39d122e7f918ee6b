//! Adding the host's attributes to encoded trace requests without decoding their spans.
//!
//! In: an encoded `ExportTraceServiceRequest` and the host name, if known. Out: the request with
//! `host.name` on every resource that lacks it (the same bytes when none does), and the number
//! of spans. Protobuf merges repeated
//! occurrences of a message field, so appending a second `resource` holding just the new
//! attribute to a `ResourceSpans` adds it to that resource; only the `ResourceSpans` length
//! prefixes are rewritten, the spans are copied as they are.

use bytes::{BufMut, Bytes, BytesMut};
use plumb_otlp::wire::{Fields, WireError};
use prost::encoding::{encode_varint, encoded_len_varint};

/// Field 1, length-delimited: `ExportTraceServiceRequest.resource_spans`,
/// `ResourceSpans.resource`, `Resource.attributes`, `KeyValue.key`, `AnyValue.string_value`.
const FIELD_1_BYTES: u8 = 0x0a;
/// Field 2, length-delimited: `KeyValue.value`.
const FIELD_2_BYTES: u8 = 0x12;

/// Returns the request with `host.name = host` added where missing, and its span count.
pub fn add_host_name(request: Bytes, host: Option<&str>) -> Result<(Bytes, u64), WireError> {
    let mut spans = 0;
    let mut resources = Vec::new();
    for field in Fields::new(&request) {
        let (number, value) = field?;
        let body = value.bytes()?;
        if number == 1 {
            let (has_host, count) = inspect(body)?;
            spans += count;
            resources.push((body, has_host));
        }
    }
    let Some(host) = host.filter(|_| resources.iter().any(|(_, has_host)| !has_host)) else {
        return Ok((request.clone(), spans));
    };
    let extra = resource_with_host_name(host);
    let mut out = BytesMut::with_capacity(request.len() + resources.len() * extra.len());
    for (body, has_host) in resources {
        let added: &[u8] = if has_host { &[] } else { &extra };
        out.put_u8(FIELD_1_BYTES);
        encode_varint((body.len() + added.len()) as u64, &mut out);
        out.put_slice(body);
        out.put_slice(added);
    }
    Ok((out.freeze(), spans))
}

/// Whether a `ResourceSpans` already has `host.name`, and how many spans it holds.
fn inspect(resource_spans: &[u8]) -> Result<(bool, u64), WireError> {
    let (mut has_host, mut spans) = (false, 0);
    for field in Fields::new(resource_spans) {
        match field? {
            (1, resource) => {
                for attribute in Fields::new(resource.bytes()?) {
                    if let (1, kv) = attribute? {
                        for part in Fields::new(kv.bytes()?) {
                            if let (1, key) = part? {
                                has_host |= key.bytes()? == b"host.name";
                            }
                        }
                    }
                }
            }
            (2, scope) => {
                for field in Fields::new(scope.bytes()?) {
                    if let (2, _) = field? {
                        spans += 1;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((has_host, spans))
}

/// `ResourceSpans.resource` holding one attribute, `host.name`, encoded as a field.
fn resource_with_host_name(host: &str) -> Vec<u8> {
    let nested = |tag: u8, body: &[u8], out: &mut Vec<u8>| {
        out.push(tag);
        encode_varint(body.len() as u64, out);
        out.extend_from_slice(body);
    };
    let mut any_value = Vec::new();
    nested(FIELD_1_BYTES, host.as_bytes(), &mut any_value);
    let mut key_value = Vec::new();
    nested(FIELD_1_BYTES, b"host.name", &mut key_value);
    nested(FIELD_2_BYTES, &any_value, &mut key_value);
    let mut resource =
        Vec::with_capacity(key_value.len() + encoded_len_varint(key_value.len() as u64) + 1);
    nested(FIELD_1_BYTES, &key_value, &mut resource);
    let mut field = Vec::new();
    nested(FIELD_1_BYTES, &resource, &mut field);
    field
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn resource_spans(resource: Option<Resource>, spans: usize) -> ResourceSpans {
        ResourceSpans {
            resource,
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    Span {
                        name: "s".into(),
                        ..Default::default()
                    };
                    spans
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn adds_host_name_where_missing_and_counts_spans() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                resource_spans(
                    Some(Resource {
                        attributes: vec![text("service.name", "a")],
                        ..Default::default()
                    }),
                    3,
                ),
                resource_spans(None, 2),
                resource_spans(
                    Some(Resource {
                        attributes: vec![text("host.name", "own")],
                        ..Default::default()
                    }),
                    1,
                ),
            ],
        };
        let encoded = Bytes::from(request.encode_to_vec());
        let (bytes, spans) = add_host_name(encoded.clone(), Some("box-1")).expect("valid");
        let (unchanged, same_spans) = add_host_name(encoded.clone(), None).expect("valid");
        assert_eq!(
            (unchanged, same_spans),
            (encoded, 6),
            "without a host name nothing changes"
        );
        assert_eq!(spans, 6);
        let decoded = ExportTraceServiceRequest::decode(bytes).expect("still a valid request");
        let hosts: Vec<Vec<(String, String)>> = decoded
            .resource_spans
            .iter()
            .map(|r| {
                r.resource.as_ref().map_or(vec![], |res| {
                    res.attributes
                        .iter()
                        .map(|kv| {
                            (
                                kv.key.clone(),
                                format!("{:?}", kv.value.as_ref().and_then(|v| v.value.clone())),
                            )
                        })
                        .collect()
                })
            })
            .collect();
        assert_eq!(hosts[0].len(), 2, "{hosts:?}");
        assert_eq!(hosts[0][1].0, "host.name");
        assert!(hosts[0][1].1.contains("box-1"));
        assert_eq!(hosts[1].len(), 1);
        assert_eq!(hosts[2].len(), 1, "an SDK's own host.name is kept");
        assert!(hosts[2][0].1.contains("own"));
        assert_eq!(decoded.resource_spans[0].scope_spans[0].spans.len(), 3);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(add_host_name(Bytes::from_static(&[0x0a, 0x05, 1]), Some("h")).is_err());
    }
}
