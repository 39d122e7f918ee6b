//! The OTLP listeners on real loopback sockets: what a client sends over gRPC or HTTP, plain or
//! compressed (gzip, zstd), is what the sink gets, and the client reads the reply.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use plumb_otlp::client::{CompressionEncoding, RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_otlp::serve::{ListenerOptions, otlp_servers};
use plumb_otlp::{ExportError, OtlpSink, Payload};
use prost::Message;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Keeps every trace payload it is given and answers with a partial success naming its size.
#[derive(Default)]
struct Keeper {
    traces: Mutex<Vec<Bytes>>,
}

impl OtlpSink for Keeper {
    async fn export_traces(
        &self,
        payload: Payload,
    ) -> Result<ExportTraceServiceResponse, ExportError> {
        let Payload::Protobuf(bytes) = payload else {
            return Err(ExportError::Malformed("expected protobuf".into()));
        };
        let len = bytes.len();
        self.traces.lock().expect("lock").push(bytes);
        Ok(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: len as i64,
                error_message: String::new(),
            }),
        })
    }

    async fn export_metrics(
        &self,
        _: Payload,
    ) -> Result<ExportMetricsServiceResponse, ExportError> {
        Ok(ExportMetricsServiceResponse::default())
    }
}

#[tokio::test]
async fn a_large_message_arrives_whole_plain_gzip_or_zstd_over_grpc_and_http() {
    let keeper = Arc::new(Keeper::default());
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", grpc.local_addr().expect("address"));
    let http_address = http.local_addr().expect("address");
    let options = ListenerOptions {
        max_request_bytes: 4 * 1024 * 1024,
        ..ListenerOptions::default()
    };
    let stop = CancellationToken::new();
    let [(_, grpc_server), (_, http_server)] =
        otlp_servers(Arc::clone(&keeper), grpc, http, &options, stop.clone()).expect("servers");
    let servers = tokio::spawn(async move { tokio::join!(grpc_server, http_server) });

    // Past one default HTTP/2 frame (16 KiB) and one default window (64 KiB), like a batch of
    // a few hundred spans; not all one byte, so that a cut or a shift would show.
    let message: Bytes = (0..300_000u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    for compression in [
        None,
        Some(CompressionEncoding::Gzip),
        Some(CompressionEncoding::Zstd),
    ] {
        let mut client = RawGrpcClient::connect(url.clone(), TRACE_EXPORT_PATH, compression)
            .await
            .expect("connect");
        for _ in 0..3 {
            let reply = client.send(message.clone()).await.expect("accepted");
            let reply =
                ExportTraceServiceResponse::decode(reply).expect("a reply the client reads");
            let rejected = reply.partial_success.map(|p| p.rejected_spans);
            assert_eq!(rejected, Some(message.len() as i64), "{compression:?}");
            let got = keeper
                .traces
                .lock()
                .expect("lock")
                .pop()
                .expect("a payload");
            assert!(got == message, "{compression:?}: the sink got other bytes");
        }
    }
    for encoding in ["identity", "gzip", "zstd"] {
        let body = match encoding {
            "gzip" => {
                let mut gzip =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gzip.write_all(&message).expect("gzip");
                gzip.finish().expect("gzip")
            }
            "zstd" => zstd::encode_all(&message[..], 1).expect("zstd"),
            _ => message.to_vec(),
        };
        let status = tokio::task::spawn_blocking(move || post(http_address, encoding, &body))
            .await
            .expect("post");
        assert_eq!(status, "HTTP/1.1 200 OK", "{encoding}");
        let got = keeper.traces.lock().expect("lock").pop();
        assert!(
            got.as_ref() == Some(&message),
            "{encoding}: the sink got other bytes"
        );
    }
    stop.cancel();
    let (grpc, http) = servers.await.expect("servers stop");
    assert_eq!((grpc, http), (Ok(()), Ok(())));
}

/// Posts `body` to `/v1/traces` as protobuf with `Content-Encoding: encoding`, over plain
/// HTTP/1.1; the response's status line.
fn post(address: std::net::SocketAddr, encoding: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let wait = Some(std::time::Duration::from_secs(10));
    stream.set_read_timeout(wait).expect("timeout");
    write!(
        stream,
        "POST /v1/traces HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: {encoding}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("head");
    stream.write_all(body).expect("body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let response = String::from_utf8_lossy(&response);
    response.lines().next().unwrap_or_default().to_owned()
}
