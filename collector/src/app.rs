//! Wiring: starts storage, recovers what the last run left, starts the stages, and stops them in
//! order.
//!
//! Start-up: find or start ClickHouse, wait for it, apply migrations, open the spool and the
//! journal, write what a previous run left in the journal (`recovery`), start the writers, the
//! trace window's sweeper and the background jobs, then open the listeners (so a ready listener
//! means a ready collector).
//! Shutdown, one [`Stage`] after another, each within `--shutdown-timeout`: the receivers stop
//! accepting and finish the requests in flight; the pipeline's trace window analyses what it
//! holds; the writers drain their queues and flush the last aggregates; the background jobs end
//! (the journal syncs once more and keeps only what is not yet safe); then the local ClickHouse,
//! if any, is stopped.

use crate::ack::{Cut, Queued};
use crate::aggregate::Aggregator;
use crate::aggregate::component_time::BreakdownAggregator;
use crate::alerting::{self, AlertsView};
use crate::config::{JournalSettings, Settings, StoreSettings};
use crate::journal::{Journal, JournalTelemetry, Leftover, run_syncer};
use crate::pipeline::{IngestTelemetry, Pipeline, PipelineOutputs};
use crate::query;
use crate::recovery::recover;
use crate::shutdown::Stage;
use crate::store::local_server::{LocalClickHouse, LocalServerError, ServerBinary};
use crate::store::metric_rows::MetricBatch;
use crate::store::rows::EncodedRows;
use crate::store::spool::{Spool, SpoolError};
use crate::store::write::{Destination, WriterTelemetry, run_batch_writer, run_flusher};
use crate::store::{Store, StoreConfig, StoreError, retention, schema};
use crate::telemetry::Telemetry;
use crate::trace_analysis::window::{TraceAssembler, WindowTelemetry, run_sweeper};
use plumb_otlp::serve::{ListenerOptions, otlp_servers, serve_router};
use plumb_otlp::tls::{TlsError, server_config};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long to wait for ClickHouse at start-up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
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
    #[error("{0}")]
    Spool(String),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A server failed while running.
    #[error("{0} server failed: {1}")]
    Serve(&'static str, String),
}

impl From<SpoolError> for RunError {
    fn from(e: SpoolError) -> Self {
        Self::Spool(e.to_string())
    }
}

/// Every stage's metrics, registered in one registry.
struct StageTelemetry {
    registry: Arc<Telemetry>,
    ingest: Arc<IngestTelemetry>,
    writers: Arc<WriterTelemetry>,
    journal: Arc<JournalTelemetry>,
    window: Arc<WindowTelemetry>,
    alerting: Arc<alerting::reload::AlertingTelemetry>,
}

impl StageTelemetry {
    fn new() -> Self {
        let mut registry = Telemetry::new();
        let ingest = IngestTelemetry::registered(&mut registry);
        let writers = WriterTelemetry::registered(&mut registry);
        let journal = JournalTelemetry::registered(&mut registry);
        let window = WindowTelemetry::registered(&mut registry);
        let alerting = alerting::reload::AlertingTelemetry::registered(&mut registry);
        Self {
            registry: Arc::new(registry),
            ingest,
            writers,
            journal,
            window,
            alerting,
        }
    }
}

