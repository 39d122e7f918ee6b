//! Spans sent with the official OpenTelemetry SDK exporters (OTLP/gRPC, OTLP/HTTP with protobuf
//! or JSON), with known durations.

use crate::collector::Collector;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use std::time::{Duration, SystemTime};

/// How the SDK exporter talks to the collector.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// OTLP/gRPC, gzip-compressed.
    Grpc,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
    /// OTLP/gRPC with `authorization: Bearer <token>` metadata.
    GrpcWithToken(&'static str),
}

/// One span to send: what it looks like and how long it took.
#[derive(Clone, Debug)]
pub struct SpanSpec {
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// Whether to set status ERROR.
    pub error: bool,
    /// Start time.
    pub start: SystemTime,
}

/// GET SERVER spans for `route`, one per duration (µs), all starting at `start`.
pub fn server_spans(
    route: &str,
    durations: impl IntoIterator<Item = u64>,
    start: SystemTime,
) -> Vec<SpanSpec> {
    durations
        .into_iter()
        .map(|d| SpanSpec {
            name: route.into(),
            kind: SpanKind::Server,
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", route.to_owned()),
            ],
            duration_us: d,
            error: false,
            start,
        })
        .collect()
}

/// Records `spans` through the SDK and flushes them to the collector.
pub async fn send_spans(
    collector: &Collector,
    transport: Transport,
    service: &str,
    spans: Vec<SpanSpec>,
) {
    send_spans_to(
        &collector.grpc_url(),
        &collector.http_url(),
        transport,
        service,
        spans,
    )
    .await;
}

/// Records `spans` through the SDK and flushes them to any OTLP receiver (`http://host:port`
/// for gRPC and for HTTP, without a path).
pub async fn send_spans_to(
    grpc: &str,
    http: &str,
    transport: Transport,
    service: &str,
    spans: Vec<SpanSpec>,
) {
    let service = service.to_owned();
    let (grpc, http) = (grpc.to_owned(), http.to_owned());
    // The SDK's batch processor and the HTTP client block; keep them off the async workers.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let provider = tracer_provider_for(&grpc, &http, transport, &service);
        let tracer = provider.tracer("plumb-it");
        for s in spans {
            let mut span = tracer
                .span_builder(s.name)
                .with_kind(s.kind)
                .with_start_time(s.start)
                .with_attributes(s.attributes)
                .start(&tracer);
            if s.error {
                span.set_status(Status::error("failed"));
            }
            span.end_with_timestamp(s.start + Duration::from_micros(s.duration_us));
        }
        provider
            .force_flush()
            .expect("spans flushed to the collector");
        provider.shutdown().expect("provider shuts down");
    })
    .await
    .expect("sender thread");
}

/// A tracer provider using the official OTLP exporter, with a queue large enough that the SDK
/// never drops a span in these tests.
pub(crate) fn tracer_provider_for(
    grpc: &str,
    http: &str,
    transport: Transport,
    service: &str,
) -> SdkTracerProvider {
    let exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .with_endpoint(grpc)
            .build(),
        Transport::HttpJson => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(format!("{http}/v1/traces"))
            .build(),
        Transport::GrpcWithToken(token) => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ASCII token"),
            );
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_metadata(metadata)
                .with_endpoint(grpc)
                .build()
        }
    }
    .expect("exporter builds");
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(200_000)
        .with_max_export_batch_size(1000)
        .with_scheduled_delay(Duration::from_millis(200))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
        )
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build()
}
