//! Plumb's charts as inline SVG, drawn with plotters' SVG backend (no fonts linked: the SVG names
//! a generic font and the viewer draws the text). The capacity report and the collector's web
//! pages draw with the same functions.
//!
//! plotters writes text into the SVG as it is given, so every text a chart takes is Plumb's own
//! (`&'static str` captions and units, labels made from numbers or fixed names): nothing from a
//! span ever reaches a chart. Every chart is a pure function of its input, so the same input
//! gives the same markup.

use plotters::coord::Shift;
use plotters::prelude::*;

/// The colours: history (and the first line), forecast (and the second), bands, limit.
pub const HISTORY: RGBColor = RGBColor(40, 90, 160);
/// Forecasts, fits and the second line of a chart.
pub const FORECAST: RGBColor = RGBColor(200, 90, 30);
/// The 80% band.
pub const BAND_80: RGBColor = RGBColor(240, 190, 150);
/// The 95% band.
pub const BAND_95: RGBColor = RGBColor(250, 225, 205);
/// A limit, and the third line of a chart.
pub const LIMIT: RGBColor = RGBColor(190, 30, 30);
/// Line colours in order.
pub const LINES: [RGBColor; 3] = [HISTORY, FORECAST, LIMIT];

/// Runs `draw` on an SVG canvas of `size` pixels; the markup, or an empty string when plotters
/// fails (a chart is an illustration: the figures are in the text beside it).
pub fn svg(
    size: (u32, u32),
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Option<()>,
) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        if root.fill(&WHITE).is_err() || draw(root.clone()).is_none() || root.present().is_err() {
            return String::new();
        }
    }
    out
}

/// A grid of cells shaded by value (darker is more): `cells[row][column]`, the first row drawn
/// at the top; rows named by `row_name` in the middle of each row, columns numbered.
pub fn grid(
    size: (u32, u32),
    caption: &'static str,
    cells: &[Vec<f64>],
    x_labels: usize,
    row_name: &dyn Fn(usize) -> String,
    column_name: &dyn Fn(usize) -> String,
) -> String {
    let top = cells.iter().flatten().copied().fold(0.0, f64::max);
    let rows = i32::try_from(cells.len()).unwrap_or(0);
    let columns = i32::try_from(cells.iter().map(Vec::len).max().unwrap_or(0)).unwrap_or(0);
    if top <= 0.0 || rows == 0 || columns == 0 {
        return String::new();
    }
    let last = rows - 1;
    svg(size, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            // Rows are segments, so each row's name sits in the middle of its row.
            .build_cartesian_2d(0..columns, (0..last).into_segmented())
            .ok()?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(x_labels)
            .x_label_formatter(&|c: &i32| usize::try_from(*c).map_or(String::new(), column_name))
            .y_labels(cells.len())
            .y_label_formatter(&|d: &SegmentValue<i32>| match d {
                SegmentValue::CenterOf(row) => {
                    usize::try_from(last - *row).map_or(String::new(), row_name)
                }
                _ => String::new(),
            })
            .draw()
            .ok()?;
        chart
            .draw_series(cells.iter().enumerate().flat_map(|(r, values)| {
                values.iter().enumerate().map(move |(c, v)| {
                    let share = v / top;
                    let shade = (255.0 - 200.0 * share) as u8;
                    let row = last - i32::try_from(r).unwrap_or(0);
                    let col = i32::try_from(c).unwrap_or(0);
                    Rectangle::new(
                        [
                            (col, SegmentValue::Exact(row)),
                            (col + 1, SegmentValue::Exact(row + 1)),
                        ],
                        RGBColor(shade, shade, 255).filled(),
                    )
                })
            }))
            .ok()?;
        Some(())
    })
}

/// One line of a [`time_lines`] chart.
#[derive(Clone, Debug)]
pub struct Line {
    /// Its name in the legend (Plumb's own words).
    pub label: &'static str,
    /// Points: Unix seconds and value.
    pub points: Vec<(i64, f64)>,
}