/// Runs the collector until `shutdown` completes, then shuts down in stages.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let (store, mut local) = connect(&settings.store).await?;
    let applied = schema::migrate(&store).await?;
    tracing::info!(database = store.database(), ?applied, "schema up to date");

    let telemetry = StageTelemetry::new();
    let aggregator = Arc::new(Aggregator::new());
    let breakdown = Arc::new(BreakdownAggregator::new());
    let traces = settings.traces.map(|window| {
        Arc::new(TraceAssembler::new(
            window,
            Arc::clone(&breakdown),
            Arc::clone(&telemetry.window),
        ))
    });
    let spool = Arc::new(Spool::open(&settings.spool_dir, settings.spool_max_bytes)?);
    if spool.used_bytes() > 0 {
        tracing::info!(bytes = spool.used_bytes(), dir = %settings.spool_dir.display(), "spooled batches found; they are written first");
    }
    telemetry.writers.spool_bytes.set(spool.used_bytes() as i64);
    let to = Destination {
        store: store.clone(),
        spool,
        telemetry: Arc::clone(&telemetry.writers),
        late: Arc::default(),
    };
    let (journal, leftovers) = match &settings.journal {
        Some(journal) => {
            let (opened, leftovers) = open_journal(journal)?;
            (Some(opened), leftovers)
        }
        None => (None, Vec::new()),
    };
    let (span_tx, span_rx) = mpsc::channel::<Queued<EncodedRows>>(settings.queue_batches);
    let (metric_tx, metric_rx) = mpsc::channel::<Queued<MetricBatch>>(settings.queue_batches);
    let pipeline = Arc::new(Pipeline::new(
        settings.pipeline,
        PipelineOutputs {
            aggregator: Arc::clone(&aggregator),
            traces: traces.clone(),
            spans: span_tx,
            metrics: metric_tx,
            journal: journal.clone(),
        },
        Arc::clone(&telemetry.ingest),
    ));
    if let (Some(journal), Some(journal_settings)) = (&journal, &settings.journal)
        && !leftovers.is_empty()
    {
        let summary = recover(
            journal,
            leftovers,
            &pipeline,
            &to,
            &settings.row_writers,
            &telemetry.journal,
        )
        .await
        .map_err(|source| RunError::Journal {
            dir: journal_settings.dir.clone(),
            source,
        })?;
        tracing::info!(
            generations = summary.generations,
            requests = summary.requests,
            spans = summary.spans,
            points = summary.points,
            found_stored = summary.found_stored,
            "journal replayed: what the last run had not written is written"
        );
    }

    let mut writers = Stage::new("writers");
    let cuts = journal.clone().map(|j| j as Arc<dyn Cut>);
    writers.spawn_job(
        "spans",
        run_batch_writer(to.clone(), span_rx, settings.row_writers, writers.token()),
    );
    writers.spawn_job(
        "metrics",
        run_batch_writer(to.clone(), metric_rx, settings.row_writers, writers.token()),
    );
    writers.spawn_job(
        "latency",
        run_flusher(
            to.clone(),
            aggregator,
            cuts,
            settings.flushers,
            writers.token(),
        ),
    );
    writers.spawn_job(
        "breakdown",
        run_flusher(to, breakdown, None, settings.flushers, writers.token()),
    );
    let mut pipeline_stage = Stage::new("pipeline");
    if let Some(traces) = traces {
        pipeline_stage.spawn_job("trace window", run_sweeper(traces, pipeline_stage.token()));
    }
    let mut background = Stage::new("background");
    if let (Some(journal), Some(journal_settings)) = (journal, &settings.journal) {
        background.spawn_job(
            "journal sync",
            run_syncer(
                journal,
                journal_settings.sync_every,
                Arc::clone(&telemetry.journal),
                background.token(),
            ),
        );
    }
    background.spawn_job(
        "retention",
        run_retention(
            store.clone(),
            settings.retention_days,
            settings.rollup_retention_days,
            background.token(),
        ),
    );

    let mut alerting_stage = Stage::new("alerting");
    let alerts_view = settings.alerting.as_ref().map(|a| {
        let view = Arc::new(AlertsView::default());
        let ctx = alerting::Context {
            store: store.clone(),
            apdex: settings.apdex.clone(),
            location: a.location.clone(),
            state_dir: a.state_dir.clone(),
            view: Arc::clone(&view),
        };
        alerting_stage.spawn(
            "alerting",
            alerting::reload::supervise(
                a.path.clone(),
                Arc::clone(&a.config),
                ctx,
                Arc::clone(&telemetry.alerting),
                alerting_stage.token(),
            ),
        );
        tracing::info!(
            probes = a.config.probes.len(),
            rules = a.config.rules.len(),
            receivers = a.config.receivers.len(),
            "alerting on"
        );
        view
    });

    let mut receivers = Stage::new("receivers");
    let addrs = start_servers(
        &settings,
        &pipeline,
        &store,
        &telemetry.registry,
        alerts_view,
        &mut receivers,
    )
    .await?;
    drop(pipeline);
    tracing::info!(
        grpc = %addrs[0], http = %addrs[1], query = %addrs[2],
        "plumb-collector ready"
    );

    let mut failure = None;
    tokio::select! {
        () = shutdown => tracing::info!("shutdown requested: closing listeners"),
        (name, ended) = receivers.first_exit() => {
            let why = ended.err().unwrap_or_else(|| "stopped unexpectedly".into());
            tracing::error!(server = name, error = %why, "a server stopped: shutting down");
            failure = Some(RunError::Serve(name, why));
        }
    }
    let deadline = settings.shutdown_timeout;
    receivers.stop(deadline).await;
    // Traces still in their window are analysed as they are, so their requests count.
    pipeline_stage.stop(deadline).await;
    tracing::info!("listeners closed: flushing to ClickHouse");
    writers.stop(deadline).await;
    alerting_stage.stop(deadline).await;
    // The journal keeps only what the writers could not write or spool.
    background.stop(deadline).await;
    if let Some(local) = local.as_mut() {
        local.stop(Duration::from_secs(30));
    }
    tracing::info!("plumb-collector stopped");
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Opens the journal, with what the last run left in it.
fn open_journal(settings: &JournalSettings) -> Result<(Arc<Journal>, Vec<Leftover>), RunError> {
    let (journal, leftovers) =
        Journal::open(&settings.dir, settings.max_bytes).map_err(|source| RunError::Journal {
            dir: settings.dir.clone(),
            source,
        })?;
    Ok((Arc::new(journal), leftovers))
}

