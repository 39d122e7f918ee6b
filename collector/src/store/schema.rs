//! Versioned schema migrations, applied at start-up.
//!
//! Each migration is a list of statements that are safe to run again (`IF NOT EXISTS`), and the
//! versions applied are recorded in `schema_migrations`. Running the migrations twice leaves the
//! same schema, and so does running them from two collectors at once, except migrations 7 and 8,
//! which copy the latency tables and the spans table and swap the copies in (see [`rebuilt`]).
//! Everything here runs on ClickHouse 18.16 and on current releases (see DESIGN.md for the
//! subset): no LowCardinality, TTL or Map, and codecs only in migrations gated on release 22.
//!
//! Table names are defined here once, as constants every query uses, and the `Enum8` column
//! types of span kinds and component types are written from the Rust enums in `model`, so the
//! stored numbers and names cannot drift from the code's.

use super::{Store, StoreError};
use crate::model::{ComponentType, SpanKind};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// Raw spans.
pub(crate) const SPANS: &str = "spans";
/// Per-minute latency histograms.
pub const LATENCY_MINUTE: &str = "latency_minute";
/// The hourly rollup of [`LATENCY_MINUTE`].
pub(crate) const LATENCY_HOUR: &str = "latency_hour";
/// The materialized view that fills [`LATENCY_HOUR`].
const LATENCY_HOUR_MV: &str = "latency_hour_mv";
/// Metric data points.
pub(crate) const METRICS: &str = "metrics";
/// Per-minute endpoint time breakdown.
pub const BREAKDOWN_MINUTE: &str = "breakdown_minute";
/// The versions applied.
const SCHEMA_MIGRATIONS: &str = "schema_migrations";
/// Every probe check.
pub(crate) const PROBE_RESULTS: &str = "probe_results";
/// Probe checks per minute.
pub(crate) const PROBE_MINUTE: &str = "probe_minute";
/// Host and process metrics per hour and series: min, max, sum, points and last value (filled
/// from [`METRICS`] by a materialized view; gauges and sums only).
pub(crate) const METRIC_HOUR: &str = "metric_hour";
/// The materialized view that fills [`METRIC_HOUR`].
const METRIC_HOUR_MV: &str = "metric_hour_mv";
/// Probe checks per hour (filled from [`PROBE_MINUTE`] by a materialized view).
pub(crate) const PROBE_HOUR: &str = "probe_hour";
/// The materialized view that fills [`PROBE_HOUR`].
const PROBE_HOUR_MV: &str = "probe_hour_mv";
/// Probe checks per day (filled from [`PROBE_MINUTE`] by a materialized view).
pub(crate) const PROBE_DAY: &str = "probe_day";
/// The materialized view that fills [`PROBE_DAY`].
const PROBE_DAY_MV: &str = "probe_day_mv";
/// Alert state changes.
pub(crate) const ALERT_EVENTS: &str = "alert_events";
/// Notification delivery attempts.
pub(crate) const NOTIFICATION_LOG: &str = "notification_log";
/// Silences, one row per version (the newest counts).
pub(crate) const SILENCES: &str = "silences";

/// Raw tables: their daily partitions are dropped past `--retention-days`.
pub(crate) const RAW_TABLES: &[&str] = &[
    SPANS,
    LATENCY_MINUTE,
    METRICS,
    BREAKDOWN_MINUTE,
    PROBE_RESULTS,
    ALERT_EVENTS,
    NOTIFICATION_LOG,
];

/// Rollups that long reports read (capacity over months, uptime over 90 days): their partitions
/// (daily or monthly) are dropped past `--rollup-retention-days`.
pub(crate) const ROLLUP_TABLES: &[&str] = &[
    LATENCY_HOUR,
    METRIC_HOUR,
    PROBE_MINUTE,
    PROBE_HOUR,
    PROBE_DAY,
];

