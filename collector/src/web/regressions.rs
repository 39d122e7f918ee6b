//! Regressions: endpoints slower or failing more often than in the baseline window before.

use super::format::{ms, percent};
use super::{Chrome, Params, link, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_proto::v1::RegressionsRequest;

struct Row {
    service: String,
    operation: String,
    href: String,
    reasons: String,
    p95: String,
    p99: String,
    errors: String,
    extra: String,
}

#[derive(Template)]
#[template(path = "web/regressions.html")]
struct Page {
    chrome: Chrome,
    summary: String,
    rows: Vec<Row>,
}

/// `GET /regressions?since=&baseline=&service=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/regressions", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("1h")?;
        let baseline_seconds = match params.get("baseline") {
            "" => 0,
            words => humantime::parse_duration(words)
                .map_err(|e| {
                    crate::query::QueryError::InvalidArgument(format!(
                        "invalid baseline {words:?}: {e}"
                    ))
                })?
                .as_secs()
                .max(1),
        };
        let answer = api
            .regressions(RegressionsRequest {
                since_seconds,
                baseline_seconds,
                service: params.get("service").to_owned(),
                min_requests: 0,
                min_change_percent: 0.0,
            })
            .await?;
        let summary = format!(
            "The last {} against the {} before it: {} endpoints compared, {} with too few requests to judge.",
            humantime::format_duration(std::time::Duration::from_secs(answer.window_seconds)),
            humantime::format_duration(std::time::Duration::from_secs(answer.baseline_seconds)),
            answer.endpoints_compared,
            answer.endpoints_skipped
        );
        let rows = answer
            .regressions
            .into_iter()
            .map(|r| Row {
                href: link(
                    "/endpoint",
                    &[
                        ("service", r.service.as_str()),
                        ("operation", &r.operation),
                        ("since", &since),
                    ],
                ),
                reasons: r.reasons.join("; "),
                p95: format!("{} → {}", ms(r.p95_before_ms), ms(r.p95_after_ms)),
                p99: format!("{} → {}", ms(r.p99_before_ms), ms(r.p99_after_ms)),
                errors: format!(
                    "{} → {}",
                    percent(r.error_percent_before),
                    percent(r.error_percent_after)
                ),
                extra: format!("{:.1}", r.extra_seconds_per_hour),
                service: r.service,
                operation: r.operation,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome("Regressions".into(), Some(&since)),
            summary,
            rows,
        })
    })
    .await
}
