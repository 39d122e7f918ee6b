//! [`PlumbLayer`]: a tower layer that records one SERVER span per HTTP request.
//!
//! In: requests to any tower/hyper/axum service. Out: a span named `METHOD route` with
//! `http.request.method`, `url.path`, `http.route` (axum's matched path when the layer is added
//! with `route_layer`), `http.response.status_code`, the duration, and status ERROR for 5xx
//! responses, errors and panics. An incoming W3C `traceparent` becomes the span's parent, and the
//! handler runs with the span as the current context, so its own spans nest under it. Without a
//! matched path the collector turns `url.path` into a route template.
//!
//! A layer made after [`crate::init`] (or with [`PlumbLayer::with_queue`]) records its spans with
//! the agent's [`RequestTracer`], straight into the agent's span queue without the SDK's span;
//! one made with [`PlumbLayer::with_tracer`] starts them on that SDK tracer, and one made before
//! `init`, or without it, on the global tracer provider.

use crate::request_span::RequestTracer;
use crate::span_queue::QueueProcessor;
use axum::extract::MatchedPath;
use hashbrown::HashMap;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue, global};
use opentelemetry_sdk::trace::{SdkTracer, ShouldSample, SpanLimits};
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Poll;
use tower_layer::Layer;
use tower_service::Service;

/// The request tracer of the last [`crate::init`], for layers made after it.
static AGENT_TRACER: RwLock<Option<Arc<RequestTracer>>> = RwLock::new(None);

/// Makes `tracer` the one new layers start their spans on.
pub(crate) fn use_tracer(tracer: Arc<RequestTracer>) {
    *AGENT_TRACER
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tracer);
}

/// What a layer starts its spans on.
#[derive(Clone, Debug, Default)]
enum Spans {
    /// The global tracer provider, looked up per request.
    #[default]
    Global,
    /// An SDK tracer.
    Sdk(SdkTracer),
    /// The agent's own request spans, straight into a [`QueueProcessor`]'s queue.
    Queue(Arc<RequestTracer>),
}

/// The layer; add it with `Router::route_layer` to get route templates from axum.
#[derive(Clone, Debug, Default)]
pub struct PlumbLayer {
    spans: Spans,
}

impl PlumbLayer {
    /// A new layer, on the agent's span queue if [`crate::init`] has run, else on the global
    /// tracer provider.
    pub fn new() -> Self {
        let tracer = AGENT_TRACER
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Self {
            spans: tracer.map_or(Spans::Global, Spans::Queue),
        }
    }

    /// A layer starting its spans on `tracer` (for an application that builds its own SDK
    /// tracer provider instead of calling [`crate::init`]).
    pub fn with_tracer(tracer: SdkTracer) -> Self {
        Self {
            spans: Spans::Sdk(tracer),
        }
    }

    /// A layer whose spans go straight into `queue` without the SDK's span, as after
    /// [`crate::init`] (for an application that builds its own provider around a
    /// [`QueueProcessor`]): give it the provider's sampler and span limits. Spans recorded this
    /// way reach only `queue`, not the provider's other processors, and the sampler decides on
    /// the parent, trace id, name and kind (it is not shown the request's attributes).
    pub fn with_queue(
        queue: &QueueProcessor,
        sampler: impl Into<Box<dyn ShouldSample>>,
        limits: SpanLimits,
    ) -> Self {
        let tracer = RequestTracer::new(queue.handoff(), sampler.into(), limits);
        Self {
            spans: Spans::Queue(Arc::new(tracer)),
        }
    }
}

impl<S> Layer<S> for PlumbLayer {
    type Service = PlumbService<S>;

    fn layer(&self, inner: S) -> PlumbService<S> {
        PlumbService {
            inner,
            spans: self.spans.clone(),
        }
    }
}

/// The service [`PlumbLayer`] wraps around the application.
#[derive(Clone, Debug)]
pub struct PlumbService<S> {
    inner: S,
    spans: Spans,
}

/// The standard methods, in the order of [`METHOD_NAMES`].
const METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const METHOD_NAMES: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// At most this many span names (`METHOD route`) are interned; later routes are formatted per
/// request.
const MAX_INTERNED_NAMES: usize = 4096;

