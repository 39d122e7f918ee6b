//! Attributes read from the wire, for spans and metric points alike: a `KeyValue` with its
//! strings cut from text checked as UTF-8 once for a run of attributes, and a resource's
//! attributes with the scopes that follow it.

use super::attributes::attribute_text;
use crate::model::Attribute;
use bumpalo::Bump;
use plumb_otlp::wire::{Fields, TextMessage, WireError};
use std::ops::Range;

/// Reads a `ResourceSpans` or `ResourceMetrics` message: each of its resource's attributes goes
/// to `attribute`, and the bytes of its scopes (`ScopeSpans` or `ScopeMetrics`) come back.
pub(super) fn resource_and_scopes<'a>(
    message: &'a [u8],
    arena: &'a Bump,
    mut attribute: impl FnMut(Attribute<'a>),
) -> Result<Vec<&'a [u8]>, WireError> {
    let mut scopes = Vec::new();
    for field in Fields::new(message) {
        match field? {
            (1, resource) => {
                let resource = resource.bytes()?;
                // Its fields are (nearly all) attributes: checked as UTF-8 at once.
                let run = TextMessage::leading_text(resource);
                for field in Fields::new(resource) {
                    if let (1, kv) = field? {
                        attribute(key_value(kv.bytes()?, &run, arena)?);
                    }
                }
            }
            (2, scope) => scopes.push(scope.bytes()?),
            _ => {}
        }
    }
    Ok(scopes)
}

/// The bytes of `message` (a span or a data point) from its first attribute `first` on, checked as UTF-8 at once up to the
/// first byte that is not: the attributes come one after the other, so this holds them up to
/// the first number over 127 or string over 127 bytes (or through the last, when the fields
/// after them stop the text).
pub(super) fn attribute_run<'a>(message: &'a [u8], first: &'a [u8]) -> TextMessage<'a> {
    let offset = (first.as_ptr() as usize).wrapping_sub(message.as_ptr() as usize);
    TextMessage::leading_text(message.get(offset..).unwrap_or(first))
}

/// Where the key and value are in a `KeyValue` laid out as SDKs write one with short text: the
/// key (field 1), then an `AnyValue` holding `string_value` alone, every length in one byte.
/// Found with a few comparisons instead of reading three fields; `None` for any other layout.
fn short_text_pair(bytes: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    let [0x0a, key_len @ 0..0x80, rest @ ..] = bytes else {
        return None;
    };
    let key = 2..2 + usize::from(*key_len);
    let [0x12, any_len @ 0..0x80, 0x0a, value_len, value @ ..] = rest.get(key.len()..)? else {
        return None;
    };
    (usize::from(*any_len) == value.len() + 2 && usize::from(*value_len) == value.len())
        .then_some((key, bytes.len() - value.len()..bytes.len()))
}

/// A `KeyValue` message, its strings cut from `run` (the text of the attributes around it) when
/// it lies within it. Otherwise, when its value is text, the key and the value are checked as
/// UTF-8 together; if not the key is checked alone (a number's bytes need not be UTF-8, so a
/// check of the whole message would fail and be wasted).
pub(super) fn key_value<'a>(
    bytes: &'a [u8],
    run: &TextMessage<'a>,
    arena: &'a Bump,
) -> Result<Attribute<'a>, WireError> {
    if let Some((key, value)) = short_text_pair(bytes) {
        // Its tags and lengths are below 0x80: the message is UTF-8 when its two strings are.
        let text = match run.text_of(bytes) {
            Some(text) => text,
            None => std::str::from_utf8(bytes)
                .map_err(|_| WireError("invalid UTF-8 in a string field"))?,
        };
        let cut = |at: Range<usize>| {
            text.get(at)
                .ok_or(WireError("invalid UTF-8 in a string field"))
        };
        return Ok((cut(key)?, cut(value)?));
    }
    let (mut key, mut value) = (None, None);
    for field in Fields::new(bytes) {
        match field? {
            (1, v) => key = Some(v),
            (2, v) => value = Some(v.bytes()?),
            _ => {}
        }
    }
    // `AnyValue.string_value` is field 1, length-delimited: the tag byte 0x0a. Text outside the
    // run is checked with the key at once; a key whose value is not text (a number over 127 is
    // not UTF-8 on the wire, and ends the run's text after the key) is cut from the run, or
    // checked alone when the run does not hold it either.
    let message = match value {
        Some([0x0a, ..]) if !run.holds(bytes) => TextMessage::new(bytes),
        _ => *run,
    };
    let key = match key {
        Some(v) => message.str(v)?,
        None => "",
    };
    let value = match value {
        Some(v) => attribute_text(v, &message, arena)?,
        None => "",
    };
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use prost::Message;

    #[test]
    fn a_key_is_checked_as_utf8_whatever_its_value() {
        let encoded = |key: &[u8], value: Value| {
            let mut bytes = vec![0x0a, key.len() as u8];
            bytes.extend_from_slice(key);
            let value = AnyValue { value: Some(value) }.encode_to_vec();
            bytes.extend([0x12, value.len() as u8]);
            bytes.extend(value);
            bytes
        };
        // Read alone, and as the run of attributes it is in (then checked up to the first byte
        // that is not UTF-8, here the integer's).
        let arena = Bump::new();
        let both_ways = |bytes: &[u8]| {
            // (An empty run holds nothing.)
            let alone = key_value(bytes, &TextMessage::new(&[]), &arena).map_err(|e| e.0);
            let in_run =
                key_value(bytes, &TextMessage::leading_text(bytes), &arena).map_err(|e| e.0);
            assert_eq!(alone, in_run, "{bytes:?}");
            alone.map(|(key, value)| (key.to_owned(), value.to_owned()))
        };
        // An integer over 127 is not UTF-8 on the wire; the key alone is checked then.
        let int = encoded("größe".as_bytes(), Value::IntValue(200));
        assert_eq!(both_ways(&int), Ok(("größe".into(), "200".into())));
        let text = encoded("größe".as_bytes(), Value::StringValue("groß".into()));
        assert_eq!(both_ways(&text), Ok(("größe".into(), "groß".into())));
        for value in [Value::IntValue(200), Value::StringValue("x".into())] {
            let bad = encoded(b"gr\xc3", value);
            assert!(
                both_ways(&bad).is_err(),
                "a key that is not UTF-8 is refused"
            );
        }
    }

    #[test]
    fn the_short_text_layout_is_found_and_nothing_else_is_taken_for_it() {
        let kv = |key: &str, value: AnyValue| {
            KeyValue {
                key: key.into(),
                value: Some(value),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let text = |s: &str| AnyValue {
            value: Some(Value::StringValue(s.into())),
        };
        let short = kv("http.route", text("/users/{id}"));
        let (key, value) = short_text_pair(&short).expect("the short layout");
        assert_eq!(
            (&short[key], &short[value]),
            (&b"http.route"[..], &b"/users/{id}"[..])
        );
        let long_key = "k".repeat(128);
        let other_layouts = [
            kv(&long_key, text("v")),
            kv("k", text(&"v".repeat(126))),
            kv(
                "k",
                AnyValue {
                    value: Some(Value::IntValue(7)),
                },
            ),
            // A string then another field in the same `AnyValue`.
            [kv("k", text("v")), vec![0x10, 0x01]].concat(),
            short[..short.len() - 1].to_vec(),
            // Empty strings are left out by the encoder.
            kv("", text("")),
        ];
        for bytes in other_layouts {
            assert_eq!(short_text_pair(&bytes), None, "{bytes:?}");
        }
    }
}
