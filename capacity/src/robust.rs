//! Theil–Sen lines: the slope is the median of the slopes between pairs of points, the intercept
//! the median of what is left, so a few wild points (a deploy, a backup) do not tilt the line.
//! The interval on the slope is Sen's: the pair slopes ranked around the median by a normal
//! quantile of Kendall's statistic. Over many points a fixed, evenly spread set of pairs stands
//! in for all of them (the same every time, so the same input gives the same answer).

use statrs::distribution::{ContinuousCDF, Normal};

/// Pairs used at most.
const MAX_PAIRS: usize = 40_000;

/// A line `y = intercept + slope · x` with an interval on the slope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// Median pair slope.
    pub slope: f64,
    /// Lower end of the slope's interval.
    pub slope_low: f64,
    /// Upper end.
    pub slope_high: f64,
    /// Median of `y - slope · x`.
    pub intercept: f64,
    /// Points used.
    pub points: usize,
}

/// The median of `values` (sorted in place); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The Theil–Sen line through `points` with a `level` (e.g. 0.95) interval on the slope, using
/// only pairs for which `same_group(i, j)` holds (pass `|_, _| true` for all pairs); `None` with
/// fewer than three points or no pair of distinct `x`.
pub fn theil_sen(
    points: &[(f64, f64)],
    level: f64,
    same_group: impl Fn(usize, usize) -> bool,
) -> Option<Line> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let all_pairs = n * (n - 1) / 2;
    // Every `step`-th pair in the order (0,1), (0,2), ..., (1,2), ...: an even spread.
    let step = all_pairs.div_ceil(MAX_PAIRS).max(1);
    let mut slopes = Vec::with_capacity(all_pairs.min(MAX_PAIRS) + 1);
    // Pair number `k` (from 0) is used when `k + 1` is a multiple of `step`; row `i` holds the
    // pairs (i, i+1) .. (i, n-1), numbered from `row_start`, so the first one used in it is
    // found by arithmetic and the rest are `step` apart.
    let mut row_start = 0usize;
    for i in 0..n {
        let row_len = n - i - 1;
        let mut j = i + 1 + (step - 1 - row_start % step);
        while j < n {
            if same_group(i, j) {
                let dx = points[j].0 - points[i].0;
                if dx != 0.0 {
                    slopes.push((points[j].1 - points[i].1) / dx);
                }
            }
            j += step;
        }
        row_start += row_len;
    }
    if slopes.is_empty() {
        return None;
    }
    let slope = median(&mut slopes)?;
    let mut rest: Vec<f64> = points.iter().map(|(x, y)| y - slope * x).collect();
    let intercept = median(&mut rest)?;
    // Sen's interval: C = z · sqrt(n(n-1)(2n+5)/18) pair ranks either side of the median,
    // scaled to the pairs actually used.
    let z = Normal::standard().inverse_cdf(0.5 + level / 2.0);
    let nf = n as f64;
    let c = z * (nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0).sqrt();
    let used = slopes.len() as f64;
    let scale = used / all_pairs as f64;
    let low_rank = ((used - c * scale) / 2.0).floor().max(0.0) as usize;
    let high_rank = (((used + c * scale) / 2.0).ceil() as usize).min(slopes.len() - 1);
    Some(Line {
        slope,
        slope_low: slopes[low_rank.min(slopes.len() - 1)],
        slope_high: slopes[high_rank],
        intercept,
        points: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_wild_points_do_not_tilt_the_line() {
        let mut points: Vec<(f64, f64)> = (0..200)
            .map(|i| {
                let x = f64::from(i);
                // A small even wobble around 3 + 2x.
                (x, 3.0 + 2.0 * x + if i % 2 == 0 { 0.5 } else { -0.5 })
            })
            .collect();
        points[10].1 = 10_000.0;
        points[150].1 = -5_000.0;
        let line = theil_sen(&points, 0.95, |_, _| true).expect("line");
        assert!((line.slope - 2.0).abs() < 0.01, "{line:?}");
        assert!((line.intercept - 3.0).abs() < 1.0, "{line:?}");
        assert!(line.slope_low <= 2.0 && 2.0 <= line.slope_high, "{line:?}");
        assert!(theil_sen(&points[..2], 0.95, |_, _| true).is_none());
    }

    #[test]
    fn groups_keep_a_level_shift_out_of_the_slope() {
        // Slope 1, with a jump of 100 at x = 50: pairs across the jump are left out.
        let points: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    f64::from(i),
                    f64::from(i) + if i >= 50 { 100.0 } else { 0.0 },
                )
            })
            .collect();
        let grouped = theil_sen(&points, 0.95, |i, j| (i >= 50) == (j >= 50)).expect("line");
        assert!((grouped.slope - 1.0).abs() < 1e-9, "{grouped:?}");
        let all = theil_sen(&points, 0.95, |_, _| true).expect("line");
        assert!(all.slope > 1.5, "{all:?}");
    }

    #[test]
    fn many_points_use_an_even_sample_of_pairs_and_agree() {
        let points: Vec<(f64, f64)> = (0..2000)
            .map(|i| (f64::from(i), 0.5 * f64::from(i) + f64::from(i % 7)))
            .collect();
        let line = theil_sen(&points, 0.95, |_, _| true).expect("line");
        assert!((line.slope - 0.5).abs() < 0.01, "{line:?}");
        assert_eq!(theil_sen(&points, 0.95, |_, _| true), Some(line));
    }
}
