//! Wiring: starts storage, the pipeline, the writers and the three listeners, and shuts them
//! down in stages.
//!
//! Start-up: find or start ClickHouse, wait for it, apply migrations, open the spool and the
//! journal, write what a previous run left in the journal, start the writers and the retention
//! task, then open the listeners (so a ready listener means a ready collector).
//! Shutdown: stop accepting (listeners close, in-flight requests finish), analyse the traces still
//! in the trace window, then the writers drain their queues and the last aggregates, each within `--shutdown-timeout`, then the
//! journal keeps only what is not yet safe, then the local ClickHouse (if any) is stopped.

use crate::aggregate::Aggregator;
use crate::aggregate::breakdown::BreakdownAggregator;
use crate::config::CollectorConfig;
use crate::journal::{Journal, replay::replay, run_syncer};
use crate::normalise::SpanLimits;
use crate::pipeline::{Pipeline, PipelineOutputs, PipelineSettings};
use crate::query;
use crate::store::local_server::{LocalClickHouse, LocalServerError, ServerBinary};
use crate::store::spool::{Spool, SpoolError};
use crate::store::writer::{Destination, WriterSettings, run_batch_writer, run_flusher};
use crate::store::{Store, StoreConfig, StoreError, retention, schema};
use crate::telemetry::Telemetry;
use crate::trace::assemble::{TraceAssembler, TraceSettings, run_sweeper};
use plumb_otlp::serve::{ListenerOptions, otlp_servers, serve_router};
use plumb_otlp::tls::{TlsError, server_config};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long to wait for ClickHouse at start-up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest time span and metric rows wait before being written.
const ROW_FLUSH_MAX: Duration = Duration::from_secs(1);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Why the collector could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The local ClickHouse could not be started.
    #[error(transparent)]
    LocalServer(#[from] LocalServerError),
    /// ClickHouse could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be opened or replayed.
    #[error("journal {dir}: {source}")]
    Journal {
        /// Its folder.
        dir: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The spool could not be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A server failed while running.
    #[error("{0} server failed: {1}")]
    Serve(&'static str, String),
}

/// Runs the collector until `shutdown` completes, then shuts down in stages.
pub async fn run(
    config: CollectorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let (store, mut local) = connect(&config).await?;
    let applied = schema::migrate(&store).await?;
    tracing::info!(database = store.database(), ?applied, "schema up to date");

    let telemetry = Arc::new(Telemetry::new());
    let aggregator = Arc::new(Aggregator::new());
    let breakdown = Arc::new(BreakdownAggregator::new());
    let traces = (!config.trace_window.is_zero()).then(|| {
        Arc::new(TraceAssembler::new(
            TraceSettings {
                window: config.trace_window,
                max_spans: config.trace_max_spans,
                max_components_per_service: config.max_components_per_service,
            },
            Arc::clone(&breakdown),
            Arc::clone(&telemetry),
        ))
    });
    let (stop_writers, writers_stop) = watch::channel(false);
    let (span_tx, span_rx) = mpsc::channel(config.queue_batches);
    let (metric_tx, metric_rx) = mpsc::channel(config.queue_batches);
    let writer_settings = WriterSettings {
        batch_rows: config.batch_rows,
        flush_interval: config.flush_interval,
        shutdown_timeout: config.shutdown_timeout,
        write_timeout: config.write_timeout,
    };
    // Span and metric rows are written at least every second: holding them longer only costs
    // memory (about 0.7 KB a span), while histograms gain from a longer interval.
    let row_writer_settings = WriterSettings {
        flush_interval: config.flush_interval.min(ROW_FLUSH_MAX),
        ..writer_settings
    };
    let spool_dir = config
        .spool_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("spool"));
    let spool = Arc::new(Spool::open(&spool_dir, config.spool_max_bytes)?);
    if spool.used_bytes() > 0 {
        tracing::info!(bytes = spool.used_bytes(), dir = %spool_dir.display(), "spooled batches found; they are written first");
    }
    telemetry.spool_bytes.set(spool.used_bytes() as i64);
    let to = Destination {
        store: store.clone(),
        spool,
        telemetry: Arc::clone(&telemetry),
    };
    let journal_dir = config
        .journal_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("journal"));
    let journal_error = |source| RunError::Journal {
        dir: journal_dir.clone(),
        source,
    };
    let (journal, leftovers) = if config.journal_sync.is_zero() {
        (None, Vec::new())
    } else {
        let (journal, leftovers) =
            Journal::open(&journal_dir, config.journal_max_bytes).map_err(journal_error)?;
        (Some(Arc::new(journal)), leftovers)
    };
    let pipeline = Arc::new(Pipeline::new(
        PipelineSettings {
            limits: SpanLimits {
                max_age: config.max_span_age,
                max_future: config.max_span_future,
                max_attributes: config.max_attributes_per_span,
                max_value_bytes: config.max_attribute_value_bytes,
                max_spans: config.max_spans_per_request,
            },
            max_operations_per_service: config.max_operations_per_service,
            enqueue_timeout: config.enqueue_timeout,
        },
        PipelineOutputs {
            aggregator: Arc::clone(&aggregator),
            traces: traces.clone(),
            spans: span_tx,
            metrics: metric_tx,
            journal: journal.clone(),
        },
        Arc::clone(&telemetry),
    ));
    if let Some(journal) = &journal
        && !leftovers.is_empty()
    {
        let summary = replay(journal, leftovers, &pipeline, &to, &row_writer_settings)
            .await
            .map_err(journal_error)?;
        tracing::info!(
            generations = summary.generations,
            requests = summary.requests,
            spans = summary.spans,
            found_stored = summary.found_stored,
            "journal replayed: what the last run had not written is written"
        );
    }

    let writers: Vec<JoinHandle<()>> = vec![
        tokio::spawn(run_batch_writer(
            to.clone(),
            "spans",
            span_rx,
            journal.clone(),
            row_writer_settings,
            writers_stop.clone(),
        )),
        tokio::spawn(run_batch_writer(
            to.clone(),
            "metrics",
            metric_rx,
            journal.clone(),
            row_writer_settings,
            writers_stop.clone(),
        )),
        tokio::spawn(run_flusher(
            to.clone(),
            aggregator,
            journal.clone(),
            writer_settings,
            writers_stop.clone(),
        )),
        tokio::spawn(run_flusher(
            to,
            breakdown,
            None,
            writer_settings,
            writers_stop,
        )),
    ];
    let (stop_syncer, syncer_stop) = watch::channel(false);
    let syncer = journal.map(|journal| {
        tokio::spawn(run_syncer(
            journal,
            config.journal_sync,
            Arc::clone(&telemetry),
            syncer_stop,
        ))
    });
    let sweeper = traces.clone().map(|t| tokio::spawn(run_sweeper(t)));
    let retention_task = tokio::spawn(run_retention(store.clone(), config.retention_days));

    let (stop_servers, servers_stop) = watch::channel(false);
    let servers = start_servers(&config, &pipeline, &store, &telemetry, &servers_stop).await?;
    drop(pipeline);
    tracing::info!(
        grpc = %servers.addrs[0], http = %servers.addrs[1], query = %servers.addrs[2],
        "plumb-collector ready"
    );

    let mut failure = None;
    tokio::select! {
        () = shutdown => tracing::info!("shutdown requested: closing listeners"),
        result = wait_first(servers.clone_handles()) => failure = Some(result),
    }
    let _ = stop_servers.send(true);
    servers.join(config.shutdown_timeout).await;
    if let Some(sweeper) = sweeper {
        sweeper.abort();
    }
    if let Some(traces) = &traces {
        // Traces still in their window are analysed as they are, so their requests count.
        traces.drain();
    }
    tracing::info!("listeners closed: flushing to ClickHouse");
    let _ = stop_writers.send(true);
    for writer in writers {
        let _ = writer.await;
    }
    // The journal keeps only what the writers could not write or spool.
    let _ = stop_syncer.send(true);
    if let Some(syncer) = syncer {
        let _ = syncer.await;
    }
    retention_task.abort();
    if let Some(local) = local.as_mut() {
        local.stop(Duration::from_secs(30));
    }
    tracing::info!("plumb-collector stopped");
    match failure {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Connects to the configured ClickHouse, or starts a local one.
async fn connect(config: &CollectorConfig) -> Result<(Store, Option<LocalClickHouse>), RunError> {
    let mut store_config = StoreConfig {
        url: config.clickhouse_url.clone().unwrap_or_default(),
        user: config.clickhouse_user.clone(),
        password: config.clickhouse_password.clone(),
        database: config.database.clone(),
    };
    if config.clickhouse_url.is_some() {
        let store = Store::new(&store_config)?;
        store.wait_ready(STARTUP_TIMEOUT).await?;
        return Ok((store, None));
    }
    let binary = ServerBinary::find(config.clickhouse_binary.as_deref())?;
    let local = LocalClickHouse::start_ready(
        &binary,
        &config.data_dir.join("clickhouse"),
        STARTUP_TIMEOUT,
    )
    .await?;
    tracing::info!(url = local.url(), "started local ClickHouse");
    store_config.url = local.url().to_owned();
    let store = Store::new(&store_config)?;
    Ok((store, Some(local)))
}

async fn run_retention(store: Store, days: u32) {
    loop {
        match retention::drop_expired_partitions(&store, days).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(?dropped, days, "dropped expired partitions")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention check failed; will try again"),
        }
        tokio::time::sleep(RETENTION_EVERY).await;
    }
}

/// The running listeners.
struct Servers {
    /// Bound addresses: OTLP/gRPC, OTLP/HTTP, query (port 0 in the config becomes a real port).
    addrs: [SocketAddr; 3],
    handles: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
}

impl Servers {
    fn clone_handles(&self) -> Vec<(&'static str, tokio::task::AbortHandle)> {
        self.handles
            .iter()
            .map(|(n, h)| (*n, h.abort_handle()))
            .collect()
    }

    async fn join(self, timeout: Duration) {
        for (name, handle) in self.handles {
            match tokio::time::timeout(timeout, handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::error!(server = name, error = %e, "server stopped with an error")
                }
                Ok(Err(e)) => tracing::error!(server = name, error = %e, "server task failed"),
                Err(_) => tracing::warn!(server = name, "server did not stop in time"),
            }
        }
    }
}

