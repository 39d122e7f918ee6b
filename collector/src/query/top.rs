//! Endpoint ranking (`plumb top`): per endpoint requests, rps, errors, p50/p95/p99 and time
//! share over a recent window.
//!
//! Percentiles come from the merged histograms: ClickHouse sums the bucket counts of every
//! minute (or hour, for windows over six hours) with `sumMap`, and picks the first bucket whose
//! cumulative count reaches the rank. The SQL is the portable form that runs on 18.16 and
//! current releases; user values are bound, never formatted in.

use super::QueryError;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{EndpointStats, TopEndpointsRequest, TopEndpointsResponse};
use serde::Deserialize;
use std::collections::HashMap;
use std::str::FromStr;

/// Default window when the request says 0.
pub const DEFAULT_WINDOW_S: u64 = 15 * 60;
/// Default number of rows.
pub const DEFAULT_LIMIT: u32 = 20;
/// Windows longer than this read the hourly rollup.
const HOURLY_FROM_S: u64 = 6 * 3600;

/// What endpoints are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Median latency.
    P50,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// Requests per second.
    Rps,
    /// Error count.
    Errors,
    /// Total time spent (time share).
    Time,
}

impl FromStr for SortKey {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, QueryError> {
        Ok(match s {
            "" | "p99" => Self::P99,
            "p95" => Self::P95,
            "p50" => Self::P50,
            "rps" => Self::Rps,
            "errors" => Self::Errors,
            "time" => Self::Time,
            other => {
                return Err(QueryError::InvalidArgument(format!(
                    "unknown sort key {other:?}: use p50, p95, p99, rps, errors or time"
                )));
            }
        })
    }
}

const KINDS: &[&str] = &[
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// A checked `TopEndpointsRequest`.
#[derive(Clone, Debug)]
pub struct TopQuery {
    window_s: u64,
    service: String,
    by: SortKey,
    limit: usize,
    kind: String,
}

impl TryFrom<TopEndpointsRequest> for TopQuery {
    type Error = QueryError;
    fn try_from(r: TopEndpointsRequest) -> Result<Self, QueryError> {
        let kind = if r.kind.is_empty() {
            "server".to_owned()
        } else {
            r.kind.to_ascii_lowercase()
        };
        if kind != "all" && !KINDS.contains(&kind.as_str()) {
            return Err(QueryError::InvalidArgument(format!(
                "unknown span kind {:?}: use server, client, internal, producer, consumer or all",
                r.kind
            )));
        }
        let window_s = if r.since_seconds == 0 {
            DEFAULT_WINDOW_S
        } else {
            r.since_seconds
        };
        if window_s > 400 * 86_400 {
            return Err(QueryError::InvalidArgument(
                "the window may be at most 400 days".into(),
            ));
        }
        Ok(Self {
            window_s,
            service: r.service,
            by: r.by.parse()?,
            limit: if r.limit == 0 { DEFAULT_LIMIT } else { r.limit } as usize,
            kind,
        })
    }
}

#[derive(Debug, Row, Deserialize)]
struct EndpointRow {
    service: String,
    operation: String,
    kind_name: String,
    req_total: u64,
    err_total: u64,
    sum_us: u64,
    p50: u64,
    p95: u64,
    p99: u64,
    total: u64,
}

/// Column names of the minute table and of its hourly rollup.
struct Source {
    table: &'static str,
    time: &'static str,
    requests: &'static str,
    errors: &'static str,
    sum: &'static str,
    map: &'static str,
}

const MINUTES: Source = Source {
    table: "latency_minute",
    time: "minute",
    requests: "requests",
    errors: "errors",
    sum: "duration_sum_us",
    map: "latencyMap",
};

const HOURS: Source = Source {
    table: "latency_hour",
    time: "hour",
    requests: "hour_requests",
    errors: "hour_errors",
    sum: "hour_duration_sum_us",
    map: "hourlyMap",
};

fn ranking_sql(s: &Source) -> String {
    let Source {
        table,
        time,
        requests,
        errors,
        sum,
        map,
    } = s;
    format!(
        "SELECT service, operation, kind_name, req_total, err_total, sum_us,
                keys[arrayFirstIndex(c -> c >= ceil(0.5 * total), cum)] AS p50,
                keys[arrayFirstIndex(c -> c >= ceil(0.95 * total), cum)] AS p95,
                keys[arrayFirstIndex(c -> c >= ceil(0.99 * total), cum)] AS p99,
                total
         FROM (
            SELECT service, operation, toString(kind) AS kind_name,
                   sum({requests}) AS req_total, sum({errors}) AS err_total, sum({sum}) AS sum_us,
                   tupleElement(sumMap({map}.bucket, {map}.count), 1) AS keys,
                   arrayCumSum(tupleElement(sumMap({map}.bucket, {map}.count), 2)) AS cum,
                   cum[length(cum)] AS total
            FROM {table}
            WHERE {time} >= toDateTime(?) AND (? = '' OR service = ?) AND (? = 'all' OR toString(kind) = ?)
            GROUP BY service, operation, kind
         )"
    )
}

/// The ClickHouse query behind [`top_endpoints`], with the request's values bound: one row per
/// endpoint with `req_total`, `err_total`, `sum_us`, `p50`, `p95`, `p99` (µs) and `total`.
pub fn ranking_query(store: &Store, query: &TopQuery, now_unix_s: u32) -> clickhouse::query::Query {
    let source = if query.window_s > HOURLY_FROM_S {
        &HOURS
    } else {
        &MINUTES
    };
    let from = u64::from(now_unix_s).saturating_sub(query.window_s);
    store
        .client()
        .query(&ranking_sql(source))
        .bind(from)
        .bind(&query.service)
        .bind(&query.service)
        .bind(&query.kind)
        .bind(&query.kind)
}

/// Ranks endpoints for `query`, reading the store as of `now_unix_s`.
pub async fn top_endpoints(
    store: &Store,
    query: &TopQuery,
    now_unix_s: u32,
) -> Result<TopEndpointsResponse, QueryError> {
    let rows: Vec<EndpointRow> = ranking_query(store, query, now_unix_s)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("rank endpoints"))?;
    Ok(TopEndpointsResponse {
        endpoints: rank(rows, query),
        window_seconds: query.window_s,
    })
}

