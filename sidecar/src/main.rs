//! `plumb-agent`: the sidecar for backends in any language.
//!
//! It listens for OTLP on localhost (gRPC 4317, HTTP 4318 with protobuf or JSON) so a stock
//! OpenTelemetry SDK only points its exporter at localhost, adds the host's resource attributes,
//! reports host metrics, and forwards everything to the collector in batches with gzip, retrying
//! with backoff, inside a memory bound (oldest data dropped first, and counted). `/healthz` and
//! `/metrics` are on the admin address.

mod backlog;
mod enrich;
mod forward;
mod telemetry;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use clap::Parser;
use forward::{Forwarder, SendSettings, run_sender};
use plumb_config::Secret;
use plumb_net::ClientTlsFiles;
use plumb_otlp::auth::Tokens;
use plumb_otlp::client::{
    CompressionEncoding, METRICS_EXPORT_PATH, RawGrpcClient, TRACE_EXPORT_PATH,
};
use plumb_otlp::serve::{ListenerOptions, otlp_servers, shutdown_signal};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use telemetry::{SidecarTelemetry, Signal};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How batches sent to the collector are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// Not compressed.
    None,
}

/// Every option of the sidecar.
#[derive(Debug, Parser)]
#[command(
    name = "plumb-agent",
    version,
    about = "Plumb's sidecar: OTLP on localhost, forwarded to the collector"
)]
struct Config {
    /// TOML config file; its keys are the long option names below.
    #[arg(long, env = "PLUMB_AGENT_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// The collector's OTLP/gRPC endpoint.
    #[arg(long, env = "PLUMB_COLLECTOR_URL")]
    collector_url: String,
    /// Bearer token sent to the collector (its `--ingest-tokens`).
    #[arg(
        long,
        env = "PLUMB_COLLECTOR_TOKEN",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    collector_token: Secret,
    /// CA (PEM) the collector's certificate must chain to; turns TLS on (use an https:// --collector-url).
    #[arg(long, env = "PLUMB_COLLECTOR_CA_CERT")]
    collector_ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for a collector that requires mutual TLS.
    #[arg(long, env = "PLUMB_COLLECTOR_CLIENT_CERT")]
    collector_client_cert: Option<std::path::PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, env = "PLUMB_COLLECTOR_CLIENT_KEY")]
    collector_client_key: Option<std::path::PathBuf>,
    /// Bearer tokens accepted from local SDKs, as name=token pairs; empty: no authentication.
    #[arg(
        long,
        env = "PLUMB_AGENT_INGEST_TOKENS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    ingest_tokens: Secret,
    /// OTLP/gRPC listen address.
    #[arg(long, env = "PLUMB_AGENT_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address.
    #[arg(long, env = "PLUMB_AGENT_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    http_addr: SocketAddr,
    /// `/healthz` and `/metrics` listen address.
    #[arg(
        long,
        env = "PLUMB_AGENT_ADMIN_ADDR",
        default_value = "127.0.0.1:13133"
    )]
    admin_addr: SocketAddr,
    /// Bytes held per signal while the collector is away; past it the oldest data is dropped.
    #[arg(long, env = "PLUMB_AGENT_MAX_BACKLOG_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_backlog_bytes: usize,
    /// Largest batch sent to the collector, in bytes before gzip.
    #[arg(long, env = "PLUMB_AGENT_BATCH_MAX_BYTES", default_value_t = 4 * 1024 * 1024)]
    batch_max_bytes: usize,
    /// Longest time received data waits before it is sent.
    #[arg(long, env = "PLUMB_AGENT_FLUSH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    flush_interval: Duration,
    /// Largest request accepted from a local SDK, in bytes.
    #[arg(long, env = "PLUMB_AGENT_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    max_request_bytes: usize,
    /// How often host metrics are reported (0s turns them off).
    #[arg(long, env = "PLUMB_AGENT_HOST_METRICS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    host_metrics_interval: Duration,
    /// Compression of what is sent to the collector (zstd takes less CPU than gzip).
    #[arg(long, env = "PLUMB_AGENT_COMPRESSION", value_enum, default_value_t = Compression::Gzip)]
    compression: Compression,
    /// How long shutdown keeps trying to forward what is held.
    #[arg(long, env = "PLUMB_AGENT_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_timeout: Duration,
}

