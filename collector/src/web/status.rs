//! The public status page (`--public-status-page`): per probe, up or down now, uptime over 90
//! days and a bar of each day, and nothing else: no spans, endpoints, alerts or links to the
//! other pages. Probe names come from the alerting file, not from spans.

use super::format::percent;
use super::uptime::day_bars;
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use plumb_proto::v1::UptimeRequest;

/// The window of the uptime figure, seconds (90 days).
const WINDOW_S: u64 = 90 * 86_400;

struct Row {
    probe: String,
    location: String,
    up: bool,
    uptime: String,
    bars: String,
}

#[derive(Template)]
#[template(path = "web/status.html")]
struct Page {
    css: &'static str,
    all_up: bool,
    rows: Vec<Row>,
}

/// `GET /status`.
pub(crate) async fn page(State(api): State<QueryApi>) -> Response {
    let answer = match api
        .uptime(UptimeRequest {
            since_seconds: WINDOW_S,
        })
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "the status page could not read the probes");
            return (StatusCode::SERVICE_UNAVAILABLE, "status unavailable\n").into_response();
        }
    };
    let rows: Vec<Row> = answer
        .daily
        .iter()
        .map(|l| {
            let probe = answer.probes.iter().find(|p| p.probe == l.probe);
            let (checks, failures) = l
                .days
                .iter()
                .fold((0, 0), |(c, f), d| (c + d.checks, f + d.failures));
            Row {
                up: probe.is_some_and(|p| p.up),
                uptime: if checks == 0 {
                    "–".into()
                } else {
                    percent(100.0 * (checks - failures.min(checks)) as f64 / checks as f64)
                },
                bars: day_bars(&l.days),
                probe: l.probe.clone(),
                location: l.location.clone(),
            }
        })
        .collect();
    let page = Page {
        css: super::assets::css_path(),
        all_up: rows.iter().all(|r| r.up),
        rows,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page failed to render\n",
        )
            .into_response(),
    }
}
