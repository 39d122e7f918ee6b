//! What the capacity report reads from ClickHouse, and how it becomes the report's input:
//! requests per hour and per endpoint from `latency_hour`, minutes binned by load (with their
//! merged latency histograms, and the per-minute throughput figures read off them) from
//! `latency_minute`, process metrics per instance
//! and host metrics per host from `metric_hour`. Every value from the caller is bound; every
//! statement runs on ClickHouse 18.16 and on current releases (the compatibility test runs
//! them).

use super::progress::Progress;
use crate::aggregate::histogram::quantile_ms;
use crate::store::schema::{LATENCY_HOUR, LATENCY_MINUTE, METRIC_HOUR};
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_capacity::{
    EndpointInput, Filesystem, HostInput, InstanceSeries, LoadBin, MinuteLoad, ServiceHour,
    ServiceInput,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Bins per doubling of throughput (a bin spans about 9%).
pub(crate) const BINS_PER_DOUBLING: u32 = 8;
/// Process metrics the report reads, per instance.
pub(crate) const PROCESS_METRICS: [&str; 2] = ["process.cpu.time", "process.memory.usage"];
/// Host metrics the report reads, per host.
pub(crate) const HOST_METRICS: [&str; 4] = [
    "system.cpu.utilization",
    "system.memory.usage",
    "system.memory.limit",
    "system.filesystem.usage",
];

/// The window of one read: `[from, until)`, Unix seconds, and the one service or host asked
/// for (empty: all).
#[derive(Clone, Debug)]
pub(crate) struct Window<'a> {
    /// Start.
    pub(crate) from: u64,
    /// End.
    pub(crate) until: u64,
    /// Only this service.
    pub(crate) service: &'a str,
    /// Only this host.
    pub(crate) host: &'a str,
}

/// One service hour.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct HourRow {
    service: String,
    hour: u32,
    requests: u64,
}

/// Requests per service and hour (SERVER spans).
pub(crate) fn hours_query(store: &Store, w: &Window<'_>) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT service, toUInt32(hour) AS hour, sum(hour_requests) AS requests
             FROM {LATENCY_HOUR}
             WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND kind = 'server'
               AND service != '' AND (? = '' OR service = ?)
             GROUP BY service, hour"
        ))
        .bind(w.from)
        .bind(w.until)
        .bind(w.service)
        .bind(w.service)
}

/// One endpoint of one service over the load window.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct EndpointRow {
    service: String,
    operation: String,
    requests: u64,
    busiest_hour: u64,
    op_keys: Vec<u64>,
    op_counts: Vec<u64>,
}

/// Per service and endpoint (SERVER spans): requests, those of its busiest hour, and the merged
/// histogram, from `latency_hour`.
pub(crate) fn endpoints_query(store: &Store, w: &Window<'_>) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT service, operation, sum(req) AS requests, max(req) AS busiest_hour,
                    tupleElement(sumMap(k, c), 1) AS op_keys,
                    tupleElement(sumMap(k, c), 2) AS op_counts
             FROM (SELECT service, operation, hour, sum(hour_requests) AS req,
                          tupleElement(sumMap(hourlyMap.bucket, hourlyMap.count), 1) AS k,
                          tupleElement(sumMap(hourlyMap.bucket, hourlyMap.count), 2) AS c
                   FROM {LATENCY_HOUR}
                   WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND kind = 'server'
                     AND service != '' AND (? = '' OR service = ?)
                   GROUP BY service, operation, hour)
             GROUP BY service, operation ORDER BY service, requests DESC, operation"
        ))
        .bind(w.from)
        .bind(w.until)
        .bind(w.service)
        .bind(w.service)
}

/// One bin of minutes of one service.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct BinRow {
    service: String,
    minutes: u64,
    quietest: u64,
    busiest: u64,
    requests: u64,
    duration_sum_us: u64,
    bin_keys: Vec<u64>,
    bin_counts: Vec<u64>,
}

