//! Retention: drops whole daily partitions older than the configured number of days.
//!
//! In: the retention in days. Out: the `(table, partition)` pairs dropped. Partitions are
//! `toYYYYMMDD` values; the cut-off is computed by ClickHouse (`today() - days`), and a
//! partition id is only placed in the `ALTER` text after it was checked to be eight digits.

use super::schema::PARTITIONED_TABLES;
use super::{Store, StoreError};
use clickhouse::Row;
use serde::Deserialize;

#[derive(Debug, Row, Deserialize)]
struct Partition {
    table: String,
    partition: String,
}

/// The query listing `(table, partition)` of Plumb's partitions older than `days` days.
pub(crate) fn expired_partitions_query(store: &Store, days: u32) -> clickhouse::query::Query {
    store
        .client
        .query(
            "SELECT DISTINCT table, partition FROM system.parts
             WHERE database = ? AND active AND has(?, table)
               AND partition < toString(toYYYYMMDD(today() - ?))",
        )
        .bind(store.database())
        .bind(PARTITIONED_TABLES)
        .bind(days)
}

/// Drops partitions of Plumb's tables older than `days` days; returns what was dropped.
pub(crate) async fn drop_expired_partitions(
    store: &Store,
    days: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let expired: Vec<Partition> = expired_partitions_query(store, days)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("list expired partitions"))?;
    let mut dropped = Vec::new();
    for p in expired {
        let valid = p.partition.len() == 8 && p.partition.bytes().all(|b| b.is_ascii_digit());
        let Some(table) = PARTITIONED_TABLES.iter().find(|t| **t == p.table) else {
            continue;
        };
        if !valid {
            continue;
        }
        store
            .client
            .query(&format!(
                "ALTER TABLE {table} DROP PARTITION {}",
                p.partition
            ))
            .execute()
            .await
            .map_err(StoreError::clickhouse(format!(
                "drop partition {} of {table}",
                p.partition
            )))?;
        dropped.push((p.table, p.partition));
    }
    Ok(dropped)
}
