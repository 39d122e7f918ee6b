//! Breakdown aggregation: the contributions of analysed traces become per-minute component time.
//!
//! In: [`Contribution`]s from the trace analysis. Out: one [`BreakdownRow`] per (service,
//! endpoint, minute, component type, component) with the requests that made at least one such
//! call, the calls and the time, taken by the flusher like the latency histograms. Rows add up in
//! ClickHouse (SummingMergeTree), so a minute flushed twice sums correctly.

use super::shards::ShardedMap;
use crate::model::{ComponentType, Contribution, Named};
use crate::store::rows::BreakdownRow;
use crate::store::schema::BREAKDOWN_MINUTE;
use crate::store::write::Flushable;
use hashbrown::Equivalent;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What one row is about: an endpoint, a minute, a component type and its label.
#[derive(Debug)]
struct Key {
    endpoint: Arc<Named>,
    minute_unix_s: u32,
    component: ComponentType,
    label: Arc<str>,
}

/// A [`Key`] borrowed from a contribution: rows are found by it without taking a count of the
/// shared names (atomic counts the receiving threads would pass back and forth between cores
/// for every contribution); a new row takes its own.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    endpoint: &'a Arc<Named>,
    minute_unix_s: u32,
    component: ComponentType,
    label: &'a Arc<str>,
}

impl KeyRef<'_> {
    /// What keys are compared and hashed by: the texts (the endpoint's by the hash it
    /// carries), not where they are kept.
    fn fields(&self) -> (&Named, u32, ComponentType, &str) {
        (
            self.endpoint,
            self.minute_unix_s,
            self.component,
            self.label,
        )
    }
}

impl Key {
    fn borrowed(&self) -> KeyRef<'_> {
        KeyRef {
            endpoint: &self.endpoint,
            minute_unix_s: self.minute_unix_s,
            component: self.component,
            label: &self.label,
        }
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fields().hash(state);
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.borrowed().fields() == other.borrowed().fields()
    }
}

impl Eq for Key {}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.fields() == key.borrowed().fields()
    }
}

impl From<&KeyRef<'_>> for Key {
    fn from(key: &KeyRef<'_>) -> Self {
        Self {
            endpoint: Arc::clone(key.endpoint),
            minute_unix_s: key.minute_unix_s,
            component: key.component,
            label: Arc::clone(key.label),
        }
    }
}

#[derive(Debug, Default)]
struct Totals {
    requests: u64,
    calls: u64,
    duration_us: u64,
}

impl Totals {
    /// Adds the totals of the same key from another shard.
    fn merge(&mut self, other: Totals) {
        self.requests += other.requests;
        self.calls += other.calls;
        self.duration_us = self.duration_us.saturating_add(other.duration_us);
    }
}

/// The breakdown totals between two flushes, in one shard per thread that records.
#[derive(Debug, Default)]
pub(crate) struct BreakdownAggregator {
    state: ShardedMap<Key, Totals>,
}

impl BreakdownAggregator {
    /// An empty aggregator.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds contributions (each is one request's share of one component), leaving `contributions`
    /// empty for reuse.
    pub(crate) fn record(&self, contributions: &mut Vec<Contribution<'_>>) {
        let mut state = self.state.shard();
        for c in contributions.drain(..) {
            let key = KeyRef {
                endpoint: c.endpoint,
                minute_unix_s: c.minute_unix_s,
                component: c.component,
                label: c.label,
            };
            let totals = match state.get_mut(&key) {
                Some(totals) => totals,
                None => state.entry(Key::from(&key)).or_default(),
            };
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
        self.state
            .take(Totals::merge)
            .into_iter()
            .map(|(key, totals)| BreakdownRow {
                minute: key.minute_unix_s,
                service: key.endpoint.service.to_string(),
                operation: key.endpoint.name.to_string(),
                component_type: key.component as i8,
                component: key.label.to_string(),
                requests: totals.requests,
                calls: totals.calls,
                duration_sum_us: totals.duration_us,
            })
            .collect()
    }

    fn held(&self) -> usize {
        self.state.len()
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

    fn contribution<'a>(
        endpoint: &'a Arc<Named>,
        label: &'a Arc<str>,
        calls: u64,
        duration_us: u64,
    ) -> Contribution<'a> {
        Contribution {
            endpoint,
            minute_unix_s: 60,
            component: ComponentType::Db,
            label,
            calls,
            duration_us,
        }
    }

    #[test]
    fn requests_count_once_per_contribution() {
        let agg = BreakdownAggregator::new();
        let (endpoint, q) = (Named::new("shop", "GET /a"), Arc::from("q"));
        agg.record(&mut vec![
            contribution(&endpoint, &q, 20, 100),
            contribution(&endpoint, &q, 18, 90),
        ]);
        let rows = agg.take();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].requests, rows[0].calls, rows[0].duration_sum_us),
            (2, 38, 190)
        );
        assert_eq!(agg.held(), 0);
    }

    #[test]
    fn rows_are_told_apart_by_their_texts_not_by_where_the_texts_are_kept() {
        let agg = BreakdownAggregator::new();
        // Equal texts in separate allocations: one row; another label or endpoint: its own.
        let (endpoint, same_endpoint) =
            (Named::new("shop", "GET /a"), Named::new("shop", "GET /a"));
        let other_endpoint = Named::new("shop", "GET /b");
        let (q, same_q, r): (Arc<str>, Arc<str>, Arc<str>) = ("q".into(), "q".into(), "r".into());
        agg.record(&mut vec![
            contribution(&endpoint, &q, 1, 10),
            contribution(&same_endpoint, &same_q, 2, 20),
            contribution(&endpoint, &r, 3, 30),
            contribution(&other_endpoint, &q, 4, 40),
        ]);
        let mut rows: Vec<_> = agg
            .take()
            .into_iter()
            .map(|r| {
                (
                    r.operation,
                    r.component,
                    r.requests,
                    r.calls,
                    r.duration_sum_us,
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("GET /a".into(), "q".into(), 2, 3, 30),
                ("GET /a".into(), "r".into(), 1, 3, 30),
                ("GET /b".into(), "q".into(), 1, 4, 40),
            ]
        );
    }
}
