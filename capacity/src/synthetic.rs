//! History with a known truth, for the tests, the benchmark and the example report: twelve weeks
//! of a service whose traffic grows by a known share a week, repeats daily and weekly, shifts
//! level once and wobbles; whose CPU is an idle cost plus a known cost per request (over two
//! instances, one restarting once); whose latency follows a known scalability curve; on a host
//! with a disk filling at a known rate and a log disk cleaned weekly.
//!
//! Everything is drawn from a seeded generator, so a seed always gives the same history.

use crate::input::{
    EndpointInput, Filesystem, HostInput, Input, InstanceSeries, Limits, LoadBin, MinuteLoad,
    ServiceHour, ServiceInput,
};
use crate::load::DAY;
use crate::series::HOUR;

/// The end of every synthetic window: 2026-11-30 00:00 UTC (a Monday).
pub const UNTIL: i64 = 1_795_996_800;
/// Weeks of history.
pub const WEEKS: i64 = 12;

/// What a synthetic history is made from (the truth the report should find).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Truth {
    /// Requests per second at the start, before the daily and weekly shapes.
    pub base_rps: f64,
    /// Growth per week, percent.
    pub growth_percent_per_week: f64,
    /// Hour of the day (UTC) with the most traffic.
    pub busiest_hour_utc: u8,
    /// Weekday (Monday = 0) with the most traffic.
    pub busiest_weekday: usize,
    /// Day (from the start) the level shifts, and by what factor.
    pub shift_day: i64,
    /// The factor.
    pub shift_factor: f64,
    /// CPU-seconds per request.
    pub cpu_seconds_per_request: f64,
    /// Idle CPU, cores.
    pub idle_cores: f64,
    /// The true maximum throughput (USL), requests per second.
    pub max_rps: f64,
    /// Share of the day's disk filled per day on `/data`.
    pub disk_fill_per_day: f64,
    /// `/data` at the start.
    pub disk_start: f64,
}

impl Truth {
    /// When `/data` reaches `limit` (Unix seconds).
    pub fn disk_crossing(&self, limit: f64) -> i64 {
        start() + ((limit - self.disk_start) / self.disk_fill_per_day * DAY as f64) as i64
    }
}

/// The window's first hour.
pub fn start() -> i64 {
    UNTIL - WEEKS * 7 * DAY
}

/// A small seeded generator (xorshift64*), with uniform and normal draws.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    /// Seeded; every seed gives its own sequence.
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.uniform().max(1e-12);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The truth for `seed` (its `max_rps` is set by [`input`], from the load it draws).
fn truth(seed: u64) -> Truth {
    let mut rng = Rng::new(seed);
    let base_rps = 40.0 + 40.0 * rng.uniform();
    let growth = 1.0 + 3.0 * rng.uniform();
    let busiest_hour_utc = 9 + (rng.uniform() * 10.0) as u8;
    let busiest_weekday = (rng.uniform() * 5.0) as usize;
    let shift_day = 35 + (rng.uniform() * 20.0) as i64;
    let shift_factor = 1.2 + 0.2 * rng.uniform();
    let cpu_seconds_per_request = 0.002 + 0.004 * rng.uniform();
    let idle_cores = 0.1 + 0.3 * rng.uniform();
    // `/data` reaches 90% between 10 and 50 days after the window ends.
    let crossing_day = (WEEKS * 7) as f64 + 10.0 + 40.0 * rng.uniform();
    Truth {
        base_rps,
        growth_percent_per_week: growth,
        busiest_hour_utc,
        busiest_weekday,
        shift_day,
        shift_factor,
        cpu_seconds_per_request,
        idle_cores,
        max_rps: 0.0,
        disk_fill_per_day: 0.5 / crossing_day,
        disk_start: 0.4,
    }
}

/// The weekday factors, Monday first, with the busiest day at 1.15.
fn weekday_factor(busiest: usize, weekday: usize) -> f64 {
    const SHAPE: [f64; 7] = [1.0, 0.97, 0.95, 0.93, 0.9, 0.62, 0.55];
    if weekday == busiest {
        1.15
    } else {
        SHAPE[weekday]
    }
}