/// The minutes of every service grouped by throughput (bins of 1/8 of a doubling), with their
/// requests (and those of the quietest and busiest minute), durations and merged histogram
/// (output names differ from the inner columns: an alias equal to an aggregated column is a
/// nested aggregate to current ClickHouse). The per-minute figures (median, 99th percentile,
/// busiest) are read off the bins, so the minutes are read once. A minute's histograms (one per
/// endpoint and flush) are only gathered, not merged: one map per minute costs four times as
/// much on 18.16 as concatenating them and merging once per bin.
pub(crate) fn bins_query(store: &Store, w: &Window<'_>) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT service, count() AS minutes, min(r) AS quietest, max(r) AS busiest,
                    sum(r) AS requests, sum(d) AS duration_sum_us,
                    tupleElement(sumMap(keys, counts), 1) AS bin_keys,
                    tupleElement(sumMap(keys, counts), 2) AS bin_counts
             FROM (SELECT service, sum(requests) AS r, sum(duration_sum_us) AS d,
                          groupArrayArray(latencyMap.bucket) AS keys,
                          groupArrayArray(latencyMap.count) AS counts,
                          toInt32(floor(log2(r / 60) * {BINS_PER_DOUBLING})) AS bin
                   FROM {LATENCY_MINUTE}
                   WHERE minute >= toDateTime(?) AND minute < toDateTime(?)
                     AND kind = 'server' AND service != '' AND (? = '' OR service = ?)
                   GROUP BY service, minute
                   HAVING r > 0)
             GROUP BY service, bin ORDER BY service, bin"
        ))
        .bind(w.from)
        .bind(w.until)
        .bind(w.service)
        .bind(w.service)
}

/// One metric's hourly value for one key (a service's instance, or a host) and series.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct MetricRow {
    key: String,
    instance: String,
    name: String,
    series: String,
    hour: u32,
    last: f64,
    mean: f64,
}

/// Process metrics per service, instance and hour: the last value and the mean, added over the
/// instance's series.
pub(crate) fn process_query(store: &Store, w: &Window<'_>) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT service AS key, instance, name, '' AS series, toUInt32(hour) AS hour,
                    sum(l) AS last, sum(m) AS mean
             FROM (SELECT service, instance, name, series, hour,
                          argMaxMerge(hour_last) AS l,
                          sumMerge(hour_sum) / countMerge(hour_points) AS m
                   FROM {METRIC_HOUR}
                   WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND has(?, name)
                     AND (? = '' OR service = ?)
                   GROUP BY service, instance, name, series, hour)
             GROUP BY service, instance, name, hour"
        ))
        .bind(w.from)
        .bind(w.until)
        // A slice binds as an array (a fixed-size array would bind as a tuple).
        .bind(&PROCESS_METRICS[..])
        .bind(w.service)
        .bind(w.service)
}

/// Host metrics per host, series and hour: the last value and the mean, averaged over the
/// instances that report them (every process on a host sees the same host).
pub(crate) fn host_query(store: &Store, w: &Window<'_>) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT host AS key, '' AS instance, name, series, toUInt32(hour) AS hour,
                    avg(l) AS last, avg(m) AS mean
             FROM (SELECT host, instance, name, series, hour,
                          argMaxMerge(hour_last) AS l,
                          sumMerge(hour_sum) / countMerge(hour_points) AS m
                   FROM {METRIC_HOUR}
                   WHERE hour >= toDateTime(?) AND hour < toDateTime(?) AND has(?, name)
                     AND host != '' AND (? = '' OR host = ?)
                   GROUP BY host, instance, name, series, hour)
             GROUP BY host, name, series, hour"
        ))
        .bind(w.from)
        .bind(w.until)
        .bind(&HOST_METRICS[..])
        .bind(w.host)
        .bind(w.host)
}

/// What the store holds for a report.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// Per service, by name.
    pub(crate) services: Vec<ServiceInput>,
    /// Per host, by name.
    pub(crate) hosts: Vec<HostInput>,
    /// How long each read took, ms, by what it read (for the log).
    pub(crate) timings: Vec<(&'static str, u64)>,
}

