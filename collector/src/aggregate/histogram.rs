//! `LatencyHistogram`: span durations in microseconds, bucketed with the layout of an HDR
//! histogram with two significant digits (at most 1% error on any percentile).
//!
//! In: durations from spans, or buckets read back from storage. Out: `(bucket, count)` pairs
//! whose keys are the highest value each HDR bucket stands for. The keys depend only on the
//! fixed layout, so histograms from any collector, minute or host add up bucket by bucket: in
//! memory by adding counts key by key, in ClickHouse with `sumMap`.
//!
//! Only non-empty buckets have a count, kept in bucket order in one vector, so a key that saw a
//! handful of durations holds a few counts rather than the dense HDR array (about 30 KiB at this
//! range). Which buckets those are is a bitmap with one bit per bucket index (512 bytes) and, per
//! 64-bit word of it, how many buckets the words before hold: a bucket's count is found with two
//! loads and a population count, not a search whose every step waits on the one before (`record`
//! runs once per span, and the binary search it replaced was most of the aggregator's time). The
//! keys, eight bytes each, are worked out only when the histogram is taken.

use hdrhistogram::Histogram;
use std::sync::LazyLock;

/// Significant decimal digits kept: 2 gives a relative error below 1% (1/128 in practice).
pub(crate) const SIGNIFICANT_DIGITS: u8 = 2;
/// Longest duration tracked exactly, in microseconds (one day); longer spans count as this.
pub(crate) const MAX_TRACKABLE_US: u64 = 24 * 3600 * 1_000_000;

/// The HDR layout every histogram shares; only used to find the bucket of a value.
static LAYOUT: LazyLock<Histogram<u64>> = LazyLock::new(|| {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_US, SIGNIFICANT_DIGITS)
        .expect("the constant bounds and precision are valid")
});

/// The bucket key (top of its HDR bucket) for a duration in microseconds.
pub(crate) fn bucket_of(duration_us: u64) -> u64 {
    LAYOUT.highest_equivalent(duration_us.min(MAX_TRACKABLE_US))
}

/// Sub-buckets in each HDR bucket: the power of two that holds 2 × 10^[`SIGNIFICANT_DIGITS`].
const SUB_BUCKETS_LOG2: u32 = 8;
/// The lower half of a bucket repeats the bucket below it, so each bucket past the first adds
/// only its upper half: this many new sub-buckets.
const HALF_LOG2: u32 = SUB_BUCKETS_LOG2 - 1;

/// The place of a duration's bucket in the HDR layout, in ascending order of the buckets (the
/// largest, for [`MAX_TRACKABLE_US`], is 3,872: below the 4,096 bits of a histogram's bitmap).
fn bucket_index(duration_us: u64) -> u16 {
    let value = duration_us.min(MAX_TRACKABLE_US);
    // Which power-of-two range the value is in (0 for values below 256, which map one to one),
    // and its sub-bucket there (from 128 up, past the first range).
    let bucket =
        (u64::BITS - SUB_BUCKETS_LOG2) - (value | ((1 << SUB_BUCKETS_LOG2) - 1)).leading_zeros();
    let sub_bucket = value >> bucket;
    (((u64::from(bucket) + 1) << HALF_LOG2) + sub_bucket - (1 << HALF_LOG2)) as u16
}

/// The key of the bucket at `index`: the top of the range of durations [`bucket_index`] puts
/// there.
fn bucket_key(index: u16) -> u64 {
    let index = u64::from(index);
    let (bucket, sub_bucket) = match (index >> HALF_LOG2).checked_sub(1) {
        Some(bucket) if bucket > 0 => (bucket, (index & ((1 << HALF_LOG2) - 1)) + (1 << HALF_LOG2)),
        _ => (0, index),
    };
    bucket_of(sub_bucket << bucket)
}

/// Words of the bitmap of buckets in use: one bit for each bucket index below 64 × 64 = 4,096.
const WORDS: usize = 64;

/// Which buckets of a histogram have a count, and where each count is.
#[derive(Clone, Debug, PartialEq)]
struct Occupancy {
    /// Bit `i % 64` of word `i / 64` is set when bucket index `i` has a count.
    present: [u64; WORDS],
    /// For each word, the buckets with a count in the words before it: where the count of its
    /// first bucket in use is.
    before: [u16; WORDS],
}