/// The table and the view of one rollup of [`PROBE_MINUTE`] by `unit` (`hour`, `day`): the
/// table's columns are `unit`, `{unit}_checks`, `{unit}_failures`, `{unit}_duration_sum_us` and
/// `{unit}Map` (every output alias differs from the source's columns, as 18.16 needs), and the
/// view fills it with `start_of(minute)`.
fn probe_rollup(table: &str, view: &str, unit: &str, start_of: &str) -> [String; 2] {
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {table} (
            {unit} DateTime,
            probe String,
            location String,
            {unit}_checks UInt64,
            {unit}_failures UInt64,
            {unit}_duration_sum_us UInt64,
            {unit}Map Nested(bucket UInt64, count UInt64)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMM({unit})
        ORDER BY (probe, location, {unit})"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {table} AS
         SELECT {start_of}(minute) AS {unit}, probe, location,
                sum(checks) AS {unit}_checks,
                sum(failures) AS {unit}_failures,
                sum(duration_sum_us) AS {unit}_duration_sum_us,
                tupleElement(sumMap(probeMap.bucket, probeMap.count), 1) AS `{unit}Map.bucket`,
                tupleElement(sumMap(probeMap.bucket, probeMap.count), 2) AS `{unit}Map.count`
         FROM {PROBE_MINUTE}
         GROUP BY {unit}, probe, location"
        ),
    ]
}

/// The `CREATE TABLE` of a latency histogram table under the name `table`, per `time` column
/// (`minute`, `hour`), with `settings` (empty, or a `SETTINGS` clause) after the sort key. The
/// counters are named `{prefix}requests`, `{prefix}errors` and `{prefix}duration_sum_us` and the
/// histogram `map`: the hourly rollup's names differ from the minute table's, as 18.16 needs of
/// a view's output.
fn latency_table(
    table: &str,
    (time, prefix, map): (&str, &str, &str),
    kind: &str,
    settings: &str,
) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            {time} DateTime,
            service String,
            operation String,
            kind {kind},
            {prefix}requests UInt64,
            {prefix}errors UInt64,
            {prefix}duration_sum_us UInt64,
            {map} Nested(bucket UInt64, count UInt64)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMMDD({time})
        ORDER BY (service, operation, kind, {time}){settings}"
    )
}

/// The columns of [`LATENCY_MINUTE`] for [`latency_table`].
const MINUTE_COLUMNS: (&str, &str, &str) = ("minute", "", "latencyMap");
/// The columns of [`LATENCY_HOUR`] for [`latency_table`].
const HOUR_COLUMNS: (&str, &str, &str) = ("hour", "hour_", "hourlyMap");

/// The view that sums each minute written into [`LATENCY_MINUTE`] into [`LATENCY_HOUR`].
fn latency_hour_view() -> String {
    format!(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {LATENCY_HOUR_MV} TO {LATENCY_HOUR} AS
         SELECT toStartOfHour(minute) AS hour, service, operation, kind,
                sum(requests) AS hour_requests,
                sum(errors) AS hour_errors,
                sum(duration_sum_us) AS hour_duration_sum_us,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 1) AS `hourlyMap.bucket`,
                tupleElement(sumMap(latencyMap.bucket, latencyMap.count), 2) AS `hourlyMap.count`
         FROM {LATENCY_MINUTE}
         GROUP BY hour, service, operation, kind"
    )
}

/// Rows per index mark of the latency tables since migration 7. With ClickHouse's default of
/// 8,192 a mark spans several endpoints' whole day, so a one-hour window or a handful of
/// endpoints read most of the day; at 256 they read a few marks per endpoint.
const LATENCY_GRANULARITY: u32 = 256;

/// The statements that copy `table` into a new table made by `create` (given the copy's name)
/// with `insert` (the copy's name to an `INSERT ... SELECT ... FROM {table}`) and put the copy in
/// its place; the old table is renamed to `{table}_replaced_{stamp}` and dropped last. Safe to
/// run again after a crash at any step: a copy left half-made is dropped and made again, and the
/// old table, under a name no other run uses, is only dropped once the copy holds its name (a
/// crash before that leaves it behind, a crash inside the rename leaves the data in it and the
/// next run fails instead of copying nothing). Not safe from two collectors at once, so a
/// cluster upgrades with one collector first.
fn rebuilt(
    table: &str,
    create: impl FnOnce(&str) -> String,
    insert: impl FnOnce(&str) -> String,
    stamp: u32,
) -> Vec<String> {
    let (copy, old) = (
        format!("{table}_rebuilt"),
        format!("{table}_replaced_{stamp}"),
    );
    vec![
        format!("DROP TABLE IF EXISTS {copy}"),
        create(&copy),
        insert(&copy),
        format!("RENAME TABLE {table} TO {old}, {copy} TO {table}"),
        format!("DROP TABLE {old}"),
    ]
}

