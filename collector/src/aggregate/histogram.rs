//! `LatencyHistogram`: span durations in microseconds, bucketed with the layout of an HDR
//! histogram with two significant digits (at most 1% error on any percentile).
//!
//! In: durations from spans, or buckets read back from storage. Out: `(bucket, count)` pairs
//! whose keys are the highest value each HDR bucket stands for. The keys depend only on the
//! fixed layout, so histograms from any collector, minute or host add up bucket by bucket: in
//! memory with [`LatencyHistogram::merge`], in ClickHouse with `sumMap`.
//!
//! Only non-empty buckets are kept (a sorted map), so a key that saw a handful of durations
//! costs a few dozen bytes rather than the dense HDR array (about 30 KiB at this range).

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Significant decimal digits kept: 2 gives a relative error below 1% (1/128 in practice).
pub const SIGNIFICANT_DIGITS: u8 = 2;
/// Longest duration tracked exactly, in microseconds (one day); longer spans count as this.
pub const MAX_TRACKABLE_US: u64 = 24 * 3600 * 1_000_000;

/// The HDR layout every histogram shares; only used to find the bucket of a value.
static LAYOUT: LazyLock<Histogram<u64>> = LazyLock::new(|| {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGNIFICANT_DIGITS)
        .expect("the constant bounds and precision are valid")
});

/// The bucket key (top of its HDR bucket) for a duration in microseconds.
pub fn bucket_of(duration_us: u64) -> u64 {
    LAYOUT.highest_equivalent(duration_us.min(MAX_TRACKABLE_US))
}

/// A mergeable latency histogram in microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    buckets: BTreeMap<u64, u64>,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration; values past [`MAX_TRACKABLE_US`] are clamped to it.
    pub fn record(&mut self, duration_us: u64) {
        *self.buckets.entry(bucket_of(duration_us)).or_default() += 1;
    }

    /// Adds `count` observations of a bucket key (as produced by [`Self::buckets`]).
    pub fn record_bucket(&mut self, bucket_us: u64, count: u64) {
        if count > 0 {
            *self.buckets.entry(bucket_of(bucket_us)).or_default() += count;
        }
    }

    /// Adds every observation of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (&k, &c) in &other.buckets {
            *self.buckets.entry(k).or_default() += c;
        }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The value at quantile `q` (0..=1), as the top of its bucket; 0 when empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        let (keys, counts) = self.buckets();
        quantile_from_buckets(&keys, &counts, q)
    }

    /// The non-empty buckets in ascending order, as parallel `(keys, counts)` vectors.
    pub fn buckets(&self) -> (Vec<u64>, Vec<u64>) {
        self.buckets.iter().map(|(&k, &c)| (k, c)).unzip()
    }

    /// Builds a histogram back from `(keys, counts)` as stored.
    pub fn from_buckets(keys: &[u64], counts: &[u64]) -> Self {
        let mut h = Self::new();
        for (&k, &c) in keys.iter().zip(counts) {
            h.record_bucket(k, c);
        }
        h
    }
}

/// The value at quantile `q` from ascending bucket keys and counts, with the same rule the
/// storage SQL uses: the first bucket whose cumulative count reaches `ceil(q * total)`.
pub fn quantile_from_buckets(keys: &[u64], counts: &[u64], q: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut cumulative = 0;
    for (&k, &c) in keys.iter().zip(counts) {
        cumulative += c;
        if cumulative >= rank {
            return k;
        }
    }
    keys.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn quantiles_stay_within_one_percent(mut values in prop::collection::vec(1u64..10_000_000, 1..2000)) {
            let mut h = LatencyHistogram::new();
            for &v in &values { h.record(v); }
            values.sort_unstable();
            let (keys, counts) = h.buckets();
            for q in [0.5, 0.9, 0.95, 0.99, 1.0] {
                let exact = exact_quantile(&values, q) as f64;
                let got = quantile_from_buckets(&keys, &counts, q) as f64;
                prop_assert!((got - exact).abs() <= exact * 0.01 + 1.0, "q={q} exact={exact} got={got}");
            }
        }

        #[test]
        fn bucket_keys_are_within_one_percent_and_stable(v in 0u64..MAX_TRACKABLE_US) {
            let k = bucket_of(v);
            prop_assert!(k >= v && (k - v) as f64 <= v as f64 * 0.01 + 1.0);
            prop_assert_eq!(bucket_of(k), k);
        }

        #[test]
        fn merge_equals_recording_everything_in_one(
            a in prop::collection::vec(0u64..100_000_000, 0..500),
            b in prop::collection::vec(0u64..100_000_000, 0..500),
        ) {
            let (mut ha, mut hb, mut all) = (LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new());
            for &v in &a { ha.record(v); all.record(v); }
            for &v in &b { hb.record(v); all.record(v); }
            ha.merge(&hb);
            prop_assert_eq!(ha.buckets(), all.buckets());
        }

        #[test]
        fn buckets_round_trip(values in prop::collection::vec(0u64..MAX_TRACKABLE_US * 2, 0..500)) {
            let mut h = LatencyHistogram::new();
            for &v in &values { h.record(v); }
            let (keys, counts) = h.buckets();
            let back = LatencyHistogram::from_buckets(&keys, &counts);
            prop_assert_eq!(back.buckets(), (keys, counts));
            prop_assert_eq!(back.count(), values.len() as u64);
        }

        #[test]
        fn summing_stored_buckets_is_associative(
            parts in prop::collection::vec(prop::collection::vec(1u64..1_000_000, 0..200), 1..5),
        ) {
            // What ClickHouse's sumMap does: add counts per key across rows.
            let mut summed = std::collections::BTreeMap::<u64, u64>::new();
            let mut all = LatencyHistogram::new();
            for part in &parts {
                let mut h = LatencyHistogram::new();
                for &v in part { h.record(v); all.record(v); }
                let (k, c) = h.buckets();
                for (k, c) in k.into_iter().zip(c) { *summed.entry(k).or_default() += c; }
            }
            let (keys, counts): (Vec<u64>, Vec<u64>) = summed.into_iter().unzip();
            prop_assert_eq!((keys, counts), all.buckets());
        }
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = LatencyHistogram::new();
        assert_eq!(h.value_at_quantile(0.99), 0);
        assert_eq!(quantile_from_buckets(&[], &[], 0.99), 0);
    }

    #[test]
    fn huge_durations_are_clamped_not_lost() {
        let mut h = LatencyHistogram::new();
        h.record(u64::MAX);
        assert_eq!(h.count(), 1);
        assert!(h.value_at_quantile(1.0) >= MAX_TRACKABLE_US);
    }
}
