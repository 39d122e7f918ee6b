//! One endpoint in depth (`plumb endpoint`): its figures over the window (with apdex and time
//! share, as `plumb top` computes them), percentiles per time step, where its time goes, and the
//! trace ids of its slowest requests.

use super::QueryError;
use super::endpoint_breakdown::{DEFAULT_MIN_CALLS, breakdown_items, component_totals};
use super::top::{
    SeriesRow, Source, TopQuery, ms, series_query, source_for, span_kind, top_endpoints,
    window_seconds,
};
use crate::model::ApdexThresholds;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{
    EndpointDetailRequest, EndpointDetailResponse, Exemplar, HeatmapCell, LatencyPoint,
};
use serde::Deserialize;

/// Default window of the endpoint view.
const DEFAULT_WINDOW_S: u64 = 3600;
/// About this many points in the series.
const POINTS: u64 = 30;
/// Default and largest number of slowest traces listed.
const DEFAULT_EXEMPLARS: u32 = 5;
const MAX_EXEMPLARS: u32 = 100;

#[derive(Debug, Row, Deserialize)]
struct ExemplarRow {
    trace: String,
    duration_ns: u64,
    start_time_ns: u64,
    is_error: u8,
}

/// The query for the `limit` slowest spans of the endpoint in `filter` since `from_s`.
pub(crate) fn exemplars_query(
    store: &Store,
    filter: &TopQuery,
    from_s: u64,
    limit: u32,
) -> clickhouse::query::Query {
    let (service, operation, kind) = filter.endpoint();
    store
        .client()
        .query(
            "SELECT lower(hex(trace_id)) AS trace, duration_ns, start_time_ns, is_error
             FROM spans
             WHERE service = ? AND operation = ? AND toString(kind) = ? AND timestamp >= toDateTime(?)
             ORDER BY duration_ns DESC
             LIMIT ?",
        )
        .bind(service)
        .bind(operation)
        .bind(kind)
        .bind(from_s)
        .bind(limit)
}

/// Lowest heatmap band: everything up to 2^-3 ms.
const LOWEST_BAND: i32 = -3;

#[derive(Debug, Row, Deserialize)]
struct HeatmapRow {
    t: u64,
    band: i32,
    requests: u64,
}

/// Requests per step of `step_s` and latency band (the bucket's upper bound rounded up to a
/// power of two of milliseconds) of the endpoint in `filter` since `from_s`, read off the
/// histograms of `source`.
pub(crate) fn heatmap_query(
    store: &Store,
    filter: &TopQuery,
    source: &Source,
    from_s: u64,
    step_s: u64,
) -> clickhouse::query::Query {
    let (service, operation, kind) = filter.endpoint();
    let (table, time, map) = (source.table, source.time, source.map);
    store
        .client()
        .query(&format!(
            "SELECT t, band, sum(c) AS requests
             FROM (SELECT intDiv(toUInt32({time}), ?) * ? AS t,
                          toInt32(greatest(ceil(log2(b / 1000)), ?)) AS band, c
                   FROM {table}
                   ARRAY JOIN {map}.bucket AS b, {map}.count AS c
                   WHERE service = ? AND operation = ? AND toString(kind) = ?
                     AND {time} >= toDateTime(?))
             GROUP BY t, band
             ORDER BY t, band"
        ))
        .bind(step_s)
        .bind(step_s)
        .bind(LOWEST_BAND)
        .bind(service)
        .bind(operation)
        .bind(kind)
        .bind(from_s)
}

/// The step for a window: about thirty steps, each a whole number of the table's steps.
pub(crate) fn step_for(window_s: u64, table_step_s: u64) -> u64 {
    let raw = window_s.div_ceil(POINTS).max(1);
    raw.div_ceil(table_step_s) * table_step_s
}