/// [`rebuilt`] for a latency table (with `columns`, see [`latency_table`]) copied as it is into
/// a table with [`LATENCY_GRANULARITY`].
fn rebuilt_with_granularity(
    table: &str,
    columns: (&str, &str, &str),
    kind: &str,
    stamp: u32,
) -> Vec<String> {
    let settings = format!("\n        SETTINGS index_granularity = {LATENCY_GRANULARITY}");
    rebuilt(
        table,
        |copy| latency_table(copy, columns, kind, &settings),
        |copy| format!("INSERT INTO {copy} SELECT * FROM {table}"),
        stamp,
    )
}

/// The spans table's columns from the trace id to the resource attributes, the same in its
/// first layout and since migration 8.
fn span_ids_to_resource(kind: &str) -> String {
    format!(
        "            trace_id FixedString(16),
            span_id FixedString(8),
            parent_span_id FixedString(8),
            service String,
            operation String,
            name String,
            kind {kind},
            status_code Enum8('unset' = 0, 'ok' = 1, 'error' = 2),
            status_message String,
            http_status_code UInt16,
            is_error UInt8,
            attributes Nested(key String, value String),
            resource Nested(key String, value String)"
    )
}

/// The `CREATE TABLE` of the spans table since migration 8, under the name `table`. The start
/// is `timestamp` (the second) and `start_subsec_ns`, the duration `duration_s` and
/// `duration_subsec_ns`: with LZ4 (18.16's only compression) a column of eight-byte nanosecond
/// counts cost 6.4 and 4.9 bytes per span, the halves about 4 and 4. `start_time_ns` and
/// `duration_ns` give the whole nanoseconds back to every query. `attributes_folded` says
/// which HTTP attributes are left out of `attributes` because other columns hold them exactly
/// (see `rows::unfold_attributes`).
fn spans_table(table: &str, kind: &str) -> String {
    let ids_to_resource = span_ids_to_resource(kind);
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            timestamp DateTime,
            start_subsec_ns UInt32,
            duration_s UInt64,
            duration_subsec_ns UInt32,
            start_time_ns UInt64 ALIAS toUInt64(timestamp) * 1000000000 + start_subsec_ns,
            duration_ns UInt64 ALIAS duration_s * 1000000000 + duration_subsec_ns,
{ids_to_resource},
            attributes_folded UInt8
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(timestamp)
        ORDER BY (service, operation, timestamp)"
    )
}

/// Migration 8's statements: the spans table copied into [`spans_table`]'s columns (the times
/// split from the nanoseconds the table kept before, nothing folded).
fn spans_split_statements(kind: &str) -> Vec<String> {
    rebuilt(
        SPANS,
        |copy| spans_table(copy, kind),
        |copy| {
            format!(
                "INSERT INTO {copy} ({columns})
         SELECT timestamp, toUInt32(start_time_ns % 1000000000), intDiv(duration_ns, 1000000000),
                toUInt32(duration_ns % 1000000000), trace_id, span_id, parent_span_id, service,
                operation, name, kind, status_code, status_message, http_status_code, is_error,
                attributes.key, attributes.value, resource.key, resource.value, 0
         FROM {SPANS}",
                columns = super::rows::SPAN_COLUMNS
            )
        },
        crate::clock::now_unix_s(),
    )
}

/// Migration 7's statements: the view is dropped while the tables are copied (so that no
/// minute reaches the old hour table) and made again on the new ones.
fn latency_granularity_statements(kind: &str) -> Vec<String> {
    let stamp = crate::clock::now_unix_s();
    let mut statements = vec![format!("DROP TABLE IF EXISTS {LATENCY_HOUR_MV}")];
    for (table, columns) in [
        (LATENCY_MINUTE, MINUTE_COLUMNS),
        (LATENCY_HOUR, HOUR_COLUMNS),
    ] {
        statements.extend(rebuilt_with_granularity(table, columns, kind, stamp));
    }
    statements.push(latency_hour_view());
    statements
}

