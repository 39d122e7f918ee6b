//! The answers to `plumb alerts` and `plumb uptime`: the engine's live view of active alerts,
//! and the history, deliveries and uptime read back from ClickHouse.

use super::AlertsView;
use super::silence::{self, SilenceRow};
use super::state::Status;
use super::store::{
    DayRow, LastChangeRow, LatestRow, UptimeRow, daily_query, deliveries_query, history_query,
    last_change_query, latest_query, percentiles_ms, uptime_query,
};
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{
    ActiveAlert, AddSilenceRequest, AlertEvent, AlertsRequest, AlertsResponse, DayUptime,
    DeliveryAttempt, ExpireSilenceRequest, ListSilencesResponse, LocationDays, MaintenanceWindow,
    ProbeUptime, Silence, UptimeRequest, UptimeResponse,
};
use serde::Deserialize;
use std::collections::HashMap;

/// Default window of the history and deliveries.
const DEFAULT_HISTORY_S: u64 = 86_400;
/// Default window of `plumb uptime`.
const DEFAULT_UPTIME_S: u64 = 86_400;
/// Longest window of `plumb uptime`.
const MAX_UPTIME_S: u64 = 400 * 86_400;

/// Why a question about alerts cannot be answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AlertsError {
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// ClickHouse failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Row, Deserialize)]
struct EventRow {
    time: u32,
    fingerprint: String,
    alertname: String,
    #[serde(rename = "labels.key")]
    keys: Vec<String>,
    #[serde(rename = "labels.value")]
    values: Vec<String>,
    from_state: String,
    to_state: String,
    detail: String,
}

#[derive(Debug, Row, Deserialize)]
struct DeliveryRow {
    time: u32,
    group_key: String,
    receiver: String,
    integration: String,
    status: String,
    alerts: u32,
    attempt: u32,
    ok: u8,
    outcome: String,
}

/// Active alerts (from `view`, when alerting runs), history and deliveries.
pub(crate) async fn alerts(
    store: &Store,
    view: Option<&AlertsView>,
    r: AlertsRequest,
    now: u64,
) -> Result<AlertsResponse, AlertsError> {
    let wanted: &[Status] = match r.state.as_str() {
        "" | "all" => &[Status::Pending, Status::Firing],
        "firing" => &[Status::Firing],
        "pending" => &[Status::Pending],
        other => {
            return Err(AlertsError::Invalid(format!(
                "unknown state {other:?}: use firing, pending or all"
            )));
        }
    };
    let from = now.saturating_sub(if r.history_seconds == 0 {
        DEFAULT_HISTORY_S
    } else {
        r.history_seconds
    });
    let active = view
        .map(AlertsView::active)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| wanted.contains(&a.status))
        .map(|a| ActiveAlert {
            name: a.labels.get("alertname").cloned().unwrap_or_default(),
            state: a.status.name().to_owned(),
            fingerprint: super::state::fingerprint(&a.labels),
            labels: a.labels.into_iter().collect(),
            detail: a.detail,
            active_since_unix_s: a.active_since,
            fired_at_unix_s: a.fired_at.unwrap_or(0),
        })
        .collect();
    let what = |w: &str| StoreError::clickhouse(w.to_owned());
    let history: Vec<EventRow> = history_query(store, from)
        .fetch_all()
        .await
        .map_err(what("read alert history"))?;
    let deliveries: Vec<DeliveryRow> = deliveries_query(store, from)
        .fetch_all()
        .await
        .map_err(what("read notification log"))?;
    Ok(AlertsResponse {
        active,
        history: history
            .into_iter()
            .map(|e| AlertEvent {
                time_unix_s: u64::from(e.time),
                name: e.alertname,
                fingerprint: e.fingerprint,
                from_state: e.from_state,
                to_state: e.to_state,
                detail: e.detail,
                labels: e.keys.into_iter().zip(e.values).collect(),
            })
            .collect(),
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryAttempt {
                time_unix_s: u64::from(d.time),
                group_key: d.group_key,
                receiver: d.receiver,
                integration: d.integration,
                status: d.status,
                alerts: d.alerts,
                attempt: d.attempt,
                ok: d.ok == 1,
                outcome: d.outcome,
            })
            .collect(),
        alerting_enabled: view.is_some(),
        maintenance: view
            .map(AlertsView::maintenance)
            .unwrap_or_default()
            .iter()
            .map(|m| MaintenanceWindow {
                schedule: m.schedule.to_string(),
                duration_seconds: m.duration.as_secs(),
                timezone: m.timezone.iana_name().unwrap_or("UTC").to_owned(),
                matchers: m.matchers.iter().map(ToString::to_string).collect(),
                open: m.open_at(i64::try_from(now).unwrap_or(i64::MAX)),
            })
            .collect(),
    })
}

