//! The OTLP/gRPC listener on a real loopback socket: what a client sends, plain or compressed,
//! is what the sink gets, and the client reads the reply.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use plumb_otlp::client::{CompressionEncoding, RawGrpcClient, TRACE_EXPORT_PATH};
use plumb_otlp::serve::{ListenerOptions, otlp_servers};
use plumb_otlp::{ExportError, OtlpSink, Payload};
use prost::Message;
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
async fn a_large_message_arrives_whole_plain_gzip_or_zstd() {
    let keeper = Arc::new(Keeper::default());
    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", grpc.local_addr().expect("address"));
    let options = ListenerOptions {
        max_request_bytes: 4 * 1024 * 1024,
        ..ListenerOptions::default()
    };
    let stop = CancellationToken::new();
    let [(_, grpc_server), (_, http_server)] =
        otlp_servers(Arc::clone(&keeper), grpc, http, &options, stop.clone()).expect("servers");
    let servers = tokio::spawn(async move { (grpc_server.await, http_server.await) });

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
    stop.cancel();
    let (grpc, http) = servers.await.expect("servers stop");
    assert_eq!((grpc, http), (Ok(()), Ok(())));
}
