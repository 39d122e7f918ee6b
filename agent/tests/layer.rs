//! `PlumbLayer` on its own, both ways it records spans (through the SDK's tracer, and straight
//! into the agent's queue as after `init`): the span it records for an axum route, for a 5xx,
//! for a handler that panics, for a request dropped before it is answered, the parent it takes
//! from an incoming `traceparent`, and what the handler adds to it; on the queue, the sampler
//! and the span limits it is given.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use futures_util::FutureExt as _;
use http::Request;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, SpanData, SpanExporter, SpanLimits, SpanProcessor as _,
};
use plumb_agent::{PlumbLayer, QueueProcessor};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock};
use tower_service::Service;

/// Keeps what is exported, for the assertions.
#[derive(Clone, Debug, Default)]
struct Keep(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Keep {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().expect("lock").extend(batch);
        Ok(())
    }
}

/// One provider for the whole test binary (the tracer provider is global), and a layer that
/// records into its queue directly.
struct Setup {
    provider: SdkTracerProvider,
    keep: Keep,
    queue_layer: PlumbLayer,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let keep = Keep::default();
        let (processor, _) = QueueProcessor::new(keep.clone(), 1000);
        let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
        let queue_layer =
            PlumbLayer::with_queue(&processor, sampler.clone(), SpanLimits::default());
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Setup {
            provider,
            keep,
            queue_layer,
        }
    })
}

/// The two ways to record: the SDK's global tracer, and the queue. Each gets routes under its
/// own prefix, so that the tests, run in parallel, find their own spans.
fn layers() -> [(&'static str, PlumbLayer); 2] {
    [
        ("sdk", PlumbLayer::new()),
        ("queue", setup().queue_layer.clone()),
    ]
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

/// A handler that does what applications do with the request's span: a child span of its own,
/// an attribute and an event on the request's span.
async fn busy() -> &'static str {
    let tracer = opentelemetry::global::tracer("app");
    let mut child = tracer.start("load user");
    child.end();
    let cx = Context::current();
    cx.span().set_attribute(KeyValue::new("app.user", 42_i64));
    cx.span()
        .add_event("cache miss", vec![KeyValue::new("cache", "users")]);
    "busy"
}

/// A handler that fails with a status description longer than a packed span holds.
async fn verbose_failure() -> &'static str {
    Context::current()
        .span()
        .set_status(Status::error("y".repeat(500)));
    "failed"
}

