//! Exact figures to check reported ones against, and a repeatable pseudo-random sequence.

/// The exact value at quantile `q` of `values` (nearest rank).
pub fn exact_quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1]
}

/// Asserts a reported percentile (ms) is within the histogram's 1% of the exact value (µs).
pub fn assert_within_one_percent(reported_ms: f64, exact_us: u64, what: &str) {
    let exact_ms = exact_us as f64 / 1000.0;
    assert!(
        (reported_ms - exact_ms).abs() <= exact_ms * 0.01 + 0.001,
        "{what}: reported {reported_ms} ms, exact {exact_ms} ms"
    );
}

/// A small deterministic pseudo-random sequence (xorshift), so workloads repeat exactly.
pub struct Sequence(u64);

impl Sequence {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
