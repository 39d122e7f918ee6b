//! How much load a service takes: typical and peak throughput, the weekly profile (7 × 24), the
//! periods its traffic repeats on, level shifts (a release, a migration of users) dated to the
//! day, and growth per week with an interval.
//!
//! Growth and level shifts are read from daily totals with the weekday pattern divided out
//! (each weekday's mean over the overall mean), on a log scale so growth is a share. Shifts
//! are proposed by Bayesian online change-point detection (augurs) and kept when the week after
//! differs from the week before (less a week of the steady trend) by more than the day-to-day
//! noise allows and by at least 10%; growth is the
//! Theil–Sen slope over pairs of days on the same side of every shift, so a shift is not taken
//! for growth.

use crate::input::ServiceInput;
use crate::robust::{median, theil_sen};
use crate::series::{HOUR, hour_of};
use augurs::changepoint::{Detector as _, NormalGammaDetector, dist::NormalGamma};
use augurs::seasons::PeriodogramDetector;

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// Days of history growth needs.
pub const MIN_DAYS_FOR_GROWTH: usize = 14;
/// The smallest level shift reported, as a share (smaller steps are everyday variation).
const MIN_SHIFT: f64 = 0.1;
/// How far over the periodogram's median power a peak must stand to count as a period.
const PERIOD_PEAK_OVER_MEDIAN: f64 = 20.0;
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
fn hourly_requests(service: &ServiceInput, since: i64, until: i64) -> Vec<f64> {
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

/// The periods (hours) `hourly` repeats on, strongest first, from augurs' periodogram (Welch's
/// method) between 4 hours and a third of the history: every local peak of the power that
/// stands over [`PERIOD_PEAK_OVER_MEDIAN`] times the median power (the noise floor), with a
/// period within 10% of a day or a week reported as 24 or 168 (the periodogram's frequency grid
/// rarely lands on them exactly). Growth and level shifts are taken out first (each hour less
/// the mean of the two weeks around it, which leaves daily and weekly cycles whole), so they do
/// not drown the cycles.
fn periods(hourly: &[f64]) -> Vec<u32> {
    const CANONICAL: [u32; 2] = [24, 168];
    const HALF_WINDOW: usize = 168;
    if hourly.len() < 3 * 24 {
        return Vec::new();
    }
    let mut prefix = vec![0.0; hourly.len() + 1];
    for (i, v) in hourly.iter().enumerate() {
        prefix[i + 1] = prefix[i] + v;
    }
    let detrended: Vec<f64> = (0..hourly.len())
        .map(|i| {
            let (a, b) = (
                i.saturating_sub(HALF_WINDOW),
                (i + HALF_WINDOW).min(hourly.len()),
            );
            hourly[i] - (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect();
    let gram = PeriodogramDetector::builder()
        .min_period(4)
        .build()
        .periodogram(&detrended);
    let mut sorted = gram.powers.clone();
    let floor = median(&mut sorted).unwrap_or(0.0);
    let power = |i: usize| gram.powers.get(i).copied().unwrap_or(0.0);
    let mut peaks: Vec<(f64, u32)> = (0..gram.powers.len())
        .filter(|&i| {
            power(i) > PERIOD_PEAK_OVER_MEDIAN * floor
                && power(i) >= power(i + 1)
                && (i == 0 || power(i) >= power(i - 1))
        })
        .map(|i| (power(i), gram.periods[i]))
        .collect();
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<u32> = Vec::new();
    for (_, p) in peaks {
        let p = CANONICAL
            .into_iter()
            .find(|c| f64::from(p.abs_diff(*c)) <= 0.1 * f64::from(*c))
            .unwrap_or(p);
        // A harmonic of a stronger period (a week's shape repeats at 84, 56, ... hours) is
        // part of it, not a period of its own.
        let harmonic = out.iter().any(|&q| {
            let ratio = f64::from(q) / f64::from(p);
            ratio >= 1.5 && (ratio - ratio.round()).abs() <= 0.05 * ratio
        });
        if !out.contains(&p) && !harmonic {
            out.push(p);
        }
    }
    out
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
    // Divide out the weekday pattern, as classical decomposition does: each weekday's effect is
    // the median of its days over the centred seven-day mean around them (which follows growth
    // and shifts, so neither leaks into the pattern).
    let logs: Vec<f64> = days.iter().map(|d| d.ln()).collect();
    let mut effects: [Vec<f64>; 7] = Default::default();
    for i in 3..logs.len().saturating_sub(3) {
        let centred = logs[i - 3..=i + 3].iter().sum::<f64>() / 7.0;
        effects[weekday(starts[i])].push(logs[i] - centred);
    }
    let mut effect = [0.0; 7];
    for (w, values) in effects.iter_mut().enumerate() {
        effect[w] = median(values).unwrap_or(0.0);
    }
    let mean_effect = effect.iter().sum::<f64>() / 7.0;
    let level: Vec<f64> = logs
        .iter()
        .zip(starts)
        .map(|(l, t)| l - (effect[weekday(*t)] - mean_effect))
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
    // The steady trend, per day: the median of each week's own slope (a shift sits in one
    // week, so it moves the median little).
    let mut weekly_slopes: Vec<f64> = level
        .chunks_exact(SHIFT_CONTEXT_DAYS)
        .filter_map(|week| {
            let points: Vec<(f64, f64)> = week
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64, *l))
                .collect();
            theil_sen(&points, 0.95, |_, _| true).map(|line| line.slope)
        })
        .collect();
    let trend = median(&mut weekly_slopes).unwrap_or(0.0);
    // The step between the week before and the week after day `c`, less the trend's part.
    let step = |c: usize| {
        let before = &level[c - SHIFT_CONTEXT_DAYS..c];
        let after = &level[c..c + SHIFT_CONTEXT_DAYS];
        let mb = before.iter().sum::<f64>() / before.len() as f64;
        let ma = after.iter().sum::<f64>() / after.len() as f64;
        ma - mb - trend * SHIFT_CONTEXT_DAYS as f64
    };
    let fits = |c: usize| c >= SHIFT_CONTEXT_DAYS && c + SHIFT_CONTEXT_DAYS <= level.len();
    let mut cuts: Vec<usize> = Vec::new();
    for candidate in candidates {
        // The detector points near the change (at the last day of the old run); the change is
        // the day nearby where the step is largest.
        let Some(c) = (candidate.saturating_sub(2)..=candidate + 3)
            .filter(|&c| fits(c))
            .max_by(|&a, &b| step(a).abs().total_cmp(&step(b).abs()))
        else {
            continue;
        };
        if cuts
            .last()
            .is_some_and(|&last| c < last + SHIFT_CONTEXT_DAYS)
        {
            continue;
        }
        let significant = SHIFT_SIGNIFICANCE * noise * (2.0 / SHIFT_CONTEXT_DAYS as f64).sqrt();
        if step(c).abs() > significant.max(MIN_SHIFT.ln_1p()) {
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
