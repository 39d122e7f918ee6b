//! Endpoint ranking (`plumb top`): per endpoint requests, rps, errors, p50/p95/p99 and time
//! share over a recent window.
//!
//! Percentiles come from the histograms of every minute (or hour, for windows over six hours):
//! ClickHouse weighs every row's buckets together and picks the first bucket whose cumulative
//! count reaches the rank (see [`percentile_sql`]). The SQL is the portable form that runs on
//! 18.16 and current releases; user values are bound, never formatted in.

use super::QueryError;
use crate::model::{ApdexThresholds, SpanKind};
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{EndpointStats, TopEndpointsRequest, TopEndpointsResponse};
use serde::Deserialize;
use std::collections::HashMap;
use std::str::FromStr;

/// Default window when the request says 0.
pub(crate) const DEFAULT_WINDOW_S: u64 = 15 * 60;
/// Default number of rows.
pub(crate) const DEFAULT_LIMIT: u32 = 20;
/// Windows longer than this read the hourly rollup.
const HOURLY_FROM_S: u64 = 6 * 3600;

/// What endpoints are ranked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SortKey {
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

/// A checked `TopEndpointsRequest`.
#[derive(Clone, Debug)]
pub(crate) struct TopQuery {
    window_s: u64,
    service: String,
    /// Only this operation (empty: all); set by the endpoint view, not by the request.
    operation: String,
    by: SortKey,
    limit: usize,
    kind: String,
}

/// The window a request asks for: `since_seconds`, or `default` when 0, at most 400 days.
pub(crate) fn window_seconds(since_seconds: u64, default: u64) -> Result<u64, QueryError> {
    let window_s = if since_seconds == 0 {
        default
    } else {
        since_seconds
    };
    if window_s > 400 * 86_400 {
        return Err(QueryError::InvalidArgument(
            "the window may be at most 400 days".into(),
        ));
    }
    Ok(window_s)
}

/// A span kind as the request names it (empty means `server`), checked; `all` only if allowed.
pub(crate) fn span_kind(kind: &str, allow_all: bool) -> Result<String, QueryError> {
    let kind = if kind.is_empty() {
        "server".to_owned()
    } else {
        kind.to_ascii_lowercase()
    };
    if (allow_all && kind == "all") || SpanKind::from_name(&kind).is_some() {
        Ok(kind)
    } else {
        Err(QueryError::InvalidArgument(format!(
            "unknown span kind {kind:?}: use server, client, internal, producer, consumer{}",
            if allow_all { " or all" } else { "" }
        )))
    }
}

impl TryFrom<TopEndpointsRequest> for TopQuery {
    type Error = QueryError;
    fn try_from(r: TopEndpointsRequest) -> Result<Self, QueryError> {
        Ok(Self {
            window_s: window_seconds(r.since_seconds, DEFAULT_WINDOW_S)?,
            kind: span_kind(&r.kind, true)?,
            service: r.service,
            operation: String::new(),
            by: r.by.parse()?,
            limit: if r.limit == 0 { DEFAULT_LIMIT } else { r.limit } as usize,
        })
    }
}

impl TopQuery {
    /// Every endpoint of one service and kind over `window_s`, unranked and unlimited.
    pub(crate) fn service_wide(window_s: u64, service: String, kind: String) -> Self {
        Self {
            limit: usize::MAX,
            ..Self::one(window_s, service, String::new(), kind)
        }
    }

    /// The service, operation and kind this query is about.
    pub(crate) fn endpoint(&self) -> (&str, &str, &str) {
        (&self.service, &self.operation, &self.kind)
    }

    /// The figures of one endpoint over `window_s`.
    pub(crate) fn one(window_s: u64, service: String, operation: String, kind: String) -> Self {
        Self {
            window_s,
            service,
            operation,
            by: SortKey::P99,
            limit: 1,
            kind,
        }
    }
}

impl ApdexThresholds {
    /// The one threshold of every latency row matching `filter`: that of the service it names,
    /// or the default when no service has its own; `None` when it depends on the row's service.
    fn single(&self, filter: &TopQuery) -> Option<u64> {
        if !filter.service.is_empty() {
            Some(self.for_service(&filter.service))
        } else if self.per_service.is_empty() {
            Some(self.default_us)
        } else {
            None
        }
    }

