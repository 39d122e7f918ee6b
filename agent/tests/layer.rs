//! `PlumbLayer` on its own: the span it records for an axum route, for a 5xx, for a handler that
//! panics, and the parent it takes from an incoming `traceparent`.

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::get;
use futures_util::FutureExt as _;
use http::Request;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
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

/// One provider for the whole test binary (the tracer provider is global).
fn exported() -> &'static (SdkTracerProvider, Keep) {
    static PROVIDER: OnceLock<(SdkTracerProvider, Keep)> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let keep = Keep::default();
        let (processor, _) = QueueProcessor::new(keep.clone(), 1000);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        (provider, keep)
    })
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/boom", get(boom))
        .route_layer(PlumbLayer::new())
}

fn span_named(name: &str) -> SpanData {
    let (provider, keep) = exported();
    provider.force_flush().expect("flush");
    let spans = keep.0.lock().expect("lock");
    spans
        .iter()
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

#[tokio::test]
async fn routes_statuses_panics_and_parents_are_recorded() {
    exported();
    let mut app = app();
    let request = Request::get("/users/42")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .body(Body::empty())
        .expect("request");
    let response = app.call(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let ok = span_named("GET /users/{id}");
    assert_eq!(ok.span_kind, SpanKind::Server);
    assert_eq!(attribute(&ok, "http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(attribute(&ok, "url.path").as_deref(), Some("/users/42"));
    assert_eq!(
        attribute(&ok, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        ok.span_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(ok.parent_span_id.to_string(), "b7ad6b7169203331");
    assert_eq!(ok.status, Status::Unset);

    let response = app
        .call(Request::get("/fail").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), 503);
    let failed = span_named("GET /fail");
    assert!(
        matches!(failed.status, Status::Error { .. }),
        "{:?}",
        failed.status
    );

    let outcome =
        AssertUnwindSafe(app.call(Request::get("/boom").body(Body::empty()).expect("request")))
            .catch_unwind()
            .await;
    assert!(outcome.is_err(), "the panic still reaches the server");
    let boom = span_named("GET /boom");
    assert!(
        matches!(boom.status, Status::Error { .. }),
        "{:?}",
        boom.status
    );
    assert_eq!(
        attribute(&boom, "http.response.status_code").as_deref(),
        Some("500")
    );
}