/// One schema change.
#[derive(Debug)]
pub struct Migration {
    /// Increasing version number.
    pub version: u32,
    /// What it does.
    pub description: &'static str,
    /// The oldest ClickHouse major release the statements run on. An older server skips the
    /// migration without recording it, so it is applied once the server is upgraded.
    pub since_major: u32,
    /// Statements run in order; the list is safe to run again from the start.
    pub statements: Vec<String>,
}

/// Every release has what the subset in DESIGN.md allows.
const ANY_RELEASE: u32 = 0;
/// The first major release the column codecs of [`CODECS_SQL`] are used on.
const CODECS_SINCE_MAJOR: u32 = 22;
/// The column codecs of the raw tables (read by `scripts/bench-bytes.sh` too).
const CODECS_SQL: &str = include_str!("codecs.sql");

/// The statements of [`CODECS_SQL`] for the spans table (`for_spans`), or those for the others.
fn codec_statements(for_spans: bool) -> Vec<String> {
    sql_statements(CODECS_SQL)
        .into_iter()
        .filter(|s| s.starts_with(&format!("ALTER TABLE {SPANS}\n")) == for_spans)
        .collect()
}

/// The statements of a SQL file: split at semicolons, lines starting with `--` left out.
fn sql_statements(file: &str) -> Vec<String> {
    let text: Vec<&str> = file
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect();
    text.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An `Enum8` column type with these names and numbers.
fn enum8(values: impl IntoIterator<Item = (&'static str, i8)>) -> String {
    let values: Vec<String> = values
        .into_iter()
        .map(|(name, number)| format!("'{name}' = {number}"))
        .collect();
    format!("Enum8({})", values.join(", "))
}

/// The `Enum8` type of span kind columns.
fn span_kind_type() -> String {
    enum8(SpanKind::ALL.map(|k| (k.name(), k as i8)))
}

/// The `Enum8` type of component type columns.
fn component_type_type() -> String {
    enum8(ComponentType::ALL.map(|c| (c.name(), c as i8)))
}

/// Every migration, oldest first.
pub fn migrations() -> Vec<Migration> {
    let kind = span_kind_type();
    let ids_to_resource = span_ids_to_resource(&kind);
    let component_type = component_type_type();
    let [day_table, day_view] = probe_rollup(PROBE_DAY, PROBE_DAY_MV, "day", "toStartOfDay");
    vec![
        Migration {
            version: 1,
            description: "spans, per-minute latency histograms with an hourly rollup, metrics",
            since_major: ANY_RELEASE,
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {SPANS} (
            timestamp DateTime,
            start_time_ns UInt64,
            duration_ns UInt64,
{ids_to_resource}
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(timestamp)
        ORDER BY (service, operation, timestamp)"
                ),
                latency_table(LATENCY_MINUTE, MINUTE_COLUMNS, &kind, ""),
                latency_table(LATENCY_HOUR, HOUR_COLUMNS, &kind, ""),
                latency_hour_view(),
                format!(
                    "CREATE TABLE IF NOT EXISTS {METRICS} (
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
        ORDER BY (service, name, timestamp)"
                ),
            ],
        },
        Migration {
            version: 2,
            description: "per-minute endpoint time breakdown from whole traces",
            since_major: ANY_RELEASE,
            statements: vec![format!(
                "CREATE TABLE IF NOT EXISTS {BREAKDOWN_MINUTE} (
            minute DateTime,
            service String,
            operation String,
            component_type {component_type},
            component String,
            requests UInt64,
            calls UInt64,
            duration_sum_us UInt64
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMMDD(minute)
        ORDER BY (service, operation, component_type, component, minute)"
            )],
        },
        Migration {
            version: 3,
            description: "probe results with minute and day rollups, alert history, notification log, silences",
            since_major: ANY_RELEASE,
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {PROBE_RESULTS} (
            time DateTime,
            time_ns UInt64,
            probe String,
            location String,
            success UInt8,
            duration_us UInt64,
            dns_us UInt64,
            connect_us UInt64,
            tls_us UInt64,
            first_byte_us UInt64,
            status UInt16,
            error String,
            leaf_days_left Int32,
            chain_days_left Int32
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(time)
        ORDER BY (probe, location, time)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {PROBE_MINUTE} (
            minute DateTime,
            probe String,
            location String,
            checks UInt64,
            failures UInt64,
            duration_sum_us UInt64,
            probeMap Nested(bucket UInt64, count UInt64)
        ) ENGINE = SummingMergeTree
        PARTITION BY toYYYYMM(minute)
        ORDER BY (probe, location, minute)"
                ),
                day_table,
                day_view,
                format!(
                    "CREATE TABLE IF NOT EXISTS {ALERT_EVENTS} (
            time DateTime,
            fingerprint String,
            alertname String,
            labels Nested(key String, value String),
            from_state String,
            to_state String,
            detail String
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(time)
        ORDER BY (alertname, time)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {NOTIFICATION_LOG} (
            time DateTime,
            group_key String,
            receiver String,
            integration String,
            status String,
            alerts UInt32,
            attempt UInt32,
            ok UInt8,
            outcome String
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMMDD(time)
        ORDER BY (receiver, time)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {SILENCES} (
            id String,
            version UInt64,
            matchers Array(String),
            starts_at DateTime,
            ends_at DateTime,
            comment String,
            created_by String
        ) ENGINE = MergeTree
        ORDER BY (id, version)"
                ),
            ],
        },
        Migration {
            version: 4,
            description: "hourly probe rollup",
            since_major: ANY_RELEASE,
            statements: probe_rollup(PROBE_HOUR, PROBE_HOUR_MV, "hour", "toStartOfHour").into(),
        },
        Migration {
            version: 5,
            description: "hourly rollup of host and process metrics",
            since_major: ANY_RELEASE,
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {METRIC_HOUR} (
            hour DateTime,
            service String,
            name String,
            host String,
            instance String,
            series String,
            hour_min AggregateFunction(min, Float64),
            hour_max AggregateFunction(max, Float64),
            hour_sum AggregateFunction(sum, Float64),
            hour_points AggregateFunction(count),
            hour_last AggregateFunction(argMax, Float64, UInt64)
        ) ENGINE = AggregatingMergeTree
        PARTITION BY toYYYYMM(hour)
        ORDER BY (service, name, host, instance, series, hour)"
                ),
                // The instance is `service.instance.id`, else host and process id; the series is
                // the point's attributes as `key=value` joined by commas.
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {METRIC_HOUR_MV} TO {METRIC_HOUR} AS
         SELECT toStartOfHour(timestamp) AS hour, service, name,
                resource.value[indexOf(resource.key, 'host.name')] AS host,
                if(indexOf(resource.key, 'service.instance.id') > 0,
                   resource.value[indexOf(resource.key, 'service.instance.id')],
                   concat(resource.value[indexOf(resource.key, 'host.name')], ':',
                          resource.value[indexOf(resource.key, 'process.pid')])) AS instance,
                arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), attributes.key, attributes.value), ',') AS series,
                minState(value) AS hour_min,
                maxState(value) AS hour_max,
                sumState(value) AS hour_sum,
                countState() AS hour_points,
                argMaxState(value, time_ns) AS hour_last
         FROM {METRICS}
         WHERE metric_type IN ('gauge', 'sum')
         GROUP BY hour, service, name, host, instance, series"
                ),
            ],
        },
        // Until migration 8 this gave the spans table its codecs too; migration 9 does now, on
        // the columns the spans table has since 8.
        Migration {
            version: 6,
            description: "column codecs for metrics (current servers)",
            since_major: CODECS_SINCE_MAJOR,
            statements: codec_statements(false),
        },
        Migration {
            version: 7,
            description: "latency tables copied into 256-row index marks",
            since_major: ANY_RELEASE,
            statements: latency_granularity_statements(&kind),
        },
        Migration {
            version: 8,
            description: "spans: times as seconds and nanoseconds, HTTP attributes stored once",
            since_major: ANY_RELEASE,
            statements: spans_split_statements(&kind),
        },
        Migration {
            version: 9,
            description: "column codecs for spans (current servers)",
            since_major: CODECS_SINCE_MAJOR,
            statements: codec_statements(true),
        },
    ]
}

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
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA_MIGRATIONS} (
                version UInt32, description String, applied_at DateTime
             ) ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await
        .map_err(StoreError::clickhouse("create schema_migrations"))?;
    let applied: Vec<u32> = store
        .client
        .query(&format!("SELECT DISTINCT version FROM {SCHEMA_MIGRATIONS}"))
        .fetch_all()
        .await
        .map_err(StoreError::clickhouse("read schema_migrations"))?;
    let major = server_major(store).await?;
    let mut newly = Vec::new();
    for migration in migrations()
        .into_iter()
        .filter(|m| !applied.contains(&m.version) && m.since_major <= major)
    {
        for statement in &migration.statements {
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
        store.insert(SCHEMA_MIGRATIONS, &[record]).await?;
        newly.push(migration.version);
    }
    Ok(newly)
}

