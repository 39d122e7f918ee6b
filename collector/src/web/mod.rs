//! Plumb's web pages, on the query port next to the API: services, endpoints, one endpoint, a
//! trace, regressions, uptime, alerts, capacity, the optional public status page, and what is
//! not built yet (SLOs) said as such.
//!
//! Each page asks the query API ([`QueryApi`]) exactly what the JSON API answers for the same
//! window and renders it on the server with compile-time-checked templates (askama, which
//! escapes every value: service names, routes and statements come from spans anyone can send).
//! Charts are SVG drawn by `plumb-charts`, the code the capacity report draws with, from
//! numbers only. The one script (an opt-in refresh) and the stylesheet are files embedded in the
//! binary ([`assets`]); every page works with links and forms alone. The time range, service and
//! kind live in the URL, so a link shows the same view. Every answer carries a content security
//! policy without inline script or style, `X-Content-Type-Options: nosniff` and
//! `frame-ancestors 'none'`.

mod alerts;
mod assets;
mod capacity;
mod csrf;
mod endpoint;
mod endpoints;
mod format;
mod regressions;
mod services;
mod session;
mod status;
mod trace;
mod uptime;

use crate::query::QueryError;
use crate::query::api::QueryApi;
use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use std::collections::BTreeMap;

/// The pages in the navigation bar, by path.
const NAV: [(&str, &str); 7] = [
    ("/", "Services"),
    ("/endpoints", "Endpoints"),
    ("/regressions", "Regressions"),
    ("/uptime", "Uptime"),
    ("/alerts", "Alerts"),
    ("/slos", "SLOs"),
    ("/capacity", "Capacity"),
];
/// The time ranges offered above a page that has one.
const RANGES: [&str; 5] = ["15m", "1h", "6h", "24h", "7d"];
/// Span kinds a page can filter by.
const KINDS: [&str; 5] = ["server", "client", "consumer", "producer", "internal"];
/// The policy every page is served with: scripts and styles from this origin only (no inline
/// ones), images from this origin, forms back to it, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A link on a page.
#[derive(Debug)]
pub(crate) struct Link {
    href: String,
    name: String,
    here: bool,
}

/// What every page shows around its content: title, navigation, time ranges, assets.
#[derive(Debug)]
pub(crate) struct Chrome {
    title: String,
    signed_in: bool,
    /// The page's path and its parameters other than `since` (the custom range form keeps them).
    path: &'static str,
    keep: Vec<(String, String)>,
    nav: Vec<Link>,
    ranges: Vec<Link>,
    css: &'static str,
    js: &'static str,
    version: &'static str,
}

/// A page's URL query: its parameters, and the path they came with.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    path: &'static str,
    values: BTreeMap<String, String>,
    /// Whether the browser holds a sign-in cookie (the page then offers to sign out).
    signed_in: bool,
}