/// The mean requests per second at Unix time `t` (before noise).
fn rps_at(truth: &Truth, t: i64) -> f64 {
    let days = (t - start()) as f64 / DAY as f64;
    let hour = (t.rem_euclid(DAY) / HOUR) as f64;
    let daily = 1.0
        + 0.5
            * (2.0 * std::f64::consts::PI * (hour - f64::from(truth.busiest_hour_utc) + 6.0)
                / 24.0)
                .sin();
    let weekday = crate::load::weekday(t);
    let growth = (1.0 + truth.growth_percent_per_week / 100.0).powf(days / 7.0);
    let shift = if days >= truth.shift_day as f64 {
        truth.shift_factor
    } else {
        1.0
    };
    truth.base_rps * growth * daily * weekday_factor(truth.busiest_weekday, weekday) * shift
}

/// The USL parameters whose maximum is `max_rps`: λ = 20 (50 ms alone), σ = 0.02, κ found by
/// bisection.
fn usl_parameters(max_rps: f64) -> (f64, f64, f64) {
    let (lambda, sigma) = (20.0, 0.02);
    let peak = |kappa: f64| {
        let n = ((1.0 - sigma) / kappa).sqrt();
        lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
    };
    let (mut low, mut high): (f64, f64) = (1e-12, 1.0);
    for _ in 0..200 {
        let mid = (low * high).sqrt();
        if peak(mid) > max_rps {
            low = mid;
        } else {
            high = mid;
        }
    }
    (lambda, sigma, (low * high).sqrt())
}

/// The concurrency at throughput `x` on the rising side of the curve.
fn concurrency(lambda: f64, sigma: f64, kappa: f64, x: f64) -> f64 {
    let a = x * kappa;
    let b = x * sigma - x * kappa - lambda;
    let c = x * (1.0 - sigma);
    let disc = (b * b - 4.0 * a * c).max(0.0);
    (-b - disc.sqrt()) / (2.0 * a)
}

