//! A zero-copy reader for the protobuf wire format, enough to walk OTLP messages.
//!
//! In: the bytes of one message. Out: its fields one by one, as `(field number, value)` with
//! length-delimited values borrowed from the input. Nothing is allocated; malformed input (a
//! truncated varint or length, an unknown wire type, a group not closed) is an error, never a
//! panic. Groups (deprecated, never used by OTLP) are skipped whole as prost skips them, so a
//! message prost reads is read here too.

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct WireError(pub &'static str);

/// One field's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, nested messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire types 3 and 4: a group, skipped (its bytes up to and with its end tag).
    Group(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value of a length-delimited field.
    pub fn bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(WireError("expected a length-delimited field")),
        }
    }

    /// The value of a string field (UTF-8 checked).
    pub fn str(self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError("invalid UTF-8 in a string field"))
    }

    /// The value of a varint field.
    pub fn varint(self) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(WireError("expected a varint field")),
        }
    }

    /// The value of a fixed64 field.
    pub fn fixed64(self) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(WireError("expected a fixed64 field")),
        }
    }
}

impl Value<'_> {
    /// The values of a repeated `fixed64`, `sfixed64` or `double` field, packed (one
    /// length-delimited field) or not (this field one value of several), appended to `out` as
    /// `convert` turns their bits.
    pub fn push_fixed64s<T>(
        self,
        out: &mut Vec<T>,
        convert: impl Fn(u64) -> T,
    ) -> Result<(), WireError> {
        match self {
            Value::Fixed64(v) => out.push(convert(v)),
            Value::Bytes(packed) => {
                if packed.len() % 8 != 0 {
                    return Err(WireError("packed fixed64 field ends inside a value"));
                }
                out.extend(packed.chunks_exact(8).map(|chunk| {
                    let mut word = [0; 8];
                    word.copy_from_slice(chunk);
                    convert(u64::from_le_bytes(word))
                }));
            }
            _ => return Err(WireError("expected a fixed64 field")),
        }
        Ok(())
    }

    /// The values of a repeated varint field, packed or not, appended to `out`.
    pub fn push_varints(self, out: &mut Vec<u64>) -> Result<(), WireError> {
        match self {
            Value::Varint(v) => out.push(v),
            Value::Bytes(packed) => {
                let mut reader = Fields::new(packed);
                while !reader.rest.is_empty() {
                    out.push(reader.varint()?);
                }
            }
            _ => return Err(WireError("expected a varint field")),
        }
        Ok(())
    }

    /// The value of a `sint32` field (zigzag-encoded).
    pub fn sint32(self) -> Result<i32, WireError> {
        let n = self.varint()? as u32;
        Ok((n >> 1) as i32 ^ -((n & 1) as i32))
    }
}

/// A message with one UTF-8 check for all of it: when the whole message is valid UTF-8 (a short
/// `KeyValue` holding text is, since its tags and lengths are below 0x80), its string fields are
/// cut from that text instead of being checked one by one. Otherwise each is checked alone.
#[derive(Debug, Clone, Copy)]
pub struct TextMessage<'a> {
    bytes: &'a [u8],
    text: Option<&'a str>,
}

impl<'a> TextMessage<'a> {
    /// `message`, checked once.
    pub fn new(message: &'a [u8]) -> Self {
        Self {
            bytes: message,
            text: std::str::from_utf8(message).ok(),
        }
    }

    /// `bytes` (a run of fields, such as a span's attributes one after the other), checked once
    /// with SIMD up to the first byte that is not UTF-8: string fields before that byte are cut
    /// from the text, those after it are checked alone. A run of `KeyValue`s holding short text
    /// is UTF-8 from end to end; a number over 127 or a string over 127 bytes ends the text.
    pub fn leading_text(bytes: &'a [u8]) -> Self {
        let text = match simdutf8::compat::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => simdutf8::basic::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
        };
        Self {
            bytes,
            text: Some(text),
        }
    }

    /// Whether `part` (a slice of this message) lies within the checked text, so that every
    /// string field inside it is cut from that text.
    #[inline]
    pub fn holds(&self, part: &[u8]) -> bool {
        self.text_of(part).is_some()
    }

    /// The fields of the message.
    pub fn fields(&self) -> Fields<'a> {
        Fields::new(self.bytes)
    }

    /// The value of a string field read from this message (or from a message nested in it).
    pub fn str(&self, value: Value<'a>) -> Result<&'a str, WireError> {
        // A field from elsewhere, past the checked text, or one that does not start and end at a
        // character boundary of the text, is checked alone.
        match self.text_of(value.bytes()?) {
            Some(text) => Ok(text),
            None => value.str(),
        }
    }

    /// The checked text of `part` (a slice of this message), when `part` lies within it and
    /// starts and ends at character boundaries.
    #[inline]
    pub fn text_of(&self, part: &[u8]) -> Option<&'a str> {
        let start = (part.as_ptr() as usize).wrapping_sub(self.bytes.as_ptr() as usize);
        self.text?.get(start..start.checked_add(part.len())?)
    }
}

