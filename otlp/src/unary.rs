//! One unary gRPC call on the wire: the request's one length-prefixed message, read from the
//! HTTP/2 body and decompressed when the call names a `grpc-encoding`, and the reply's body.
//!
//! In: a request body and its headers (or its frames one by one, to [`MessageReader`]), and the
//! most bytes a message may have. Out: the message bytes, or a status saying what is wrong with
//! the framing. When one DATA frame holds the message whole (the usual case: the gRPC listener
//! takes frames of up to 1 MiB; tonic's client sends prefix and message in one frame, then an
//! empty one that ends the stream), its bytes are handed on without a copy; otherwise (the first
//! request on a connection comes in 16 KiB frames, before the client has the listener's
//! settings) the frames are joined once, into a buffer sized from the message's length prefix. A
//! message over the limit is refused from its prefix, before it is buffered. Replies are not
//! compressed (a gRPC server may always answer uncompressed).

use crate::inflate::{Compression, InflateError};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::Status;
use tonic::codegen::{Body, StdError, http};

/// The prefix before each gRPC message: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// The request header naming the message's compression.
const GRPC_ENCODING: &str = "grpc-encoding";

/// Reads the one message of a unary call whose headers are `headers`: at most `limit` bytes,
/// before decompression and after.
pub(crate) async fn read_message<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, Status>
where
    B: Body<Data = Bytes>,
    B::Error: Into<StdError>,
{
    let encoding = headers
        .get(GRPC_ENCODING)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    let mut reader = MessageReader::new(encoding, limit)?;
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::from_error(e.into()))?;
        if let Ok(data) = frame.into_data() {
            reader.push(data)?;
        }
    }
    reader.finish()
}

/// Reads one unary call's message from its body's frames as they come: the 5-byte prefix (which
/// may be cut across frames, or come in a frame of its own), then the message. Every way the
/// framing can be wrong is a status, never a panic (a fuzz target runs it on any bytes).
pub struct MessageReader {
    /// The compression the call names.
    compression: Option<Compression>,
    /// The most bytes a message may have, before decompression and after.
    limit: usize,
    /// The prefix's bytes so far.
    head: [u8; PREFIX],
    head_len: usize,
    /// The prefix, once read.
    prefix: Option<Prefix>,
    /// The message's bytes so far.
    message: Received,
}

impl MessageReader {
    /// A reader for a call whose `grpc-encoding` header says `encoding` (`None`: no header), for
    /// messages of at most `limit` bytes; UNIMPLEMENTED for an encoding Plumb does not read.
    pub fn new(encoding: Option<&str>, limit: usize) -> Result<Self, Status> {
        Ok(Self {
            compression: Compression::named(encoding).map_err(unsupported_encoding)?,
            limit,
            head: [0; PREFIX],
            head_len: 0,
            prefix: None,
            message: Received::Nothing,
        })
    }

    /// Takes the data of the body's next frame.
    pub fn push(&mut self, mut data: Bytes) -> Result<(), Status> {
        if self.head_len < PREFIX {
            let taken = data.len().min(PREFIX - self.head_len);
            self.head[self.head_len..self.head_len + taken].copy_from_slice(&data[..taken]);
            self.head_len += taken;
            data.advance(taken);
            if self.head_len == PREFIX {
                self.prefix = Some(Prefix::read(self.head, self.compression, self.limit)?);
            }
        }
        let Some(prefix) = self.prefix else {
            return Ok(());
        };
        if data.is_empty() {
            return Ok(());
        }
        self.message.add(data, prefix.len);
        if self.message.bytes().len() > prefix.len {
            return Err(Status::invalid_argument(
                "a unary call carries one message, and more bytes came after it",
            ));
        }
        Ok(())
    }

    /// The message, decompressed, once the body has ended.
    pub fn finish(self) -> Result<Bytes, Status> {
        let Some(prefix) = self.prefix else {
            return Err(Status::invalid_argument(
                "the request body ended before its message's 5-byte prefix",
            ));
        };
        let got = self.message.bytes().len();
        if got < prefix.len {
            return Err(Status::invalid_argument(format!(
                "the request body ended after {got} of the {} bytes of its message",
                prefix.len
            )));
        }
        let message = self.message.into_bytes();
        match prefix.compression {
            None => Ok(message),
            Some(compression) => compression
                .inflate(&message, self.limit)
                .map_err(|e| match e {
                    InflateError::Invalid { .. } => Status::invalid_argument(e.to_string()),
                    InflateError::OverLimit(_) => Status::resource_exhausted(e.to_string()),
                }),
        }
    }
}