/// Resolves when any server task ends on its own (which is a failure).
async fn wait_first(
    handles: Vec<(&'static str, tokio::task::AbortHandle)>,
) -> Result<(), RunError> {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some((name, _)) = handles.iter().find(|(_, h)| h.is_finished()) {
            return Err(RunError::Serve(name, "stopped unexpectedly".into()));
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

async fn start_servers(
    config: &CollectorConfig,
    pipeline: &Arc<Pipeline>,
    store: &Store,
    telemetry: &Arc<Telemetry>,
    stop: &watch::Receiver<bool>,
) -> Result<Servers, RunError> {
    // Checked when the configuration was loaded.
    let apdex = config.apdex().unwrap_or_default();
    let (ingest_tokens, query_tokens) = config.tokens().unwrap_or_default();
    let grpc_listener = bind(config.grpc_addr).await?;
    let http_listener = bind(config.http_addr).await?;
    let query_listener = bind(config.query_addr).await?;
    let local = |l: &TcpListener, configured: SocketAddr| l.local_addr().unwrap_or(configured);
    let addrs = [
        local(&grpc_listener, config.grpc_addr),
        local(&http_listener, config.http_addr),
        local(&query_listener, config.query_addr),
    ];
    let tls = match config.tls_files() {
        Some(files) => Some(server_config(&files)?),
        None => None,
    };
    let options = ListenerOptions {
        max_request_bytes: config.max_request_bytes,
        tokens: Arc::new(ingest_tokens),
        tls: tls.clone(),
    };
    let serve_error = |addr| move |source| RunError::Bind { addr, source };
    let [grpc, http] = otlp_servers(
        Arc::clone(pipeline),
        grpc_listener,
        http_listener,
        &options,
        stop.clone(),
    )
    .map_err(serve_error(addrs[0]))?;
    let query = serve_router(
        query_listener,
        query::api::router(
            query::api::QueryApi::new(store.clone(), apdex),
            Arc::clone(telemetry),
            Arc::new(query_tokens),
        ),
        tls,
        stop.clone(),
    )
    .map_err(serve_error(addrs[2]))?;
    Ok(Servers {
        addrs,
        handles: vec![
            (grpc.0, tokio::spawn(grpc.1)),
            (http.0, tokio::spawn(http.1)),
            ("query", tokio::spawn(query)),
        ],
    })
}
