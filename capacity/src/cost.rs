//! What a request costs: CPU-seconds and memory, from the service's own process metrics.
//!
//! Per hour, the CPU-seconds all instances used (the increase of `process.cpu.time`, resets
//! taken as restarts) are set against the requests of that hour; the Theil–Sen line through
//! those points has the CPU-seconds per request as its slope and the idle cost (CPU-seconds an
//! hour with no request) as its intercept. Memory likewise: the instances' mean bytes per hour
//! against requests per second, so the slope is bytes per request per second (what each unit
//! of throughput holds) and the intercept what the service holds idle. Hours where fewer
//! instances reported than usually do are left out, so a missing instance does not look cheap.

use crate::input::{InstanceSeries, ServiceInput};
use crate::robust::{Line, median, theil_sen};
use crate::series::{HOUR, counter_increases, hour_of};
use std::collections::BTreeMap;

/// Hours of points a cost needs.
pub const MIN_HOURS: usize = 24;

/// One cost, with its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerRequest {
    /// Slope: the cost of one more request (CPU-seconds) or of one more request per second
    /// (bytes).
    pub per_request: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
    /// Intercept: the cost with no load (CPU-seconds per hour, or bytes).
    pub idle: f64,
    /// Hours used.
    pub hours: usize,
}

impl From<Line> for PerRequest {
    fn from(line: Line) -> Self {
        Self {
            per_request: line.slope,
            low: line.slope_low,
            high: line.slope_high,
            idle: line.intercept,
            hours: line.points,
        }
    }
}

/// The costs of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// CPU-seconds per request (`None`: too few hours of `process.cpu.time`).
    pub cpu: Option<PerRequest>,
    /// Bytes per request per second (`None`: too few hours of `process.memory.usage`).
    pub memory: Option<PerRequest>,
    /// Counter resets (restarts) seen in `process.cpu.time`.
    pub cpu_resets: usize,
}

/// Adds up per-instance hourly values, keeping hours where at least the usual number of
/// instances reported.
fn summed(per_instance: &[Vec<(i64, f64)>]) -> BTreeMap<i64, f64> {
    let mut by_hour: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for points in per_instance {
        for &(t, v) in points {
            let slot = by_hour.entry(hour_of(t)).or_default();
            slot.0 += v;
            slot.1 += 1;
        }
    }
    let mut reporting: Vec<f64> = by_hour.values().map(|(_, n)| *n as f64).collect();
    let usual = median(&mut reporting).unwrap_or(0.0);
    by_hour
        .into_iter()
        .filter(|(_, (_, n))| *n as f64 >= usual)
        .map(|(t, (v, _))| (t, v))
        .collect()
}

/// The Theil–Sen line of `values` against `load(requests)` over the hours both know.
fn against_requests(
    requests: &BTreeMap<i64, f64>,
    values: &BTreeMap<i64, f64>,
    load: impl Fn(f64) -> f64,
) -> Option<PerRequest> {
    let points: Vec<(f64, f64)> = values
        .iter()
        .map(|(t, v)| (load(requests.get(t).copied().unwrap_or(0.0)), *v))
        .collect();
    if points.len() < MIN_HOURS {
        return None;
    }
    theil_sen(&points, 0.95, |_, _| true).map(PerRequest::from)
}

/// Works out the costs of `service` over `[since, until)`.
pub fn cost(service: &ServiceInput, since: i64, until: i64) -> Cost {
    let in_window = |s: &InstanceSeries| -> Vec<(i64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(t, _)| *t >= hour_of(since) && *t < until)
            .collect()
    };
    let requests: BTreeMap<i64, f64> = service
        .hours
        .iter()
        .filter(|h| h.hour >= hour_of(since) && h.hour < until)
        .map(|h| (h.hour, h.requests as f64))
        .collect();
    let mut resets = 0;
    let increases: Vec<Vec<(i64, f64)>> = service
        .cpu_seconds
        .iter()
        .map(|s| {
            let (inc, r) = counter_increases(&in_window(s));
            resets += r;
            inc
        })
        .collect();
    let memory: Vec<Vec<(i64, f64)>> = service.memory_bytes.iter().map(in_window).collect();
    Cost {
        cpu: against_requests(&requests, &summed(&increases), |r| r),
        memory: against_requests(&requests, &summed(&memory), |r| r / HOUR as f64),
        cpu_resets: resets,
    }
}