    /// The threshold of a latency row matching `filter` as SQL, bound by [`Self::bind`]: one
    /// bound value ([`Self::single`]), else `transform(service, names, thresholds, default)`.
    /// By hand the lookup per row cost the day's ranking at most 24 ms more than one value (once
    /// 4 ms less, in the machine's noise), where a second query for the rows shown took 35-42 ms
    /// and a `UNION ALL` of one branch per threshold 44 ms more.
    fn row_sql(&self, filter: &TopQuery) -> &'static str {
        match self.single(filter) {
            Some(_) => "toUInt64(?)",
            None => "toUInt64(transform(service, ?, ?, ?))",
        }
    }

    /// Binds the values of [`Self::row_sql`] for `filter`. A service listed twice has its first
    /// threshold, as in [`Self::for_service`].
    pub(crate) fn bind(
        &self,
        query: clickhouse::query::Query,
        filter: &TopQuery,
    ) -> clickhouse::query::Query {
        if let Some(threshold) = self.single(filter) {
            return query.bind(threshold);
        }
        let mut own: Vec<(&str, u64)> = Vec::new();
        for (service, threshold) in &self.per_service {
            if !own.iter().any(|(s, _)| s == service) {
                own.push((service, *threshold));
            }
        }
        let (names, thresholds): (Vec<&str>, Vec<u64>) = own.into_iter().unzip();
        query.bind(names).bind(thresholds).bind(self.default_us)
    }
}

/// The apdex of a group's figures, (satisfied + tolerating / 2) / requests; 0 without
/// requests.
pub(crate) fn apdex_of(f: &LatencyFigures) -> f64 {
    if f.total == 0 {
        0.0
    } else {
        f.apdex_halves as f64 / 2.0 / f.total as f64
    }
}

/// Figures of one group of latency rows, as the percentile query returns them after its keys.
#[derive(Debug, Deserialize)]
pub(crate) struct LatencyFigures {
    /// Requests.
    pub(crate) req_total: u64,
    /// Errors.
    pub(crate) err_total: u64,
    /// Sum of durations, µs.
    pub(crate) sum_us: u64,
    /// Percentiles, µs.
    pub(crate) p50: u64,
    /// 95th percentile, µs.
    pub(crate) p95: u64,
    /// 99th percentile, µs.
    pub(crate) p99: u64,
    /// Requests in the histograms.
    pub(crate) total: u64,
    /// The apdex threshold, µs.
    pub(crate) apdex_t: u64,
    /// Requests within the threshold counted twice, and those over it but within four times
    /// it once: twice apdex's numerator, so one pass over the buckets counts both.
    pub(crate) apdex_halves: u64,
}

#[derive(Debug, Row, Deserialize)]
struct EndpointRow {
    service: String,
    operation: String,
    kind_name: String,
    /// Read positionally after the keys (the client reads RowBinary in field order).
    figures: LatencyFigures,
}

/// Column names of the minute table and of its hourly rollup.
#[derive(Debug)]
pub(crate) struct Source {
    /// The table.
    pub(crate) table: &'static str,
    /// The time column.
    pub(crate) time: &'static str,
    requests: &'static str,
    errors: &'static str,
    sum: &'static str,
    /// The nested histogram column.
    pub(crate) map: &'static str,
    /// Smallest time step the table holds, seconds.
    pub(crate) step_s: u64,
}

const MINUTES: Source = Source {
    table: "latency_minute",
    time: "minute",
    requests: "requests",
    errors: "errors",
    sum: "duration_sum_us",
    map: "latencyMap",
    step_s: 60,
};

const HOURS: Source = Source {
    table: "latency_hour",
    time: "hour",
    requests: "hour_requests",
    errors: "hour_errors",
    sum: "hour_duration_sum_us",
    map: "hourlyMap",
    step_s: 3600,
};

