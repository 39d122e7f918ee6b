//! The services overview: per service its requests, requests per second, errors, p50/p95/p99
//! and apdex over a window, with the same figures per time step for sparklines, from the merged
//! histograms the ranking reads (the same SQL, grouped by service instead of by endpoint).
//!
//! Requests per second are over the part of the window that holds data, as the ranking counts
//! it ([`covered_seconds`]), so a collector started ten minutes ago does not show a sixth of
//! the real rate over an hour.

use super::QueryError;
use super::endpoint::step_for;
use super::top::{
    LatencyFigures, TopQuery, apdex_of, bind_filter, covered_seconds, ms, percentile_sql,
    source_for, span_kind, window_seconds,
};
use crate::model::ApdexThresholds;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{ServicePoint, ServiceStats, ServicesRequest, ServicesResponse};
use serde::Deserialize;

/// Default window of the overview.
const DEFAULT_WINDOW_S: u64 = 3600;

#[derive(Debug, Row, Deserialize)]
struct ServiceRow {
    service: String,
    figures: LatencyFigures,
}

#[derive(Debug, Row, Deserialize)]
struct ServiceStepRow {
    service: String,
    t: u64,
    figures: LatencyFigures,
}

/// The figures per service over the window of `filter` (ending at `now`), and, with a step,
/// per service and step of `step_s` (`t` after `service`); every value bound.
pub(crate) fn services_query(
    store: &Store,
    thresholds: &ApdexThresholds,
    filter: &TopQuery,
    window_s: u64,
    now: u64,
    step_s: Option<u64>,
) -> clickhouse::query::Query {
    let source = source_for(window_s);
    let bucket = format!("intDiv(toUInt32({}), ?) * ?", source.time);
    let query = match step_s {
        None => store.client().query(&format!(
            "{} ORDER BY service",
            percentile_sql(source, &[("service", "service")], filter, thresholds)
        )),
        Some(step_s) => store
            .client()
            .query(&format!(
                "{} ORDER BY service, t",
                percentile_sql(
                    source,
                    &[("service", "service"), (&bucket, "t")],
                    filter,
                    thresholds,
                )
            ))
            .bind(step_s)
            .bind(step_s),
    };
    bind_filter(
        thresholds.bind(query, filter),
        now.saturating_sub(window_s),
        now + 60,
        filter,
    )
}

/// Requests, errors and latency per service (of `kind`) over `window_s` and per step.
pub(crate) async fn services(
    store: &Store,
    thresholds: &ApdexThresholds,
    request: ServicesRequest,
    now_unix_s: u32,
) -> Result<ServicesResponse, QueryError> {
    let window_s = window_seconds(request.since_seconds, DEFAULT_WINDOW_S)?;
    let kind = span_kind(&request.kind, false)?;
    let filter = TopQuery::service_wide(window_s, String::new(), kind);
    let step_s = step_for(window_s, source_for(window_s).step_s);
    let now = u64::from(now_unix_s);
    let (totals, steps, covered_s) = tokio::try_join!(
        async {
            services_query(store, thresholds, &filter, window_s, now, None)
                .fetch_all::<ServiceRow>()
                .await
                .map_err(|e| QueryError::from(StoreError::clickhouse("read services")(e)))
        },
        async {
            services_query(store, thresholds, &filter, window_s, now, Some(step_s))
                .fetch_all::<ServiceStepRow>()
                .await
                .map_err(|e| QueryError::from(StoreError::clickhouse("read service steps")(e)))
        },
        covered_seconds(store, &filter, now_unix_s),
    )?;
    let services = totals
        .into_iter()
        .filter(|r| r.figures.req_total > 0)
        .map(|r| {
            let series = steps
                .iter()
                .filter(|s| s.service == r.service)
                .map(|s| point(s.t, &s.figures, step_s))
                .collect();
            ServiceStats {
                requests: r.figures.req_total,
                rps: r.figures.req_total as f64 / covered_s as f64,
                errors: r.figures.err_total,
                error_percent: percent(r.figures.err_total, r.figures.req_total),
                p50_ms: ms(r.figures.p50),
                p95_ms: ms(r.figures.p95),
                p99_ms: ms(r.figures.p99),
                apdex: apdex_of(&r.figures),
                service: r.service,
                series,
            }
        })
        .collect();
    Ok(ServicesResponse {
        services,
        window_seconds: window_s,
        covered_seconds: covered_s,
        step_seconds: step_s,
    })
}

fn percent(part: u64, all: u64) -> f64 {
    100.0 * part as f64 / all.max(1) as f64
}

fn point(t: u64, f: &LatencyFigures, step_s: u64) -> ServicePoint {
    ServicePoint {
        start_unix_s: t,
        rps: f.req_total as f64 / step_s as f64,
        error_percent: percent(f.err_total, f.req_total),
        p99_ms: ms(f.p99),
        apdex: apdex_of(f),
    }
}