/// Lines over time, in [`LINES`] colours with a legend; the x axis in UTC hours and minutes (or
/// dates over two days), the y axis from zero, in `unit`. Every point carries its value as an
/// SVG title, which a browser shows on hover (no script).
pub fn time_lines(size: (u32, u32), unit: &'static str, lines: &[Line]) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((i64::MAX, i64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    if x0 > x1 {
        return String::new();
    }
    // One point still gets an axis: a minute either side.
    let (x0, x1) = if x0 == x1 {
        (x0 - 60, x1 + 60)
    } else {
        (x0, x1)
    };
    let span = x1 - x0;
    let dates = span > 2 * 86_400;
    let label = move |t: &i64| clock(*t, dates);
    let mut marks: Vec<(i32, i32, String)> = Vec::new();
    let markup = svg(size, |root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(24)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, 0.0..(top * 1.1).max(1e-9))
            .ok()?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&label)
            .y_desc(unit)
            .light_line_style(WHITE)
            .draw()
            .ok()?;
        for (line, colour) in lines.iter().zip(LINES.iter().cycle()) {
            chart
                .draw_series(LineSeries::new(
                    line.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .ok()?
                .label(line.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            for &(t, v) in &line.points {
                let (x, y) = chart.backend_coord(&(t, v));
                marks.push((
                    x,
                    y,
                    format!("{} at {}: {} {unit}", line.label, clock(t, dates), three(v)),
                ));
            }
            // A line of one or two points is hard to see: mark them.
            if line.points.len() < 3 {
                chart
                    .draw_series(
                        line.points
                            .iter()
                            .map(|p| Circle::new(*p, 3, colour.filled())),
                    )
                    .ok()?;
            }
        }
        if lines.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.2))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .ok()?;
        }
        Some(())
    });
    with_titles(markup, &marks)
}

/// `markup` with an invisible circle at each mark holding its text as an SVG title.
fn with_titles(markup: String, marks: &[(i32, i32, String)]) -> String {
    let Some(end) = markup.rfind("</svg>") else {
        return markup;
    };
    let mut out = String::with_capacity(markup.len() + marks.len() * 80);
    out.push_str(&markup[..end]);
    out.push_str("<g fill=\"#000\" fill-opacity=\"0\">");
    for (x, y, text) in marks {
        out.push_str(&format!(
            "<circle cx=\"{x}\" cy=\"{y}\" r=\"5\"><title>{}</title></circle>",
            escape(text)
        ));
    }
    out.push_str("</g>");
    out.push_str(&markup[end..]);
    out
}

/// Text for SVG: `&`, `<` and `>` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Three significant digits.
fn three(v: f64) -> String {
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}")
}

/// A small line with no axes or text, scaled to its own range (a flat line sits at the bottom).
pub fn sparkline(values: &[f64]) -> String {
    if values.len() < 2 {
        return String::new();
    }
    let top = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let last = values.len() - 1;
    svg((90, 24), |root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(2)
            .build_cartesian_2d(0..last, 0.0..top.max(1e-9))
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                values.iter().copied().enumerate(),
                HISTORY.stroke_width(1),
            ))
            .ok()?;
        Some(())
    })
}

