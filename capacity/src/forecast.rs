//! Forecasts of hourly series, with bands and the date a limit is crossed.
//!
//! Three models are tried on every series: MSTL with explicit daily and weekly periods (24 h and
//! 168 h) and exponential smoothing with additive errors and a linear trend (Holt's; augurs'
//! ETS "AAN") for what is left, fitted to the last six weeks on a log scale (so swings that grow
//! with the level add up, as MSTL assumes; series that touch zero stay linear); a seasonal naive forecast (next week repeats the last one); and a straight line fitted
//! to all of the history, as Prometheus' `predict_linear` extrapolates. Each is scored by a
//! rolling-origin backtest: from up to two origins one backtest horizon apart (a week, or the
//! horizon or what the history leaves after eight days of training when shorter), the model
//! is fitted on what came before and its forecast compared with
//! what happened, as the mean absolute scaled error (MASE: the error over that of a one-week
//! seasonal naive forecast within the training data; below 1 beats it). The model with the
//! lowest mean MASE makes the forecast. A series that falls by large steps at least twice (a
//! disk that fills and is cleaned) is forecast on its envelope instead: a Theil–Sen line through
//! the peaks before each cleanup, with bands from the slope's interval, so the sawtooth itself
//! never looks like a trend.
//!
//! Too little history is refused with the reason: under two weeks, or a horizon longer than the
//! history.

use crate::robust::theil_sen;
use crate::series::HOUR;
use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit as _, Predict as _};
use statrs::distribution::{ContinuousCDF, Normal};

/// Longest horizon, days.
pub const MAX_HORIZON_DAYS: u32 = 365;
/// Shortest history, hours (two weeks).
pub const MIN_HISTORY_HOURS: usize = 14 * 24;
/// Hours in a week: the seasonal naive period and the MASE scale's lag.
const WEEK: usize = 168;
/// Rolling origins in a backtest.
const ORIGINS: usize = 2;
/// Hours of history MSTL is fitted on at most (six weeks).
const MSTL_HISTORY: usize = 6 * WEEK;
/// A drop larger than this share of the series' range is a cleanup.
const CLEANUP_SHARE: f64 = 0.3;
/// ... and larger than this many times the median hourly change.
const CLEANUP_STEPS: f64 = 10.0;
/// Cleanups that make a series a sawtooth.
const MIN_CLEANUPS: usize = 2;

/// The model that made a forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// MSTL (24 h, 168 h) with Holt's exponential smoothing.
    MstlEts,
    /// Next week repeats the last.
    SeasonalNaive,
    /// A straight line through the history.
    Linear,
    /// A line through the peaks before each cleanup.
    Envelope,
}

impl Model {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::MstlEts => "mstl_ets",
            Self::SeasonalNaive => "seasonal_naive",
            Self::Linear => "linear",
            Self::Envelope => "envelope",
        }
    }
}

/// Backtest errors (MASE) of the three models; `None` where a model could not be fitted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    /// MSTL with Holt's exponential smoothing.
    pub mstl_ets: Option<f64>,
    /// Seasonal naive.
    pub seasonal_naive: Option<f64>,
    /// Straight line.
    pub linear: Option<f64>,
}

/// Hourly forecast values with 80% and 95% bands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Band {
    /// Point forecast.
    pub point: Vec<f64>,
    /// 80% band, lower.
    pub low80: Vec<f64>,
    /// 80% band, upper.
    pub high80: Vec<f64>,
    /// 95% band, lower.
    pub low95: Vec<f64>,
    /// 95% band, upper.
    pub high95: Vec<f64>,
}

/// A forecast of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    /// What made it.
    pub model: Model,
    /// The backtest scores.
    pub scores: Scores,
    /// Unix seconds of the first forecast hour.
    pub start: i64,
    /// The values, hour by hour.
    pub band: Band,
}

/// When a forecast reaches a limit (Unix seconds of the hour), or `None` within the horizon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crossing {
    /// When the upper 95% band first reaches it.
    pub earliest: Option<i64>,
    /// When the point forecast first reaches it.
    pub likely: Option<i64>,
    /// When the lower 95% band first reaches it.
    pub latest: Option<i64>,
}

