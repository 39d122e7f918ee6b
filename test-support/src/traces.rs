//! Whole traces sent through the SDK: one tracer provider per service, each span a child of its
//! parent's span context.

use crate::collector::Collector;
use crate::sdk::{SpanSpec, Transport, tracer_provider_for};
use opentelemetry::Context;
use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, Status, TraceContextExt as _, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::time::Duration;

/// One span of a trace to send, with the spans it calls.
#[derive(Clone, Debug)]
pub struct TreeSpan {
    /// The service that records it.
    pub service: String,
    /// The span itself.
    pub spec: SpanSpec,
    /// Its children.
    pub children: Vec<TreeSpan>,
}

impl TreeSpan {
    /// A span of `service` with no children yet.
    pub fn new(service: &str, spec: SpanSpec) -> Self {
        Self {
            service: service.to_owned(),
            spec,
            children: Vec::new(),
        }
    }

    /// Adds a child.
    pub fn child(mut self, child: TreeSpan) -> Self {
        self.children.push(child);
        self
    }
}

/// Sends whole traces through the SDK over OTLP/gRPC, one tracer provider per service, each
/// span a child of its parent's span context. Returns the trace ids (32 hex digits), in order.
pub async fn send_traces(collector: &Collector, traces: Vec<TreeSpan>) -> Vec<String> {
    let grpc = collector.grpc_url();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let mut providers: HashMap<String, SdkTracerProvider> = HashMap::new();
        let ids = traces
            .iter()
            .map(|root| {
                record_tree(&mut providers, &grpc, root, &Context::new())
                    .trace_id()
                    .to_string()
            })
            .collect();
        for provider in providers.values() {
            provider
                .force_flush()
                .expect("spans flushed to the collector");
            provider.shutdown().expect("provider shuts down");
        }
        ids
    })
    .await
    .expect("sender thread")
}

fn record_tree(
    providers: &mut HashMap<String, SdkTracerProvider>,
    grpc: &str,
    node: &TreeSpan,
    parent: &Context,
) -> SpanContext {
    let provider = providers
        .entry(node.service.clone())
        .or_insert_with(|| tracer_provider_for(grpc, "", Transport::Grpc, &node.service));
    let tracer = provider.tracer("plumb-it");
    let s = &node.spec;
    let mut span = tracer.build_with_context(
        SpanBuilder::from_name(s.name.clone())
            .with_kind(s.kind.clone())
            .with_start_time(s.start)
            .with_attributes(s.attributes.clone()),
        parent,
    );
    if s.error {
        span.set_status(Status::error("failed"));
    }
    let context = span.span_context().clone();
    let cx = Context::new().with_remote_span_context(context.clone());
    for child in &node.children {
        record_tree(providers, grpc, child, &cx);
    }
    // Ended after its children, as in a real program: the SDK queues (and so exports) a span
    // when it ends, children before their parent.
    span.end_with_timestamp(s.start + Duration::from_micros(s.duration_us));
    context
}
