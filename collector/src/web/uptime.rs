//! Uptime per probe over the window: up or down now, the share of checks that passed, check
//! durations, the last change and certificate days left; per probe and location a bar of the
//! last 90 days; the incidents (firing and resolved probe alerts) of the last week.

use super::format::{ms, time};
use super::{Chrome, Params, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::{AlertsRequest, DayUptime, UptimeRequest};

/// Incidents listed: this far back, seconds.
const INCIDENTS_S: u64 = 7 * 86_400;
/// Days in the bar.
const DAYS: u64 = 90;

/// The bar of the last [`DAYS`] days ending today (UTC), oldest first; days without checks
/// grey.
pub(crate) fn day_bars(days: &[DayUptime]) -> String {
    let today = u64::from(crate::clock::now_unix_s()) / 86_400 * 86_400;
    let first = today.saturating_sub((DAYS - 1) * 86_400);
    let cells: Vec<Option<f64>> = (0..DAYS)
        .map(|i| {
            let day = first + i * 86_400;
            days.iter()
                .find(|d| d.day_unix_s == day && d.checks > 0)
                .map(|d| d.uptime_percent)
        })
        .collect();
    plumb_charts::uptime_bars(&cells)
}

struct Bar {
    probe: String,
    location: String,
    bars: String,
}

struct Window {
    schedule: String,
    duration: String,
    timezone: String,
    matchers: String,
    open: bool,
}

struct Incident {
    time: String,
    probe: String,
    change: String,
    detail: String,
}

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
    bars: Vec<Bar>,
    incidents: Vec<Incident>,
    maintenance: Vec<Window>,
}

/// `GET /uptime?since=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/uptime", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("24h")?;
        let answer = api.clone().uptime(UptimeRequest { since_seconds }).await?;
        let alerts = api
            .alerts(AlertsRequest {
                state: String::new(),
                history_seconds: INCIDENTS_S,
            })
            .await?;
        let maintenance = alerts
            .maintenance
            .into_iter()
            .map(|m| Window {
                duration: humantime::format_duration(std::time::Duration::from_secs(
                    m.duration_seconds,
                ))
                .to_string(),
                matchers: if m.matchers.is_empty() {
                    "every alert".into()
                } else {
                    m.matchers.join(", ")
                },
                schedule: m.schedule,
                timezone: m.timezone,
                open: m.open,
            })
            .collect();
        let history = alerts.history;
        let bars = answer
            .daily
            .iter()
            .map(|l| Bar {
                probe: l.probe.clone(),
                location: l.location.clone(),
                bars: day_bars(&l.days),
            })
            .collect();
        let incidents = history
            .into_iter()
            .filter(|e| answer.probes.iter().any(|p| p.probe == e.name))
            .filter(|e| e.to_state == "firing" || e.to_state == "resolved")
            .map(|e| Incident {
                time: time(e.time_unix_s),
                change: if e.to_state == "firing" {
                    "went down".into()
                } else {
                    "came back".into()
                },
                probe: e.name,
                detail: e.detail,
            })
            .collect();
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
            bars,
            incidents,
            maintenance,
        })
    })
    .await
}
