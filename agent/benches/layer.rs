//! What `PlumbLayer` adds to a request: the same axum handler with and without the layer, with
//! the tracer provider `init` builds (Plumb's queue processor) and an exporter that discards.
//!
//! Run: `cargo bench -p plumb-agent --bench layer`; the difference of the two is the overhead.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
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
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("http_request");
    for (name, mut router) in [
        ("without_layer", app()),
        ("with_plumb_layer", app().route_layer(PlumbLayer::new())),
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

criterion_group!(benches, layer);
criterion_main!(benches);