/// The span names of the standard methods' routes seen so far, one map per method, each name
/// kept for the life of the process. A request on a known route then allocates neither its span
/// name nor its `http.route` (the name's tail): in a profile of `cargo bench -p plumb-agent
/// --bench layer` these allocations, freed later on the export thread, took about a quarter of
/// the time. Routes come from the application's router, so the set is small and bounded anyway;
/// [`MAX_INTERNED_NAMES`] caps it all the same.
static SPAN_NAMES: [RwLock<Option<RouteNames>>; 9] = [const { RwLock::new(None) }; 9];

/// One method's span names by route, hashed with hashbrown's foldhash: in `cargo bench -p
/// plumb-agent --bench layer` under callgrind std's SipHash made the lookup about 370
/// instructions of the request's path. The routes come from the application's router, not from
/// the request, so a hash built for speed over flooding resistance is safe here.
type RouteNames = HashMap<Box<str>, &'static str>;

/// How many names [`SPAN_NAMES`] holds.
static INTERNED_NAMES: AtomicUsize = AtomicUsize::new(0);

/// The interned `METHOD route` of the method numbered `method` in [`METHODS`]; `None` once the
/// cap is reached.
fn interned_name(method: usize, route: &str) -> Option<&'static str> {
    let read = |names: &Option<RouteNames>| names.as_ref().and_then(|n| n.get(route).copied());
    let lock = &SPAN_NAMES[method];
    if let Some(name) = read(
        &lock
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    ) {
        return Some(name);
    }
    // Once full, an unknown route takes no write lock (it would on every request).
    if INTERNED_NAMES.load(Ordering::Relaxed) >= MAX_INTERNED_NAMES {
        return None;
    }
    let mut names = lock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(name) = read(&names) {
        return Some(name);
    }
    if INTERNED_NAMES.fetch_add(1, Ordering::Relaxed) >= MAX_INTERNED_NAMES {
        INTERNED_NAMES.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let name: &'static str = format!("{} {route}", METHOD_NAMES[method]).leak();
    names
        .get_or_insert_with(HashMap::default)
        .insert(route.into(), name);
    Some(name)
}

/// The span's name and the `http.route` attribute's value for `method` on `route`: static
/// strings for a standard method (the route's name interned), else allocated.
fn name_and_route(
    method: &Method,
    route: Option<&str>,
) -> (Cow<'static, str>, Option<StringValue>) {
    let known = METHODS.iter().position(|m| m == method);
    let Some(route) = route else {
        let name = known.map_or_else(
            || Cow::Owned(method.as_str().to_owned()),
            |i| Cow::Borrowed(METHOD_NAMES[i]),
        );
        return (name, None);
    };
    if let Some(name) = known.and_then(|i| interned_name(i, route)) {
        let tail = &name[name.len() - route.len()..];
        return (Cow::Borrowed(name), Some(StringValue::from(tail)));
    }
    (
        Cow::Owned(format!("{} {route}", method.as_str())),
        Some(StringValue::from(route.to_owned())),
    )
}

/// The method as a static string for the standard ones (no allocation per request).
fn method_value(method: &Method) -> StringValue {
    match METHODS.iter().position(|m| m == method) {
        Some(i) => StringValue::from(METHOD_NAMES[i]),
        None => StringValue::from(method.as_str().to_owned()),
    }
}

/// A request span's attributes at its start, for an SDK tracer: the method, the path and the
/// route when known, with room for the status code set at the end.
fn attributes(method: StringValue, path: &str, route: Option<StringValue>) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new("http.request.method", method));
    attributes.push(KeyValue::new("url.path", path.to_owned()));
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    attributes
}

/// Starts the request's SERVER span on `tracer` under `parent`; the context holding it.
fn start_span<T>(
    tracer: &T,
    parent: &Context,
    name: Cow<'static, str>,
    attributes: Vec<KeyValue>,
) -> Context
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    parent.with_span(span)
}

