//! The report as text for people: every figure formatted once, with its unit, for both the
//! Markdown and the HTML template (which escape as their format needs: HTML by askama, table
//! cells of Markdown by the template's `cell` filter). Charts are drawn only for HTML.

use super::chart;
use crate::report::{CrossingOut, ForecastOut, Interval, Report, ResourceReport, ServiceReport};

/// Which template the view is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Markdown: no charts.
    Markdown,
    /// HTML: with charts.
    Html,
}

/// A label and its value.
pub type Row = (String, String);

/// The whole report, as text.
#[derive(Debug)]
pub struct View {
    /// `plumb.capacity.v1`.
    pub schema: String,
    /// The window, in words.
    pub window: String,
    /// The limits, in words.
    pub limits: String,
    /// Per service.
    pub services: Vec<ServiceView>,
    /// Per host.
    pub hosts: Vec<HostView>,
    /// (what, why) for everything refused.
    pub refused: Vec<Row>,
}

/// One service, as text.
#[derive(Debug)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// Load figures.
    pub load: Vec<Row>,
    /// Busiest endpoints: operation, share, mean, busiest hour, p50, p99.
    pub endpoints: Vec<[String; 6]>,
    /// Cost figures.
    pub cost: Vec<Row>,
    /// Scalability figures.
    pub scalability: Vec<Row>,
    /// The fit in words.
    pub scalability_summary: String,
    /// Headroom figures.
    pub headroom: Vec<Row>,
    /// The forecast's figures.
    pub forecast: Vec<Row>,
    /// Charts (HTML only): weekly profile, throughput forecast, scalability.
    pub charts: Vec<String>,
}

/// One host, as text.
#[derive(Debug)]
pub struct HostView {
    /// Its name.
    pub name: String,
    /// One row per resource: name, now, limit, earliest, likely, latest, model, backtest.
    pub resources: Vec<[String; 8]>,
    /// Charts (HTML only), one per resource with a forecast.
    pub charts: Vec<String>,
}

/// A number with a sensible number of digits for its size.
fn number(x: f64) -> String {
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.2}")
    } else if a == 0.0 {
        "0".to_owned()
    } else {
        format!("{x:.2e}")
    }
}

fn or_dash(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "–".to_owned(), f)
}

fn interval_text(i: Option<Interval>, f: impl Fn(f64) -> String) -> String {
    match i {
        None => "–".to_owned(),
        Some((low, Some(high))) => format!("{} to {}", f(low), f(high)),
        Some((low, None)) => format!("{} to unbounded", f(low)),
    }
}

fn rps(x: f64) -> String {
    format!("{} rps", number(x))
}

fn crossing_cells(c: &CrossingOut) -> [String; 3] {
    let d = |x: &Option<String>| {
        x.clone()
            .unwrap_or_else(|| "not within the horizon".to_owned())
    };
    [d(&c.earliest), d(&c.likely), d(&c.latest)]
}

fn backtest_text(f: &ForecastOut) -> String {
    let m = |x: Option<f64>| or_dash(x, number);
    format!(
        "MASE mstl_ets {} · seasonal naive {} · straight line {}",
        m(f.backtest_mase.mstl_ets),
        m(f.backtest_mase.seasonal_naive),
        m(f.backtest_mase.linear)
    )
}