/// Connects to the configured ClickHouse, or starts a local one.
async fn connect(settings: &StoreSettings) -> Result<(Store, Option<LocalClickHouse>), RunError> {
    let store_config = |url: &str| StoreConfig {
        url: url.to_owned(),
        user: settings.user.clone(),
        password: settings.password.expose().to_owned(),
        database: settings.database.clone(),
    };
    if let Some(url) = &settings.url {
        let store = Store::new(&store_config(url))?;
        store.wait_ready(STARTUP_TIMEOUT).await?;
        return Ok((store, None));
    }
    let binary = ServerBinary::find(settings.binary.as_deref())?;
    let local = LocalClickHouse::start_ready(
        &binary,
        &settings.local_dir,
        settings.compression,
        STARTUP_TIMEOUT,
    )
    .await?;
    tracing::info!(url = local.url(), "started local ClickHouse");
    let store = Store::new(&store_config(local.url()))?;
    Ok((store, Some(local)))
}

/// Drops expired partitions (raw tables past `raw_days`, rollups past `rollup_days`) now and
/// every [`RETENTION_EVERY`] until `stop` is cancelled.
async fn run_retention(store: Store, raw_days: u32, rollup_days: u32, stop: CancellationToken) {
    loop {
        for (tables, days) in [
            (retention::RAW_TABLES, raw_days),
            (retention::ROLLUP_TABLES, rollup_days),
        ] {
            match retention::drop_expired_partitions(&store, tables, days).await {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(?dropped, days, "dropped expired partitions")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention check failed; will try again"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETENTION_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Opens the three listeners and runs their servers in `stage`; returns the bound addresses
/// (port 0 in the settings becomes a real port): OTLP/gRPC, OTLP/HTTP, query.
async fn start_servers(
    settings: &Settings,
    pipeline: &Arc<Pipeline>,
    store: &Store,
    telemetry: &Arc<Telemetry>,
    alerts: Option<Arc<AlertsView>>,
    stage: &mut Stage,
) -> Result<[SocketAddr; 3], RunError> {
    let listeners = &settings.listeners;
    let grpc_listener = bind(listeners.grpc_addr).await?;
    let http_listener = bind(listeners.http_addr).await?;
    let query_listener = bind(listeners.query_addr).await?;
    let local = |l: &TcpListener, configured: SocketAddr| l.local_addr().unwrap_or(configured);
    let addrs = [
        local(&grpc_listener, listeners.grpc_addr),
        local(&http_listener, listeners.http_addr),
        local(&query_listener, listeners.query_addr),
    ];
    let tls = match &listeners.tls {
        Some(files) => Some(server_config(files)?),
        None => None,
    };
    let options = ListenerOptions {
        max_request_bytes: listeners.max_request_bytes,
        tokens: Arc::new(listeners.ingest_tokens.clone()),
        tls: tls.clone(),
    };
    let serve_error = |addr| move |source| RunError::Bind { addr, source };
    let [grpc, http] = otlp_servers(
        Arc::clone(pipeline),
        grpc_listener,
        http_listener,
        &options,
        stage.token(),
    )
    .map_err(serve_error(addrs[0]))?;
    let query = serve_router(
        query_listener,
        query::api::router(
            query::api::QueryApi::new(store.clone(), settings.apdex.clone(), alerts),
            Arc::clone(telemetry),
            Arc::new(listeners.query_tokens.clone()),
            crate::web::Exposure {
                secure: tls.is_some(),
                public_status_page: listeners.public_status_page,
            },
        ),
        tls,
        stage.token(),
    )
    .map_err(serve_error(addrs[2]))?;
    stage.spawn(grpc.0, grpc.1);
    stage.spawn(http.0, http.1);
    stage.spawn("query", query);
    Ok(addrs)
}
