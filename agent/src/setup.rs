//! [`init`]: the OpenTelemetry providers, the propagator and the `tracing` bridge, in one call.
//!
//! In: an [`AgentConfig`]. Out: global tracer and meter providers exporting OTLP/gRPC (spans
//! through the bounded [`QueueProcessor`]), the agent's own counters, the W3C
//! trace-context propagator, and an [`AgentGuard`] that flushes and shuts them down when dropped.
//! Must be called inside a multi-threaded tokio runtime (the exporters use it).

use crate::config::AgentConfig;
use crate::request_span::RequestTracer;
use crate::span_queue::{QueueProcessor, QueueStats};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Layer as _, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// An OTLP exporter could not be built (bad endpoint, no tokio runtime).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] plumb_net::ClientTlsError),
    /// The bearer token cannot be sent as gRPC metadata.
    #[error("the token must be printable ASCII")]
    Token,
}

/// Keeps the providers alive; dropping it flushes what is queued and shuts them down.
#[derive(Debug)]
pub struct AgentGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
}

impl AgentGuard {
    /// Exports everything queued now (spans and metrics).
    pub fn flush(&self) {
        let _ = self.tracer_provider.force_flush();
        let _ = self.meter_provider.force_flush();
    }
}

impl Drop for AgentGuard {
    fn drop(&mut self) {
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// The gRPC metadata that carries the bearer token, if any.
fn authorization(token: Option<&str>) -> Result<tonic::metadata::MetadataMap, AgentError> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(token) = token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| AgentError::Token)?;
        metadata.insert("authorization", value);
    }
    Ok(metadata)
}

/// Sets up tracing and metrics export for this process; keep the guard until the end of `main`.
pub fn init(config: AgentConfig) -> Result<AgentGuard, AgentError> {
    let resource = resource(&config);

    let metadata = authorization(config.token.as_deref())?;
    let mut spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_metadata(metadata.clone());
    if let Some(endpoint) = &config.endpoint {
        spans = spans.with_endpoint(endpoint.clone());
    }
    let tls = if config.tls.is_set() {
        Some(config.tls.tonic()?)
    } else {
        None
    };
    if let Some(tls) = &tls {
        spans = spans.with_tls_config(tls.clone());
    }
    let (processor, queue_stats) = QueueProcessor::new(spans.build()?, config.max_queued_spans);
    // The sampler and limits the SDK reads from `OTEL_*`, shared by the provider and the
    // request spans the layer records without it.
    let sdk = opentelemetry_sdk::trace::Config::default();
    let request_tracer =
        RequestTracer::new(processor.handoff(), sdk.sampler.clone(), sdk.span_limits);
    let tracer_provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sdk.sampler)
        .with_span_limits(sdk.span_limits)
        .with_resource(resource.clone())
        .build();

    let mut metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_metadata(metadata);
    if let Some(endpoint) = &config.endpoint {
        metrics = metrics.with_endpoint(endpoint.clone());
    }
    if let Some(tls) = tls {
        metrics = metrics.with_tls_config(tls);
    }
    let reader = PeriodicReader::builder(metrics.build()?)
        .with_interval(config.metrics_interval)
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());
    crate::http_layer::use_tracer(Arc::new(request_tracer));
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    let meter = opentelemetry::global::meter("plumb-agent");
    register_own_metrics(&meter, queue_stats);
    if config.host_metrics {
        crate::host_metrics::register(&meter);
    }
    if config.install_tracing_subscriber {
        let bridge = tracing_opentelemetry::layer()
            .with_tracer(tracer_provider.tracer("plumb-agent"))
            .with_filter(bridge_filter());
        // An application that already installed a subscriber keeps it.
        let _ = tracing_subscriber::registry().with(bridge).try_init();
    }
    Ok(AgentGuard {
        tracer_provider,
        meter_provider,
    })
}

/// Which `tracing` spans become OpenTelemetry spans: the application's at INFO and above, none
/// from the HTTP/gRPC stack the exporter itself uses (exporting those would feed on itself).
fn bridge_filter() -> Targets {
    let off = [
        "h2",
        "hyper",
        "hyper_util",
        "tonic",
        "tower",
        "reqwest",
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
    ];
    off.into_iter().fold(
        Targets::new().with_default(LevelFilter::INFO),
        |t, target| t.with_target(target, LevelFilter::OFF),
    )
}

/// The agent's own counters: `plumb.agent.spans.exported`, `plumb.agent.spans.dropped` (queue
/// full, or unsent at shutdown) and `plumb.agent.export.failures` (failed attempts, retried).
fn register_own_metrics(meter: &Meter, stats: Arc<QueueStats>) {
    type Reading = fn(&QueueStats) -> u64;
    let counters: [(&'static str, Reading); 3] = [
        ("plumb.agent.spans.exported", |s| {
            s.exported.load(Ordering::Relaxed)
        }),
        ("plumb.agent.spans.dropped", |s| {
            s.dropped.load(Ordering::Relaxed)
        }),
        ("plumb.agent.export.failures", |s| {
            s.export_failures.load(Ordering::Relaxed)
        }),
    ];
    for (name, read) in counters {
        let stats = Arc::clone(&stats);
        meter
            .u64_observable_counter(name)
            .with_callback(move |o| o.observe(read(&stats), &[]))
            .build();
    }
}

/// The resource: code settings over `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`.
fn resource(config: &AgentConfig) -> Resource {
    let mut builder = Resource::builder();
    if let Some(name) = &config.service_name {
        builder = builder.with_service_name(name.clone());
    }
    let mut attributes = vec![KeyValue::new("process.pid", i64::from(std::process::id()))];
    if let Some(host) = host_name() {
        attributes.push(KeyValue::new("host.name", host));
    }
    if let Some(version) = &config.service_version {
        attributes.push(KeyValue::new("service.version", version.clone()));
    }
    if let Some(environment) = &config.environment {
        attributes.push(KeyValue::new(
            "deployment.environment.name",
            environment.clone(),
        ));
        attributes.push(KeyValue::new("deployment.environment", environment.clone()));
    }
    builder.with_attributes(attributes).build()
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
}
