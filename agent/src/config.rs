//! What [`crate::init`] sets up: service identity, where to export, how often metrics go out.
//!
//! Values set in code win; anything left unset falls back to the standard OpenTelemetry
//! environment variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) and then to the defaults below.

use plumb_net::ClientTlsFiles;
use std::time::Duration;

/// Agent settings; build with [`AgentConfig::new`] and the `with_*` methods.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// `service.name`; when `None`, `OTEL_SERVICE_NAME` or the SDK's default.
    pub service_name: Option<String>,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `deployment.environment.name` (and the older `deployment.environment`).
    pub environment: Option<String>,
    /// OTLP/gRPC endpoint; when `None`, `OTEL_EXPORTER_OTLP_ENDPOINT` or `http://localhost:4317`.
    pub endpoint: Option<String>,
    /// Bearer token for the collector's `--ingest-tokens`; when `None`, `PLUMB_TOKEN` (or send
    /// it with `OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>`).
    pub token: Option<String>,
    /// TLS to the collector: the CA to trust and, for mutual TLS, this process's certificate and
    /// key (PEM files); when unset, `PLUMB_CA_CERT`, `PLUMB_CLIENT_CERT`, `PLUMB_CLIENT_KEY`.
    /// Use an `https://` endpoint with it.
    pub tls: ClientTlsFiles,
    /// How often metrics are exported.
    pub metrics_interval: Duration,
    /// Spans queued for export before new ones are dropped and counted (never blocks a request).
    pub max_queued_spans: usize,
    /// Whether to install a `tracing` subscriber that exports `tracing` spans too.
    pub install_tracing_subscriber: bool,
    /// Whether to report host and process metrics.
    pub host_metrics: bool,
}

impl AgentConfig {
    /// Settings for the service `service_name`, everything else default.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: Some(service_name.into()),
            ..Self::from_env()
        }
    }

    /// Settings taken entirely from the environment and defaults.
    pub fn from_env() -> Self {
        Self {
            service_name: None,
            service_version: None,
            environment: None,
            endpoint: None,
            token: std::env::var("PLUMB_TOKEN").ok().filter(|t| !t.is_empty()),
            tls: ClientTlsFiles {
                ca: std::env::var_os("PLUMB_CA_CERT").map(Into::into),
                cert: std::env::var_os("PLUMB_CLIENT_CERT").map(Into::into),
                key: std::env::var_os("PLUMB_CLIENT_KEY").map(Into::into),
            },
            metrics_interval: Duration::from_secs(10),
            max_queued_spans: 8192,
            install_tracing_subscriber: true,
            host_metrics: true,
        }
    }

    /// Sets `service.version`.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Sets the deployment environment (`production`, `staging`, ...).
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the OTLP/gRPC endpoint (the sidecar on `http://127.0.0.1:4317`, or a collector).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets how often metrics are exported.
    pub fn with_metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Turns host and process metrics off.
    pub fn without_host_metrics(mut self) -> Self {
        self.host_metrics = false;
        self
    }

    /// Leaves the global `tracing` subscriber alone (for applications that install their own).
    pub fn without_tracing_subscriber(mut self) -> Self {
        self.install_tracing_subscriber = false;
        self
    }
}
