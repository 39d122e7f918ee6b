//! Retention: drops whole partitions older than the configured number of days, for the raw
//! tables ([`RAW_TABLES`], `--retention-days`) and apart for the rollups ([`ROLLUP_TABLES`],
//! `--rollup-retention-days`).
//!
//! In: the tables and the retention in days. Out: the `(table, partition)` pairs dropped.
//! Partitions are `toYYYYMMDD` (daily) or `toYYYYMM` (monthly) values; the cut-off is computed by
//! ClickHouse (`today() - days`; a month goes once all of it is older), and a partition id is only
//! placed in the `ALTER` text after it was checked to be six or eight digits.

pub(crate) use super::schema::{RAW_TABLES, ROLLUP_TABLES};
use super::{Store, StoreError};
use clickhouse::Row;
use serde::Deserialize;

#[derive(Debug, Row, Deserialize)]
struct Partition {
    table: String,
    partition: String,
}

/// The query listing `(table, partition)` of the partitions of `tables` older than `days` days.
pub(crate) fn expired_partitions_query(
    store: &Store,
    tables: &[&str],
    days: u32,
) -> clickhouse::query::Query {
    store
        .client
        .query(
            "SELECT DISTINCT table, partition FROM system.parts
             WHERE database = ? AND active AND has(?, table)
               AND partition < if(length(partition) = 6,
                                  toString(toYYYYMM(today() - ?)),
                                  toString(toYYYYMMDD(today() - ?)))",
        )
        .bind(store.database())
        .bind(tables)
        .bind(days)
        .bind(days)
}

/// Drops partitions of `tables` older than `days` days; returns what was dropped.
pub(crate) async fn drop_expired_partitions(
    store: &Store,
    tables: &[&str],
    days: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let expired: Vec<Partition> = expired_partitions_query(store, tables, days)
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("list expired partitions"))?;
    let mut dropped = Vec::new();
    for p in expired {
        let valid =
            matches!(p.partition.len(), 6 | 8) && p.partition.bytes().all(|b| b.is_ascii_digit());
        let Some(table) = tables.iter().find(|t| **t == p.table) else {
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