impl<S, B, RB> Service<Request<B>> for PlumbService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = PlumbFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let parent =
            global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
        let (name, route) = name_and_route(
            request.method(),
            request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str),
        );
        let method = method_value(request.method());
        let path = request.uri().path();
        let cx = match &self.spans {
            Spans::Queue(tracer) => {
                let route = route.as_ref().map(StringValue::as_str);
                let strings = [
                    ("http.request.method", method.as_str()),
                    ("url.path", path),
                    ("http.route", route.unwrap_or_default()),
                ];
                let given = 2 + usize::from(route.is_some());
                tracer.start(&parent, name, &strings[..given])
            }
            Spans::Sdk(tracer) => {
                start_span(tracer, &parent, name, attributes(method, path, route))
            }
            Spans::Global => start_span(
                &global::tracer("plumb-agent"),
                &parent,
                name,
                attributes(method, path, route),
            ),
        };
        let inner = {
            let _active = cx.clone().attach();
            self.inner.call(request)
        };
        PlumbFuture { inner, cx }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`PlumbService`]: the application's future, polled with the
    /// request's span as the current context; when it completes (or panics) the span gets the
    /// status code and ends. A plain struct rather than a boxed future, so a request allocates
    /// no future of the layer's own.
    pub struct PlumbFuture<F> {
        #[pin]
        inner: F,
        cx: Context,
    }
}

impl<F, RB, E> Future for PlumbFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let inner = this.inner;
        let polled = {
            let _active = this.cx.clone().attach();
            std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(task)))
        };
        let span = this.cx.span();
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(response))) => {
                let status = response.status().as_u16();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 500 {
                    span.set_status(Status::error(format!("HTTP {status}")));
                }
                span.end();
                Poll::Ready(Ok(response))
            }
            Ok(Poll::Ready(Err(error))) => {
                span.set_status(Status::error("the service failed before responding"));
                span.end();
                Poll::Ready(Err(error))
            }
            Err(panic) => {
                span.set_attribute(KeyValue::new("http.response.status_code", 500));
                span.set_status(Status::error("the handler panicked"));
                span.end();
                std::panic::resume_unwind(panic)
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_are_interned_up_to_the_cap() {
        let (name, route) = name_and_route(&Method::GET, Some("/users/{id}"));
        assert_eq!(name, "GET /users/{id}");
        assert_eq!(route.as_ref().map(StringValue::as_str), Some("/users/{id}"));
        let (again, _) = name_and_route(&Method::GET, Some("/users/{id}"));
        let (Cow::Borrowed(first), Cow::Borrowed(second)) = (name, again) else {
            panic!("a standard method's route is interned");
        };
        assert!(std::ptr::eq(first, second), "the same interned name");
        // The same route under another method is a name of its own.
        assert_eq!(
            name_and_route(&Method::POST, Some("/users/{id}")).0,
            "POST /users/{id}"
        );
        assert_eq!(
            name_and_route(&Method::GET, None),
            (Cow::Borrowed("GET"), None)
        );
        let custom = Method::from_bytes(b"PURGE").expect("method");
        let (name, route) = name_and_route(&custom, Some("/cache/{key}"));
        assert!(matches!(name, Cow::Owned(_)));
        assert_eq!(name, "PURGE /cache/{key}");
        assert_eq!(
            route.as_ref().map(StringValue::as_str),
            Some("/cache/{key}")
        );

        // Past the cap new routes are formatted per request, with the same text.
        for i in 0..MAX_INTERNED_NAMES {
            name_and_route(&Method::PUT, Some(&format!("/fill/{i}")));
        }
        assert!(INTERNED_NAMES.load(Ordering::Relaxed) <= MAX_INTERNED_NAMES);
        let (name, route) = name_and_route(&Method::DELETE, Some("/late/{id}"));
        assert!(matches!(name, Cow::Owned(_)));
        assert_eq!(name, "DELETE /late/{id}");
        assert_eq!(route.as_ref().map(StringValue::as_str), Some("/late/{id}"));
        // What was interned before stays interned.
        assert!(matches!(
            name_and_route(&Method::GET, Some("/users/{id}")).0,
            Cow::Borrowed(_)
        ));
    }
}
