//! Running a deployable's OTLP listeners: the gRPC and HTTP servers for one sink, stopped
//! together, and the signal (SIGTERM or Ctrl-C) that stops a process.

use super::auth::Tokens;
use super::grpc::OtlpGrpcService;
use super::{Metrics, OtlpSink, Traces};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A server that runs until stopped; its error as text.
pub type ServerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// The OTLP/gRPC and OTLP/HTTP servers for `sink` on the given listeners, named `otlp-grpc` and
/// `otlp-http`; both take requests of up to `max_request_bytes` from callers with one of `tokens`,
/// finish their requests in flight and stop once `stop` turns true.
pub fn otlp_servers<S: OtlpSink>(
    sink: Arc<S>,
    grpc: TcpListener,
    http: TcpListener,
    max_request_bytes: usize,
    tokens: Arc<Tokens>,
    stop: watch::Receiver<bool>,
) -> [(&'static str, ServerFuture); 2] {
    // Larger HTTP/2 windows: OTLP requests are large, so fewer flow-control round trips.
    let grpc = tonic::transport::Server::builder()
        .initial_connection_window_size(4 * 1024 * 1024)
        .initial_stream_window_size(2 * 1024 * 1024)
        .add_service(OtlpGrpcService::<Traces, _>::new(
            Arc::clone(&sink),
            max_request_bytes,
            Arc::clone(&tokens),
        ))
        .add_service(OtlpGrpcService::<Metrics, _>::new(
            Arc::clone(&sink),
            max_request_bytes,
            Arc::clone(&tokens),
        ))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc),
            stopped(stop.clone()),
        );
    let http = axum::serve(http, super::http::router(sink, max_request_bytes, tokens))
        .with_graceful_shutdown(stopped(stop));
    [
        (
            "otlp-grpc",
            Box::pin(async move { grpc.await.map_err(|e| e.to_string()) }),
        ),
        (
            "otlp-http",
            Box::pin(async move { http.await.map_err(|e| e.to_string()) }),
        ),
    ]
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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