/// A trace's waterfall: one bar per span, top to bottom, from its start to its end on a shared
/// axis of milliseconds from the trace's start (`bars`: start, duration, error); errors in the
/// limit colour. No text but the axis numbers.
pub fn waterfall(width: u32, bars: &[(f64, f64, bool)]) -> String {
    let end = bars.iter().map(|b| b.0 + b.1).fold(0.0, f64::max);
    let rows = i32::try_from(bars.len()).unwrap_or(i32::MAX);
    if rows == 0 || end <= 0.0 {
        return String::new();
    }
    let height = u32::try_from(bars.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(22)
        .saturating_add(56);
    svg((width, height), |root| {
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(22)
            .build_cartesian_2d(0.0..end, 0.0..f64::from(rows))
            .ok()?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_labels(8)
            .x_desc("ms")
            .light_line_style(WHITE)
            .draw()
            .ok()?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (start, length, error))| {
                // Each bar takes the middle of its row, so rows stay apart.
                let row = f64::from(rows - 1 - i32::try_from(i).unwrap_or(0));
                let colour = if *error { LIMIT } else { HISTORY };
                Rectangle::new(
                    [
                        (*start, row + 0.2),
                        (start + length.max(end / 500.0), row + 0.8),
                    ],
                    colour.filled(),
                )
            }))
            .ok()?;
        Some(())
    })
}

/// A status page's bar: one cell per day, oldest first, coloured by the share of checks that
/// passed (green from 99.9%, amber from 99%, red below; grey for a day without checks).
pub fn uptime_bars(days: &[Option<f64>]) -> String {
    if days.is_empty() {
        return String::new();
    }
    let n = i32::try_from(days.len()).unwrap_or(i32::MAX);
    let width = u32::try_from(days.len()).unwrap_or(0).saturating_mul(6);
    svg((width, 24), |root| {
        let mut chart = ChartBuilder::on(&root)
            .build_cartesian_2d(0.0..f64::from(n), 0.0..1.0)
            .ok()?;
        chart
            .draw_series(days.iter().enumerate().map(|(i, day)| {
                let colour = match day {
                    None => RGBColor(210, 214, 220),
                    Some(up) if *up >= 99.9 => RGBColor(6, 118, 71),
                    Some(up) if *up >= 99.0 => RGBColor(220, 150, 20),
                    Some(_) => LIMIT,
                };
                // A gap of a pixel or so between days.
                let x = i as f64;
                Rectangle::new([(x + 0.15, 0.0), (x + 0.85, 1.0)], colour.filled())
            }))
            .ok()?;
        Some(())
    })
}

/// `t` (Unix seconds) as UTC `HH:MM`, or `MM-DD` when `dates`.
fn clock(t: i64, dates: bool) -> String {
    jiff::Timestamp::from_second(t).map_or(String::new(), |at| {
        at.strftime(if dates { "%m-%d" } else { "%H:%M" })
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_and_the_same_input_gives_the_same_markup() {
        let line = Line {
            label: "p99",
            points: (0..10)
                .map(|i| (1_800_000_000 + i * 60, i as f64))
                .collect(),
        };
        let a = time_lines((400, 200), "ms", std::slice::from_ref(&line));
        assert!(a.starts_with("<svg"), "{a}");
        assert_eq!(a, time_lines((400, 200), "ms", &[line]));
        assert!(a.contains("<title>p99 at 08:09: 9.00 ms</title>"), "{a}");
        assert!(sparkline(&[1.0, 3.0, 2.0]).starts_with("<svg"));
        assert_eq!(sparkline(&[1.0]), "");
        let cells = vec![vec![1.0, 2.0], vec![0.0, 4.0]];
        let g = grid((300, 200), "cells", &cells, 2, &|r| format!("r{r}"), &|c| {
            format!("c{c}")
        });
        assert!(g.contains("r0") && g.contains("r1"), "{g}");
        let bars = uptime_bars(&[Some(100.0), Some(99.5), Some(50.0), None]);
        assert!(
            bars.contains("#067647") && bars.contains("#BE1E1E"),
            "{bars}"
        );
        let w = waterfall(600, &[(0.0, 10.0, false), (2.0, 5.0, true)]);
        assert_eq!(w.matches("<rect").count() - 1, 2, "{w}");
    }

    #[test]
    fn axis_labels_are_utc_clock_times_or_dates() {
        assert_eq!(clock(1_796_134_200, false), "14:10");
        assert_eq!(clock(1_796_134_200, true), "12-01");
    }
}
