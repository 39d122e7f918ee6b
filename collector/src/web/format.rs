//! How figures read on the pages: durations, rates, shares and times, with units.

/// Milliseconds as `850 µs`, `12.3 ms` or `1.24 s`.
pub(crate) fn ms(value: f64) -> String {
    if !value.is_finite() {
        "–".into()
    } else if value < 1.0 {
        format!("{:.0} µs", value * 1000.0)
    } else if value < 1000.0 {
        significant(value, "ms")
    } else {
        significant(value / 1000.0, "s")
    }
}

/// Requests per second.
pub(crate) fn rps(value: f64) -> String {
    significant(value, "")
}

/// A percentage.
pub(crate) fn percent(value: f64) -> String {
    format!("{value:.2}%")
}

/// An apdex score.
pub(crate) fn score(value: f64) -> String {
    format!("{value:.2}")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn time(unix_s: u64) -> String {
    i64::try_from(unix_s)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(String::new, |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

/// Three significant digits and the unit.
fn significant(value: f64, unit: &str) -> String {
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let number = format!("{value:.digits$}");
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_with_units() {
        assert_eq!(ms(0.25), "250 µs");
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(1234.0), "1.23 s");
        assert_eq!(rps(0.5), "0.50");
        assert_eq!(percent(1.0), "1.00%");
        assert_eq!(time(1_796_134_200), "2026-12-01 14:10:00");
    }
}
