//! Where endpoints' time goes, read back from `breakdown_minute`: the breakdown of one endpoint
//! (for `plumb endpoint`) and the chatty calls of all of them (N+1 queries, `plumb chatty`).
//!
//! Shares are of the endpoint's own time in the analysed requests (the `request` rows); calls per
//! request are over the analysed requests, and "per calling request" over those that made the
//! call at least once, which is the figure an N+1 loop drives up.

use super::QueryError;
use super::top::{ms, window_seconds};
use crate::model::ComponentType;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{BreakdownItem, ChattyCall, ChattyCallsRequest, ChattyCallsResponse};
use serde::Deserialize;
use std::collections::HashMap;

/// Default threshold of calls per calling request for the N+1 flag.
pub(crate) const DEFAULT_MIN_CALLS: f64 = 10.0;
/// Default window of the chatty-calls list.
const DEFAULT_WINDOW_S: u64 = 3600;
/// Default number of chatty calls listed.
const DEFAULT_LIMIT: u32 = 20;

/// One (endpoint, component) over a window.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct ComponentTotals {
    /// The endpoint's service.
    pub(crate) service: String,
    /// The endpoint's operation.
    pub(crate) operation: String,
    /// Component type name (`request`, `self`, `db`, ...).
    pub(crate) type_name: String,
    /// Component label.
    pub(crate) component: String,
    /// Requests (for `request`/`self`: analysed requests; else requests with a call).
    pub(crate) req: u64,
    /// Calls.
    pub(crate) calls_total: u64,
    /// Time, µs.
    pub(crate) time_us: u64,
}

/// The query behind [`component_totals`], with its values bound.
pub(crate) fn component_totals_query(
    store: &Store,
    from_s: u64,
    service: &str,
    operation: &str,
) -> clickhouse::query::Query {
    // Every alias differs from the column names (18.16 reports an alias equal to a column as a
    // cyclic alias). Only the filters that are set are written, so the sort key narrows the read.
    let mut sql = String::from(
        "SELECT service, operation, toString(component_type) AS type_name, component,
                sum(requests) AS req, sum(calls) AS calls_total, sum(duration_sum_us) AS time_us
         FROM breakdown_minute
         WHERE minute >= toDateTime(?) AND service != ''",
    );
    if !service.is_empty() {
        sql.push_str(" AND service = ?");
    }
    if !operation.is_empty() {
        sql.push_str(" AND operation = ?");
    }
    sql.push_str(" GROUP BY service, operation, component_type, component");
    let mut query = store.client().query(&sql).bind(from_s);
    for value in [service, operation].into_iter().filter(|v| !v.is_empty()) {
        query = query.bind(value);
    }
    query
}

/// Reads the breakdown totals since `from_s`, for one service and operation (empty: all).
pub(crate) async fn component_totals(
    store: &Store,
    from_s: u64,
    service: &str,
    operation: &str,
) -> Result<Vec<ComponentTotals>, QueryError> {
    Ok(component_totals_query(store, from_s, service, operation)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("read the breakdown"))?)
}

/// The `request` row's totals of one endpoint: (analysed requests, their time in µs).
fn request_totals<'a>(rows: impl IntoIterator<Item = &'a ComponentTotals>) -> (u64, u64) {
    let request = ComponentType::Request.name();
    rows.into_iter()
        .filter(|r| r.type_name == request)
        .fold((0, 0), |(n, t), r| (n + r.req, t + r.time_us))
}

fn share(part_us: u64, whole_us: u64) -> f64 {
    if whole_us == 0 {
        0.0
    } else {
        100.0 * part_us as f64 / whole_us as f64
    }
}

fn per(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator.max(1) as f64
}

