//! The capacity planning report, served by the query API: the request is checked, the series
//! are read from the rollups ([`store`]), and `plumb-capacity` works out and renders the
//! report. It reads from the store only, never from the ingest path.
//!
//! The window ends at the last whole hour. Load figures cover `since`; forecasts read at least
//! as much history as the horizon (the hourly rollups are kept for `--rollup-retention-days`),
//! so a 90-day horizon can be forecast from a 30-day window when 90 days are stored. Per-minute
//! figures (typical and peak load, latency against load) read `latency_minute`, which is kept
//! for `--retention-days`.

pub(crate) mod progress;
pub(crate) mod store;

use crate::query::QueryError;
use crate::store::Store;
use plumb_capacity::render::{Format, render};
use plumb_capacity::{CapacityError, Input, Limits};
use plumb_proto::v1::{CapacityReportRequest, CapacityReportResponse};
use progress::Progress;
use std::sync::Arc;
use std::time::Instant;

/// Default load window.
const DEFAULT_SINCE_S: u64 = 30 * 86_400;
/// Longest load window (the rollups' default retention).
const MAX_SINCE_S: u64 = 400 * 86_400;
/// Default horizon.
const DEFAULT_HORIZON_S: u64 = 90 * 86_400;
/// Default p99 objective, ms.
const DEFAULT_OBJECTIVE_MS: f64 = 500.0;

/// The request, checked.
#[derive(Debug)]
struct Asked {
    since_s: u64,
    horizon_days: u32,
    format: Format,
    limits: Limits,
    objective_ms: f64,
}

fn check(r: &CapacityReportRequest) -> Result<Asked, QueryError> {
    let bad = |m: String| QueryError::InvalidArgument(m);
    let since_s = match r.since_seconds {
        0 => DEFAULT_SINCE_S,
        s if s < 3600 => {
            return Err(bad(
                "the window must be at least an hour: the report reads hourly rollups".into(),
            ));
        }
        s if s > MAX_SINCE_S => return Err(bad("the window may be at most 400 days".into())),
        s => s,
    };
    let horizon_s = if r.horizon_seconds == 0 {
        DEFAULT_HORIZON_S
    } else {
        r.horizon_seconds
    };
    let horizon_days = u32::try_from(horizon_s.div_ceil(86_400)).unwrap_or(u32::MAX);
    if horizon_days > plumb_capacity::forecast::MAX_HORIZON_DAYS {
        return Err(bad(format!(
            "a horizon of {horizon_days} days is over the limit of {} days",
            plumb_capacity::forecast::MAX_HORIZON_DAYS
        )));
    }
    let format = match r.format.as_str() {
        "" => Format::Json,
        f => f.parse::<Format>().map_err(bad)?,
    };
    let share = |value: f64, default: f64, name: &str| {
        if value == 0.0 {
            Ok(default)
        } else if value > 0.0 && value <= 1.0 {
            Ok(value)
        } else {
            Err(bad(format!("{name} must be a share above 0 and at most 1")))
        }
    };
    let defaults = Limits::default();
    let limits = Limits {
        cpu: share(r.cpu_limit, defaults.cpu, "cpu_limit")?,
        memory: share(r.memory_limit, defaults.memory, "memory_limit")?,
        disk: share(r.disk_limit, defaults.disk, "disk_limit")?,
    };
    let objective_ms = if r.latency_objective_ms == 0.0 {
        DEFAULT_OBJECTIVE_MS
    } else if r.latency_objective_ms > 0.0 && r.latency_objective_ms.is_finite() {
        r.latency_objective_ms
    } else {
        return Err(bad("latency_objective_ms must be above 0".into()));
    };
    Ok(Asked {
        since_s,
        horizon_days,
        format,
        limits,
        objective_ms,
    })
}

/// What is being done while the report is rendered.
const RENDERING: &str = "rendering";
/// What is being done while services and hosts are modelled.
const MODELLING: &str = "modelling services and hosts";

