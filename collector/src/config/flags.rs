//! The collector's options as the user gives them: flags, `PLUMB_*` environment variables and
//! a TOML file (loaded by `plumb-config`: flags over environment over file over the defaults
//! `--help` shows). The defaults are written here and nowhere else; the settings module checks
//! these values once and turns them into each stage's settings.

use crate::store::local_server::PartCompression;
use clap::Parser;
use plumb_config::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the collector writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every option of `plumb-collector`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "plumb-collector",
    version,
    about = "Plumb collector: OTLP in, latency histograms and spans in ClickHouse, slow endpoints out"
)]
pub(crate) struct CollectorConfig {
    /// TOML config file; its keys are the long option names below.
    #[arg(long, env = "PLUMB_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// OTLP/gRPC listen address.
    #[arg(long, env = "PLUMB_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    pub(crate) grpc_addr: SocketAddr,

    /// OTLP/HTTP listen address (`/v1/traces`, `/v1/metrics`).
    #[arg(long, env = "PLUMB_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    pub(crate) http_addr: SocketAddr,

    /// Query API listen address: gRPC `plumb.v1.QueryService`, HTTP `/api/v1/*`, `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "PLUMB_QUERY_ADDR", default_value = "127.0.0.1:7318")]
    pub(crate) query_addr: SocketAddr,

    /// ClickHouse HTTP URL. When unset, Plumb starts and supervises a local ClickHouse under --data-dir.
    #[arg(long, env = "PLUMB_CLICKHOUSE_URL", hide_env_values = true)]
    pub(crate) clickhouse_url: Option<String>,

    /// ClickHouse user.
    #[arg(long, env = "PLUMB_CLICKHOUSE_USER", default_value = "default")]
    pub(crate) clickhouse_user: String,

    /// ClickHouse password (prefer the environment variable; never logged).
    #[arg(
        long,
        env = "PLUMB_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub(crate) clickhouse_password: Secret,

    /// Bearer tokens accepted on the OTLP listeners, as name=token pairs (several per name allowed): `shop=...,shop=...,ops=...`. Empty: no authentication.
    #[arg(
        long,
        env = "PLUMB_INGEST_TOKENS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub(crate) ingest_tokens: Secret,

    /// Bearer tokens accepted on the query API (gRPC, /api, /metrics; /healthz and /readyz stay open), as name=token pairs.
    #[arg(
        long,
        env = "PLUMB_QUERY_TOKENS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub(crate) query_tokens: Secret,

    /// Serve a read-only status page at /status (probe names, up or down, 90 days of daily uptime) without a token, even when --query-tokens is set; nothing else becomes public.
    #[arg(long, env = "PLUMB_PUBLIC_STATUS_PAGE", default_value_t = false)]
    pub(crate) public_status_page: bool,

    /// TLS certificate chain (PEM) for all three listeners; with --tls-key, they speak only TLS.
    #[arg(long, env = "PLUMB_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "PLUMB_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,

    /// CA (PEM) that client certificates must chain to: mutual TLS, clients without one are refused.
    #[arg(long, env = "PLUMB_TLS_CLIENT_CA")]
    pub(crate) tls_client_ca: Option<PathBuf>,

    /// ClickHouse database for Plumb's tables.
    #[arg(long, env = "PLUMB_DATABASE", default_value = "plumb")]
    pub(crate) database: String,

    /// ClickHouse server binary for the local server (default: `clickhouse` or `clickhouse-server` on PATH).
    #[arg(long, env = "PLUMB_CLICKHOUSE_BINARY")]
    pub(crate) clickhouse_binary: Option<PathBuf>,

    /// How the local ClickHouse compresses its parts: lz4 (its default, the faster queries) or
    /// zstd (spans about a sixth smaller on disk; the `query` bench's queries 1.13x to 1.93x
    /// slower). Not used with --clickhouse-url.
    #[arg(long, env = "PLUMB_CLICKHOUSE_COMPRESSION", value_enum, default_value_t = PartCompression::Lz4)]
    pub(crate) clickhouse_compression: PartCompression,

    /// Folder for the collector's own data (the local ClickHouse lives in `clickhouse/` under it).
    #[arg(long, env = "PLUMB_DATA_DIR", default_value = "plumb-data")]
    pub(crate) data_dir: PathBuf,

    /// How often aggregated histograms are written to ClickHouse (span and metric rows: at least every second).
    #[arg(long, env = "PLUMB_FLUSH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) flush_interval: Duration,

    /// Days of data kept; older daily partitions are dropped (checked at start-up and hourly).
    #[arg(long, env = "PLUMB_RETENTION_DAYS", default_value_t = 30)]
    pub(crate) retention_days: u32,

    /// Days the hourly and daily rollups are kept (latency, host and process metrics, probes): what capacity reports and long uptime read.
    #[arg(long, env = "PLUMB_ROLLUP_RETENTION_DAYS", default_value_t = 400)]
    pub(crate) rollup_retention_days: u32,

    /// Operations tracked per service; spans of further operations are counted under `[overflow]`.
    #[arg(long, env = "PLUMB_MAX_OPERATIONS_PER_SERVICE", default_value_t = 2000)]
    pub(crate) max_operations_per_service: usize,

    /// How long spans are held by trace before the trace's breakdown is worked out; 0 turns the breakdown off.
    #[arg(long, env = "PLUMB_TRACE_WINDOW", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) trace_window: Duration,