/// One model's forecast of `horizon` hours after `history`.
fn predict(model: Model, history: &[f64], horizon: usize) -> Option<Band> {
    match model {
        Model::MstlEts => mstl_ets(history, horizon),
        Model::SeasonalNaive => Some(seasonal_naive(history, horizon)),
        Model::Linear => linear(history, horizon),
        Model::Envelope => envelope(history, horizon),
    }
}

fn mstl_ets(history: &[f64], horizon: usize) -> Option<Band> {
    // The recent weeks only (the fit's cost grows with its length).
    let recent = &history[history.len().saturating_sub(MSTL_HISTORY)..];
    // Traffic's daily and weekly swings grow with its level: on a log scale they add up, as
    // MSTL assumes. Series that touch zero stay as they are.
    let log = recent.iter().all(|v| *v > 0.0);
    let y: Vec<f64> = if log {
        recent.iter().map(|v| v.ln()).collect()
    } else {
        recent.to_vec()
    };
    // One ETS model, not a search: trying no trend and a damped one as well (AutoETS "AZN")
    // tripled the fit's cost, and on the example history Holt's alone backtested better on
    // throughput and CPU and the same on memory.
    let trend = AutoETS::new(1, "AAN")
        .ok()?
        .damped(false)
        .ok()?
        .into_trend_model();
    let fitted = MSTLModel::new(vec![24, WEEK], trend).fit(&y).ok()?;
    let f80 = fitted.predict(horizon, 0.8).ok()?;
    let f95 = fitted.predict(horizon, 0.95).ok()?;
    let (i80, i95) = (f80.intervals?, f95.intervals?);
    let back = |v: Vec<f64>| -> Vec<f64> {
        if log {
            v.into_iter().map(f64::exp).collect()
        } else {
            v
        }
    };
    let band = Band {
        point: back(f95.point),
        low80: back(i80.lower),
        high80: back(i80.upper),
        low95: back(i95.lower),
        high95: back(i95.upper),
    };
    band.point.iter().all(|v| v.is_finite()).then_some(band)
}

/// z for a central `level` interval.
fn z(level: f64) -> f64 {
    Normal::standard().inverse_cdf(0.5 + level / 2.0)
}

fn seasonal_naive(history: &[f64], horizon: usize) -> Band {
    let n = history.len();
    let diffs: Vec<f64> = (WEEK..n).map(|t| history[t] - history[t - WEEK]).collect();
    let sd = std_dev(&diffs);
    let mut band = Band::default();
    for h in 0..horizon {
        let weeks_ahead = h / WEEK + 1;
        let value = history[n - WEEK + h % WEEK];
        let spread = sd * (weeks_ahead as f64).sqrt();
        push(&mut band, value, spread);
    }
    band
}

fn linear(history: &[f64], horizon: usize) -> Option<Band> {
    let n = history.len() as f64;
    let mean_t = (n - 1.0) / 2.0;
    let mean_y = history.iter().sum::<f64>() / n;
    let sxx: f64 = (0..history.len())
        .map(|t| (t as f64 - mean_t).powi(2))
        .sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = history
        .iter()
        .enumerate()
        .map(|(t, y)| (t as f64 - mean_t) * (y - mean_y))
        .sum();
    let slope = sxy / sxx;
    let residuals: Vec<f64> = history
        .iter()
        .enumerate()
        .map(|(t, y)| y - (mean_y + slope * (t as f64 - mean_t)))
        .collect();
    let sd = std_dev(&residuals);
    let mut band = Band::default();
    for h in 0..horizon {
        let t = n + h as f64;
        let spread = sd * (1.0 + 1.0 / n + (t - mean_t).powi(2) / sxx).sqrt();
        push(&mut band, mean_y + slope * (t - mean_t), spread);
    }
    Some(band)
}