/// The table that serves a window of `window_s`: minutes up to six hours, hours beyond.
pub(crate) fn source_for(window_s: u64) -> &'static Source {
    if window_s > HOURLY_FROM_S {
        &HOURS
    } else {
        &MINUTES
    }
}

/// Percentiles, counts and apdex per group of latency rows. `keys` are `(expression, alias)`
/// pairs grouped by; the expressions may hold `?` (bound first). Then bind the apdex thresholds
/// ([`ApdexThresholds::bind`], with `apdex` and `filter`) and the filter ([`bind_filter`]).
///
/// The percentiles are ClickHouse's `quantilesExactWeighted` over every row's buckets (its
/// `-Array` form, so no row is expanded): it returns the first key whose cumulative count
/// reaches `ceil(q * total)`, the rule of [`quantile_from_buckets`](crate::aggregate::histogram).
/// On 18.16 it took 185 ms where merging the rows with `sumMap` first took 262 ms (a day of
/// 1,000 endpoints' hours, by hand).
pub(crate) fn percentile_sql(
    s: &Source,
    keys: &[(&str, &str)],
    filter: &TopQuery,
    apdex: &ApdexThresholds,
) -> String {
    let Source {
        table,
        time,
        requests,
        errors,
        sum,
        map,
        ..
    } = s;
    let inner: Vec<String> = keys
        .iter()
        .map(|(expr, alias)| format!("{expr} AS {alias}"))
        .collect();
    let aliases: Vec<&str> = keys.iter().map(|(_, alias)| *alias).collect();
    let (inner, aliases) = (inner.join(", "), aliases.join(", "));
    format!(
        "SELECT {aliases}, req_total, err_total, sum_us,
                p[1] AS p50, p[2] AS p95, p[3] AS p99,
                total, apdex_t, apdex_halves
         FROM (
            SELECT {inner},
                   sum({requests}) AS req_total, sum({errors}) AS err_total, sum({sum}) AS sum_us,
                   quantilesExactWeightedArray(0.5, 0.95, 0.99)({map}.bucket, {map}.count) AS p,
                   sumArray({map}.count) AS total,
                   any(row_t) AS apdex_t,
                   sum(arraySum(arrayMap((k, c) -> c * ((k <= row_t) + (k <= 4 * row_t)),
                       {map}.bucket, {map}.count))) AS apdex_halves
            FROM (
               SELECT *, {row_t} AS row_t
               FROM {table}
               WHERE {filter}
            )
            GROUP BY {aliases}
         )",
        filter = filter_sql(time, filter),
        row_t = apdex.row_sql(filter),
    )
}

/// The `WHERE` condition of the latency queries for `filter`; bound by [`bind_filter`]. Only the
/// filters that are set are written (their values bound), so ClickHouse narrows the read by the
/// table's sort key (service, operation, kind) instead of testing every row.
fn filter_sql(time: &str, filter: &TopQuery) -> String {
    let mut sql = format!("{time} >= toDateTime(?) AND {time} < toDateTime(?) AND service != ''");
    for (column, _) in set_filters(filter) {
        sql.push_str(&format!(" AND {column} = ?"));
    }
    sql
}

/// Binds the filter of [`filter_sql`]: the time range and the values of [`set_filters`].
pub(crate) fn bind_filter(
    query: clickhouse::query::Query,
    from_s: u64,
    to_s: u64,
    filter: &TopQuery,
) -> clickhouse::query::Query {
    set_filters(filter).fold(query.bind(from_s).bind(to_s), |query, (_, value)| {
        query.bind(value)
    })
}

/// The service, operation and kind of `filter` that are set, as (column, value): an empty
/// service or operation, or kind `all`, matches everything and is left out.
fn set_filters(filter: &TopQuery) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("service", filter.service.as_str(), ""),
        ("operation", filter.operation.as_str(), ""),
        ("kind", filter.kind.as_str(), "all"),
    ]
    .into_iter()
    .filter(|(_, value, everything)| value != everything)
    .map(|(column, value, _)| (column, value))
}