    /// How long a trace whose first request held an endpoint span, but not every span under it, waits for more of its spans before its breakdown is worked out (at most --trace-window; the endpoint's own spans come with it or before it).
    #[arg(long, env = "PLUMB_TRACE_ENDPOINT_WAIT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) trace_endpoint_wait: Duration,

    /// Hold a new trace that came whole (an endpoint span and every span under it in one request) for --trace-endpoint-wait too, instead of analysing it as it comes; for an intermediate collector that sends batches in parallel, so that a trace split over two of them can arrive out of order.
    #[arg(long, env = "PLUMB_TRACE_HOLD_WHOLE", default_value_t = false)]
    pub(crate) trace_hold_whole: bool,

    /// Spans held in the trace window at most; past it the oldest traces are analysed early (75 to 100 bytes a span).
    #[arg(long, env = "PLUMB_TRACE_MAX_SPANS", default_value_t = 1_000_000)]
    pub(crate) trace_max_spans: usize,

    /// Breakdown components (statements, outbound routes, internal span names) tracked per service; the rest count as `[overflow]`.
    #[arg(long, env = "PLUMB_MAX_COMPONENTS_PER_SERVICE", default_value_t = 5000)]
    pub(crate) max_components_per_service: usize,

    /// Apdex threshold T for services without their own: requests within T are satisfied, within 4T tolerating.
    #[arg(long, env = "PLUMB_APDEX_THRESHOLD", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub(crate) apdex_threshold: Duration,

    /// Apdex thresholds per service, e.g. `checkout=200ms,search=1s`.
    #[arg(long, env = "PLUMB_APDEX_THRESHOLDS", default_value = "")]
    pub(crate) apdex_thresholds: String,

    /// Largest OTLP request accepted, in bytes (after decompression).
    #[arg(long, env = "PLUMB_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub(crate) max_request_bytes: usize,

    /// Spans and metric points older than this are rejected (reported through OTLP partial success); raise it to backfill history.
    #[arg(long, env = "PLUMB_MAX_SPAN_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub(crate) max_span_age: Duration,

    /// Attributes kept per span, per metric point and per resource; the rest are dropped (counted in plumb_attributes_dropped_total).
    #[arg(long, env = "PLUMB_MAX_ATTRIBUTES_PER_SPAN", default_value_t = 128)]
    pub(crate) max_attributes_per_span: usize,

    /// Longest attribute value kept, in bytes; longer values are cut (counted in plumb_attribute_values_truncated_total).
    #[arg(long, env = "PLUMB_MAX_ATTRIBUTE_VALUE_BYTES", default_value_t = 4096)]
    pub(crate) max_attribute_value_bytes: usize,

    /// Spans one request may hold; larger requests are refused whole (RESOURCE_EXHAUSTED / 413).
    #[arg(long, env = "PLUMB_MAX_SPANS_PER_REQUEST", default_value_t = 100_000)]
    pub(crate) max_spans_per_request: usize,

    /// Spans starting further than this in the future are rejected.
    #[arg(long, env = "PLUMB_MAX_SPAN_FUTURE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub(crate) max_span_future: Duration,

    /// Batches of spans (or metric points) queued for ClickHouse before receivers push back.
    #[arg(long, env = "PLUMB_QUEUE_BATCHES", default_value_t = 32)]
    pub(crate) queue_batches: usize,

    /// Largest number of rows in one ClickHouse insert.
    #[arg(long, env = "PLUMB_BATCH_ROWS", default_value_t = 50_000)]
    pub(crate) batch_rows: usize,

    /// How long a request may wait for queue room before it is refused with RESOURCE_EXHAUSTED / 429.
    #[arg(long, env = "PLUMB_ENQUEUE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub(crate) enqueue_timeout: Duration,

    /// Folder of the disk spool, where batches wait while ClickHouse cannot take them (default: spool/ under --data-dir).
    #[arg(long, env = "PLUMB_SPOOL_DIR")]
    pub(crate) spool_dir: Option<PathBuf>,

    /// Largest size of the spool in bytes; past it, writers keep batches in memory and receivers push back.
    #[arg(long, env = "PLUMB_SPOOL_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub(crate) spool_max_bytes: u64,

    /// Folder of the journal, where accepted requests are logged until they are safe in ClickHouse or the spool (default: journal/ under --data-dir).
    #[arg(long, env = "PLUMB_JOURNAL_DIR")]
    pub(crate) journal_dir: Option<PathBuf>,

    /// How often the journal is synced to disk: what was acknowledged before the last sync survives a crash. 0 turns the journal off.
    #[arg(long, env = "PLUMB_JOURNAL_SYNC", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) journal_sync: Duration,

    /// Largest size of the journal in bytes; past it (ClickHouse far behind), receivers push back.
    #[arg(long, env = "PLUMB_JOURNAL_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub(crate) journal_max_bytes: u64,

    /// Longest one ClickHouse write may take before it counts as failed (and its rows are spooled).
    #[arg(long, env = "PLUMB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) write_timeout: Duration,

    /// How long shutdown may take to flush everything before giving up.
    #[arg(long, env = "PLUMB_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) shutdown_timeout: Duration,

    /// Alerting configuration file: probes, rules, routes and receivers (see the README). Alerting is off without it.
    #[arg(long, env = "PLUMB_ALERTING_CONFIG")]
    pub(crate) alerting_config: Option<PathBuf>,

    /// Where this collector's probes run from, stored with every result.
    #[arg(long, env = "PLUMB_PROBE_LOCATION", default_value = "local")]
    pub(crate) probe_location: String,

    /// Log format. The level comes from PLUMB_LOG (default `info`).
    #[arg(long, env = "PLUMB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}