/// A mergeable latency histogram in microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// The buckets in use; `None` until the first duration.
    occupancy: Option<Box<Occupancy>>,
    /// The counts of the buckets in use, in the order of their indexes ([`bucket_index`]).
    counts: Vec<u64>,
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one duration; values past [`MAX_TRACKABLE_US`] are clamped to it.
    pub fn record(&mut self, duration_us: u64) {
        self.add(bucket_index(duration_us), 1);
    }

    /// Adds `count` to the bucket at `index`.
    fn add(&mut self, index: u16, count: u64) {
        let occupancy = self.occupancy.get_or_insert_with(|| {
            Box::new(Occupancy {
                present: [0; WORDS],
                before: [0; WORDS],
            })
        });
        let (word, bit) = (usize::from(index / 64), 1u64 << (index % 64));
        let at = usize::from(occupancy.before[word])
            + (occupancy.present[word] & (bit - 1)).count_ones() as usize;
        if occupancy.present[word] & bit != 0 {
            self.counts[at] += count;
        } else {
            occupancy.present[word] |= bit;
            for later in &mut occupancy.before[word + 1..] {
                *later += 1;
            }
            self.counts.insert(at, count);
        }
    }

    /// The indexes of the buckets in use, ascending: one for each count in `counts`.
    fn indexes(&self) -> impl Iterator<Item = u16> + '_ {
        let words = self.occupancy.iter().flat_map(|o| o.present.iter());
        words.enumerate().flat_map(|(word, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                let bit = (bits != 0).then(|| bits.trailing_zeros())?;
                bits &= bits - 1;
                Some((word * 64) as u16 + bit as u16)
            })
        })
    }

    /// Adds the counts of `other`, bucket by bucket.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (index, &count) in other.indexes().zip(&other.counts) {
            self.add(index, count);
        }
    }

    /// The non-empty buckets in ascending order, as parallel `(keys, counts)` vectors.
    pub fn into_buckets(self) -> (Vec<u64>, Vec<u64>) {
        let keys = self.indexes().map(bucket_key).collect();
        (keys, self.counts)
    }
}

/// [`quantile_from_buckets`] in milliseconds (the keys are microseconds).
pub(crate) fn quantile_ms(keys: &[u64], counts: &[u64], q: f64) -> f64 {
    quantile_from_buckets(keys, counts, q) as f64 / 1000.0
}

/// The value at quantile `q` from ascending bucket keys and counts, with the same rule the
/// storage SQL uses: the first bucket whose cumulative count reaches `ceil(q * total)`.
pub(crate) fn quantile_from_buckets(keys: &[u64], counts: &[u64], q: f64) -> u64 {
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
            let (keys, counts) = h.into_buckets();
            for q in [0.5, 0.9, 0.95, 0.99, 1.0] {
                let exact = exact_quantile(&values, q) as f64;
                let got = quantile_from_buckets(&keys, &counts, q) as f64;
                prop_assert!((got - exact).abs() <= exact * 0.01 + 1.0, "q={q} exact={exact} got={got}");
            }
        }

        #[test]
        fn merging_equals_recording_both(
            a in prop::collection::vec(0u64..100_000_000, 0..300),
            b in prop::collection::vec(0u64..100_000_000, 0..300),
        ) {
            let (mut left, mut right, mut both) =
                (LatencyHistogram::new(), LatencyHistogram::new(), LatencyHistogram::new());
            for &v in &a { left.record(v); both.record(v); }
            for &v in &b { right.record(v); both.record(v); }
            left.merge(&right);
            prop_assert_eq!(left, both);
        }

        #[test]
        fn bucket_indexes_rank_the_buckets_and_give_back_their_keys(
            a in 0u64..=MAX_TRACKABLE_US,
            b in 0u64..=MAX_TRACKABLE_US,
        ) {
            // The index names the HDR bucket: same bucket, same index; the order is kept.
            prop_assert_eq!(bucket_key(bucket_index(a)), bucket_of(a));
            prop_assert_eq!(bucket_index(a) == bucket_index(b), bucket_of(a) == bucket_of(b));
            prop_assert_eq!(bucket_index(a) < bucket_index(b), bucket_of(a) < bucket_of(b));
        }

        #[test]
        fn bucket_keys_are_within_one_percent_and_stable(v in 0u64..MAX_TRACKABLE_US) {
            let k = bucket_of(v);
            prop_assert!(k >= v && (k - v) as f64 <= v as f64 * 0.01 + 1.0);
            prop_assert_eq!(bucket_of(k), k);
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
                let (k, c) = h.into_buckets();
                for (k, c) in k.into_iter().zip(c) { *summed.entry(k).or_default() += c; }
            }
            let (keys, counts): (Vec<u64>, Vec<u64>) = summed.into_iter().unzip();
            prop_assert_eq!((keys, counts), all.into_buckets());
        }
    }

    #[test]
    fn every_bucket_edge_has_its_own_index() {
        // The edges where the layout moves to the next bucket, up to the largest duration kept.
        let mut value = 0;
        let mut last = None;
        while value <= MAX_TRACKABLE_US {
            let key = bucket_of(value);
            let index = bucket_index(value);
            assert_eq!(bucket_key(index), key, "{value}");
            assert_eq!(bucket_index(key), index, "the top of {value}'s bucket");
            assert!(last < Some(index), "{value}: {last:?} then {index}");
            last = Some(index);
            value = key + 1;
        }
        assert_eq!(bucket_index(u64::MAX), bucket_index(MAX_TRACKABLE_US));
        assert!(usize::from(bucket_index(MAX_TRACKABLE_US)) < WORDS * 64);
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let (keys, counts) = LatencyHistogram::new().into_buckets();
        assert_eq!(quantile_from_buckets(&keys, &counts, 0.99), 0);
    }

    #[test]
    fn huge_durations_are_clamped_not_lost() {
        let mut h = LatencyHistogram::new();
        h.record(u64::MAX);
        let (keys, counts) = h.into_buckets();
        assert_eq!(counts, [1]);
        assert!(quantile_from_buckets(&keys, &counts, 1.0) >= MAX_TRACKABLE_US);
    }
}
