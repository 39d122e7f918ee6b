-- Column codecs for the raw tables, applied on servers that have them (ClickHouse 22 and later;
-- checked on 26.9 through chDB): the spans statement by migration 9 (on the columns the table
-- has since migration 8), the others by migration 6. ClickHouse 18.16 has no codecs: there the
-- compression is one setting for the whole server (the managed server's
-- `--clickhouse-compression`, LZ4 unless zstd is asked for).
--
-- Only parts written (or merged) after the ALTER use the codecs; nothing is rewritten. Seconds
-- are sorted within an endpoint (the tables' sort key ends with the time), so they are stored as
-- differences between neighbouring rows, as are the metrics' nanoseconds. Spans get zstd at
-- level 3, metrics at level 1. The trace id keeps the default (LZ4): trace lookups scan it,
-- random ids gain only a byte per span from zstd, and on 18.16 zstd made the `query` bench's
-- trace lookup 1.46x slower. Of the Nested columns only the span attributes' values get a codec: on 26.9 a codec on a Nested
-- column made the others larger than with the default (measured: keys from 0.5 to 2.7-3.5 bytes
-- per span, resource values from 0.5 to 4.7), while the attribute values shrink from 9.2 to 3.4.
-- `scripts/bench-bytes.sh` reads this file too, to measure bytes per span with and without.
-- Statements are separated by semicolons; lines starting with two dashes are comments.
ALTER TABLE spans
    MODIFY COLUMN timestamp CODEC(Delta, ZSTD(3)),
    MODIFY COLUMN start_subsec_ns CODEC(ZSTD(3)),
    MODIFY COLUMN duration_s CODEC(ZSTD(3)),
    MODIFY COLUMN duration_subsec_ns CODEC(ZSTD(3)),
    MODIFY COLUMN span_id CODEC(ZSTD(3)),
    MODIFY COLUMN parent_span_id CODEC(ZSTD(3)),
    MODIFY COLUMN service CODEC(ZSTD(3)),
    MODIFY COLUMN operation CODEC(ZSTD(3)),
    MODIFY COLUMN name CODEC(ZSTD(3)),
    MODIFY COLUMN kind CODEC(ZSTD(3)),
    MODIFY COLUMN status_code CODEC(ZSTD(3)),
    MODIFY COLUMN status_message CODEC(ZSTD(3)),
    MODIFY COLUMN http_status_code CODEC(ZSTD(3)),
    MODIFY COLUMN is_error CODEC(ZSTD(3)),
    MODIFY COLUMN `attributes.value` CODEC(ZSTD(3)),
    MODIFY COLUMN attributes_folded CODEC(ZSTD(3));

ALTER TABLE metrics
    MODIFY COLUMN timestamp CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN time_ns CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN service CODEC(ZSTD(1)),
    MODIFY COLUMN name CODEC(ZSTD(1)),
    MODIFY COLUMN unit CODEC(ZSTD(1)),
    MODIFY COLUMN metric_type CODEC(ZSTD(1)),
    MODIFY COLUMN temporality CODEC(ZSTD(1)),
    MODIFY COLUMN is_monotonic CODEC(ZSTD(1)),
    MODIFY COLUMN value CODEC(ZSTD(1)),
    MODIFY COLUMN count CODEC(ZSTD(1)),
    MODIFY COLUMN sum CODEC(ZSTD(1)),
    MODIFY COLUMN bucket_bounds CODEC(ZSTD(1)),
    MODIFY COLUMN bucket_counts CODEC(ZSTD(1));
