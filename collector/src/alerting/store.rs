//! What alerting keeps in ClickHouse: every probe check (`probe_results`), per-minute, per-hour
//! and per-day rollups of them (`probe_minute`, filled by the collector; `probe_hour` and
//! `probe_day`, by materialized views), the alert history (`alert_events`) and every delivery attempt
//! (`notification_log`); and the queries `plumb uptime` and `plumb alerts` read them with.
//!
//! Uptime over 90 days is one read of at most 90 rows per probe from `probe_day`. Every
//! statement runs on ClickHouse 18.16 and on current releases (the compatibility test runs them).

use crate::aggregate::histogram::{LatencyHistogram, quantile_ms};
use crate::store::schema::{
    ALERT_EVENTS, NOTIFICATION_LOG, PROBE_DAY, PROBE_HOUR, PROBE_MINUTE, PROBE_RESULTS,
};
use crate::store::{Store, StoreError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One check, as stored.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub(crate) struct ProbeResultRow {
    /// When the check ended, seconds.
    pub(crate) time: u32,
    /// The same, ns.
    pub(crate) time_ns: u64,
    /// The probe.
    pub(crate) probe: String,
    /// Where it ran (the collector's location).
    pub(crate) location: String,
    /// 1 when it passed.
    pub(crate) success: u8,
    /// The whole check, µs.
    pub(crate) duration_us: u64,
    /// Name resolution, µs.
    pub(crate) dns_us: u64,
    /// TCP connect, µs.
    pub(crate) connect_us: u64,
    /// TLS handshake, µs.
    pub(crate) tls_us: u64,
    /// Request to first byte, µs.
    pub(crate) first_byte_us: u64,
    /// HTTP status (0: none).
    pub(crate) status: u16,
    /// Why it failed.
    pub(crate) error: String,
    /// Days left on the leaf certificate (-1: no TLS).
    pub(crate) leaf_days_left: i32,
    /// Days left on the earliest-expiring certificate of the chain (-1: no TLS).
    pub(crate) chain_days_left: i32,
}

/// One probe's checks of one minute.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub(crate) struct ProbeMinuteRow {
    /// Start of the minute.
    pub(crate) minute: u32,
    /// The probe.
    pub(crate) probe: String,
    /// Where it ran.
    pub(crate) location: String,
    /// Checks.
    pub(crate) checks: u64,
    /// Failed checks.
    pub(crate) failures: u64,
    /// Sum of check durations, µs.
    pub(crate) duration_sum_us: u64,
    /// Duration histogram bucket keys (µs).
    #[serde(rename = "probeMap.bucket")]
    pub(crate) buckets: Vec<u64>,
    /// Counts per bucket.
    #[serde(rename = "probeMap.count")]
    pub(crate) counts: Vec<u64>,
}

/// One change of an alert's state.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub(crate) struct AlertEventRow {
    /// When, seconds.
    pub(crate) time: u32,
    /// The alert's fingerprint.
    pub(crate) fingerprint: String,
    /// Its `alertname`.
    pub(crate) alertname: String,
    /// Its labels as `k=v` pairs.
    #[serde(rename = "labels.key")]
    pub(crate) label_keys: Vec<String>,
    /// Label values.
    #[serde(rename = "labels.value")]
    pub(crate) label_values: Vec<String>,
    /// The state left.
    pub(crate) from_state: String,
    /// The state entered.
    pub(crate) to_state: String,
    /// What was seen.
    pub(crate) detail: String,
}

/// One delivery attempt.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub(crate) struct NotificationRow {
    /// When, seconds.
    pub(crate) time: u32,
    /// The group.
    pub(crate) group_key: String,
    /// The receiver.
    pub(crate) receiver: String,
    /// `webhook`, `slack`, `pagerduty`.
    pub(crate) integration: String,
    /// `firing` or `resolved`.
    pub(crate) status: String,
    /// Alerts in the message.
    pub(crate) alerts: u32,
    /// Attempt number, from 1.
    pub(crate) attempt: u32,
    /// 1 when the receiver took it.
    pub(crate) ok: u8,
    /// The receiver's answer or the error.
    pub(crate) outcome: String,
}

/// One probe's checks of one minute, while they are summed.
#[derive(Default)]
struct MinuteSums {
    checks: u64,
    failures: u64,
    duration_sum_us: u64,
    histogram: LatencyHistogram,
}

