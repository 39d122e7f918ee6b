//! Maintenance windows: a cron schedule (`minute hour day-of-month month day-of-week`, with
//! lists, ranges, steps and names such as `THU` or `JAN`), a duration and a time zone; while a
//! window is open, the alerts its matchers select send no notification.
//!
//! As in cron, when both the day of the month and the day of the week are restricted, a day
//! matching either counts.

use crate::matcher::Matcher;
use std::time::Duration;

/// One cron field: which values match.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    allowed: Vec<bool>,
    /// Written as `*` (matters for the day fields).
    any: bool,
}

impl Field {
    fn parse(text: &str, min: u32, max: u32, names: &[&str]) -> Result<Self, String> {
        let mut allowed = vec![false; max as usize + 1];
        let value = |v: &str| -> Result<u32, String> {
            if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
                return Ok(i as u32 + min);
            }
            v.parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{v:?} is not a value from {min} to {max}"))
        };
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (
                    r,
                    s.parse::<u32>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("{s:?} is not a step"))?,
                ),
                None => (part, 1),
            };
            let (from, to) = match range {
                "*" => (min, max),
                r => match r.split_once('-') {
                    Some((a, b)) => (value(a)?, value(b)?),
                    None => {
                        let v = value(r)?;
                        (v, if step > 1 { max } else { v })
                    }
                },
            };
            if from > to {
                return Err(format!("{range:?} runs backwards"));
            }
            for v in (from..=to).step_by(step as usize) {
                allowed[v as usize] = true;
            }
        }
        Ok(Self {
            allowed,
            any: text == "*",
        })
    }

    fn has(&self, v: u32) -> bool {
        self.allowed.get(v as usize).copied().unwrap_or(false)
    }
}

/// A cron schedule of five fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    /// The five fields as written, one space apart.
    text: String,
    minute: Field,
    hour: Field,
    day: Field,
    month: Field,
    weekday: Field,
}

impl std::str::FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "{text:?} has {} fields; a cron schedule has 5: minute hour day month weekday",
                fields.len()
            ));
        };
        const MONTHS: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let mut weekday = Field::parse(weekday, 0, 7, &DAYS)?;
        if weekday.has(7) {
            // 7 is Sunday too.
            weekday.allowed[0] = true;
        }
        Ok(Self {
            text: fields.join(" "),
            minute: Field::parse(minute, 0, 59, &[])?,
            hour: Field::parse(hour, 0, 23, &[])?,
            day: Field::parse(day, 1, 31, &[])?,
            month: Field::parse(month, 1, 12, &MONTHS)?,
            weekday,
        })
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Cron {
    /// Whether the schedule fires at the minute of `at` (in its time zone).
    fn matches(&self, at: &jiff::Zoned) -> bool {
        let day_ok = match (self.day.any, self.weekday.any) {
            (false, false) => {
                self.day.has(at.day() as u32)
                    || self
                        .weekday
                        .has(at.weekday().to_sunday_zero_offset() as u32)
            }
            _ => {
                self.day.has(at.day() as u32)
                    && self
                        .weekday
                        .has(at.weekday().to_sunday_zero_offset() as u32)
            }
        };
        day_ok
            && self.minute.has(at.minute() as u32)
            && self.hour.has(at.hour() as u32)
            && self.month.has(at.month() as u32)
    }
}

/// One maintenance window.
#[derive(Clone, Debug)]
pub struct Maintenance {
    /// When it opens.
    pub schedule: Cron,
    /// How long it stays open.
    pub duration: Duration,
    /// The time zone the schedule is read in.
    pub timezone: jiff::tz::TimeZone,
    /// Which alerts it mutes (none: all).
    pub matchers: Vec<Matcher>,
}

impl Maintenance {
    /// Whether the window is open at `unix_s`: the schedule fired at a minute within the last
    /// `duration`.
    pub fn open_at(&self, unix_s: i64) -> bool {
        let span = i64::try_from(self.duration.as_secs()).unwrap_or(i64::MAX);
        // Starts after `unix_s - span`: a window is open for `[start, start + duration)`.
        let first = (unix_s.saturating_sub(span) + 60).div_euclid(60) * 60;
        let mut minute = unix_s.div_euclid(60) * 60;
        while minute >= first {
            if let Ok(t) = jiff::Timestamp::from_second(minute)
                && self.schedule.matches(&t.to_zoned(self.timezone.clone()))
            {
                return true;
            }
            minute -= 60;
        }
        false
    }

    /// Whether the window mutes an alert with `labels` at `unix_s`.
    pub fn mutes(&self, labels: &std::collections::BTreeMap<String, String>, unix_s: i64) -> bool {
        self.matchers.iter().all(|m| m.matches(labels)) && self.open_at(unix_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(cron: &str, minutes: u64, tz: &str) -> Maintenance {
        Maintenance {
            schedule: cron.parse().expect(cron),
            duration: Duration::from_secs(minutes * 60),
            timezone: jiff::tz::TimeZone::get(tz).expect(tz),
            matchers: Vec::new(),
        }
    }

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().expect(text).as_second()
    }

    #[test]
    fn windows_open_by_the_schedule_in_their_time_zone() {
        // Thursdays 23:00 in Amsterdam (UTC+1 in December) for an hour.
        let w = window("0 23 * * THU", 60, "Europe/Amsterdam");
        assert!(w.open_at(at("2026-12-03T22:00:00Z")), "23:00 local");
        assert!(w.open_at(at("2026-12-03T22:59:00Z")));
        assert!(
            !w.open_at(at("2026-12-03T23:00:00Z")),
            "closed after an hour"
        );
        assert!(!w.open_at(at("2026-12-03T21:59:00Z")));
        assert!(!w.open_at(at("2026-12-04T22:30:00Z")), "Friday");
        let every_quarter = window("*/15 * * * *", 5, "UTC");
        assert!(!every_quarter.open_at(at("2026-12-01T10:36:00Z")));
        assert!(every_quarter.open_at(at("2026-12-01T10:47:00Z")));
        let first_or_monday = window("0 0 1 * MON", 1, "UTC");
        assert!(
            first_or_monday.open_at(at("2026-12-07T00:00:30Z")),
            "a Monday"
        );
        assert!(
            first_or_monday.open_at(at("2026-12-01T00:00:30Z")),
            "the first"
        );
        assert!(!first_or_monday.open_at(at("2026-12-02T00:00:30Z")));
    }

    #[test]
    fn schedules_and_matchers_read_as_written() {
        let cron: Cron = "0  23 * *   THU".parse().expect("cron");
        assert_eq!(cron.to_string(), "0 23 * * THU");
        for text in [
            "service=shop",
            "severity!=info",
            "alertname=~shop-.*",
            "env!~dev|test",
        ] {
            let m: Matcher = text.parse().expect("matcher");
            assert_eq!(m.to_string(), text);
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        for (text, says) in [
            ("0 23 * *", "5: minute"),
            ("61 * * * *", "from 0 to 59"),
            ("0 5-2 * * *", "backwards"),
            ("*/0 * * * *", "not a step"),
            ("0 0 * * FUNDAY", "from 0 to 7"),
        ] {
            let e = text.parse::<Cron>().expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
