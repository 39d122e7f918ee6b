//! The report: what [`crate::build`] returns and every format renders. Its JSON form is the
//! versioned schema `plumb.capacity.v1` (documented in `docs/capacity.v1.schema.json`): field
//! names are part of it. Numbers are rounded to six significant digits, dates are RFC 3339
//! (`YYYY-MM-DD`, UTC).

use crate::cost::{Cost, PerRequest};
use crate::forecast::{self, Crossing, Forecast, MAX_HORIZON_DAYS};
use crate::input::{HostInput, Input, ServiceInput};
use crate::load::{self, DAY, Load};
use crate::series::{HOUR, filled, gaps, hour_of, on_grid};
use crate::usl::{self, Estimate, Scalability};
use crate::{CapacityError, cost};
use serde::Serialize;

/// The schema name and version.
pub const SCHEMA: &str = "plumb.capacity.v1";

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The start of the load window.
    pub since: String,
    /// The end of the window (the report's "now").
    pub until: String,
    /// Days the forecasts look ahead.
    pub horizon_days: u32,
    /// The limits used.
    pub limits: LimitsOut,
    /// Per service.
    pub services: Vec<ServiceReport>,
    /// Per host.
    pub hosts: Vec<HostReport>,
    /// What could not be worked out, and why.
    pub refused: Vec<Refused>,
}

/// The limits a report used.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LimitsOut {
    /// CPU utilisation share.
    pub cpu: f64,
    /// Memory share.
    pub memory: f64,
    /// Disk share.
    pub disk: f64,
    /// p99 latency objective, ms.
    pub latency_objective_ms: f64,
}

/// Something the report could not work out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// What it is about (`service checkout: forecast`).
    pub subject: String,
    /// Why.
    pub reason: String,
}

/// An interval `[low, high]`; `high` is null when unbounded.
pub type Interval = (f64, Option<f64>);

/// One service.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceReport {
    /// `service.name`.
    pub service: String,
    /// Whole days of history in the window.
    pub history_days: usize,
    /// The median minute, requests per second.
    pub typical_rps: f64,
    /// The 99th percentile minute.
    pub peak_rps: f64,
    /// The busiest minute.
    pub max_rps: f64,
    /// The busiest hour of the day, UTC (0–23).
    pub busiest_hour_utc: u8,
    /// The busiest day of the week.
    pub busiest_weekday: &'static str,
    /// Mean requests per second, 7 rows (Monday first) of 24 hours (UTC).
    pub weekly_profile: Vec<Vec<f64>>,
    /// Periods the traffic repeats on, hours, strongest first.
    pub periods_hours: Vec<u32>,
    /// Growth per week, percent (null under two weeks of history).
    pub growth_percent_per_week: Option<f64>,
    /// Its 95% interval.
    pub growth_interval: Option<Interval>,
    /// Level shifts, oldest first.
    pub change_points: Vec<ChangePointOut>,
    /// The busiest endpoints (at most [`TOP_ENDPOINTS`]), by requests.
    pub endpoints: Vec<EndpointOut>,
    /// CPU-seconds per request (null without `process.cpu.time`).
    pub cpu_seconds_per_request: Option<f64>,
    /// Its 95% interval.
    pub cpu_seconds_per_request_interval: Option<Interval>,
    /// CPU the service uses with no load, cores.
    pub idle_cpu_cores: Option<f64>,
    /// Memory per request per second, bytes (null without `process.memory.usage`).
    pub memory_bytes_per_rps: Option<f64>,
    /// Its 95% interval.
    pub memory_bytes_per_rps_interval: Option<Interval>,
    /// Memory held with no load, bytes.
    pub idle_memory_bytes: Option<f64>,
    /// Latency against load: one point per bin of minutes.
    pub latency: Vec<LoadPointOut>,
    /// The Universal Scalability Law fit (null with too few load levels).
    pub scalability: Option<ScalabilityOut>,
    /// Requests per second left before the knee, the maximum and the latency objective.
    pub headroom_rps: HeadroomOut,
    /// The throughput forecast (null when refused; see `refused`).
    pub forecast: Option<ForecastOut>,
    /// When the forecast throughput reaches the predicted maximum.
    pub max_rps_crossing: CrossingOut,
    /// Hours with requests, counter resets.
    pub quality: QualityOut,
}