/// The ClickHouse query behind [`top_endpoints`], with the request's values bound: one row per
/// endpoint with `req_total`, `err_total`, `sum_us`, `p50`, `p95`, `p99` (µs), `total`, the
/// apdex threshold and `apdex_halves`, over its window as of `now_unix_s`.
pub(crate) fn ranking_query(
    store: &Store,
    query: &TopQuery,
    apdex: &ApdexThresholds,
    now_unix_s: u32,
) -> clickhouse::query::Query {
    let sql = percentile_sql(
        source_for(query.window_s),
        &[
            ("service", "service"),
            ("operation", "operation"),
            ("toString(kind)", "kind_name"),
        ],
        query,
        apdex,
    );
    let now = u64::from(now_unix_s);
    let q = apdex.bind(store.client().query(&sql), query);
    bind_filter(q, now.saturating_sub(query.window_s), now + 60, query)
}

/// The query behind the endpoint view's series: one row per step of `step_s` seconds (a
/// multiple of the source's step) with its start `t`.
pub(crate) fn series_query(
    store: &Store,
    query: &TopQuery,
    apdex: &ApdexThresholds,
    step_s: u64,
    now_unix_s: u32,
) -> clickhouse::query::Query {
    let source = source_for(query.window_s);
    let bucket = format!("intDiv(toUInt32({}), ?) * ?", source.time);
    let sql = format!(
        "{} ORDER BY t",
        percentile_sql(source, &[(&bucket, "t")], query, apdex)
    );
    let now = u64::from(now_unix_s);
    let q = store.client().query(&sql).bind(step_s).bind(step_s);
    bind_filter(
        apdex.bind(q, query),
        now.saturating_sub(query.window_s),
        now + 60,
        query,
    )
}

/// Summed histograms per endpoint between `from_s` and `to_s` (for comparisons made in Rust):
/// `service`, `operation`, `req_total`, `err_total`, `sum_us`, `keys`, `counts`. The window
/// length picks the table, as for the ranking.
pub(crate) fn histograms_query(
    store: &Store,
    filter: &TopQuery,
    from_s: u64,
    to_s: u64,
) -> clickhouse::query::Query {
    let Source {
        table,
        time,
        requests,
        errors,
        sum,
        map,
        ..
    } = source_for(filter.window_s);
    let sql = format!(
        "SELECT service, operation,
                sum({requests}) AS req_total, sum({errors}) AS err_total, sum({sum}) AS sum_us,
                tupleElement(sumMap({map}.bucket, {map}.count), 1) AS keys,
                tupleElement(sumMap({map}.bucket, {map}.count), 2) AS counts
         FROM {table}
         WHERE {filter}
         GROUP BY service, operation",
        filter = filter_sql(time, filter)
    );
    bind_filter(store.client().query(&sql), from_s, to_s, filter)
}

/// One step of the series.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct SeriesRow {
    /// Start of the step, seconds since the epoch.
    pub(crate) t: u64,
    /// The step's figures (read positionally after `t`).
    pub(crate) figures: LatencyFigures,
}

/// Ranks endpoints for `query`, reading the store as of `now_unix_s`.
pub(crate) async fn top_endpoints(
    store: &Store,
    query: &TopQuery,
    apdex: &ApdexThresholds,
    now_unix_s: u32,
) -> Result<TopEndpointsResponse, QueryError> {
    let (rows, covered_s) = tokio::try_join!(
        async {
            ranking_query(store, query, apdex, now_unix_s)
                .fetch_all::<EndpointRow>()
                .await
                .map_err(|e| QueryError::from(StoreError::clickhouse("rank endpoints")(e)))
        },
        covered_seconds(store, query, now_unix_s),
    )?;
    Ok(TopEndpointsResponse {
        endpoints: rank(rows, query, covered_s),
        window_seconds: query.window_s,
        covered_seconds: covered_s,
    })
}

/// The first minute (or hour) with requests matching `query` in its window, Unix seconds (0
/// when none).
pub(crate) fn first_data_query(
    store: &Store,
    query: &TopQuery,
    now_unix_s: u32,
) -> clickhouse::query::Query {
    let source = source_for(query.window_s);
    let sql = format!(
        "SELECT toUInt64(min(toUInt32({time}))) AS first_step FROM {table} WHERE {filter}",
        time = source.time,
        table = source.table,
        filter = filter_sql(source.time, query)
    );
    let now = u64::from(now_unix_s);
    bind_filter(
        store.client().query(&sql),
        now.saturating_sub(query.window_s),
        now + 60,
        query,
    )
}

