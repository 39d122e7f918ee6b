//! The report's charts as inline SVG, drawn with `plumb-charts` (the code the web pages draw
//! with) and plotters. Every chart is a pure function of the report, so the same report gives
//! the same markup.

use crate::report::{DayOut, ForecastOut, HistoryDay, LoadPointOut, ScalabilityOut};
use plotters::prelude::*;
use plumb_charts::{BAND_80, BAND_95, FORECAST, HISTORY, LIMIT};

/// Chart size, pixels.
const SIZE: (u32, u32) = (720, 300);

/// Days since the epoch of a `YYYY-MM-DD` date (0 when it does not parse).
fn day_number(date: &str) -> f64 {
    date.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(0.0, |z| (z.timestamp().as_second() / 86_400) as f64)
}

/// The date of a day number, for axis labels.
fn day_label(day: &f64) -> String {
    crate::report::date((*day as i64) * 86_400)
}

/// Draws on a canvas of the report's chart size.
fn svg(
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Option<()>,
) -> String {
    plumb_charts::svg(SIZE, draw)
}

/// History and forecast of one series, with the 80% and 95% bands and the limit when given.
/// `title` and `unit` are Plumb's own words (never a name from spans: plotters writes text as
/// it is given).
pub fn forecast(title: &str, unit: &str, f: &ForecastOut, limit: Option<f64>) -> String {
    let history: Vec<(f64, f64)> = f
        .history
        .iter()
        .map(|HistoryDay { date, value }| (day_number(date), *value))
        .collect();
    let ahead: Vec<(f64, &DayOut)> = f.daily.iter().map(|d| (day_number(&d.date), d)).collect();
    let xs = history.iter().map(|p| p.0).chain(ahead.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let ys = history
        .iter()
        .map(|p| p.1)
        .chain(ahead.iter().flat_map(|(_, d)| [d.low95, d.high95]))
        .chain(limit);
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !(x0 < x1 && y0.is_finite() && y1.is_finite()) {
        return String::new();
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)
            .ok()?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&day_label)
            .y_desc(unit)
            .light_line_style(WHITE)
            .draw()
            .ok()?;
        for (band, colour) in [
            (
                (|d: &DayOut| (d.low95, d.high95)) as fn(&DayOut) -> (f64, f64),
                BAND_95,
            ),
            (|d: &DayOut| (d.low80, d.high80), BAND_80),
        ] {
            let upper = ahead.iter().map(|(x, d)| (*x, band(d).1));
            let lower = ahead.iter().rev().map(|(x, d)| (*x, band(d).0));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    colour.filled(),
                )))
                .ok()?;
        }
        chart
            .draw_series(LineSeries::new(
                history.iter().copied(),
                HISTORY.stroke_width(2),
            ))
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                ahead.iter().map(|(x, d)| (*x, d.point)),
                FORECAST.stroke_width(2),
            ))
            .ok()?;
        if let Some(limit) = limit {
            chart
                .draw_series(LineSeries::new(
                    [(x0, limit), (x1, limit)],
                    LIMIT.stroke_width(1),
                ))
                .ok()?;
        }
        Some(())
    })
}

/// Throughput against concurrency: the bins of minutes, and the fitted law with its maximum.
pub fn scalability(points: &[LoadPointOut], fit: &ScalabilityOut) -> String {
    let law = |n: f64| fit.lambda * n / (1.0 + fit.sigma * (n - 1.0) + fit.kappa * n * (n - 1.0));
    let observed_n = points.iter().map(|p| p.concurrency).fold(0.0, f64::max);
    let n_max = fit
        .concurrency_at_max
        .map_or(observed_n * 1.5, |n| n.max(observed_n) * 1.3)
        .max(1.0);
    let x_max = points
        .iter()
        .map(|p| p.rps)
        .chain(fit.max_rps)
        .fold(0.0, f64::max)
        * 1.1;
    if !(n_max > 0.0 && x_max > 0.0) {
        return String::new();
    }
    svg(|root| {
        let mut chart = ChartBuilder::on(&root)
            .caption("throughput against requests in flight", ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n_max, 0.0..x_max)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("requests in flight (Little's law)")
            .y_desc("requests per second")
            .light_line_style(WHITE)
            .draw()
            .ok()?;
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new((p.concurrency, p.rps), 3, HISTORY.filled())),
            )
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                (0..=200).map(|i| {
                    let n = n_max * f64::from(i) / 200.0;
                    (n, law(n))
                }),
                FORECAST.stroke_width(2),
            ))
            .ok()?;
        if let Some(max) = fit.max_rps {
            chart
                .draw_series(LineSeries::new(
                    [(0.0, max), (n_max, max)],
                    LIMIT.stroke_width(1),
                ))
                .ok()?;
        }
        Some(())
    })
}

/// The weekly profile as a 7 × 24 heat map (darker is busier).
pub fn weekly(profile: &[Vec<f64>]) -> String {
    plumb_charts::grid(
        SIZE,
        "requests per second by weekday and hour (UTC)",
        profile,
        12,
        &|day| {
            crate::load::WEEKDAYS
                .get(day)
                .map_or(String::new(), |w| w[..3].to_owned())
        },
        &|hour| hour.to_string(),
    )
}