/// The input for `seed`: one service (`shop`) and one host (`box-1`), as the collector would
/// read them, with the peak reaching `load_share` of the true maximum and forecasts
/// `horizon_days` ahead.
pub fn input(seed: u64, load_share: f64, horizon_days: u32) -> (Input, Truth) {
    let mut truth = truth(seed);
    let mut rng = Rng::new(seed ^ 0x5EED);
    // First the load, minute by minute; the busiest minute sets the ceiling.
    let mut load: Vec<(i64, Vec<f64>)> = Vec::new();
    let mut t = start();
    while t < UNTIL {
        let mean = rps_at(&truth, t) * (0.04 * rng.normal()).exp();
        let minutes = (0..60).map(|_| mean * (0.1 * rng.normal()).exp()).collect();
        load.push((t, minutes));
        t += HOUR;
    }
    let busiest = load
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .fold(0.0, f64::max);
    truth.max_rps = busiest / load_share;
    let (lambda, sigma, kappa) = usl_parameters(truth.max_rps);
    let mut hours = Vec::new();
    let mut per_minute: Vec<f64> = Vec::new();
    let mut bins: std::collections::BTreeMap<i64, (u64, u64, f64, f64)> = Default::default();
    let (mut cpu_a, mut cpu_b) = (Vec::new(), Vec::new());
    let (mut mem_a, mut mem_b) = (Vec::new(), Vec::new());
    let (mut counter_a, mut counter_b) = (0.0, 0.0);
    let restart = start() + 60 * DAY + 5 * HOUR;
    for (t, minutes) in load {
        let mut requests = 0u64;
        for x in minutes {
            let x = x.min(truth.max_rps * 0.999);
            let n = concurrency(lambda, sigma, kappa, x) * (0.03 * rng.normal()).exp();
            let minute_requests = (x * 60.0).round() as u64;
            let minute_us = (n * 60.0 * 1e6) as u64;
            requests += minute_requests;
            per_minute.push(minute_requests as f64);
            let bin = ((x.max(0.01)).log2() * 8.0).floor() as i64;
            let mean_ms = n / x * 1000.0;
            let slot = bins.entry(bin).or_default();
            slot.0 += 1;
            slot.1 += minute_requests;
            slot.2 += minute_us as f64;
            slot.3 += mean_ms * 2.5 * minute_requests as f64;
        }
        hours.push(ServiceHour { hour: t, requests });
        let cpu = (truth.idle_cores * 3600.0 + truth.cpu_seconds_per_request * requests as f64)
            * (0.02 * rng.normal()).exp();
        counter_a += cpu / 2.0;
        counter_b += cpu / 2.0;
        if t == restart {
            counter_a = cpu / 2.0;
        }
        cpu_a.push((t, counter_a));
        cpu_b.push((t, counter_b));
        let rps = requests as f64 / 3600.0;
        let memory = 200e6 + 1e6 * rps;
        mem_a.push((t, memory / 2.0));
        mem_b.push((t, memory / 2.0));
    }
    per_minute.sort_by(f64::total_cmp);
    let at = |q: f64| per_minute[((per_minute.len() - 1) as f64 * q).round() as usize];
    let load_bins = bins
        .values()
        .map(|&(minutes, requests, us, p99_weighted)| LoadBin {
            minutes,
            requests,
            duration_sum_us: us as u64,
            p50_ms: 0.8 * p99_weighted / requests.max(1) as f64 / 2.5,
            p95_ms: 1.8 * p99_weighted / requests.max(1) as f64 / 2.5,
            p99_ms: p99_weighted / requests.max(1) as f64,
        })
        .collect();
    let instance = |name: &str, points: Vec<(i64, f64)>| InstanceSeries {
        instance: name.into(),
        points,
    };
    let service = ServiceInput {
        service: "shop".into(),
        hours,
        minutes: MinuteLoad {
            minutes: per_minute.len() as u64,
            median: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        },
        load_bins,
        cpu_seconds: vec![instance("shop-a", cpu_a), instance("shop-b", cpu_b)],
        memory_bytes: vec![instance("shop-a", mem_a), instance("shop-b", mem_b)],
        endpoints: Vec::new(),
    };
    // Three endpoints sharing the requests 60/30/10, the smallest the slowest.
    let total: u64 = service.hours.iter().map(|h| h.requests).sum();
    let busiest = service.hours.iter().map(|h| h.requests).max().unwrap_or(0);
    let mut service = service;
    service.endpoints = [
        ("GET /items", 6, 40.0),
        ("POST /orders", 3, 90.0),
        ("GET /report", 1, 400.0),
    ]
    .into_iter()
    .map(|(operation, tenths, p99_ms)| EndpointInput {
        operation: operation.into(),
        requests: total * tenths / 10,
        busiest_hour_requests: busiest * tenths / 10,
        p50_ms: p99_ms / 4.0,
        p99_ms,
    })
    .collect();
    let mut host = HostInput {
        host: "box-1".into(),
        ..HostInput::default()
    };
    let mut data = Vec::new();
    let mut logs = Vec::new();
    let mut t = start();
    while t < UNTIL {
        let days = (t - start()) as f64 / DAY as f64;
        let hour_of_week = ((t - start()) / HOUR) % 168;
        host.cpu
            .push((t, (0.1 + rps_at(&truth, t) / truth.max_rps * 0.6).min(1.0)));
        host.memory.push((t, 0.5 + 0.01 * rng.normal()));
        data.push((
            t,
            truth.disk_start + truth.disk_fill_per_day * days + 0.003 * rng.normal(),
        ));
        logs.push((
            t,
            0.2 + 0.5 * hour_of_week as f64 / 168.0 + 0.003 * rng.normal(),
        ));
        t += HOUR;
    }
    host.filesystems = vec![
        Filesystem {
            mount: "/data".into(),
            points: data,
        },
        Filesystem {
            mount: "/var/log".into(),
            points: logs,
        },
    ];
    let input = Input {
        until: UNTIL,
        since: start(),
        horizon_days,
        limits: Limits::default(),
        latency_objective_ms: 500.0,
        services: vec![service],
        hosts: vec![host],
    };
    (input, truth)
}
