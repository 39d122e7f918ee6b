//! Versioned schema migrations, applied at start-up.
//!
//! Each migration is a list of statements that are safe to run again (`IF NOT EXISTS`), and the
//! versions applied are recorded in `schema_migrations`. Running the migrations twice, or from
//! two collectors at once, leaves the same schema. Everything here runs on ClickHouse 18.16 and
//! on current releases (see DESIGN.md for the subset): no LowCardinality, TTL, codecs or Map.

use super::{Store, StoreError};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    /// Increasing version number.
    pub version: u32,
    /// What it does.
    pub description: &'static str,
    /// Idempotent statements, run in order.
    pub statements: &'static [&'static str],
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "spans, per-minute latency histograms with an hourly rollup, metrics",
    statements: &[
        "CREATE TABLE IF NOT EXISTS spans (
            timestamp DateTime,
            start_time_ns UInt64,
            duration_ns UInt64,
            trace_id FixedString(16),
            span_id FixedString(8),
            parent_span_id FixedString(8),
            service String,
            operation String,
            name String,
            kind Enum8('unspecified' = 0, 'internal' = 1, 'server' = 2, 'client' = 3, 'producer' = 4, 'consumer' = 5),
            status_code Enum8('unset' = 0, 'ok' = 1, 'error' = 2),
            status_message String,
            http_status_code UInt16,
            is_error UInt8,
            attributes Nested(key String, value String),
            resource Nested(key String, value String)
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(timestamp)
        ORDER BY (service, operation, timestamp)",
        "CREATE TABLE IF NOT EXISTS latency_minute (
            minute DateTime,
            service String,
            operation String,
            kind Enum8('unspecified' = 0, 'internal' = 1, 'server' = 2, 'client' = 3, 'producer' = 4, 'consumer' = 5),
            requests UInt64,
            errors UInt64,
            duration_sum_us UInt64,
            latencyMap Nested(bucket UInt64, count UInt64)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMMDD(minute)
        ORDER BY (service, operation, kind, minute)",
        "CREATE TABLE IF NOT EXISTS latency_hour (
            hour DateTime,
            service String,
            operation String,
            kind Enum8('unspecified' = 0, 'internal' = 1, 'server' = 2, 'client' = 3, 'producer' = 4, 'consumer' = 5),
            hour_requests UInt64,
            hour_errors UInt64,
            hour_duration_sum_us UInt64,
            hourlyMap Nested(bucket UInt64, count UInt64)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMMDD(hour)
        ORDER BY (service, operation, kind, hour)",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS latency_hour_mv TO latency_hour AS
         SELECT toStartOfHour(minute) AS hour, service, operation, kind,
                sum(requests) AS hour_requests,
                sum(errors) AS hour_errors,
                sum(duration_sum_us) AS hour_duration_sum_us,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 1) AS `hourlyMap.bucket`,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 2) AS `hourlyMap.count`
         FROM latency_minute
         GROUP BY hour, service, operation, kind",
        "CREATE TABLE IF NOT EXISTS metrics (
            timestamp DateTime,
            time_ns UInt64,
            service String,
            name String,
            unit String,
            metric_type Enum8('gauge' = 1, 'sum' = 2, 'histogram' = 3, 'exponential_histogram' = 4, 'summary' = 5),
            temporality Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2),
            is_monotonic UInt8,
            attributes Nested(key String, value String),
            resource Nested(key String, value String),
            value Float64,
            count UInt64,
            sum Float64,
            bucket_bounds Array(Float64),
            bucket_counts Array(UInt64)
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(timestamp)
        ORDER BY (service, name, timestamp)",
    ],
}, Migration {
    version: 2,
    description: "per-minute endpoint time breakdown from whole traces",
    statements: &["CREATE TABLE IF NOT EXISTS breakdown_minute (
            minute DateTime,
            service String,
            operation String,
            component_type Enum8('request' = 1, 'self' = 2, 'db' = 3, 'http' = 4, 'rpc' = 5, 'messaging' = 6, 'internal' = 7, 'client' = 8, 'server' = 9),
            component String,
            requests UInt64,
            calls UInt64,
            duration_sum_us UInt64
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMMDD(minute)
        ORDER BY (service, operation, component_type, component, minute)"],
}];

/// Tables that hold daily partitions subject to retention.
pub const PARTITIONED_TABLES: &[&str] = &[
    "spans",
    "latency_minute",
    "latency_hour",
    "metrics",
    "breakdown_minute",
];

#[derive(Row, Serialize, Deserialize)]
struct MigrationRecord {
    version: u32,
    description: String,
    applied_at: u32,
}

/// Creates the database if needed and applies every migration not yet recorded.
/// Returns the versions applied by this call.
pub async fn migrate(store: &Store) -> Result<Vec<u32>, StoreError> {
    // The database name was checked to be a plain identifier in `Store::new`.
    store
        .server
        .query(&format!("CREATE DATABASE IF NOT EXISTS {}", store.database))
        .execute()
        .await
        .map_err(StoreError::clickhouse("create database"))?;
    store
        .client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version UInt32, description String, applied_at DateTime
             ) ENGINE = MergeTree ORDER BY version",
        )
        .execute()
        .await
        .map_err(StoreError::clickhouse("create schema_migrations"))?;
    let applied: Vec<u32> = store
        .client
        .query("SELECT DISTINCT version FROM schema_migrations")
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("read schema_migrations"))?;
    let mut newly = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in migration.statements {
            store
                .client
                .query(statement)
                .execute()
                .await
                .map_err(StoreError::clickhouse(format!(
                    "migration {}",
                    migration.version
                )))?;
        }
        let record = MigrationRecord {
            version: migration.version,
            description: migration.description.to_owned(),
            applied_at: crate::clock::now_unix_s(),
        };
        store.insert("schema_migrations", &[record]).await?;
        newly.push(migration.version);
    }
    Ok(newly)
}
