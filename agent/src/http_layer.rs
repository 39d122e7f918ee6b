//! [`PlumbLayer`]: a tower layer that records one SERVER span per HTTP request.
//!
//! In: requests to any tower/hyper/axum service. Out: a span named `METHOD route` with
//! `http.request.method`, `url.path`, `http.route` (axum's matched path when the layer is added
//! with `route_layer`), `http.response.status_code`, the duration, and status ERROR for 5xx
//! responses, errors and panics. An incoming W3C `traceparent` becomes the span's parent, and the
//! handler runs with the span as the current context, so its own spans nest under it. Without a
//! matched path the collector turns `url.path` into a route template.

use axum::extract::MatchedPath;
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;
use tower_layer::Layer;
use tower_service::Service;

/// The layer; add it with `Router::route_layer` to get route templates from axum.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlumbLayer;

impl PlumbLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for PlumbLayer {
    type Service = PlumbService<S>;

    fn layer(&self, inner: S) -> PlumbService<S> {
        PlumbService { inner }
    }
}

/// The service [`PlumbLayer`] wraps around the application.
#[derive(Clone, Debug)]
pub struct PlumbService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for PlumbService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let parent =
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
        let method = request.method().as_str().to_owned();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_owned());
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("url.path", request.uri().path().to_owned()),
        ];
        let name = match route {
            Some(route) => {
                let name = format!("{method} {route}");
                attributes.push(KeyValue::new("http.route", route));
                name
            }
            None => method,
        };
        let tracer = global::tracer("plumb-agent");
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        let future = {
            let _active = cx.clone().attach();
            self.inner.call(request)
        };
        Box::pin(async move {
            let outcome = AssertUnwindSafe(future.with_context(cx.clone()))
                .catch_unwind()
                .await;
            let span = cx.span();
            match outcome {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    ));
                    if status >= 500 {
                        span.set_status(Status::error(format!("HTTP {status}")));
                    }
                    span.end();
                    Ok(response)
                }
                Ok(Err(error)) => {
                    span.set_status(Status::error("the service failed before responding"));
                    span.end();
                    Err(error)
                }
                Err(panic) => {
                    span.set_attribute(KeyValue::new("http.response.status_code", 500));
                    span.set_status(Status::error("the handler panicked"));
                    span.end();
                    std::panic::resume_unwind(panic)
                }
            }
        })
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

/// Writes `cx`'s W3C trace context (`traceparent`, `tracestate`) into outbound request headers,
/// so the service called continues the same trace.
pub fn inject_trace_context(cx: &Context, headers: &mut HeaderMap) {
    global::get_text_map_propagator(|p| p.inject_context(cx, &mut HeaderInjector(headers)));
}
