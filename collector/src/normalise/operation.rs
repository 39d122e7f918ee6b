//! Operation naming and the per-service operation cap.
//!
//! In: a span's kind, name and attributes. Out: the operation it is aggregated under. SERVER
//! spans with an HTTP method become `METHOD route`, from the current semantic conventions
//! (`http.request.method`, `http.route`, `url.path`) or the older ones (`http.method`,
//! `http.target`); raw paths are templated. Everything else keeps its span name.
//! [`OperationLimiter`] folds operations past a per-service cap into [`OVERFLOW_OPERATION`].

use super::route::template_path;
use super::spans::{Attribute, find};
use hashbrown::{HashMap, HashSet};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use std::borrow::Cow;
use std::sync::Mutex;

/// The operation that spans past a service's operation cap are counted under.
pub const OVERFLOW_OPERATION: &str = "[overflow]";

/// The operation name for a span.
pub fn operation_name<'a>(
    kind: i32,
    span_name: &'a str,
    attributes: &[Attribute<'a>],
) -> Cow<'a, str> {
    if kind != SpanKind::Server as i32 {
        return Cow::Borrowed(span_name);
    }
    let text = |key: &str| find(attributes, key).filter(|s| !s.is_empty());
    let Some(method) = text("http.request.method").or_else(|| text("http.method")) else {
        return Cow::Borrowed(span_name);
    };
    let route = match text("http.route") {
        Some(route) => Cow::Borrowed(route),
        None => match text("url.path").or_else(|| text("http.target")) {
            Some(path) => Cow::Owned(template_path(path)),
            None => return Cow::Borrowed(span_name),
        },
    };
    let mut operation = String::with_capacity(method.len() + 1 + route.len());
    operation.extend(method.chars().map(|c| c.to_ascii_uppercase()));
    operation.push(' ');
    operation.push_str(&route);
    Cow::Owned(operation)
}

/// Caps the number of distinct operations remembered per service.
#[derive(Debug)]
pub struct OperationLimiter {
    max_per_service: usize,
    seen: Mutex<HashMap<String, HashSet<String>>>,
}

impl OperationLimiter {
    /// A limiter that keeps at most `max_per_service` operations for each service.
    pub fn new(max_per_service: usize) -> Self {
        Self {
            max_per_service,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` with an admission function; the lock is taken once for a whole batch.
    ///
    /// The admission function returns the operation to use: the given one while the service is
    /// under its cap (or already knows it), [`OVERFLOW_OPERATION`] past it.
    pub fn with_batch<'a, R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&str, Cow<'a, str>) -> Cow<'a, str>) -> R,
    ) -> R {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let max = self.max_per_service;
        let mut admit = |service: &str, operation: Cow<'a, str>| -> Cow<'a, str> {
            let ops = match seen.get_mut(service) {
                Some(ops) => ops,
                None => seen.entry(service.to_owned()).or_default(),
            };
            if ops.contains(operation.as_ref()) {
                operation
            } else if ops.len() < max {
                ops.insert(operation.to_string());
                operation
            } else {
                Cow::Borrowed(OVERFLOW_OPERATION)
            }
        };
        f(&mut admit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &'static str, value: &'static str) -> Attribute<'static> {
        (key, Cow::Borrowed(value))
    }

    #[test]
    fn server_spans_use_method_and_route() {
        let server = SpanKind::Server as i32;
        let current = [
            kv("http.request.method", "get"),
            kv("http.route", "/users/:id"),
        ];
        assert_eq!(operation_name(server, "x", &current), "GET /users/:id");
        let old = [
            kv("http.method", "POST"),
            kv("http.target", "/orders/42?x=1"),
        ];
        assert_eq!(operation_name(server, "x", &old), "POST /orders/{id}");
        let no_method = [kv("http.route", "/a")];
        assert_eq!(operation_name(server, "handler", &no_method), "handler");
        let client = SpanKind::Client as i32;
        assert_eq!(
            operation_name(client, "SELECT users", &current),
            "SELECT users"
        );
    }

    #[test]
    fn cap_folds_new_operations_into_overflow() {
        let limiter = OperationLimiter::new(2);
        let got: Vec<String> = limiter.with_batch(|admit| {
            ["a", "b", "c", "a", "d"]
                .iter()
                .map(|op| admit("svc", Cow::Borrowed(*op)).into_owned())
                .collect()
        });
        assert_eq!(got, ["a", "b", OVERFLOW_OPERATION, "a", OVERFLOW_OPERATION]);
        let other = limiter.with_batch(|admit| admit("other", Cow::Borrowed("c")).into_owned());
        assert_eq!(other, "c");
    }
}
