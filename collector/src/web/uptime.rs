//! Uptime per probe over the window: up or down now, the share of checks that passed, check
//! durations, the last change and certificate days left.

use super::format::{ms, time};
use super::{Chrome, Params, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::UptimeRequest;

/// Certificates with fewer days left are marked.
const CERTIFICATE_WARNING_DAYS: i32 = 14;

struct Row {
    probe: String,
    up: bool,
    uptime: String,
    checks: u64,
    failures: u64,
    p50: String,
    p95: String,
    last_change: String,
    certificate: String,
    cert_soon: bool,
}

#[derive(Template)]
#[template(path = "web/uptime.html")]
struct Page {
    chrome: Chrome,
    rows: Vec<Row>,
}

/// `GET /uptime?since=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/uptime", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("24h")?;
        let answer = api.uptime(UptimeRequest { since_seconds }).await?;
        let rows = answer
            .probes
            .into_iter()
            .map(|p| Row {
                up: p.up,
                uptime: format!("{:.3}%", p.uptime_percent),
                checks: p.checks,
                failures: p.failures,
                p50: ms(p.p50_ms),
                p95: ms(p.p95_ms),
                last_change: if p.last_change_unix_s == 0 {
                    "–".into()
                } else {
                    format!("{} UTC ({})", time(p.last_change_unix_s), p.last_change)
                },
                certificate: if p.certificate_days_left < 0 {
                    "–".into()
                } else {
                    p.certificate_days_left.to_string()
                },
                cert_soon: (0..CERTIFICATE_WARNING_DAYS).contains(&p.certificate_days_left),
                probe: p.probe,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome("Uptime".into(), Some(&since)),
            rows,
        })
    })
    .await
}