/// Endpoints listed per service.
pub const TOP_ENDPOINTS: usize = 10;

/// One endpoint's load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointOut {
    /// The operation.
    pub operation: String,
    /// Its share of the service's requests, percent.
    pub share_percent: f64,
    /// Mean requests per second over the window.
    pub mean_rps: f64,
    /// Requests per second in its busiest hour.
    pub busiest_hour_rps: f64,
    /// p50 over the window, ms.
    pub p50_ms: f64,
    /// p99 over the window, ms.
    pub p99_ms: f64,
}

/// The busiest endpoints of `s` over a window of `seconds`.
fn endpoints(s: &ServiceInput, seconds: f64) -> Vec<EndpointOut> {
    let total: u64 = s.endpoints.iter().map(|e| e.requests).sum();
    let mut sorted: Vec<_> = s.endpoints.iter().collect();
    sorted.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then(a.operation.cmp(&b.operation))
    });
    sorted
        .into_iter()
        .take(TOP_ENDPOINTS)
        .map(|e| EndpointOut {
            operation: e.operation.clone(),
            share_percent: round(100.0 * e.requests as f64 / total.max(1) as f64),
            mean_rps: round(e.requests as f64 / seconds.max(1.0)),
            busiest_hour_rps: round(e.busiest_hour_requests as f64 / HOUR as f64),
            p50_ms: round(e.p50_ms),
            p99_ms: round(e.p99_ms),
        })
        .collect()
}

/// A level shift.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangePointOut {
    /// The first day at the new level.
    pub date: String,
    /// Mean requests per second the week before.
    pub before_rps: f64,
    /// The week after.
    pub after_rps: f64,
}

/// One bin of minutes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LoadPointOut {
    /// Throughput, requests per second.
    pub rps: f64,
    /// Mean requests in flight (Little's law).
    pub concurrency: f64,
    /// p50, ms.
    pub p50_ms: f64,
    /// p95, ms.
    pub p95_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Minutes in the bin.
    pub minutes: u64,
}

/// The USL fit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScalabilityOut {
    /// The predicted maximum throughput, requests per second (null: no ceiling in sight).
    pub max_rps: Option<f64>,
    /// Its 95% interval.
    pub max_rps_interval: Option<Interval>,
    /// Requests in flight at the maximum.
    pub concurrency_at_max: Option<f64>,
    /// Throughput where latency starts to climb.
    pub knee_rps: Option<f64>,
    /// Whether the maximum lies far past the load seen.
    pub extrapolated: bool,
    /// The highest load seen, requests per second.
    pub observed_max_rps: f64,
    /// λ, requests per second with one in flight.
    pub lambda: f64,
    /// Its interval.
    pub lambda_interval: Interval,
    /// σ, contention.
    pub sigma: f64,
    /// Its interval.
    pub sigma_interval: Interval,
    /// κ, coherence.
    pub kappa: f64,
    /// Its interval.
    pub kappa_interval: Interval,
    /// The fit in words.
    pub summary: String,
}

/// Headroom, requests per second (null where the limit is unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct HeadroomOut {
    /// Before the knee.
    pub knee: Option<f64>,
    /// Before the maximum.
    pub max: Option<f64>,
    /// Before the p99 breaks the objective.
    pub objective: Option<f64>,
}

/// A forecast.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ForecastOut {
    /// `mstl_ets`, `seasonal_naive`, `linear` or `envelope`.
    pub model: &'static str,
    /// Backtest MASE per model (below 1 beats a one-week seasonal naive forecast).
    pub backtest_mase: BacktestOut,
    /// The forecast 30 days ahead (the mean of that day), null past the horizon.
    pub days_30: Option<DayOut>,
    /// 90 days ahead.
    pub days_90: Option<DayOut>,
    /// One value per day of the horizon (the day's mean).
    pub daily: Vec<DayOut>,
    /// The history it was made from, one value per day (the day's mean, hours with data).
    pub history: Vec<HistoryDay>,
}

