//! Operation naming and the per-service operation cap.
//!
//! In: a span's kind, name and attributes. Out: the operation it is aggregated under. SERVER
//! spans with an HTTP method become `METHOD route`, from the current semantic conventions
//! (`http.request.method`, `http.route`, `url.path`) or the older ones (`http.method`,
//! `http.target`); raw paths are templated. Everything else keeps its span name.
//! [`NameLimiter`] folds operations past a per-service cap into [`OVERFLOW_OPERATION`].

use super::route::template_path;
use crate::model::{Attribute, Named, SpanKind, find_text};
use hashbrown::{Equivalent, HashMap, HashSet};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

/// The operation that spans past a service's operation cap are counted under.
pub(crate) const OVERFLOW_OPERATION: &str = "[overflow]";

/// The operation name for a span.
pub(crate) fn operation_name<'a>(
    kind: SpanKind,
    span_name: &'a str,
    attributes: &[Attribute<'a>],
) -> Cow<'a, str> {
    if kind != SpanKind::Server {
        return Cow::Borrowed(span_name);
    }
    let text = |key: &str| find_text(attributes, key);
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
    // Instrumentations name a server span `{METHOD} {route}` already: then the name is the
    // operation, with nothing to build.
    if let Some((name_method, name_route)) = span_name.split_once(' ')
        && name_route == route
        && name_method.len() == method.len()
        && name_method
            .bytes()
            .zip(method.bytes())
            .all(|(n, m)| n == m.to_ascii_uppercase())
    {
        return Cow::Borrowed(span_name);
    }
    let mut operation = String::with_capacity(method.len() + 1 + route.len());
    operation.extend(method.chars().map(|c| c.to_ascii_uppercase()));
    operation.push(' ');
    operation.push_str(&route);
    Cow::Owned(operation)
}

/// Caps and interns the names remembered per service (operations, or trace components).
///
/// Each (service, name) pair is one shared [`Named`], so every span of one operation points at
/// one allocation and a lookup allocates nothing once a name is known. Known names are looked up
/// under a read lock that several receivers hold at once; only a name seen for the first time
/// takes the write lock.
#[derive(Debug)]
pub(crate) struct NameLimiter {
    max_per_service: usize,
    overflow: Arc<str>,
    seen: RwLock<Seen>,
}

/// The names admitted so far.
#[derive(Debug, Default)]
struct Seen {
    /// Every pair admitted, found by its two strings in one lookup.
    pairs: HashSet<Arc<Named>>,
    /// Each service's count of names and its overflow pair.
    services: HashMap<Arc<str>, ServiceNames>,
}

#[derive(Debug)]
struct ServiceNames {
    /// Names admitted for the service.
    names: usize,
    /// The service with [`OVERFLOW_OPERATION`].
    overflow: Arc<Named>,
}

/// A service and name to look up among the interned pairs (hashed as [`Named`] is).
struct Pair<'a> {
    service: &'a str,
    name: &'a str,
}

impl Hash for Pair<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(Named::text_hash(self.service, self.name));
    }
}

impl Equivalent<Arc<Named>> for Pair<'_> {
    fn equivalent(&self, key: &Arc<Named>) -> bool {
        *key.service == *self.service && *key.name == *self.name
    }
}

impl Seen {
    /// What the names known so far say about `name` of `service`: its interned pair, the
    /// overflow pair when the service is full, or `None` when it must be added.
    fn known(&self, service: &str, name: &str, max: usize) -> Option<Arc<Named>> {
        if let Some(known) = self.pairs.get(&Pair { service, name }) {
            return Some(Arc::clone(known));
        }
        let entry = self.services.get(service)?;
        (entry.names >= max).then(|| Arc::clone(&entry.overflow))
    }

