//! Regressions (`plumb regressions`): endpoints whose p95, p99 or error rate got significantly
//! worse than in the same window a day (or a week) earlier.
//!
//! Each endpoint's summed histograms of both windows are compared in Rust. A percentile counts
//! as worse when two things hold: the share of current requests slower than the baseline's
//! percentile is higher than the baseline's own share, by a two-proportion z-test at
//! [`Z_CRITICAL`] (about one false alarm in 30,000 tests: quiet on noise even over a thousand
//! endpoints), and the percentile grew by at least the minimum change (20% by default). The
//! error rate uses the same test on errors per request and must rise by at least one percentage
//! point. Endpoints with fewer than `min_requests` in either window are not compared, and a
//! percentile is only tested when both windows hold at least five requests above it.
//! Regressions are ranked by the extra time the endpoint now costs per hour.

use super::QueryError;
use super::top::{TopQuery, histograms_query, window_seconds};
use crate::aggregate::histogram::{quantile_from_buckets, quantile_ms};
use crate::store::{Store, StoreError};
use clickhouse::Row;
use plumb_proto::v1::{Regression, RegressionsRequest, RegressionsResponse};
use serde::Deserialize;
use std::collections::HashMap;

/// z above which a difference counts (one-sided p ≈ 3·10⁻⁵).
pub(crate) const Z_CRITICAL: f64 = 4.0;
const DEFAULT_WINDOW_S: u64 = 3600;
const DEFAULT_BASELINE_S: u64 = 86_400;
const DEFAULT_MIN_REQUESTS: u64 = 100;
const DEFAULT_MIN_CHANGE_PERCENT: f64 = 20.0;
/// Smallest rise of the error rate that counts, as a fraction.
const MIN_ERROR_RISE: f64 = 0.01;

/// One endpoint's summed histogram over one window.
#[derive(Clone, Debug, Default, Row, Deserialize)]
pub(crate) struct WindowHistogram {
    /// Service.
    pub(crate) service: String,
    /// Operation.
    pub(crate) operation: String,
    /// Requests.
    pub(crate) req_total: u64,
    /// Errors.
    pub(crate) err_total: u64,
    /// Sum of durations, µs.
    pub(crate) sum_us: u64,
    /// Bucket keys, µs, ascending.
    pub(crate) keys: Vec<u64>,
    /// Counts per bucket.
    pub(crate) counts: Vec<u64>,
}

impl WindowHistogram {
    fn mean_us(&self) -> f64 {
        self.sum_us as f64 / self.req_total.max(1) as f64
    }

    fn error_rate(&self) -> f64 {
        self.err_total as f64 / self.req_total.max(1) as f64
    }

    /// Requests in buckets above `us`.
    fn above(&self, us: u64) -> u64 {
        self.keys
            .iter()
            .zip(&self.counts)
            .filter(|(k, _)| **k > us)
            .map(|(_, c)| c)
            .sum()
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// When a change counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Criteria {
    /// Requests needed in each window.
    pub(crate) min_requests: u64,
    /// Smallest relative growth of a percentile (0.2 = 20%).
    pub(crate) min_change: f64,
}

/// One-sided two-proportion z statistic: how much larger `x/m` is than `y/n`.
fn z_statistic(x: u64, m: u64, y: u64, n: u64) -> f64 {
    if m == 0 || n == 0 {
        return 0.0;
    }
    let (m_f, n_f) = (m as f64, n as f64);
    let pooled = (x + y) as f64 / (m_f + n_f);
    let se = (pooled * (1.0 - pooled) * (1.0 / m_f + 1.0 / n_f)).sqrt();
    if se == 0.0 {
        return 0.0;
    }
    (x as f64 / m_f - y as f64 / n_f) / se
}

/// Whether quantile `q` got significantly worse from `before` to `after`.
fn percentile_worse(
    before: &WindowHistogram,
    after: &WindowHistogram,
    q: f64,
    c: &Criteria,
) -> bool {
    let (n, m) = (before.total(), after.total());
    let tail = 1.0 - q;
    if (n as f64) * tail < 5.0 || (m as f64) * tail < 5.0 {
        return false;
    }
    let b = quantile_from_buckets(&before.keys, &before.counts, q);
    let a = quantile_from_buckets(&after.keys, &after.counts, q);
    let grew = a > b && a as f64 >= b as f64 * (1.0 + c.min_change);
    grew && z_statistic(after.above(b), m, before.above(b), n) >= Z_CRITICAL
}

/// What got worse, if anything: any of `p95`, `p99`, `errors`.
pub(crate) fn worse(
    before: &WindowHistogram,
    after: &WindowHistogram,
    c: &Criteria,
) -> Vec<&'static str> {
    if before.req_total < c.min_requests || after.req_total < c.min_requests {
        return Vec::new();
    }
    let mut reasons = Vec::new();
    for (q, name) in [(0.95, "p95"), (0.99, "p99")] {
        if percentile_worse(before, after, q, c) {
            reasons.push(name);
        }
    }
    let errors_rose = after.error_rate() - before.error_rate() >= MIN_ERROR_RISE
        && z_statistic(
            after.err_total,
            after.req_total,
            before.err_total,
            before.req_total,
        ) >= Z_CRITICAL;
    if errors_rose {
        reasons.push("errors");
    }
    reasons
}