/// One day of history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryDay {
    /// The day.
    pub date: String,
    /// The day's mean.
    pub value: f64,
}

/// Backtest errors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BacktestOut {
    /// The chosen model's (null for `envelope`).
    pub chosen: Option<f64>,
    /// MSTL with Holt's exponential smoothing.
    pub mstl_ets: Option<f64>,
    /// Seasonal naive (a baseline).
    pub seasonal_naive: Option<f64>,
    /// Straight line, as `predict_linear` (a baseline).
    pub linear: Option<f64>,
}

/// One forecast day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayOut {
    /// The day.
    pub date: String,
    /// Point forecast.
    pub point: f64,
    /// 80% band.
    pub low80: f64,
    /// 80% band.
    pub high80: f64,
    /// 95% band.
    pub low95: f64,
    /// 95% band.
    pub high95: f64,
}

/// Data quality of a service.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct QualityOut {
    /// Hours of the window with at least one request.
    pub hours_with_requests: usize,
    /// Hours in the window.
    pub hours: usize,
    /// Resets of `process.cpu.time` (restarts).
    pub cpu_counter_resets: usize,
}

/// One host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostReport {
    /// `host.name`.
    pub host: String,
    /// CPU, memory, then each filesystem.
    pub resources: Vec<ResourceReport>,
}

/// One resource of a host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceReport {
    /// `cpu`, `memory` or `filesystem /mount`.
    pub name: String,
    /// The mean of the last day, share.
    pub current: Option<f64>,
    /// The limit, share.
    pub limit: f64,
    /// When the limit is reached (dates or null: not within the horizon).
    pub crossing: CrossingOut,
    /// The forecast (null when refused).
    pub forecast: Option<ForecastOut>,
    /// Days of history.
    pub history_days: usize,
    /// Hours missing within the history.
    pub gap_hours: usize,
}

/// When a limit is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CrossingOut {
    /// The earliest date (upper 95% band).
    pub earliest: Option<String>,
    /// The likely date (point forecast).
    pub likely: Option<String>,
    /// The latest date (lower 95% band).
    pub latest: Option<String>,
}

/// `x` to six significant digits (so the same input gives the same text, without noise digits).
pub fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return if x.is_finite() { 0.0 } else { x };
    }
    let digits = 6 - 1 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let r = (x * scale).round() / scale;
    if r == 0.0 { 0.0 } else { r }
}