/// The per-minute rollup of `results`.
pub(crate) fn minute_rows(results: &[ProbeResultRow]) -> Vec<ProbeMinuteRow> {
    let mut by_key: BTreeMap<(u32, &str, &str), MinuteSums> = BTreeMap::new();
    for r in results {
        let sums = by_key
            .entry((r.time - r.time % 60, &r.probe, &r.location))
            .or_default();
        sums.checks += 1;
        sums.failures += u64::from(r.success == 0);
        sums.duration_sum_us += r.duration_us;
        sums.histogram.record(r.duration_us);
    }
    by_key
        .into_iter()
        .map(|((minute, probe, location), sums)| {
            let (buckets, counts) = sums.histogram.into_buckets();
            ProbeMinuteRow {
                minute,
                probe: probe.to_owned(),
                location: location.to_owned(),
                checks: sums.checks,
                failures: sums.failures,
                duration_sum_us: sums.duration_sum_us,
                buckets,
                counts,
            }
        })
        .collect()
}

/// Writes checks.
pub(crate) async fn write_results(
    store: &Store,
    results: &[ProbeResultRow],
) -> Result<(), StoreError> {
    store.insert(PROBE_RESULTS, results).await
}

/// Writes per-minute rollup rows.
pub(crate) async fn write_minutes(
    store: &Store,
    rows: &[ProbeMinuteRow],
) -> Result<(), StoreError> {
    store.insert(PROBE_MINUTE, rows).await
}

/// Writes alert history rows.
pub(crate) async fn write_events(
    store: &Store,
    events: &[AlertEventRow],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    store.insert(ALERT_EVENTS, events).await
}

/// Writes delivery attempts.
pub(crate) async fn write_notifications(
    store: &Store,
    rows: &[NotificationRow],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store.insert(NOTIFICATION_LOG, rows).await
}

/// One probe's uptime over a window.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct UptimeRow {
    /// The probe.
    pub(crate) probe: String,
    /// Checks.
    pub(crate) checks: u64,
    /// Failed checks.
    pub(crate) failures: u64,
    /// Duration histogram keys.
    pub(crate) keys: Vec<u64>,
    /// Counts per key.
    pub(crate) counts: Vec<u64>,
}

/// Windows up to this long read per-minute rows.
const MINUTES_UP_TO_S: u64 = 6 * 3600;
/// Windows up to this long (and over [`MINUTES_UP_TO_S`]) read per-hour rows; longer ones read
/// per-day rows.
const HOURS_UP_TO_S: u64 = 7 * 86_400;

/// The query behind `plumb uptime`: per probe, checks, failures and the duration histogram since
/// `from`, from the finest rollup that keeps the read small: minutes up to 6 hours, hours up to
/// 7 days (at most 168 rows per probe), whole days beyond (at most 90 rows per probe for 90
/// days). The window starts at the start of `from`'s hour or day for the coarser two.
pub(crate) fn uptime_query(
    store: &Store,
    from_unix_s: u64,
    window_s: u64,
) -> clickhouse::query::Query {
    let (table, time, prefix, start) = match window_s {
        w if w <= MINUTES_UP_TO_S => (PROBE_MINUTE, "minute", "", "toDateTime(?)"),
        w if w <= HOURS_UP_TO_S => (PROBE_HOUR, "hour", "hour_", "toStartOfHour(toDateTime(?))"),
        _ => (PROBE_DAY, "day", "day_", "toStartOfDay(toDateTime(?))"),
    };
    let map = if prefix.is_empty() {
        "probeMap".to_owned()
    } else {
        format!("{time}Map")
    };
    let sql = format!(
        "SELECT probe, sum({prefix}checks) AS checks, sum({prefix}failures) AS failures,
                tupleElement(sumMap({map}.bucket, {map}.count), 1) AS keys,
                tupleElement(sumMap({map}.bucket, {map}.count), 2) AS counts
         FROM {table} WHERE {time} >= {start}
         GROUP BY probe ORDER BY probe"
    );
    store.client().query(&sql).bind(from_unix_s)
}

/// Days of daily uptime shown (a status page's 90-day bar).
pub(crate) const DAILY_DAYS: u64 = 90;

/// One day of one probe at one location.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct DayRow {
    /// The probe.
    pub(crate) probe: String,
    /// Where it ran.
    pub(crate) location: String,
    /// Start of the day, Unix seconds.
    pub(crate) day_start: u32,
    /// Checks run.
    pub(crate) checks: u64,
    /// Checks failed.
    pub(crate) failures: u64,
}

