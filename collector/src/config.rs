//! Collector configuration: flags, `PLUMB_*` environment variables and a TOML file (loaded by
//! `plumb-config`: flags over environment over file over the defaults `--help` shows), then
//! checked: a value out of range is an error that names the option.

use crate::query::top::ApdexThresholds;
use clap::Parser;
use plumb_config::{ConfigFileError, Secret};
use plumb_otlp::auth::Tokens;
use plumb_otlp::tls::ServerTlsFiles;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad flags, environment or config file (includes `--help` and `--version`).
    #[error(transparent)]
    Load(#[from] ConfigFileError),
    /// A value is out of range.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The option's name.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Every option of `plumb-collector`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "plumb-collector",
    version,
    about = "Plumb collector: OTLP in, latency histograms and spans in ClickHouse, slow endpoints out"
)]
pub struct CollectorConfig {
    /// TOML config file; its keys are the long option names below.
    #[arg(long, env = "PLUMB_CONFIG")]
    pub config: Option<PathBuf>,

    /// OTLP/gRPC listen address.
    #[arg(long, env = "PLUMB_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    pub grpc_addr: SocketAddr,

    /// OTLP/HTTP listen address (`/v1/traces`, `/v1/metrics`).
    #[arg(long, env = "PLUMB_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    pub http_addr: SocketAddr,

    /// Query API listen address: gRPC `plumb.v1.QueryService`, HTTP `/api/v1/*`, `/metrics`, `/healthz`, `/readyz`.
    #[arg(long, env = "PLUMB_QUERY_ADDR", default_value = "127.0.0.1:7318")]
    pub query_addr: SocketAddr,

    /// ClickHouse HTTP URL. When unset, Plumb starts and supervises a local ClickHouse under --data-dir.
    #[arg(long, env = "PLUMB_CLICKHOUSE_URL", hide_env_values = true)]
    pub clickhouse_url: Option<String>,

    /// ClickHouse user.
    #[arg(long, env = "PLUMB_CLICKHOUSE_USER", default_value = "default")]
    pub clickhouse_user: String,

    /// ClickHouse password (prefer the environment variable; never logged).
    #[arg(
        long,
        env = "PLUMB_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub clickhouse_password: String,

    /// Bearer tokens accepted on the OTLP listeners, as name=token pairs (several per name allowed): `shop=...,shop=...,ops=...`. Empty: no authentication.
    #[arg(
        long,
        env = "PLUMB_INGEST_TOKENS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub ingest_tokens: Secret,