/// The UTC date of Unix time `t`, `YYYY-MM-DD`.
pub fn date(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn interval(low: f64, high: f64) -> Interval {
    (round(low), Some(round(high)))
}

fn estimate_interval(e: &Estimate) -> Interval {
    (round(e.low), e.high.map(round))
}

/// `f` of every item, on as many threads as there are cores, in the items' order (so the
/// result does not depend on which thread finished first); `done` after each item.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
    done: &(dyn Fn() + Sync),
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                scope.spawn(|| {
                    part.iter()
                        .map(|item| {
                            let result = f(item);
                            done();
                            result
                        })
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The reports of `pairs`, their refusals added to `refused` in order.
fn gather<R>(pairs: Vec<(R, Vec<Refused>)>, refused: &mut Vec<Refused>) -> Vec<R> {
    pairs
        .into_iter()
        .map(|(report, mut why)| {
            refused.append(&mut why);
            report
        })
        .collect()
}

/// Builds the report (see [`crate::build_with_progress`]).
pub(crate) fn build(input: &Input, done: &(dyn Fn() + Sync)) -> Result<Report, CapacityError> {
    if hour_of(input.since) >= input.until {
        return Err(CapacityError::EmptyWindow);
    }
    if input.horizon_days > MAX_HORIZON_DAYS {
        return Err(CapacityError::HorizonTooLong(input.horizon_days));
    }
    for (name, share) in [
        ("cpu", input.limits.cpu),
        ("memory", input.limits.memory),
        ("disk", input.limits.disk),
    ] {
        if !(share > 0.0 && share <= 1.0) {
            return Err(CapacityError::BadLimit(name));
        }
    }
    let services = in_parallel(
        &input.services,
        |s| {
            let mut refused = Vec::new();
            let report = service_report(input, s, &mut refused);
            (report, refused)
        },
        done,
    );
    let hosts = in_parallel(
        &input.hosts,
        |h| {
            let mut refused = Vec::new();
            let report = host_report(input, h, &mut refused);
            (report, refused)
        },
        done,
    );
    let mut refused = Vec::new();
    let services = gather(services, &mut refused);
    let hosts = gather(hosts, &mut refused);
    Ok(Report {
        schema: SCHEMA,
        since: date(input.since),
        until: date(input.until),
        horizon_days: input.horizon_days,
        limits: LimitsOut {
            cpu: input.limits.cpu,
            memory: input.limits.memory,
            disk: input.limits.disk,
            latency_objective_ms: input.latency_objective_ms,
        },
        services,
        hosts,
        refused,
    })
}

/// The forecast of `points` (hourly values up to `until`) for the report's horizon, or the
/// reason it was refused (pushed to `refused` under `subject`).
fn forecast_of(
    input: &Input,
    points: &[(i64, f64)],
    subject: &str,
    refused: &mut Vec<Refused>,
) -> Option<(Forecast, ForecastOut)> {
    let first = points.iter().map(|p| p.0).min()?;
    let grid = on_grid(points, first, input.until);
    let (offset, history) = filled(&grid)?;
    let start = hour_of(first) + offset as i64 * HOUR;
    let horizon = usize::try_from(input.horizon_days).unwrap_or(0) * 24;
    match forecast::forecast(&history, start, horizon) {
        Ok(f) => {
            let out = forecast_out(&f, &history, start);
            Some((f, out))
        }
        Err(reason) => {
            refused.push(Refused {
                subject: format!("{subject}: forecast"),
                reason,
            });
            None
        }
    }
}

/// Daily means of hourly `values` starting at `start` (days cut at midnight UTC).
fn daily_history(values: &[f64], start: i64) -> Vec<HistoryDay> {
    let mut days: Vec<(i64, f64, u32)> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let day = (start + i as i64 * HOUR).div_euclid(DAY) * DAY;
        match days.last_mut() {
            Some((d, sum, n)) if *d == day => {
                *sum += v;
                *n += 1;
            }
            _ => days.push((day, *v, 1)),
        }
    }
    days.into_iter()
        .map(|(d, sum, n)| HistoryDay {
            date: date(d),
            value: round(sum / f64::from(n)),
        })
        .collect()
}

fn forecast_out(f: &Forecast, history: &[f64], start: i64) -> ForecastOut {
    let days: Vec<DayOut> = (0..f.band.point.len() / 24)
        .map(|d| {
            let mean = |v: &[f64]| round(v[d * 24..d * 24 + 24].iter().sum::<f64>() / 24.0);
            DayOut {
                date: date(f.start + d as i64 * DAY),
                point: mean(&f.band.point),
                low80: mean(&f.band.low80),
                high80: mean(&f.band.high80),
                low95: mean(&f.band.low95),
                high95: mean(&f.band.high95),
            }
        })
        .collect();
    let chosen = match f.model {
        forecast::Model::MstlEts => f.scores.mstl_ets,
        forecast::Model::SeasonalNaive => f.scores.seasonal_naive,
        forecast::Model::Linear => f.scores.linear,
        forecast::Model::Envelope => None,
    };
    ForecastOut {
        model: f.model.name(),
        backtest_mase: BacktestOut {
            chosen: chosen.map(round),
            mstl_ets: f.scores.mstl_ets.map(round),
            seasonal_naive: f.scores.seasonal_naive.map(round),
            linear: f.scores.linear.map(round),
        },
        days_30: days.get(29).cloned(),
        days_90: days.get(89).cloned(),
        daily: days,
        history: daily_history(history, start),
    }
}

fn crossing_out(c: Crossing) -> CrossingOut {
    CrossingOut {
        earliest: c.earliest.map(date),
        likely: c.likely.map(date),
        latest: c.latest.map(date),
    }
}

/// The USL fit in words.
fn summary(fit: &Scalability) -> String {
    match fit.max_rps {
        None => format!(
            "no ceiling in sight: coherence (κ) is indistinguishable from 0 over the load seen (up to {:.1} rps)",
            fit.observed_max_rps
        ),
        Some(max) if fit.extrapolated => format!(
            "predicted maximum {:.1} rps is an extrapolation: the load seen (up to {:.1} rps) stays under half of it, so treat it as a rough bound",
            max.value, fit.observed_max_rps
        ),
        Some(max) => format!(
            "predicted maximum {:.1} rps at {:.1} requests in flight; the load seen reaches {:.0}% of it",
            max.value,
            fit.concurrency_at_max.unwrap_or(0.0),
            100.0 * fit.observed_max_rps / max.value
        ),
    }
}

fn per_request(p: Option<PerRequest>) -> (Option<f64>, Option<Interval>, Option<f64>) {
    (
        p.map(|p| round(p.per_request)),
        p.map(|p| interval(p.low, p.high)),
        p.map(|p| p.idle),
    )
}

fn service_report(input: &Input, s: &ServiceInput, refused: &mut Vec<Refused>) -> ServiceReport {
    let subject = format!("service {}", s.service);
    let l: Load = load::load(s, input.since, input.until);
    let c: Cost = cost::cost(s, input.since, input.until);
    if l.growth.is_none() {
        refused.push(Refused {
            subject: format!("{subject}: growth"),
            reason: format!(
                "{} whole days of history; growth needs at least {}",
                l.days,
                load::MIN_DAYS_FOR_GROWTH
            ),
        });
    }
    for (what, missing, metric) in [
        ("cost per request", c.cpu.is_none(), "process.cpu.time"),
        (
            "memory per request",
            c.memory.is_none(),
            "process.memory.usage",
        ),
    ] {
        if missing {
            refused.push(Refused {
                subject: format!("{subject}: {what}"),
                reason: format!(
                    "fewer than {} hours of {metric} from the service's instances",
                    cost::MIN_HOURS
                ),
            });
        }
    }
    let fit = usl::fit(&s.load_bins);
    if fit.is_none() {
        refused.push(Refused {
            subject: format!("{subject}: scalability"),
            reason: format!(
                "fewer than {} distinct load levels with requests",
                usl::MIN_BINS
            ),
        });
    }
    let headroom = fit
        .as_ref()
        .map(|f| usl::headroom(f, &s.load_bins, l.peak_rps, input.latency_objective_ms))
        .unwrap_or_default();
    let rps: Vec<(i64, f64)> = s
        .hours
        .iter()
        .filter(|h| h.hour < input.until)
        .map(|h| (h.hour, h.requests as f64 / HOUR as f64))
        .collect();
    let forecast = forecast_of(input, &rps, &subject, refused);
    let max_rps_crossing = match (&forecast, fit.as_ref().and_then(|f| f.max_rps)) {
        (Some((f, _)), Some(max)) => crossing_out(forecast::crossing(f, max.value)),
        _ => CrossingOut::default(),
    };
    let forecast = forecast.map(|(_, out)| out);
    let latency = s
        .load_bins
        .iter()
        .filter(|b| b.minutes > 0)
        .map(|b| {
            let seconds = 60.0 * b.minutes as f64;
            LoadPointOut {
                rps: round(b.requests as f64 / seconds),
                concurrency: round(b.duration_sum_us as f64 / 1e6 / seconds),
                p50_ms: round(b.p50_ms),
                p95_ms: round(b.p95_ms),
                p99_ms: round(b.p99_ms),
                minutes: b.minutes,
            }
        })
        .collect();
    let (cpu, cpu_interval, cpu_idle) = per_request(c.cpu);
    let (mem, mem_interval, mem_idle) = per_request(c.memory);
    let hours = usize::try_from((input.until - hour_of(input.since)) / HOUR).unwrap_or(0);
    ServiceReport {
        service: s.service.clone(),
        history_days: l.days,
        typical_rps: round(l.typical_rps),
        peak_rps: round(l.peak_rps),
        max_rps: round(l.max_rps),
        busiest_hour_utc: l.busiest_hour_utc,
        busiest_weekday: l.busiest_weekday,
        weekly_profile: l
            .weekly_profile
            .iter()
            .map(|day| day.iter().map(|v| round(*v)).collect())
            .collect(),
        periods_hours: l.periods_hours.clone(),
        growth_percent_per_week: l.growth.map(|g| round(g.percent_per_week)),
        growth_interval: l.growth.map(|g| interval(g.low, g.high)),
        change_points: l
            .shifts
            .iter()
            .map(|sh| ChangePointOut {
                date: date(sh.day),
                before_rps: round(sh.before_rps),
                after_rps: round(sh.after_rps),
            })
            .collect(),
        endpoints: endpoints(s, (input.until - hour_of(input.since)) as f64),
        cpu_seconds_per_request: cpu,
        cpu_seconds_per_request_interval: cpu_interval,
        idle_cpu_cores: cpu_idle.map(|i| round(i / HOUR as f64)),
        memory_bytes_per_rps: mem,
        memory_bytes_per_rps_interval: mem_interval,
        idle_memory_bytes: mem_idle.map(round),
        latency,
        scalability: fit.as_ref().map(|f| ScalabilityOut {
            max_rps: f.max_rps.map(|m| round(m.value)),
            max_rps_interval: f.max_rps.as_ref().map(estimate_interval),
            concurrency_at_max: f.concurrency_at_max.map(round),
            knee_rps: f.knee_rps.map(round),
            extrapolated: f.extrapolated,
            observed_max_rps: round(f.observed_max_rps),
            lambda: round(f.lambda.value),
            lambda_interval: estimate_interval(&f.lambda),
            sigma: round(f.sigma.value),
            sigma_interval: estimate_interval(&f.sigma),
            kappa: round(f.kappa.value),
            kappa_interval: estimate_interval(&f.kappa),
            summary: summary(f),
        }),
        headroom_rps: HeadroomOut {
            knee: headroom.to_knee.map(round),
            max: headroom.to_max.map(round),
            objective: headroom.to_objective.map(round),
        },
        forecast,
        max_rps_crossing,
        quality: QualityOut {
            hours_with_requests: s
                .hours
                .iter()
                .filter(|h| {
                    h.requests > 0 && h.hour >= hour_of(input.since) && h.hour < input.until
                })
                .count(),
            hours,
            cpu_counter_resets: c.cpu_resets,
        },
    }
}

fn host_report(input: &Input, h: &HostInput, refused: &mut Vec<Refused>) -> HostReport {
    /// A resource's name, hourly shares and limit.
    type Resource<'a> = (String, &'a [(i64, f64)], f64);
    let mut series: Vec<Resource<'_>> = vec![
        ("cpu".to_owned(), &h.cpu, input.limits.cpu),
        ("memory".to_owned(), &h.memory, input.limits.memory),
    ];
    for fs in &h.filesystems {
        series.push((
            format!("filesystem {}", fs.mount),
            &fs.points,
            input.limits.disk,
        ));
    }
    let resources = series
        .into_iter()
        .filter(|(_, points, _)| !points.is_empty())
        .map(|(name, points, limit)| {
            let subject = format!("host {} {name}", h.host);
            let first = points.iter().map(|p| p.0).min().unwrap_or(input.until);
            let grid = on_grid(points, first, input.until);
            let recent: Vec<f64> = grid.iter().rev().take(24).filter_map(|v| *v).collect();
            let current = (!recent.is_empty())
                .then(|| round(recent.iter().sum::<f64>() / recent.len() as f64));
            let forecast = forecast_of(input, points, &subject, refused);
            let crossing = forecast
                .as_ref()
                .map(|(f, _)| crossing_out(forecast::crossing(f, limit)))
                .unwrap_or_default();
            ResourceReport {
                name,
                current,
                limit,
                crossing,
                forecast: forecast.map(|(_, out)| out),
                history_days: grid.len() / 24,
                gap_hours: gaps(&grid),
            }
        })
        .collect();
    HostReport {
        host: h.host.clone(),
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_six_significant_digits() {
        assert_eq!(round(123.456_789), 123.457);
        assert_eq!(round(0.000_123_456_78), 0.000_123_457);
        assert_eq!(round(0.0), 0.0);
        assert_eq!(date(1_795_996_800), "2026-11-30");
    }
}