/// Adds one hour with a normal spread of standard deviation `spread`.
fn push(band: &mut Band, value: f64, spread: f64) {
    let (z80, z95) = (z(0.8), z(0.95));
    band.point.push(value);
    band.low80.push(value - z80 * spread);
    band.high80.push(value + z80 * spread);
    band.low95.push(value - z95 * spread);
    band.high95.push(value + z95 * spread);
}

fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

/// The hours just before each cleanup: a fall in one hour of over [`CLEANUP_SHARE`] of the
/// series' range and over [`CLEANUP_STEPS`] times its usual hourly change.
fn cleanups(history: &[f64]) -> Vec<usize> {
    let (low, high) = history
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    let range = high - low;
    if range <= 0.0 {
        return Vec::new();
    }
    let mut changes: Vec<f64> = history.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let usual = crate::robust::median(&mut changes).unwrap_or(0.0);
    let threshold = (CLEANUP_SHARE * range).max(CLEANUP_STEPS * usual);
    (1..history.len())
        .filter(|&t| history[t - 1] - history[t] > threshold)
        .map(|t| t - 1)
        .collect()
}

/// Whether `history` is a sawtooth (filled, then cleaned, at least twice).
fn is_sawtooth(history: &[f64]) -> bool {
    cleanups(history).len() >= MIN_CLEANUPS
}

fn envelope(history: &[f64], horizon: usize) -> Option<Band> {
    let peaks: Vec<(f64, f64)> = cleanups(history)
        .into_iter()
        .map(|t| (t as f64, history[t]))
        .collect();
    let line80 = theil_sen(&peaks, 0.8, |_, _| true)?;
    let line95 = theil_sen(&peaks, 0.95, |_, _| true)?;
    let last = peaks.last().map_or(0.0, |p| p.0);
    let at = |slope: f64, t: f64| line95.intercept + line95.slope * last + slope * (t - last);
    let mut band = Band::default();
    for h in 0..horizon {
        let t = (history.len() + h) as f64;
        band.point.push(at(line95.slope, t));
        band.low80.push(at(line80.slope_low, t));
        band.high80.push(at(line80.slope_high, t));
        band.low95.push(at(line95.slope_low, t));
        band.high95.push(at(line95.slope_high, t));
    }
    Some(band)
}

