//! How much load a service takes: typical and peak throughput, the weekly profile (7 × 24), the
//! periods its traffic repeats on, level shifts (a release, a migration of users) dated to the
//! day, and growth per week with an interval.
//!
//! Growth and level shifts are read from daily totals with the weekday pattern divided out
//! (each weekday's mean over the overall mean), on a log scale so growth is a share. Shifts
//! are proposed by Bayesian online change-point detection (augurs) and kept when the week after
//! differs from the week before by more than the day-to-day noise allows; growth is the
//! Theil–Sen slope over pairs of days on the same side of every shift, so a shift is not taken
//! for growth.

use crate::input::ServiceInput;
use crate::robust::{median, theil_sen};
use crate::series::{HOUR, hour_of};
use augurs::changepoint::{Detector as _, NormalGammaDetector, dist::NormalGamma};
use augurs::seasons::{Detector as _, PeriodogramDetector};

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Days of history growth needs.
pub const MIN_DAYS_FOR_GROWTH: usize = 14;
/// Days either side of a level shift that must back it.
const SHIFT_CONTEXT_DAYS: usize = 7;
/// How many noise standard errors the week after a shift must differ from the week before.
const SHIFT_SIGNIFICANCE: f64 = 4.0;
/// Weekday names, Monday first.
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The weekday (Monday = 0) of Unix time `t`, UTC (1970-01-01 was a Thursday).
pub fn weekday(t: i64) -> usize {
    usize::try_from((t.div_euclid(DAY) + 3).rem_euclid(7)).unwrap_or(0)
}

/// Growth per week, percent, with its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    /// Percent per week.
    pub percent_per_week: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// A level shift.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shift {
    /// The first day at the new level (Unix seconds, start of the day, UTC).
    pub day: i64,
    /// Mean requests per second in the week before (weekday pattern divided out).
    pub before_rps: f64,
    /// The same in the week after.
    pub after_rps: f64,
}

/// The load figures of one service.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// Median minute, requests per second.
    pub typical_rps: f64,
    /// 99th percentile minute.
    pub peak_rps: f64,
    /// Busiest minute.
    pub max_rps: f64,
    /// Mean requests per second by weekday (Monday first) and hour of day, UTC.
    pub weekly_profile: [[f64; 24]; 7],
    /// Hour of day (UTC) with the highest mean.
    pub busiest_hour_utc: u8,
    /// Weekday with the highest mean.
    pub busiest_weekday: &'static str,
    /// Periods (hours) the traffic repeats on, strongest first.
    pub periods_hours: Vec<u32>,
    /// Growth, when there are at least [`MIN_DAYS_FOR_GROWTH`] days.
    pub growth: Option<Growth>,
    /// Level shifts, oldest first.
    pub shifts: Vec<Shift>,
    /// Whole days of history in the window.
    pub days: usize,
}

/// Requests per hour on the grid of hours `[since, until)`; an hour without requests is 0.
pub fn hourly_requests(service: &ServiceInput, since: i64, until: i64) -> Vec<f64> {
    let start = hour_of(since);
    let hours = usize::try_from((until - start).max(0) / HOUR).unwrap_or(0);
    let mut grid = vec![0.0; hours];
    for h in &service.hours {
        if let Some(slot) = usize::try_from((h.hour - start) / HOUR)
            .ok()
            .filter(|_| h.hour >= start)
            .and_then(|i| grid.get_mut(i))
        {
            *slot += h.requests as f64;
        }
    }
    grid
}

/// Works out the load figures of `service` over `[since, until)`.
pub fn load(service: &ServiceInput, since: i64, until: i64) -> Load {
    let start = hour_of(since);
    let hourly = hourly_requests(service, since, until);
    // The history starts at the service's first hour with requests.
    let first = hourly.iter().position(|&r| r > 0.0).unwrap_or(hourly.len());
    let history = &hourly[first..];
    let history_start = start + first as i64 * HOUR;

    let mut sums = [[0.0; 24]; 7];
    let mut counts = [[0u32; 24]; 7];
    for (i, r) in history.iter().enumerate() {
        let t = history_start + i as i64 * HOUR;
        let (d, h) = (
            weekday(t),
            usize::try_from(t.rem_euclid(DAY) / HOUR).unwrap_or(0),
        );
        sums[d][h] += r / 3600.0;
        counts[d][h] += 1;
    }
    let mut weekly_profile = [[0.0; 24]; 7];
    for d in 0..7 {
        for h in 0..24 {
            if counts[d][h] > 0 {
                weekly_profile[d][h] = sums[d][h] / f64::from(counts[d][h]);
            }
        }
    }
    let by_hour: Vec<f64> = (0..24)
        .map(|h| (0..7).map(|d| weekly_profile[d][h]).sum::<f64>())
        .collect();
    let by_day: Vec<f64> = (0..7).map(|d| weekly_profile[d].iter().sum()).collect();
    let busiest_hour_utc = argmax(&by_hour) as u8;
    let busiest_weekday = WEEKDAYS[argmax(&by_day)];

    let periods_hours = periods(history);
    let (days, day_starts) = daily_totals(history, history_start);
    let (shifts, growth) = shifts_and_growth(&days, &day_starts);
    Load {
        typical_rps: service.minutes.median / 60.0,
        peak_rps: service.minutes.p99 / 60.0,
        max_rps: service.minutes.max / 60.0,
        weekly_profile,
        busiest_hour_utc,
        busiest_weekday,
        periods_hours,
        growth,
        shifts,
        days: days.len(),
    }
}

