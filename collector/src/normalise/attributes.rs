//! Attribute access: finding an attribute by key and rendering any OTLP value as text.
//!
//! In: OTLP `KeyValue` lists. Out: values as strings (arrays and maps as compact JSON-like
//! text, bytes as hex), which is how spans store attributes in ClickHouse.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use std::fmt::Write;

/// The value of the first attribute named `key`, if any.
pub fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

/// Renders an OTLP value as text.
pub fn any_value_to_string(value: &AnyValue) -> String {
    let mut out = String::new();
    write_value(&mut out, value.value.as_ref());
    out
}

/// Renders an optional value as an integer when it is one (or a string holding one).
pub(crate) fn any_value_to_i64(value: &AnyValue) -> Option<i64> {
    match value.value.as_ref()? {
        Value::IntValue(i) => Some(*i),
        Value::StringValue(s) => s.trim().parse().ok(),
        Value::DoubleValue(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
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
        assert_eq!(
            any_value_to_i64(&v(Value::StringValue(" 503 ".into()))),
            Some(503)
        );
    }
}
