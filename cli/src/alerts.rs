//! `plumb alerts`, `plumb uptime` and `plumb check-config`: what alerting says, as tables.

use crate::table::{format_minute, format_ms, format_window, table};
use plumb_proto::v1::{AlertsResponse, Silence, UptimeResponse};

/// Active alerts, then the history and the delivery attempts.
pub(crate) fn render_alerts(r: &AlertsResponse) -> String {
    if !r.alerting_enabled {
        return "alerting is off: start plumb-collector with --alerting-config FILE\n".into();
    }
    let mut out = String::new();
    let active: Vec<Vec<String>> = r
        .active
        .iter()
        .map(|a| {
            let since = if a.fired_at_unix_s > 0 {
                a.fired_at_unix_s
            } else {
                a.active_since_unix_s
            };
            vec![
                a.name.clone(),
                a.state.clone(),
                format_minute(since),
                a.detail.clone(),
            ]
        })
        .collect();
    if active.is_empty() {
        out.push_str("no alert is pending or firing\n");
    } else {
        out.push_str(&table(&["ALERT", "STATE", "SINCE", "DETAIL"], &active, 4));
    }
    if !r.history.is_empty() {
        out.push_str("\nhistory (newest first)\n");
        let rows: Vec<Vec<String>> = r
            .history
            .iter()
            .map(|e| {
                vec![
                    format_minute(e.time_unix_s),
                    e.name.clone(),
                    format!("{} -> {}", e.from_state, e.to_state),
                    e.detail.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["TIME", "ALERT", "CHANGE", "DETAIL"], &rows, 4));
    }
    if !r.deliveries.is_empty() {
        out.push_str("\nnotifications (newest first)\n");
        let rows: Vec<Vec<String>> = r
            .deliveries
            .iter()
            .map(|d| {
                vec![
                    format_minute(d.time_unix_s),
                    d.receiver.clone(),
                    d.integration.clone(),
                    d.status.clone(),
                    d.attempt.to_string(),
                    if d.ok {
                        "delivered".into()
                    } else {
                        "failed".into()
                    },
                    d.outcome.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "TIME", "RECEIVER", "VIA", "STATUS", "ATTEMPT", "RESULT", "OUTCOME",
            ],
            &rows,
            7,
        ));
    }
    out
}

/// Per probe: uptime, checks, latency, last change, certificate days.
pub(crate) fn render_uptime(r: &UptimeResponse) -> String {
    if r.probes.is_empty() {
        return format!(
            "no probe checked anything in the last {}\n",
            format_window(r.window_seconds)
        );
    }
    let rows: Vec<Vec<String>> = r
        .probes
        .iter()
        .map(|p| {
            vec![
                p.probe.clone(),
                if p.up { "up".into() } else { "down".into() },
                format!("{:.3}%", p.uptime_percent),
                p.checks.to_string(),
                p.failures.to_string(),
                format_ms(p.p50_ms),
                format_ms(p.p95_ms),
                if p.last_change_unix_s > 0 {
                    format!("{} {}", p.last_change, format_minute(p.last_change_unix_s))
                } else {
                    "-".into()
                },
                if p.certificate_days_left >= 0 {
                    p.certificate_days_left.to_string()
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    format!(
        "uptime over the last {}\n{}",
        format_window(r.window_seconds),
        table(
            &[
                "PROBE",
                "NOW",
                "UPTIME",
                "CHECKS",
                "FAILED",
                "P50",
                "P95",
                "LAST CHANGE",
                "CERT DAYS"
            ],
            &rows,
            2
        )
    )
}

/// Silences, one per line.
pub(crate) fn render_silences(silences: &[Silence]) -> String {
    if silences.is_empty() {
        return "no silence is in force\n".into();
    }
    let rows: Vec<Vec<String>> = silences
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.state.clone(),
                s.matchers.join(" "),
                format_minute(s.starts_at_unix_s),
                format_minute(s.ends_at_unix_s),
                s.created_by.clone(),
                s.comment.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "MATCHERS", "FROM", "UNTIL", "BY", "COMMENT"],
        &rows,
        7,
    )
}

/// Checks an alerting file offline; the summary, or the error naming file, line and key.
pub(crate) fn check_config(path: &std::path::Path) -> anyhow::Result<String> {
    let config = plumb_alert_config::load(path)?;
    Ok(format!(
        "{}: ok: {} probes, {} rules, {} receivers, evaluated every {}\n",
        path.display(),
        config.probes.len(),
        config.rules.len(),
        config.receivers.len(),
        humantime::format_duration(config.evaluation_interval)
    ))
}
