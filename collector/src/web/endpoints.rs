//! The endpoints page: the `plumb top` ranking, sortable by each figure, filtered by service and
//! kind.

use super::format::{ms, percent, rps, score};
use super::{Chrome, KINDS, Link, link, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::TopEndpointsRequest;

/// Rows shown at most.
const LIMIT: u32 = 200;
/// Sortable columns: the API's sort key and the heading.
const COLUMNS: [(&str, &str); 6] = [
    ("rps", "requests/s"),
    ("errors", "errors"),
    ("p50", "p50"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("time", "time share"),
];

struct Row {
    service: String,
    service_href: String,
    operation: String,
    href: String,
    kind: String,
    rps: String,
    error_percent: String,
    error_bad: bool,
    p50: String,
    p95: String,
    p99: String,
    time_share: String,
    apdex: String,
}

#[derive(Template)]
#[template(path = "web/endpoints.html")]
struct Page {
    chrome: Chrome,
    since: String,
    sort: String,
    service: String,
    kind: String,
    kinds: [&'static str; 5],
    columns: Vec<Link>,
    rows: Vec<Row>,
}

/// `GET /endpoints?since=&service=&kind=&sort=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/endpoints", &uri, &headers, |params| async move {
        let (since, since_seconds) = params.since("1h")?;
        let sort = match params.get("sort") {
            "" => "p99".to_owned(),
            s => s.to_owned(),
        };
        let (service, kind) = (params.get("service").to_owned(), params.kind());
        let top = api
            .top(TopEndpointsRequest {
                since_seconds,
                service: service.clone(),
                by: sort.clone(),
                limit: LIMIT,
                kind: kind.clone(),
            })
            .await?;
        let rows = top
            .endpoints
            .into_iter()
            .map(|e| Row {
                service_href: link("/endpoints", &[("since", &since), ("service", &e.service)]),
                href: link(
                    "/endpoint",
                    &[
                        ("service", e.service.as_str()),
                        ("operation", &e.operation),
                        ("kind", &e.kind),
                        ("since", &since),
                    ],
                ),
                rps: rps(e.rps),
                error_percent: percent(e.error_percent),
                error_bad: e.error_percent >= 1.0,
                p50: ms(e.p50_ms),
                p95: ms(e.p95_ms),
                p99: ms(e.p99_ms),
                time_share: percent(e.time_share_percent),
                apdex: score(e.apdex),
                service: e.service,
                operation: e.operation,
                kind: e.kind,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome("Endpoints".into(), Some(&since)),
            columns: COLUMNS
                .iter()
                .map(|(key, name)| Link {
                    href: params.with("sort", key),
                    name: (*name).to_owned(),
                    here: *key == sort,
                })
                .collect(),
            kinds: KINDS,
            since,
            sort,
            service,
            kind,
            rows,
        })
    })
    .await
}