/// Uptime per probe over the window.
pub(crate) async fn uptime(
    store: &Store,
    r: UptimeRequest,
    now: u64,
) -> Result<UptimeResponse, AlertsError> {
    let window = if r.since_seconds == 0 {
        DEFAULT_UPTIME_S
    } else {
        r.since_seconds
    };
    if window > MAX_UPTIME_S {
        return Err(AlertsError::Invalid(format!(
            "since is at most {} days",
            MAX_UPTIME_S / 86_400
        )));
    }
    let from = now.saturating_sub(window);
    let what = |w: &str| StoreError::clickhouse(w.to_owned());
    let (rows, latest, changes, days) = tokio::try_join!(
        async {
            uptime_query(store, from, window)
                .fetch_all::<UptimeRow>()
                .await
                .map_err(what("read probe rollups"))
        },
        async {
            latest_query(store, now)
                .fetch_all::<LatestRow>()
                .await
                .map_err(what("read latest probe checks"))
        },
        async {
            last_change_query(store, from)
                .fetch_all::<LastChangeRow>()
                .await
                .map_err(what("read probe changes"))
        },
        async {
            daily_query(store, now)
                .fetch_all::<DayRow>()
                .await
                .map_err(what("read daily probe rollups"))
        },
    )?;
    let latest: HashMap<String, LatestRow> =
        latest.into_iter().map(|l| (l.probe.clone(), l)).collect();
    let changes: HashMap<String, LastChangeRow> = changes
        .into_iter()
        .map(|c| (c.alertname.clone(), c))
        .collect();
    let probes = rows
        .into_iter()
        .map(|row| {
            let (p50_ms, p95_ms) = percentiles_ms(&row.keys, &row.counts);
            let last = latest.get(&row.probe);
            let change = changes.get(&row.probe);
            ProbeUptime {
                uptime_percent: share_up(row.checks, row.failures),
                checks: row.checks,
                failures: row.failures,
                p50_ms,
                p95_ms,
                last_change_unix_s: change.map_or(0, |c| u64::from(c.changed)),
                last_change: change.map(|c| c.to_state.clone()).unwrap_or_default(),
                certificate_days_left: last.map_or(-1, |l| l.chain_days_left),
                up: last.is_some_and(|l| l.last_success == 1),
                last_check_unix_s: last.map_or(0, |l| u64::from(l.last_check)),
                probe: row.probe,
            }
        })
        .collect();
    Ok(UptimeResponse {
        probes,
        window_seconds: window,
        daily: daily(days),
    })
}

/// The days in order, one entry per probe and location.
fn daily(rows: Vec<DayRow>) -> Vec<LocationDays> {
    let mut out: Vec<LocationDays> = Vec::new();
    for row in rows {
        let day = DayUptime {
            day_unix_s: u64::from(row.day_start),
            checks: row.checks,
            failures: row.failures,
            uptime_percent: share_up(row.checks, row.failures),
        };
        match out.last_mut() {
            Some(l) if l.probe == row.probe && l.location == row.location => l.days.push(day),
            _ => out.push(LocationDays {
                probe: row.probe,
                location: row.location,
                days: vec![day],
            }),
        }
    }
    out
}

/// Percent of checks that passed (0 without checks).
fn share_up(checks: u64, failures: u64) -> f64 {
    if checks == 0 {
        0.0
    } else {
        100.0 * (checks - failures.min(checks)) as f64 / checks as f64
    }
}

/// Creates a silence from now for the request's duration.
pub(crate) async fn add_silence(
    store: &Store,
    r: AddSilenceRequest,
    now: u64,
) -> Result<Silence, AlertsError> {
    if r.matchers.is_empty() {
        return Err(AlertsError::Invalid(
            "a silence needs at least one matcher, e.g. alertname=shop-health".into(),
        ));
    }
    for m in &r.matchers {
        m.parse::<plumb_alert_config::Matcher>()
            .map_err(AlertsError::Invalid)?;
    }
    if r.duration_seconds == 0 || r.duration_seconds > silence::MAX_SECONDS {
        return Err(AlertsError::Invalid(format!(
            "a silence lasts from 1 s to {} days",
            silence::MAX_SECONDS / 86_400
        )));
    }
    let to_u32 = |s: u64| u32::try_from(s).unwrap_or(u32::MAX);
    let row = SilenceRow {
        id: format!("{:016x}", fastrand::u64(..)),
        version: crate::clock::now_unix_ns(),
        matchers: r.matchers,
        starts_at: to_u32(now),
        ends_at: to_u32(now + r.duration_seconds),
        comment: r.comment,
        created_by: r.created_by,
    };
    silence::write(store, &row).await?;
    Ok(silence::message(&row, now))
}

/// The silences that have not ended.
pub(crate) async fn list_silences(
    store: &Store,
    now: u64,
) -> Result<ListSilencesResponse, AlertsError> {
    let rows = silence::current(store, now).await?;
    Ok(ListSilencesResponse {
        silences: rows.iter().map(|r| silence::message(r, now)).collect(),
    })
}

/// Ends the silence `id` now.
pub(crate) async fn expire_silence(
    store: &Store,
    r: ExpireSilenceRequest,
    now: u64,
) -> Result<Silence, AlertsError> {
    let rows = silence::current(store, now).await?;
    let Some(found) = rows.into_iter().find(|s| s.id == r.id) else {
        return Err(AlertsError::NotFound(format!(
            "no silence {:?} is in force",
            r.id
        )));
    };
    let row = SilenceRow {
        version: crate::clock::now_unix_ns(),
        ends_at: u32::try_from(now).unwrap_or(u32::MAX),
        ..found
    };
    silence::write(store, &row).await?;
    Ok(silence::message(&row, now))
}