/// The part of `query`'s window that holds data, in seconds: from the first minute (or hour)
/// with requests matching its filter to the window's end, at least one step and at most the
/// window (the whole window when nothing matches).
pub(crate) async fn covered_seconds(
    store: &Store,
    query: &TopQuery,
    now_unix_s: u32,
) -> Result<u64, QueryError> {
    let source = source_for(query.window_s);
    let now = u64::from(now_unix_s);
    let from = now.saturating_sub(query.window_s);
    let first: u64 = first_data_query(store, query, now_unix_s)
        .fetch_one()
        .await
        .map_err(StoreError::clickhouse("read the first minute with data"))?;
    Ok(if first < from {
        query.window_s
    } else {
        (now - first.min(now)).clamp(source.step_s.min(query.window_s), query.window_s)
    })
}

/// Milliseconds from microseconds.
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn rank(rows: Vec<EndpointRow>, query: &TopQuery, covered_s: u64) -> Vec<EndpointStats> {
    let mut service_time: HashMap<(String, String), u64> = HashMap::new();
    for r in &rows {
        *service_time
            .entry((r.service.clone(), r.kind_name.clone()))
            .or_default() += r.figures.sum_us;
    }
    let covered = covered_s.max(1) as f64;
    let mut stats: Vec<EndpointStats> = rows
        .into_iter()
        .filter(|r| r.figures.total > 0)
        .map(|r| {
            let service_total = service_time
                .get(&(r.service.clone(), r.kind_name.clone()))
                .copied()
                .unwrap_or(0);
            let f = &r.figures;
            EndpointStats {
                requests: f.req_total,
                rps: f.req_total as f64 / covered,
                errors: f.err_total,
                error_percent: 100.0 * f.err_total as f64 / f.req_total.max(1) as f64,
                p50_ms: ms(f.p50),
                p95_ms: ms(f.p95),
                p99_ms: ms(f.p99),
                total_time_ms: ms(f.sum_us),
                time_share_percent: if service_total == 0 {
                    0.0
                } else {
                    100.0 * f.sum_us as f64 / service_total as f64
                },
                mean_ms: ms(f.sum_us) / f.req_total.max(1) as f64,
                apdex: apdex_of(f),
                apdex_threshold_ms: ms(f.apdex_t),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds(per_service: &[(&str, u64)]) -> ApdexThresholds {
        ApdexThresholds {
            default_us: 500_000,
            per_service: per_service
                .iter()
                .map(|(s, t)| ((*s).to_owned(), *t))
                .collect(),
        }
    }

    /// The row threshold's SQL for `filter` with its values bound.
    fn row_threshold(apdex: &ApdexThresholds, filter: &TopQuery) -> String {
        apdex
            .bind(
                Store::unreachable().client().query(apdex.row_sql(filter)),
                filter,
            )
            .sql_display()
            .to_string()
    }

    #[test]
    fn a_row_threshold_is_one_value_unless_it_depends_on_the_service() {
        let every = TopQuery::service_wide(3600, String::new(), "server".into());
        let shop = TopQuery::service_wide(3600, "shop".into(), "server".into());
        let feed = TopQuery::one(3600, "feed".into(), "GET /".into(), "server".into());
        let apdex = thresholds(&[("shop", 90_000), ("search", 2_000), ("shop", 7)]);
        assert_eq!(row_threshold(&apdex, &shop), "toUInt64(90000)");
        assert_eq!(row_threshold(&apdex, &feed), "toUInt64(500000)");
        assert_eq!(row_threshold(&thresholds(&[]), &every), "toUInt64(500000)");
        // The first entry of a service counts.
        assert_eq!(
            row_threshold(&apdex, &every),
            "toUInt64(transform(service, ['shop','search'], [90000,2000], 500000))"
        );
    }
}