/// Reads what a report needs: history (hours, metrics) over `history`, minutes over `minutes`;
/// the services unless one host is asked for, the hosts unless one service is. Each read is
/// a step of `progress`, and the step after the reads (a step more) is expected too.
pub(crate) async fn read(
    store: &Store,
    history: &Window<'_>,
    minutes: &Window<'_>,
    progress: &Progress,
) -> Result<Read, StoreError> {
    async fn fetch<T>(
        query: clickhouse::query::Query,
        what: &'static str,
        progress: &Progress,
        timings: &mut Vec<(&'static str, u64)>,
    ) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let started = std::time::Instant::now();
        let step = format!("reading {what}");
        progress.starting(&step);
        let rows = query
            .fetch_all()
            .await
            .map_err(StoreError::clickhouse(format!("read {what}")))?;
        progress.finished(&step);
        timings.push((what, started.elapsed().as_millis() as u64));
        Ok(rows)
    }
    let reads = if history.host.is_empty() { 4 } else { 0 }
        + if history.service.is_empty() { 1 } else { 0 };
    progress.expect(reads + 1);
    let mut timings = Vec::new();
    let mut read = Read::default();
    // A report on one host has no services, one on one service no hosts: only what is asked
    // for is read.
    if history.host.is_empty() {
        let mut hours: Vec<HourRow> = fetch(
            hours_query(store, history),
            "requests per hour",
            progress,
            &mut timings,
        )
        .await?;
        let endpoints: Vec<EndpointRow> = fetch(
            endpoints_query(store, minutes),
            "endpoints",
            progress,
            &mut timings,
        )
        .await?;
        let bins: Vec<BinRow> = fetch(
            bins_query(store, minutes),
            "minutes by load",
            progress,
            &mut timings,
        )
        .await?;
        let mut process: Vec<MetricRow> = fetch(
            process_query(store, history),
            "process metrics",
            progress,
            &mut timings,
        )
        .await?;
        // Sorted here, not by ORDER BY: on 18.16 sorting by strings costs more than the read.
        hours.sort_unstable_by(|a, b| (&a.service, a.hour).cmp(&(&b.service, b.hour)));
        process.sort_unstable_by(|a, b| {
            (&a.key, &a.instance, &a.name, a.hour).cmp(&(&b.key, &b.instance, &b.name, b.hour))
        });
        read.services = services(hours, endpoints, bins, process);
    }
    if history.service.is_empty() {
        let host_rows: Vec<MetricRow> = fetch(
            host_query(store, history),
            "host metrics",
            progress,
            &mut timings,
        )
        .await?;
        read.hosts = hosts(host_rows);
    }
    read.timings = timings;
    Ok(read)
}

/// The `q` quantile of minutes from their bins (in order of throughput): the bin holding the
/// rank, and within it a straight line from its quietest to its busiest minute.
fn minute_quantile(bins: &[&BinRow], q: f64) -> f64 {
    let total: u64 = bins.iter().map(|b| b.minutes).sum();
    let rank = (q * total.saturating_sub(1) as f64).round() as u64;
    let mut seen = 0;
    for b in bins {
        if rank < seen + b.minutes {
            let within = if b.minutes > 1 {
                (rank - seen) as f64 / (b.minutes - 1) as f64
            } else {
                0.0
            };
            return b.quietest as f64 + within * (b.busiest - b.quietest) as f64;
        }
        seen += b.minutes;
    }
    bins.last().map_or(0.0, |b| b.busiest as f64)
}

fn services(
    hours: Vec<HourRow>,
    endpoints: Vec<EndpointRow>,
    bins: Vec<BinRow>,
    process: Vec<MetricRow>,
) -> Vec<ServiceInput> {
    let mut by_name: BTreeMap<String, ServiceInput> = BTreeMap::new();
    for h in hours {
        by_name
            .entry(h.service.clone())
            .or_insert_with(|| ServiceInput {
                service: h.service.clone(),
                ..ServiceInput::default()
            })
            .hours
            .push(ServiceHour {
                hour: i64::from(h.hour),
                requests: h.requests,
            });
    }
    for e in endpoints {
        if let Some(s) = by_name.get_mut(&e.service) {
            s.endpoints.push(EndpointInput {
                p50_ms: quantile_ms(&e.op_keys, &e.op_counts, 0.5),
                p99_ms: quantile_ms(&e.op_keys, &e.op_counts, 0.99),
                operation: e.operation,
                requests: e.requests,
                busiest_hour_requests: e.busiest_hour,
            });
        }
    }
    let mut by_service: BTreeMap<&str, Vec<&BinRow>> = BTreeMap::new();
    for b in &bins {
        by_service.entry(&b.service).or_default().push(b);
    }
    for (service, service_bins) in by_service {
        let Some(s) = by_name.get_mut(service) else {
            continue;
        };
        s.minutes = MinuteLoad {
            minutes: service_bins.iter().map(|b| b.minutes).sum(),
            median: minute_quantile(&service_bins, 0.5),
            p99: minute_quantile(&service_bins, 0.99),
            max: service_bins
                .iter()
                .map(|b| b.busiest as f64)
                .fold(0.0, f64::max),
        };
        for b in service_bins {
            let ms = |q| quantile_ms(&b.bin_keys, &b.bin_counts, q);
            s.load_bins.push(LoadBin {
                minutes: b.minutes,
                requests: b.requests,
                duration_sum_us: b.duration_sum_us,
                p50_ms: ms(0.5),
                p95_ms: ms(0.95),
                p99_ms: ms(0.99),
            });
        }
    }
    for row in process {
        let Some(s) = by_name.get_mut(&row.key) else {
            continue;
        };
        let (list, value) = if row.name == PROCESS_METRICS[0] {
            (&mut s.cpu_seconds, row.last)
        } else {
            (&mut s.memory_bytes, row.mean)
        };
        match list.last_mut() {
            Some(series) if series.instance == row.instance => {
                series.points.push((i64::from(row.hour), value));
            }
            _ => list.push(InstanceSeries {
                instance: row.instance,
                points: vec![(i64::from(row.hour), value)],
            }),
        }
    }
    by_name.into_values().collect()
}

