//! Attribute values rendered as text.
//!
//! In: OTLP `AnyValue`s, encoded or decoded. Out: values as strings (arrays and maps as compact
//! JSON-like text, bytes as hex), which is how spans and metric points store attributes in
//! ClickHouse.

use bumpalo::Bump;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use plumb_otlp::wire::{Fields, TextMessage, WireError};
use prost::Message;
use std::fmt::Write;

/// Renders an OTLP value as text.
pub(crate) fn any_value_to_string(value: &AnyValue) -> String {
    let mut out = String::new();
    write_value(&mut out, value.value.as_ref());
    out
}

/// The text of an encoded `AnyValue`: a string borrowed from the bytes (checked as part of
/// `within`, the message the value was read from), a boolean as static text, and any other value
/// written out in `arena`, the request's, rather than in an allocation of its own.
///
/// Arrays, maps, bytes and string-table references are rare in attributes; they are decoded
/// with prost and rendered by [`any_value_to_string`], so both paths print values alike.
pub(crate) fn attribute_text<'a>(
    bytes: &'a [u8],
    within: &TextMessage<'a>,
    arena: &'a Bump,
) -> Result<&'a str, WireError> {
    let mut text = "";
    for field in Fields::new(bytes) {
        text = match field? {
            (1, v) => within.str(v)?,
            (2, v) => {
                if v.varint()? != 0 {
                    "true"
                } else {
                    "false"
                }
            }
            (3, v) => {
                let mut digits = itoa::Buffer::new();
                arena.alloc_str(digits.format(v.varint()? as i64))
            }
            (4, v) => {
                let mut text = bumpalo::collections::String::new_in(arena);
                let _ = write!(text, "{}", f64::from_bits(v.fixed64()?));
                text.into_bump_str()
            }
            (5..=8, _) => {
                let value =
                    AnyValue::decode(bytes).map_err(|_| WireError("malformed attribute value"))?;
                return Ok(arena.alloc_str(&any_value_to_string(&value)));
            }
            _ => continue,
        };
    }
    Ok(text)
}

fn write_value(out: &mut String, value: Option<&Value>) {
    match value {
        None => {}
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(Value::BytesValue(bytes)) => {
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, v.value.as_ref());
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&kv.key);
                out.push('=');
                write_value(out, kv.value.as_ref().and_then(|v| v.value.as_ref()));
            }
            out.push('}');
        }
        Some(Value::StringValueStrindex(i)) => {
            let _ = write!(out, "#{i}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;

    fn v(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn renders_every_kind() {
        assert_eq!(any_value_to_string(&v(Value::IntValue(-3))), "-3");
        assert_eq!(any_value_to_string(&v(Value::BoolValue(true))), "true");
        assert_eq!(
            any_value_to_string(&v(Value::BytesValue(vec![0xab, 1]))),
            "ab01"
        );
        let array = v(Value::ArrayValue(ArrayValue {
            values: vec![
                v(Value::StringValue("a".into())),
                v(Value::DoubleValue(1.5)),
            ],
        }));
        assert_eq!(any_value_to_string(&array), "[a,1.5]");
        let arena = Bump::new();
        for value in [
            Value::IntValue(-3),
            Value::BoolValue(true),
            Value::DoubleValue(0.25),
            Value::StringValue("é".into()),
            Value::BytesValue(vec![1, 255]),
        ] {
            let any = v(value);
            let bytes = any.encode_to_vec();
            let text = attribute_text(&bytes, &TextMessage::new(&bytes), &arena).expect("valid");
            assert_eq!(text, any_value_to_string(&any));
        }
        let bytes = array.encode_to_vec();
        assert_eq!(
            attribute_text(&bytes, &TextMessage::new(&bytes), &arena).expect("valid"),
            "[a,1.5]"
        );
    }
}
