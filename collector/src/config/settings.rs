//! The settings of each stage, checked: made once from [`CollectorConfig`] by
//! `TryFrom`, whose errors name the option that is wrong. Every value a stage reads comes from
//! here, already parsed; none has a default of its own.

use super::ConfigError;
use super::flags::{CollectorConfig, LogFormat};
use crate::model::ApdexThresholds;
use crate::normalise::SpanLimits;
use crate::pipeline::PipelineSettings;
use crate::store::local_server::PartCompression;
use crate::store::write::WriterSettings;
use crate::trace_analysis::window::TraceSettings;
use plumb_config::Secret;
use plumb_otlp::auth::Tokens;
use plumb_otlp::tls::ServerTlsFiles;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Longest time span and metric rows wait before being written, whatever `--flush-interval`
/// says: holding them longer only costs memory (about 0.7 KB a span), while histograms gain from
/// a longer interval.
const ROW_FLUSH_MAX: Duration = Duration::from_secs(1);

/// Where ClickHouse is, or how to run a local one.
#[derive(Clone, Debug)]
pub(crate) struct StoreSettings {
    /// ClickHouse's HTTP URL; `None` starts a local server.
    pub(crate) url: Option<String>,
    /// User.
    pub(crate) user: String,
    /// Password (never logged).
    pub(crate) password: Secret,
    /// Database (a plain identifier).
    pub(crate) database: String,
    /// The server binary for a local server (`None`: found on PATH).
    pub(crate) binary: Option<PathBuf>,
    /// The local server's data folder.
    pub(crate) local_dir: PathBuf,
    /// How the local server compresses its parts.
    pub(crate) compression: PartCompression,
}

/// The three listeners.
#[derive(Clone, Debug)]
pub(crate) struct ListenerSettings {
    /// OTLP/gRPC.
    pub(crate) grpc_addr: SocketAddr,
    /// OTLP/HTTP.
    pub(crate) http_addr: SocketAddr,
    /// Query API.
    pub(crate) query_addr: SocketAddr,
    /// Largest OTLP request, in bytes.
    pub(crate) max_request_bytes: usize,
    /// Tokens accepted on the OTLP listeners.
    pub(crate) ingest_tokens: Tokens,
    /// Tokens accepted on the query API.
    pub(crate) query_tokens: Tokens,
    /// Whether `/status` is served, and without a token.
    pub(crate) public_status_page: bool,
    /// TLS for all three, when on.
    pub(crate) tls: Option<ServerTlsFiles>,
}

/// The crash journal, when it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JournalSettings {
    /// Its folder.
    pub(crate) dir: PathBuf,
    /// How often it is synced (never zero).
    pub(crate) sync_every: Duration,
    /// Most bytes it may hold.
    pub(crate) max_bytes: u64,
}

/// Alerting, when `--alerting-config` is given.
#[derive(Clone, Debug)]
pub(crate) struct AlertingSettings {
    /// The file, read again on SIGHUP and when it changes.
    pub(crate) path: PathBuf,
    /// The checked file, as it was at start-up.
    pub(crate) config: std::sync::Arc<plumb_alert_config::AlertingConfig>,
    /// Where probe results say they ran.
    pub(crate) location: String,
    /// The folder of the alerting state file.
    pub(crate) state_dir: PathBuf,
}

/// Everything the collector runs with, checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How the log is written.
    pub log_format: LogFormat,
    pub(crate) store: StoreSettings,
    pub(crate) listeners: ListenerSettings,
    pub(crate) pipeline: PipelineSettings,
    /// Batches each writer queue holds before receivers push back.
    pub(crate) queue_batches: usize,
    /// The trace window; `None` turns the breakdown off.
    pub(crate) traces: Option<TraceSettings>,
    /// The histogram and breakdown flushers.
    pub(crate) flushers: WriterSettings,
    /// The span and metric writers (written at least every [`ROW_FLUSH_MAX`]).
    pub(crate) row_writers: WriterSettings,
    /// The spool's folder.
    pub(crate) spool_dir: PathBuf,
    /// The spool's size limit.
    pub(crate) spool_max_bytes: u64,
    pub(crate) journal: Option<JournalSettings>,
    /// Alerting; `None` when it is off.
    pub(crate) alerting: Option<AlertingSettings>,
    /// Days of data kept.
    pub(crate) retention_days: u32,
    /// Days rollups are kept.
    pub(crate) rollup_retention_days: u32,
    /// Apdex thresholds for the query API.
    pub(crate) apdex: ApdexThresholds,
    /// How long each stage may take to stop.
    pub(crate) shutdown_timeout: Duration,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