/// Compares the window ending `now_unix_s` with the baseline window.
pub(crate) async fn regressions(
    store: &Store,
    request: RegressionsRequest,
    now_unix_s: u32,
) -> Result<RegressionsResponse, QueryError> {
    let window_s = window_seconds(request.since_seconds, DEFAULT_WINDOW_S)?;
    let baseline_s = window_seconds(request.baseline_seconds, DEFAULT_BASELINE_S)?;
    if baseline_s < window_s {
        return Err(QueryError::InvalidArgument(format!(
            "the baseline ({baseline_s} s back) must lie at least one window ({window_s} s) back"
        )));
    }
    let min_change_percent = match request.min_change_percent {
        0.0 => DEFAULT_MIN_CHANGE_PERCENT,
        p if p.is_finite() && p > 0.0 => p,
        p => {
            return Err(QueryError::InvalidArgument(format!(
                "min_change_percent must be positive, not {p}"
            )));
        }
    };
    let criteria = Criteria {
        min_requests: match request.min_requests {
            0 => DEFAULT_MIN_REQUESTS,
            n => n,
        },
        min_change: min_change_percent / 100.0,
    };
    let filter = TopQuery::service_wide(window_s, request.service.clone(), "server".into());
    let now = u64::from(now_unix_s);
    let read = |from: u64, to: u64| {
        let query = histograms_query(store, &filter, from, to);
        async move {
            query
                .fetch_all::<WindowHistogram>()
                .await
                .map_err(StoreError::clickhouse("read histograms for the comparison"))
        }
    };
    let after = read(now.saturating_sub(window_s), now + 60).await?;
    let before_end = now.saturating_sub(baseline_s);
    let before = read(before_end.saturating_sub(window_s), before_end).await?;
    let mut baseline: HashMap<(String, String), WindowHistogram> = before
        .into_iter()
        .map(|h| ((h.service.clone(), h.operation.clone()), h))
        .collect();
    let hours = window_s as f64 / 3600.0;
    let (mut compared, mut skipped) = (0, 0);
    let mut found = Vec::new();
    for after in after {
        let key = (after.service.clone(), after.operation.clone());
        let before = baseline.remove(&key).unwrap_or_default();
        if before.req_total < criteria.min_requests || after.req_total < criteria.min_requests {
            skipped += 1;
            continue;
        }
        compared += 1;
        let reasons = worse(&before, &after, &criteria);
        if reasons.is_empty() {
            continue;
        }
        let per_hour = after.req_total as f64 / hours;
        let q = |h: &WindowHistogram, q| quantile_ms(&h.keys, &h.counts, q);
        found.push(Regression {
            reasons: reasons.into_iter().map(str::to_owned).collect(),
            requests_before: before.req_total,
            requests_after: after.req_total,
            p95_before_ms: q(&before, 0.95),
            p95_after_ms: q(&after, 0.95),
            p99_before_ms: q(&before, 0.99),
            p99_after_ms: q(&after, 0.99),
            error_percent_before: 100.0 * before.error_rate(),
            error_percent_after: 100.0 * after.error_rate(),
            mean_before_ms: before.mean_us() / 1000.0,
            mean_after_ms: after.mean_us() / 1000.0,
            extra_seconds_per_hour: (after.mean_us() - before.mean_us()) / 1e6 * per_hour,
            extra_errors_per_hour: (after.error_rate() - before.error_rate()) * per_hour,
            service: after.service,
            operation: after.operation,
        });
    }
    // Endpoints seen only in the baseline have no current window to compare.
    skipped += baseline.len() as u64;
    found.sort_by(|a, b| {
        b.extra_seconds_per_hour
            .total_cmp(&a.extra_seconds_per_hour)
            .then_with(|| b.extra_errors_per_hour.total_cmp(&a.extra_errors_per_hour))
    });
    Ok(RegressionsResponse {
        regressions: found,
        window_seconds: window_s,
        baseline_seconds: baseline_s,
        endpoints_compared: compared,
        endpoints_skipped: skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::histogram::LatencyHistogram;

    const CRITERIA: Criteria = Criteria {
        min_requests: 100,
        min_change: 0.2,
    };

    /// A skewed latency sample: mostly near `base_us`, with a long tail; `errors` per mille.
    fn window(seed: u64, requests: u64, base_us: u64, errors_per_mille: u64) -> WindowHistogram {
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut h = LatencyHistogram::new();
        let (mut sum_us, mut err_total) = (0, 0);
        for _ in 0..requests {
            let u = (next() % 10_000) as f64 / 10_000.0;
            let us = base_us + (base_us as f64 * 8.0 * u.powi(6)) as u64 + next() % (base_us / 4);
            h.record(us);
            sum_us += us;
            err_total += u64::from(next() % 1000 < errors_per_mille);
        }
        let (keys, counts) = h.into_buckets();
        WindowHistogram {
            req_total: requests,
            err_total,
            sum_us,
            keys,
            counts,
            ..Default::default()
        }
    }

    #[test]
    fn doubled_latency_is_found() {
        let before = window(1, 3000, 20_000, 5);
        let after = window(2, 3000, 40_000, 5);
        assert_eq!(worse(&before, &after, &CRITERIA), ["p95", "p99"]);
    }

    #[test]
    fn a_rise_in_errors_is_found_and_too_few_requests_are_not_compared() {
        let before = window(3, 2000, 20_000, 5);
        let after = window(4, 2000, 20_000, 40);
        assert_eq!(worse(&before, &after, &CRITERIA), ["errors"]);
        let (small_before, small_after) = (window(5, 50, 20_000, 0), window(6, 50, 80_000, 500));
        assert!(worse(&small_before, &small_after, &CRITERIA).is_empty());
    }

    #[test]
    fn a_small_shift_is_not_a_regression_even_when_significant() {
        let before = window(7, 50_000, 20_000, 5);
        let after = window(8, 50_000, 22_000, 5);
        assert!(worse(&before, &after, &CRITERIA).is_empty());
    }

    /// The same distribution sampled twice, with different noise and traffic, over a thousand
    /// endpoints of every size and shape: nothing fires. (Deterministic, so CI never flakes;
    /// at z = 4 the expected false alarms over these 3,000 tests are about 0.1.)
    #[test]
    fn identical_distributions_never_fire() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for case in 0..1000 {
            let base_us = 1_000 + next(500_000);
            let errors = next(100);
            let before = window(next(u64::MAX), 100 + next(6000), base_us, errors);
            let after = window(next(u64::MAX), 100 + next(6000), base_us, errors);
            let found = worse(&before, &after, &CRITERIA);
            assert!(found.is_empty(), "case {case}: {found:?}");
        }
    }
}