/// The answer to a call naming a compression Plumb does not read: UNIMPLEMENTED, with the ones
/// it reads in `grpc-accept-encoding`, as the gRPC compression spec asks.
fn unsupported_encoding(name: String) -> Status {
    let mut status = Status::unimplemented(format!(
        "grpc-encoding {name:?} is not supported: send gzip, zstd or identity"
    ));
    status.metadata_mut().insert(
        "grpc-accept-encoding",
        tonic::metadata::MetadataValue::from_static("gzip,zstd,identity"),
    );
    status
}

/// A message's prefix, read.
#[derive(Clone, Copy)]
struct Prefix {
    /// Its length on the wire.
    len: usize,
    /// How it is compressed, if it is.
    compression: Option<Compression>,
}

impl Prefix {
    /// Reads a prefix, for a call that names `compression`; a message over `limit` is refused
    /// here.
    fn read(
        [flag, length @ ..]: [u8; PREFIX],
        compression: Option<Compression>,
        limit: usize,
    ) -> Result<Self, Status> {
        let len = u32::from_be_bytes(length) as usize;
        let compression = match (flag, compression) {
            (0, _) => None,
            (1, Some(compression)) => Some(compression),
            // The gRPC spec asks for INTERNAL on these two.
            (1, None) => {
                return Err(Status::internal(
                    "the message is marked compressed but the call names no grpc-encoding",
                ));
            }
            (flag, _) => {
                return Err(Status::internal(format!(
                    "the message's compressed flag is {flag}; it must be 0 or 1"
                )));
            }
        };
        if len > limit {
            return Err(Status::resource_exhausted(format!(
                "message of {len} bytes is over the limit of {limit} bytes; send smaller batches"
            )));
        }
        Ok(Self { len, compression })
    }
}

/// The message read so far.
enum Received {
    /// No data yet.
    Nothing,
    /// One frame's data, not copied.
    One(Bytes),
    /// Several frames' data, joined.
    Joined(BytesMut),
}

impl Received {
    /// Adds a frame's `data`; `room` is the message's length.
    fn add(&mut self, data: Bytes, room: usize) {
        *self = match std::mem::replace(self, Self::Nothing) {
            Self::Nothing => Self::One(data),
            Self::One(first) => {
                let mut joined = BytesMut::with_capacity(room.max(first.len() + data.len()));
                joined.put(first);
                joined.put(data);
                Self::Joined(joined)
            }
            Self::Joined(mut joined) => {
                joined.put(data);
                Self::Joined(joined)
            }
        };
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Nothing => &[],
            Self::One(bytes) => bytes,
            Self::Joined(bytes) => bytes,
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Nothing => Bytes::new(),
            Self::One(bytes) => bytes,
            Self::Joined(bytes) => bytes.freeze(),
        }
    }
}