/// The server's major release (`18` for 18.16.1); 0 when its version string does not start
/// with a number, so that no gated migration runs on a server it may not suit.
pub async fn server_major(store: &Store) -> Result<u32, StoreError> {
    let version: String = store
        .server
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(StoreError::clickhouse("read the server version"))?;
    Ok(major_of(&version))
}

/// The number before the first dot of a version string, or 0.
fn major_of(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|major| major.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(name, number)` pairs of the `Enum8` type of `column` in the DDL of `table`.
    fn enum8_of(table: &str, column: &str) -> Vec<(String, i8)> {
        let ddl = migrations()
            .into_iter()
            .flat_map(|m| m.statements)
            .find(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS {table} (")))
            .expect("table in the schema");
        let start = ddl
            .find(&format!("\n            {column} Enum8("))
            .expect("column in the table")
            + column.len()
            + "\n            ".len()
            + " Enum8(".len();
        let end = start + ddl[start..].find(')').expect("closing parenthesis");
        ddl[start..end]
            .split(", ")
            .map(|item| {
                let (name, number) = item.split_once(" = ").expect("'name' = number");
                (
                    name.trim_matches('\'').to_owned(),
                    number.parse().expect("number"),
                )
            })
            .collect()
    }

    #[test]
    fn the_ddl_enum8_values_match_the_rust_enums() {
        let kinds: Vec<(String, i8)> = SpanKind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), *k as i8))
            .collect();
        for table in [SPANS, "spans_rebuilt", LATENCY_MINUTE, LATENCY_HOUR] {
            assert_eq!(enum8_of(table, "kind"), kinds, "{table}.kind");
        }
        let components: Vec<(String, i8)> = ComponentType::ALL
            .iter()
            .map(|c| (c.name().to_owned(), *c as i8))
            .collect();
        assert_eq!(enum8_of(BREAKDOWN_MINUTE, "component_type"), components);
        assert_eq!(
            enum8_of(SPANS, "kind")[2],
            ("server".to_owned(), 2),
            "OTLP's number for SERVER"
        );
        for kind in SpanKind::ALL {
            assert_eq!(SpanKind::from_name(kind.name()), Some(kind));
            assert_eq!(SpanKind::from_otlp(kind as i32), kind);
        }
        assert_eq!(SpanKind::from_otlp(77), SpanKind::Unspecified);
    }

    #[test]
    fn the_major_release_is_read_from_the_version_string() {
        assert_eq!(major_of("18.16.1"), 18);
        assert_eq!(major_of("26.9.2.1"), 26);
        assert_eq!(major_of("unknown"), 0);
        assert_eq!(major_of(""), 0);
    }

    #[test]
    fn span_columns_get_codecs_on_current_servers() {
        let spans = codec_statements(true);
        assert_eq!(spans.len(), 1, "{spans:?}");
        let spans = &spans[0];
        let others = codec_statements(false);
        assert_eq!(others.len(), 1, "{others:?}");
        assert!(others[0].starts_with(&format!("ALTER TABLE {METRICS}\n")));
        // Every column but the trace id, the Nested keys and resource values: they keep the
        // default.
        let keeping_default = [
            "trace_id",
            "`attributes.key`",
            "`resource.key`",
            "`resource.value`",
        ];
        for column in crate::store::rows::SPAN_COLUMNS.split(", ") {
            let column = column.trim();
            assert_eq!(
                spans.contains(&format!("MODIFY COLUMN {column} CODEC(")),
                !keeping_default.contains(&column),
                "{column}"
            );
        }
        assert!(!spans.contains("--") && !others[0].contains("--"));
    }
}