/// The breakdown of one endpoint from its rows: (analysed requests, items by time, largest
/// first). Calls per calling request at or over `min_calls` are flagged as N+1.
pub(crate) fn breakdown_items(
    rows: &[ComponentTotals],
    min_calls: f64,
) -> (u64, Vec<BreakdownItem>) {
    let (analysed, request_us) = request_totals(rows);
    let request = ComponentType::Request.name();
    let mut items: Vec<BreakdownItem> = rows
        .iter()
        .filter(|r| r.type_name != request)
        .map(|r| {
            let per_calling = per(r.calls_total, r.req);
            BreakdownItem {
                r#type: r.type_name.clone(),
                component: r.component.clone(),
                total_time_ms: ms(r.time_us),
                time_share_percent: share(r.time_us, request_us),
                mean_ms_per_request: ms(r.time_us) / analysed.max(1) as f64,
                calls_per_request: per(r.calls_total, analysed),
                calls: r.calls_total,
                requests_with_call: r.req,
                calls_per_calling_request: per_calling,
                n_plus_one: r.type_name != ComponentType::SelfTime.name()
                    && per_calling >= min_calls,
            }
        })
        .collect();
    items.sort_by(|a, b| {
        b.total_time_ms
            .total_cmp(&a.total_time_ms)
            .then_with(|| a.component.cmp(&b.component))
    });
    (analysed, items)
}

/// Child operations called at least `min_calls_per_request` times per calling request.
pub(crate) async fn chatty_calls(
    store: &Store,
    request: ChattyCallsRequest,
    now_unix_s: u32,
) -> Result<ChattyCallsResponse, QueryError> {
    let window_s = window_seconds(request.since_seconds, DEFAULT_WINDOW_S)?;
    let min_calls = match request.min_calls_per_request {
        0.0 => DEFAULT_MIN_CALLS,
        m if m.is_finite() && m >= 1.0 => m,
        m => {
            return Err(QueryError::InvalidArgument(format!(
                "min_calls_per_request must be at least 1, not {m}"
            )));
        }
    };
    let limit = if request.limit == 0 {
        DEFAULT_LIMIT
    } else {
        request.limit
    } as usize;
    let from_s = u64::from(now_unix_s).saturating_sub(window_s);
    let rows = component_totals(store, from_s, &request.service, "").await?;
    let mut endpoints: HashMap<(&str, &str), Vec<&ComponentTotals>> = HashMap::new();
    for row in &rows {
        endpoints
            .entry((&row.service, &row.operation))
            .or_default()
            .push(row);
    }
    let mut calls: Vec<ChattyCall> = Vec::new();
    for ((service, operation), rows) in endpoints {
        let (_, request_us) = request_totals(rows.iter().copied());
        for r in rows {
            let per_calling = per(r.calls_total, r.req);
            let is_call = r.type_name != ComponentType::Request.name()
                && r.type_name != ComponentType::SelfTime.name();
            if is_call && per_calling >= min_calls {
                calls.push(ChattyCall {
                    service: service.to_owned(),
                    operation: operation.to_owned(),
                    r#type: r.type_name.clone(),
                    component: r.component.clone(),
                    calls_per_calling_request: per_calling,
                    requests_with_call: r.req,
                    calls: r.calls_total,
                    time_share_percent: share(r.time_us, request_us),
                    mean_ms_per_call: ms(r.time_us) / r.calls_total.max(1) as f64,
                });
            }
        }
    }
    calls.sort_by(|a, b| {
        b.calls_per_calling_request
            .total_cmp(&a.calls_per_calling_request)
            .then_with(|| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)))
    });
    calls.truncate(limit);
    Ok(ChattyCallsResponse {
        calls,
        window_seconds: window_s,
        min_calls_per_request: min_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(type_name: &str, component: &str, req: u64, calls: u64, ms: u64) -> ComponentTotals {
        ComponentTotals {
            service: "shop".into(),
            operation: "GET /a".into(),
            type_name: type_name.into(),
            component: component.into(),
            req,
            calls_total: calls,
            time_us: ms * 1000,
        }
    }

    #[test]
    fn shares_means_and_the_n_plus_one_flag() {
        let rows = [
            row("request", "", 100, 100, 10_000),
            row("self", "", 100, 100, 2_500),
            row("db", "pg q", 50, 1000, 7_500),
            row("http", "b GET /x", 100, 100, 1_000),
        ];
        let (analysed, items) = breakdown_items(&rows, 10.0);
        assert_eq!(analysed, 100);
        let db = &items[0];
        assert_eq!((db.r#type.as_str(), db.time_share_percent), ("db", 75.0));
        assert_eq!((db.mean_ms_per_request, db.calls_per_request), (75.0, 10.0));
        assert_eq!((db.calls_per_calling_request, db.n_plus_one), (20.0, true));
        assert_eq!(items[1].r#type, "self");
        assert!(!items[2].n_plus_one);
    }
}
