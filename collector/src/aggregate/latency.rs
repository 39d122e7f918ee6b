//! Latency aggregation: spans become per-minute latency histograms.
//!
//! In: validated [`Span`]s. Out: one [`LatencyRow`] per (service, operation, span kind, minute)
//! with its histogram, request count, error count and duration sum, taken by the flusher every
//! few seconds. A late span lands in the minute it started in, and because stored rows add up in
//! ClickHouse, a minute flushed twice (or by two collectors) sums correctly.

use super::histogram::LatencyHistogram;
use super::shards::ShardedMap;
use crate::model::{Named, Span, SpanKind};
use crate::store::rows::LatencyRow;
use crate::store::schema::LATENCY_MINUTE;
use crate::store::write::Flushable;
use hashbrown::Equivalent;
use std::sync::Arc;

/// What one aggregate is keyed by.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct AggregateKey {
    /// Service and operation.
    endpoint: Arc<Named>,
    /// Span kind.
    kind: SpanKind,
    /// Start of the minute, seconds since the epoch.
    minute_unix_s: u32,
}

/// A borrowed form of [`AggregateKey`] for lookups that take no count of the shared names;
/// it hashes the same fields in the same order as the derived `Hash` of the owned key (the
/// endpoint by the hash it carries, not by its texts).
#[derive(Hash)]
struct KeyRef<'a>(&'a Named, SpanKind, u32);

impl Equivalent<AggregateKey> for KeyRef<'_> {
    fn equivalent(&self, key: &AggregateKey) -> bool {
        self.2 == key.minute_unix_s && self.1 == key.kind && *self.0 == *key.endpoint
    }
}

#[derive(Debug, Default)]
struct Aggregate {
    histogram: LatencyHistogram,
    requests: u64,
    errors: u64,
    duration_sum_us: u64,
}

impl Aggregate {
    /// Adds another aggregate of the same key.
    fn merge(&mut self, other: Aggregate) {
        self.histogram.merge(&other.histogram);
        self.requests += other.requests;
        self.errors += other.errors;
        self.duration_sum_us = self.duration_sum_us.saturating_add(other.duration_sum_us);
    }
}

/// The in-memory aggregates between two flushes, in one shard per receiving thread.
#[derive(Debug, Default)]
pub(crate) struct Aggregator {
    state: ShardedMap<AggregateKey, Aggregate>,
}

impl Aggregator {
    /// An empty aggregator.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds spans to their minute's aggregates.
    pub(crate) fn record(&self, spans: &[Span<'_>]) {
        let mut state = self.state.shard();
        for span in spans {
            let minute = span.minute_unix_s();
            let lookup = KeyRef(&span.endpoint, span.kind, minute);
            let agg = match state.get_mut(&lookup) {
                Some(agg) => agg,
                None => state
                    .entry(AggregateKey {
                        endpoint: Arc::clone(&span.endpoint),
                        kind: span.kind,
                        minute_unix_s: minute,
                    })
                    .or_default(),
            };
            let us = span.duration_us();
            agg.histogram.record(us);
            agg.requests += 1;
            agg.errors += u64::from(span.is_error);
            agg.duration_sum_us = agg.duration_sum_us.saturating_add(us);
        }
    }
}

impl Flushable for Aggregator {
    type Row = LatencyRow;
    const TABLE: &'static str = LATENCY_MINUTE;

    fn take(&self) -> Vec<LatencyRow> {
        self.state
            .take(Aggregate::merge)
            .into_iter()
            .map(|(key, agg)| {
                let (buckets, counts) = agg.histogram.into_buckets();
                LatencyRow {
                    minute: key.minute_unix_s,
                    service: key.endpoint.service.to_string(),
                    operation: key.endpoint.name.to_string(),
                    kind: key.kind as i8,
                    requests: agg.requests,
                    errors: agg.errors,
                    duration_sum_us: agg.duration_sum_us,
                    buckets,
                    counts,
                }
            })
            .collect()
    }

    fn held(&self) -> usize {
        self.state.len()
    }

    fn minute(row: &LatencyRow) -> u32 {
        row.minute
    }

    fn marker(flush: &str, minute: u32) -> LatencyRow {
        LatencyRow {
            minute,
            service: String::new(),
            operation: flush.to_owned(),
            kind: SpanKind::Unspecified as i8,
            requests: 0,
            errors: 0,
            duration_sum_us: 0,
            buckets: Vec::new(),
            counts: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Named;

    fn span(op: &str, start_s: u64, dur_us: u64, error: bool) -> Span<'_> {
        Span {
            endpoint: Named::new("svc", op),
            name: op,
            kind: SpanKind::Server,
            trace_id: [1; 16],
            span_id: [1; 8],
            parent_span_id: [0; 8],
            start_unix_ns: start_s * 1_000_000_000,
            duration_ns: dur_us * 1_000,
            status_code: 0,
            status_message: "",
            http_status_code: 200,
            is_error: error,
            attributes: &[],
            resource: Default::default(),
        }
    }

    #[test]
    fn spans_land_in_their_own_minute() {
        let agg = Aggregator::new();
        agg.record(&[
            span("a", 120, 10, false),
            span("a", 179, 20, true),
            span("a", 180, 30, false),
        ]);
        let mut rows = agg.take();
        rows.sort_by_key(|r| r.minute);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (
                rows[0].minute,
                rows[0].requests,
                rows[0].errors,
                rows[0].duration_sum_us
            ),
            (120, 2, 1, 30)
        );
        assert_eq!((rows[1].minute, rows[1].requests), (180, 1));
        assert_eq!(agg.held(), 0);
    }
}
