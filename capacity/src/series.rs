//! Hourly series: laid on a grid of whole hours, gaps counted and filled, counters turned into
//! per-hour increases with their resets counted.

/// Seconds in an hour.
pub const HOUR: i64 = 3600;

/// The start of the hour holding `t`.
pub fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

/// `points` on the grid of hours from `start` (inclusive) to `end` (exclusive); hours without a
/// point are `None`. Points off the grid are ignored; two in one hour keep the last.
pub fn on_grid(points: &[(i64, f64)], start: i64, end: i64) -> Vec<Option<f64>> {
    let start = hour_of(start);
    let hours = usize::try_from((end - start).max(0) / HOUR).unwrap_or(0);
    let mut grid = vec![None; hours];
    for &(t, v) in points {
        if t < start || !v.is_finite() {
            continue;
        }
        if let Some(slot) = usize::try_from((t - start) / HOUR)
            .ok()
            .and_then(|i| grid.get_mut(i))
        {
            *slot = Some(v);
        }
    }
    grid
}

/// Missing hours between the first and the last known one.
pub fn gaps(grid: &[Option<f64>]) -> usize {
    let Some(first) = grid.iter().position(Option::is_some) else {
        return 0;
    };
    let last = grid.iter().rposition(Option::is_some).unwrap_or(first);
    grid[first..=last].iter().filter(|v| v.is_none()).count()
}

/// The known part of `grid` (from its first to its last value) with gaps filled by straight
/// lines between their neighbours; the index of its first hour. `None` when nothing is known.
pub fn filled(grid: &[Option<f64>]) -> Option<(usize, Vec<f64>)> {
    let first = grid.iter().position(Option::is_some)?;
    let last = grid.iter().rposition(Option::is_some)?;
    let known = &grid[first..=last];
    let mut out = Vec::with_capacity(known.len());
    let mut previous: Option<(usize, f64)> = None;
    for (i, v) in known.iter().enumerate() {
        let Some(v) = v else { continue };
        if let Some((j, before)) = previous {
            for k in j + 1..i {
                let share = (k - j) as f64 / (i - j) as f64;
                out.push(before + (v - before) * share);
            }
        }
        out.push(*v);
        previous = Some((i, *v));
    }
    Some((first, out))
}

/// The increase of a cumulative counter in each hour, from the last value of each hour: only
/// between consecutive hours; a value below the one before is a reset (the process restarted
/// and the counter started again from zero), and the hour's increase is the new value. Returns
/// the (hour, increase) pairs and the resets seen.
pub fn counter_increases(points: &[(i64, f64)]) -> (Vec<(i64, f64)>, usize) {
    let mut out = Vec::with_capacity(points.len());
    let mut resets = 0;
    for pair in points.windows(2) {
        let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
        if t1 - t0 != HOUR {
            continue;
        }
        if v1 < v0 {
            resets += 1;
            out.push((t1, v1));
        } else {
            out.push((t1, v1 - v0));
        }
    }
    (out, resets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_gaps_and_fills() {
        let grid = on_grid(
            &[(3600, 1.0), (3 * 3600, 3.0), (9 * 3600, 9.0)],
            0,
            5 * 3600,
        );
        assert_eq!(grid, [None, Some(1.0), None, Some(3.0), None]);
        assert_eq!(gaps(&grid), 1);
        assert_eq!(filled(&grid), Some((1, vec![1.0, 2.0, 3.0])));
        assert_eq!(filled(&[None, None]), None);
    }

    #[test]
    fn counters_become_increases_and_resets_are_counted() {
        let points = [
            (0, 10.0),
            (3600, 25.0),
            (7200, 4.0),
            (10_800, 9.0),
            (18_000, 20.0),
        ];
        let (increases, resets) = counter_increases(&points);
        assert_eq!(increases, [(3600, 15.0), (7200, 4.0), (10_800, 5.0)]);
        assert_eq!(resets, 1);
    }
}