/// Fails with `message` about `field` unless `ok`.
fn check(ok: bool, field: &'static str, message: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, message))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// `--apdex-threshold` and `--apdex-thresholds` (`service=duration,...`).
fn apdex(default: Duration, list: &str) -> Result<ApdexThresholds, ConfigError> {
    let mut per_service = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((service, threshold)) = item.split_once('=') else {
            return Err(invalid(
                "apdex_thresholds",
                format!("{item:?} is not service=duration (e.g. checkout=200ms)"),
            ));
        };
        let threshold = humantime::parse_duration(threshold.trim())
            .map_err(|e| invalid("apdex_thresholds", format!("{item:?}: {e}")))?;
        per_service.push((service.trim().to_owned(), micros(threshold)));
    }
    Ok(ApdexThresholds {
        default_us: micros(default),
        per_service,
    })
}

fn tokens(field: &'static str, secret: &Secret) -> Result<Tokens, ConfigError> {
    Tokens::parse(secret.expose()).map_err(|message| invalid(field, message))
}

impl TryFrom<CollectorConfig> for Settings {
    type Error = ConfigError;

    fn try_from(c: CollectorConfig) -> Result<Self, ConfigError> {
        check(
            crate::store::is_identifier(&c.database),
            "database",
            "use letters, digits and underscores, not starting with a digit",
        )?;
        check(c.retention_days > 0, "retention_days", "must be at least 1")?;
        check(
            c.rollup_retention_days > 0,
            "rollup_retention_days",
            "must be at least 1",
        )?;
        check(
            c.max_operations_per_service > 0,
            "max_operations_per_service",
            "must be at least 1",
        )?;
        check(
            c.max_components_per_service > 0,
            "max_components_per_service",
            "must be at least 1",
        )?;
        check(
            c.max_attributes_per_span > 0,
            "max_attributes_per_span",
            "must be at least 1",
        )?;
        check(
            c.max_attribute_value_bytes > 0,
            "max_attribute_value_bytes",
            "must be at least 1",
        )?;
        check(
            c.max_spans_per_request > 0,
            "max_spans_per_request",
            "must be at least 1",
        )?;
        check(
            c.trace_max_spans > 0,
            "trace_max_spans",
            "must be at least 1",
        )?;
        check(
            c.max_request_bytes >= 1024,
            "max_request_bytes",
            "must be at least 1024",
        )?;
        // Otherwise the largest requests would be refused for ever.
        check(
            c.journal_max_bytes >= c.max_request_bytes as u64,
            "journal_max_bytes",
            "must be at least max_request_bytes, so that any request fits",
        )?;
        check(c.queue_batches > 0, "queue_batches", "must be at least 1")?;
        check(c.batch_rows > 0, "batch_rows", "must be at least 1")?;
        check(
            !c.flush_interval.is_zero(),
            "flush_interval",
            "must be more than zero",
        )?;
        check(
            !c.write_timeout.is_zero(),
            "write_timeout",
            "must be more than zero",
        )?;
        if let Some(url) = &c.clickhouse_url {
            check(
                url.starts_with("http://") || url.starts_with("https://"),
                "clickhouse_url",
                "must be an http:// or https:// URL (ClickHouse's HTTP port, usually 8123)",
            )?;
        }
        let tls = match (c.tls_cert, c.tls_key, c.tls_client_ca) {
            (Some(cert), Some(key), client_ca) => Some(ServerTlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            _ => {
                return Err(invalid(
                    "tls_cert",
                    "give --tls-cert and --tls-key together (and --tls-client-ca only with them)",
                ));
            }
        };
        let listeners = ListenerSettings {
            grpc_addr: c.grpc_addr,
            http_addr: c.http_addr,
            query_addr: c.query_addr,
            max_request_bytes: c.max_request_bytes,
            ingest_tokens: tokens("ingest_tokens", &c.ingest_tokens)?,
            query_tokens: tokens("query_tokens", &c.query_tokens)?,
            public_status_page: c.public_status_page,
            tls,
        };
        let flushers = WriterSettings {
            batch_rows: c.batch_rows,
            flush_interval: c.flush_interval,
            shutdown_timeout: c.shutdown_timeout,
            write_timeout: c.write_timeout,
        };
        let journal = (!c.journal_sync.is_zero()).then(|| JournalSettings {
            dir: c
                .journal_dir
                .clone()
                .unwrap_or_else(|| c.data_dir.join("journal")),
            sync_every: c.journal_sync,
            max_bytes: c.journal_max_bytes,
        });
        check(
            !c.probe_location.trim().is_empty(),
            "probe_location",
            "must not be empty",
        )?;
        let alerting = match &c.alerting_config {
            Some(path) => Some(AlertingSettings {
                path: path.clone(),
                config: std::sync::Arc::new(plumb_alert_config::load(path)?),
                location: c.probe_location.clone(),
                state_dir: c.data_dir.join("alerting"),
            }),
            None => None,
        };
        let traces = (!c.trace_window.is_zero()).then_some(TraceSettings {
            window: c.trace_window,
            endpoint_wait: c.trace_endpoint_wait.min(c.trace_window),
            max_spans: c.trace_max_spans,
            max_components_per_service: c.max_components_per_service,
            hold_whole: c.trace_hold_whole,
        });
        Ok(Self {
            log_format: c.log_format,
            store: StoreSettings {
                url: c.clickhouse_url,
                user: c.clickhouse_user,
                password: c.clickhouse_password,
                database: c.database,
                binary: c.clickhouse_binary,
                local_dir: c.data_dir.join("clickhouse"),
                compression: c.clickhouse_compression,
            },
            listeners,
            pipeline: PipelineSettings {
                limits: SpanLimits {
                    max_age: c.max_span_age,
                    max_future: c.max_span_future,
                    max_attributes: c.max_attributes_per_span,
                    max_value_bytes: c.max_attribute_value_bytes,
                    max_spans: c.max_spans_per_request,
                },
                max_operations_per_service: c.max_operations_per_service,
                enqueue_timeout: c.enqueue_timeout,
            },
            queue_batches: c.queue_batches,
            traces,
            flushers,
            row_writers: WriterSettings {
                flush_interval: c.flush_interval.min(ROW_FLUSH_MAX),
                ..flushers
            },
            spool_dir: c.spool_dir.unwrap_or_else(|| c.data_dir.join("spool")),
            spool_max_bytes: c.spool_max_bytes,
            journal,
            alerting,
            retention_days: c.retention_days,
            rollup_retention_days: c.rollup_retention_days,
            apdex: apdex(c.apdex_threshold, &c.apdex_thresholds)?,
            shutdown_timeout: c.shutdown_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::load;
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
        let s = load([
            "plumb-collector",
            "--config",
            path.to_str().expect("utf8"),
            "--database",
            "from_flag",
        ])
        .expect("loads");
        assert_eq!(s.listeners.grpc_addr.port(), 14317);
        assert_eq!(s.retention_days, 7);
        assert_eq!(s.store.database, "from_flag");
        assert_eq!(s.listeners.http_addr.port(), 4318);
        assert_eq!(s.row_writers.flush_interval, ROW_FLUSH_MAX);
        assert!(s.traces.is_some() && s.journal.is_some());
    }

    #[test]
    fn the_endpoint_wait_is_at_most_the_trace_window() {
        let traces = |args: &[&str]| {
            let s = load(["plumb-collector"].iter().chain(args)).expect("loads");
            s.traces.map(|t| (t.window, t.endpoint_wait))
        };
        let secs = Duration::from_secs;
        assert_eq!(traces(&[]), Some((secs(10), secs(1))));
        assert_eq!(
            traces(&["--trace-window", "500ms"]),
            Some((Duration::from_millis(500), Duration::from_millis(500)))
        );
        assert_eq!(
            traces(&["--trace-endpoint-wait", "3s"]),
            Some((secs(10), secs(3)))
        );
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plumb.toml");
        std::fs::write(&path, "grpc_adr = \"x\"\n").expect("write");
        let e = load(["plumb-collector", "--config", path.to_str().expect("utf8")])
            .expect_err("must fail");
        assert!(e.to_string().contains("unknown option \"grpc_adr\""), "{e}");
        let cases: &[(&[&str], &str)] = &[
            (&["--database", "x; DROP"], "invalid database"),
            (&["--retention-days", "0"], "retention_days"),
            (&["--journal-max-bytes", "4096"], "journal_max_bytes"),
            (&["--apdex-thresholds", "shop:200ms"], "apdex_thresholds"),
            (
                &["--max-components-per-service", "0"],
                "max_components_per_service",
            ),
            (&["--batch-rows", "0"], "batch_rows"),
            (&["--write-timeout", "0s"], "write_timeout"),
            (&["--tls-key", "k.pem"], "tls_cert"),
            (&["--clickhouse-url", "ch:8123"], "clickhouse_url"),
            (&["--ingest-tokens", "no-name"], "ingest_tokens"),
        ];
        for (args, field) in cases {
            let e = load(std::iter::once(&"plumb-collector").chain(args.iter()))
                .expect_err("must fail");
            assert!(e.to_string().contains(field), "{args:?}: {e}");
        }
    }

    #[test]
    fn apdex_thresholds_per_service_and_switches_off() {
        let s = load([
            "plumb-collector",
            "--apdex-threshold",
            "300ms",
            "--apdex-thresholds",
            "checkout=200ms, search=1s",
            "--trace-window",
            "0",
            "--journal-sync",
            "0",
        ])
        .expect("loads");
        assert_eq!(s.apdex.default_us, 300_000);
        assert_eq!(
            s.apdex.per_service,
            [
                ("checkout".to_owned(), 200_000),
                ("search".to_owned(), 1_000_000)
            ]
        );
        assert_eq!((s.traces, s.journal), (None, None));
    }
}
