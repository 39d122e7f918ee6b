//! The capacity page: the capacity report's figures per service and per host resource in two
//! tables (its JSON, read as the API gives it), with links to the whole report as HTML,
//! Markdown or JSON.

use super::format::{percent, rps};
use super::{Chrome, Link, Params, link, serve};
use crate::query::QueryError;
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use plumb_proto::v1::CapacityReportRequest;
use serde_json::Value;

struct ServiceRow {
    service: String,
    typical: String,
    peak: String,
    max: String,
    extrapolated: bool,
    knee_headroom: String,
    growth: String,
    reaches_max: String,
}

struct ResourceRow {
    host: String,
    name: String,
    current: String,
    limit: String,
    earliest: String,
    likely: String,
    latest: String,
}

#[derive(Template)]
#[template(path = "web/capacity.html")]
struct Page {
    chrome: Chrome,
    formats: Vec<Link>,
    services: Vec<ServiceRow>,
    resources: Vec<ResourceRow>,
    refused: Vec<String>,
    empty: String,
}

fn number(v: &Value, format: fn(f64) -> String) -> String {
    v.as_f64().map_or_else(|| "–".to_owned(), format)
}

fn date(v: &Value) -> String {
    v.as_str().unwrap_or("not within the horizon").to_owned()
}

/// `GET /capacity?since=&horizon=`.
pub(crate) async fn page(State(api): State<QueryApi>, uri: Uri, headers: HeaderMap) -> Response {
    serve("/capacity", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("30d")?;
        let horizon = match params.get("horizon") {
            "" => "90d".to_owned(),
            h => h.to_owned(),
        };
        let horizon_seconds = humantime::parse_duration(&horizon)
            .map_err(|e| QueryError::InvalidArgument(format!("invalid horizon {horizon:?}: {e}")))?
            .as_secs()
            .max(1);
        let asked = api
            .capacity(CapacityReportRequest {
                since_seconds,
                horizon_seconds,
                format: "json".into(),
                ..CapacityReportRequest::default()
            })
            .await;
        // Nothing stored yet is an answer, not a failure: the page says so.
        let (report, empty) = match asked {
            Ok(answer) => (
                serde_json::from_str::<Value>(&answer.document)
                    .map_err(|e| QueryError::Internal(format!("the report is not JSON: {e}")))?,
                String::new(),
            ),
            Err(QueryError::NotFound(why)) => (
                Value::Null,
                format!("No report yet: {why}. The report reads whole hours, up to the last one."),
            ),
            Err(e) => return Err(e),
        };
        let list = |key: &str| report[key].as_array().cloned().unwrap_or_default();
        let services = list("services")
            .iter()
            .map(|s| ServiceRow {
                service: s["service"].as_str().unwrap_or_default().to_owned(),
                typical: number(&s["typical_rps"], rps),
                peak: number(&s["peak_rps"], rps),
                max: number(&s["scalability"]["max_rps"], rps),
                extrapolated: s["scalability"]["extrapolated"].as_bool().unwrap_or(false),
                knee_headroom: number(&s["headroom_rps"]["knee"], rps),
                growth: number(&s["growth_percent_per_week"], percent),
                reaches_max: date(&s["max_rps_crossing"]["likely"]),
            })
            .collect();
        let resources = list("hosts")
            .iter()
            .flat_map(|h| {
                let host = h["host"].as_str().unwrap_or_default().to_owned();
                h["resources"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |r| ResourceRow {
                        host: host.clone(),
                        name: r["name"].as_str().unwrap_or_default().to_owned(),
                        current: number(&r["current"], |v| percent(100.0 * v)),
                        limit: number(&r["limit"], |v| percent(100.0 * v)),
                        earliest: date(&r["crossing"]["earliest"]),
                        likely: date(&r["crossing"]["likely"]),
                        latest: date(&r["crossing"]["latest"]),
                    })
            })
            .collect();
        let refused = list("refused")
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r["subject"].as_str().unwrap_or_default(),
                    r["reason"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let formats = [("html", "HTML"), ("md", "Markdown"), ("json", "JSON")]
            .into_iter()
            .map(|(format, name)| Link {
                href: link(
                    "/api/v1/report/capacity",
                    &[
                        ("since", since.as_str()),
                        ("horizon", &horizon),
                        ("format", format),
                    ],
                ),
                name: name.to_owned(),
                here: false,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome("Capacity".into(), None),
            formats,
            services,
            resources,
            refused,
            empty,
        })
    })
    .await
}