/// The value of `key` in a series string (`k=v,k=v`).
fn attribute<'a>(series: &'a str, key: &str) -> Option<&'a str> {
    series
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn hosts(rows: Vec<MetricRow>) -> Vec<HostInput> {
    // (host) → hour → what was seen.
    #[derive(Default)]
    struct Hour {
        cpu: Option<f64>,
        memory_used: Option<f64>,
        memory_free: Option<f64>,
        memory_limit: Option<f64>,
        disks: BTreeMap<String, (Option<f64>, Option<f64>)>,
    }
    let mut by_host: BTreeMap<String, BTreeMap<i64, Hour>> = BTreeMap::new();
    for row in rows {
        let hour = by_host
            .entry(row.key.clone())
            .or_default()
            .entry(i64::from(row.hour))
            .or_default();
        match row.name.as_str() {
            "system.cpu.utilization" => hour.cpu = Some(row.mean),
            "system.memory.limit" => hour.memory_limit = Some(row.mean),
            "system.memory.usage" => match attribute(&row.series, "system.memory.state") {
                Some("used") => hour.memory_used = Some(row.mean),
                Some("free") => hour.memory_free = Some(row.mean),
                _ => {}
            },
            "system.filesystem.usage" => {
                let Some(mount) = attribute(&row.series, "system.filesystem.mountpoint") else {
                    continue;
                };
                let slot = hour.disks.entry(mount.to_owned()).or_default();
                match attribute(&row.series, "system.filesystem.state") {
                    Some("used") => slot.0 = Some(row.last),
                    Some("free") => slot.1 = Some(row.last),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    by_host
        .into_iter()
        .map(|(host, hours)| {
            let mut input = HostInput {
                host,
                ..HostInput::default()
            };
            let mut disks: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            for (t, h) in hours {
                if let Some(cpu) = h.cpu {
                    input.cpu.push((t, cpu));
                }
                let total = h
                    .memory_limit
                    .or_else(|| Some(h.memory_used? + h.memory_free?));
                if let (Some(used), Some(total)) = (h.memory_used, total)
                    && total > 0.0
                {
                    input.memory.push((t, used / total));
                }
                for (mount, (used, free)) in h.disks {
                    if let (Some(used), Some(free)) = (used, free)
                        && used + free > 0.0
                    {
                        disks
                            .entry(mount)
                            .or_default()
                            .push((t, used / (used + free)));
                    }
                }
            }
            input.filesystems = disks
                .into_iter()
                .map(|(mount, points)| Filesystem { mount, points })
                .collect();
            input
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_quantiles_are_read_off_the_bins() {
        let bin = |minutes, quietest, busiest| BinRow {
            service: "s".into(),
            minutes,
            quietest,
            busiest,
            requests: 0,
            duration_sum_us: 0,
            bin_keys: Vec::new(),
            bin_counts: Vec::new(),
        };
        // Minutes of 10, 11, ..., 20 requests in one bin, and one minute of 100 in another.
        let (low, high) = (bin(11, 10, 20), bin(1, 100, 100));
        let bins = [&low, &high];
        assert_eq!(minute_quantile(&bins, 0.0), 10.0);
        // The median rank of 12 minutes rounds to the 7th: 16 requests.
        assert_eq!(minute_quantile(&bins, 0.5), 16.0);
        assert_eq!(minute_quantile(&bins, 1.0), 100.0);
    }

    #[test]
    fn series_attributes_are_read_by_key() {
        let s = "system.filesystem.mountpoint=/data,system.filesystem.state=used";
        assert_eq!(attribute(s, "system.filesystem.mountpoint"), Some("/data"));
        assert_eq!(attribute(s, "system.filesystem.state"), Some("used"));
        assert_eq!(attribute(s, "nope"), None);
    }
}
