//! What `PlumbLayer` adds to a request: the same axum handler with and without the layer, with
//! the tracer provider `init` builds (Plumb's queue processor) and an exporter that discards; the
//! layer on the global tracer, on the SDK tracer, and on the agent's queue as `init` makes it.
//! Then what handing a finished span to the export thread costs: a span started and ended on a
//! provider with no processor, with Plumb's queue processor, and with the SDK's batch processor,
//! bare and with the four attributes the layer gives a request's span.
//!
//! Run: `cargo bench -p plumb-agent --bench layer`; the difference to the first of each group is
//! the overhead.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanLimits,
};
use plumb_agent::{PlumbLayer, QueueProcessor};
use tower_service::Service;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

fn app() -> Router {
    Router::new().route("/users/{id}", get(|| async { "ok" }))
}

fn layer(c: &mut Criterion) {
    let (processor, _stats) = QueueProcessor::new(Discard, 8192);
    let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
    // What `init` gives a layer: request spans straight into the provider's queue.
    let on_queue = PlumbLayer::with_queue(&processor, sampler.clone(), SpanLimits::default());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("http_request");
    for (name, mut router) in [
        ("without_layer", app()),
        // What any route layer costs in axum (the route's service wrapped and cloned per
        // request), so the difference to it is PlumbLayer's own work.
        (
            "with_pass_through_layer",
            app().route_layer(tower_layer::Identity::new()),
        ),
        ("with_plumb_layer", app().route_layer(PlumbLayer::new())),
        // The same spans through the SDK's span, on its tracer (no global lookup).
        (
            "with_plumb_layer_on_sdk_tracer",
            app().route_layer(PlumbLayer::with_tracer(provider.tracer("plumb-agent"))),
        ),
        (
            "with_plumb_layer_on_agent_queue",
            app().route_layer(on_queue),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = Request::get("/users/42")
                    .body(Body::empty())
                    .expect("request");
                runtime.block_on(router.call(request)).expect("response")
            })
        });
    }
    group.finish();
    let _ = provider.shutdown();
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_end");
    let (queue, _stats) = QueueProcessor::new(Discard, 8192);
    let providers = [
        ("no_processor", SdkTracerProvider::builder().build()),
        (
            "plumb_queue_processor",
            SdkTracerProvider::builder()
                .with_span_processor(queue)
                .build(),
        ),
        (
            "sdk_batch_processor",
            SdkTracerProvider::builder()
                .with_span_processor(BatchSpanProcessor::builder(Discard).build())
                .build(),
        ),
    ];
    for (name, provider) in &providers {
        let tracer = provider.tracer("bench");
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut span = tracer.start("GET /users/{id}");
                span.end();
            })
        });
        // As the layer makes them: method, path and route at the start, the status at the end.
        group.bench_function(format!("{name}_with_attributes"), |b| {
            b.iter(|| {
                let attributes = vec![
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("url.path", "/users/42".to_owned()),
                    KeyValue::new("http.route", "/users/{id}"),
                ];
                let mut span = tracer
                    .span_builder("GET /users/{id}")
                    .with_kind(SpanKind::Server)
                    .with_attributes(attributes)
                    .start(&tracer);
                span.set_attribute(KeyValue::new("http.response.status_code", 200_i64));
                span.end();
            })
        });
    }
    group.finish();
    for (_, provider) in providers {
        let _ = provider.shutdown();
    }
}

criterion_group!(benches, layer, handoff);
criterion_main!(benches);