/// Answers an `EndpointDetailRequest` as of `now_unix_s`.
pub(crate) async fn endpoint_detail(
    store: &Store,
    apdex: &ApdexThresholds,
    request: EndpointDetailRequest,
    now_unix_s: u32,
) -> Result<EndpointDetailResponse, QueryError> {
    if request.service.is_empty() || request.operation.is_empty() {
        return Err(QueryError::InvalidArgument(
            "service and operation are required (as `plumb top` shows them)".into(),
        ));
    }
    let window_s = window_seconds(request.since_seconds, DEFAULT_WINDOW_S)?;
    let kind = span_kind(&request.kind, false)?;
    let exemplars = match request.exemplars {
        0 => DEFAULT_EXEMPLARS,
        n => n.min(MAX_EXEMPLARS),
    };
    let min_calls = if request.min_calls_per_request > 0.0 {
        request.min_calls_per_request
    } else {
        DEFAULT_MIN_CALLS
    };

    // The four reads are independent; ClickHouse runs them side by side. The summary comes from
    // the service-wide ranking, so its time share is of the service.
    let service_wide = TopQuery::service_wide(window_s, request.service.clone(), kind.clone());
    let one = TopQuery::one(
        window_s,
        request.service.clone(),
        request.operation.clone(),
        kind.clone(),
    );
    let step_s = step_for(window_s, source_for(window_s).step_s);
    let from_s = u64::from(now_unix_s).saturating_sub(window_s);
    let (ranking, series, rows, slowest, heatmap) = tokio::try_join!(
        top_endpoints(store, &service_wide, apdex, now_unix_s),
        async {
            series_query(store, &one, apdex, step_s, now_unix_s)
                .fetch_all::<SeriesRow>()
                .await
                .map_err(|e| StoreError::clickhouse("read the endpoint's series")(e).into())
        },
        component_totals(store, from_s, &request.service, &request.operation),
        async {
            exemplars_query(store, &one, from_s, exemplars)
                .fetch_all::<ExemplarRow>()
                .await
                .map_err(|e| StoreError::clickhouse("read the slowest traces")(e).into())
        },
        async {
            heatmap_query(store, &one, source_for(window_s), from_s, step_s)
                .fetch_all::<HeatmapRow>()
                .await
                .map_err(|e| StoreError::clickhouse("read the latency heatmap")(e).into())
        },
    )?;
    let summary = ranking
        .endpoints
        .into_iter()
        .find(|e| e.operation == request.operation)
        .ok_or_else(|| {
            QueryError::NotFound(format!(
                "no {kind} requests for {:?} {:?} in the last {}",
                request.service,
                request.operation,
                humantime::format_duration(std::time::Duration::from_secs(window_s))
            ))
        })?;
    let (analysed_requests, breakdown) = breakdown_items(&rows, min_calls);

    Ok(EndpointDetailResponse {
        summary: Some(summary),
        series: series
            .into_iter()
            .map(|p| LatencyPoint {
                start_unix_s: p.t,
                requests: p.figures.req_total,
                errors: p.figures.err_total,
                p50_ms: ms(p.figures.p50),
                p95_ms: ms(p.figures.p95),
                p99_ms: ms(p.figures.p99),
            })
            .collect(),
        step_seconds: step_s,
        analysed_requests,
        breakdown,
        slowest: slowest
            .into_iter()
            .map(|e| Exemplar {
                trace_id: e.trace,
                duration_ms: e.duration_ns as f64 / 1e6,
                start_unix_ns: e.start_time_ns,
                error: e.is_error != 0,
            })
            .collect(),
        window_seconds: window_s,
        heatmap: heatmap
            .into_iter()
            .map(|h| HeatmapCell {
                start_unix_s: h.t,
                band: h.band,
                requests: h.requests,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_whole_table_steps() {
        assert_eq!(step_for(3600, 60), 120);
        assert_eq!(step_for(600, 60), 60);
        assert_eq!(step_for(86_400, 3600), 3600);
        assert_eq!(step_for(7 * 86_400, 3600), 6 * 3600);
    }
}