fn main() -> anyhow::Result<()> {
    let config: Config = match plumb_config::parse(std::env::args_os()) {
        Ok(config) => config,
        Err(plumb_config::ConfigFileError::Args(e)) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLUMB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Host metrics go straight to the collector under service.name "plumb-agent".
    let _agent = if config.host_metrics_interval.is_zero() {
        None
    } else {
        let settings = plumb_agent::AgentConfig::new("plumb-agent")
            .with_endpoint(config.collector_url.clone())
            .with_metrics_interval(config.host_metrics_interval)
            .without_tracing_subscriber();
        Some(plumb_agent::init(settings).context("cannot set up host metrics")?)
    };
    let telemetry = Arc::new(SidecarTelemetry::new());
    let forwarder = Arc::new(Forwarder::new(
        config.max_backlog_bytes,
        host_name(),
        Arc::clone(&telemetry),
    ));

    let stop_senders = CancellationToken::new();
    let settings = SendSettings {
        batch_max_bytes: config.batch_max_bytes,
        flush_interval: config.flush_interval,
        shutdown_timeout: config.shutdown_timeout,
    };
    let compression = match config.compression {
        Compression::Gzip => Some(CompressionEncoding::Gzip),
        Compression::Zstd => Some(CompressionEncoding::Zstd),
        Compression::None => None,
    };
    let mut senders = Vec::new();
    for (signal, path) in [
        (Signal::Traces, TRACE_EXPORT_PATH),
        (Signal::Metrics, METRICS_EXPORT_PATH),
    ] {
        let tls_files = ClientTlsFiles {
            ca: config.collector_ca_cert.clone(),
            cert: config.collector_client_cert.clone(),
            key: config.collector_client_key.clone(),
        };
        let tls = if tls_files.is_set() {
            Some(
                tls_files
                    .tonic()
                    .context("invalid collector TLS settings")?,
            )
        } else {
            None
        };
        let mut client =
            RawGrpcClient::connect_lazy(config.collector_url.clone(), path, compression, tls)
                .context("invalid --collector-url")?;
        if !config.collector_token.expose().is_empty() {
            client = client
                .with_token(config.collector_token.expose())
                .context("invalid --collector-token")?;
        }
        let (forwarder, telemetry, senders_stopped) = (
            Arc::clone(&forwarder),
            Arc::clone(&telemetry),
            stop_senders.clone(),
        );
        senders.push(tokio::spawn(async move {
            let backlog = if signal == Signal::Traces {
                &forwarder.traces
            } else {
                &forwarder.metrics
            };
            run_sender(
                backlog,
                client,
                signal,
                settings,
                senders_stopped,
                telemetry,
            )
            .await;
        }));
    }

    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))
    };
    let (grpc, http, admin) = (
        bind(config.grpc_addr).await?,
        bind(config.http_addr).await?,
        bind(config.admin_addr).await?,
    );
    let addrs = [grpc.local_addr()?, http.local_addr()?, admin.local_addr()?];
    let stop_listeners = CancellationToken::new();
    let [grpc_server, http_server] = otlp_servers(
        Arc::clone(&forwarder),
        grpc,
        http,
        &ListenerOptions {
            max_request_bytes: config.max_request_bytes,
            tokens: Arc::new(
                Tokens::parse(config.ingest_tokens.expose())
                    .map_err(|e| anyhow::anyhow!("invalid --ingest-tokens: {e}"))?,
            ),
            tls: None,
        },
        stop_listeners.clone(),
    )?;
    let admin_router = {
        let (forwarder, telemetry) = (Arc::clone(&forwarder), Arc::clone(&telemetry));
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/metrics",
                get(move || {
                    let text = telemetry.render([
                        (Signal::Traces, forwarder.traces.bytes()),
                        (Signal::Metrics, forwarder.metrics.bytes()),
                    ]);
                    async move { text }
                }),
            )
    };
    let admin_server = axum::serve(admin, admin_router)
        .with_graceful_shutdown(stop_listeners.clone().cancelled_owned());
    let servers = [
        tokio::spawn(grpc_server.1),
        tokio::spawn(http_server.1),
        tokio::spawn(async move { admin_server.await.map_err(|e| e.to_string()) }),
    ];
    tracing::info!(grpc = %addrs[0], http = %addrs[1], admin = %addrs[2], collector = %config.collector_url, "plumb-agent ready");

    shutdown_signal().await;
    tracing::info!("shutting down: closing listeners, then forwarding what is held");
    stop_listeners.cancel();
    for server in servers {
        let _ = server.await;
    }
    stop_senders.cancel();
    for sender in senders {
        let _ = sender.await;
    }
    Ok(())
}

fn host_name() -> Option<String> {
    sysinfo::System::host_name().ok().filter(|h| !h.is_empty())
}