/// The index of the largest value (the first of equals).
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The periods (hours) of `hourly`, strongest first: what augurs' periodogram finds between 4
/// hours and a week, kept when at least three cycles fit.
fn periods(hourly: &[f64]) -> Vec<u32> {
    const WEEK: u32 = 168;
    if hourly.len() < 3 * 24 {
        return Vec::new();
    }
    let longest = u32::try_from(hourly.len() / 3)
        .unwrap_or(WEEK)
        .min(WEEK + 1);
    let detector = PeriodogramDetector::builder()
        .min_period(4)
        .max_period(longest + 1)
        .threshold(0.5)
        .build();
    detector.detect(hourly)
}

/// Totals of whole days (the first and last day only when complete) and each day's start.
fn daily_totals(hourly: &[f64], start: i64) -> (Vec<f64>, Vec<i64>) {
    let skip = usize::try_from((DAY - start.rem_euclid(DAY)).rem_euclid(DAY) / HOUR).unwrap_or(0);
    let whole = hourly.get(skip..).unwrap_or(&[]);
    let first_day = start + skip as i64 * HOUR;
    let totals: Vec<f64> = whole.chunks_exact(24).map(|d| d.iter().sum()).collect();
    let starts = (0..totals.len())
        .map(|i| first_day + i as i64 * DAY)
        .collect();
    (totals, starts)
}

/// Level shifts and growth from daily totals, as the module comment says.
fn shifts_and_growth(days: &[f64], starts: &[i64]) -> (Vec<Shift>, Option<Growth>) {
    if days.len() < MIN_DAYS_FOR_GROWTH || days.iter().any(|&d| d <= 0.0) {
        return (Vec::new(), None);
    }
    // Divide out the weekday pattern.
    let mut weekday_sum = [0.0; 7];
    let mut weekday_n = [0.0; 7];
    for (d, t) in days.iter().zip(starts) {
        weekday_sum[weekday(*t)] += d.ln();
        weekday_n[weekday(*t)] += 1.0;
    }
    let overall = days.iter().map(|d| d.ln()).sum::<f64>() / days.len() as f64;
    let level: Vec<f64> = days
        .iter()
        .zip(starts)
        .map(|(d, t)| {
            let w = weekday(*t);
            d.ln() - (weekday_sum[w] / weekday_n[w] - overall)
        })
        .collect();
    // Day-to-day noise, robustly: the median absolute difference of neighbours, as a standard
    // deviation of one day.
    let mut diffs: Vec<f64> = level.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let noise = (median(&mut diffs).unwrap_or(0.0) / 0.6745 / std::f64::consts::SQRT_2).max(1e-6);

    let mean = level.iter().sum::<f64>() / level.len() as f64;
    let standardized: Vec<f64> = level.iter().map(|l| (l - mean) / noise).collect();
    let mut detector =
        NormalGammaDetector::normal_gamma(250.0, NormalGamma::new_unchecked(0.0, 1.0, 1.0, 1.0));
    let mut candidates = detector.detect_changepoints(&standardized);
    candidates.sort_unstable();
    candidates.dedup();
    let mut cuts: Vec<usize> = Vec::new();
    for c in candidates {
        if c < SHIFT_CONTEXT_DAYS || c + SHIFT_CONTEXT_DAYS > level.len() {
            continue;
        }
        if cuts
            .last()
            .is_some_and(|&last| c - last < SHIFT_CONTEXT_DAYS)
        {
            continue;
        }
        let before = &level[c - SHIFT_CONTEXT_DAYS..c];
        let after = &level[c..c + SHIFT_CONTEXT_DAYS];
        let mb = before.iter().sum::<f64>() / before.len() as f64;
        let ma = after.iter().sum::<f64>() / after.len() as f64;
        // What a steady trend alone moves the two means apart by is small next to a shift, but
        // is still taken out: half the slope over the neighbouring pairs.
        let trend = (after[SHIFT_CONTEXT_DAYS - 1] - before[0]) / (2.0 * SHIFT_CONTEXT_DAYS as f64);
        let jump = ma - mb - trend.clamp(-noise, noise);
        if jump.abs() > SHIFT_SIGNIFICANCE * noise * (2.0 / SHIFT_CONTEXT_DAYS as f64).sqrt() {
            cuts.push(c);
        }
    }
    let shifts = cuts
        .iter()
        .map(|&c| {
            let mean_rps = |range: std::ops::Range<usize>| {
                let n = range.len() as f64;
                level[range].iter().map(|l| l.exp()).sum::<f64>() / n / f64::from(DAY as i32)
            };
            Shift {
                day: starts[c],
                before_rps: mean_rps(c - SHIFT_CONTEXT_DAYS..c),
                after_rps: mean_rps(c..c + SHIFT_CONTEXT_DAYS),
            }
        })
        .collect();
    let segment = |i: usize| cuts.iter().filter(|&&c| c <= i).count();
    let points: Vec<(f64, f64)> = level
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64, *l))
        .collect();
    let growth = theil_sen(&points, 0.95, |i, j| segment(i) == segment(j)).map(|line| {
        let weekly = |slope: f64| ((7.0 * slope).exp() - 1.0) * 100.0;
        Growth {
            percent_per_week: weekly(line.slope),
            low: weekly(line.slope_low),
            high: weekly(line.slope_high),
        }
    });
    (shifts, growth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_are_counted_from_thursday_the_first() {
        assert_eq!(WEEKDAYS[weekday(0)], "Thursday");
        // 2026-11-30 was a Monday.
        assert_eq!(WEEKDAYS[weekday(1_795_996_800)], "Monday");
    }
}
