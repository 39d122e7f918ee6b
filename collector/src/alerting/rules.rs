//! Passive rules: each rule's signal, worked out over its window from the per-minute histograms
//! and counts the collector already stores (never from the ingest path), and whether it breaks
//! the rule's threshold.
//!
//! Percentiles come from the merged histograms (never from averages); the error rate is errors
//! over requests; rps is requests over the window; apdex uses the service's threshold T from
//! `--apdex-threshold(s)`; `no_data` holds when the window holds no request. A window with fewer
//! than `min_events` requests counts as "not enough data" and never breaks a threshold.

use crate::aggregate::histogram::quantile_ms;
use crate::model::ApdexThresholds;
use crate::store::schema::LATENCY_MINUTE;
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_alert_config::{Rule, Signal, Threshold};
use serde::Deserialize;

/// What the window holds for a rule.
#[derive(Debug, Default, Row, Deserialize)]
pub(crate) struct WindowTotals {
    /// Requests.
    pub(crate) requests: u64,
    /// Errors.
    pub(crate) errors: u64,
    /// Histogram bucket keys (µs).
    pub(crate) keys: Vec<u64>,
    /// Counts per key.
    pub(crate) counts: Vec<u64>,
}

/// The query for a rule's window: the service's SERVER spans, or one endpoint's.
pub(crate) fn window_query(
    store: &Store,
    rule: &Rule,
    now_unix_s: u64,
) -> clickhouse::query::Query {
    let from = now_unix_s.saturating_sub(rule.window.as_secs());
    let operation = rule.operation.clone().unwrap_or_default();
    store
        .client()
        .query(&format!(
            "SELECT sum(requests) AS requests, sum(errors) AS errors,
                    tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 1) AS keys,
                    tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 2) AS counts
             FROM {LATENCY_MINUTE}
             WHERE service = ? AND (? = '' OR operation = ?) AND kind = 'server'
               AND minute >= toDateTime(?) AND minute <= toDateTime(?)"
        ))
        .bind(&rule.service)
        .bind(&operation)
        .bind(&operation)
        .bind(from - from % 60)
        .bind(now_unix_s)
}

/// Reads a rule's window.
pub(crate) async fn read_window(
    store: &Store,
    rule: &Rule,
    now_unix_s: u64,
) -> Result<WindowTotals, StoreError> {
    window_query(store, rule, now_unix_s)
        .fetch_optional::<WindowTotals>()
        .await
        .map(Option::unwrap_or_default)
        .map_err(StoreError::clickhouse(format!(
            "evaluate rule {}",
            rule.name
        )))
}

/// Whether the rule's condition holds, and what was seen (for the alert's detail).
pub(crate) fn judge(rule: &Rule, totals: &WindowTotals, apdex: &ApdexThresholds) -> (bool, String) {
    if rule.signal == Signal::NoData {
        return (
            totals.requests == 0,
            format!(
                "{} requests in the last {}",
                totals.requests,
                humantime::format_duration(rule.window)
            ),
        );
    }
    if totals.requests < rule.min_events {
        return (
            false,
            format!("not enough data: {} requests", totals.requests),
        );
    }
    let requests = totals.requests as f64;
    let (value, shown) = match rule.signal {
        Signal::P50 | Signal::P95 | Signal::P99 => {
            let q = match rule.signal {
                Signal::P50 => 0.5,
                Signal::P95 => 0.95,
                _ => 0.99,
            };
            let ms = quantile_ms(&totals.keys, &totals.counts, q);
            (ms, format!("{} {ms:.1} ms", rule.signal.name()))
        }
        Signal::ErrorRate => {
            let rate = totals.errors as f64 / requests;
            (rate, format!("error rate {:.2}%", rate * 100.0))
        }
        Signal::Rps => {
            let rps = requests / rule.window.as_secs_f64().max(1.0);
            (rps, format!("{rps:.2} requests/s"))
        }
        Signal::Apdex => {
            let t = apdex.for_service(&rule.service);
            let (mut satisfied, mut tolerating) = (0u64, 0u64);
            for (&k, &c) in totals.keys.iter().zip(&totals.counts) {
                if k <= t {
                    satisfied += c;
                } else if k <= 4 * t {
                    tolerating += c;
                }
            }
            let score = (satisfied as f64 + tolerating as f64 / 2.0) / requests;
            (score, format!("apdex {score:.3}"))
        }
        Signal::NoData => (0.0, String::new()),
    };
    let shown_limit = |t: f64| match rule.signal {
        Signal::ErrorRate => format!("{:.2}%", t * 100.0),
        Signal::P50 | Signal::P95 | Signal::P99 => format!("{t} ms"),
        Signal::Rps => format!("{t}/s"),
        Signal::Apdex | Signal::NoData => format!("{t}"),
    };
    let limit = match rule.threshold {
        Threshold::Above(t) => format!(" (above {})", shown_limit(t)),
        Threshold::Below(t) => format!(" (below {})", shown_limit(t)),
        Threshold::Silence => String::new(),
    };
    (rule.threshold.broken_by(value), format!("{shown}{limit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        let file = format!("{text}\n[route]\nreceiver = \"r\"\n[[receiver]]\nname = \"r\"\n");
        plumb_alert_config::parse(&file, "t.toml")
            .expect("valid")
            .rules
            .remove(0)
    }

    #[test]
    fn signals_come_from_the_histograms_and_counts() {
        let totals = WindowTotals {
            requests: 100,
            errors: 7,
            keys: vec![10_000, 900_000],
            counts: vec![98, 2],
        };
        let apdex = ApdexThresholds {
            default_us: 500_000,
            per_service: Vec::new(),
        };
        let p99 = rule(
            "[[rule]]\nname = \"slow\"\nservice = \"shop\"\nsignal = \"p99\"\nabove = \"800ms\"",
        );
        assert_eq!(
            judge(&p99, &totals, &apdex),
            (true, "p99 900.0 ms (above 800 ms)".into())
        );
        let p50 = rule(
            "[[rule]]\nname = \"slow\"\nservice = \"shop\"\nsignal = \"p50\"\nabove = \"800ms\"",
        );
        assert!(!judge(&p50, &totals, &apdex).0);
        let errors = rule(
            "[[rule]]\nname = \"err\"\nservice = \"shop\"\nsignal = \"error_rate\"\nabove = \"5%\"",
        );
        assert_eq!(
            judge(&errors, &totals, &apdex),
            (true, "error rate 7.00% (above 5.00%)".into())
        );
        let rps = rule(
            "[[rule]]\nname = \"quiet\"\nservice = \"shop\"\nsignal = \"rps\"\nbelow = 1\nwindow = \"1m\"",
        );
        assert!(
            !judge(&rps, &totals, &apdex).0,
            "100 requests a minute is 1.67/s"
        );
        let apdex_rule =
            rule("[[rule]]\nname = \"a\"\nservice = \"shop\"\nsignal = \"apdex\"\nbelow = 0.995");
        assert!(
            judge(&apdex_rule, &totals, &apdex).0,
            "98 satisfied, 2 tolerating: 0.99"
        );
        let none = rule("[[rule]]\nname = \"gone\"\nservice = \"shop\"\nsignal = \"no_data\"");
        assert!(!judge(&none, &totals, &apdex).0);
        assert!(judge(&none, &WindowTotals::default(), &apdex).0);
        let guarded = rule(
            "[[rule]]\nname = \"g\"\nservice = \"shop\"\nsignal = \"error_rate\"\nabove = 0.01\nmin_events = 1000",
        );
        assert!(!judge(&guarded, &totals, &apdex).0, "min_events");
    }
}