/// A successful reply carrying `message`: the prefixed message, then `grpc-status: 0` in the
/// trailers.
pub(crate) fn reply<M: prost::Message>(message: &M) -> http::Response<tonic::body::Body> {
    let len = message.encoded_len();
    let mut data = BytesMut::with_capacity(PREFIX + len);
    data.put_u8(0);
    data.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    if let Err(e) = message.encode(&mut data) {
        return Status::internal(format!("could not encode the response: {e}")).into_http();
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Full::new(data.freeze()).with_trailers(async { Some(Ok(trailers)) });
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use std::convert::Infallible;

    /// A body that arrives as `frames`.
    fn body(frames: Vec<Vec<u8>>) -> impl Body<Data = Bytes, Error = Infallible> {
        let frames = frames
            .into_iter()
            .map(|f| Ok(http_body::Frame::data(Bytes::from(f))));
        StreamBody::new(tokio_stream::iter(frames))
    }

    fn prefixed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend((message.len() as u32).to_be_bytes());
        out.extend(message);
        out
    }

    async fn read(encoding: Option<&str>, frames: Vec<Vec<u8>>) -> Result<Bytes, Status> {
        let mut headers = http::HeaderMap::new();
        if let Some(encoding) = encoding {
            headers.insert(GRPC_ENCODING, encoding.parse().expect("header"));
        }
        read_message(&headers, body(frames), 100).await
    }

    /// What `read` gave, comparable: the message or the status's text.
    fn got(result: Result<Bytes, Status>) -> Result<Vec<u8>, String> {
        result.map(|b| b.to_vec()).map_err(|s| s.to_string())
    }

    #[tokio::test]
    async fn a_message_reads_alike_in_one_frame_or_cut_anywhere() {
        let message = b"spans and more spans".to_vec();
        let whole = prefixed(0, &message);
        assert_eq!(
            got(read(None, vec![whole.clone()]).await),
            Ok(message.clone())
        );
        for cut in 1..whole.len() {
            let frames = vec![whole[..cut].to_vec(), Vec::new(), whole[cut..].to_vec()];
            assert_eq!(
                got(read(None, frames).await),
                Ok(message.clone()),
                "cut at {cut}"
            );
        }
        let packed = zstd::encode_all(&message[..], 1).expect("zstd");
        assert_eq!(
            got(read(Some("zstd"), vec![prefixed(1, &packed)]).await),
            Ok(message.clone())
        );
        // A call may name an encoding and still send a message uncompressed.
        assert_eq!(got(read(Some("gzip"), vec![whole]).await), Ok(message));
    }

    #[tokio::test]
    async fn bad_framing_gets_a_status_that_says_what_is_wrong() {
        let cases = [
            (
                Some("br"),
                vec![prefixed(0, b"x")],
                tonic::Code::Unimplemented,
                "\"br\" is not supported",
            ),
            (
                None,
                vec![prefixed(1, b"x")],
                tonic::Code::Internal,
                "names no grpc-encoding",
            ),
            (
                None,
                vec![prefixed(2, b"x")],
                tonic::Code::Internal,
                "compressed flag is 2",
            ),
            (
                None,
                vec![],
                tonic::Code::InvalidArgument,
                "before its message's 5-byte prefix",
            ),
            (
                None,
                vec![vec![0, 0, 0]],
                tonic::Code::InvalidArgument,
                "before its message's 5-byte prefix",
            ),
            (
                None,
                vec![prefixed(0, b"abcdef")[..8].to_vec()],
                tonic::Code::InvalidArgument,
                "after 3 of the 6 bytes",
            ),
            (
                None,
                vec![[prefixed(0, b"a"), prefixed(0, b"b")].concat()],
                tonic::Code::InvalidArgument,
                "carries one message",
            ),
            (
                None,
                vec![prefixed(0, &[7; 101])],
                tonic::Code::ResourceExhausted,
                "message of 101 bytes is over the limit of 100",
            ),
            (
                Some("gzip"),
                vec![prefixed(1, b"not gzip")],
                tonic::Code::InvalidArgument,
                "gzip data is not valid",
            ),
        ];
        for (encoding, frames, code, says) in cases {
            let status = read(encoding, frames).await.expect_err(says);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(says), "{status:?}");
        }
        let status = read(Some("br"), vec![]).await.expect_err("unsupported");
        assert_eq!(
            status
                .metadata()
                .get("grpc-accept-encoding")
                .map(|v| v.to_str().ok()),
            Some(Some("gzip,zstd,identity"))
        );
        // Decompressed past the limit.
        let packed = zstd::encode_all(&[0u8; 1000][..], 1).expect("zstd");
        let status = read(Some("zstd"), vec![prefixed(1, &packed)])
            .await
            .expect_err("too big");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    }

    proptest::proptest! {
        /// Any bytes, cut into any frames, with or without an encoding named: a message or a
        /// status, never a panic; and a well-framed message comes back whole however it is cut.
        #[test]
        fn any_framing_gives_a_message_or_a_status(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
            encoding in proptest::option::of(proptest::sample::select(vec!["gzip", "zstd", "br"])),
        ) {
            let frames = |body: &[u8]| {
                let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
                at.sort_unstable();
                let mut frames = Vec::new();
                let mut from = 0;
                for to in at.into_iter().chain([body.len()]) {
                    frames.push(body[from..to].to_vec());
                    from = to;
                }
                frames
            };
            let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            runtime.block_on(async {
                let _ = read(encoding, frames(&bytes)).await;
                let whole = prefixed(0, &bytes);
                let got = got(read(encoding, frames(&whole)).await);
                if encoding == Some("br") {
                    assert!(got.is_err());
                } else {
                    assert_eq!(got, Ok(bytes.clone()));
                }
            });
        }
    }

    #[tokio::test]
    async fn a_reply_is_the_prefixed_message_then_status_ok() {
        let message = opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "three were old".into(),
        };
        let response = reply(&message);
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "application/grpc"
        );
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        let bytes = collected.to_bytes();
        assert_eq!(
            bytes.slice(PREFIX..),
            Bytes::from(prost::Message::encode_to_vec(&message))
        );
        assert_eq!(
            &bytes[..PREFIX],
            &prefixed(0, &prost::Message::encode_to_vec(&message))[..PREFIX]
        );
    }
}