/// MASE of `model` by the rolling-origin backtest; `None` when it cannot be fitted.
fn backtest(model: Model, history: &[f64], horizon: usize) -> Option<f64> {
    // Training needs a week (the MASE scale's lag) and a day; what is left is tested, up to a
    // week or the horizon.
    let shortest_training = WEEK + 24;
    let test = horizon
        .min(WEEK)
        .min(history.len().checked_sub(shortest_training)?);
    if test == 0 {
        return None;
    }
    let mut errors = Vec::new();
    for k in 1..=ORIGINS {
        let Some(origin) = history.len().checked_sub(test * k) else {
            break;
        };
        if origin < shortest_training {
            break;
        }
        let train = &history[..origin];
        let scale = (WEEK..train.len())
            .map(|t| (train[t] - train[t - WEEK]).abs())
            .sum::<f64>()
            / (train.len() - WEEK) as f64;
        let band = predict(model, train, test)?;
        let actual = &history[origin..origin + test];
        let mae = band
            .point
            .iter()
            .zip(actual)
            .map(|(f, a)| (f - a).abs())
            .sum::<f64>()
            / test as f64;
        errors.push(if scale > 0.0 { mae / scale } else { mae });
    }
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

/// The forecast of `horizon_hours` after `history` (hourly values; the first at Unix `start`),
/// or why there is none.
pub fn forecast(history: &[f64], start: i64, horizon_hours: usize) -> Result<Forecast, String> {
    let days = history.len() / 24;
    if history.len() < MIN_HISTORY_HOURS {
        return Err(format!(
            "{days} days of history; a forecast needs at least {}",
            MIN_HISTORY_HOURS / 24
        ));
    }
    if horizon_hours > history.len() {
        return Err(format!(
            "the horizon ({} days) is longer than the history ({days} days)",
            horizon_hours / 24
        ));
    }
    // A sawtooth is forecast on its envelope whatever the scores; the baselines are still
    // scored (and shown), MSTL is not tried.
    let sawtooth = is_sawtooth(history);
    let scores = Scores {
        mstl_ets: if sawtooth {
            None
        } else {
            backtest(Model::MstlEts, history, horizon_hours)
        },
        seasonal_naive: backtest(Model::SeasonalNaive, history, horizon_hours),
        linear: backtest(Model::Linear, history, horizon_hours),
    };
    let model = if sawtooth {
        Model::Envelope
    } else {
        [
            (Model::MstlEts, scores.mstl_ets),
            (Model::SeasonalNaive, scores.seasonal_naive),
            (Model::Linear, scores.linear),
        ]
        .into_iter()
        .filter_map(|(m, s)| s.map(|s| (m, s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Model::SeasonalNaive, |(m, _)| m)
    };
    let band = predict(model, history, horizon_hours)
        .or_else(|| predict(Model::SeasonalNaive, history, horizon_hours))
        .ok_or_else(|| "no model could be fitted".to_owned())?;
    Ok(Forecast {
        model,
        scores,
        start: start + history.len() as i64 * HOUR,
        band,
    })
}

/// When `forecast` reaches `limit` (rising to it).
pub fn crossing(forecast: &Forecast, limit: f64) -> Crossing {
    let first = |values: &[f64]| {
        values
            .iter()
            .position(|v| *v >= limit)
            .map(|i| forecast.start + i as i64 * HOUR)
    };
    Crossing {
        earliest: first(&forecast.band.high95),
        likely: first(&forecast.band.point),
        latest: first(&forecast.band.low95),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seasonal(hours: usize, growth_per_hour: f64) -> Vec<f64> {
        (0..hours)
            .map(|t| {
                let day = (2.0 * std::f64::consts::PI * t as f64 / 24.0).sin();
                let week = (2.0 * std::f64::consts::PI * t as f64 / 168.0).sin();
                100.0
                    + growth_per_hour * t as f64
                    + 20.0 * day
                    + 10.0 * week
                    + ((t * 7919) % 13) as f64 * 0.2
            })
            .collect()
    }

    #[test]
    fn too_little_history_is_refused_with_the_reason() {
        let e = forecast(&seasonal(10 * 24, 0.0), 0, 24).expect_err("short");
        assert!(e.contains("10 days of history"), "{e}");
        let e = forecast(&seasonal(20 * 24, 0.0), 0, 30 * 24).expect_err("long horizon");
        assert!(e.contains("longer than the history"), "{e}");
    }

    #[test]
    fn a_seasonal_series_beats_the_straight_line_and_a_rising_one_crosses() {
        let history = seasonal(6 * WEEK, 0.05);
        let f = forecast(&history, 0, 2 * WEEK).expect("forecast");
        let (chosen, line) = (
            [f.scores.mstl_ets, f.scores.seasonal_naive]
                .into_iter()
                .flatten()
                .fold(f64::INFINITY, f64::min),
            f.scores.linear.expect("line"),
        );
        assert!(chosen < line, "{:?}", f.scores);
        assert_ne!(f.model, Model::Linear);
        assert_eq!(f.band.point.len(), 2 * WEEK);
        let c = crossing(&f, 190.0);
        let earliest = c.earliest.expect("the upper band reaches it");
        assert!(c.likely.is_none_or(|l| earliest <= l), "{c:?}");
        assert!(
            c.latest.is_none_or(|l| c.likely.is_some_and(|k| k <= l)),
            "{c:?}"
        );
    }

    #[test]
    fn a_sawtooth_is_forecast_on_its_envelope_and_does_not_cross() {
        let history: Vec<f64> = (0..6 * WEEK)
            .map(|t| 0.3 + 0.4 * (t % WEEK) as f64 / WEEK as f64)
            .collect();
        assert!(is_sawtooth(&history));
        let f = forecast(&history, 0, 2 * WEEK).expect("forecast");
        assert_eq!(f.model, Model::Envelope);
        assert_eq!(crossing(&f, 0.9).likely, None);
    }
}