fn service_view(s: &ServiceReport, target: Target) -> ServiceView {
    let load = vec![
        ("typical (median minute)".into(), rps(s.typical_rps)),
        ("peak (99th percentile minute)".into(), rps(s.peak_rps)),
        ("busiest minute".into(), rps(s.max_rps)),
        (
            "busiest hour, weekday".into(),
            format!("{:02}:00 UTC, {}", s.busiest_hour_utc, s.busiest_weekday),
        ),
        (
            "repeats every".into(),
            if s.periods_hours.is_empty() {
                "no clear period".to_owned()
            } else {
                s.periods_hours
                    .iter()
                    .map(|p| format!("{p} h"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "growth per week".into(),
            match s.growth_percent_per_week {
                None => "–".to_owned(),
                Some(g) => format!(
                    "{}% ({}, 95%)",
                    number(g),
                    interval_text(s.growth_interval, |x| format!("{}%", number(x)))
                ),
            },
        ),
        (
            "level shifts".into(),
            if s.change_points.is_empty() {
                "none".to_owned()
            } else {
                s.change_points
                    .iter()
                    .map(|c| format!("{}: {} → {}", c.date, rps(c.before_rps), rps(c.after_rps)))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ),
        ("history".into(), format!("{} days", s.history_days)),
    ];
    let cpu_ms = |x: f64| format!("{} ms", number(x * 1000.0));
    let mib = |x: f64| format!("{} MiB", number(x / 1_048_576.0));
    let cost = vec![
        (
            "CPU per request".into(),
            format!(
                "{} ({})",
                or_dash(s.cpu_seconds_per_request, cpu_ms),
                interval_text(s.cpu_seconds_per_request_interval, cpu_ms)
            ),
        ),
        (
            "CPU with no load".into(),
            or_dash(s.idle_cpu_cores, |c| format!("{} cores", number(c))),
        ),
        (
            "memory per request per second".into(),
            format!(
                "{} ({})",
                or_dash(s.memory_bytes_per_rps, mib),
                interval_text(s.memory_bytes_per_rps_interval, mib)
            ),
        ),
        (
            "memory with no load".into(),
            or_dash(s.idle_memory_bytes, mib),
        ),
        (
            "CPU counter resets (restarts)".into(),
            s.quality.cpu_counter_resets.to_string(),
        ),
    ];
    let (scalability, scalability_summary) = match &s.scalability {
        None => (
            Vec::new(),
            "not enough distinct load levels to fit".to_owned(),
        ),
        Some(f) => (
            vec![
                (
                    "predicted maximum".into(),
                    format!(
                        "{} ({})",
                        or_dash(f.max_rps, rps),
                        interval_text(f.max_rps_interval, rps)
                    ),
                ),
                (
                    "knee (latency starts to climb)".into(),
                    or_dash(f.knee_rps, rps),
                ),
                ("highest load seen".into(), rps(f.observed_max_rps)),
                (
                    "λ, σ, κ".into(),
                    format!(
                        "{}, {}, {}",
                        number(f.lambda),
                        number(f.sigma),
                        number(f.kappa)
                    ),
                ),
            ],
            f.summary.clone(),
        ),
    };
    let headroom = vec![
        ("to the knee".into(), or_dash(s.headroom_rps.knee, rps)),
        ("to the maximum".into(), or_dash(s.headroom_rps.max, rps)),
        (
            "to the latency objective".into(),
            or_dash(s.headroom_rps.objective, rps),
        ),
    ];
    let mut forecast = Vec::new();
    let mut charts = Vec::new();
    if target == Target::Html {
        charts.push(chart::weekly(&s.weekly_profile));
    }
    if let Some(f) = &s.forecast {
        forecast.push(("model".into(), f.model.to_owned()));
        forecast.push(("backtest".into(), backtest_text(f)));
        for (label, day) in [("in 30 days", &f.days_30), ("in 90 days", &f.days_90)] {
            if let Some(d) = day {
                forecast.push((
                    label.into(),
                    format!(
                        "{} (80%: {} to {}; 95%: {} to {})",
                        rps(d.point),
                        number(d.low80),
                        number(d.high80),
                        number(d.low95),
                        number(d.high95)
                    ),
                ));
            }
        }
        let [e, l, t] = crossing_cells(&s.max_rps_crossing);
        forecast.push((
            "reaches the maximum".into(),
            format!("earliest {e}, likely {l}, latest {t}"),
        ));
        if target == Target::Html {
            let max = s.scalability.as_ref().and_then(|f| f.max_rps);
            charts.push(chart::forecast(
                "throughput: history and forecast",
                "requests per second",
                f,
                max,
            ));
        }
    }
    if let (Target::Html, Some(fit)) = (target, &s.scalability) {
        charts.push(chart::scalability(&s.latency, fit));
    }
    let endpoints = s
        .endpoints
        .iter()
        .map(|e| {
            [
                e.operation.clone(),
                format!("{}%", number(e.share_percent)),
                rps(e.mean_rps),
                rps(e.busiest_hour_rps),
                format!("{} ms", number(e.p50_ms)),
                format!("{} ms", number(e.p99_ms)),
            ]
        })
        .collect();
    ServiceView {
        name: s.service.clone(),
        load,
        endpoints,
        cost,
        scalability,
        scalability_summary,
        headroom,
        forecast,
        charts,
    }
}

fn resource_row(r: &ResourceReport) -> [String; 8] {
    let share = |x: f64| format!("{}%", number(100.0 * x));
    let [earliest, likely, latest] = crossing_cells(&r.crossing);
    [
        r.name.clone(),
        or_dash(r.current, share),
        share(r.limit),
        earliest,
        likely,
        latest,
        r.forecast
            .as_ref()
            .map_or("–".to_owned(), |f| f.model.to_owned()),
        r.forecast.as_ref().map_or("–".to_owned(), backtest_text),
    ]
}

impl View {
    /// The view of `report` for `target`.
    pub fn of(report: &Report, target: Target) -> Self {
        Self {
            schema: report.schema.to_owned(),
            window: format!(
                "{} to {}, forecasts {} days ahead",
                report.since, report.until, report.horizon_days
            ),
            limits: format!(
                "CPU {}%, memory {}%, disk {}%, p99 objective {} ms",
                number(100.0 * report.limits.cpu),
                number(100.0 * report.limits.memory),
                number(100.0 * report.limits.disk),
                number(report.limits.latency_objective_ms)
            ),
            services: report
                .services
                .iter()
                .map(|s| service_view(s, target))
                .collect(),
            hosts: report
                .hosts
                .iter()
                .map(|h| HostView {
                    name: h.host.clone(),
                    resources: h.resources.iter().map(resource_row).collect(),
                    charts: if target == Target::Html {
                        h.resources
                            .iter()
                            .filter_map(|r| {
                                r.forecast.as_ref().map(|f| {
                                    chart::forecast(
                                        "share in use: history and forecast",
                                        "share in use",
                                        f,
                                        Some(r.limit),
                                    )
                                })
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            refused: report
                .refused
                .iter()
                .map(|r| (r.subject.clone(), r.reason.clone()))
                .collect(),
        }
    }
}