fn rank(rows: Vec<EndpointRow>, query: &TopQuery) -> Vec<EndpointStats> {
    let mut service_time: HashMap<(String, String), u64> = HashMap::new();
    for r in &rows {
        *service_time
            .entry((r.service.clone(), r.kind_name.clone()))
            .or_default() += r.sum_us;
    }
    let window = query.window_s as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut stats: Vec<EndpointStats> = rows
        .into_iter()
        .filter(|r| r.total > 0)
        .map(|r| {
            let service_total = service_time
                .get(&(r.service.clone(), r.kind_name.clone()))
                .copied()
                .unwrap_or(0);
            EndpointStats {
                requests: r.req_total,
                rps: r.req_total as f64 / window,
                errors: r.err_total,
                error_percent: 100.0 * r.err_total as f64 / r.req_total.max(1) as f64,
                p50_ms: ms(r.p50),
                p95_ms: ms(r.p95),
                p99_ms: ms(r.p99),
                total_time_ms: ms(r.sum_us),
                time_share_percent: if service_total == 0 {
                    0.0
                } else {
                    100.0 * r.sum_us as f64 / service_total as f64
                },
                mean_ms: ms(r.sum_us) / r.req_total.max(1) as f64,
                service: r.service,
                operation: r.operation,
                kind: r.kind_name,
            }
        })
        .collect();
    let key = |s: &EndpointStats| match query.by {
        SortKey::P50 => s.p50_ms,
        SortKey::P95 => s.p95_ms,
        SortKey::P99 => s.p99_ms,
        SortKey::Rps => s.rps,
        SortKey::Errors => s.errors as f64,
        SortKey::Time => s.total_time_ms,
    };
    stats.sort_by(|a, b| {
        key(b)
            .total_cmp(&key(a))
            .then_with(|| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)))
    });
    stats.truncate(query.limit);
    stats
}
