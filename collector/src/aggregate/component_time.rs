//! Breakdown aggregation: the contributions of analysed traces become per-minute component time.
//!
//! In: [`Contribution`]s from the trace analysis. Out: one [`BreakdownRow`] per (service,
//! endpoint, minute, component type, component) with the requests that made at least one such
//! call, the calls and the time, taken by the flusher like the latency histograms. Rows add up in
//! ClickHouse (SummingMergeTree), so a minute flushed twice sums correctly.

use crate::model::{ComponentType, Contribution};
use crate::store::rows::BreakdownRow;
use crate::store::schema::BREAKDOWN_MINUTE;
use crate::store::write::Flushable;
use hashbrown::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    service: Arc<str>,
    operation: Arc<str>,
    minute_unix_s: u32,
    component: ComponentType,
    label: Arc<str>,
}

#[derive(Debug, Default)]
struct Totals {
    requests: u64,
    calls: u64,
    duration_us: u64,
}

/// The breakdown totals between two flushes.
#[derive(Debug, Default)]
pub(crate) struct BreakdownAggregator {
    state: Mutex<HashMap<Key, Totals>>,
}

impl BreakdownAggregator {
    /// An empty aggregator.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds contributions (each is one request's share of one component), leaving `contributions`
    /// empty for reuse.
    pub(crate) fn record(&self, contributions: &mut Vec<Contribution>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for c in contributions.drain(..) {
            let totals = state
                .entry(Key {
                    service: c.service,
                    operation: c.operation,
                    minute_unix_s: c.minute_unix_s,
                    component: c.component,
                    label: c.label,
                })
                .or_default();
            totals.requests += 1;
            totals.calls += c.calls;
            totals.duration_us = totals.duration_us.saturating_add(c.duration_us);
        }
    }
}

impl Flushable for BreakdownAggregator {
    type Row = BreakdownRow;
    const TABLE: &'static str = BREAKDOWN_MINUTE;

    fn take(&self) -> Vec<BreakdownRow> {
        let drained =
            std::mem::take(&mut *self.state.lock().unwrap_or_else(PoisonError::into_inner));
        drained
            .into_iter()
            .map(|(key, totals)| BreakdownRow {
                minute: key.minute_unix_s,
                service: key.service.to_string(),
                operation: key.operation.to_string(),
                component_type: key.component as i8,
                component: key.label.to_string(),
                requests: totals.requests,
                calls: totals.calls,
                duration_sum_us: totals.duration_us,
            })
            .collect()
    }

    fn held(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn minute(row: &BreakdownRow) -> u32 {
        row.minute
    }

    fn marker(flush: &str, minute: u32) -> BreakdownRow {
        BreakdownRow {
            minute,
            service: String::new(),
            operation: flush.to_owned(),
            component_type: ComponentType::Request as i8,
            component: String::new(),
            requests: 0,
            calls: 0,
            duration_sum_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contribution(label: &str, calls: u64, duration_us: u64) -> Contribution {
        Contribution {
            service: Arc::from("shop"),
            operation: Arc::from("GET /a"),
            minute_unix_s: 60,
            component: ComponentType::Db,
            label: Arc::from(label),
            calls,
            duration_us,
        }
    }

    #[test]
    fn requests_count_once_per_contribution() {
        let agg = BreakdownAggregator::new();
        agg.record(&mut vec![
            contribution("q", 20, 100),
            contribution("q", 18, 90),
        ]);
        let rows = agg.take();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].requests, rows[0].calls, rows[0].duration_sum_us),
            (2, 38, 190)
        );
        assert_eq!(agg.held(), 0);
    }
}