/// Iterates over the fields of one message.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The fields of `message`.
    pub fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most keys and lengths fit in one byte.
        if let Some((&byte, rest)) = self.rest.split_first()
            && byte < 0x80
        {
            self.rest = rest;
            return Ok(u64::from(byte));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError("truncated or overlong varint"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError("field runs past the end of its message"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            // Stop after the first error.
            self.rest = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    // Always inlined: in the `ingest` bench under callgrind the whole program optimisation kept
    // it a call, about 57 instructions per field, and inlining it cut the hot path per span from
    // 10,713 to 9,858 instructions.
    #[inline(always)]
    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError("field number out of range"))?;
        if number == 0 {
            return Err(WireError("field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.fixed::<8>()?)),
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| WireError("length out of range"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.fixed::<4>()?)),
            3 => {
                let start = self.rest;
                self.skip_group(number, 0)?;
                Value::Group(&start[..start.len() - self.rest.len()])
            }
            4 => return Err(WireError("end of a group that was not started")),
            _ => return Err(WireError("unsupported wire type")),
        };
        Ok((number, value))
    }

    /// Skips the fields of the group `number` (nested `depth` groups deep) through its end tag.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), WireError> {
        // prost's limit on nesting.
        if depth >= 100 {
            return Err(WireError("groups nested too deep"));
        }
        loop {
            if self.rest.is_empty() {
                return Err(WireError("group not ended"));
            }
            let key = self.varint()?;
            let inner =
                u32::try_from(key >> 3).map_err(|_| WireError("field number out of range"))?;
            if inner == 0 {
                return Err(WireError("field number 0"));
            }
            match key & 7 {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.take(8)?;
                }
                2 => {
                    let len = usize::try_from(self.varint()?)
                        .map_err(|_| WireError("length out of range"))?;
                    self.take(len)?;
                }
                3 => self.skip_group(inner, depth + 1)?,
                4 if inner == number => return Ok(()),
                4 => return Err(WireError("group ended by another field's tag")),
                5 => {
                    self.take(4)?;
                }
                _ => return Err(WireError("unsupported wire type")),
            }
        }
    }

    #[inline]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| WireError("fixed-width field"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use prost::Message;

    #[test]
    fn reads_what_prost_writes() {
        let span = Span {
            trace_id: vec![1; 16],
            name: "héllo".into(),
            kind: 2,
            start_time_unix_nano: 42,
            status: Some(Status {
                code: 2,
                message: "x".into(),
            }),
            ..Default::default()
        };
        let bytes = span.encode_to_vec();
        let fields: Vec<_> = Fields::new(&bytes)
            .collect::<Result<_, _>>()
            .expect("valid");
        assert!(fields.contains(&(1, Value::Bytes(&[1; 16]))));
        assert!(
            fields
                .iter()
                .any(|(n, v)| *n == 5 && v.str() == Ok("héllo"))
        );
        assert!(fields.contains(&(6, Value::Varint(2))));
        assert!(fields.contains(&(7, Value::Fixed64(42))));
    }

    #[test]
    fn text_fields_read_alike_with_one_check_or_one_each() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        let text = |s: &str| AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        };
        let int = AnyValue {
            value: Some(any_value::Value::IntValue(-1)),
        };
        let long = "é".repeat(100);
        let cases = [
            ("k", text("v")),
            ("ключ", text("é")),
            ("ключ", text(&long)),
            ("k", int),
        ];
        for (key, value) in cases {
            let bytes = KeyValue {
                key: key.into(),
                value: Some(value.clone()),
                ..Default::default()
            }
            .encode_to_vec();
            let message = TextMessage::new(&bytes);
            let (_, first) = message.fields().next().expect("a field").expect("valid");
            assert_eq!(message.str(first), Ok(key));
            // A string nested in the message (the `AnyValue`'s) is cut from the same text.
            let expected = match &value.value {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            };
            let (_, any) = message.fields().nth(1).expect("a value").expect("valid");
            let nested = Fields::new(any.bytes().expect("bytes"))
                .next()
                .expect("a field")
                .expect("valid");
            match expected {
                Some(text) => assert_eq!(message.str(nested.1), Ok(text), "{key}"),
                None => assert!(message.str(nested.1).is_err(), "an integer is not text"),
            }
            // A field that is not inside the message is checked alone.
            assert_eq!(message.str(Value::Bytes("x".as_bytes())), Ok("x"), "{key}");
        }
        let bytes = [0x0a, 2, 0xff, 0xfe];
        let message = TextMessage::new(&bytes);
        let (_, field) = message.fields().next().expect("a field").expect("valid");
        assert!(message.str(field).is_err());
    }

    #[test]
    fn a_run_is_text_up_to_its_first_byte_that_is_not() {
        // Three string fields, the second not UTF-8, then a long one past the SIMD block size.
        let long = "ü".repeat(40);
        let mut bytes = vec![
            0x0a, 2, b'o', b'k', 0x0a, 2, 0xff, 0xfe, 0x0a, 3, b'a', 0xc3, 0xa9,
        ];
        bytes.extend([0x0a, 80]);
        bytes.extend(long.as_bytes());
        let run = TextMessage::leading_text(&bytes);
        let fields: Vec<_> = run.fields().map(|f| f.expect("valid").1).collect();
        let first = fields[0].bytes().expect("bytes");
        assert!(run.holds(first), "before the bad byte: cut from the text");
        assert_eq!(run.str(fields[0]), Ok("ok"));
        assert!(run.str(fields[1]).is_err(), "the bad field is refused");
        assert!(!run.holds(fields[2].bytes().expect("bytes")));
        assert_eq!(run.str(fields[2]), Ok("aé"), "after it: checked alone");
        assert_eq!(run.str(fields[3]), Ok(long.as_str()));
        // All text: every field is held, whatever its length.
        let good = [&bytes[..4], &bytes[8..]].concat();
        let run = TextMessage::leading_text(&good);
        for field in run.fields() {
            let value = field.expect("valid").1;
            assert!(run.holds(value.bytes().expect("bytes")));
        }
    }

    #[test]
    fn repeated_numbers_read_packed_or_not() {
        use opentelemetry_proto::tonic::metrics::v1::{
            HistogramDataPoint, exponential_histogram_data_point::Buckets,
        };
        let point = HistogramDataPoint {
            bucket_counts: vec![1, u64::MAX],
            explicit_bounds: vec![0.5, -2.0],
            ..Default::default()
        };
        let bytes = point.encode_to_vec();
        let (mut counts, mut bounds) = (Vec::new(), Vec::new());
        for field in Fields::new(&bytes) {
            match field.expect("valid") {
                (6, v) => v.push_fixed64s(&mut counts, |bits| bits).expect("packed"),
                (7, v) => v
                    .push_fixed64s(&mut bounds, f64::from_bits)
                    .expect("packed"),
                _ => {}
            }
        }
        assert_eq!(
            (counts, bounds),
            (point.bucket_counts, point.explicit_bounds)
        );
        // The same values one field each, as an encoder that does not pack writes them.
        let mut counts = Vec::new();
        for value in [Value::Fixed64(3), Value::Fixed64(4)] {
            value
                .push_fixed64s(&mut counts, |bits| bits)
                .expect("unpacked");
        }
        assert_eq!(counts, [3, 4]);
        assert!(
            Value::Bytes(&[1, 2, 3])
                .push_fixed64s(&mut counts, |b| b)
                .is_err()
        );
        assert!(Value::Varint(1).push_fixed64s(&mut counts, |b| b).is_err());

        let buckets = Buckets {
            offset: -3,
            bucket_counts: vec![0, 300, u64::MAX],
        };
        let bytes = buckets.encode_to_vec();
        let (mut offset, mut counts) = (0, Vec::new());
        for field in Fields::new(&bytes) {
            match field.expect("valid") {
                (1, v) => offset = v.sint32().expect("sint32"),
                (2, v) => v.push_varints(&mut counts).expect("packed"),
                _ => {}
            }
        }
        assert_eq!((offset, counts), (-3, buckets.bucket_counts));
        let mut counts = Vec::new();
        Value::Varint(7)
            .push_varints(&mut counts)
            .expect("unpacked");
        assert_eq!(counts, [7]);
        assert!(
            Value::Bytes(&[0x80]).push_varints(&mut counts).is_err(),
            "cut short"
        );
        assert_eq!(Value::Varint(u64::from(u32::MAX)).sint32(), Ok(i32::MIN));
    }

    #[test]
    fn groups_are_skipped_whole() {
        // Field 3 as a group holding a varint and a nested group 1, then field 1 (a varint).
        let bytes = [0x1b, 0x08, 0x01, 0x0b, 0x0c, 0x1c, 0x08, 0x05];
        let fields: Vec<_> = Fields::new(&bytes)
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(
            fields,
            [(3, Value::Group(&bytes[1..6])), (1, Value::Varint(5))]
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &[0x0a, 0x05, 1][..],
            &[0xff; 11],
            &[0x0b],
            &[0x0c],
            &[0x0b, 0x14],
            &[0x0f],
            &[0x00, 0x00],
            &[0x09, 1, 2],
        ] {
            assert!(Fields::new(bad).any(|f| f.is_err()), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            for field in Fields::new(&bytes) {
                if field.is_err() { break; }
            }
        }
    }
}
