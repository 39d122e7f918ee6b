//! One endpoint: percentiles and throughput over time, where its time goes (with N+1 flags),
//! and its slowest traces, from the endpoint view of the query API.

use super::format::{ms, percent, rps, time};
use super::{Chrome, Params, serve};
use crate::query::api::QueryApi;
use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use plumb_charts::{Line, time_lines};
use plumb_proto::v1::{EndpointDetailRequest, HeatmapCell, LatencyPoint};

/// Size of the page's charts, pixels.
const CHART: (u32, u32) = (500, 220);
/// Slowest traces listed.
const SLOWEST: u32 = 10;

struct Part {
    kind: String,
    component: String,
    share: String,
    mean: String,
    calls: String,
    n_plus_one: bool,
}

struct Slow {
    trace_id: String,
    href: String,
    duration: String,
    started: String,
    error: bool,
}

#[derive(Template)]
#[template(path = "web/endpoint.html")]
struct Page {
    chrome: Chrome,
    service: String,
    kind: String,
    summary: String,
    percentiles: String,
    throughput: String,
    heatmap: String,
    analysed: u64,
    breakdown: Vec<Part>,
    slowest: Vec<Slow>,
}

fn points(series: &[LatencyPoint], value: fn(&LatencyPoint) -> f64) -> Vec<(i64, f64)> {
    series
        .iter()
        .map(|p| (i64::try_from(p.start_unix_s).unwrap_or(0), value(p)))
        .collect()
}

/// Size of the heatmap, pixels.
const HEATMAP: (u32, u32) = (1020, 260);

/// The heatmap: a row per latency band (slowest at the top), a column per step.
fn heatmap(cells: &[HeatmapCell]) -> String {
    let mut steps: Vec<u64> = cells.iter().map(|c| c.start_unix_s).collect();
    steps.sort_unstable();
    steps.dedup();
    let (Some(low), Some(high)) = (
        cells.iter().map(|c| c.band).min(),
        cells.iter().map(|c| c.band).max(),
    ) else {
        return String::new();
    };
    // A band either side of those with requests, so the grid has room and a scale.
    let (low, high) = (low - 1, high + 1);
    let bands: Vec<i32> = (low..=high).rev().collect();
    let mut grid = vec![vec![0.0; steps.len()]; bands.len()];
    for c in cells {
        let row = usize::try_from(high - c.band).unwrap_or(0);
        if let (Some(line), Ok(column)) = (grid.get_mut(row), steps.binary_search(&c.start_unix_s))
        {
            line[column] += c.requests as f64;
        }
    }
    let band_name = |row: usize| {
        bands
            .get(row)
            .map_or(String::new(), |b| format!("≤{}", ms(2f64.powi(*b))))
    };
    let step_name = |column: usize| {
        steps.get(column).map_or(String::new(), |t| {
            time(*t).get(11..16).unwrap_or("").to_owned()
        })
    };
    plumb_charts::grid(
        HEATMAP,
        "requests per step and latency band",
        &grid,
        8,
        &band_name,
        &step_name,
    )
}

/// `GET /endpoint?service=&operation=&kind=&since=`.
pub(crate) async fn page(
    State(api): State<QueryApi>,
    uri: Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    serve("/endpoint", &uri, &headers, |params: Params| async move {
        let (since, since_seconds) = params.since("1h")?;
        let (service, operation, kind) = (
            params.get("service").to_owned(),
            params.get("operation").to_owned(),
            params.kind(),
        );
        let detail = api
            .endpoint(EndpointDetailRequest {
                service: service.clone(),
                operation: operation.clone(),
                since_seconds,
                kind: kind.clone(),
                exemplars: SLOWEST,
                min_calls_per_request: 0.0,
            })
            .await?;
        let step = detail.step_seconds.max(1) as f64;
        let summary = detail.summary.as_ref().map_or_else(String::new, |e| {
            format!(
                "{} requests/s · {} errors · p50 {} · p95 {} · p99 {} · apdex {:.2}",
                rps(e.rps),
                percent(e.error_percent),
                ms(e.p50_ms),
                ms(e.p95_ms),
                ms(e.p99_ms),
                e.apdex
            )
        });
        let percentiles = time_lines(
            CHART,
            "ms",
            &[
                Line {
                    label: "p50",
                    points: points(&detail.series, |p| p.p50_ms),
                },
                Line {
                    label: "p95",
                    points: points(&detail.series, |p| p.p95_ms),
                },
                Line {
                    label: "p99",
                    points: points(&detail.series, |p| p.p99_ms),
                },
            ],
        );
        let per_second = |count: u64| count as f64 / step;
        let throughput = time_lines(
            CHART,
            "per second",
            &[
                Line {
                    label: "requests",
                    points: detail
                        .series
                        .iter()
                        .map(|p| {
                            (
                                i64::try_from(p.start_unix_s).unwrap_or(0),
                                per_second(p.requests),
                            )
                        })
                        .collect(),
                },
                Line {
                    label: "errors",
                    points: detail
                        .series
                        .iter()
                        .map(|p| {
                            (
                                i64::try_from(p.start_unix_s).unwrap_or(0),
                                per_second(p.errors),
                            )
                        })
                        .collect(),
                },
            ],
        );
        let heatmap = heatmap(&detail.heatmap);
        let breakdown = detail
            .breakdown
            .into_iter()
            .map(|b| Part {
                share: percent(b.time_share_percent),
                mean: ms(b.mean_ms_per_request),
                calls: format!("{:.1}", b.calls_per_request),
                n_plus_one: b.n_plus_one,
                kind: b.r#type,
                component: b.component,
            })
            .collect();
        let slowest = detail
            .slowest
            .into_iter()
            .map(|t| Slow {
                href: format!("/trace/{}", t.trace_id),
                duration: ms(t.duration_ms),
                started: time(t.start_unix_ns / 1_000_000_000),
                error: t.error,
                trace_id: t.trace_id,
            })
            .collect();
        Ok(Page {
            chrome: params.chrome(operation, Some(&since)),
            service,
            kind,
            summary,
            percentiles,
            throughput,
            heatmap,
            analysed: detail.analysed_requests,
            breakdown,
            slowest,
        })
    })
    .await
}