    /// Bearer tokens accepted on the query API (gRPC, /api, /metrics; /healthz and /readyz stay open), as name=token pairs.
    #[arg(
        long,
        env = "PLUMB_QUERY_TOKENS",
        default_value = "",
        hide_default_value = true,
        hide_env_values = true
    )]
    pub query_tokens: Secret,

    /// TLS certificate chain (PEM) for all three listeners; with --tls-key, they speak only TLS.
    #[arg(long, env = "PLUMB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM).
    #[arg(long, env = "PLUMB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA (PEM) that client certificates must chain to: mutual TLS, clients without one are refused.
    #[arg(long, env = "PLUMB_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// ClickHouse database for Plumb's tables.
    #[arg(long, env = "PLUMB_DATABASE", default_value = "plumb")]
    pub database: String,

    /// ClickHouse server binary for the local server (default: `clickhouse` or `clickhouse-server` on PATH).
    #[arg(long, env = "PLUMB_CLICKHOUSE_BINARY")]
    pub clickhouse_binary: Option<PathBuf>,

    /// Folder for the collector's own data (the local ClickHouse lives in `clickhouse/` under it).
    #[arg(long, env = "PLUMB_DATA_DIR", default_value = "plumb-data")]
    pub data_dir: PathBuf,

    /// How often aggregated histograms are written to ClickHouse (span and metric rows: at least every second).
    #[arg(long, env = "PLUMB_FLUSH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,

    /// Days of data kept; older daily partitions are dropped (checked at start-up and hourly).
    #[arg(long, env = "PLUMB_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: u32,

    /// Operations tracked per service; spans of further operations are counted under `[overflow]`.
    #[arg(long, env = "PLUMB_MAX_OPERATIONS_PER_SERVICE", default_value_t = 2000)]
    pub max_operations_per_service: usize,

    /// How long spans are held by trace before the trace's breakdown is worked out; 0 turns the breakdown off.
    #[arg(long, env = "PLUMB_TRACE_WINDOW", default_value = "10s", value_parser = humantime::parse_duration)]
    pub trace_window: Duration,

    /// Spans held in the trace window at most; past it the oldest traces are analysed early (about 100 bytes a span).
    #[arg(long, env = "PLUMB_TRACE_MAX_SPANS", default_value_t = 1_000_000)]
    pub trace_max_spans: usize,

    /// Breakdown components (statements, outbound routes, internal span names) tracked per service; the rest count as `[overflow]`.
    #[arg(long, env = "PLUMB_MAX_COMPONENTS_PER_SERVICE", default_value_t = 5000)]
    pub max_components_per_service: usize,

    /// Apdex threshold T for services without their own: requests within T are satisfied, within 4T tolerating.
    #[arg(long, env = "PLUMB_APDEX_THRESHOLD", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub apdex_threshold: Duration,

    /// Apdex thresholds per service, e.g. `checkout=200ms,search=1s`.
    #[arg(long, env = "PLUMB_APDEX_THRESHOLDS", default_value = "")]
    pub apdex_thresholds: String,

    /// Largest OTLP request accepted, in bytes (after decompression).
    #[arg(long, env = "PLUMB_MAX_REQUEST_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Spans older than this are rejected (reported through OTLP partial success).
    #[arg(long, env = "PLUMB_MAX_SPAN_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub max_span_age: Duration,

    /// Attributes kept per span and per resource; the rest are dropped (counted in plumb_attributes_dropped_total).
    #[arg(long, env = "PLUMB_MAX_ATTRIBUTES_PER_SPAN", default_value_t = 128)]
    pub max_attributes_per_span: usize,

    /// Longest attribute value kept, in bytes; longer values are cut (counted in plumb_attribute_values_truncated_total).
    #[arg(long, env = "PLUMB_MAX_ATTRIBUTE_VALUE_BYTES", default_value_t = 4096)]
    pub max_attribute_value_bytes: usize,

    /// Spans one request may hold; larger requests are refused whole (RESOURCE_EXHAUSTED / 413).
    #[arg(long, env = "PLUMB_MAX_SPANS_PER_REQUEST", default_value_t = 100_000)]
    pub max_spans_per_request: usize,

    /// Spans starting further than this in the future are rejected.
    #[arg(long, env = "PLUMB_MAX_SPAN_FUTURE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub max_span_future: Duration,

    /// Batches of spans (or metric points) queued for ClickHouse before receivers push back.
    #[arg(long, env = "PLUMB_QUEUE_BATCHES", default_value_t = 32)]
    pub queue_batches: usize,

    /// Largest number of rows in one ClickHouse insert.
    #[arg(long, env = "PLUMB_BATCH_ROWS", default_value_t = 50_000)]
    pub batch_rows: usize,

    /// How long a request may wait for queue room before it is refused with RESOURCE_EXHAUSTED / 429.
    #[arg(long, env = "PLUMB_ENQUEUE_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub enqueue_timeout: Duration,

    /// Folder of the disk spool, where batches wait while ClickHouse cannot take them (default: spool/ under --data-dir).
    #[arg(long, env = "PLUMB_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Largest size of the spool in bytes; past it, writers keep batches in memory and receivers push back.
    #[arg(long, env = "PLUMB_SPOOL_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub spool_max_bytes: u64,

    /// Folder of the journal, where accepted requests are logged until they are safe in ClickHouse or the spool (default: journal/ under --data-dir).
    #[arg(long, env = "PLUMB_JOURNAL_DIR")]
    pub journal_dir: Option<PathBuf>,

    /// How often the journal is synced to disk: what was acknowledged before the last sync survives a crash. 0 turns the journal off.
    #[arg(long, env = "PLUMB_JOURNAL_SYNC", default_value = "1s", value_parser = humantime::parse_duration)]
    pub journal_sync: Duration,

    /// Largest size of the journal in bytes; past it (ClickHouse far behind), receivers push back.
    #[arg(long, env = "PLUMB_JOURNAL_MAX_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub journal_max_bytes: u64,

    /// Longest one ClickHouse write may take before it counts as failed (and its rows are spooled).
    #[arg(long, env = "PLUMB_WRITE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub write_timeout: Duration,

    /// How long shutdown may take to flush everything before giving up.
    #[arg(long, env = "PLUMB_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log format: text or json. The level comes from PLUMB_LOG (default `info`).
    #[arg(long, env = "PLUMB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl CollectorConfig {
    /// The TLS files, when TLS is on.
    pub fn tls_files(&self) -> Option<ServerTlsFiles> {
        Some(ServerTlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The tokens for the OTLP listeners and for the query API, checked.
    pub fn tokens(&self) -> Result<(Tokens, Tokens), ConfigError> {
        let parse = |field, secret: &Secret| {
            Tokens::parse(secret.expose())
                .map_err(|message| ConfigError::Invalid { field, message })
        };
        Ok((
            parse("ingest_tokens", &self.ingest_tokens)?,
            parse("query_tokens", &self.query_tokens)?,
        ))
    }

    /// The apdex thresholds: the default and the per-service list, checked.
    pub fn apdex(&self) -> Result<ApdexThresholds, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "apdex_thresholds",
            message,
        };
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut per_service = Vec::new();
        for item in self.apdex_thresholds.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let Some((service, threshold)) = item.split_once('=') else {
                return Err(invalid(format!(
                    "{item:?} is not service=duration (e.g. checkout=200ms)"
                )));
            };
            let threshold = humantime::parse_duration(threshold.trim())
                .map_err(|e| invalid(format!("{item:?}: {e}")))?;
            per_service.push((service.trim().to_owned(), micros(threshold)));
        }
        Ok(ApdexThresholds {
            default_us: micros(self.apdex_threshold),
            per_service,
        })
    }

    /// Loads flags from `args` (the first item is the program name), the environment and the
    /// config file, and checks the values.
    pub fn load<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let config: Self = plumb_config::parse(args)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.into(),
            })
        };
        if !crate::store::is_identifier(&self.database) {
            return invalid(
                "database",
                "use letters, digits and underscores, not starting with a digit",
            );
        }
        if self.retention_days == 0 {
            return invalid("retention_days", "must be at least 1");
        }
        if self.max_operations_per_service == 0 || self.max_components_per_service == 0 {
            return invalid(
                "max_operations_per_service",
                "max_operations_per_service and max_components_per_service must be at least 1",
            );
        }
        if self.max_attributes_per_span == 0
            || self.max_attribute_value_bytes == 0
            || self.max_spans_per_request == 0
        {
            return invalid(
                "max_spans_per_request",
                "max_spans_per_request, max_attributes_per_span and max_attribute_value_bytes must be at least 1",
            );
        }
        if self.trace_max_spans == 0 {
            return invalid("trace_max_spans", "must be at least 1");
        }
        if self.max_request_bytes < 1024 {
            return invalid("max_request_bytes", "must be at least 1024");
        }
        if self.journal_max_bytes < self.max_request_bytes as u64 {
            // Otherwise the largest requests would be refused for ever.
            return invalid(
                "journal_max_bytes",
                "must be at least max_request_bytes, so that any request fits",
            );
        }
        if self.queue_batches == 0 || self.batch_rows == 0 {
            return invalid(
                "queue_batches",
                "queue_batches and batch_rows must be at least 1",
            );
        }
        if self.flush_interval.is_zero() {
            return invalid("flush_interval", "must be more than zero");
        }
        self.apdex()?;
        self.tokens()?;
        if self.tls_cert.is_some() != self.tls_key.is_some()
            || (self.tls_client_ca.is_some() && self.tls_cert.is_none())
        {
            return invalid(
                "tls_cert",
                "give --tls-cert and --tls-key together (and --tls-client-ca only with them)",
            );
        }
        if let Some(url) = &self.clickhouse_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid(
                "clickhouse_url",
                "must be an http:// or https:// URL (ClickHouse's HTTP port, usually 8123)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_flags_override_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plumb.toml");
        std::fs::write(
            &path,
            "grpc-addr = \"127.0.0.1:14317\"\nretention_days = 7\ndatabase = \"from_file\"\n",
        )
        .expect("write");
        let c = CollectorConfig::load([
            "plumb-collector",
            "--config",
            path.to_str().expect("utf8"),
            "--database",
            "from_flag",
        ])
        .expect("loads");
        assert_eq!(c.grpc_addr.port(), 14317);
        assert_eq!(c.retention_days, 7);
        assert_eq!(c.database, "from_flag");
        assert_eq!(c.http_addr.port(), 4318);
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plumb.toml");
        std::fs::write(&path, "grpc_adr = \"x\"\n").expect("write");
        let e =
            CollectorConfig::load(["plumb-collector", "--config", path.to_str().expect("utf8")])
                .expect_err("must fail");
        assert!(e.to_string().contains("unknown option \"grpc_adr\""), "{e}");
        let e = CollectorConfig::load(["plumb-collector", "--database", "x; DROP"])
            .expect_err("must fail");
        assert!(e.to_string().contains("invalid database"), "{e}");
        let e = CollectorConfig::load(["plumb-collector", "--retention-days", "0"])
            .expect_err("must fail");
        assert!(e.to_string().contains("retention_days"), "{e}");
        let e = CollectorConfig::load(["plumb-collector", "--journal-max-bytes", "4096"])
            .expect_err("must fail");
        assert!(e.to_string().contains("journal_max_bytes"), "{e}");
        let e = CollectorConfig::load(["plumb-collector", "--apdex-thresholds", "shop:200ms"])
            .expect_err("must fail");
        assert!(e.to_string().contains("apdex_thresholds"), "{e}");
    }

    #[test]
    fn apdex_thresholds_per_service() {
        let c = CollectorConfig::load([
            "plumb-collector",
            "--apdex-threshold",
            "300ms",
            "--apdex-thresholds",
            "checkout=200ms, search=1s",
        ])
        .expect("loads");
        let apdex = c.apdex().expect("valid");
        assert_eq!(apdex.default_us, 300_000);
        assert_eq!(
            apdex.per_service,
            [
                ("checkout".to_owned(), 200_000),
                ("search".to_owned(), 1_000_000)
            ]
        );
    }
}