fn app(prefix: &str, layer: PlumbLayer) -> Router {
    Router::new()
        .route(&format!("/{prefix}/users/{{id}}"), get(|| async { "ok" }))
        .route(
            &format!("/{prefix}/fail"),
            get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(&format!("/{prefix}/boom"), get(boom))
        .route(&format!("/{prefix}/busy"), get(busy))
        .route(&format!("/{prefix}/verbose"), get(verbose_failure))
        .route(
            &format!("/{prefix}/hang/{{rest}}"),
            get(std::future::pending::<&'static str>),
        )
        .route_layer(layer)
}

/// The last exported span named `name`, after a flush.
fn span_named(name: &str) -> SpanData {
    let Setup { provider, keep, .. } = setup();
    provider.force_flush().expect("flush");
    // A copy, so that a failed lookup panics with no lock held (the export thread takes it).
    let spans = keep.0.lock().expect("lock").clone();
    spans
        .iter()
        .rev()
        .find(|s| s.name == name)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no span {name:?} in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn routes_statuses_panics_and_parents_are_recorded() {
    for (prefix, layer) in layers() {
        let mut app = app(prefix, layer);
        let request = Request::get(format!("/{prefix}/users/42"))
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(Body::empty())
            .expect("request");
        let response = app.call(request).await.expect("response");
        assert_eq!(response.status(), 200);
        let ok = span_named(&format!("GET /{prefix}/users/{{id}}"));
        assert_eq!(ok.span_kind, SpanKind::Server, "{prefix}");
        assert_eq!(ok.instrumentation_scope.name(), "plumb-agent", "{prefix}");
        assert_eq!(
            attribute(&ok, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(
            attribute(&ok, "http.route"),
            Some(format!("/{prefix}/users/{{id}}"))
        );
        assert_eq!(
            attribute(&ok, "url.path"),
            Some(format!("/{prefix}/users/42"))
        );
        assert_eq!(
            attribute(&ok, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(
            ok.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(ok.parent_span_id.to_string(), "b7ad6b7169203331");
        assert!(ok.parent_span_is_remote, "{prefix}");
        assert!(ok.span_context.is_sampled(), "{prefix}");
        assert_eq!(ok.status, Status::Unset);
        assert!(ok.end_time >= ok.start_time, "{prefix}");

        let response = app
            .call(get_request(&format!("/{prefix}/fail")))
            .await
            .expect("response");
        assert_eq!(response.status(), 503);
        let failed = span_named(&format!("GET /{prefix}/fail"));
        assert_eq!(failed.status, Status::error("HTTP 503"), "{prefix}");
        // No traceparent: a new trace.
        assert_eq!(failed.parent_span_id.to_string(), "0000000000000000");
        assert_ne!(
            failed.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );

        let outcome = AssertUnwindSafe(app.call(get_request(&format!("/{prefix}/boom"))))
            .catch_unwind()
            .await;
        assert!(outcome.is_err(), "the panic still reaches the server");
        let boom = span_named(&format!("GET /{prefix}/boom"));
        assert_eq!(
            boom.status,
            Status::error("the handler panicked"),
            "{prefix}"
        );
        assert_eq!(
            attribute(&boom, "http.response.status_code").as_deref(),
            Some("500")
        );
    }
}

#[tokio::test]
async fn what_the_handler_adds_is_kept_and_its_spans_nest_under_the_request() {
    for (prefix, layer) in layers() {
        let mut app = app(prefix, layer);
        let response = app
            .call(get_request(&format!("/{prefix}/busy")))
            .await
            .expect("response");
        assert_eq!(response.status(), 200);
        let request = span_named(&format!("GET /{prefix}/busy"));
        assert_eq!(
            attribute(&request, "app.user").as_deref(),
            Some("42"),
            "{prefix}"
        );
        assert_eq!(
            attribute(&request, "http.response.status_code").as_deref(),
            Some("200")
        );
        assert_eq!(request.events.len(), 1, "{prefix}");
        assert_eq!(request.events.events[0].name, "cache miss");
        assert_eq!(
            request.events.events[0].attributes,
            [KeyValue::new("cache", "users")]
        );
        let children: Vec<SpanData> = setup()
            .keep
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| s.name == "load user" && s.parent_span_id == request.span_context.span_id())
            .cloned()
            .collect();
        assert_eq!(
            children.len(),
            1,
            "{prefix}: the handler's span under the request's"
        );
        assert_eq!(
            children[0].span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert!(!children[0].parent_span_is_remote, "{prefix}");
    }
}

#[tokio::test]
async fn a_long_path_a_long_status_and_a_dropped_request_are_recorded_whole() {
    for (prefix, layer) in layers() {
        let mut app = app(prefix, layer);
        // Longer than what a packed span holds: recorded all the same.
        let rest = "x".repeat(600);
        let path = format!("/{prefix}/hang/{rest}");
        let mut pending = app.call(get_request(&path));
        assert!(
            (&mut pending).now_or_never().is_none(),
            "the handler never answers"
        );
        // The client went away: the future is dropped and the span ends with it.
        drop(pending);
        let hung = span_named(&format!("GET /{prefix}/hang/{{rest}}"));
        assert_eq!(attribute(&hung, "url.path"), Some(path), "{prefix}");
        assert_eq!(attribute(&hung, "http.response.status_code"), None);
        assert_eq!(hung.status, Status::Unset);

        app.call(get_request(&format!("/{prefix}/verbose")))
            .await
            .expect("response");
        let verbose = span_named(&format!("GET /{prefix}/verbose"));
        assert_eq!(verbose.status, Status::error("y".repeat(500)), "{prefix}");
        assert_eq!(
            attribute(&verbose, "http.response.status_code").as_deref(),
            Some("200")
        );
    }
}

#[tokio::test]
async fn the_queue_follows_its_sampler_and_span_limits() {
    // For the global W3C propagator that reads the incoming `traceparent`.
    setup();
    let keep = Keep::default();
    let (processor, stats) = QueueProcessor::new(keep.clone(), 100);
    let never = PlumbLayer::with_queue(&processor, Sampler::AlwaysOff, SpanLimits::default());
    let limits = SpanLimits {
        max_attributes_per_span: 3,
        ..SpanLimits::default()
    };
    let three = PlumbLayer::with_queue(&processor, Sampler::AlwaysOn, limits);

    // Not sampled: nothing exported, and the handler still sees the incoming trace.
    let seen = Arc::new(Mutex::new(None));
    let seen_in_handler = Arc::clone(&seen);
    let mut unsampled = Router::new()
        .route(
            "/off",
            get(move || async move {
                let cx = Context::current();
                let span = cx.span();
                *seen_in_handler.lock().expect("lock") = Some((
                    span.span_context().trace_id().to_string(),
                    span.is_recording(),
                ));
                "off"
            }),
        )
        .route_layer(never);
    let request = Request::get("/off")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::empty())
        .expect("request");
    unsampled.call(request).await.expect("response");
    assert_eq!(
        *seen.lock().expect("lock"),
        Some(("4bf92f3577b34da6a3ce929d0e0e4736".to_owned(), false))
    );

    // Three attributes at most: the status code, the fourth, is counted as dropped.
    let mut limited = Router::new()
        .route("/limited/{id}", get(|| async { "ok" }))
        .route_layer(three);
    limited
        .call(get_request("/limited/1"))
        .await
        .expect("response");
    processor.force_flush().expect("flush");
    let exported = keep.0.lock().expect("lock").clone();
    assert_eq!(
        exported.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>(),
        ["GET /limited/{id}"]
    );
    assert_eq!(exported[0].attributes.len(), 3);
    assert_eq!(attribute(&exported[0], "http.response.status_code"), None);
    assert_eq!(exported[0].dropped_attributes_count, 1);
    assert_eq!(stats.exported.load(std::sync::atomic::Ordering::Relaxed), 1);
    let _ = processor.shutdown();
}
