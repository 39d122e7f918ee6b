//! A minimal RowBinary encoder for the hot path: span rows are written straight from the
//! normalised spans into one buffer per request, instead of building a row struct per span and
//! serialising it later in the writer. [`Reader`] walks such rows again where a replay must know
//! which rows a batch holds.
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

/// Writes attributes as the two arrays of a `Nested(key String, value String)` column, leaving
/// out those at the places `omit` lists (each place at most once).
pub(crate) fn put_attributes(buf: &mut BytesMut, attributes: &[Attribute<'_>], omit: &[usize]) {
    let count = attributes.len().saturating_sub(omit.len());
    let kept = || {
        attributes
            .iter()
            .enumerate()
            .filter(|(at, _)| !omit.contains(at))
            .map(|(_, attribute)| attribute)
    };
    put_length(buf, count);
    for (key, _) in kept() {
        put_str(buf, key);
    }
    put_length(buf, count);
    for (_, value) in kept() {
        put_str(buf, value);
    }
}

/// Reads RowBinary values from the front of a byte slice; every read is `None` once the bytes
/// run out or a length does not fit, never a panic.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    /// What is left to read.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` raw bytes (a `FixedString(n)`).
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    /// The next `N` raw bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// A little-endian `UInt64`.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A little-endian `UInt32` (also a `DateTime`).
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// An unsigned LEB128 length.
    pub(crate) fn length(&mut self) -> Option<usize> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes(1)?.first()?;
            n |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return usize::try_from(n).ok();
            }
        }
        None
    }

    /// A `String` (its bytes; Plumb writes only UTF-8, checked by the caller where it matters).
    pub(crate) fn str(&mut self) -> Option<&'a [u8]> {
        let n = self.length()?;
        self.bytes(n)
    }

    /// Skips an `Array(String)`.
    pub(crate) fn skip_str_array(&mut self) -> Option<()> {
        for _ in 0..self.length()? {
            self.str()?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_reads_what_the_writer_wrote_and_stops_at_the_end() {
        let mut buf = BytesMut::new();
        buf.put_u32_le(7);
        buf.put_u64_le(u64::MAX);
        put_length(&mut buf, 300);
        put_str(&mut buf, "héllo");
        put_attributes(&mut buf, &[("k", "v")], &[]);
        let mut r = Reader::new(&buf);
        assert_eq!(r.u32(), Some(7));
        assert_eq!(r.u64(), Some(u64::MAX));
        assert_eq!(r.length(), Some(300));
        assert_eq!(r.str(), Some("héllo".as_bytes()));
        assert_eq!(r.skip_str_array(), Some(()));
        assert_eq!(r.skip_str_array(), Some(()));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.u32(), None);
        assert_eq!(Reader::new(&[3, b'a']).str(), None, "cut short");
        assert_eq!(Reader::new(&[0xff; 12]).length(), None, "too long");
    }

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
        put_attributes(&mut buf, &[("ab", "c"), ("", "")], &[]);
        assert_eq!(&buf[..], &[2, 2, b'a', b'b', 0, 2, 1, b'c', 0]);
        buf.clear();
        put_attributes(&mut buf, &[("ab", "c"), ("d", "e")], &[0]);
        assert_eq!(&buf[..], &[1, 1, b'd', 1, 1, b'e']);
    }
}
