//! Running a deployable's OTLP listeners: the gRPC and HTTP servers for one sink, stopped
//! together, and the signal (SIGTERM or Ctrl-C) that stops a process.

use super::auth::Tokens;
use super::grpc::OtlpGrpcService;
use super::tls::{TlsListener, accept_tls};
use super::{Metrics, OtlpSink, Traces};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// A server that runs until stopped; its error as text.
pub type ServerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The largest HTTP/2 frame a client may send the gRPC listener.
const MAX_FRAME_BYTES: u32 = 1024 * 1024;

/// What every OTLP listener of a process shares.
#[derive(Clone, Debug, Default)]
pub struct ListenerOptions {
    /// Largest request accepted, after decompression.
    pub max_request_bytes: usize,
    /// Bearer tokens required (none: no authentication).
    pub tokens: Arc<Tokens>,
    /// TLS configuration (none: plain TCP).
    pub tls: Option<Arc<ServerConfig>>,
}

/// The OTLP/gRPC and OTLP/HTTP servers for `sink` on the given listeners, named `otlp-grpc` and
/// `otlp-http`; both finish their requests in flight and stop once `stop` is cancelled.
pub fn otlp_servers<S: OtlpSink>(
    sink: Arc<S>,
    grpc: TcpListener,
    http: TcpListener,
    options: &ListenerOptions,
    stop: CancellationToken,
) -> std::io::Result<[(&'static str, ServerFuture); 2]> {
    let ListenerOptions {
        max_request_bytes,
        tokens,
        tls,
    } = options;
    // Larger HTTP/2 windows: OTLP requests are large, so fewer flow-control round trips. Larger
    // frames: a request arrives in fewer, larger reads (at the default 16 KiB, two 8 KiB reads a
    // frame, about 17 system calls for a 500-span request).
    let router = tonic::transport::Server::builder()
        .initial_connection_window_size(4 * 1024 * 1024)
        .initial_stream_window_size(2 * 1024 * 1024)
        .max_frame_size(MAX_FRAME_BYTES)
        .add_service(OtlpGrpcService::<Traces, _>::new(
            Arc::clone(&sink),
            *max_request_bytes,
            Arc::clone(tokens),
        ))
        .add_service(OtlpGrpcService::<Metrics, _>::new(
            Arc::clone(&sink),
            *max_request_bytes,
            Arc::clone(tokens),
        ));
    let grpc: ServerFuture = match tls {
        Some(config) => {
            let connections = accept_tls(grpc, Arc::clone(config));
            let incoming =
                ReceiverStream::new(connections).map(|(tls, _)| Ok::<_, std::io::Error>(tls));
            let server =
                router.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
            Box::pin(async move { server.await.map_err(|e| e.to_string()) })
        }
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(grpc);
            let server =
                router.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
            Box::pin(async move { server.await.map_err(|e| e.to_string()) })
        }
    };
    let http = serve_router(
        http,
        super::http::router(sink, *max_request_bytes, Arc::clone(tokens)),
        tls.clone(),
        stop,
    )?;
    Ok([("otlp-grpc", grpc), ("otlp-http", http)])
}

/// Serves `router` on `listener` (over TLS when `tls` is set) until `stop` is cancelled.
pub fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<ServerConfig>>,
    stop: CancellationToken,
) -> std::io::Result<ServerFuture> {
    Ok(match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, config)?;
            let server =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            Box::pin(async move { server.await.map_err(|e| e.to_string()) })
        }
        None => {
            let server =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            Box::pin(async move { server.await.map_err(|e| e.to_string()) })
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