    /// Adds `name` of `service`, which is not known and fits under the cap.
    fn add(&mut self, service: &str, name: &str, overflow: &Arc<str>) -> Arc<Named> {
        if !self.services.contains_key(service) {
            let service: Arc<str> = Arc::from(service);
            let overflow = Arc::new(Named::from_parts(
                Arc::clone(&service),
                Arc::clone(overflow),
            ));
            self.services
                .insert(service, ServiceNames { names: 0, overflow });
        }
        let Some(entry) = self.services.get_mut(service) else {
            unreachable!("inserted above")
        };
        entry.names += 1;
        let new = Arc::new(Named::from_parts(
            Arc::clone(&entry.overflow.service),
            Arc::from(name),
        ));
        self.pairs.insert(Arc::clone(&new));
        new
    }
}

impl NameLimiter {
    /// A limiter that keeps at most `max_per_service` names for each service.
    pub(crate) fn new(max_per_service: usize) -> Self {
        Self {
            max_per_service,
            overflow: Arc::from(OVERFLOW_OPERATION),
            seen: RwLock::default(),
        }
    }

    /// Runs `f` with an admission function; the read lock is taken once for a whole batch (and
    /// let go only to add a name seen for the first time), so `f` must not wait for anything
    /// that holds this limiter while it calls the function.
    ///
    /// The admission function returns the interned service and name to use: the given name while
    /// the service is under its cap (or already knows it), [`OVERFLOW_OPERATION`] past it.
    pub(crate) fn with_batch<R>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&str, &str) -> Arc<Named>) -> R,
    ) -> R {
        let max = self.max_per_service;
        let mut read = Some(self.seen.read().unwrap_or_else(PoisonError::into_inner));
        let mut admit = |service: &str, name: &str| -> Arc<Named> {
            if let Some(interned) = read
                .as_ref()
                .and_then(|seen| seen.known(service, name, max))
            {
                return interned;
            }
            // First sighting: let go of the read lock, add it under the write lock, read on.
            drop(read.take());
            let interned = {
                let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
                match seen.known(service, name, max) {
                    Some(interned) => interned,
                    None => seen.add(service, name, &self.overflow),
                }
            };
            read = Some(self.seen.read().unwrap_or_else(PoisonError::into_inner));
            interned
        };
        f(&mut admit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &'static str, value: &'static str) -> Attribute<'static> {
        (key, value)
    }

    #[test]
    fn server_spans_use_method_and_route() {
        let server = SpanKind::Server;
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
        // A name that already says it is kept as it is; one that differs in anything is not.
        for (name, borrowed) in [
            ("GET /users/:id", true),
            ("get /users/:id", false),
            ("GET /users/:id/", false),
            ("GETS /users/:id", false),
            ("GET", false),
        ] {
            let operation = operation_name(server, name, &current);
            assert_eq!(operation, "GET /users/:id", "{name}");
            assert_eq!(matches!(operation, Cow::Borrowed(_)), borrowed, "{name}");
        }
        let no_method = [kv("http.route", "/a")];
        assert_eq!(operation_name(server, "handler", &no_method), "handler");
        let client = SpanKind::Client;
        assert_eq!(
            operation_name(client, "SELECT users", &current),
            "SELECT users"
        );
    }

    #[test]
    fn cap_folds_new_operations_into_overflow() {
        let limiter = NameLimiter::new(2);
        let got: Vec<Arc<Named>> = limiter.with_batch(|admit| {
            ["a", "b", "c", "a", "d"]
                .iter()
                .map(|op| admit("svc", op))
                .collect()
        });
        let names: Vec<&str> = got.iter().map(|n| &*n.name).collect();
        assert_eq!(
            names,
            ["a", "b", OVERFLOW_OPERATION, "a", OVERFLOW_OPERATION]
        );
        assert!(Arc::ptr_eq(&got[0], &got[3]), "pairs are interned");
        assert!(
            Arc::ptr_eq(&got[0].service, &got[4].service),
            "services are interned"
        );
        let other = limiter.with_batch(|admit| admit("other", "c"));
        assert_eq!(&*other.name, "c");
    }
}