/// The report for `r`, at `now` (Unix seconds), telling `progress` how far it has got.
pub(crate) async fn capacity(
    store: &Store,
    r: CapacityReportRequest,
    now: u64,
    progress: Arc<Progress>,
) -> Result<CapacityReportResponse, QueryError> {
    let asked = check(&r)?;
    let until = now / 3600 * 3600;
    let since = until.saturating_sub(asked.since_s);
    let history_s = asked.since_s.max(u64::from(asked.horizon_days) * 86_400);
    let history = store::Window {
        from: until.saturating_sub(history_s),
        until,
        service: &r.service,
        host: &r.host,
    };
    let minutes = store::Window {
        from: since,
        ..history.clone()
    };
    let started = Instant::now();
    let read = store::read(store, &history, &minutes, &progress).await?;
    let read_time = started.elapsed();
    let (services, hosts, timings) = (read.services, read.hosts, read.timings);
    if !r.service.is_empty() && services.is_empty() {
        return Err(QueryError::NotFound(format!(
            "no service named {:?} sent requests in the window",
            r.service
        )));
    }
    if !r.host.is_empty() && hosts.is_empty() {
        return Err(QueryError::NotFound(format!(
            "no host named {:?} sent host metrics in the window",
            r.host
        )));
    }
    if services.is_empty() && hosts.is_empty() {
        return Err(QueryError::NotFound(
            "nothing was stored in the window: no requests and no host metrics".into(),
        ));
    }
    let to_i64 = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    let input = Input {
        until: to_i64(until),
        since: to_i64(since),
        horizon_days: asked.horizon_days,
        limits: asked.limits,
        latency_objective_ms: asked.objective_ms,
        services,
        hosts,
    };
    let started = Instant::now();
    // Each service and host is a step, and the rendering one more.
    let items = input.services.len() + input.hosts.len();
    progress.expect(u32::try_from(items).unwrap_or(u32::MAX));
    progress.starting(MODELLING);
    // The models take whole cores for a while: off the runtime's worker threads.
    let format = asked.format;
    let (report, document) = tokio::task::spawn_blocking(move || {
        plumb_capacity::build_with_progress(&input, &|| progress.finished(MODELLING)).map(
            |report| {
                progress.starting(RENDERING);
                let document = render(&report, format);
                progress.finished(RENDERING);
                (report, document)
            },
        )
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "the capacity report failed");
        QueryError::Internal(format!("the report failed: {e}"))
    })?
    .map_err(|e| match e {
        CapacityError::EmptyWindow
        | CapacityError::HorizonTooLong(_)
        | CapacityError::BadLimit(_) => QueryError::InvalidArgument(e.to_string()),
    })?;
    tracing::info!(
        services = report.services.len(),
        hosts = report.hosts.len(),
        store_ms = read_time.as_millis() as u64,
        model_ms = started.elapsed().as_millis() as u64,
        reads = ?timings,
        "capacity report"
    );
    Ok(CapacityReportResponse {
        document,
        content_type: match asked.format {
            Format::Json => "application/json",
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
        .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let asked = |r: CapacityReportRequest| check(&r).map_err(|e| e.to_string());
        let ok = asked(CapacityReportRequest::default()).expect("defaults");
        assert_eq!(
            (ok.since_s, ok.horizon_days, ok.format),
            (30 * 86_400, 90, Format::Json)
        );
        for (request, says) in [
            (
                CapacityReportRequest {
                    since_seconds: 60,
                    ..Default::default()
                },
                "at least an hour",
            ),
            (
                CapacityReportRequest {
                    horizon_seconds: 400 * 86_400,
                    ..Default::default()
                },
                "over the limit of 365 days",
            ),
            (
                CapacityReportRequest {
                    format: "pdf".into(),
                    ..Default::default()
                },
                "unknown format",
            ),
            (
                CapacityReportRequest {
                    cpu_limit: 80.0,
                    ..Default::default()
                },
                "cpu_limit must be a share",
            ),
        ] {
            let e = asked(request).expect_err(says);
            assert!(e.contains(says), "{e}");
        }
    }
}