/// Checks and failures per probe, location and day from the daily rollup, for the
/// [`DAILY_DAYS`] days up to `now`.
pub(crate) fn daily_query(store: &Store, now_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT probe, location, toUInt32(day) AS day_start,
                    sum(day_checks) AS checks, sum(day_failures) AS failures
             FROM {PROBE_DAY}
             WHERE day >= toStartOfDay(toDateTime(?))
             GROUP BY probe, location, day
             ORDER BY probe, location, day"
        ))
        .bind(now_unix_s.saturating_sub((DAILY_DAYS - 1) * 86_400))
}

/// The latest certificate days and check per probe.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct LatestRow {
    /// The probe.
    pub(crate) probe: String,
    /// Time of its last check.
    pub(crate) last_check: u32,
    /// Whether that check passed.
    pub(crate) last_success: u8,
    /// Days left on the earliest-expiring certificate at the last check (-1: no TLS).
    pub(crate) chain_days_left: i32,
}

/// The last check of every probe in the last day.
pub(crate) fn latest_query(store: &Store, now_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT probe, max(time) AS last_check, argMax(success, time) AS last_success,
                    argMax(chain_days_left, time) AS chain_days_left
             FROM {PROBE_RESULTS} WHERE time >= toDateTime(?) GROUP BY probe"
        ))
        .bind(now_unix_s.saturating_sub(86_400))
}

/// The last state change of every alert whose name is a probe's.
#[derive(Debug, Row, Deserialize)]
pub(crate) struct LastChangeRow {
    /// The alert name.
    pub(crate) alertname: String,
    /// When it last changed.
    pub(crate) changed: u32,
    /// The state it entered.
    pub(crate) to_state: String,
}

/// The last change per alert name since `from`.
pub(crate) fn last_change_query(store: &Store, from_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT alertname, max(time) AS changed, argMax(to_state, time) AS to_state
             FROM {ALERT_EVENTS} WHERE time >= toDateTime(?) GROUP BY alertname"
        ))
        .bind(from_unix_s)
}

/// History rows since `from`, newest first.
pub(crate) fn history_query(store: &Store, from_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT time, fingerprint, alertname, labels.key, labels.value, from_state, to_state, detail
             FROM {ALERT_EVENTS} WHERE time >= toDateTime(?) ORDER BY time DESC LIMIT 1000"
        ))
        .bind(from_unix_s)
}

/// Delivery attempts since `from`, newest first.
pub(crate) fn deliveries_query(store: &Store, from_unix_s: u64) -> clickhouse::query::Query {
    store
        .client()
        .query(&format!(
            "SELECT time, group_key, receiver, integration, status, alerts, attempt, ok, outcome
             FROM {NOTIFICATION_LOG} WHERE time >= toDateTime(?) ORDER BY time DESC LIMIT 1000"
        ))
        .bind(from_unix_s)
}

/// p50 and p95 (ms) from a histogram read back.
pub(crate) fn percentiles_ms(keys: &[u64], counts: &[u64]) -> (f64, f64) {
    (
        quantile_ms(keys, counts, 0.5),
        quantile_ms(keys, counts, 0.95),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(time: u32, probe: &str, ok: bool, us: u64) -> ProbeResultRow {
        ProbeResultRow {
            time,
            time_ns: u64::from(time) * 1_000_000_000,
            probe: probe.into(),
            location: "local".into(),
            success: u8::from(ok),
            duration_us: us,
            dns_us: 0,
            connect_us: 0,
            tls_us: 0,
            first_byte_us: 0,
            status: 200,
            error: String::new(),
            leaf_days_left: -1,
            chain_days_left: -1,
        }
    }

    #[test]
    fn checks_roll_up_by_minute_and_probe() {
        let rows = minute_rows(&[
            result(120, "a", true, 1000),
            result(170, "a", false, 3000),
            result(180, "a", true, 1000),
            result(125, "b", true, 500),
        ]);
        let summary: Vec<(u32, &str, u64, u64, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.minute,
                    r.probe.as_str(),
                    r.checks,
                    r.failures,
                    r.duration_sum_us,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (120, "a", 2, 1, 4000),
                (120, "b", 1, 0, 500),
                (180, "a", 1, 0, 1000)
            ]
        );
        assert_eq!(rows[0].counts.iter().sum::<u64>(), 2);
    }
}
