//! Decompression of request bodies and gRPC messages, bounded by a size limit.
//!
//! In: the name of an encoding (`Content-Encoding` or `grpc-encoding`), the compressed bytes and
//! the most the decompressed bytes may hold. Out: the decompressed bytes, or why not: an
//! encoding Plumb does not read, bytes that are not valid in it, or more than the limit (found
//! without decompressing past the limit).

use bytes::Bytes;
use std::io::Read;

/// The compressions a request may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// gzip (RFC 1952).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// Why a body could not be decompressed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InflateError {
    /// The bytes are not valid in their encoding.
    #[error("{encoding} data is not valid: {error}")]
    Invalid {
        /// The encoding's name.
        encoding: &'static str,
        /// What the decoder said.
        error: String,
    },
    /// The decompressed bytes would be over the limit.
    #[error("decompressed body is over the limit of {0} bytes; send smaller batches")]
    OverLimit(usize),
}

impl Compression {
    /// The compression a header names: `Ok(None)` for none (`identity` or no header), `Err` with
    /// the name when it is one Plumb does not read.
    pub(crate) fn named(name: Option<&str>) -> Result<Option<Self>, String> {
        let name = name.unwrap_or("identity").trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(None)
        } else if name.eq_ignore_ascii_case("gzip") {
            Ok(Some(Self::Gzip))
        } else if name.eq_ignore_ascii_case("zstd") {
            Ok(Some(Self::Zstd))
        } else {
            Err(name.to_owned())
        }
    }

    /// The encoding's name as headers spell it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// Decompresses `bytes`, refusing output over `limit` bytes.
    pub(crate) fn inflate(self, bytes: &[u8], limit: usize) -> Result<Bytes, InflateError> {
        let reader: Box<dyn Read + '_> = match self {
            Self::Gzip => Box::new(flate2::read::GzDecoder::new(bytes)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(bytes).map_err(
                |e| InflateError::Invalid {
                    encoding: self.name(),
                    error: e.to_string(),
                },
            )?),
        };
        let mut out = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| InflateError::Invalid {
                encoding: self.name(),
                error: e.to_string(),
            })?;
        if out.len() > limit {
            return Err(InflateError::OverLimit(limit));
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn both_encodings_round_trip_within_the_limit_and_refuse_past_it() {
        let body = b"spans ".repeat(100);
        let packed = [
            (Compression::Gzip, gzip(&body)),
            (
                Compression::Zstd,
                zstd::encode_all(&body[..], 1).expect("zstd"),
            ),
        ];
        for (compression, packed) in packed {
            assert_eq!(
                compression.inflate(&packed, body.len()).as_deref(),
                Ok(&body[..])
            );
            assert_eq!(
                compression.inflate(&packed, body.len() - 1),
                Err(InflateError::OverLimit(body.len() - 1))
            );
            let error = compression
                .inflate(b"not compressed at all", 1000)
                .expect_err("invalid");
            assert!(error.to_string().starts_with(compression.name()), "{error}");
        }
    }

    #[test]
    fn names_are_read_without_regard_to_case() {
        assert_eq!(Compression::named(None), Ok(None));
        assert_eq!(Compression::named(Some("identity")), Ok(None));
        assert_eq!(
            Compression::named(Some(" GZIP ")),
            Ok(Some(Compression::Gzip))
        );
        assert_eq!(
            Compression::named(Some("zstd")),
            Ok(Some(Compression::Zstd))
        );
        assert_eq!(Compression::named(Some("br")), Err("br".into()));
    }
}
