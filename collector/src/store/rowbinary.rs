//! A minimal RowBinary encoder for the hot path: span rows are written straight from the
//! normalised spans into one buffer per request, instead of building a row struct per span and
//! serialising it later in the writer.
//!
//! RowBinary: integers little-endian at their fixed width, `String` as a LEB128 length then the
//! bytes, `FixedString(N)` as N raw bytes, `Array(T)` as a LEB128 count then the items, `DateTime`
//! as `UInt32` seconds, `Enum8` as `Int8`.

use crate::model::Attribute;
use bytes::{BufMut, BytesMut};

/// Writes an unsigned LEB128 length.
pub(crate) fn put_length(buf: &mut BytesMut, mut n: usize) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// Writes a `String`.
pub(crate) fn put_str(buf: &mut BytesMut, s: &str) {
    put_length(buf, s.len());
    buf.put_slice(s.as_bytes());
}

/// Writes attributes as the two arrays of a `Nested(key String, value String)` column.
pub(crate) fn put_attributes(buf: &mut BytesMut, attributes: &[Attribute<'_>]) {
    put_length(buf, attributes.len());
    for (key, _) in attributes {
        put_str(buf, key);
    }
    put_length(buf, attributes.len());
    for (_, value) in attributes {
        put_str(buf, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_leb128() {
        let mut buf = BytesMut::new();
        for n in [0, 127, 128, 300, 16_384] {
            put_length(&mut buf, n);
        }
        assert_eq!(
            &buf[..],
            &[0x00, 0x7f, 0x80, 0x01, 0xac, 0x02, 0x80, 0x80, 0x01]
        );
    }

    #[test]
    fn attributes_are_two_string_arrays() {
        let mut buf = BytesMut::new();
        put_attributes(&mut buf, &[("ab", "c".into()), ("", "".into())]);
        assert_eq!(&buf[..], &[2, 2, b'a', b'b', 0, 2, 1, b'c', 0]);
    }
}
