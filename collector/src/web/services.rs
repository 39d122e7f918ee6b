//! The services overview: per service requests per second, errors, p50/p95/p99 and apdex, each
//! with a sparkline over the window.

use super::format::{ms, percent, rps, score};
use super::{Chrome, KINDS, Params, link, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::{ServicePoint, ServicesRequest};

struct Row {
    service: String,
    href: String,
    rps: String,
    rps_line: String,
    error_percent: String,
    error_bad: bool,
    error_line: String,
    p50: String,
    p95: String,
    p99: String,
    p99_line: String,
    apdex: String,
    apdex_line: String,
}

#[derive(Template)]
#[template(path = "web/services.html")]
struct Page {
    chrome: Chrome,
    since: String,
    kind: String,
    kinds: [&'static str; 5],
    rows: Vec<Row>,
}

fn line(points: &[ServicePoint], value: fn(&ServicePoint) -> f64) -> String {
    plumb_charts::sparkline(&points.iter().map(value).collect::<Vec<_>>())
}

/// `GET /?since=&kind=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("1h")?;
        let kind = params.kind();
        let answer = api
            .services(ServicesRequest {
                since_seconds,
                kind: kind.clone(),
            })
            .await?;
        let rows = answer
            .services
            .into_iter()
            .map(|s| Row {
                href: link(
                    "/endpoints",
                    &[
                        ("service", s.service.as_str()),
                        ("since", &since),
                        ("kind", &kind),
                    ],
                ),
                rps: rps(s.rps),
                rps_line: line(&s.series, |p| p.rps),
                error_percent: percent(s.error_percent),
                error_bad: s.error_percent >= 1.0,
                error_line: line(&s.series, |p| p.error_percent),
                p50: ms(s.p50_ms),
                p95: ms(s.p95_ms),
                p99: ms(s.p99_ms),
                p99_line: line(&s.series, |p| p.p99_ms),
                apdex: score(s.apdex),
                apdex_line: line(&s.series, |p| p.apdex),
                service: s.service,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome("Services".into(), Some(&since)),
            kinds: KINDS,
            since,
            kind,
            rows,
        })
    })
    .await
}
