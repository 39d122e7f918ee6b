//! Wall-clock time in the units the data path uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub fn now_unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Whole seconds since the Unix epoch, as ClickHouse `DateTime` stores them.
pub fn now_unix_s() -> u32 {
    u32::try_from(now_unix_ns() / 1_000_000_000).unwrap_or(u32::MAX)
}