impl Params {
    fn new(
        path: &'static str,
        query: Option<&str>,
        headers: &axum::http::HeaderMap,
    ) -> Result<Self, QueryError> {
        let values = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| QueryError::InvalidArgument(format!("bad query parameters: {e}")))?;
        Ok(Self {
            path,
            values,
            signed_in: session::cookie_token(headers).is_some(),
        })
    }

    /// A parameter, or "".
    pub(crate) fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// `since` (or `default`) as words and as seconds.
    pub(crate) fn since(&self, default: &'static str) -> Result<(String, u64), QueryError> {
        let words = match self.get("since") {
            "" => default,
            w => w,
        };
        let seconds = humantime::parse_duration(words)
            .map_err(|e| {
                QueryError::InvalidArgument(format!(
                    "invalid since {words:?}: {e} (examples: 15m, 1h, 7d)"
                ))
            })?
            .as_secs()
            .max(1);
        Ok((words.to_owned(), seconds))
    }

    /// `kind`, or `server`.
    pub(crate) fn kind(&self) -> String {
        match self.get("kind") {
            "" => "server".into(),
            k => k.to_owned(),
        }
    }

    /// This page's URL with `key` set to `value` (the other parameters kept).
    pub(crate) fn with(&self, key: &str, value: &str) -> String {
        let mut values = self.values.clone();
        values.insert(key.to_owned(), value.to_owned());
        link(self.path, &values.iter().collect::<Vec<_>>())
    }

    /// The chrome of a page titled `title`, with time ranges when `ranges` (the current one
    /// marked: `since`).
    pub(crate) fn chrome(&self, title: String, ranges: Option<&str>) -> Chrome {
        Chrome {
            title,
            signed_in: self.signed_in,
            path: self.path,
            keep: self
                .values
                .iter()
                .filter(|(k, _)| k.as_str() != "since")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            nav: NAV
                .iter()
                .map(|(href, name)| Link {
                    href: (*href).to_owned(),
                    name: (*name).to_owned(),
                    here: *href == self.path
                        || (self.path == "/endpoint" && *href == "/endpoints")
                        || (self.path == "/trace" && *href == "/endpoints"),
                })
                .collect(),
            ranges: ranges.map_or_else(Vec::new, |since| {
                RANGES
                    .iter()
                    .map(|r| Link {
                        href: self.with("since", r),
                        name: (*r).to_owned(),
                        here: *r == since,
                    })
                    .collect()
            }),
            css: assets::css_path(),
            js: assets::js_path(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The value of the request's cookie `name`, if it sent one.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// `path?k=v&...`, the values encoded.
pub(crate) fn link<K: AsRef<str>, V: AsRef<str>>(path: &str, pairs: &[(K, V)]) -> String {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    match serde_urlencoded::to_string(&pairs) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// A page that says something in words: why a page cannot be shown, or what is not built.
#[derive(Template)]
#[template(path = "web/missing.html")]
struct Notice {
    chrome: Chrome,
    what: String,
}

/// Parses the URL query of `path`, builds the page with `build` and renders it; a bad query
/// or a failed question becomes the notice page with the status the API gives it.
pub(crate) async fn serve<T, F, Fut>(
    path: &'static str,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    build: F,
) -> Response
where
    T: Template,
    F: FnOnce(Params) -> Fut,
    Fut: std::future::Future<Output = Result<T, QueryError>>,
{
    let (params, page) = match Params::new(path, uri.query(), headers) {
        Ok(params) => (params.clone(), build(params).await),
        Err(e) => (
            Params {
                path,
                values: BTreeMap::new(),
                signed_in: false,
            },
            Err(e),
        ),
    };
    let (status, body) = match page {
        Ok(page) => (StatusCode::OK, page.render()),
        Err(e) => {
            let status = e.http_status();
            let notice = Notice {
                chrome: params.chrome("Cannot show this page".into(), None),
                what: e.to_string(),
            };
            (status, notice.render())
        }
    };
    match body {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render\n",
            )
                .into_response()
        }
    }
}

async fn slos(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    serve("/slos", &uri, &headers, |params| async move {
        Ok(Notice {
            chrome: params.chrome("SLOs".into(), None),
            what: "Not built yet: Plumb has no SLO definitions, so there is no error budget or \
                   burn rate to show. Latency and error figures per endpoint are on the \
                   Endpoints page; alert rules on error rates and latency are on the Alerts page."
                .into(),
        })
    })
    .await
}

/// Adds the security headers to every page and file.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// What the pages expose beyond the query port's own rules.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Exposure {
    /// The port serves TLS: cookies are `Secure`.
    pub(crate) secure: bool,
    /// `/status` is served, and to anyone (`--public-status-page`).
    pub(crate) public_status_page: bool,
}

/// The pages' routes, reading through `api`; with `tokens`, behind the sign-in (all but the
/// public status page when `exposure` has it).
pub(crate) fn router(
    api: QueryApi,
    tokens: std::sync::Arc<plumb_otlp::auth::Tokens>,
    exposure: Exposure,
) -> Router {
    let session = session::Session {
        tokens,
        secure: exposure.secure,
        public_status_page: exposure.public_status_page,
    };
    let status = if exposure.public_status_page {
        Router::new()
            .route("/status", get(status::page))
            .with_state(api.clone())
    } else {
        Router::new().route(
            "/status",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "the status page is off: start the collector with --public-status-page\n",
                )
            }),
        )
    };
    let alerting = Router::new()
        .route("/alerts", get(alerts::page))
        .route("/alerts/silences", axum::routing::post(alerts::add))
        .route(
            "/alerts/silences/{id}/expire",
            axum::routing::post(alerts::expire),
        )
        .with_state(alerts::AlertsState {
            api: api.clone(),
            secure: session.secure,
        });
    let sign_in = Router::new()
        .route("/login", get(session::form).post(session::sign_in))
        .route("/logout", axum::routing::post(session::sign_out))
        .with_state(session.clone());
    Router::new()
        .route("/", get(services::page))
        .route("/endpoints", get(endpoints::page))
        .route("/endpoint", get(endpoint::page))
        .route("/trace/{trace_id}", get(trace::page))
        .route("/regressions", get(regressions::page))
        .route("/uptime", get(uptime::page))
        .route("/slos", get(slos))
        .route("/capacity", get(capacity::page))
        .route("/static/{hash}/{name}", get(assets::serve))
        .with_state(api)
        .merge(alerting)
        .merge(sign_in)
        .merge(status)
        .layer(axum::middleware::from_fn_with_state(
            session,
            session::require,
        ))
        .layer(axum::middleware::from_fn(headers))
}
